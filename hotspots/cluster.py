"""Places: density clusters of incidents (:mod:`hotspots.pointclusters`, re-exported
here) turned into named places with their statistics (:func:`find_places`,
:func:`place_table`).

Everything is in British National Grid metres (EPSG:27700).
"""

from __future__ import annotations

import logging
import re

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely

from .config import Config
from .pointclusters import (  # noqa: F401
    DEFAULT_EPS_M,
    DENSITY_FACTOR,
    HDBSCAN_FLOOR,
    HDBSCAN_MAX_SAMPLE,
    HDBSCAN_SHARE,
    METHODS,
    MIN_SAMPLES_FLOOR,
    cluster_points,
    suggest_dbscan_params,
    suggest_hdbscan_params,
)
from .schema import PLACE_COLUMNS, POLICE_UK_SOURCE, WORKING_CRS, ClusterMethod
from .validate import check_option, check_positive, check_projected

log = logging.getLogger(__name__)

WEEKDAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
#: The incident columns places are made of (:func:`find_places`).
PLACE_INPUT_COLUMNS = ("source", "category", "date", "hour", "x", "y", "location", "location_key",
                       "ward_code", "lsoa_code")
_PREFIX = re.compile(r"^(?:on or near|near to|near|outside of|outside|opposite|o/s|by|"
                     r"behind|rear of|junction of|junction with|corner of)\s+(?:the\s+)?", re.I)
_NUMBER = re.compile(r"^(?:(?:flat|unit|apartment)\s+)?\d+[a-z]?(?:\s*-\s*\d+[a-z]?)?,?\s+",
                     re.I)
_POSTCODE = re.compile(r"^(?:london\s*)?[a-z]{1,2}\d[a-z\d]?(?:\s*\d[a-z]{2})?$|^london$", re.I)


def street_name(text: str) -> str:
    """'On or near Candy Street' -> 'Candy Street'; 'by the bus stop, Brick Lane' ->
    'Brick Lane'; 'Flat 12, Example House, Cable Street' -> 'Cable Street'.

    Examples
    --------
    >>> street_name("On or near Candy Street")
    'Candy Street'
    >>> street_name("Flat 12, Example House, Cable Street")
    'Cable Street'
    """
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
    # the (cluster, value) pairs that occur, counted (not a table of every cluster by
    # every value: London's 4,994 LSOAs by their streets took 0.8 s)
    pairs, counts = np.unique(lab[keep].astype(np.int64) * len(uniq) + codes[keep],
                              return_counts=True)
    group, code = pairs // len(uniq), pairs % len(uniq)
    order = np.lexsort((code, -counts, group))  # each cluster's most common value first
    first = order[np.r_[True, group[order][1:] != group[order][:-1]]] if len(order) else order
    out: list = [None] * k
    for g, c in zip(group[first].tolist(), code[first].tolist(), strict=True):
        out[g] = uniq[c]
    return out


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


