"""Predictive accuracy of hotspot maps, rolling-origin backtests, and displacement.

Every hotspot method here produces a **score per cell** of one common grid (from
:func:`hotspots.grid.make_grid`, EPSG:27700 metres). A map at coverage ``c`` is the set
of top-scoring cells whose area reaches ``c`` of the study area ``A`` (the grid's total
clipped area):

* cells are ranked by score, highest first; equal scores are broken by position in the
  arrays (the grid's row order, i.e. ``cell_id`` for a grid from ``make_grid``);
* cells are taken **whole**: a cell is selected while the area selected before it is
  below ``c * A``, so the covered area ``a`` is at least ``c * A`` and less than
  ``c * A`` plus one cell. Metrics use the actual ``a``, reported as ``covered_share``.

Metrics (see :func:`metric_definitions`, which the tables carry in ``attrs``): hit rate
``n / N``; PAI ``(n / N) / (a / A)`` (Chainey, Tompson and Uhlig 2008); PEI, the PAI over
the best PAI possible at the same coverage (cells ranked by their test counts); RRI
(Levine 2008), the PAI of the same cells in the test period over their PAI in the input
(training) period. ``N`` counts the test incidents that fall in the grid.

Displacement: the Weighted Displacement Quotient of Bowers and Johnson (2003), see
:func:`wdq` and :func:`intervention_effect`.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from types import MappingProxyType
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import scipy.sparse as sp
import shapely
from numpy.typing import ArrayLike
from scipy.spatial import cKDTree

from .cluster import find_places
from .config import Config
from .density import kde, sample
from .gistar import gistar, grid_neighbours
from .grid import cell_index
from .trends import poisson_change_test

#: Coverages the metrics are reported at: 1%, 2%, 5% and 10% of the study area.
COVERAGES: tuple[float, ...] = (0.01, 0.02, 0.05, 0.10)

#: The forecast methods :func:`forecast_scores` knows.
METHODS: tuple[str, ...] = ("naive", "counts", "kde", "gistar", "places", "prospective")

#: Methods a backtest compares by default: label -> options of :func:`forecast_scores`.
DEFAULT_METHODS: Mapping[str, Mapping[str, Any]] = MappingProxyType({
    "naive": MappingProxyType({"method": "naive"}),
    "counts_3m": MappingProxyType({"method": "counts", "months": 3}),
    "counts_all": MappingProxyType({"method": "counts"}),
    "kde_100m": MappingProxyType({"method": "kde", "bandwidth_m": 100.0}),
    "kde_200m": MappingProxyType({"method": "kde", "bandwidth_m": 200.0}),
    "kde_400m": MappingProxyType({"method": "kde", "bandwidth_m": 400.0}),
    "gistar": MappingProxyType({"method": "gistar"}),
    "places": MappingProxyType({"method": "places"}),
    "prospective": MappingProxyType({"method": "prospective"}),
})

#: Columns of :func:`evaluate_scores`.
SCORE_COLUMNS: tuple[str, ...] = (
    "coverage", "covered_share", "cells", "n_test", "total_test", "hit_rate", "pai", "pei",
    "pai_input", "rri",
)
#: Columns of :func:`backtest`.
BACKTEST_COLUMNS: tuple[str, ...] = ("method", "period", "n_train", *SCORE_COLUMNS)

_DEFINITIONS = """\
Coverage c: the top-scoring grid cells (ties broken by cell_id), taken whole until their
area a reaches c of the study area A (the grid's clipped area); covered_share = a / A.
N: test-period incidents inside the grid; n: those in the selected cells.
Hit rate = n / N.
PAI (Predictive Accuracy Index, Chainey et al. 2008) = (n / N) / (a / A); 1 = no better
than chance, higher is better.
PEI (Predictive Efficiency Index) = PAI / PAI*, where PAI* is the PAI of the best map at
the same coverage (cells ranked by their test-period counts); 1 = perfect.
RRI (Recapture Rate Index, Levine 2008) = PAI in the test period / PAI of the same cells
in the input (training) period; near 1 = the hotspots held up, below 1 = they decayed.
Undefined values (no incidents) are NaN."""


def metric_definitions() -> str:
    """The definitions of coverage, hit rate, PAI, PEI and RRI as printed beside tables."""
    return _DEFINITIONS


# --------------------------------------------------------------------------- checks


def _vector(name: str, values: ArrayLike, n: int | None = None) -> np.ndarray:
    a = np.asarray(values, dtype=float)
    if a.ndim != 1:
        raise ValueError(f"{name} must be one value per cell (1-D); got shape {a.shape}.")
    if n is not None and len(a) != n:
        raise ValueError(f"{name} must have one value per cell ({n}); got {len(a)}.")
    if not np.isfinite(a).all():
        bad = int(np.argmin(np.isfinite(a)))
        raise ValueError(f"{name} must be finite; {int((~np.isfinite(a)).sum())} are not, the "
                         f"first at position {bad} ({a[bad]}).")
    return a


def _counts(name: str, values: ArrayLike, n: int) -> np.ndarray:
    a = _vector(name, values, n)
    if (a < 0).any():
        bad = int(np.argmax(a < 0))
        raise ValueError(f"{name} must be incident counts >= 0; position {bad} is {a[bad]}.")
    return a


def _areas(cell_area: ArrayLike, n: int) -> np.ndarray:
    a = np.asarray(cell_area, dtype=float)
    if a.ndim == 0:
        a = np.full(n, float(a))
    a = _vector("cell_area", a, n)
    if (a <= 0).any():
        bad = int(np.argmax(a <= 0))
        raise ValueError(f"cell_area must be > 0 for every cell (any unit, e.g. km²); position "
                         f"{bad} is {a[bad]}.")
    return a


def _check_coverage(coverage: float) -> float:
    ok = isinstance(coverage, int | float | np.number) and not isinstance(coverage, bool)
    if not ok or not np.isfinite(coverage) or not 0 < coverage <= 1:
        raise ValueError(f"coverage must be a share of the study area in (0, 1], e.g. 0.05 for "
                         f"5%; got {coverage!r}.")
    return float(coverage)


def _prepare(scores, test_counts, cell_area):
    s = _vector("scores", scores)
    if len(s) == 0:
        raise ValueError("scores must hold at least one cell; got 0.")
    return s, _counts("test_counts", test_counts, len(s)), _areas(cell_area, len(s))


# --------------------------------------------------------------------------- metrics


def select_cells(scores: ArrayLike, cell_area: ArrayLike, *, coverage: float) -> np.ndarray:
    """The cells of a hotspot map at a coverage: top scores, whole cells.

    Parameters
    ----------
    scores : array-like of float, one per cell, finite; higher = hotter.
    cell_area : array-like of float (or one number for equal cells), > 0, any unit.
    coverage : share of the study area in (0, 1], e.g. 0.05.

    Returns
    -------
    numpy.ndarray of bool
        True for selected cells. Cells are ranked by score descending, ties by position;
        a cell is selected while the area selected before it is below ``coverage`` times
        the total, so the selected area is at least that and less than that plus one cell.
    """
    s = _vector("scores", scores)
    area = _areas(cell_area, len(s))
    c = _check_coverage(coverage)
    order = np.lexsort((np.arange(len(s)), -s))
    before = np.cumsum(area[order]) - area[order]
    take = before < c * area.sum() * (1 - 1e-12)
    out = np.zeros(len(s), dtype=bool)
    out[order[take]] = True
    return out


def _pai_of(sel: np.ndarray, counts: np.ndarray, area: np.ndarray) -> float:
    total = counts.sum()
    if total == 0:
        return float("nan")
    return float((counts[sel].sum() / total) / (area[sel].sum() / area.sum()))


def hit_rate(scores: ArrayLike, test_counts: ArrayLike, cell_area: ArrayLike, *,
             coverage: float) -> float:
    """Share of the test incidents in the map's cells at a coverage, ``n / N``.

    Parameters
    ----------
    scores : array-like of float, one per cell; higher = hotter (see :func:`select_cells`).
    test_counts : array-like, test-period incidents per cell (>= 0).
    cell_area : array-like or number, area of each cell (> 0, any unit).
    coverage : share of the study area in (0, 1].

    Returns
    -------
    float in [0, 1]; NaN when there is no test incident.
    """
    s, counts, area = _prepare(scores, test_counts, cell_area)
    sel = select_cells(s, area, coverage=coverage)
    total = counts.sum()
    return float(counts[sel].sum() / total) if total > 0 else float("nan")


def pai(scores: ArrayLike, test_counts: ArrayLike, cell_area: ArrayLike, *,
        coverage: float) -> float:
    """Predictive Accuracy Index ``(n / N) / (a / A)`` at a coverage.

    Parameters as :func:`hit_rate`. ``a`` is the area of the selected (whole) cells and
    ``A`` the total area of all cells.

    Returns
    -------
    float >= 0; 1 is what a random map scores on average; NaN when there is no test
    incident.
    """
    s, counts, area = _prepare(scores, test_counts, cell_area)
    return _pai_of(select_cells(s, area, coverage=coverage), counts, area)


def pei(scores: ArrayLike, test_counts: ArrayLike, cell_area: ArrayLike, *,
        coverage: float) -> float:
    """Predictive Efficiency Index: PAI over the best PAI possible at the same coverage.

    The best map ranks cells by their test counts (ties by position) and takes whole
    cells by the same rule. Parameters as :func:`hit_rate`.

    Returns
    -------
    float; 1 for a perfect forecast (e.g. ``scores = test_counts``), 0 when no test
    incident falls in the map; NaN when there is no test incident. With cells of unequal
    area (clipped at the boundary) it can exceed 1 by the difference in covered area.
    """
    s, counts, area = _prepare(scores, test_counts, cell_area)
    best = _pai_of(select_cells(counts, area, coverage=coverage), counts, area)
    if not best > 0:
        return float("nan")
    return _pai_of(select_cells(s, area, coverage=coverage), counts, area) / best


def rri(pai_test: float, pai_input: float) -> float:
    """Recapture Rate Index (Levine 2008): PAI in the test period over PAI in the input.

    Parameters
    ----------
    pai_test : PAI of the map's cells on the test period's incidents, >= 0.
    pai_input : PAI of the same cells on the input (training) period's incidents, > 0.

    Returns
    -------
    float; 1 = the hotspots captured the same concentration in both periods, < 1 = they
    decayed, > 1 = they intensified.
    """
    for name, value in (("pai_test", pai_test), ("pai_input", pai_input)):
        if not isinstance(value, int | float | np.number) or not np.isfinite(value):
            raise ValueError(f"{name} must be a finite PAI >= 0; got {value!r}.")
    if pai_test < 0:
        raise ValueError(f"pai_test must be a finite PAI >= 0; got {pai_test!r}.")
    if pai_input <= 0:
        raise ValueError(f"pai_input must be a PAI > 0 (the input period had incidents in the "
                         f"map); got {pai_input!r}.")
    return float(pai_test) / float(pai_input)


def evaluate_scores(scores: ArrayLike, train_counts: ArrayLike, test_counts: ArrayLike,
                    cell_area: ArrayLike, *,
                    coverages: Sequence[float] = COVERAGES) -> pd.DataFrame:
    """Hit rate, PAI, PEI and RRI of one map at several coverages.

    Parameters
    ----------
    scores : array-like of float, one per cell; higher = hotter.
    train_counts : incidents per cell in the input (training) period, for the RRI.
    test_counts : incidents per cell in the test period.
    cell_area : area of each cell (> 0, any unit) or one number for equal cells.
    coverages : shares of the study area, default (0.01, 0.02, 0.05, 0.10).

    Returns
    -------
    pandas.DataFrame
        One row per coverage, columns :data:`SCORE_COLUMNS`: ``coverage``,
        ``covered_share`` (a / A actually covered), ``cells`` (selected), ``n_test`` (n),
        ``total_test`` (N), ``hit_rate``, ``pai``, ``pei``, ``pai_input`` (PAI of the same
        cells on the training counts) and ``rri`` (NaN when ``pai_input`` is 0 or NaN).
        ``attrs["definitions"]`` holds :func:`metric_definitions`.
    """
    s, test, area = _prepare(scores, test_counts, cell_area)
    train = _counts("train_counts", train_counts, len(s))
    covs = [_check_coverage(c) for c in coverages]
    rows = []
    for c in covs:
        sel = select_cells(s, area, coverage=c)
        best = _pai_of(select_cells(test, area, coverage=c), test, area)
        p = _pai_of(sel, test, area)
        p_in = _pai_of(sel, train, area)
        total = test.sum()
        rows.append({
            "coverage": c, "covered_share": float(area[sel].sum() / area.sum()),
            "cells": int(sel.sum()), "n_test": int(test[sel].sum()), "total_test": int(total),
            "hit_rate": float(test[sel].sum() / total) if total > 0 else float("nan"),
            "pai": p, "pei": p / best if best > 0 else float("nan"), "pai_input": p_in,
            "rri": p / p_in if p_in > 0 and np.isfinite(p) else float("nan"),
        })
    out = pd.DataFrame(rows, columns=list(SCORE_COLUMNS))
    out.attrs["definitions"] = metric_definitions()
    return out


# --------------------------------------------------------------------------- forecasts


def _months(periods: pd.Series | Sequence[str], name: str = "period") -> np.ndarray:
    """``YYYY-MM`` strings as month numbers (year * 12 + month - 1)."""
    text = pd.Series(periods, dtype=object).astype(str)
    ok = text.str.fullmatch(r"\d{4}-(0[1-9]|1[0-2])")
    if not ok.all():
        bad = text[~ok].iloc[0]
        raise ValueError(f"{name} must be months 'YYYY-MM'; got {bad!r}.")
    return (text.str[:4].astype(int) * 12 + text.str[5:7].astype(int) - 1).to_numpy()


def _month_text(m: int) -> str:
    return f"{m // 12:04d}-{m % 12 + 1:02d}"


def _positions(grid: gpd.GeoDataFrame, x, y) -> np.ndarray:
    """Row position in ``grid`` of each point's cell, -1 when in none."""
    idx = cell_index(grid, x, y)
    ids = grid["cell_id"].to_numpy(dtype=np.int64)
    lookup = np.full(int(ids.max()) + 1, -1, dtype=np.int64)
    lookup[ids] = np.arange(len(grid))
    pos = np.full(len(idx), -1, dtype=np.int64)
    pos[idx >= 0] = lookup[idx[idx >= 0]]
    return pos


def _bincount(pos: np.ndarray, n: int) -> np.ndarray:
    return np.bincount(pos[pos >= 0], minlength=n).astype(float)


def _prospective(pos: np.ndarray, ago: np.ndarray, grid: gpd.GeoDataFrame, *,
                 distance_m: float, time_band_months: int) -> np.ndarray:
    s = float(grid.attrs.get("cell_size_m", 100.0))
    keep = (pos >= 0) & (ago >= 0) & (ago < time_band_months)
    n = len(grid)
    # incidents per cell, each weighted 1 / (1 + months ago)
    recent = np.bincount(pos[keep], weights=1.0 / (1.0 + ago[keep]), minlength=n)
    xy = np.column_stack([grid["x"].to_numpy(float), grid["y"].to_numpy(float)])
    pairs = cKDTree(xy).query_pairs(distance_m * (1 + 1e-9), output_type="ndarray")
    i, j = pairs[:, 0], pairs[:, 1]
    d = np.hypot(xy[i, 0] - xy[j, 0], xy[i, 1] - xy[j, 1]) / s
    rows = np.concatenate([i, j, np.arange(n)])
    cols = np.concatenate([j, i, np.arange(n)])
    vals = np.concatenate([1.0 / (1.0 + d), 1.0 / (1.0 + d), np.ones(n)])
    w = sp.coo_matrix((vals, (rows, cols)), shape=(n, n)).tocsr()
    return w @ recent


def _places(train: pd.DataFrame, grid: gpd.GeoDataFrame, *, config: Config | None,
            area_km2: float, eps_m: float | None, min_samples: int | None) -> np.ndarray:
    if config is None:
        raise ValueError("config is required for method='places' (find_places needs the "
                         "categories); pass config=load_config() or the study area's config.")
    scores = np.zeros(len(grid))
    if len(train) < 2:
        return scores
    places = find_places(train, config=config, area_km2=area_km2, eps_m=eps_m,
                         min_samples=min_samples)
    if len(places) == 0:
        return scores
    hit_place, hit_cell = shapely.STRtree(np.asarray(grid.geometry.values)).query(
        np.asarray(places.geometry.values), predicate="intersects")
    np.maximum.at(scores, hit_cell, places["density_per_km2"].to_numpy(float)[hit_place])
    return scores


def forecast_scores(train: pd.DataFrame, grid: gpd.GeoDataFrame, *, method: str, period: str,
                    months: int | None = None, bandwidth_m: float = 200.0,
                    distance_m: float = 400.0, time_band_months: int = 2,
                    config: Config | None = None, area=None,
                    neighbours: sp.csr_matrix | None = None, eps_m: float | None = None,
                    min_samples: int | None = None) -> np.ndarray:
    """Score every cell of a grid for the month ``period`` from earlier incidents.

    Parameters
    ----------
    train : pandas.DataFrame
        Incidents with ``period`` (``YYYY-MM``) and ``x, y`` (EPSG:27700 metres), plus the
        columns :func:`hotspots.cluster.find_places` needs for ``method="places"``. Rows
        of ``period`` or later are ignored (no peeking). Not modified.
    grid : from :func:`hotspots.grid.make_grid` (square cells for ``prospective``).
    method : one of :data:`METHODS`:

        * ``"naive"``: counts of the month before ``period`` (the last-period baseline);
        * ``"counts"``: counts over the last ``months`` months (default all of ``train``);
        * ``"kde"``: kernel density (quartic, ``bandwidth_m``) of the last ``months``
          months' incidents, averaged over a 4 x 4 lattice of points in each cell;
        * ``"gistar"``: Gi* z-score of the cell counts over the last ``months`` months
          (queen neighbours, or ``neighbours``); hot cells first, 0 when all counts equal;
        * ``"places"``: DBSCAN places (:func:`hotspots.cluster.find_places`) of the last
          ``months`` months; a cell meeting a place scores the place's density (per km²,
          the densest when several), other cells 0; needs ``config``;
        * ``"prospective"``: Bowers, Johnson and Pease (2004) prospective hotspotting.
          Each incident ``m`` months before the forecast month's previous month (``m = 0``
          for the latest training month) adds ``1 / (1 + d) * 1 / (1 + m)`` to every cell
          whose centre is within ``distance_m`` of its cell's centre, ``d`` being that
          distance in cell sizes (0 for its own cell), if ``m < time_band_months``. The
          original used weeks and 50 m cells; police.uk dates by month, so months are the
          time unit here.

    period : the month forecast, ``YYYY-MM``.
    months : training months used (the latest ones); default all. Not used by ``naive``
        and ``prospective``.
    bandwidth_m : KDE bandwidth, metres, default 200.
    distance_m, time_band_months : prospective bandwidths, default 400 m and 2 months.
    config : study-area configuration, required by ``places``.
    area : study area for ``kde``; default the union of the grid's cells.
    neighbours : Gi* neighbours of the grid, default ``grid_neighbours(grid)``.
    eps_m, min_samples : DBSCAN options for ``places``, default chosen by the clusterer.

    Returns
    -------
    numpy.ndarray of float, one finite score per grid row; higher = hotter.
    """
    if method not in METHODS:
        raise ValueError(f"method must be one of {', '.join(map(repr, METHODS))}; "
                         f"got {method!r}.")
    if months is not None and (isinstance(months, bool) or not isinstance(months, int | np.integer)
                               or months < 1):
        raise ValueError(f"months must be a whole number of months >= 1 or None; got {months!r}.")
    if (isinstance(time_band_months, bool) or not isinstance(time_band_months, int | np.integer)
            or time_band_months < 1):
        raise ValueError(f"time_band_months must be a whole number >= 1; got "
                         f"{time_band_months!r}.")
    for name, value in (("bandwidth_m", bandwidth_m), ("distance_m", distance_m)):
        if not isinstance(value, int | float | np.number) or not value > 0:
            raise ValueError(f"{name} must be a distance in metres > 0; got {value!r}.")
    t = int(_months([period])[0])
    m = _months(train["period"], "train['period']") if len(train) else np.zeros(0, int)
    ago = t - 1 - m  # 0 for the month before period
    use = ago >= 0
    if months is not None:
        use &= ago < months
    n = len(grid)
    if method == "naive":
        sub = train.loc[ago == 0]
        return _bincount(_positions(grid, sub["x"], sub["y"]), n)
    if method == "prospective":
        pos = _positions(grid, train["x"], train["y"])
        return _prospective(pos, ago, grid, distance_m=float(distance_m),
                            time_band_months=int(time_band_months))
    sub = train.loc[use]
    if method == "counts":
        return _bincount(_positions(grid, sub["x"], sub["y"]), n)
    if method == "gistar":
        counts = _bincount(_positions(grid, sub["x"], sub["y"]), n)
        if n < 3 or np.all(counts == counts[0]):
            return np.zeros(n)
        w = neighbours if neighbours is not None else grid_neighbours(grid)
        return gistar(counts, w, fdr=False)["gistar_z"].to_numpy(float)
    if area is None:
        area = shapely.union_all(np.asarray(grid.geometry.values))
    if method == "places":
        return _places(sub, grid, config=config, area_km2=shapely.area(area) / 1e6,
                       eps_m=eps_m, min_samples=min_samples)
    # kde
    if len(sub) == 0:
        return np.zeros(n)
    s = float(grid.attrs.get("cell_size_m", 100.0))
    raster = kde(sub["x"].to_numpy(float), sub["y"].to_numpy(float), area=area,
                 bandwidth_m=float(bandwidth_m), cell_size_m=min(s / 4, float(bandwidth_m) / 3))
    offs = (np.arange(4) + 0.5) / 4 * s - s / 2
    dx, dy = np.meshgrid(offs, offs)
    gx = grid["x"].to_numpy(float)[:, None] + dx.ravel()[None, :]
    gy = grid["y"].to_numpy(float)[:, None] + dy.ravel()[None, :]
    vals = sample(raster, gx.ravel(), gy.ravel()).reshape(n, -1)
    return np.nan_to_num(vals, nan=0.0).mean(axis=1)


# --------------------------------------------------------------------------- backtest


def backtest(incidents: pd.DataFrame, grid: gpd.GeoDataFrame, *, periods: Sequence[str],
             methods: Mapping[str, Mapping[str, Any]] | None = None, window: int = 12,
             coverages: Sequence[float] = COVERAGES,
             config: Config | None = None) -> pd.DataFrame:
    """Rolling-origin backtest: forecast each test month from the months before it.

    For every test month ``t`` in ``periods`` each method scores the grid from the
    incidents of the ``window`` months before ``t`` (fewer at the start of the data), and
    the map is scored on ``t``'s incidents at each coverage (:func:`evaluate_scores`). The
    RRI's input period is that training window, for every method.

    Parameters
    ----------
    incidents : pandas.DataFrame
        Incidents with ``period`` (``YYYY-MM``), ``x, y`` (EPSG:27700 metres) and, for
        ``places``, the columns of :data:`hotspots.schema.INCIDENT_COLUMNS`. Not modified.
    grid : from :func:`hotspots.grid.make_grid`; the study area ``A`` is its clipped area.
    periods : test months, ``YYYY-MM``.
    methods : label -> options of :func:`forecast_scores` (at least ``method``); default
        :data:`DEFAULT_METHODS` (naive, counts over 3 months and the whole window, KDE at
        100, 200 and 400 m, Gi*, places, prospective). ``places`` needs ``config``.
    window : training months before each test month, default 12.
    coverages : default (0.01, 0.02, 0.05, 0.10).
    config : study-area configuration for ``places``; methods needing it are skipped
        (with no rows) when it is None.

    Returns
    -------
    pandas.DataFrame
        One row per method, test month and coverage, columns :data:`BACKTEST_COLUMNS`
        (``method``, ``period``, ``n_train``, then those of :func:`evaluate_scores`);
        ``attrs["definitions"]`` holds :func:`metric_definitions`. Summarise it with
        :func:`backtest_summary` and :func:`best_method`.
    """
    if isinstance(window, bool) or not isinstance(window, int | np.integer) or window < 1:
        raise ValueError(f"window must be a whole number of months >= 1; got {window!r}.")
    if isinstance(periods, str) or len(periods) == 0:
        raise ValueError(f"periods must be a non-empty list of months 'YYYY-MM'; got "
                         f"{periods!r}.")
    methods = DEFAULT_METHODS if methods is None else methods
    for label, opts in methods.items():
        if "method" not in opts or opts["method"] not in METHODS:
            raise ValueError(f"methods[{label!r}] must name a method, one of "
                             f"{', '.join(map(repr, METHODS))}; got {dict(opts)!r}.")
    covs = [_check_coverage(c) for c in coverages]
    tests = _months(list(periods), "periods")
    month = _months(incidents["period"], "incidents['period']")
    pos = _positions(grid, incidents["x"], incidents["y"])
    n = len(grid)
    area_km2 = grid["area_km2"].to_numpy(float)
    union = shapely.union_all(np.asarray(grid.geometry.values))
    w = grid_neighbours(grid)
    frames = []
    for t in tests:
        in_train = (month < t) & (month >= t - window)
        train = incidents.loc[in_train]
        train_counts = _bincount(pos[in_train], n)
        test_counts = _bincount(pos[month == t], n)
        for label, opts in methods.items():
            opts = dict(opts)
            kind = opts.pop("method")
            if kind == "places" and config is None:
                continue
            scores = forecast_scores(train, grid, method=kind, period=_month_text(int(t)),
                                     config=config, area=union, neighbours=w, **opts)
            ev = evaluate_scores(scores, train_counts, test_counts, area_km2, coverages=covs)
            ev.insert(0, "n_train", int(in_train.sum()))
            ev.insert(0, "period", _month_text(int(t)))
            ev.insert(0, "method", label)
            frames.append(ev)
    out = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(
        columns=list(BACKTEST_COLUMNS))
    out.attrs["definitions"] = metric_definitions()
    return out[list(BACKTEST_COLUMNS)]


def backtest_summary(table: pd.DataFrame) -> pd.DataFrame:
    """Mean hit rate, PAI, PEI and RRI per method and coverage over the test months.

    Parameters
    ----------
    table : from :func:`backtest`.

    Returns
    -------
    pandas.DataFrame
        Columns ``method, coverage, periods`` (test months with a defined PAI),
        ``hit_rate, pai, pei, rri`` (means over those months, NaN ignored), sorted by
        coverage then PAI descending, then method; ``attrs["definitions"]`` as
        :func:`metric_definitions`.
    """
    g = table.groupby(["method", "coverage"], sort=False)
    out = g[["hit_rate", "pai", "pei", "rri"]].mean().reset_index()
    out.insert(2, "periods", g["pai"].count().to_numpy())
    out = out.sort_values(["coverage", "pai", "method"], ascending=[True, False, True],
                          ignore_index=True)
    out.attrs["definitions"] = metric_definitions()
    return out


def best_method(table: pd.DataFrame, *, coverage: float = 0.05) -> str:
    """The method with the highest mean PAI at a coverage (ties: label order).

    Parameters
    ----------
    table : from :func:`backtest` (or :func:`backtest_summary`).
    coverage : default 0.05 (5% of the study area).

    Returns
    -------
    str, the method's label.
    """
    c = _check_coverage(coverage)
    rows = table.loc[np.isclose(table["coverage"].to_numpy(float), c)]
    means = rows.groupby("method")["pai"].mean().dropna()
    if means.empty:
        have = sorted(table["coverage"].unique().tolist())
        raise ValueError(f"coverage={coverage!r} has no PAI in the table; it has {have}.")
    top = means.max()
    return str(sorted(means.index[means == top])[0])


# --------------------------------------------------------------------------- displacement


def _reading(success: float, quotient: float) -> str:
    if success >= 0:
        return ("no success: the target did not fall relative to the control (success "
                "measure >= 0), so the WDQ is not interpreted")
    if quotient > 1:
        return ("diffusion of benefits greater than the direct effect: the buffer fell "
                "relative to the control by more than the target did (WDQ > 1)")
    if quotient > 0:
        return ("diffusion of benefits: the buffer also fell relative to the control "
                "(0 < WDQ <= 1)")
    if quotient == 0:
        return "neither displacement nor diffusion (WDQ = 0)"
    if quotient >= -1:
        return ("displacement smaller than the direct effect: the buffer rose relative to "
                "the control, but less than the target fell (-1 <= WDQ < 0); net benefit")
    return ("displacement greater than the direct effect: the buffer rose more than the "
            "target fell (WDQ < -1); net harm")


def wdq(target_before: float, target_after: float, buffer_before: float, buffer_after: float,
        control_before: float, control_after: float) -> dict[str, Any]:
    """Weighted Displacement Quotient (Bowers and Johnson 2003).

    With ``A``, ``B`` and ``C`` the incidents in the target area, its buffer and a control
    area, before (``b``) and after (``a``) the intervention, over windows of equal length:

    * success measure ``SM = A_a / C_a - A_b / C_b`` (negative: the target fell relative
      to the control, the intervention worked);
    * buffer displacement measure ``BM = B_a / C_a - B_b / C_b`` (positive: crime moved
      into the buffer; negative: the benefits spread there);
    * ``WDQ = BM / SM``, read only when ``SM < 0``: WDQ > 1, diffusion of benefits greater
      than the direct effect; 0 < WDQ <= 1, diffusion of benefits; 0, neither;
      -1 <= WDQ < 0, some displacement but less than the gain in the target (net
      benefit); WDQ < -1, displacement exceeding the gain (net harm);
    * total net effect ``TNE = (A_b * C_a / C_b - A_a) + (B_b * C_a / C_b - B_a)``:
      incidents prevented across target and buffer, after allowing for the control's
      trend (positive = fewer incidents).

    Parameters
    ----------
    target_before, target_after, buffer_before, buffer_after : counts >= 0.
    control_before, control_after : counts > 0.

    Returns
    -------
    dict
        ``success_measure``, ``buffer_measure``, ``wdq`` (NaN when SM = 0),
        ``total_net_effect`` (incidents), ``interpretation`` (text as above).
    """
    vals = {"target_before": target_before, "target_after": target_after,
            "buffer_before": buffer_before, "buffer_after": buffer_after,
            "control_before": control_before, "control_after": control_after}
    for name, v in vals.items():
        least = 0 if name.startswith(("target", "buffer")) else 1
        if (isinstance(v, bool) or not isinstance(v, int | float | np.number)
                or not np.isfinite(v) or v < least or (least == 1 and v <= 0)):
            rule = ">= 0" if least == 0 else "> 0 (the control must have incidents)"
            raise ValueError(f"{name} must be an incident count {rule}; got {v!r}.")
    ab, aa = float(target_before), float(target_after)
    bb, ba = float(buffer_before), float(buffer_after)
    cb, ca = float(control_before), float(control_after)
    sm = aa / ca - ab / cb
    bm = ba / ca - bb / cb
    q = bm / sm if sm != 0 else float("nan")
    tne = (ab * ca / cb - aa) + (bb * ca / cb - ba)
    return {"success_measure": sm, "buffer_measure": bm, "wdq": q, "total_net_effect": tne,
            "interpretation": _reading(sm, q)}


def _count_in(geom, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    shapely.prepare(geom)
    return shapely.intersects_xy(geom, x, y)


def intervention_effect(incidents: pd.DataFrame, *, target, date: str | dt.date,
                        control, buffer_m: float = 250.0, months: int = 6,
                        alpha: float = 0.05) -> dict[str, Any]:
    """Before/after counts in a target, its buffer and a control area, a test, and the WDQ.

    Parameters
    ----------
    incidents : pandas.DataFrame
        Incidents with ``date`` (``YYYY-MM-DD``) and ``x, y`` (EPSG:27700 metres). Not
        modified. police.uk rows are dated the 1st of their month: give a ``date`` on the
        1st of a month so each month falls wholly on one side.
    target : shapely polygon, EPSG:27700, the intervention area (its boundary included).
    date : the intervention's first day (``YYYY-MM-DD`` or a date).
    control : shapely polygon, EPSG:27700, the comparison area. The target and buffer are
        removed from it, so a whole borough can be given.
    buffer_m : width of the ring around the target, metres, default 250.
    months : length of each window, default 6: before is ``[date - months, date)``, after
        ``[date, date + months)``.
    alpha : significance level, default 0.05: when the target's change against the
        control's (``p_value_vs_control``) is above it, the change is within chance and
        the ``interpretation`` says so instead of reading the WDQ.

    Returns
    -------
    dict
        ``before`` and ``after`` (``(first, last)`` day of each window), ``target_before``,
        ``target_after``, ``buffer_before``, ``buffer_after``, ``control_before``,
        ``control_after`` (counts; a point is in the target first, else the buffer, else
        the control), ``change`` (target after / before - 1, NaN when before is 0),
        ``p_value`` (two-sided exact Poisson test of target after against before,
        :func:`hotspots.trends.poisson_change_test`), ``p_value_vs_control`` (the same
        test with the control's counts as exposures: did the target change more than the
        control?), ``clear`` (``p_value_vs_control <= alpha``), and the keys of
        :func:`wdq` (``interpretation`` reads the WDQ only when ``clear``).
    """
    for name, geom in (("target", target), ("control", control)):
        if not isinstance(geom, shapely.Geometry) or shapely.area(geom) <= 0:
            raise ValueError(f"{name} must be a shapely polygon in EPSG:27700 metres with an "
                             f"area; got {type(geom).__name__}.")
    if not isinstance(buffer_m, int | float | np.number) or not buffer_m > 0:
        raise ValueError(f"buffer_m must be a distance in metres > 0; got {buffer_m!r}.")
    if isinstance(months, bool) or not isinstance(months, int | np.integer) or months < 1:
        raise ValueError(f"months must be a whole number of months >= 1; got {months!r}.")
    if not (isinstance(alpha, int | float) and 0 < alpha < 1):
        raise ValueError(f"alpha must be a significance level in (0, 1), such as 0.05; got "
                         f"{alpha!r}.")
    try:
        start = pd.Timestamp(date)
    except (ValueError, TypeError):
        raise ValueError(f"date must be a day 'YYYY-MM-DD'; got {date!r}.") from None
    first = start - pd.DateOffset(months=months)
    end = start + pd.DateOffset(months=months)
    when = pd.to_datetime(incidents["date"], format="%Y-%m-%d")
    x, y = incidents["x"].to_numpy(float), incidents["y"].to_numpy(float)
    ring = shapely.difference(shapely.buffer(target, buffer_m), target)
    rest = shapely.difference(control, shapely.buffer(target, buffer_m))
    if shapely.area(rest) <= 0:
        raise ValueError("control must extend beyond the target and its buffer; nothing is "
                         f"left of it once they are removed (buffer_m={buffer_m}).")
    in_a = _count_in(target, x, y)
    in_b = _count_in(ring, x, y) & ~in_a
    in_c = _count_in(rest, x, y) & ~in_a & ~in_b
    before = ((when >= first) & (when < start)).to_numpy()
    after = ((when >= start) & (when < end)).to_numpy()
    counts = {f"{k}_{w}": int((m & win).sum())
              for k, m in (("target", in_a), ("buffer", in_b), ("control", in_c))
              for w, win in (("before", before), ("after", after))}
    if counts["control_before"] == 0 or counts["control_after"] == 0:
        raise ValueError(f"control has no incidents in a window (before "
                         f"{counts['control_before']}, after {counts['control_after']}); use a "
                         "larger control area or longer windows (months).")
    out: dict[str, Any] = {
        "before": (first.date().isoformat(), (start - pd.Timedelta(days=1)).date().isoformat()),
        "after": (start.date().isoformat(), (end - pd.Timedelta(days=1)).date().isoformat()),
        **counts,
    }
    ab, aa = counts["target_before"], counts["target_after"]
    out["change"] = aa / ab - 1 if ab > 0 else float("nan")
    out["p_value"] = poisson_change_test(aa, ab)
    out["p_value_vs_control"] = poisson_change_test(
        aa, ab, exposure=counts["control_after"], previous_exposure=counts["control_before"])
    out.update(wdq(ab, aa, counts["buffer_before"], counts["buffer_after"],
                   counts["control_before"], counts["control_after"]))
    out["clear"] = bool(out["p_value_vs_control"] <= alpha)
    if not out["clear"]:  # a WDQ read off a chance change is noise dressed as a finding
        out["interpretation"] = (
            f"no clear effect: the target changed no more than chance allows against the "
            f"control (p = {out['p_value_vs_control']:.3f} > {alpha}), so neither success "
            "nor displacement can be read from these counts; the WDQ is not interpreted")
    return out
