"""What the pages share: settings from the environment, cached loaders around the
package's public functions, and the sidebar filters read back from ``st.session_state``.

No analysis happens here: every figure comes from ``hotspots`` (the same functions the
CLI calls); this module only caches them and keys the caches on the store's content.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import re
import tempfile
import threading
import weakref
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import streamlit as st

from hotspots import auth, geography, jobs, maps, pack, placecard, rank, selection, store, trends
from hotspots.analysis import (
    CELL_RULE,
    GridSpec,
    analyse,
    check_enough_incidents,
    place_names,
)
from hotspots.area import check_store_area
from hotspots.config import Config, load_config, resolve_settings
from hotspots.errors import HotspotsError
from hotspots.schema import POLICE_UK_SOURCE
from hotspots.summary import Period, in_period, month_period, parse_period

#: Roles and the pages they may open (see streamlit_app.py).
FULL_ROLES = ("analyst", "chair")
ROLES = auth.ROLES
#: Largest upload, in MB; keep equal to server.maxUploadSize in .streamlit/config.toml.
MAX_UPLOAD_MB = 50
WORK = Path(tempfile.gettempdir()) / "hotspots-app"


def store_file() -> str:
    """The store: a file, or a postgresql:// server shared by several app instances."""
    return resolve_settings().store


def geodata_cache() -> str:
    return str(resolve_settings().geodata)


@st.cache_resource
def _config(path: str | None) -> Config:
    return load_config(path)


def config() -> Config:
    return _config(resolve_settings().config)


@st.cache_resource
def _layers(config_path: str | None, cache: str) -> dict[str, gpd.GeoDataFrame]:
    return geography.read_layers(config(), cache=cache)


def layers() -> dict[str, gpd.GeoDataFrame]:
    return _layers(resolve_settings().config, geodata_cache())


def check_area() -> str | None:
    """Why the store cannot be used with the configuration (built for another area or
    with other boundary files), or None when it can."""
    path = store_file()
    if not store.exists(path):  # a file, or a server (PostgreSQL) store
        return None
    conn = store.connect(path)
    try:
        check_store_area(conn, config(), store_file=path, cache=geodata_cache())
    except HotspotsError as exc:
        return str(exc)
    finally:
        conn.close()
    return None


def store_version() -> tuple:
    """What the cached results depend on: the loads and the decisions in the store (a
    detection run writes its places to the store too, so the file's mtime is no key)."""
    path = store_file()
    if not store.is_server(path) and not Path(path).is_file():
        return (path, 0, 0, 0)
    conn = store.connect(path)
    try:
        loads = store.read_loads(conn)
        # the latest load's time tells a store rebuilt at the same path from the old one
        return (path, *store.version(conn),
                str(loads["loaded_at"].iloc[-1]) if len(loads) else "")
    finally:
        conn.close()


@st.cache_resource
def _code_stamp() -> str:
    """The package's and the configuration's latest change: results kept on disk by an
    older version of either are not reused."""
    files = [*Path(pack.__file__).parent.rglob("*.py"), Path(resolve_settings().config or
                                                             pack.__file__)]
    return str(max(f.stat().st_mtime_ns for f in files if f.is_file()))


def _kept(out: Path, compute) -> dict:
    """``compute()``'s meta, kept as ``meta.json`` in its own folder ``out`` (keyed by the
    store's version): a new server process, or a session whose in-memory cache was
    dropped, reads it back instead of building the same files again. Kept only while
    every file it names is there."""
    kept = out / "meta.json"
    if kept.is_file():
        meta = json.loads(kept.read_text("utf-8"))
        if all(Path(f).is_file() for f in meta.get("files", {}).values()):
            return meta
    meta = compute()
    kept.write_text(json.dumps(meta, default=str), encoding="utf-8")
    return meta


def work_folder(*key) -> Path:
    """A folder of its own under WORK for the outputs of one computation (``key``)."""
    digest = hashlib.sha256(repr(key).encode()).hexdigest()[:16]
    out = WORK / digest
    out.mkdir(parents=True, exist_ok=True)
    return out


@st.cache_data(show_spinner=False)
def months(version: tuple) -> list[str]:
    """Months with incidents, newest first."""
    conn = store.connect(version[0])
    try:
        return store.months(conn)
    finally:
        conn.close()


