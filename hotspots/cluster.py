"""Density clusters of incidents (DBSCAN, HDBSCAN) and the places they make.

Everything is in British National Grid metres (EPSG:27700): ``x`` and ``y`` arguments are
eastings and northings, never degrees.

The default rule (:func:`suggest_dbscan_params`) keeps DBSCAN meaningful from a thousand
to a million incidents. ``eps_m`` is a spatial scale (75 m, about a street block), so it
stays fixed; ``min_samples`` grows with volume: a core point needs at least
``density_factor`` (5) times the study area's mean density within ``eps_m``, and never
fewer than 5 incidents. A cluster is therefore "where the incident density is more than
five times the borough average", the same level set whatever the volume; more incidents
only sharpen its edge. (A fixed ``min_samples`` does the opposite: at 100,000 incidents,
eps 100 m and min_samples 10 make one cluster covering the borough.)

For speed and memory, DBSCAN runs on the occupied cells of a 10 m lattice weighted by
their counts (sklearn ``sample_weight``), and the labels are mapped back to the points:
about 2.3 s at a million incidents on 2 cores, where exact DBSCAN runs out of memory; the
adjusted Rand index against exact DBSCAN is 0.996 at 100,000 (bench/bench_cluster.py).
``bin_m=0`` runs exact DBSCAN (identical points are still merged, which changes nothing).

HDBSCAN has no sample weights, and repeating bin centres would bring back the cost that
binning removes, so it runs on a seeded random subsample of at most 20,000 incidents
(drawn from the points sorted by coordinates, so row order does not matter); every other
incident takes the label of its nearest sampled point when it lies within that point's
core distance, else it is noise. A subsample keeps the shape of the density, which is all
HDBSCAN looks at; ``min_cluster_size`` is a share of the incidents (0.5%, at least 10;
``min_samples`` the same on the subsample), so it too means the same at every volume. About
3.3 s at a million incidents, against 66 s for the hdbscan package on the raw points.
"""

from __future__ import annotations

import logging
import re

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
from scipy.spatial import ConvexHull, QhullError, cKDTree
from sklearn.cluster import DBSCAN, HDBSCAN

from .assign import check_projected
from .config import Config
from .errors import CRSError
from .ingest import POLICE_UK_SOURCE
from .schema import PLACE_COLUMNS, WORKING_CRS

log = logging.getLogger(__name__)

METHODS = ("dbscan", "hdbscan")
DEFAULT_EPS_M = 75.0
DENSITY_FACTOR = 5.0
MIN_SAMPLES_FLOOR = 5
HDBSCAN_SHARE = 0.005
HDBSCAN_FLOOR = 10
HDBSCAN_MAX_SAMPLE = 20_000
WEEKDAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
_NEEDED = ("source", "category", "date", "hour", "x", "y", "location", "location_key",
           "ward_code", "lsoa_code")
_PREFIX = re.compile(r"^(?:on or near|near to|near|outside of|outside|opposite|o/s|by|"
                     r"behind|rear of|junction of|junction with|corner of)\s+(?:the\s+)?", re.I)
_NUMBER = re.compile(r"^(?:(?:flat|unit|apartment)\s+)?\d+[a-z]?(?:\s*-\s*\d+[a-z]?)?,?\s+",
                     re.I)
_POSTCODE = re.compile(r"^(?:london\s*)?[a-z]{1,2}\d[a-z\d]?(?:\s*\d[a-z]{2})?$|^london$", re.I)


def _coords(x, y) -> tuple[np.ndarray, np.ndarray]:
    x = np.asarray(x, dtype=float).ravel()
    y = np.asarray(y, dtype=float).ravel()
    if x.shape != y.shape:
        raise ValueError(f"x and y must have the same length; got {x.size} and {y.size}.")
    bad = ~(np.isfinite(x) & np.isfinite(y))
    if bad.any():
        raise ValueError(f"x and y must be finite EPSG:27700 metres; {int(bad.sum())} points "
                         f"are not, the first at position {int(np.argmax(bad))}. Drop them.")
    if x.size and np.abs(x).max() <= 180 and np.abs(y).max() <= 90:
        raise CRSError("x and y look like degrees (longitude, latitude); clustering needs "
                       "EPSG:27700 metres. Project them first (ingest does this).")
    return x, y


