"""Exports -> clean incidents in EPSG:27700, with every rejected row kept and explained.

police.uk street-level CSVs are recognised by their header. Council exports (CSV or
XLSX) come with a mapping file (TOML) naming their columns::

    source = "lbth-asb"               # source system; references unique within it
    sheet = "Cases"                   # XLSX only, optional (default: first sheet)
    date_format = "%d/%m/%Y %H:%M"    # optional; default ISO 8601 or day-first dates

    [columns]                         # mapping field = export column
    reference = "Case Ref"
    datetime = "Reported"             # or: date = "...", time = "..."
    category = "Type"
    latitude = "Lat"                  # or: easting = "...", northing = "..."
    longitude = "Lon"
    location = "Address"              # optional
    caller = "Caller ID"              # optional
    description = "Details"           # optional
    count = "Canisters"               # optional, items per record

    [categories]                      # export value = taxonomy key
    "Rowdy behaviour" = "asb_nuisance"

Reading files (:func:`read_export`, :func:`read_mapping`) is kept apart from parsing
(:func:`to_incidents`), which does no I/O.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
from pyproj import Transformer

from .assign import assign_points
from .config import Config
from .errors import ConfigError, InputError
from .schema import INCIDENT_COLUMNS, MAPPING_FIELDS, POLICE_UK_HEADER, REJECTION_COLUMNS
from .validate import format_distance, problem_message

POLICE_UK_SOURCE = "policeuk"
_TO_BNG = Transformer.from_crs("EPSG:4326", "EPSG:27700", always_xy=True)
_DAYFIRST_FORMATS = ("%d/%m/%Y %H:%M", "%d/%m/%Y %H:%M:%S", "%d/%m/%Y", "%d-%m-%Y %H:%M",
                     "%d-%m-%Y")


@dataclass(frozen=True)
class Mapping:
    """How a council export's columns map to incident fields; see the module docstring."""

    source: str
    columns: dict[str, str]
    categories: dict[str, str] = field(default_factory=dict)
    date_format: str | None = None
    sheet: str | None = None
    path: str = ""


@dataclass(frozen=True)
class IngestResult:
    """What one export gave: accepted incidents, the problems, the rejected raw rows."""

    file: str
    format: str
    n_read: int
    incidents: pd.DataFrame  # schema.INCIDENT_COLUMNS
    problems: pd.DataFrame  # schema.REJECTION_COLUMNS, one row per problem
    rejected: pd.DataFrame  # raw columns + row + reasons, one row per rejected row
    lsoa_agreement: float | None

    @property
    def reasons(self) -> dict[str, int]:
        """Rejected rows per reason (a row with two problems counts under both)."""
        counts = self.problems.drop_duplicates(["row", "reason"])["reason"].value_counts()
        return {k: int(v) for k, v in sorted(counts.items())}


def read_mapping(path: str | Path, config: Config) -> Mapping:
    """Read and check a mapping file; raises ConfigError naming the file and key."""
    where = str(path)
    try:
        raw = tomllib.loads(Path(path).read_text("utf-8"))
    except OSError as exc:
        raise ConfigError(f"cannot read mapping file {where}: {exc.strerror}.") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"mapping file {where} is not valid TOML: {exc}") from exc
    if not raw.get("source"):
        raise ConfigError(f"{where}: no 'source'. Name the source system, e.g. "
                          "source = \"lbth-asb\" (references are unique within a source).")
    cols = raw.get("columns", {})
    unknown = sorted(set(cols) - set(MAPPING_FIELDS))
    if unknown:
        raise ConfigError(f"{where}: [columns] has unknown field(s) {unknown}; fields are "
                          f"{list(MAPPING_FIELDS)}.")
    for need in ("reference", "category"):
        if need not in cols:
            raise ConfigError(f"{where}: [columns] has no '{need}'. Name the export column "
                              f"holding the {need}.")
    if "datetime" not in cols and "date" not in cols:
        raise ConfigError(f"{where}: [columns] needs 'datetime' or 'date' (and optional "
                          "'time').")
    latlon, grid = {"latitude", "longitude"} & set(cols), {"easting", "northing"} & set(cols)
    if len(latlon) + len(grid) != 2 or (latlon and grid):
        raise ConfigError(f"{where}: [columns] needs either latitude and longitude or easting "
                          f"and northing; it has {sorted(latlon | grid) or 'neither'}.")
    cats = raw.get("categories", {})
    for value, key in cats.items():
        if key not in config.categories:
            raise ConfigError(f"{where}: [categories] \"{value}\" = '{key}' is not a taxonomy "
                              f"key; use one of {sorted(config.categories)}.")
    return Mapping(source=str(raw["source"]), columns=dict(cols), categories=dict(cats),
                   date_format=raw.get("date_format"), sheet=raw.get("sheet"), path=where)