@st.cache_data(show_spinner=False)
def latest_month(version: tuple) -> str | None:
    conn = store.connect(version[0])
    try:
        return jobs.latest_complete_month(conn)
    except HotspotsError:
        return None
    finally:
        conn.close()


#: What the Trends page reads of every incident (and its emerging hot spots of a year):
#: its series (source and category), month and day, point and stored areas; not a
#: record's own text, nor its order. London's 1.08M rows read in 0.6-0.8 s this way,
#: against 7.9 s with every column in key order.
SERIES_COLUMNS = ("source", "category", "period", "date", "x", "y", "ward_code", "lsoa_code")


@st.cache_data(show_spinner="Reading incidents...")
def incidents(version: tuple, start: str | None = None, end: str | None = None,
              categories: tuple[str, ...] | None = None,
              columns: tuple[str, ...] | None = None) -> pd.DataFrame:
    """:func:`hotspots.store.read_incidents`: every column in key order, or ``columns``
    in no particular order."""
    conn = store.connect(version[0])
    try:
        return store.read_incidents(conn, start=start, end=end,
                                    categories=list(categories) if categories else None,
                                    columns=list(columns) if columns else None)
    finally:
        conn.close()


@st.cache_data(show_spinner=False)
def coverage(version: tuple, categories: tuple[str, ...] = ()) -> pd.DataFrame:
    """:func:`hotspots.trends.coverage` of the store's incidents in ``categories``."""
    return trends.coverage(incidents(version, None, None, categories or None, SERIES_COLUMNS))


def period_of(key: str) -> Period:
    """A period from its cache key: a month ``YYYY-MM`` or ``START/END`` dates."""
    return month_period(key) if "/" not in key else parse_period(*key.split("/"))


@st.cache_data(show_spinner=False)
def last_dated_day(version: tuple) -> dt.date | None:
    """The latest day of a record dated by day (police.uk rows carry the 1st of their
    month only): where rolling periods end."""
    conn = store.connect(version[0])
    try:
        day = store.last_date(conn, except_source=POLICE_UK_SOURCE)
    finally:
        conn.close()
    return dt.date.fromisoformat(day) if day else None


@st.cache_data(show_spinner="Finding hotspots...")
def detect(version: tuple, month: str, categories: tuple[str, ...],
           cell_size_m: float | None = None) -> dict:
    """``hotspots.jobs.detect`` for a period (:func:`period_of` ``month``) and categories,
    on grid cells of ``cell_size_m`` (default chosen by rule), written to a folder of its
    own. Raises HotspotsError (too few incidents) like the CLI."""
    out = work_folder("detect", version[:3], month, categories, cell_size_m)
    return jobs.detect(config=config(), period=period_of(month),
                       categories=list(categories) or None, store_file=version[0],
                       out_dir=out, cache=geodata_cache(), layers=layers(),
                       cell_size_m=cell_size_m)


@st.cache_data(show_spinner="Finding hotspots...")
def places(version: tuple, month: str, categories: tuple[str, ...]) -> gpd.GeoDataFrame:
    """The places (EPSG:27700, biggest first) of :func:`hotspots.analysis.analyse` for a
    period (:func:`period_of` ``month``) and categories: the analysis ``detect`` runs, with
    nothing written. Raises HotspotsError (too few incidents) like the CLI."""
    period = period_of(month)
    inc = incidents(version, period.start.replace(day=1).isoformat(), period.end.isoformat(),
                    categories or None)
    inc = inc.loc[in_period(inc, period)].reset_index(drop=True)
    check_enough_incidents(len(inc), period.label)
    lay = layers()
    return analyse(inc, geography.land_area(lay, config()), config=config(),
                   names=place_names(lay)).places


def cell_size() -> float | None:
    """The grid cell size the analyst set in the sidebar (:func:`grid_cell_size`, the
    widget's state), None for the rule's size and for every other role."""
    return st.session_state.get("cell_size_m") if role() == "analyst" else None


def ranking(version: tuple, month: str, categories: tuple[str, ...] = ()) -> pack.Ranking:
    """:func:`hotspots.pack.rank_period` for a month and some categories (default: all) on
    the grid cell size set (:func:`cell_size`): the places the Tasking page ranks, shows
    and maps, nothing written. Every helper that reuses the page's ranking calls this, so
    they all read one ranking."""
    return _ranking(version, month, categories, cell_size())


