"""Jobs with I/O at the edges, shared by the CLI and the app: load exports into the
store, summarise a period to files, build the demo. Each returns a JSON-able dict."""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import json
import logging
from pathlib import Path

import geopandas as gpd
import pandas as pd

from . import geography, store
from .area import check_store_area
from .config import Config
from .errors import HotspotsError
from .export import write_csv
from .ingest import Mapping, export_date, read_export, read_mapping, to_incidents
from .maps import area_map, save_map
from .summary import Period, area_summary, in_period, month_only_left_out, month_period

log = logging.getLogger(__name__)


#: Every entry of ``ingest_files``'s report has exactly these keys (null when not known).
INGEST_KEYS = ("path", "format", "read", "accepted", "rejected", "inserted", "replaced",
               "unchanged", "unassigned", "lsoa_agreement", "reasons", "load_id",
               "already_loaded", "rejected_file", "exported_at", "kept_newer", "note", "error")

#: Configuration fields that decide whether a row is accepted and where it is assigned.
_ACCEPTANCE_FIELDS = ("code", "boundary_layer", "layers", "land_layer", "categories",
                      "police_uk_types", "nearest_max_m", "location_key_m",
                      "future_tolerance_days")


def load_key(content_sha256: str, mapping: Mapping | None, config: Config) -> str:
    """What makes two loads the same: the file's bytes, its mapping (not where the mapping
    file lies) and the configuration that decides row acceptance. After a mapping or the
    taxonomy is corrected, the same file loads again."""
    what = {"file": content_sha256,
            "mapping": None if mapping is None else
            {k: v for k, v in dataclasses.asdict(mapping).items() if k != "path"},
            "config": {f: _plain(getattr(config, f, None)) for f in _ACCEPTANCE_FIELDS}}
    return hashlib.sha256(json.dumps(what, sort_keys=True, default=str).encode()).hexdigest()


def _plain(value):
    if dataclasses.is_dataclass(value):
        return dataclasses.asdict(value)
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value


def _day(iso: str) -> str:
    """An export date as people say it: the day, and the time when there is one."""
    return iso[:10] if iso.endswith("T00:00:00") or len(iso) <= 10 else iso[:16].replace("T", " ")


def kept_newer_note(kept: list[dict], exported_at: str) -> str:
    """What the load-order rule kept, and why."""
    parts = [f"{k['n']:,} newer version{'s' if k['n'] != 1 else ''} from load {k['load_id']} "
             f"(exported {_day(k['exported_at'])})" for k in kept]
    return (f"kept {'; '.join(parts)}; this export is dated {_day(exported_at)}; use "
            "--force-older to replace them")


