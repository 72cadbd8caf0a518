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

import csv
import datetime as dt
import hashlib
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
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
        # a date-only cell comes back as midnight: keep it a date, so no hour is invented
        return v.date().isoformat() if v.time() == dt.time(0) else v.isoformat(sep=" ")
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
            frame = frame.apply(lambda col: col.map(_cell_text))
            frame.columns = [str(c) for c in frame.columns]
            frame = _as_text(frame)
        elif suffix in (".csv", ".txt"):
            frame = _read_csv_text(path)
        else:
            raise InputError(f"{path}: '{suffix}' is not a supported export; give CSV or XLSX.")
    except InputError:
        raise
    except (ValueError, pa.ArrowInvalid) as exc:  # parse errors, missing sheet
        raise InputError(f"{path}: cannot be read as {suffix[1:].upper()}: {exc}") from exc
    except Exception as exc:  # openpyxl raises its own types for corrupt files
        raise InputError(f"{path}: cannot be read: {type(exc).__name__}: {exc}") from exc
    if frame.columns.empty:
        raise InputError(f"{path}: the file is empty (no header row).")
    return frame


def _encoding(path: Path) -> str:
    """UTF-8 (with or without a byte-order mark), else Windows-1252: what Excel's plain
    "CSV" save writes on a UK machine."""
    with open(path, "rb") as fh:
        data = fh.read()
    try:
        data.decode("utf-8")
        return "utf-8-sig" if data.startswith(b"\xef\xbb\xbf") else "utf-8"
    except UnicodeDecodeError:
        return "cp1252"


def _read_csv_text(path: Path) -> pd.DataFrame:
    """Every column as Arrow-backed text, '' for empty cells (no NA guessing)."""
    encoding = _encoding(path)
    with open(path, newline="", encoding=encoding) as fh:
        header = next(csv.reader(fh), None)
    if not header:
        raise InputError(f"{path}: the file is empty (no header row).")
    if len(set(header)) != len(header):
        dups = sorted({h for h in header if header.count(h) > 1})
        raise InputError(f"{path}: the header repeats column(s) {dups}; give each column its "
                         "own name.")
    arrow_enc = "cp1252" if encoding == "cp1252" else "utf8"
    types = pacsv.ConvertOptions(column_types={h: pa.string() for h in header},
                                 strings_can_be_null=False, quoted_strings_can_be_null=False)
    try:
        table = pacsv.read_csv(path, read_options=pacsv.ReadOptions(encoding=arrow_enc),
                               parse_options=pacsv.ParseOptions(ignore_empty_lines=False),
                               convert_options=types)
        malformed: list[tuple[int, str]] = []
    except pa.ArrowInvalid as exc:
        if "columns" not in str(exc):
            raise
        # some rows have the wrong number of fields (often an unquoted comma in free
        # text): read again keeping every other row and note those rows by number
        malformed = []

        def keep(row) -> str:
            malformed.append((row.number, f"{row.actual_columns} fields where the header "
                                          f"has {row.expected_columns}", row.text))
            return "skip"

        table = pacsv.read_csv(
            path, read_options=pacsv.ReadOptions(encoding=arrow_enc, use_threads=False),
            parse_options=pacsv.ParseOptions(ignore_empty_lines=False,
                                             invalid_row_handler=keep),
            convert_options=types)
    frame = pd.DataFrame({h: pd.arrays.ArrowStringArray(table.column(h).combine_chunks())
                          for h in table.column_names})
    if malformed:
        bad = {m[0] for m in malformed}
        rows = [r for r in range(2, len(frame) + len(bad) + 2) if r not in bad]
        frame.attrs["row_numbers"] = np.array(rows)
        frame.attrs["malformed"] = malformed
    return frame


def _as_text(frame: pd.DataFrame) -> pd.DataFrame:
    """Arrow-backed strings, '' for missing: fast vectorised string operations."""
    if all(isinstance(t, pd.StringDtype) and t.storage == "pyarrow" for t in frame.dtypes):
        return frame
    return frame.astype("string[pyarrow]").fillna("")


