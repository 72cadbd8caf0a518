"""Jobs with I/O at the edges, shared by the CLI and the app: load exports into the
store (:mod:`hotspots.loads`, re-exported here), summarise a period to files, find
hotspots, backtest and forecast, export the store. Each returns a JSON-able dict."""

from __future__ import annotations

import datetime as dt
import functools
import hashlib
import json
import logging
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely

from . import geography, store
from .analysis import (
    analyse,
    check_enough_incidents,
    gistar_meta,
    place_names,
    resolve_spec,
)
from .cluster import PLACE_INPUT_COLUMNS
from .config import Config
from .errors import HotspotsError, StoreError
from .export import FORMATS as EXPORT_TABLE_FORMATS
from .export import write_csv, write_table
from .grid import area_geometry, make_grid
from .kept import kept
from .loads import (
    FORCE_HINT,
    INGEST_KEYS,
    PREVIEW_KEYS,
    ingest_files,
    kept_newer_note,
    load_key,
    plain_error,
    preview_files,
)
from .schema import INCIDENT_COLUMNS, CellShape, ClusterMethod, Kernel
from .summary import Period, area_summary, in_period, month_only_left_out, month_period

log = logging.getLogger(__name__)

__all__ = ["EXPORT_FORMATS", "FORCE_HINT", "INGEST_KEYS", "PREVIEW_KEYS", "detect",
           "export_incidents", "forecast_for", "forecast_meta", "ingest_files",
           "kept_newer_note", "latest_complete_month", "load_key", "plain_error",
           "preview_files", "run_backtest", "summarise"]


def latest_complete_month(conn) -> str:
    """The last month in the store that is complete: the month of the latest incident if
    that incident is dated the month's last day or by month only, else the month before."""
    last, month_only = store.last_day(conn)
    if last is None:
        raise HotspotsError("the store has no incidents yet; load exports with `hotspots "
                            "ingest FILE...` first.")
    day = dt.date.fromisoformat(last)
    month = month_period(day.strftime("%Y-%m"))
    if day == month.end or (month_only and day.day == 1):
        return month.label
    return month.previous().label


def summarise(*, config: Config, period: Period | None = None, level: str = "lsoa",
              measure: str = "density_per_km2", categories: list[str] | None = None,
              store_file: str | Path | None = None, out_dir: str | Path = "out",
              cache: str | Path | None = None, formats: tuple[str, ...] = ("csv",)) -> dict:
    """Ranked area table and map (HTML) for a period (default: latest complete month).

    The table is written by :func:`hotspots.export.write_table` as
    ``areas_<level>_<period>.csv`` (always; with latitude and longitude) and in the other
    ``formats`` asked for: ``xlsx`` (readable headings), ``geojson`` (WGS84), ``gpkg``
    (EPSG:27700). The default is the CSV alone: the app reads it, and for all of London's
    LSOAs the GeoJSON and XLSX take seconds (``bench/bench_export.py``); the CLI asks for
    all four.
    """
    unknown = sorted(set(formats) - set(EXPORT_TABLE_FORMATS))
    if unknown:
        raise HotspotsError(f"formats: {', '.join(unknown)} is not a table format; use "
                            f"some of {', '.join(EXPORT_TABLE_FORMATS)}.")
    if categories:
        unknown = sorted(set(categories) - set(config.categories))
        if unknown:
            raise HotspotsError(f"unknown categories {unknown}; use taxonomy keys such as "
                                f"{sorted(config.categories)[:5]}...")
    if level not in config.layers:
        raise HotspotsError(f"--level {level} is not a layer of {config.name}'s configuration; "
                            f"use one of {', '.join(config.layers)}.")
    with store.connection(store_file) as conn:
        period = period or month_period(latest_complete_month(conn))
        prev = period.previous()
        # the columns the counts and the map use, in the store's order (a national year is
        # 6M rows: reading every column in key order took a minute)
        inc = store.read_incidents(conn, start=prev.start.replace(day=1).isoformat(),
                                   end=period.end.isoformat(), categories=categories,
                                   columns=_summary_columns(config, level))
    layers = geography.read_layers(config, cache=cache)
    inc[f"{level}_code"] = geography.layer_codes(inc, layers, config, level)
    residents, how = geography.read_population(config, layers, level, cache=cache)
    table, meta = area_summary(inc, layers[level], level=level, period=period, config=config,
                               rank_by=measure, residents=residents)
    meta["level_label"] = config.layer_label(level)
    pop = config.population
    meta["population"] = (
        None if residents is None or pop is None else
        f"residents from {pop.file}: "
        + ("exact (sums of LSOAs)" if how == "exact" else
           "by area (each LSOA's residents shared by area: this layer is not built from "
           "LSOAs)"))
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    stem = f"{level}_{period.label.replace(' ', '_')}"
    csv_path, html_path = out / f"areas_{stem}.csv", out / f"map_{stem}.html"
    files = _write_areas(table, out / f"areas_{stem}", config, formats)
    # the period's rows: a copy of millions of rows only when some read are outside it
    now = inc if meta["incidents"] == len(inc) else inc.loc[in_period(inc, period)]
    from .maps import area_map, save_map  # here: folium is for the commands that draw

    save_map(area_map(table, meta, config=config, incidents=now, measure=measure,
                      cache=geography.cache_dir(cache)), html_path)
    top = table.head(5)
    meta.update({
        "files": {"table": str(csv_path), **files, "map": str(html_path)},
        "total_in_areas": int(table["n"].sum()),
        "top": [{"rank": int(r["rank"]), "code": r["code"], "name": r["name"], "n": int(r["n"]),
                 measure: None if pd.isna(r[measure]) else float(r[measure])}
                for _, r in top.iterrows()],
    })
    return meta


