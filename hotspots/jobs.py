"""Jobs with I/O at the edges, shared by the CLI and the app: load exports into the
store, summarise a period to files, build the demo. Each returns a JSON-able dict."""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import json
import logging
from collections.abc import Sequence
from pathlib import Path

import geopandas as gpd
import pandas as pd

from . import geography, store
from .analysis import analyse, check_enough_incidents, place_names, resolve_spec
from .area import check_store_area
from .config import Config
from .errors import HotspotsError
from .export import FORMATS as EXPORT_TABLE_FORMATS
from .export import write_csv, write_table
from .ingest import (
    IngestResult,
    Mapping,
    export_date,
    read_export,
    read_mapping,
    to_incidents,
)
from .maps import area_map, save_map
from .summary import Period, area_summary, in_period, month_only_left_out, month_period
from .validate import explain_reasons, file_message

log = logging.getLogger(__name__)


#: Every entry of ``ingest_files``'s report has exactly these keys (null when not known).
INGEST_KEYS = ("path", "format", "read", "accepted", "rejected", "inserted", "replaced",
               "unchanged", "unassigned", "lsoa_agreement", "reasons", "load_id",
               "already_loaded", "rejected_file", "exported_at", "kept_newer", "note", "error",
               "warnings", "explained")
#: Every entry of ``preview_files``'s report has exactly these keys (null when not known).
PREVIEW_KEYS = ("path", "format", "read", "accepted", "rejected", "inserted", "replaced",
                "unchanged", "kept_newer", "already_loaded", "exported_at", "changes",
                "reasons", "explained", "warnings", "note", "error")

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


def _check_file(p: Path, mapping: Mapping | None, config: Config, layers, area,
                today: dt.date | None, say, step: int, total: int):
    """Read and check one export: ``(result, exported_at)``."""
    if not p.is_file():
        raise HotspotsError(file_message(p.name, "no_file"))
    frame = read_export(p, sheet=mapping.sheet if mapping else None)
    say(step + 1, total, f"{p.name}: checking {len(frame):,} rows")
    res = to_incidents(frame, file=p.name, config=config, layers=layers, area=area,
                       mapping=mapping, today=today)
    return res, export_date(frame, path=p, mapping=mapping)


def plain_error(exc: Exception, name: str) -> str:
    """A message for a file that could not be used, in the user's words: the file by its
    own name (never an upload's temporary folder), no codec or Python jargon."""
    if isinstance(exc, HotspotsError):
        return str(exc)
    if isinstance(exc, UnicodeError):
        at = f" (byte {exc.start + 1:,})" if isinstance(exc, UnicodeDecodeError) else ""
        return file_message(name, "not_utf8", why=at)
    return (f"{name}: could not be loaded: an unexpected problem ({type(exc).__name__}); the "
            "store is unchanged for this file. Fix: please report it with the file's first "
            "lines.")


def _entry(keys, p: Path) -> dict:
    entry = dict.fromkeys(keys)
    entry.update(path=str(p), reasons={}, kept_newer=0, warnings=[], explained=[])
    return entry


def _counts(res: IngestResult) -> dict:
    return {"format": res.format, "read": res.n_read, "accepted": len(res.incidents),
            "rejected": len(res.rejected), "reasons": res.reasons,
            "explained": explain_reasons(res.problems), "warnings": list(res.warnings)}