def detect_format(frame: pd.DataFrame) -> str:
    """'policeuk' when the header is police.uk's street-level header, else 'council'."""
    return "policeuk" if tuple(frame.columns[: len(POLICE_UK_HEADER)]) == POLICE_UK_HEADER \
        else "council"


# --- parsing helpers -------------------------------------------------------------------

def _parse_dates(text: pd.Series, fmt: str | None) -> pd.Series:
    """Dates as naive UK local time. With ``fmt``, that format first; then ISO 8601 (an
    offset such as +01:00 is converted to London time) and day-first UK forms."""
    out = pd.Series(pd.NaT, index=text.index, dtype="datetime64[ns]")
    if fmt:
        out = pd.to_datetime(text, format=fmt, errors="coerce")
    todo = (out.isna() & (text != "")).to_numpy(dtype=bool)
    offset = text.str.contains(r"(?:[+-]\d\d:?\d\d|Z)$", regex=True).to_numpy(dtype=bool)
    plain, zoned = todo & ~offset, todo & offset
    if plain.any():
        out[plain] = pd.to_datetime(text[plain], format="ISO8601", errors="coerce")
    if zoned.any():  # an offset is converted to London time
        out[zoned] = (pd.to_datetime(text[zoned], format="ISO8601", errors="coerce", utc=True)
                      .dt.tz_convert("Europe/London").dt.tz_localize(None))
    if fmt:
        return out
    for f in _DAYFIRST_FORMATS:
        todo = (out.isna() & (text != "")).to_numpy(dtype=bool)
        if not todo.any():
            break
        out[todo] = pd.to_datetime(text[todo], format=f, errors="coerce")
    return out


def _parse_times(text: pd.Series) -> pd.Series:
    out = pd.to_datetime(text, format="%H:%M", errors="coerce")
    todo = (out.isna() & (text != "")).to_numpy(dtype=bool)
    if todo.any():
        out[todo] = pd.to_datetime(text[todo], format="%H:%M:%S", errors="coerce")
    return out


def _numbers(text: pd.Series) -> np.ndarray:
    """Text -> float, NaN where it is not a number (Arrow cast first: fast when clean)."""
    try:
        arr = pc.cast(pa.array(text.array), pa.float64())
        return arr.to_numpy(zero_copy_only=False)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        return pd.to_numeric(text.astype(object), errors="coerce").to_numpy(dtype=float)


def _take_text(values, codes: np.ndarray) -> pd.arrays.ArrowStringArray:
    """``values[codes]`` as Arrow-backed text: cheap when few distinct values repeat."""
    arr = pa.array(np.asarray(values, dtype=object), pa.large_string())
    return pd.arrays.ArrowStringArray(arr.take(pa.array(codes)))


def _day_strings(stamp: pd.Series, unit: str) -> pd.arrays.ArrowStringArray:
    """'YYYY-MM-DD' (unit 'D') or 'YYYY-MM' (unit 'M'), formatting each distinct day once."""
    days = stamp.to_numpy().astype(f"datetime64[{unit}]")
    uniq, inv = np.unique(days, return_inverse=True)
    return _take_text(np.datetime_as_string(uniq, unit=unit), inv.ravel())


def _constant(value: str, n: int) -> pd.arrays.ArrowStringArray:
    return _take_text([value], np.zeros(n, dtype=np.int64))


def _derived_refs(frame: pd.DataFrame) -> np.ndarray:
    """Stable keys for police.uk rows without a Crime ID (ASB): a hash of the row's parsed
    values (month, force, coordinates to 6 decimals, location text normalised, LSOA, type)
    plus its occurrence number among identical rows of the file. Parsed, not raw, so a
    file re-saved by a spreadsheet (trailing zeros dropped, spaces trimmed) keeps its keys.
    """
    def text(col: str) -> pd.Series:
        return (frame[col].astype(object).fillna("").astype(str).str.strip().str.casefold()
                .str.replace(r"\s+", " ", regex=True))

    coords = [pd.Series(_numbers(frame[c].str.strip()), index=frame.index)
              .map(lambda v: "" if np.isnan(v) else f"{v:.6f}")
              for c in ("Longitude", "Latitude")]
    joined = (text("Month") + "|" + text("Falls within") + "|" + coords[0] + "|" + coords[1]
              + "|" + text("Location") + "|" + text("LSOA code") + "|" + text("Crime type"))
    nth = joined.groupby(joined, sort=False).cumcount().astype(str)
    return np.array([hashlib.sha1(f"{j}|{k}".encode()).hexdigest()[:20]
                     for j, k in zip(joined, nth, strict=True)], dtype=object)