def ingest_files(paths: list[str | Path], *, config: Config, store_file: str | Path | None = None,
                 mapping: str | Path | None = None, cache: str | Path | None = None,
                 today: dt.date | None = None, force_older: bool = False,
                 user: str | None = None, progress=None) -> dict:
    """Load exports into the store, one transaction per file.

    Returns ``{"store", "files": [...]}`` with :data:`INGEST_KEYS` per file. A file loaded
    before with the same mapping and configuration (:func:`load_key`) is skipped
    (``already_loaded`` names that load). A record whose version in the store comes from
    a later-dated export is kept (``kept_newer``, explained in ``note``) unless
    ``force_older``. A file that cannot be read gets an ``error`` and the others still
    load. Rejected rows go to ``<store folder>/rejected/<file>.load<N>.rejected.csv``.
    ``user`` is who loads (default: the operating system's user). ``progress(done,
    total, step)`` is told of each step (three per file: read, checked, written).
    """
    db = store.store_target(store_file)
    layers = geography.read_layers(config, cache=cache)
    area = geography.study_area(layers, config, cache=cache)
    mapping_obj = read_mapping(mapping, config) if mapping else None
    conn = store.connect(db)
    files = []
    try:
        check_store_area(conn, config, store_file=db, cache=cache, record=True)
        paths = list(map(Path, paths))
        total = 3 * len(paths)
        say = progress or (lambda done, total, step: None)
        for i, p in enumerate(paths):
            say(3 * i, total, f"{p.name}: reading")
            entry = dict.fromkeys(INGEST_KEYS)
            entry.update(path=str(p), reasons={}, kept_newer=0)
            files.append(entry)
            try:
                if not p.is_file():
                    raise HotspotsError(f"{p}: no such file.")
                sha = geography.sha256_file(p)
                key = load_key(sha, mapping_obj, config)
                prior = store.find_load(conn, key)
                if prior is not None:
                    entry.update({k: prior[k] for k in ("format", "read", "accepted",
                                                        "rejected", "unassigned",
                                                        "lsoa_agreement", "reasons")})
                    entry.update(already_loaded=prior["load_id"], inserted=0, replaced=0,
                                 unchanged=prior["accepted"])
                    continue
                frame = read_export(p, sheet=mapping_obj.sheet if mapping_obj else None)
                say(3 * i + 1, total, f"{p.name}: checking {len(frame):,} rows")
                res = to_incidents(frame, file=p.name, config=config, layers=layers, area=area,
                                   mapping=mapping_obj, today=today)
                say(3 * i + 2, total, f"{p.name}: writing {len(res.incidents):,} rows")
                exported = export_date(frame, path=p, mapping=mapping_obj)
                written = store.write_load(conn, res, path=str(p), content_sha256=sha,
                                           load_key=key, exported_at=exported,
                                           force_older=force_older, user=user)
            except HotspotsError as exc:
                entry["error"] = str(exc)
                continue
            except Exception as exc:  # noqa: BLE001 - one bad file must not stop the others
                log.exception("unexpected failure on %s", p)
                entry["error"] = (f"{p}: could not be loaded ({type(exc).__name__}: {exc}); "
                                  "the store is unchanged for this file. Please report it with "
                                  "the file's first lines.")
                continue
            inc = res.incidents
            kept = written["kept_newer"]
            entry.update({
                "format": res.format, "read": res.n_read, "accepted": len(inc),
                "rejected": len(res.rejected), "inserted": written["inserted"],
                "replaced": written["replaced"], "unchanged": written["unchanged"],
                "unassigned": int((inc["lsoa_code"] == "").sum()),
                "lsoa_agreement": res.lsoa_agreement, "reasons": res.reasons,
                "load_id": written["load_id"], "already_loaded": written["already_loaded"],
                "exported_at": exported, "kept_newer": sum(k["n"] for k in kept),
                "note": kept_newer_note(kept, exported) if kept else None,
            })
            if len(res.rejected) and written["load_id"] is not None:
                out = (store.rejected_dir(db)
                       / f"{p.stem}.load{written['load_id']}.rejected.csv")
                out.parent.mkdir(parents=True, exist_ok=True)
                write_csv(res.rejected, out)
                entry["rejected_file"] = str(out)
        say(total, total, "done")
    finally:
        conn.close()
    return {"store": store.store_name(db), "files": files}


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
              cache: str | Path | None = None) -> dict:
    """Ranked area table (CSV) and map (HTML) for a period (default: latest complete month).
    """
    if categories:
        unknown = sorted(set(categories) - set(config.categories))
        if unknown:
            raise HotspotsError(f"unknown categories {unknown}; use taxonomy keys such as "
                                f"{sorted(config.categories)[:5]}...")
    conn = store.connect(store_file)
    try:
        period = period or month_period(latest_complete_month(conn))
        prev = period.previous()
        inc = store.read_incidents(conn, start=prev.start.replace(day=1).isoformat(),
                                   end=period.end.isoformat(), categories=categories)
    finally:
        conn.close()
    if level not in config.layers:
        raise HotspotsError(f"--level {level} is not a layer of {config.name}'s configuration; "
                            f"use one of {', '.join(config.layers)}.")
    layers = geography.read_layers(config, cache=cache)
    inc[f"{level}_code"] = geography.layer_codes(inc, layers, config, level)
    residents, how = geography.read_population(config, layers, level, cache=cache)
    table, meta = area_summary(inc, layers[level], level=level, period=period, config=config,
                               rank_by=measure, residents=residents)
    meta["level_label"] = config.layer_label(level)
    meta["population"] = (
        None if residents is None else
        f"residents from {config.population.file}: "
        + ("exact (sums of LSOAs)" if how == "exact" else
           "by area (each LSOA's residents shared by area: this layer is not built from "
           "LSOAs)"))
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    stem = f"{level}_{period.label.replace(' ', '_')}"
    csv_path, html_path = out / f"areas_{stem}.csv", out / f"map_{stem}.html"
    write_csv(table.drop(columns="geometry").round(4), csv_path)
    save_map(area_map(table, meta, config=config, incidents=inc.loc[in_period(inc, period)],
                      measure=measure), html_path)
    top = table.head(5)
    meta.update({
        "files": {"table": str(csv_path), "map": str(html_path)},
        "total_in_areas": int(table["n"].sum()),
        "top": [{"rank": int(r["rank"]), "code": r["code"], "name": r["name"], "n": int(r["n"]),
                 measure: None if pd.isna(r[measure]) else float(r[measure])}
                for _, r in top.iterrows()],
    })
    return meta