@st.cache_resource(show_spinner="Ranking the places...", max_entries=16)
def _ranking(version: tuple, month: str, categories: tuple[str, ...],
             cell_size_m: float | None) -> pack.Ranking:
    """Kept in memory as it is (not copied on each rerun): nothing may modify it. A set of
    categories is ranked from the incidents a ranking of every category in memory read
    (:func:`_every_category`), not read from the store again: the same rows, ranked by
    the same code."""
    within = _every_category(version, month) if categories else None
    ranked = pack.rank_period(config=config(), store_file=version[0], cache=geodata_cache(),
                              period=month_period(month), categories=list(categories) or None,
                              layers=layers(), cell_size_m=cell_size_m, within=within)
    if not categories:
        with _rankings_read()[1]:
            _rankings_read()[0][(version, month)] = weakref.ref(ranked)
    return ranked


@st.cache_resource
def _rankings_read() -> tuple[dict, threading.Lock]:
    """The rankings of every category in :func:`_ranking`'s cache, by store version and
    month (weak references: gone when that cache drops them), and the lock guarding them."""
    return {}, threading.Lock()


def _every_category(version: tuple, month: str) -> pack.Ranking | None:
    """A ranking of every category of ``month`` on ``version`` still in memory (any grid
    cell size), else None."""
    kept, lock = _rankings_read()
    with lock:
        for key in [k for k, ref in kept.items() if ref() is None]:
            del kept[key]
        ref = kept.get((version, month))
    return ref() if ref is not None else None


@st.cache_resource
def forecast_jobs() -> tuple[ThreadPoolExecutor, dict, threading.Lock]:
    """The forecast worker (one thread) shared by every session, its jobs by
    :func:`forecast_key`, and the lock that guards the jobs."""
    return (ThreadPoolExecutor(max_workers=1, thread_name_prefix="hotspots-forecast"), {},
            threading.Lock())


def wait_for_forecasts() -> None:
    """Wait until every forecast job has finished (the benchmark and tests)."""
    for job in list(forecast_jobs()[1].values()):
        job.exception()


def forecast_key(version: tuple, month: str, categories: tuple[str, ...]) -> tuple:
    """What a forecast layer depends on: the store's loads (not its decisions), the month
    and the categories (not the grid cell size: the backtest's winner has its own)."""
    return (*version[:3], *version[4:], month, categories)


def forecast(version: tuple, month: str, categories: tuple[str, ...] = (), *,
             start: bool = True) -> Future | None:
    """:func:`hotspots.pack.forecast_of` for :func:`ranking`, on a worker thread of its own
    (a set of categories new to the store runs its backtest first: seconds), so the page
    can show the table and the map before the forecast layer is ready. One job a key,
    however many sessions ask. ``start=False``: the job if one was started, else None
    (the page starts it once its table and map are drawn, which the job would slow)."""
    pool, running, lock = forecast_jobs()
    key = forecast_key(version, month, categories)
    with lock:
        if key not in running:
            if not start:
                return None
            running[key] = pool.submit(pack.forecast_of, ranking(version, month, categories),
                                       config=config(), store_file=version[0],
                                       cache=geodata_cache())
            for old in list(running)[:-16]:  # the latest sixteen are kept
                running.pop(old, None)
        return running[key]


def forget_forecast(version: tuple, month: str, categories: tuple[str, ...] = ()) -> None:
    """Drop a failed forecast job once its failure has been shown, so the next visit
    tries again (a store busy for a moment should not leave the map without one)."""
    pool, running, lock = forecast_jobs()
    with lock:
        running.pop(forecast_key(version, month, categories), None)


def forecast_layer(job: Future):
    """The forecast job's layer and legend, waiting for it; None when it failed (the
    pack then draws its own). Safe on a download thread (no st.* call)."""
    return None if job.exception() is not None else job.result()


@st.cache_data(show_spinner=False)
def forecast_kept(version: tuple, month: str, categories: tuple[str, ...] = ()) -> bool:
    """Whether the store keeps the backtest the forecast layer for ``month`` and
    ``categories`` needs."""
    return jobs.backtest_kept(config=config(), period=month_period(month),
                              store_file=version[0], categories=list(categories) or None)