@dataclass
class _Problems:
    file: str
    row_no: np.ndarray
    bad: np.ndarray
    rows: list = field(default_factory=list)

    def flag(self, mask, field_name: str, values, reason: str, details=None) -> None:
        """Record a problem for each row in ``mask``; ``values`` is an array or a function
        of the row indices (so values are formatted only for the rows that need them)."""
        idx = np.nonzero(np.asarray(mask, dtype=bool))[0]
        if not len(idx):
            return
        shown = values(idx) if callable(values) else np.asarray(values, dtype=object)[idx]
        for j, i in enumerate(idx):
            detail = "" if details is None else str(details[j] if np.ndim(details) else details)
            row = int(self.row_no[i])
            self.rows.append((self.file, row, field_name, str(shown[j]), reason,
                              problem_message(self.file, row, field_name, str(shown[j]),
                                              reason, detail)))
        self.bad[idx] = True

    def frame(self) -> pd.DataFrame:
        return pd.DataFrame(self.rows, columns=list(REJECTION_COLUMNS))


def _std_frame(frame: pd.DataFrame, fmt: str, mapping: Mapping | None, file: str) -> dict:
    """Pull the fields out of the export's own columns (Arrow text, stripped)."""
    empty = pd.Series("", index=frame.index, dtype="string[pyarrow]")
    if fmt == "policeuk":
        ids = frame["Crime ID"].str.strip().to_numpy(dtype=object)
        missing = ids == ""
        if missing.any():
            ids[missing] = _derived_refs(frame.loc[missing])
        return {
            "ref": (ids, "Crime ID"), "when": (frame["Month"].str.strip(), "Month"),
            "time": None, "category": (frame["Crime type"].str.strip(), "Crime type"),
            "a": (frame["Latitude"].str.strip(), "Latitude"),
            "b": (frame["Longitude"].str.strip(), "Longitude"), "grid": False,
            "location": frame["Location"].str.strip(), "caller": empty, "description": empty,
            "count": (empty, None), "source_lsoa": frame["LSOA code"].str.strip(),
        }
    assert mapping is not None
    cols = mapping.columns
    absent = [c for c in cols.values() if c not in frame.columns]
    if absent:
        raise InputError(f"{file}: column(s) {absent} named in mapping {mapping.path} are not "
                         f"in the export; its columns are {list(frame.columns)}. Fix the "
                         "mapping's [columns].")

    def col(name: str) -> pd.Series:
        return frame[cols[name]].str.strip() if name in cols else empty

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
        "description": col("description"), "count": (col("count"), cols.get("count")),
        "source_lsoa": empty,
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
        study-area polygon (the union of the boundary layer).
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
    malformed = frame.attrs.get("malformed", [])
    row_no = np.asarray(frame.attrs.get("row_numbers", np.arange(2, len(frame) + 2)))
    frame = _as_text(frame)
    today = today or dt.date.today()
    n = len(frame)
    std = _std_frame(frame, fmt, mapping, file)
    probs = _Problems(file, row_no, np.zeros(n, dtype=bool))
    flag = probs.flag

    # reference
    ref, ref_col = std["ref"]
    flag(ref == "", ref_col, ref, "missing_reference")
    refs = pd.Series(ref)
    dup = refs.duplicated(keep="first").to_numpy() & (ref != "")
    if dup.any():
        first_row = pd.Series(row_no, index=refs).groupby(level=0).first()
        flag(dup, ref_col, ref, "duplicate_crime_id" if fmt == "policeuk"
             else "duplicate_reference", first_row[refs[dup]].to_numpy())

    # date and time
    when, when_col = std["when"]
    when_txt = lambda idx: when.iloc[idx].to_numpy(dtype=object)  # noqa: E731
    no_date = (when == "").to_numpy(dtype=bool)
    flag(no_date, when_col, when_txt, "missing_date")
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
            flag((tparsed.isna() & (ttext != "")).to_numpy(dtype=bool), tcol,
                 lambda idx: ttext.iloc[idx].to_numpy(dtype=object), "unparseable_date",
                 " (times are HH:MM)")
            hour = np.where(tparsed.notna(), tparsed.dt.hour.fillna(0), -1).astype(int)
        else:
            has_time = when.str.contains(":", regex=False).to_numpy(dtype=bool)
            hour = np.where(has_time & stamp.notna(), stamp.dt.hour.fillna(0), -1).astype(int)
    flag(stamp.isna().to_numpy() & ~no_date, when_col, when_txt, "unparseable_date", fmt_note)
    limit = pd.Timestamp(today + dt.timedelta(days=config.future_tolerance_days))
    flag((stamp.dt.normalize() > limit).to_numpy(), when_col, when_txt, "future_date",
         today.isoformat())

    # category: look up each distinct value once
    cat_raw, cat_col = std["category"]
    codes, uniques = pd.factorize(cat_raw)
    if fmt == "policeuk":
        known = [config.police_uk_types.get(u) for u in uniques]
    else:
        lookup = {k.casefold(): k for k in config.categories}
        lookup.update({c.label.casefold(): k for k, c in config.categories.items()})
        lookup.update({k.casefold(): v for k, v in mapping.categories.items()})
        known = [lookup.get(str(u).casefold()) for u in uniques]
    cat_codes = np.arange(len(known) + 1)[codes]  # codes of -1 (empty cells) -> the last
    cat_known = np.array([k is not None for k in known] + [False])[cat_codes]
    flag(~cat_known, cat_col, lambda idx: cat_raw.iloc[idx].to_numpy(dtype=object),
         "unknown_category")

    # count (items per record)
    ctext, ccol = std["count"]
    if ccol:
        cnum = _numbers(ctext)
        given = (ctext != "").to_numpy(dtype=bool)
        badc = given & ~(np.isfinite(cnum) & (cnum >= 0) & (np.mod(cnum, 1) == 0))
        flag(badc, ccol, lambda idx: ctext.iloc[idx].to_numpy(dtype=object), "invalid_count")
        quantity = np.where(given & ~badc, np.nan_to_num(cnum), 1).astype(int)
    else:
        quantity = np.ones(n, dtype=int)

    # coordinates: a = latitude / northing, b = longitude / easting
    x, y, boundary_idx = _coordinates(std, area, layers[config.boundary_layer], config, flag,
                                      probs.bad)

    ok = ~probs.bad
    okd = stamp[ok]
    n_ok = int(ok.sum())
    # text columns stay Arrow-backed or categorical: no copying into one object block
    cols = {
        "source": _constant(POLICE_UK_SOURCE if fmt == "policeuk" else mapping.source, n_ok),
        "ref": ref[ok],
        "category": _take_text(known + [""], cat_codes[ok]),
        "category_raw": cat_raw[ok],
        "period": _day_strings(okd, "M"),
        "date": _day_strings(okd, "D"),
        "hour": hour[ok],
        "x": x[ok], "y": y[ok],
        "location": std["location"][ok],
        "location_key": _location_keys(x[ok], y[ok], std["location"][ok], fmt,
                                       config.location_key_m),
        "caller_key": std["caller"][ok],
        "description": std["description"][ok],
        "quantity": quantity[ok],
    }
    agreement = _assign(cols, std["source_lsoa"][ok].to_numpy(dtype=object), layers, config,
                        {config.boundary_layer: boundary_idx[ok]})
    cols.update({"file": _constant(file, n_ok), "row": row_no[ok]})
    out = pd.DataFrame({c: (v.array if isinstance(v, pd.Series) else v)
                        for c, v in cols.items()}, columns=list(INCIDENT_COLUMNS))
    for line, detail, text in malformed:
        probs.rows.append((file, int(line), "(whole row)", text, "malformed_row",
                           problem_message(file, int(line), "(whole row)", text,
                                           "malformed_row", detail)))
    problems = probs.frame().sort_values(["row", "field"], kind="stable", ignore_index=True)
    rejected = frame.loc[probs.bad].astype(object)
    rejected.insert(0, "row", row_no[probs.bad])
    if malformed:
        raw = pd.DataFrame({"row": [m[0] for m in malformed], "raw_text": [m[2] for m in
                                                                          malformed]})
        rejected = pd.concat([rejected, raw], ignore_index=True).sort_values(
            "row", kind="stable").fillna("")
    msgs = problems.groupby("row")["message"].agg(" | ".join)
    rejected["reasons"] = rejected["row"].map(msgs)
    return IngestResult(file=file, format=fmt, n_read=n + len(malformed),
                        incidents=out,
                        problems=problems, rejected=rejected.reset_index(drop=True),
                        lsoa_agreement=agreement)