def _summary_columns(config: Config, level: str) -> tuple[str, ...]:
    """The incident columns :func:`summarise` reads: those of the counts and the map
    (``source, ref`` order each location's text), and the stored code of ``level``, or of
    the finer layer it is built from, that :func:`hotspots.geography.layer_codes` reads."""
    key: str | None = level
    while key and not (key in config.stored_layers and f"{key}_code" in INCIDENT_COLUMNS):
        key = config.layers[key].built_from
    return ("source", "ref", "category", "date", "x", "y", "location", "location_key",
            *([f"{key}_code"] if key else []))


def _write_areas(table: gpd.GeoDataFrame, stem: Path, config: Config,
                 formats: tuple[str, ...]) -> dict:
    """The area table as CSV (with latitude and longitude) and in the other ``formats``,
    by :func:`hotspots.export.write_table`; returns the files other than the CSV."""
    labels = {key: config.label(key) for key in config.categories}
    write_table(table.round(4), f"{stem}.csv")
    files = {}
    for fmt in (f for f in EXPORT_TABLE_FORMATS if f in formats and f != "csv"):
        files[fmt] = str(write_table({"Areas": table} if fmt == "xlsx" else table,
                                     f"{stem}.{fmt}", labels=labels, name="areas"))
    return files


def _selection(config: Config, categories, sources, test_months: int, cell_sizes,
               until: str) -> str:
    """The key a backtest result is kept under: area, sources, categories, options and the
    last month of the data it was run on (``until``, ``YYYY-MM``)."""
    return json.dumps({"area": config.code, "sources": sorted(sources) if sources else None,
                       "categories": sorted(categories) if categories else None,
                       "test_months": int(test_months), "until": until,
                       "cell_sizes_m": [float(c) for c in cell_sizes]}, sort_keys=True)


#: The incident columns a backtest reads: each month's points (the forecast search) and
#: what the places of the month before each test month are made of (the concentration
#: backtest). Neither depends on the rows' order, so the store's own order is taken: a
#: year of London with every column in key order took 6.9 s to read, 1.3 s like this.
BACKTEST_COLUMNS = ("period", *PLACE_INPUT_COLUMNS)


def _backtest(inc: pd.DataFrame, area, config: Config, *, test_months: int,
              cell_sizes, cache: str | Path | None = None, progress=None) -> dict:
    from .backtest import backtest_result, concentration_backtest

    if inc.empty:
        raise HotspotsError("no incidents in the store for this selection: nothing to "
                            "backtest; load exports with `hotspots ingest FILE...` first.")
    # the grids kept in the geodata cache, as the forecast layer is drawn on (London's
    # five: 13.8 s to clip, 0.6 s to read back)
    result, _ = backtest_result(inc, area, n_tests=test_months, cell_sizes=cell_sizes,
                                progress=progress,
                                grids=_kept_grids(area, cell_sizes, cache=cache))
    result["concentrated_now"] = concentration_backtest(
        inc, area, periods=result["test_months"], config=config,
        grids=lambda s: _kept_grids(area, (s,), cache=cache)[s])
    return result