def _selection(config: Config, categories, sources, test_months: int, cell_sizes) -> str:
    """The key a backtest result is kept under: area, sources, categories and options."""
    return json.dumps({"area": config.code, "sources": sorted(sources) if sources else None,
                       "categories": sorted(categories) if categories else None,
                       "test_months": int(test_months),
                       "cell_sizes_m": [float(c) for c in cell_sizes]}, sort_keys=True)


def _backtest(inc: pd.DataFrame, area, config: Config, *, test_months: int,
              cell_sizes) -> dict:
    from .forecast import backtest_result, concentration_backtest

    if inc.empty:
        raise HotspotsError("no incidents in the store for this selection: nothing to "
                            "backtest; load exports with `hotspots ingest FILE...` first.")
    result, _ = backtest_result(inc, area, n_tests=test_months, cell_sizes=cell_sizes)
    result["concentrated_now"] = concentration_backtest(inc, area,
                                                        periods=result["test_months"],
                                                        config=config)
    return result


def forecast_for(*, config: Config, period: Period, area, store_file=None,
                 categories: list[str] | None = None) -> tuple[gpd.GeoDataFrame, dict]:
    """The forecast layer for the month after ``period`` and the backtest that chose it.

    The backtest result for these categories is read from the store, or run once and kept
    there until the store's data change. The layer (:func:`hotspots.forecast.
    forecast_layer`) is drawn from the incidents up to the end of ``period`` on the
    winner's grid with the winner's method: the map that was scored.
    """
    from .forecast import CELL_SIZES_M, TEST_MONTHS, bin_incidents, forecast_layer

    key = _selection(config, categories, None, TEST_MONTHS, CELL_SIZES_M)
    conn = store.connect(store_file)
    try:
        inc = store.read_incidents(conn, end=period.end.isoformat(), categories=categories)
        result = store.read_backtest(conn, key)
        if result is None:
            everything = store.read_incidents(conn, categories=categories)
            result = _backtest(everything, area, config, test_months=TEST_MONTHS,
                               cell_sizes=CELL_SIZES_M)
            store.write_backtest(conn, key, result)
    finally:
        conn.close()
    winner = result["winner"]
    last = period.end.strftime("%Y-%m")
    inc = inc.loc[inc["period"] <= last]
    sizes = sorted({result["cell_sizes_m"][0], winner["cell_size_m"]})
    layer = forecast_layer(bin_incidents(inc, area, cell_sizes=sizes, last_month=last), winner)
    return layer, result