def _cell_text(v) -> str:
    if v is None or (isinstance(v, float) and np.isnan(v)) or v is pd.NaT:
        return ""
    if isinstance(v, dt.datetime | pd.Timestamp):
        return v.isoformat(sep=" ")
    if isinstance(v, dt.date | dt.time):
        return v.isoformat()
    if isinstance(v, float) and v.is_integer():
        return str(int(v))
    return str(v)


def read_export(path: str | Path, *, sheet: str | None = None) -> pd.DataFrame:
    """Read a CSV or XLSX export with every cell as text ('' when empty).

    Raises
    ------
    InputError
        the file is missing, empty, not CSV/XLSX, or cannot be parsed.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: no such file.")
    suffix = path.suffix.lower()
    try:
        if suffix in (".xlsx", ".xlsm"):
            frame = pd.read_excel(path, sheet_name=sheet or 0, dtype=object, engine="openpyxl")
            frame = frame.apply(lambda col: col.map(_cell_text)).astype(object)
            frame.columns = [str(c) for c in frame.columns]
        elif suffix in (".csv", ".txt"):
            frame = pd.read_csv(path, dtype=str, keep_default_na=False, encoding="utf-8-sig",
                                engine="pyarrow")
        else:
            raise InputError(f"{path}: '{suffix}' is not a supported export; give CSV or XLSX.")
    except InputError:
        raise
    except ValueError as exc:  # pandas/pyarrow parse errors, missing sheet
        raise InputError(f"{path}: cannot be read as {suffix[1:].upper()}: {exc}") from exc
    except Exception as exc:  # openpyxl raises its own types for corrupt files
        raise InputError(f"{path}: cannot be read: {type(exc).__name__}: {exc}") from exc
    if frame.columns.empty:
        raise InputError(f"{path}: the file is empty (no header row).")
    return frame


def detect_format(frame: pd.DataFrame) -> str:
    """'policeuk' when the header is police.uk's street-level header, else 'council'."""
    return "policeuk" if tuple(frame.columns[: len(POLICE_UK_HEADER)]) == POLICE_UK_HEADER \
        else "council"


# --- parsing helpers -------------------------------------------------------------------

def _parse_dates(text: pd.Series, fmt: str | None) -> pd.Series:
    if fmt:
        return pd.to_datetime(text, format=fmt, errors="coerce")
    out = pd.to_datetime(text, format="ISO8601", errors="coerce")
    for f in _DAYFIRST_FORMATS:
        todo = out.isna() & (text != "")
        if not todo.any():
            break
        out[todo] = pd.to_datetime(text[todo], format=f, errors="coerce")
    return out


def _parse_times(text: pd.Series) -> pd.Series:
    out = pd.to_datetime(text, format="%H:%M", errors="coerce")
    todo = out.isna() & (text != "")
    if todo.any():
        out[todo] = pd.to_datetime(text[todo], format="%H:%M:%S", errors="coerce")
    return out


def _derived_refs(frame: pd.DataFrame) -> np.ndarray:
    """Stable keys for police.uk rows without a Crime ID (ASB): hash of the row's own
    fields plus its occurrence number among identical rows of the file."""
    cols = ["Month", "Falls within", "Longitude", "Latitude", "Location", "LSOA code",
            "Crime type"]
    joined = frame[cols].agg("|".join, axis=1)
    nth = joined.groupby(joined, sort=False).cumcount().astype(str)
    return np.array([hashlib.sha1(f"{j}|{k}".encode()).hexdigest()[:20]
                     for j, k in zip(joined, nth, strict=True)], dtype=object)


@dataclass
class _Problems:
    file: str
    rows: list = field(default_factory=list)

    def add(self, mask, row_no, field_name: str, values, reason: str, details=None) -> None:
        idx = np.nonzero(np.asarray(mask))[0]
        for j, i in enumerate(idx):
            value = str(values[i]) if values is not None else ""
            detail = "" if details is None else str(details[j] if np.ndim(details) else details)
            self.rows.append((self.file, int(row_no[i]), field_name, value, reason,
                              problem_message(self.file, int(row_no[i]), field_name, value,
                                              reason, detail)))

    def frame(self) -> pd.DataFrame:
        return pd.DataFrame(self.rows, columns=list(REJECTION_COLUMNS))