def find_places(incidents: pd.DataFrame, *, config: Config, method: ClusterMethod = "dbscan",
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

    Examples
    --------
    >>> from hotspots.config import load_config
    >>> gen = np.random.default_rng(0)
    >>> xy = np.r_[gen.normal(0, 15, (60, 2)), gen.uniform(-900, 900, (40, 2))] + 531_000
    >>> inc = pd.DataFrame({"source": "synthetic-asb", "category": "asb_nuisance",
    ...     "date": "2024-05-01", "hour": 20, "x": xy[:, 0], "y": xy[:, 1],
    ...     "location": "Example Street", "location_key": "example street", "caller_key": "",
    ...     "ward_code": "", "lsoa_code": ""})
    >>> places = find_places(inc, config=load_config(), eps_m=50, min_samples=10)
    >>> len(places), int(places["n"].iloc[0]), places["label"].iloc[0]
    (1, 60, 'Example Street')
    """
    if isinstance(incidents, gpd.GeoDataFrame):
        check_projected(incidents, "incidents")
    if not isinstance(incidents, pd.DataFrame):
        raise ValueError(f"incidents must be a pandas DataFrame of INCIDENT_COLUMNS; got "
                         f"{type(incidents).__name__}.")
    missing = [c for c in PLACE_INPUT_COLUMNS if c not in incidents.columns]
    if missing:
        raise ValueError(f"incidents lacks the columns {missing}; pass incidents as ingest "
                         "makes them (hotspots.schema.INCIDENT_COLUMNS).")
    check_option("method", method, METHODS)
    check_positive("buffer_m", buffer_m)
    if area_km2 is not None:
        check_positive("area_km2", area_km2)
    cats = incidents["category"].astype(str).to_numpy(dtype=object)
    cat_codes, cat_uniq = pd.factorize(cats, sort=True)
    unknown = [c for c in cat_uniq if c not in config.categories]
    if unknown:
        raise ValueError(f"incidents has categories not in the configuration: {unknown[:5]}; "
                         f"add them under [categories] in {config.source or 'the config'}.")
    lab = cluster_points(incidents["x"].to_numpy(), incidents["y"].to_numpy(), method=method,
                         eps_m=eps_m, min_samples=min_samples,
                         area_m2=None if area_km2 is None else area_km2 * 1e6)
    return place_table(incidents, lab, config=config, buffer_m=buffer_m, names=names,
                       categories=(cat_codes, cat_uniq))


def place_table(incidents: pd.DataFrame, lab: np.ndarray, *, config: Config,
                buffer_m: float = 25.0, names: dict[str, str] | None = None,
                polygons: np.ndarray | None = None, ids: list[str] | None = None,
                categories: tuple[np.ndarray, np.ndarray] | None = None
                ) -> gpd.GeoDataFrame:
    """Statistics of groups of incidents as places (the columns of :func:`find_places`).

    ``lab`` gives each incident's group, 0..k-1 (-1: none). Clusters get a buffered hull
    and a street label; fixed units (LSOAs, grid cells) pass their ``polygons`` and ``ids``
    (k of each) and are labelled by area name and ward. ``categories``: the rows'
    ``pd.factorize(category, sort=True)`` when the caller has it (a second at 2M rows).

    Examples
    --------
    >>> from hotspots.config import load_config
    >>> inc = pd.DataFrame({"source": "synthetic-asb", "category": "asb_nuisance",
    ...     "date": "2024-05-01", "hour": 20, "x": [0.0, 10, 20, 500], "y": [0.0, 5, 10, 500],
    ...     "location": "Example Street", "location_key": "example street", "caller_key": "",
    ...     "ward_code": "", "lsoa_code": ""})
    >>> table = place_table(inc, np.array([0, 0, 0, -1]), config=load_config())
    >>> table[["n", "label"]].values.tolist()
    [[3, 'Example Street']]
    """
    # the categories of all the rows: harm sums over the same categories whatever is grouped
    cat_codes, cat_uniq = categories or pd.factorize(
        incidents["category"].astype(str).to_numpy(dtype=object), sort=True)
    lab = np.asarray(lab, dtype=np.int64)
    k = int(lab.max()) + 1 if lab.size else 0
    if k == 0:
        return _empty()
    # every figure is of the grouped rows: the rest are left out first (most of a year's
    # incidents are in no place; ties and orders do not depend on the rows left out)
    members = np.flatnonzero(lab >= 0)
    if len(members) < len(lab):
        incidents, lab, cat_codes = incidents.iloc[members], lab[members], cat_codes[members]
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
    fixed = polygons is not None
    if fixed:
        polys = np.asarray(polygons, dtype=object)[:k]
        ids = list(ids or [])[:k]
    else:
        # every place's points in one call (one call a place: 0.2 s for London's 2,500)
        points = np.empty(k, dtype=object)
        points[:] = shapely.MultiPoint()
        hulls = shapely.convex_hull(shapely.multipoints(
            np.column_stack([x[order], y[order]]), indices=lab[order], out=points))
        cent = shapely.centroid(hulls)
        cx, cy = shapely.get_x(cent), shapely.get_y(cent)
        polys = shapely.buffer(hulls, float(buffer_m))
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