def _analyse(inc, layers, area, config: Config, *, cell_size_m=None, shape="square",
             bandwidth_m=None, kernel="quartic", method="dbscan", fdr=True):
    """Grid counts with Gi*, kernel density and places for a period's incidents; and the
    sentences announcing the values chosen by rule."""
    from .cluster import find_places
    from .density import kde, suggest_bandwidth
    from .gistar import gistar, grid_neighbours
    from .grid import grid_counts, make_grid, suggest_cell_size

    x, y = inc["x"].to_numpy(), inc["y"].to_numpy()
    harm = inc["category"].map({k: c.weight for k, c in config.categories.items()}).fillna(1.0)
    cell = cell_size_m or suggest_cell_size(x, y, area)
    grid = make_grid(area, cell_size_m=cell, shape=shape)
    cells = grid_counts(grid, x, y, weights=harm.to_numpy())
    cells = cells.join(gistar(cells["n"].to_numpy(dtype=float),
                              grid_neighbours(cells, cell_shape=shape), fdr=fdr))
    cells.attrs.update(grid.attrs)  # joins drop attrs; cell lookups need the lattice
    cells.attrs["cell_size_m"] = float(cell)
    bw = bandwidth_m or suggest_bandwidth(x, y)
    raster = kde(x, y, area=area, bandwidth_m=bw, kernel=kernel,
                 cell_size_m=suggest_cell_size(x, y, area, bandwidth_m=bw))
    names = {c: n for key in ("ward", "lsoa") if key in layers
             for c, n in zip(layers[key]["code"], layers[key]["name"], strict=True)}
    places = find_places(inc, config=config, method=method, area_km2=area.area / 1e6,
                         names=names)
    chosen = []
    if cell_size_m is None:
        chosen.append(f"cell size set to {cell:g} m (rule: the larger of the bounding box's "
                      "shorter side / 50 and sqrt(area / incidents), rounded down)")
    if bandwidth_m is None:
        chosen.append(f"bandwidth set to {bw:g} m (rule: ArcGIS spatial Silverman, "
                      "0.9 min(SD, sqrt(1/ln 2) Dm) n^-0.2)")
    return cells, raster, places, chosen


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
            "backtest_created": backtest["created"]}


def detect(*, config: Config, period: Period | None = None, categories: list[str] | None = None,
           store_file: str | Path | None = None, out_dir: str | Path = "out",
           cache: str | Path | None = None, cell_size_m: float | None = None,
           shape: str = "square", bandwidth_m: float | None = None, kernel: str = "quartic",
           method: str = "dbscan", fdr: bool = True,
           layers: dict[str, gpd.GeoDataFrame] | None = None) -> dict:
    """Hotspots in metres for a period: grid counts, kernel density, Gi* and places.

    Writes ``hotspots_<period>.html`` (map), ``places_<period>.csv`` and
    ``hotspots_<period>.gpkg`` (layers ``cells``, ``forecast`` and ``places``) to
    ``out_dir``. The ``forecast`` layer (:func:`forecast_for`) is the next month's
    forecast chosen by the backtest kept in the store (run once if missing).
    Parameters left as None are chosen by the stated rules and reported in the result;
    ``layers`` (from :func:`hotspots.geography.read_layers`) saves reading them again.
    """
    from .maps import hotspot_map

    conn = store.connect(store_file)
    try:
        period = period or month_period(latest_complete_month(conn))
        inc = store.read_incidents(conn, start=period.start.replace(day=1).isoformat(),
                                   end=period.end.isoformat(), categories=categories)
    finally:
        conn.close()
    left_out = month_only_left_out(inc, period)
    inc = inc.loc[in_period(inc, period)].reset_index(drop=True)
    if len(inc) < 3:
        raise HotspotsError(f"{len(inc)} incident(s) in {period.label}: too few to look for "
                            "hotspots; widen the period or the categories.")
    layers = layers or geography.read_layers(config, cache=cache)
    area = geography.land_area(layers, config, cache=cache)
    cells, raster, places, chosen = _analyse(
        inc, layers, area, config, cell_size_m=cell_size_m, shape=shape,
        bandwidth_m=bandwidth_m, kernel=kernel, method=method, fdr=fdr)
    cell, bw = cells.attrs["cell_size_m"], raster.bandwidth_m
    forecast, backtest = forecast_for(config=config, period=period, area=area,
                                      store_file=store_file, categories=categories)
    meta = {
        "period": period.label, "incidents": int(len(inc)), "chosen": chosen,
        "month_only_left_out": left_out,
        "categories": sorted(inc["category"].unique().tolist()),
        "cell_size_m": float(cell), "cell_shape": shape, "cells": int(len(cells)),
        "bandwidth_m": float(bw), "kernel": kernel, "kde_edge_loss": float(raster.edge_loss),
        "gi_neighbours": "queen" if shape == "square" else "6 hexagon", "fdr": fdr,
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
                         raster=raster, cells=cells, places=places, forecast=forecast),
             html_path)
    write_csv(places.drop(columns="geometry").round(4), csv_path)
    gpkg_path.unlink(missing_ok=True)
    cells.to_file(gpkg_path, layer="cells", driver="GPKG")
    forecast.to_file(gpkg_path, layer="forecast", driver="GPKG")
    if not places.empty:
        places.to_file(gpkg_path, layer="places", driver="GPKG")
    conn = store.connect(store_file)
    try:
        meta["run_id"] = store.write_places(
            conn, places, period=period.label, start=period.start.isoformat(),
            end=period.end.isoformat(), method=method,
            params={k: meta[k] for k in ("cell_size_m", "bandwidth_m", "kernel", "fdr")})
    finally:
        conn.close()
    meta["files"] = {"map": str(html_path), "places": str(csv_path), "gpkg": str(gpkg_path)}
    meta["top"] = [{"rank": i, "place_id": r.place_id, "label": r.label, "n": int(r.n)}
                   for i, r in enumerate(places.head(10).itertuples(), start=1)]
    return meta