def _coordinates(std: dict, area, boundary: gpd.GeoDataFrame, config: Config, flag, bad):
    """Check coordinates, project to EPSG:27700, and place each point in the boundary layer
    (the study area is that layer's union: a point is inside iff it has a boundary area)."""
    (a_text, a_col), (b_text, b_col) = std["a"], std["b"]
    grid = std["grid"]
    n = len(a_text)
    a, b = _numbers(a_text), _numbers(b_text)
    a_str = lambda idx: a_text.iloc[idx].to_numpy(dtype=object)  # noqa: E731
    b_str = lambda idx: b_text.iloc[idx].to_numpy(dtype=object)  # noqa: E731
    both = lambda idx: [f"{p}, {q}" for p, q in zip(a_str(idx), b_str(idx),  # noqa: E731
                                                   strict=True)]
    fld = f"{a_col}/{b_col}"
    coord_bad = np.zeros(n, dtype=bool)
    for text, col, show in ((a_text, a_col, a_str), (b_text, b_col, b_str)):
        m = (text == "").to_numpy(dtype=bool) & ~coord_bad
        flag(m, col, show, "missing_coordinates")
        coord_bad |= m
    for vals, col, show in ((a, a_col, a_str), (b, b_col, b_str)):
        m = ~coord_bad & ~np.isfinite(vals)
        flag(m, col, show, "unparseable_coordinates")
        coord_bad |= m
    m = ~coord_bad & (a == 0) & (b == 0)
    flag(m, fld, both, "zero_coordinates")
    coord_bad |= m
    if grid:
        m = ~coord_bad & (np.abs(a) <= 90) & (np.abs(b) <= 180)
        flag(m, f"{b_col}/{a_col}", lambda idx: [f"{q}, {p}" for p, q in
                                                 zip(a_str(idx), b_str(idx), strict=True)],
             "latlon_in_grid")
        coord_bad |= m
        x, y = np.where(coord_bad, np.nan, b), np.where(coord_bad, np.nan, a)
        swap_reason = "swapped_easting_northing"
    else:
        m = ~coord_bad & ((np.abs(a) > 90) | (np.abs(b) > 180))
        flag(m, fld, both, "grid_in_latlon")
        coord_bad |= m
        x, y = np.full(n, np.nan), np.full(n, np.nan)
        good = ~coord_bad
        x[good], y[good] = _TO_BNG.transform(b[good], a[good])
        swap_reason = "swapped_latlon"
    idx = assign_points(x, y, boundary)
    out = ~coord_bad & (idx < 0)
    if out.any():
        o = np.nonzero(out)[0]
        if grid:
            sx, sy = a[o], b[o]
        else:
            sx, sy = np.full(len(o), np.nan), np.full(len(o), np.nan)
            ok = np.abs(b[o]) <= 90
            sx[ok], sy[ok] = _TO_BNG.transform(a[o][ok], b[o][ok])
        fin = np.isfinite(sx) & np.isfinite(sy)
        swapped = np.zeros(len(o), dtype=bool)
        swapped[fin] = shapely.intersects_xy(area, sx[fin], sy[fin])
        flag(np.isin(np.arange(n), o[swapped]), fld, both, swap_reason, config.name)
        far = o[~swapped]
        if len(far):
            fx, fy = x[far], y[far]
            fin = np.isfinite(fx) & np.isfinite(fy)
            dist = np.full(len(far), np.inf)
            dist[fin] = shapely.distance(area, shapely.points(fx[fin], fy[fin]))
            words = [f"{format_distance(d)} outside {config.name}" if np.isfinite(d)
                     else f"far outside {config.name} (not a valid position)" for d in dist]
            mask = np.zeros(n, dtype=bool)
            mask[far] = True
            flag(mask, fld, both, "outside_study_area", words)
    return x, y, idx