def ingest_files(paths: Sequence[str | Path], *, config: Config,
                 store_file: str | Path | None = None,
                 mapping: str | Path | None = None, cache: str | Path | None = None,
                 today: dt.date | None = None, force_older: bool = False,
                 user: str | None = None, progress=None) -> dict:
    """Load exports into the store, one transaction per file.

    Returns ``{"store", "files": [...]}`` with :data:`INGEST_KEYS` per file. A file loaded
    before with the same mapping and configuration (:func:`load_key`) is skipped
    (``already_loaded`` names that load) without reading it or the boundaries. A record
    whose version in the store comes from a later-dated export is kept (``kept_newer``,
    explained in ``note``) unless ``force_older``. A file that cannot be read gets an
    ``error`` and the others still load. Rejected rows go to ``<store
    folder>/rejected/<file>.load<N>.rejected.csv``. ``warnings`` say what a file lacks
    (optional mapping columns missing); ``explained`` the rejected rows by reason, fix first
    (:func:`hotspots.validate.explain_reasons`). ``user`` is who loads (default: the
    operating system's user). ``progress(done, total, step)`` is told of each step (three
    per file: read, checked, written).
    """
    db = store.store_target(store_file)
    mapping_obj = read_mapping(mapping, config) if mapping else None
    paths = list(map(Path, paths))
    shas = {p: geography.sha256_file(p) for p in paths if p.is_file()}
    keys = {p: load_key(shas[p], mapping_obj, config) if p in shas else None for p in paths}
    files = []
    with store.connection(db) as conn:
        check_store_area(conn, config, store_file=db, cache=cache, record=True)
        priors = {p: store.find_load(conn, k) if k else None for p, k in keys.items()}
        geo: dict = {}
        if any(priors[p] is None for p in paths):  # something to read: the boundaries too
            geo["layers"] = geography.read_layers(config, cache=cache)
            geo["area"] = geography.study_area(geo["layers"], config, cache=cache)
        total = 3 * len(paths)
        say = progress or (lambda done, total, step: None)
        for i, p in enumerate(paths):
            say(3 * i, total, f"{p.name}: reading")
            entry = _entry(INGEST_KEYS, p)
            files.append(entry)
            try:
                if keys[p] is None:
                    raise HotspotsError(file_message(p.name, "no_file"))
                if priors[p] is not None:
                    _already_loaded(conn, entry, priors[p])
                    continue
                _load_one(conn, p, entry, sha=shas[p], key=keys[p], config=config, geo=geo,
                          mapping=mapping_obj, today=today, force_older=force_older,
                          user=user, db=db,
                          say=lambda k, step, i=i: say(3 * i + k, total, step))
            except Exception as exc:  # noqa: BLE001 - one bad file must not stop the others
                if not isinstance(exc, HotspotsError):
                    log.exception("unexpected failure on %s", p)
                entry["error"] = plain_error(exc, p.name)
        say(total, total, "done")
    return {"store": store.store_name(db), "files": files}


def _already_loaded(conn, entry: dict, prior: dict) -> None:
    entry.update({k: prior[k] for k in ("format", "read", "accepted", "rejected", "unassigned",
                                        "lsoa_agreement", "reasons")})
    entry.update(already_loaded=prior["load_id"], inserted=0, replaced=0,
                 unchanged=prior["accepted"],
                 explained=explain_reasons(store.read_problems(conn, prior["load_id"])))


def _load_one(conn, p: Path, entry: dict, *, sha: str, key: str, config: Config, geo: dict,
              mapping: Mapping | None, today, force_older: bool, user, db, say) -> None:
    """Read, check and write one export; fill in its report ``entry``."""
    res, exported = _check_file(p, mapping, config, geo["layers"], geo["area"], today,
                                lambda done, total, step: say(1, step), 0, 3)
    say(2, f"{p.name}: writing {len(res.incidents):,} rows")
    written = store.write_load(conn, res, path=str(p), content_sha256=sha,
                               load_key=key, exported_at=exported, force_older=force_older,
                               user=user)
    inc = res.incidents
    kept = written["kept_newer"]
    entry.update(_counts(res))
    entry.update({
        "inserted": written["inserted"], "replaced": written["replaced"],
        "unchanged": written["unchanged"], "unassigned": int((inc["lsoa_code"] == "").sum()),
        "lsoa_agreement": res.lsoa_agreement, "load_id": written["load_id"],
        "already_loaded": written["already_loaded"], "exported_at": exported,
        "kept_newer": sum(k["n"] for k in kept),
        "note": kept_newer_note(kept, exported) if kept else None,
    })
    if len(res.rejected) and written["load_id"] is not None:
        out = store.rejected_dir(db) / f"{p.stem}.load{written['load_id']}.rejected.csv"
        out.parent.mkdir(parents=True, exist_ok=True)
        write_csv(res.rejected, out)
        entry["rejected_file"] = str(out)