def _std_frame(frame: pd.DataFrame, fmt: str, mapping: Mapping | None, file: str) -> dict:
    """Pull the fields out of the export's own columns (strings, stripped)."""
    if fmt == "policeuk":
        ids = frame["Crime ID"].str.strip().to_numpy(dtype=object)
        missing = ids == ""
        if missing.any():
            ids[missing] = _derived_refs(frame.loc[missing])
        return {
            "ref": (ids, "Crime ID"), "when": (frame["Month"].str.strip(), "Month"),
            "category": (frame["Crime type"].str.strip(), "Crime type"),
            "a": (frame["Latitude"].str.strip(), "Latitude"),
            "b": (frame["Longitude"].str.strip(), "Longitude"), "grid": False,
            "location": frame["Location"], "source_lsoa": frame["LSOA code"].str.strip(),
        }
    assert mapping is not None
    cols = mapping.columns
    absent = [c for c in cols.values() if c not in frame.columns]
    if absent:
        raise InputError(f"{file}: column(s) {absent} named in mapping {mapping.path} are not "
                         f"in the export; its columns are {list(frame.columns)}. Fix the "
                         "mapping's [columns].")

    def col(name: str) -> pd.Series:
        if name in cols:
            return frame[cols[name]].astype(str).str.strip()
        return pd.Series("", index=frame.index, dtype=object)

    grid = "easting" in cols
    return {
        "ref": (col("reference").to_numpy(dtype=object), cols["reference"]),
        "when": (col("datetime") if "datetime" in cols else col("date"),
                 cols.get("datetime", cols.get("date"))),
        "time": (col("time"), cols.get("time")) if "time" in cols else None,
        "category": (col("category"), cols["category"]),
        "a": (col("northing" if grid else "latitude"), cols["northing" if grid else "latitude"]),
        "b": (col("easting" if grid else "longitude"), cols["easting" if grid else "longitude"]),
        "grid": grid, "location": col("location"), "caller": col("caller"),
        "description": col("description"),
        "count": (col("count"), cols.get("count")),
    }