def _positive(name: str, value, *, allow_zero: bool = False, integer: bool = False) -> None:
    kind = "an integer" if integer else "a number"
    ok = isinstance(value, int | np.integer) if integer else isinstance(
        value, int | float | np.integer | np.floating)
    ok = ok and not isinstance(value, bool) and np.isfinite(value)
    if not ok or value < 0 or (value == 0 and not allow_zero):
        bound = "0 or more" if allow_zero else ("1 or more" if integer else "above 0")
        raise ValueError(f"{name} must be {kind} {bound}; got {value!r}.")


def _weights(weights, n: int) -> np.ndarray | None:
    if weights is None:
        return None
    w = np.asarray(weights, dtype=float).ravel()
    if w.size != n or not np.isfinite(w).all() or (w < 0).any():
        raise ValueError(f"weights must be {n} finite numbers of 0 or more (one per point); "
                         f"got {w.size} values, min {w.min() if w.size else 'n/a'}.")
    return w


def _hull_area_m2(x: np.ndarray, y: np.ndarray) -> float:
    pts = np.unique(np.column_stack([x, y]), axis=0)
    if len(pts) < 3:
        return 0.0
    try:
        return float(ConvexHull(pts).volume)  # in 2-D, "volume" is the area
    except QhullError:  # all points on a line
        return 0.0


def suggest_dbscan_params(x, y, *, area_m2: float | None = None, eps_m: float | None = None,
                          weights=None, density_factor: float = DENSITY_FACTOR
                          ) -> tuple[float, int]:
    """Choose DBSCAN ``eps_m`` and ``min_samples`` that mean the same at any volume.

    ``eps_m`` is 75 m unless given. ``min_samples = max(5, ceil(density_factor * W / A *
    pi * eps_m**2))`` where ``W`` is the number of points (or the sum of ``weights``) and
    ``A`` the study area: a core point has at least ``density_factor`` times the mean
    density within ``eps_m``. ``A`` is at least one eps disc, so a few points alone never
    form a cluster. The choice is logged.

    Parameters
    ----------
    x, y : array-like
        Eastings and northings, EPSG:27700 metres.
    area_m2 : float, optional
        Study area in square metres; default the convex hull of the points.
    eps_m : float, optional
        Neighbourhood radius in metres; default 75.
    weights : array-like, optional
        Weight per point (as sklearn's ``sample_weight``); default 1 each.
    density_factor : float, default 5
        Core density as a multiple of the mean density.

    Returns
    -------
    (float, int)
        ``eps_m`` and ``min_samples``.
    """
    x, y = _coords(x, y)
    w = _weights(weights, x.size)
    if eps_m is not None:
        _positive("eps_m", eps_m)
    if area_m2 is not None:
        _positive("area_m2", area_m2)
    _positive("density_factor", density_factor)
    eps = float(DEFAULT_EPS_M if eps_m is None else eps_m)
    total = float(x.size if w is None else w.sum())
    hull = area_m2 is None
    area = float(_hull_area_m2(x, y) if hull else area_m2)
    disc = np.pi * eps**2
    min_samples = max(MIN_SAMPLES_FLOOR,
                      int(np.ceil(density_factor * total / max(area, disc) * disc - 1e-9)))
    log.info("DBSCAN eps set to %.0f m and min_samples to %d: %g x the mean density of %.0f "
             "incidents per km2 over %.2f km2 (%s), at least %d.", eps, min_samples,
             density_factor, total / max(area, disc) * 1e6, area / 1e6,
             "convex hull of the points" if hull else "given", MIN_SAMPLES_FLOOR)
    return eps, min_samples


def suggest_hdbscan_params(x, y) -> int:
    """Choose HDBSCAN's ``min_cluster_size``: 0.5% of the points, at least 10. Logged.

    Parameters
    ----------
    x, y : array-like
        Eastings and northings, EPSG:27700 metres.

    Returns
    -------
    int
        Smallest number of incidents that make a place.
    """
    x, _ = _coords(x, y)
    size = max(HDBSCAN_FLOOR, int(round(HDBSCAN_SHARE * x.size)))
    log.info("HDBSCAN min_cluster_size set to %d (%.1f%% of %d incidents, at least %d).",
             size, 100 * HDBSCAN_SHARE, x.size, HDBSCAN_FLOOR)
    return size