def preview_files(paths: list[str | Path], *, config: Config,
                  store_file: str | Path | None = None, mapping: str | Path | None = None,
                  cache: str | Path | None = None, today: dt.date | None = None,
                  force_older: bool = False, sample: int = 20) -> dict:
    """What :func:`ingest_files` would do with these exports, without writing anything
    (the store is not even created): per file, :data:`PREVIEW_KEYS` with the counts of
    new (``inserted``), ``replaced``, ``unchanged``, ``kept_newer`` and ``rejected``
    records, and ``changes``: ``{"ref", "field", "old", "new"}`` of the changed fields of
    up to ``sample`` of the records that would be replaced.
    """
    db = store.store_target(store_file)
    layers = geography.read_layers(config, cache=cache)
    area = geography.study_area(layers, config, cache=cache)
    mapping_obj = read_mapping(mapping, config) if mapping else None
    conn = store.connect(db) if store.exists(db) else None
    files = []
    try:
        if conn is not None:
            check_store_area(conn, config, store_file=db, cache=cache)
        for p in map(Path, paths):
            entry = _entry(PREVIEW_KEYS, p)
            files.append(entry)
            try:
                res, exported = _check_file(p, mapping_obj, config, layers, area, today,
                                            lambda *a: None, 0, 3)
                key = load_key(geography.sha256_file(p), mapping_obj, config)
                got = (store.preview_load(conn, res, load_key=key, exported_at=exported,
                                          force_older=force_older, sample=sample)
                       if conn is not None else _all_new(res))
            except Exception as exc:  # noqa: BLE001 - one bad file must not stop the others
                if not isinstance(exc, HotspotsError):
                    log.exception("unexpected failure on %s", p)
                entry["error"] = plain_error(exc, p.name)
                continue
            entry.update(_counts(res))
            entry.update({k: got[k] for k in ("inserted", "replaced", "unchanged",
                                              "already_loaded")},
                         exported_at=exported, changes=got["changes"].to_dict("records"),
                         kept_newer=sum(k["n"] for k in got["kept_newer"]),
                         note=kept_newer_note(got["kept_newer"], exported)
                         if got["kept_newer"] else None)
    finally:
        if conn is not None:
            conn.close()
    return {"store": store.store_name(db), "files": files}


def _all_new(res: IngestResult) -> dict:
    """A preview against a store that does not exist yet: every record is new."""
    return {"inserted": len(res.incidents), "replaced": 0, "unchanged": 0, "kept_newer": [],
            "already_loaded": None, "changes": pd.DataFrame(columns=["ref", "field", "old",
                                                                      "new"])}


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
    with store.connection(store_file) as conn:
        period = period or month_period(latest_complete_month(conn))
        prev = period.previous()
        inc = store.read_incidents(conn, start=prev.start.replace(day=1).isoformat(),
                                   end=period.end.isoformat(), categories=categories)
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
    files = _write_areas(table, out / f"areas_{stem}", config, formats)
    save_map(area_map(table, meta, config=config, incidents=inc.loc[in_period(inc, period)],
                      measure=measure), html_path)
    top = table.head(5)
    meta.update({
        "files": {"table": str(csv_path), **files, "map": str(html_path)},
        "total_in_areas": int(table["n"].sum()),
        "top": [{"rank": int(r["rank"]), "code": r["code"], "name": r["name"], "n": int(r["n"]),
                 measure: None if pd.isna(r[measure]) else float(r[measure])}
                for _, r in top.iterrows()],
    })
    return meta


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


def _selection(config: Config, categories, sources, test_months: int, cell_sizes) -> str:
    """The key a backtest result is kept under: area, sources, categories and options."""
    return json.dumps({"area": config.code, "sources": sorted(sources) if sources else None,
                       "categories": sorted(categories) if categories else None,
                       "test_months": int(test_months),
                       "cell_sizes_m": [float(c) for c in cell_sizes]}, sort_keys=True)