def forecast_for(*, config: Config, period: Period, area, store_file=None,
                 categories: list[str] | None = None,
                 cache: str | Path | None = None,
                 incidents: pd.DataFrame | None = None) -> tuple[gpd.GeoDataFrame, dict]:
    """The forecast layer for the month after ``period`` and the backtest that chose it.

    The backtest is run on the incidents up to the end of ``period`` only, so the forecast
    is chosen on months before the one it forecasts even when the store holds later
    months; its result is read from the store, or run once and kept there until the
    store's data change. The layer (:func:`hotspots.forecast.forecast_layer`) is drawn
    from the same incidents on the winner's grid with the winner's method: the map that
    was scored. Its grids are kept in the geodata cache (``cache``, by default
    :func:`hotspots.geography.cache_dir`'s): see :func:`_kept_grids`. ``incidents``: all
    the store's incidents of ``categories`` up to the end of ``period`` (columns
    ``period``, ``x`` and ``y`` at least, any order), when the caller has read them: with
    a kept backtest they are not read again (a detect over a store's whole year).

    The layer is kept in the store beside its backtest, for the same data and study area
    (:func:`_layer_key`): the next detect, pack or app page reads it back, the same cells
    to the bit, without reading a year of incidents or the grids again (London: 2.6 of a
    pack's CPU seconds). A store too busy to keep it is left as it is (logged).
    """
    from .forecast import (
        CELL_SIZES_M,
        TEST_MONTHS,
        bin_incidents,
        forecast_layer,
        layer_from_record,
        layer_record,
    )

    last = period.end.strftime("%Y-%m")
    key = _selection(config, categories, None, TEST_MONTHS, CELL_SIZES_M, last)
    layer_key = _layer_key(key, area)
    with store.connection(store_file) as conn:
        # what is kept is kept against the data as they were before the read: a load
        # landing meanwhile leaves it under a fingerprint no longer current, never served
        fingerprint = store.data_fingerprint(conn)
        result = store.read_backtest(conn, key)
        kept_layer = None if result is None else store.read_backtest(conn, layer_key)
        if result is not None and kept_layer is not None:  # (kept_layer implies result)
            return layer_from_record(kept_layer), result
        # the layer needs each incident's month and point alone (a year of London: 1M rows)
        inc = (incidents[["period", "x", "y"]] if result is not None and incidents is not None
               else store.read_incidents(conn, end=period.end.isoformat(),
                                         categories=categories,
                                         columns=BACKTEST_COLUMNS if result is None
                                         else ("period", "x", "y")))
        if result is None:
            result = _backtest(inc.loc[inc["period"] <= last], area, config,
                               test_months=TEST_MONTHS, cell_sizes=CELL_SIZES_M, cache=cache)
            store.write_backtest(conn, key, result, fingerprint=fingerprint)
    winner = result["winner"]
    sizes = sorted({result["cell_sizes_m"][0], winner["cell_size_m"]})
    # bin_incidents leaves out months after the last (a store holding later months)
    layer = forecast_layer(bin_incidents(inc, area, cell_sizes=sizes, last_month=last,
                                         grids=_kept_grids(area, sizes, cache=cache)), winner)
    try:
        with store.connection(store_file) as conn:
            store.write_backtest(conn, layer_key, layer_record(layer), fingerprint=fingerprint,
                                 only=True)
    except StoreError as exc:
        log.info("forecast layer not kept in the store: %s", exc)
    return layer, result


#: Bump when what a kept forecast layer holds, or the rule that draws it, changes.
_LAYER_VERSION = 1


def _area_digest(area) -> str:
    """A digest of the study area as the grids take it (its polygons and CRS)."""
    geom, crs = area_geometry(area)
    return hashlib.sha256(shapely.to_wkb(geom) + crs.to_wkt().encode()).hexdigest()[:24]


def _layer_key(selection: str, area) -> str:
    """The key a forecast layer is kept under in the store: its backtest's key, the study
    area's digest (the grid it is drawn on) and :data:`_LAYER_VERSION`."""
    return json.dumps({"forecast_layer": json.loads(selection), "area": _area_digest(area),
                       "version": _LAYER_VERSION}, sort_keys=True)


#: Bump when what a kept grid file holds changes.
_GRID_VERSION = 1