def run_backtest(*, config: Config, store_file: str | Path | None = None,
                 out_dir: str | Path = "out", cache: str | Path | None = None,
                 categories: list[str] | None = None, sources: list[str] | None = None,
                 test_months: int | None = None,
                 cell_sizes_m: list[float] | None = None) -> dict:
    """Search method x cell size on the store's data (rolling origin over the latest
    ``test_months`` months, default 12, that have 3 months of history before them), say
    which wins at 5% coverage, and keep the result in the store for ``detect``, ``pack``
    and the app (for the default test months and cell sizes).

    Writes ``backtest.csv`` (per method and cell size: means over the test months at 5%).
    Returns the result (see :func:`hotspots.forecast.backtest_result`) with
    ``definitions`` and ``files``.
    """
    from .evaluate import metric_definitions
    from .forecast import CELL_SIZES_M, TEST_MONTHS

    test_months = test_months or TEST_MONTHS
    sizes = tuple(cell_sizes_m or CELL_SIZES_M)
    conn = store.connect(store_file)
    try:
        inc = store.read_incidents(conn, categories=categories)
    finally:
        conn.close()
    if sources:
        inc = inc.loc[inc["source"].isin(sources)]
    layers = geography.read_layers(config, cache=cache)
    result = _backtest(inc, geography.land_area(layers, config, cache=cache), config,
                       test_months=test_months, cell_sizes=sizes)
    conn = store.connect(store_file)
    try:
        store.write_backtest(conn, _selection(config, categories, sources, test_months, sizes),
                             result)
    finally:
        conn.close()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    path = write_csv(pd.DataFrame(result["summary"]), out / "backtest.csv")
    return {**result, "definitions": metric_definitions(), "files": {"table": str(path)}}


#: Formats of ``hotspots export``: QGIS opens the first two, Power BI maps the CSV.
EXPORT_FORMATS = ("gpkg", "geoparquet", "csv")


def export_incidents(*, out: str | Path, fmt: str = "gpkg", store_file: str | Path | None = None,
                     start: str | None = None, end: str | None = None,
                     categories: list[str] | None = None) -> dict:
    """Write the store's incidents (optionally of a period and some categories) as a
    GeoPackage (layer ``incidents``, points in EPSG:27700), a GeoParquet file, or a CSV
    with ``longitude`` and ``latitude`` (WGS84) added to the stored columns.

    Returns ``{"file", "format", "incidents"}``.
    """
    from .maps import lonlat

    if fmt not in EXPORT_FORMATS:
        raise HotspotsError(f"format '{fmt}' is not one of {list(EXPORT_FORMATS)}.")
    conn = store.connect(store_file)
    try:
        inc = store.read_incidents(conn, start=start, end=end, categories=categories)
    finally:
        conn.close()
    path = Path(out)
    path.parent.mkdir(parents=True, exist_ok=True)
    if fmt == "csv":
        lon, lat = lonlat(inc["x"], inc["y"])
        write_csv(inc.assign(longitude=lon.round(6), latitude=lat.round(6)), path)
    else:
        points = gpd.GeoDataFrame(inc, geometry=gpd.points_from_xy(inc["x"], inc["y"]),
                                  crs="EPSG:27700")
        path.unlink(missing_ok=True)
        if fmt == "gpkg":
            points.to_file(path, layer="incidents", driver="GPKG")
        else:
            points.to_parquet(path)
    return {"file": str(path), "format": fmt, "incidents": int(len(inc))}