#: An address starts with a house or flat number.
_ADDRESS = r"^\s*(?:(?:flat|unit|apartment|apt)\.?\s*)?\d+[a-z]?\b"


def _location_keys(x: np.ndarray, y: np.ndarray, location: pd.Series, fmt: str,
                   key_m: int) -> np.ndarray:
    """police.uk: the map point; council: the address when it starts with a house or flat
    number ("12 ...", "Flat 3, ..."), else BNG coordinates rounded to ``key_m`` metres (a
    street name, a postcode or a bus stop code is no address)."""
    step = 1 if fmt == "policeuk" else key_m
    text = lambda v: pa.scalar(v, pa.large_string())  # noqa: E731
    gx, gy = (pc.cast(pa.array((np.round(v / step) * step).astype(np.int64)), pa.large_string())
              for v in (x, y))
    keys = pc.binary_join_element_wise(text("xy"), gx, gy, text(":")).to_numpy(
        zero_copy_only=False)
    if fmt == "council" and len(location):
        codes, uniq = pd.factorize(location)  # addresses repeat: normalise each once
        uniq = pa.array(np.asarray(uniq, dtype=object), pa.large_string())
        addr = pc.match_substring_regex(uniq, _ADDRESS, ignore_case=True).to_numpy(
            zero_copy_only=False)
        norm = pc.utf8_trim_whitespace(pc.replace_substring_regex(
            pc.utf8_lower(uniq), r"[^\w]+", " "))
        addr_keys = pc.binary_join_element_wise(text("addr"), norm, text(":")).to_numpy(
            zero_copy_only=False)
        use = (codes >= 0) & addr[codes]
        keys[use] = addr_keys[codes[use]]
    return keys


