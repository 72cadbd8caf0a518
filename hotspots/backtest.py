"""The backtest behind the map a meeting sees: :func:`backtest_result` runs the forecast
search (:mod:`hotspots.forecast`) over the store's months and chooses, in the JSON-able form
kept in the store; :func:`concentration_backtest` scores the "where it is concentrated now"
layers (Gi* hot cells, places) on the month after, each at its own coverage, so they are
shown with their own figures and never called a forecast.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Sequence

import geopandas as gpd
import numpy as np
import pandas as pd

from .forecast import (
    CELL_SIZES_M,
    COVERAGE,
    MIN_TEST_MONTHS,
    TEST_MONTHS,
    bin_incidents,
    choose,
    chosen_before_scored,
    month_number,
    month_text,
    scored_months,
    search,
    summarise,
)
from .grid import cell_index, make_grid


def backtest_result(incidents: pd.DataFrame, area, *, n_tests: int = TEST_MONTHS,
                    cell_sizes: Sequence[float] = CELL_SIZES_M,
                    min_test_months: int = MIN_TEST_MONTHS,
                    progress=None, grids=None) -> tuple[dict, pd.DataFrame]:
    """Search and choose on ``incidents``: the JSON-able result kept in the store, and the
    per-month table.

    The result holds ``created`` (UTC time), ``test_months`` (the months scored),
    ``incidents_tested`` (incidents in those months inside the area: the N of the
    hit rate), ``incidents_in_test_months`` (all of them), ``incidents``
    (all, the history included), ``cell_sizes_m``, ``windows`` (the methods' windows),
    ``min_test_months``, ``enough`` (at least that many months tested), ``summary``
    (mean figures at 5% per method and cell size, best first), ``winner``
    (:func:`choose`), ``chosen_before_scored`` (mean PAI of the map chosen on the months
    before each one scored, and how many months) and ``last_month``. ``progress(done,
    total, step)``, if given, is told of each method and cell size scored. ``grids``: the
    grids of ``cell_sizes`` made already, as :func:`hotspots.forecast.bin_incidents` takes
    them (default: made here).
    """
    binned = bin_incidents(incidents, area, cell_sizes=cell_sizes, grids=grids)
    tests = scored_months(binned, n=n_tests)
    table = search(binned, tests=tests, progress=progress)
    summary = summarise(table) if len(table) else pd.DataFrame(
        columns=["method", "cell_size_m", "months", "pai", "hit_rate", "pei", "rri"])
    honest = chosen_before_scored(table) if len(table) else pd.DataFrame(columns=["pai"])
    result = {
        "created": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "test_months": [month_text(binned.first + t) for t in tests],
        "incidents_tested": int(binned.monthly[tests].sum()) if tests else 0,
        "incidents_in_test_months": int(incidents["period"].isin(
            [month_text(binned.first + t) for t in tests]).sum()),
        "incidents": int(len(incidents)),
        "last_month": month_text(binned.first + binned.monthly.shape[0] - 1),
        "cell_sizes_m": list(binned.grids), "coverage": COVERAGE,
        "windows": "counts over 1 (naive), 3, 6, 12 months and all history; decay half-lives "
                   "3, 6, 12 months over all history; KDE over 12 months; prospective over "
                   "2 months",
        "min_test_months": min_test_months, "enough": len(tests) >= min_test_months,
        "summary": [{k: (round(float(v), 4) if isinstance(v, float | np.floating) else v)
                     for k, v in r.items()} for r in summary.to_dict("records")],
        "winner": choose(table, min_test_months=min_test_months),
        "chosen_before_scored": {"pai_5pct": float(honest["pai"].mean()) if len(honest)
                                 else float("nan"), "months": int(len(honest))},
    }
    return result, table


# --------------------------------------------------------------------------- concentrated now


def concentration_backtest(incidents: pd.DataFrame, area, *, periods: Sequence[str],
                           config, grids: Callable[[float], gpd.GeoDataFrame] | None = None
                           ) -> dict:
    """How well the "where it is concentrated now" layers of a month map the next month.

    For each month ``p`` in ``periods``, the Gi* hot cells (any confidence, FDR-corrected,
    on the cell size :func:`hotspots.grid.suggest_cell_size` picks, as ``hotspots detect``
    draws them) and the cluster places of the month before are scored on ``p``'s
    incidents, each at its own coverage (the share of the area it covers).

    ``grids(size)`` gives the area's grid of a cell size (default :func:`make_grid` of the
    area); each size is asked for once, however many months use it.

    Returns
    -------
    dict: ``gistar`` and ``places``, each ``pai`` (mean), ``hit_rate`` (mean),
    ``coverage`` (mean share of the area) and ``months`` (months scored).
    """
    import shapely

    from .cluster import find_places
    from .gistar import gistar, grid_neighbours
    from .grid import grid_counts, suggest_cell_size

    geom = shapely.union_all(np.asarray(area.geometry.values)) if hasattr(area, "geometry") \
        else area
    total_km2 = shapely.area(geom) / 1e6
    figures: dict[str, list[tuple[float, float, float]]] = {"gistar": [], "places": []}
    made: dict[float, gpd.GeoDataFrame] = {}  # the months mostly share a cell size
    for p in periods:
        prev = incidents.loc[incidents["period"] == month_text(month_number(p) - 1)]
        test = incidents.loc[incidents["period"] == p]
        tx, ty = test["x"].to_numpy(float), test["y"].to_numpy(float)
        inside = shapely.intersects_xy(geom, tx, ty)
        if len(prev) < 3 or not inside.any():
            continue
        x, y = prev["x"].to_numpy(float), prev["y"].to_numpy(float)
        size = suggest_cell_size(x, y, geom)
        if size not in made:
            made[size] = grids(size) if grids is not None else make_grid(geom, cell_size_m=size)
        grid = made[size]
        cells = grid_counts(grid, x, y, cell_size_m=size)
        hot = gistar(cells["n"].to_numpy(float), grid_neighbours(grid))["gi_class"]
        hot = hot.to_numpy() > 0
        a = grid["area_km2"].to_numpy(float)
        if hot.any():
            idx = cell_index(grid, tx, ty, cell_size_m=size)
            hit = np.isin(idx[idx >= 0], grid["cell_id"].to_numpy()[hot]).sum() / inside.sum()
            cov = a[hot].sum() / a.sum()
            figures["gistar"].append((hit / cov, hit, cov))
        places = find_places(prev, config=config, area_km2=total_km2)
        if len(places):
            shape = shapely.intersection(shapely.union_all(np.asarray(places.geometry.values)),
                                         geom)
            cov = shapely.area(shape) / 1e6 / total_km2
            if cov > 0:
                hit = shapely.intersects_xy(shape, tx[inside], ty[inside]).sum() / inside.sum()
                figures["places"].append((hit / cov, hit, cov))
    out = {}
    for k, rows in figures.items():
        arr = np.array(rows).reshape(-1, 3)
        out[k] = {"pai": float(arr[:, 0].mean()) if len(arr) else float("nan"),
                  "hit_rate": float(arr[:, 1].mean()) if len(arr) else float("nan"),
                  "coverage": float(arr[:, 2].mean()) if len(arr) else float("nan"),
                  "months": int(len(arr))}
    return out