def to_incidents(frame: pd.DataFrame, *, file: str, config: Config,
                 layers: dict[str, gpd.GeoDataFrame], area: shapely.Geometry,
                 mapping: Mapping | None = None, today: dt.date | None = None) -> IngestResult:
    """Check and convert one export's rows into incidents assigned to wards and LSOAs.

    Parameters
    ----------
    frame : the export as text (:func:`read_export`).
    file : the export's name, used in every message.
    config, layers, area : study-area configuration, its layers (EPSG:27700) and the
        study-area polygon.
    mapping : required unless the export is a police.uk street-level file.
    today : the date future dates are judged against (default: today).

    Returns
    -------
    IngestResult; ``n_read == len(incidents) + len(rejected)`` always.
    """
    fmt = detect_format(frame)
    if fmt == "council" and mapping is None:
        raise InputError(f"{file}: not a police.uk street-level file (its header starts "
                         f"{list(frame.columns[:4])}) and no mapping was given. Write a mapping "
                         "file naming its columns and pass it with --mapping.")
    today = today or dt.date.today()
    n = len(frame)
    row_no = np.arange(2, n + 2)
    std = _std_frame(frame, fmt, mapping, file)
    probs = _Problems(file)
    bad = np.zeros(n, dtype=bool)

    def flag(mask, field_name, values, reason, details=None):
        mask = np.asarray(mask, dtype=bool)
        probs.add(mask, row_no, field_name, values, reason, details)
        bad[mask] = True

    # reference
    ref, ref_col = std["ref"]
    flag(ref == "", ref_col, ref, "missing_reference")
    refs = pd.Series(ref)
    dup = refs.duplicated(keep="first").to_numpy() & (ref != "")
    if dup.any():
        first_row = pd.Series(row_no, index=refs).groupby(level=0).first()
        flag(dup, ref_col, ref, "duplicate_reference", first_row[refs[dup]].to_numpy())

    # date and time
    when, when_col = std["when"]
    flag(when == "", when_col, when.to_numpy(), "missing_date")
    if fmt == "policeuk":
        stamp = pd.to_datetime(when, format="%Y-%m", errors="coerce")
        hour = np.full(n, -1)
        fmt_note = " (police.uk months are YYYY-MM)"
    else:
        stamp = _parse_dates(when, mapping.date_format)
        fmt_note = f" in the format {mapping.date_format}" if mapping.date_format else ""
        if std["time"] is not None:
            ttext, tcol = std["time"]
            tparsed = _parse_times(ttext)
            flag(tparsed.isna() & (ttext != ""), tcol, ttext.to_numpy(), "unparseable_date",
                 " (times are HH:MM)")
            hour = np.where(tparsed.notna(), tparsed.dt.hour.fillna(0), -1).astype(int)
        else:
            has_time = when.str.contains(":", regex=False).to_numpy()
            hour = np.where(has_time & stamp.notna(), stamp.dt.hour.fillna(0), -1).astype(int)
    flag(stamp.isna() & (when != ""), when_col, when.to_numpy(), "unparseable_date", fmt_note)
    limit = pd.Timestamp(today + dt.timedelta(days=config.future_tolerance_days))
    flag((stamp > limit).to_numpy(), when_col, when.to_numpy(), "future_date",
         today.isoformat())

    # category
    cat_raw, cat_col = std["category"]
    if fmt == "policeuk":
        cat = cat_raw.map(config.police_uk_types)
    else:
        lookup = {k.casefold(): k for k in config.categories}
        lookup.update({c.label.casefold(): k for k, c in config.categories.items()})
        lookup.update({k.casefold(): v for k, v in mapping.categories.items()})
        cat = cat_raw.str.casefold().map(lookup)
    flag(cat.isna().to_numpy(), cat_col, cat_raw.to_numpy(), "unknown_category")

    # count
    if fmt == "council" and std["count"][1]:
        ctext, ccol = std["count"]
        cnum = pd.to_numeric(ctext, errors="coerce")
        badc = (ctext != "") & (cnum.isna() | (cnum < 0) | (cnum % 1 != 0))
        flag(badc.to_numpy(), ccol, ctext.to_numpy(), "invalid_count")
        quantity = cnum.where(~badc & cnum.notna(), 1).astype(int).to_numpy()
    else:
        quantity = np.ones(n, dtype=int)

    # coordinates: a = latitude / northing, b = longitude / easting
    x, y, coord_bad = _coordinates(std, area, config, flag)
    bad |= coord_bad

    ok = ~bad
    out = pd.DataFrame({
        "source": POLICE_UK_SOURCE if fmt == "policeuk" else mapping.source,
        "ref": ref[ok],
        "category": cat[ok].to_numpy(dtype=object),
        "category_raw": cat_raw[ok].to_numpy(dtype=object),
        "period": stamp[ok].dt.strftime("%Y-%m").to_numpy(dtype=object),
        "date": stamp[ok].dt.strftime("%Y-%m-%d").to_numpy(dtype=object),
        "hour": hour[ok],
        "x": x[ok], "y": y[ok],
        "location": std["location"][ok].to_numpy(dtype=object),
        "caller_key": (std["caller"][ok].to_numpy(dtype=object) if "caller" in std else ""),
        "description": (std["description"][ok].to_numpy(dtype=object)
                        if "description" in std else ""),
        "quantity": quantity[ok],
        "source_lsoa": (std["source_lsoa"][ok].to_numpy(dtype=object)
                        if "source_lsoa" in std else ""),
        "file": file,
        "row": row_no[ok],
    })
    out["location_key"] = _location_keys(out, fmt, config.location_key_m)
    agreement = _assign(out, layers, config)
    problems = probs.frame().sort_values(["row", "field"], kind="stable", ignore_index=True)
    rejected = frame.loc[bad].copy()
    rejected.insert(0, "row", row_no[bad])
    msgs = problems.groupby("row")["message"].agg(" | ".join)
    rejected["reasons"] = rejected["row"].map(msgs)
    return IngestResult(file=file, format=fmt, n_read=n,
                        incidents=out[list(INCIDENT_COLUMNS)].reset_index(drop=True),
                        problems=problems, rejected=rejected.reset_index(drop=True),
                        lsoa_agreement=agreement)


