"""What the pages share: settings from the environment, cached loaders around the
package's public functions, and the sidebar filters read back from ``st.session_state``.

No analysis happens here: every figure comes from ``hotspots`` (the same functions the
CLI calls); this module only caches them and keys the caches on the store's content.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import tempfile
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
import streamlit as st

from hotspots import auth, geography, jobs, pack, store, trends
from hotspots.analysis import GridSpec, analyse, check_enough_incidents, place_names
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
    if not Path(path).is_file():
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
        return (path, *store.version(conn))
    finally:
        conn.close()


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


@st.cache_data(show_spinner="Reading incidents...")
def incidents(version: tuple, start: str | None = None, end: str | None = None,
              categories: tuple[str, ...] | None = None) -> pd.DataFrame:
    conn = store.connect(version[0])
    try:
        return store.read_incidents(conn, start=start, end=end,
                                    categories=list(categories) if categories else None)
    finally:
        conn.close()


@st.cache_data(show_spinner=False)
def coverage(version: tuple, categories: tuple[str, ...] = ()) -> pd.DataFrame:
    """:func:`hotspots.trends.coverage` of the store's incidents in ``categories``."""
    return trends.coverage(incidents(version, None, None, categories or None))


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
def detect(version: tuple, month: str, categories: tuple[str, ...]) -> dict:
    """``hotspots.jobs.detect`` for a period (:func:`period_of` ``month``) and categories,
    written to a folder of its own. Raises HotspotsError (too few incidents) like the CLI."""
    out = work_folder("detect", version[:3], month, categories)
    return jobs.detect(config=config(), period=period_of(month),
                       categories=list(categories) or None, store_file=version[0],
                       out_dir=out, cache=geodata_cache(), layers=layers())


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


@st.cache_data(show_spinner="Building the tasking pack...")
def build_pack(version: tuple, partner: bool, month: str | None = None,
               categories: tuple[str, ...] = ()) -> dict:
    """``hotspots.pack.build_pack`` for a month (default: the latest complete one) and
    some categories (default: all)."""
    out = work_folder("pack", version, partner, month, categories)
    return pack.build_pack(config=config(), store_file=version[0], out_dir=out,
                           cache=geodata_cache(), partner=partner,
                           period=month_period(month) if month else None,
                           categories=list(categories) or None, layers=layers())


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
    inc = incidents(version, first, month_period(month).end.isoformat(), categories or None)
    area, period = geography.land_area(layers(), config()), month_period(month)
    grid = trends.emerging_grid_spec(inc, area, period=period)
    return trends.emerging_grid(inc, area, period=period, grid=grid), grid


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


def one_area() -> str:
    """'A ward', 'An LSOA': the choice of one area of the main layer."""
    label = area_label()
    first = label.split()[0]
    acronym = first.isupper() and len(first) > 1
    vowel = label[0] in ("AEFHILMNORSX" if acronym else "AEIOU")
    return f"{'An' if vowel else 'A'} {label if acronym else label.lower()}"


def area_codes(frame: pd.DataFrame, key: str | None = None) -> np.ndarray:
    """The area (code) of each incident or place in a layer (default: the main layer);
    places are placed by a point on their surface (a table without geometry: by its
    LSOA, for layers built from LSOAs)."""
    key = key or main_layer()
    cfg = config()
    if key in cfg.stored_layers and f"{key}_code" in frame.columns:
        return frame[f"{key}_code"].to_numpy(dtype=object)
    if "x" not in frame.columns and "geometry" not in frame.columns:
        frame = frame.assign(x=np.nan, y=np.nan)
    elif "x" not in frame.columns:
        pts = shapely.point_on_surface(np.asarray(frame.geometry.values))
        frame = pd.DataFrame({"x": shapely.get_x(pts), "y": shapely.get_y(pts),
                              "lsoa_code": frame["lsoa_code"].to_numpy(dtype=object)})
    return geography.layer_codes(frame, layers(), cfg, key)


def role() -> str:
    return st.session_state.get("role", "")


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