def _kept_grids(area, sizes, *, shape: CellShape = "square",
                cache: str | Path | None = None) -> dict[float, gpd.GeoDataFrame]:
    """:func:`hotspots.grid.make_grid` of ``area`` (as it takes it) for each cell size,
    each kept in ``<cache>/derived/`` as GeoParquet, named by the area's WKB and CRS, the
    shape, the size and :data:`_GRID_VERSION`, and read back by the next process (the
    same cells to the bit): a 50 m grid of London (641,000 cells) takes 4 CPU s to make
    and 1 s to read. A file that cannot be read or written is made again or not kept
    (logged); a cache folder that does not exist is not created."""
    geom, crs = area_geometry(area)
    digest = _area_digest(area)
    return {s: kept(geography.cache_dir(cache) / "derived"
                    / f"grid-{digest}-{shape}-{float(s):g}m-v{_GRID_VERSION}.parquet",
                    functools.partial(make_grid, geom, cell_size_m=s, shape=shape, crs=crs),
                    read=gpd.read_parquet, write=lambda g, p: g.to_parquet(p), what="grid")
            for s in sizes}


def analysis_grid(area, spec, *, cache: str | Path | None = None) -> gpd.GeoDataFrame:
    """The grid of ``spec`` (an :class:`hotspots.analysis.AnalysisSpec`) over ``area``,
    kept in the geodata ``cache`` (:func:`_kept_grids`: London's 150 m grid takes 0.25 s
    to clip), as :func:`hotspots.analysis.analyse` takes it."""
    g = spec.grid
    return _kept_grids(area, (g.cell_size_m,), shape=g.shape, cache=cache)[g.cell_size_m]


def backtest_kept(*, config: Config, period: Period, store_file=None,
                  categories: list[str] | None = None) -> bool:
    """Whether the store keeps the backtest :func:`forecast_for` needs for ``period`` and
    ``categories`` (for the store's current data): the forecast layer then needs no
    backtest run."""
    from .forecast import CELL_SIZES_M, TEST_MONTHS

    key = _selection(config, categories, None, TEST_MONTHS, CELL_SIZES_M,
                     period.end.strftime("%Y-%m"))
    with store.connection(store_file) as conn:
        return store.read_backtest(conn, key) is not None


def forecast_meta(layer: gpd.GeoDataFrame, backtest: dict, period: Period) -> dict:
    """What a legend and a summary say about a forecast layer: the month forecast, the
    method, the cell size, its mean PAI and hit rate at 5% on the test months, and any
    note (the fallback)."""
    from .forecast import DESCRIPTIONS, month_number, month_text

    w = backtest["winner"]
    return {"month": month_text(month_number(period.end.strftime("%Y-%m")) + 1),
            "method": w["method"], "description": DESCRIPTIONS[w["method"]],
            "cell_size_m": w["cell_size_m"], "pai_5pct": w["pai_5pct"],
            "hit_rate_5pct": w["hit_rate_5pct"], "test_months": w["test_months"],
            "fallback": w["fallback"], "note": w["note"], "cells": int(len(layer)),
            "months_tested": list(backtest["test_months"]),
            "backtest_created": backtest["created"]}


#: The incident columns :func:`detect` reads: what the period's rules
#: (:func:`hotspots.summary.in_period`), the places (:func:`hotspots.cluster.find_places`)
#: and the forecast (:func:`forecast_for`) use, and the key. The rest (descriptions, raw
#: categories, file and row) are not read: they took half of the month's read.
DETECT_COLUMNS = ("source", "ref", "category", "period", "date", "hour", "x", "y",
                  "location", "location_key", "ward_code", "lsoa_code")


def _key_order(inc: pd.DataFrame) -> np.ndarray:
    """Positions of the rows in order of source and reference, the order
    :func:`hotspots.store.read_incidents` gives all columns in (a read of some columns comes
    in the store's own order): the analysis sums its points in that order (kernel density,
    harm-weighted counts), so its figures stay the same to the bit. Only the points are
    put in that order: taking a year's text columns in another order costs seconds (each
    string is touched where it lies in memory). The key is unique; strings compare by code
    point, as SQLite compares text."""
    ref = inc["ref"].to_numpy()
    try:  # bytes compare as code points do when every reference is ASCII (a quarter the memory)
        key = ref.astype("S")
    except UnicodeEncodeError:
        key = ref.astype(str)
    order = np.argsort(key, kind="stable")
    source, _ = pd.factorize(inc["source"], sort=True)
    return order[np.argsort(source[order], kind="stable")]