def _coordinates(std: dict, area, config: Config, flag):
    (a_text, a_col), (b_text, b_col) = std["a"], std["b"]
    grid = std["grid"]
    n = len(a_text)
    a = pd.to_numeric(a_text, errors="coerce").to_numpy(dtype=float)
    b = pd.to_numeric(b_text, errors="coerce").to_numpy(dtype=float)
    bad = np.zeros(n, dtype=bool)
    a_str, b_str = a_text.to_numpy(), b_text.to_numpy()
    for text, col in ((a_str, a_col), (b_str, b_col)):
        m = (text == "") & ~bad
        flag(m, col, text, "missing_coordinates")
        bad |= m
    for text, col, vals in ((a_str, a_col, a), (b_str, b_col, b)):
        m = ~bad & ~np.isfinite(vals)
        flag(m, col, text, "unparseable_coordinates")
        bad |= m
    m = ~bad & (a == 0) & (b == 0)
    flag(m, f"{a_col}/{b_col}", np.char.add(np.char.add(a_str.astype(str), ", "),
                                             b_str.astype(str)), "zero_coordinates")
    bad |= m
    both = np.char.add(np.char.add(a_str.astype(str), ", "), b_str.astype(str))
    if grid:
        m = ~bad & (np.abs(a) <= 90) & (np.abs(b) <= 180)
        flag(m, f"{b_col}/{a_col}", both, "latlon_in_grid")
        bad |= m
        x, y = b.copy(), a.copy()
        sx, sy = a, b
        swap_reason = "swapped_easting_northing"
    else:
        m = ~bad & ((np.abs(a) > 90) | (np.abs(b) > 180))
        flag(m, f"{a_col}/{b_col}", both, "grid_in_latlon")
        bad |= m
        x, y = np.full(n, np.nan), np.full(n, np.nan)
        good = ~bad
        x[good], y[good] = _TO_BNG.transform(b[good], a[good])
        sx, sy = np.full(n, np.nan), np.full(n, np.nan)
        swap_ok = good & (np.abs(b) <= 90)
        sx[swap_ok], sy[swap_ok] = _TO_BNG.transform(a[swap_ok], b[swap_ok])
        swap_reason = "swapped_latlon"
    x[bad], y[bad] = np.nan, np.nan
    shapely.prepare(area)
    inside = ~bad & np.isfinite(x) & shapely.intersects_xy(area, np.nan_to_num(x), np.nan_to_num(y))
    out = ~bad & ~inside
    if out.any():
        swapped = out & np.isfinite(sx) & shapely.intersects_xy(area, np.nan_to_num(sx),
                                                                np.nan_to_num(sy))
        flag(swapped, f"{a_col}/{b_col}", both, swap_reason, config.name)
        far = out & ~swapped
        if far.any():
            fin = np.isfinite(x[far]) & np.isfinite(y[far])
            dist = np.full(fin.shape, np.inf)
            dist[fin] = shapely.distance(area, shapely.points(x[far][fin], y[far][fin]))
            words = [f"{format_distance(d)} outside {config.name}" if np.isfinite(d)
                     else f"far outside {config.name} (not a valid position)" for d in dist]
            flag(far, f"{a_col}/{b_col}", both, "outside_study_area", words)
        bad |= out
    return x, y, bad


def _location_keys(out: pd.DataFrame, fmt: str, key_m: int) -> np.ndarray:
    """police.uk: the map point; council: the address when it has a house or flat number,
    else BNG coordinates rounded to ``key_m`` metres (a street name alone is no address)."""
    step = 1 if fmt == "policeuk" else key_m
    gx = (np.round(out["x"].to_numpy() / step) * step).astype(np.int64).astype(str)
    gy = (np.round(out["y"].to_numpy() / step) * step).astype(np.int64).astype(str)
    keys = np.char.add(np.char.add(np.char.add("xy:", gx), ":"), gy).astype(object)
    if fmt == "council":
        loc = out["location"].astype(str)
        addr = loc.str.contains(r"\d", regex=True).to_numpy()
        if addr.any():
            norm = loc[addr].str.casefold().str.replace(r"[^\w]+", " ", regex=True).str.strip()
            keys[addr] = ("addr:" + norm).to_numpy(dtype=object)
    return keys


def _assign(out: pd.DataFrame, layers: dict[str, gpd.GeoDataFrame], config: Config):
    x, y = out["x"].to_numpy(), out["y"].to_numpy()
    for key, col in (("ward", "ward_code"), ("lsoa", "lsoa_code")):
        codes = np.append(layers[key]["code"].to_numpy(dtype=object), "")
        out[col] = codes[assign_points(x, y, layers[key], nearest_max_m=config.nearest_max_m)]
    src = out["source_lsoa"].to_numpy(dtype=object)
    has = src != ""
    if not has.any():
        return None
    agree = has & (src == out["lsoa_code"].to_numpy(dtype=object))
    if "lsoa11" in layers:
        old = has & ~agree & np.isin(src, layers["lsoa11"]["code"].to_numpy(dtype=object))
        if old.any():
            codes = np.append(layers["lsoa11"]["code"].to_numpy(dtype=object), "")
            got = codes[assign_points(x[old], y[old], layers["lsoa11"],
                                      nearest_max_m=config.nearest_max_m)]
            agree[np.nonzero(old)[0][got == src[old]]] = True
    return float(agree.sum() / has.sum())