def _assign(cols: dict, src: np.ndarray, layers: dict[str, gpd.GeoDataFrame], config: Config,
            known: dict[str, np.ndarray]) -> float | None:
    """Add ward_code, lsoa_code and source_lsoa to ``cols``; return the agreement rate with
    the source's own LSOA codes (2011 codes checked against the 2011 layer), or None."""
    x, y = cols["x"], cols["y"]
    for key, col in (("ward", "ward_code"), ("lsoa", "lsoa_code")):
        codes = np.append(layers[key]["code"].to_numpy(dtype=object), "")
        idx = known.get(key)
        if idx is None:
            idx = assign_points(x, y, layers[key], nearest_max_m=config.nearest_max_m)
        cols[col] = _take_text(codes, np.where(idx < 0, len(codes) - 1, idx))
    cols["source_lsoa"] = src
    has = src != ""
    if not has.any():
        return None
    agree = has & (src == cols["lsoa_code"].to_numpy(dtype=object))
    if "lsoa11" in layers:
        old = has & ~agree & np.isin(src, layers["lsoa11"]["code"].to_numpy(dtype=object))
        if old.any():
            codes = np.append(layers["lsoa11"]["code"].to_numpy(dtype=object), "")
            got = codes[assign_points(x[old], y[old], layers["lsoa11"],
                                      nearest_max_m=config.nearest_max_m)]
            agree[np.nonzero(old)[0][got == src[old]]] = True
    return float(agree.sum() / has.sum())