def detect(*, config: Config, period: Period | None = None, categories: list[str] | None = None,
           store_file: str | Path | None = None, out_dir: str | Path = "out",
           cache: str | Path | None = None, cell_size_m: float | None = None,
           shape: CellShape = "square", bandwidth_m: float | None = None,
           kernel: Kernel = "quartic", method: ClusterMethod = "dbscan", fdr: bool = True,
           layers: dict[str, gpd.GeoDataFrame] | None = None) -> dict:
    """Hotspots in metres for a period: grid counts, kernel density, Gi* and places.

    Writes ``hotspots_<period>.html`` (map), ``places_<period>.csv`` (with latitude and
    longitude), ``places_<period>.geojson`` (WGS84) and ``hotspots_<period>.gpkg``
    (layers ``cells``, ``forecast`` and ``places``) to ``out_dir``, each by
    :func:`hotspots.export.write_table`. The ``forecast`` layer (:func:`forecast_for`) is
    the next month's forecast chosen by the backtest kept in the store (run once if
    missing).
    Parameters left as None are chosen by the stated rules and reported in the result;
    ``layers`` (from :func:`hotspots.geography.read_layers`) saves reading them again.
    """
    from .maps import hotspot_map, save_map

    with store.connection(store_file) as conn:
        period = period or month_period(latest_complete_month(conn))
        start = period.start.replace(day=1).isoformat()
        inc = store.read_incidents(conn, start=start, end=period.end.isoformat(),
                                   categories=categories, columns=DETECT_COLUMNS)
        first, _ = store.date_range(conn)
    # the forecast reads every incident up to the period's end: these, when none is older
    history = inc if first is None or first >= start else None
    inside = in_period(inc, period)
    left_out = month_only_left_out(inc, period, inside)
    inc = inc.loc[inside].reset_index(drop=True)
    check_enough_incidents(len(inc), period.label)
    layers = layers or geography.read_layers(config, cache=cache)
    area = geography.land_area(layers, config, cache=cache)
    order = _key_order(inc)
    spec = resolve_spec(inc["x"].to_numpy()[order], inc["y"].to_numpy()[order], area,
                        cell_size_m=cell_size_m, shape=shape, bandwidth_m=bandwidth_m,
                        kernel=kernel, method=method, fdr=fdr)
    found = analyse(inc, area, config=config, spec=spec, names=place_names(layers),
                    order=order, grid=analysis_grid(area, spec, cache=cache))
    cells, raster, places, chosen = found.cells, found.raster, found.places, list(spec.chosen)
    bw = spec.kde.bandwidth_m
    forecast, backtest = forecast_for(config=config, period=period, area=area,
                                      store_file=store_file, categories=categories,
                                      cache=cache, incidents=history)
    meta = {
        "period": period.label, "incidents": int(len(inc)), "chosen": chosen,
        "month_only_left_out": left_out,
        "categories": sorted(inc["category"].unique().tolist()),
        **gistar_meta(spec), "cells": int(len(cells)),
        "bandwidth_m": float(bw), "kernel": kernel, "kde_edge_loss": float(raster.edge_loss),
        "hot_cells": {str(k): int((cells["gi_class"] == k).sum()) for k in (3, 2, 1)},
        "cold_cells": {str(k): int((cells["gi_class"] == k).sum()) for k in (-1, -2, -3)},
        "method": method, "places": int(len(places)),
    }
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    stem = period.label.replace(" ", "_")
    html_path = out / f"hotspots_{stem}.html"
    csv_path = out / f"places_{stem}.csv"
    gpkg_path = out / f"hotspots_{stem}.gpkg"
    meta["forecast"] = forecast_meta(forecast, backtest, period)
    meta["concentrated_now"] = backtest.get("concentrated_now", {})
    save_map(hotspot_map(area=layers[config.boundary_layer], meta=meta, config=config,
                         raster=raster, cells=cells, places=places, forecast=forecast,
                         cache=geography.cache_dir(cache)),
             html_path)
    write_table(places.round(4), csv_path)  # with latitude and longitude
    write_table({"cells": cells, "forecast": forecast, "places": places}, gpkg_path)
    geojson_path = write_table(places, out / f"places_{stem}.geojson")
    with store.connection(store_file) as conn:
        meta["run_id"] = store.write_places(
            conn, places, period=period.label, start=period.start.isoformat(),
            end=period.end.isoformat(), method=method,
            params={k: meta[k] for k in ("cell_size_m", "bandwidth_m", "kernel", "fdr")})
    meta["files"] = {"map": str(html_path), "places": str(csv_path), "gpkg": str(gpkg_path),
                     "geojson": str(geojson_path)}
    meta["top"] = [{"rank": i, "place_id": r.place_id, "label": r.label, "n": int(r.n)}
                   for i, r in enumerate(places.head(10).itertuples(), start=1)]
    return meta