def _backtest(inc: pd.DataFrame, area, config: Config, *, test_months: int,
              cell_sizes, progress=None) -> dict:
    from .forecast import backtest_result, concentration_backtest

    if inc.empty:
        raise HotspotsError("no incidents in the store for this selection: nothing to "
                            "backtest; load exports with `hotspots ingest FILE...` first.")
    result, _ = backtest_result(inc, area, n_tests=test_months, cell_sizes=cell_sizes,
                                progress=progress)
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
    with store.connection(store_file) as conn:
        inc = store.read_incidents(conn, end=period.end.isoformat(), categories=categories)
        result = store.read_backtest(conn, key)
        if result is None:
            everything = store.read_incidents(conn, categories=categories)
            result = _backtest(everything, area, config, test_months=TEST_MONTHS,
                               cell_sizes=CELL_SIZES_M)
            store.write_backtest(conn, key, result)
    winner = result["winner"]
    last = period.end.strftime("%Y-%m")
    inc = inc.loc[inc["period"] <= last]
    sizes = sorted({result["cell_sizes_m"][0], winner["cell_size_m"]})
    layer = forecast_layer(bin_incidents(inc, area, cell_sizes=sizes, last_month=last), winner)
    return layer, result


def backtest_kept(*, config: Config, store_file=None, categories: list[str] | None = None
                  ) -> bool:
    """Whether the store keeps the backtest :func:`forecast_for` needs for ``categories``
    (for the store's current data): the forecast layer then needs no backtest run."""
    from .forecast import CELL_SIZES_M, TEST_MONTHS

    key = _selection(config, categories, None, TEST_MONTHS, CELL_SIZES_M)
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
            "backtest_created": backtest["created"]}


def detect(*, config: Config, period: Period | None = None, categories: list[str] | None = None,
           store_file: str | Path | None = None, out_dir: str | Path = "out",
           cache: str | Path | None = None, cell_size_m: float | None = None,
           shape: str = "square", bandwidth_m: float | None = None, kernel: str = "quartic",
           method: str = "dbscan", fdr: bool = True,
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
    from .maps import hotspot_map

    with store.connection(store_file) as conn:
        period = period or month_period(latest_complete_month(conn))
        inc = store.read_incidents(conn, start=period.start.replace(day=1).isoformat(),
                                   end=period.end.isoformat(), categories=categories)
    left_out = month_only_left_out(inc, period)
    inc = inc.loc[in_period(inc, period)].reset_index(drop=True)
    check_enough_incidents(len(inc), period.label)
    layers = layers or geography.read_layers(config, cache=cache)
    area = geography.land_area(layers, config, cache=cache)
    spec = resolve_spec(inc["x"].to_numpy(), inc["y"].to_numpy(), area,
                        cell_size_m=cell_size_m, shape=shape, bandwidth_m=bandwidth_m,
                        kernel=kernel, method=method, fdr=fdr)
    found = analyse(inc, area, config=config, spec=spec, names=place_names(layers))
    cells, raster, places, chosen = found.cells, found.raster, found.places, list(spec.chosen)
    cell, bw = spec.grid.cell_size_m, spec.kde.bandwidth_m
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
    """Search method x cell size on the store's data (rolling origin over the latest
    ``test_months`` months, default 12, that have 3 months of history before them), say
    which wins at 5% coverage, and keep the result in the store for ``detect``, ``pack``
    and the app (for the default test months and cell sizes).

    Writes ``backtest.csv`` (per method and cell size: means over the test months at 5%).
    ``progress(done, total, step)`` is told of each method and cell size scored.
    Returns the result (see :func:`hotspots.forecast.backtest_result`) with
    ``definitions`` and ``files``.
    """
    from .evaluate import metric_definitions
    from .forecast import CELL_SIZES_M, TEST_MONTHS

    test_months = test_months or TEST_MONTHS
    sizes = tuple(cell_sizes_m or CELL_SIZES_M)
    with store.connection(store_file) as conn:
        inc = store.read_incidents(conn, categories=categories)
    if sources:
        inc = inc.loc[inc["source"].isin(sources)]
    layers = geography.read_layers(config, cache=cache)
    result = _backtest(inc, geography.land_area(layers, config, cache=cache), config,
                       test_months=test_months, cell_sizes=sizes, progress=progress)
    with store.connection(store_file) as conn:
        store.write_backtest(conn, _selection(config, categories, sources, test_months, sizes),
                             result)
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