def _relabel(labels: np.ndarray, sizes_from: np.ndarray) -> np.ndarray:
    """Renumber clusters 0, 1, ... by size (``sizes_from``) descending; ties by first seen.

    ``labels`` are in a canonical (coordinate-sorted) order, so the result does not depend
    on the input row order.
    """
    k = labels.max() + 1 if labels.size else 0
    if k <= 0:
        return labels
    ok = labels >= 0
    size = np.bincount(labels[ok], weights=sizes_from[ok], minlength=k)
    first = np.full(k, labels.size)
    np.minimum.at(first, labels[ok], np.flatnonzero(ok))
    new = np.empty(k, dtype=np.int64)
    new[np.lexsort((first, -size))] = np.arange(k)
    return np.where(ok, new[np.maximum(labels, 0)], -1)


def cluster_points(x, y, *, method: str = "dbscan", eps_m: float | None = None,
                   min_samples: int | None = None, bin_m: float = 10.0, weights=None,
                   area_m2: float | None = None, max_sample: int = HDBSCAN_MAX_SAMPLE,
                   rng: int | np.random.Generator | None = 0) -> np.ndarray:
    """Cluster label of each point: 0 is the largest cluster, -1 noise.

    Labels depend on the set of points, not on their order.

    Parameters
    ----------
    x, y : array-like
        Eastings and northings, EPSG:27700 metres.
    method : {"dbscan", "hdbscan"}, default "dbscan"
    eps_m : float, optional
        DBSCAN: neighbourhood radius in metres, default from :func:`suggest_dbscan_params`
        (75). HDBSCAN: ``cluster_selection_epsilon`` in metres (clusters closer than this
        merge), default 0.
    min_samples : int, optional
        DBSCAN: weight within ``eps_m`` that makes a core point, default from
        :func:`suggest_dbscan_params`. HDBSCAN: smallest number of incidents in a cluster,
        default from :func:`suggest_hdbscan_params`.
    bin_m : float, default 10
        DBSCAN only: lattice cell in metres on which points are counted; 0 runs exact
        DBSCAN. At most half of ``eps_m``.
    weights : array-like, optional
        DBSCAN only: weight per point (harm, canisters); default 1 each.
    area_m2 : float, optional
        DBSCAN: study area for the default ``min_samples``; default the points' convex hull.
    max_sample : int, default 20000
        HDBSCAN only: it runs on a random subsample of this many points at most.
    rng : int, numpy.random.Generator or None, default 0
        Seed of the HDBSCAN subsample.

    Returns
    -------
    numpy.ndarray
        int64 labels, one per point.
    """
    x, y = _coords(x, y)
    if method not in METHODS:
        raise ValueError(f"method must be one of {', '.join(map(repr, METHODS))}; "
                         f"got {method!r}.")
    if eps_m is not None:
        _positive("eps_m", eps_m, allow_zero=method == "hdbscan")
    if min_samples is not None:
        _positive("min_samples", min_samples, integer=True)
    _positive("bin_m", bin_m, allow_zero=True)
    _positive("max_sample", max_sample, integer=True)
    w = _weights(weights, x.size)
    if method == "hdbscan":
        if w is not None:
            raise ValueError("weights apply to method='dbscan' only; got weights with "
                             "method='hdbscan'.")
        return _hdbscan(x, y, eps_m=eps_m or 0.0, min_size=min_samples, max_sample=max_sample,
                        rng=rng)
    if eps_m is None or min_samples is None:
        eps, ms = suggest_dbscan_params(x, y, area_m2=area_m2, eps_m=eps_m, weights=w)
        eps_m = eps if eps_m is None else eps_m
        min_samples = ms if min_samples is None else min_samples
    if bin_m > eps_m / 2:
        raise ValueError(f"bin_m must be 0 (exact) or at most half of eps_m ({eps_m / 2:g} m); "
                         f"got {bin_m!r}.")
    if x.size == 0:
        return np.zeros(0, dtype=np.int64)
    if bin_m > 0:
        ix, iy = np.floor(x / bin_m).astype(np.int64), np.floor(y / bin_m).astype(np.int64)
        ix, iy = ix - ix.min(), iy - iy.min()
        keys, inv, counts = np.unique(ix * (iy.max() + 1) + iy, return_inverse=True,
                                      return_counts=True)
        x0, y0 = np.floor(x.min() / bin_m), np.floor(y.min() / bin_m)
        centres = np.column_stack([(x0 + keys // (iy.max() + 1) + 0.5) * bin_m,
                                   (y0 + keys % (iy.max() + 1) + 0.5) * bin_m])
    else:
        centres, inv, counts = np.unique(np.column_stack([x, y]), axis=0, return_inverse=True,
                                         return_counts=True)
    inv = inv.ravel()
    mass = counts.astype(float) if w is None else np.bincount(inv, weights=w,
                                                              minlength=len(counts))
    labels = DBSCAN(eps=float(eps_m), min_samples=int(min_samples)).fit(
        centres, sample_weight=mass).labels_
    return _relabel(labels.astype(np.int64), counts.astype(float))[inv]


def _hdbscan(x, y, *, eps_m: float, min_size: int | None, max_sample: int, rng) -> np.ndarray:
    n = x.size
    if min_size is None:
        min_size = suggest_hdbscan_params(x, y)
    order = np.lexsort((y, x))  # canonical order: row order cannot change the sample
    if n > max_sample:
        pick = np.sort(np.random.default_rng(rng).choice(n, max_sample, replace=False))
        order = order[pick]
    m = order.size
    size = max(2, int(round(min_size * m / n))) if n else 2
    if m <= size:
        return np.full(n, -1, dtype=np.int64)
    pts = np.column_stack([x[order], y[order]])
    labels = HDBSCAN(min_cluster_size=size, min_samples=size, cluster_selection_epsilon=eps_m,
                     copy=True).fit(pts).labels_.astype(np.int64)
    # identical points (repeat addresses, police.uk map points) can get different labels
    # from HDBSCAN's tie-breaking: give each group its majority label (ties: smallest)
    new = np.r_[True, (np.diff(pts[:, 0]) != 0) | (np.diff(pts[:, 1]) != 0)]
    group = np.cumsum(new) - 1
    span = np.int64(labels.max() + 2)
    pair, count = np.unique(group * span + labels + 1, return_counts=True)
    g, lab_g = pair // span, pair % span - 1
    best = np.lexsort((lab_g, -count, g))
    best = best[np.r_[True, g[best][1:] != g[best][:-1]]]
    labels = lab_g[best][group]
    out = np.full(n, -1, dtype=np.int64)
    if m == n:
        out[order] = labels
    else:  # the rest join their nearest sampled point's cluster within its core distance
        tree = cKDTree(pts)
        core = tree.query(pts, k=size)[0][:, -1]
        dist, near = tree.query(np.column_stack([x, y]), k=1)
        out = np.where((labels[near] >= 0) & (dist <= core[near]), labels[near], -1)
        out[order] = labels
    relabelled = _relabel(out[np.lexsort((y, x))], np.ones(n))
    final = np.empty(n, dtype=np.int64)
    final[np.lexsort((y, x))] = relabelled
    return final


def street_name(text: str) -> str:
    """'On or near Candy Street' -> 'Candy Street'; 'by the bus stop, Brick Lane' ->
    'Brick Lane'; 'Flat 12, Example House, Cable Street' -> 'Cable Street'."""
    parts = [p.strip() for p in str(text).split(",")]
    parts = [p for p in parts if p and not _POSTCODE.match(p)]
    if not parts:
        return ""
    street = _NUMBER.sub("", _PREFIX.sub("", parts[-1])).strip()
    return " ".join(street.split())


def _modes(lab: np.ndarray, values, k: int, *, skip: tuple = ("",)) -> list:
    """Most common value per cluster (ties: the smallest); None where a cluster has none."""
    codes, uniq = pd.factorize(np.asarray(values), sort=True)
    if len(uniq) == 0:
        return [None] * k
    skipped = np.isin(np.asarray(uniq, dtype=object), np.asarray(skip, dtype=object))
    keep = (codes >= 0) & (lab >= 0)
    keep[keep] = ~skipped[codes[keep]]
    counts = np.bincount(lab[keep] * len(uniq) + codes[keep], minlength=k * len(uniq))
    counts = counts.reshape(k, len(uniq))
    best = counts.argmax(axis=1)
    return [uniq[b] if counts[i, b] else None for i, b in enumerate(best)]


def _empty() -> gpd.GeoDataFrame:
    dtypes = {"n": "int64", "harm": "float64", "area_km2": "float64",
              "density_per_km2": "float64", "repeat_locations": "int64",
              "repeat_share": "float64", "busiest_hour": "int64"}
    cols = {c: pd.Series(dtype=dtypes.get(c, "object")) for c in PLACE_COLUMNS[:-1]}
    return gpd.GeoDataFrame(cols, geometry=gpd.GeoSeries([], crs=WORKING_CRS))


def _place_ids(cx: np.ndarray, cy: np.ndarray, n: np.ndarray) -> list[str]:
    """'P' + hull centroid in hectometres ('P5341-1823'); b, c, ... on collision."""
    base = [f"P{int(np.floor(a / 100 + 0.5)):04d}-{int(np.floor(b / 100 + 0.5)):04d}"
            for a, b in zip(cx, cy, strict=True)]
    ids = list(base)
    seen: dict[str, int] = {}
    for i in sorted(range(len(base)), key=lambda i: (base[i], -n[i], cx[i], cy[i])):
        k = seen.get(base[i], 0)
        seen[base[i]] = k + 1
        if k:
            ids[i] = base[i] + (chr(ord("a") + k) if k < 26 else f"-{k + 1}")
    return ids


def find_places(incidents: pd.DataFrame, *, config: Config, method: str = "dbscan",
                buffer_m: float = 25.0, eps_m: float | None = None,
                min_samples: int | None = None, area_km2: float | None = None,
                names: dict[str, str] | None = None) -> gpd.GeoDataFrame:
    """Cluster incidents into places: one polygon per cluster with its statistics.

    Parameters
    ----------
    incidents : pandas.DataFrame
        Columns of :data:`hotspots.schema.INCIDENT_COLUMNS` (at least source, category,
        date, hour, x, y, location, location_key, ward_code, lsoa_code); ``x, y`` in
        EPSG:27700 metres. Not modified; row order does not matter.
    config : Config
        Categories with their labels and harm weights.
    method : {"dbscan", "hdbscan"}, default "dbscan"
    buffer_m : float, default 25
        The members' convex hull is buffered by this many metres (above 0, so a point or a
        line still gives a polygon).
    eps_m, min_samples : optional
        As in :func:`cluster_points`; default chosen by :func:`suggest_dbscan_params` (75 m,
        5 x the mean density) or :func:`suggest_hdbscan_params` (0.5% of the incidents).
    area_km2 : float, optional
        Study area for the default ``min_samples``; default the incidents' convex hull.
    names : dict of str to str, optional
        Area names by code (LSOA, ward) for labels of places without location text.

    Returns
    -------
    geopandas.GeoDataFrame
        EPSG:27700, columns :data:`hotspots.schema.PLACE_COLUMNS`, one row per cluster,
        sorted by ``n`` descending then ``place_id``: ``place_id`` ("P" + hull centroid in
        hectometres, stable for the same incidents), ``label`` (most common street in the
        location text, else "<LSOA>, <ward>"), ``n``, ``harm`` (sum of harm weights),
        ``area_km2``, ``density_per_km2``, ``repeat_locations`` (location keys with 2 or
        more incidents), ``repeat_share`` (share of incidents at those), ``main_categories``
        (top 3, "Drug dealing 45%, ..."), ``busiest_hour`` (0-23; -1 when no incident has a
        time of day), ``busiest_weekday`` (Monday-Sunday, police.uk rows left out as they
        are dated by month; "" when none), ``first_seen``, ``last_seen`` (YYYY-MM-DD),
        ``ward_code``, ``lsoa_code`` (the most common) and ``geometry``. Empty (same
        columns) when there is no cluster.
    """
    if isinstance(incidents, gpd.GeoDataFrame):
        check_projected(incidents, "incidents")
    if not isinstance(incidents, pd.DataFrame):
        raise ValueError(f"incidents must be a pandas DataFrame of INCIDENT_COLUMNS; got "
                         f"{type(incidents).__name__}.")
    missing = [c for c in _NEEDED if c not in incidents.columns]
    if missing:
        raise ValueError(f"incidents lacks the columns {missing}; pass incidents as ingest "
                         "makes them (hotspots.schema.INCIDENT_COLUMNS).")
    if method not in METHODS:
        raise ValueError(f"method must be one of {', '.join(map(repr, METHODS))}; "
                         f"got {method!r}.")
    _positive("buffer_m", buffer_m)
    if area_km2 is not None:
        _positive("area_km2", area_km2)
    cats = incidents["category"].astype(str).to_numpy(dtype=object)
    cat_codes, cat_uniq = pd.factorize(cats, sort=True)
    unknown = [c for c in cat_uniq if c not in config.categories]
    if unknown:
        raise ValueError(f"incidents has categories not in the configuration: {unknown[:5]}; "
                         f"add them under [categories] in {config.source or 'the config'}.")
    lab = cluster_points(incidents["x"].to_numpy(), incidents["y"].to_numpy(), method=method,
                         eps_m=eps_m, min_samples=min_samples,
                         area_m2=None if area_km2 is None else area_km2 * 1e6)
    return place_table(incidents, lab, config=config, buffer_m=buffer_m, names=names)


def place_table(incidents: pd.DataFrame, lab: np.ndarray, *, config: Config,
                buffer_m: float = 25.0, names: dict[str, str] | None = None,
                polygons: np.ndarray | None = None, ids: list[str] | None = None
                ) -> gpd.GeoDataFrame:
    """Statistics of groups of incidents as places (the columns of :func:`find_places`).

    ``lab`` gives each incident's group, 0..k-1 (-1: none). Clusters get a buffered hull
    and a street label; fixed units (LSOAs, grid cells) pass their ``polygons`` and ``ids``
    (k of each) and are labelled by area name and ward.
    """
    cats = incidents["category"].astype(str).to_numpy(dtype=object)
    cat_codes, cat_uniq = pd.factorize(cats, sort=True)
    lab = np.asarray(lab, dtype=np.int64)
    k = int(lab.max()) + 1 if lab.size else 0
    if k == 0:
        return _empty()
    x, y = incidents["x"].to_numpy(dtype=float), incidents["y"].to_numpy(dtype=float)
    n = np.bincount(lab[lab >= 0], minlength=k)
    in_cl = lab >= 0
    # harm and category shares from counts, so the sums do not depend on row order
    cat_n = np.bincount(lab[in_cl] * len(cat_uniq) + cat_codes[in_cl],
                        minlength=k * len(cat_uniq)).reshape(k, len(cat_uniq))
    harm = cat_n @ np.array([config.weight(c) for c in cat_uniq], dtype=float)
    labels_of = [config.label(c) for c in cat_uniq]
    main = []
    for i in range(k):
        top = sorted(np.flatnonzero(cat_n[i]), key=lambda j: (-cat_n[i, j], labels_of[j]))[:3]
        main.append(", ".join(f"{labels_of[j]} {round(100 * cat_n[i, j] / n[i])}%"
                              for j in top))
    # repeat locations: keys with 2 or more incidents among a place's members
    keys = incidents["location_key"].astype(str).to_numpy(dtype=object)
    key_codes, key_uniq = pd.factorize(keys)
    use = in_cl & (key_codes >= 0) & (keys != "")
    pair, pair_n = np.unique(lab[use] * np.int64(len(key_uniq)) + key_codes[use],
                             return_counts=True)
    rep = pair_n >= 2
    rep_loc = np.bincount(pair[rep] // len(key_uniq), minlength=k)
    rep_n = np.bincount(pair[rep] // len(key_uniq), weights=pair_n[rep], minlength=k)
    # time: hour of day where known; weekday from real dates only (not police.uk months)
    hour = incidents["hour"].to_numpy(dtype=np.int64)
    hour_lab = np.where(hour >= 0, lab, -1)
    hours = _modes(hour_lab, hour, k, skip=())
    date = incidents["date"].astype(str).to_numpy(dtype=object)
    d_codes, d_uniq = pd.factorize(date)
    stamp = pd.to_datetime(pd.Index(d_uniq), format="%Y-%m-%d", errors="coerce")
    weekday = np.where(stamp.isna(), -1, stamp.dayofweek).astype(np.int64)[d_codes]
    real_day = (incidents["source"].astype(str).to_numpy(dtype=object) != POLICE_UK_SOURCE)
    days = _modes(np.where(real_day & (weekday >= 0), lab, -1), weekday, k, skip=())
    # police.uk rows are dated by month: they count as "YYYY-MM", not as the 1st
    months = np.array([d[:7] for d in date], dtype=object)
    seen = np.where(real_day, date, months)
    # earliest and latest by their rank among the sorted values (integers group fast)
    s_codes, s_uniq = pd.factorize(seen, sort=True)
    span = pd.Series(s_codes[in_cl]).groupby(lab[in_cl]).agg(["min", "max"]).reindex(range(k))
    first, last = ([np.nan if pd.isna(c) else s_uniq[int(c)] for c in span[end]]
                   for end in ("min", "max"))
    wards = _modes(lab, incidents["ward_code"].astype(str).to_numpy(dtype=object), k)
    lsoas = _modes(lab, incidents["lsoa_code"].astype(str).to_numpy(dtype=object), k)
    # labels: the most common street named in the location text, in its commonest spelling
    loc_codes, loc_uniq = pd.factorize(incidents["location"].fillna("").astype(str))
    street_u = [street_name(t) for t in loc_uniq]
    streets = np.array(street_u + [""], dtype=object)[loc_codes]
    street_key = np.array([s.casefold() for s in street_u] + [""], dtype=object)[loc_codes]
    top_key = np.array([t or "" for t in _modes(lab, street_key, k)] + [""], dtype=object)
    spelling = _modes(np.where(in_cl & (street_key == top_key[lab]), lab, -1), streets, k)
    names = names or {}
    # polygons from members sorted by coordinates (identical whatever the row order)
    order = np.lexsort((y, x, lab))
    order = order[lab[order] >= 0]
    bounds = np.r_[0, np.cumsum(n)]
    fixed = polygons is not None
    if fixed:
        polys = np.asarray(polygons, dtype=object)[:k]
        ids = list(ids)[:k]
    else:
        hulls = [shapely.convex_hull(shapely.multipoints(np.column_stack(
            [x[order[bounds[i]:bounds[i + 1]]], y[order[bounds[i]:bounds[i + 1]]]])))
            for i in range(k)]
        cent = shapely.centroid(np.array(hulls, dtype=object))
        cx, cy = shapely.get_x(cent), shapely.get_y(cent)
        polys = shapely.buffer(np.array(hulls, dtype=object), float(buffer_m))
        ids = _place_ids(cx, cy, n)
    area = shapely.area(polys) / 1e6
    rows = []
    for i in range(k):
        if n[i] == 0:
            continue
        if fixed:
            parts = [names.get(ids[i], ids[i]) if ids[i] in names else ""] + [
                names.get(wards[i], wards[i] or "")]
            label = ", ".join(p for p in parts if p) or ids[i]
        elif spelling[i]:
            label = spelling[i]
        else:
            parts = [names.get(c, c) for c in (lsoas[i], wards[i]) if c]
            label = ", ".join(parts) or ids[i]
        rows.append({
            "place_id": ids[i], "label": label, "n": int(n[i]), "harm": float(harm[i]),
            "area_km2": float(area[i]), "density_per_km2": float(n[i] / area[i]),
            "repeat_locations": int(rep_loc[i]), "repeat_share": float(rep_n[i] / n[i]),
            "main_categories": main[i],
            "busiest_hour": -1 if hours[i] is None else int(hours[i]),
            "busiest_weekday": "" if days[i] is None else WEEKDAYS[int(days[i])],
            "first_seen": first[i], "last_seen": last[i], "ward_code": wards[i] or "",
            "lsoa_code": lsoas[i] or "", "geometry": polys[i]})
    out = gpd.GeoDataFrame(rows, columns=list(PLACE_COLUMNS), geometry="geometry",
                           crs=WORKING_CRS)
    out = out.sort_values(["n", "place_id"], ascending=[False, True], ignore_index=True)
    return out.astype({"n": "int64", "repeat_locations": "int64", "busiest_hour": "int64"})