def run_backtest(*, config: Config, store_file: str | Path | None = None,
                 out_dir: str | Path = "out", cache: str | Path | None = None,
                 categories: list[str] | None = None, sources: list[str] | None = None,
                 test_months: int | None = None,
                 cell_sizes_m: list[float] | None = None, progress=None) -> dict:
    """Search method x cell size on the store's data up to its latest complete month (a
    month still coming in is not tested; rolling origin over the latest ``test_months``
    months, default 12, that have 3 months of history before them), say which wins at 5%
    coverage, and keep the result in the store for ``detect``, ``pack`` and the app (for
    the default test months and cell sizes, forecasting the month after that one, with
    the forecast layer drawn from it: :func:`forecast_for`).

    Writes ``backtest.csv`` (per method and cell size: means over the test months at 5%).
    ``progress(done, total, step)`` is told of each method and cell size scored.
    Returns the result (see :func:`hotspots.backtest.backtest_result`) with
    ``definitions`` and ``files``.
    """
    from .evaluate import metric_definitions
    from .forecast import CELL_SIZES_M, TEST_MONTHS

    test_months = test_months or TEST_MONTHS
    sizes = tuple(cell_sizes_m or CELL_SIZES_M)
    with store.connection(store_file) as conn:
        until = latest_complete_month(conn)
        fingerprint = store.data_fingerprint(conn)  # the data as they were before the read
        inc = store.read_incidents(conn, end=month_period(until).end.isoformat(),
                                   categories=categories, columns=BACKTEST_COLUMNS)
    inc = inc.loc[inc["period"] <= until]
    if sources:
        inc = inc.loc[inc["source"].isin(sources)]
    layers = geography.read_layers(config, cache=cache)
    area = geography.land_area(layers, config, cache=cache)
    result = _backtest(inc, area, config, test_months=test_months, cell_sizes=sizes,
                       cache=cache, progress=progress)
    with store.connection(store_file) as conn:
        store.write_backtest(conn, _selection(config, categories, sources, test_months, sizes,
                                              until), result, fingerprint=fingerprint)
    if not sources and test_months == TEST_MONTHS and sizes == tuple(CELL_SIZES_M):
        # the backtest detect, pack and the app read: its layer is drawn from these rows
        # now and kept beside it, so the first map after the month's routine is quick
        forecast_for(config=config, period=month_period(until), area=area,
                     store_file=store_file, categories=categories, cache=cache,
                     incidents=inc)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    path = write_csv(pd.DataFrame(result["summary"]), out / "backtest.csv")
    return {**result, "definitions": metric_definitions(), "files": {"table": str(path)}}


#: Formats of ``hotspots export``: QGIS opens the first two, Power BI maps the CSV,
#: ArcGIS and web maps read the GeoJSON.
EXPORT_FORMATS = ("gpkg", "geoparquet", "csv", "geojson")


def export_incidents(*, out: str | Path, fmt: str = "gpkg", store_file: str | Path | None = None,
                     start: str | None = None, end: str | None = None,
                     categories: list[str] | None = None) -> dict:
    """Write the store's incidents (optionally of a period and some categories) as a
    GeoPackage (layer ``incidents``, points in EPSG:27700), a GeoParquet file, a CSV
    with ``latitude`` and ``longitude`` (WGS84) added to the stored columns, or GeoJSON
    (WGS84). The GeoPackage, CSV and GeoJSON are written by
    :func:`hotspots.export.write_table` (text that would start a formula neutralised).

    Returns ``{"file", "format", "incidents"}``.
    """
    if fmt not in EXPORT_FORMATS:
        raise HotspotsError(f"format '{fmt}' is not one of {list(EXPORT_FORMATS)}.")
    with store.connection(store_file) as conn:
        inc = store.read_incidents(conn, start=start, end=end, categories=categories)
    path = Path(out)
    path.parent.mkdir(parents=True, exist_ok=True)
    points = gpd.GeoDataFrame(inc, geometry=gpd.points_from_xy(inc["x"], inc["y"]),
                              crs="EPSG:27700")
    path.unlink(missing_ok=True)
    if fmt == "geoparquet":
        points.to_parquet(path)
    else:
        write_table(points, path, fmt, name="incidents")
    return {"file": str(path), "format": fmt, "incidents": int(len(inc))}