@st.cache_data(show_spinner="Drawing the map...", max_entries=32)
def tasking_map(version: tuple, month: str, categories: tuple[str, ...],
                with_forecast: bool, cell_size_m: float | None) -> str:
    """The pack's interactive map (:func:`hotspots.pack.interactive_map`) of the ranking on
    grid cells of ``cell_size_m`` (:func:`cell_size`, part of the key), with the forecast
    layer (waiting for :func:`forecast`) or without."""
    job = forecast(version, month, categories) if with_forecast else None
    layer = job.result() if job is not None else None
    return pack.interactive_map(_ranking(version, month, categories, cell_size_m),
                                config=config(), layers=layers(), forecast=layer)


def pack_folder(*key) -> Path:
    """The folder a pack built for ``key`` is kept in (with the package's version)."""
    return work_folder("pack", _code_stamp(), *key)


def pack_download(folder: Path, kind: str, forecast_job: Future | None = None,
                  **build) -> bytes:
    """The bytes of the pack's file ``kind`` (``html``, ``xlsx``...) built by
    :func:`hotspots.pack.build_pack` with ``build`` into ``folder`` when first asked for
    (kept there for the next time), drawing the page's forecast job's layer (waited for
    here, not run a second time). No st.* call: it runs on the download thread."""
    if forecast_job is not None:
        build["forecast"] = forecast_layer(forecast_job)
    meta = _kept(folder, lambda: pack.build_pack(out_dir=folder, **build))
    return Path(meta["files"][kind]).read_bytes()


@st.cache_data(show_spinner="Building the tasking pack...")
def build_pack(version: tuple, partner: bool, month: str | None = None,
               categories: tuple[str, ...] = ()) -> dict:
    """``hotspots.pack.build_pack`` for a month (default: the latest complete one) and
    some categories (default: all)."""
    out = work_folder("pack", version, _code_stamp(), partner, month, categories)
    return _kept(out, lambda: pack.build_pack(
        config=config(), store_file=version[0], out_dir=out, cache=geodata_cache(),
        partner=partner, period=month_period(month) if month else None,
        categories=list(categories) or None, layers=layers()))


@st.cache_data(show_spinner=False)
def area_table(version: tuple, month: str, level: str,
               categories: tuple[str, ...] = ()) -> tuple[pd.DataFrame, dict]:
    """``hotspots.jobs.summarise`` for a month and layer: the area table (with rates per
    1,000 residents where residents are known) and its meta."""
    out = work_folder("areas", version[:3], month, level, categories)
    meta = jobs.summarise(config=config(), period=month_period(month), level=level,
                          categories=list(categories) or None, store_file=version[0],
                          out_dir=out, cache=geodata_cache())
    return pd.read_csv(meta["files"]["table"], dtype={"code": str}), meta


@st.cache_data(show_spinner="Finding emerging hot spots...")
def emerging(version: tuple, month: str, categories: tuple[str, ...]
             ) -> tuple[gpd.GeoDataFrame | None, GridSpec | None]:
    """:func:`hotspots.trends.emerging_grid` over the 12 months to ``month``: the cells
    and classes the tasking pack counts (None with fewer than 10 months of data), and the
    grid they are on."""
    first = (pd.Period(month, "M") - 11).start_time.date().isoformat()
    inc = incidents(version, first, month_period(month).end.isoformat(), categories or None,
                    SERIES_COLUMNS)
    area, period = geography.land_area(layers(), config()), month_period(month)
    grid = trends.emerging_grid_spec(inc, area, period=period)
    return trends.emerging_grid(inc, area, period=period, grid=grid), grid


def window_start(month: str, months: int = 12) -> str:
    """The first day of the ``months`` months to ``month``: what the charts and the place
    cards read."""
    return (pd.Period(month, "M") - (months - 1)).start_time.date().isoformat()


@st.cache_data(show_spinner=False)
def land_area(config_path: str | None, cache: str):
    return geography.land_area(layers(), config())


def areas_bounds(codes: tuple[str, ...] = ()) -> list[list[float]] | None:
    """Where a map of the main layer's areas ``codes`` (none: every area) zooms to
    (:func:`hotspots.maps.focus_bounds`), worked out once."""
    return _areas_bounds(resolve_settings().config, geodata_cache(), codes)


@st.cache_data(show_spinner=False)
def _areas_bounds(config_path: str | None, cache: str, codes: tuple[str, ...]
                  ) -> list[list[float]] | None:
    areas = layers()[main_layer()].set_index("code").geometry
    return maps.focus_bounds(areas.reindex(list(codes)).dropna().tolist() if codes
                             else areas.tolist())


def period_places(version: tuple, month: str, categories: tuple[str, ...]) -> gpd.GeoDataFrame:
    """The places of the ranking on screen (:func:`ranking`), every one found, with their
    shapes (EPSG:27700); not to be modified (kept in memory, not copied)."""
    return ranking(version, month, categories).places


def window_incidents(version: tuple, month: str, categories: tuple[str, ...]
                     ) -> pd.DataFrame:
    """The incidents of the 12 months to ``month`` (:func:`window_start`) in ``categories``:
    the rows :func:`incidents` reads, taken from what :func:`ranking` read (its months
    reach back a year and a month; :data:`hotspots.ranking.WINDOW_COLUMNS`, in the store's
    row order) rather than read again; read when nothing ranks."""
    start, end = window_start(month), month_period(month).end.isoformat()
    try:
        inc = ranking(version, month, categories).rk.inc
    except HotspotsError:
        return incidents(version, start, end, categories or None)
    # the store's own test (ISO date text, start <= date), in the store's order; the place
    # column deleted from the copy (a third of the time of selecting the others)
    inc = inc.take(np.flatnonzero(inc["date"].to_numpy() >= start))
    del inc["unit"]
    inc.reset_index(drop=True, inplace=True)  # not a third copy
    return inc


@st.cache_data(show_spinner=False)
def place_of_incidents(version: tuple, month: str, categories: tuple[str, ...]) -> np.ndarray:
    """The place of each incident of the 12 months to ``month`` (:func:`incidents` with
    :func:`window_start`), "" for none."""
    inc = window_incidents(version, month, categories)
    return selection.place_of_incidents(inc, period_places(version, month, categories))


@st.cache_data(show_spinner=False)
def place_card(version: tuple, month: str, categories: tuple[str, ...], place_id: str,
               row: dict) -> str:
    """The place's card (:func:`hotspots.placecard.card_html`, the pack's renderer) for a
    row of the ranked table, as HTML with its stylesheet."""
    period = month_period(month)
    inc = window_incidents(version, month, categories)
    # in the order of source and ref, as the pack's cards (ties in the category mix)
    mine = inc.loc[place_of_incidents(version, month, categories) == place_id].sort_values(
        ["source", "ref"], kind="stable")
    shapes = period_places(version, month, categories).set_index("place_id").geometry
    cur = in_period(inc, period)
    density = cur.sum() / (land_area(resolve_settings().config, geodata_cache()).area / 1e6)
    ev = placecard.place_evidence(
        row, mine, period=period, decisions=decisions(),
        geometry=shapes.get(place_id), label_of=config().label, owner_names=store.OWNERS,
        explanation=rank.explain_rank(pd.Series(row), borough_density_per_km2=density,
                                      previous="previous month"))
    return ("<!doctype html><html><head><meta charset='utf-8'>" + placecard.card_css()
            + "<style>body{margin:0}</style></head><body>" + placecard.card_html(ev)
            + "</body></html>")


def record_run(version: tuple, month: str, categories: tuple[str, ...]) -> int:
    """Keep the places on screen as a detection run in the store (when a decision is
    recorded on one of them): the id the decision refers to."""
    period = month_period(month)
    conn = store.connect(version[0])
    try:
        return store.write_places(conn, period_places(version, month, categories),
                                  period=period.label, start=period.start.isoformat(),
                                  end=period.end.isoformat(), method="dbscan",
                                  params={"categories": list(categories), "from": "app"})
    finally:
        conn.close()


def places_gpkg(places: gpd.GeoDataFrame, keep: tuple[str, ...]) -> bytes:
    """The places ``keep`` (in their order) of ``places`` as the bytes of a GeoPackage,
    layer ``places``. No st.* call: it runs on the download thread when pressed."""
    chosen = places.set_index("place_id").loc[list(keep)].reset_index()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "places.gpkg"
        chosen.to_file(path, layer="places", driver="GPKG")
        return path.read_bytes()


def decisions() -> pd.DataFrame:
    conn = store.connect(store_file())
    try:
        return store.read_decisions(conn)
    finally:
        conn.close()


def run_places(run_id: int | None) -> pd.DataFrame:
    """The places of a detection run (the one on screen), in its order."""
    conn = store.connect(store_file())
    try:
        return store.read_places(conn, run_id)
    finally:
        conn.close()


def filters() -> dict:
    """The shared sidebar filters (set in streamlit_app.py)."""
    return {"month": st.session_state.get("f_month"),
            "categories": tuple(st.session_state.get("f_categories") or ()),
            "wards": tuple(st.session_state.get("f_wards") or ())}


def main_layer() -> str:
    """The layer the filters, the patrol map and the trends choose areas from (wards when
    configured, else the finest layer): ``study_area.main_layer``."""
    return config().main_layer


def area_names(key: str | None = None) -> dict[str, str]:
    """Area names by code in a layer (default: the main layer)."""
    lay = layers()[key or main_layer()]
    return dict(zip(lay["code"], lay["name"], strict=True))


def area_label(*, plural: bool = False) -> str:
    """The main layer's label ("Ward", "LSOA", ...)."""
    return config().layer_label(main_layer(), plural=plural)


def area_noun(*, plural: bool = False) -> str:
    """The main layer's label inside a sentence: "ward", "borough", "LSOA" (an acronym
    stays as it is)."""
    label = area_label(plural=plural)
    first = label.split()[0]
    return label if first.isupper() and len(first) > 1 else label.lower()


def one_area() -> str:
    """'A ward', 'An LSOA': the choice of one area of the main layer."""
    noun = area_noun()
    acronym = noun[:1].isupper()
    vowel = noun[0] in ("AEFHILMNORSX" if acronym else "aeiou")
    return f"{'An' if vowel else 'A'} {noun}"


def area_codes(frame: pd.DataFrame, key: str | None = None) -> np.ndarray:
    """The area (code) of each incident or place in a layer (default: the main layer):
    :func:`hotspots.selection.area_codes`."""
    return selection.area_codes(frame, layers(), config(), key)


#: Characters Markdown (and Streamlit's LaTeX) give a meaning to.
_MD_SPECIAL = re.compile(r"([\\`*_{}\[\]()#+\-.!|<>~$])")


def md(text) -> str:
    """``text`` for ``st.caption``/``st.markdown``/widget labels: Markdown's special
    characters escaped, so a name from a boundary file shows as written, never as a link,
    emphasis or markup (``[x](https://e.test)`` shows as those characters).
    """
    return _MD_SPECIAL.sub(r"\\\1", str(text))


def role() -> str:
    return st.session_state.get("role", "")


def grid_cell_size() -> float | None:
    """The grid cell size in metres the analyst sets in the sidebar (what ``hotspots pack
    --cell-size-m`` and ``detect --cell-size-m`` set: the grid of Gi*, the emerging classes
    and ranked cells); None, the default and for every other role, leaves it to the rule
    of :func:`hotspots.analysis.resolve_spec`. The value goes through the same
    ``resolve_spec`` as the CLI's, which checks it."""
    if role() != "analyst":
        return None
    return st.sidebar.number_input(
        "Grid cell size (m)", min_value=25.0, max_value=1000.0, value=None, step=25.0,
        key="cell_size_m", placeholder="automatic",
        help="Empty: chosen by rule (" + CELL_RULE + "). The size of the grid cells of "
             "the Gi* hotspots and the emerging classes, as `--cell-size-m`.")


def user() -> str:
    """The signed-in user's name, as the store's audit trail records it: the password user
    name, the OIDC e-mail, or "local analyst" in local mode (set in streamlit_app.py)."""
    return st.session_state.get("user", "")


def require(*allowed: str) -> None:
    """Stop the page unless the signed-in role is one of ``allowed`` (navigation already
    hides the page; this guards a page opened by its URL)."""
    if role() not in allowed:
        st.error("Your role cannot open this page.")
        st.stop()


def read_csv(path: str) -> pd.DataFrame:
    return pd.read_csv(path, dtype={"place_id": str})

