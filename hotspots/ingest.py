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
    extract_date = "Exported"         # optional: when the export was made (load order)

    [categories]                      # export value = taxonomy key
    "Rowdy behaviour" = "asb_nuisance"

Reading files (:func:`read_export`, :func:`read_mapping`) is kept apart from parsing
(:func:`to_incidents`), which does no I/O.
"""

from __future__ import annotations

import codecs
import collections
import csv
import dataclasses
import datetime as dt
import hashlib
import io
import itertools
import mmap
import os
import re
import threading
import tomllib
from concurrent.futures import ThreadPoolExecutor
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

from .assign import POLICE_UK_EDGE_M, assign_points, nesting, prefer_own
from .config import Config
from .errors import ConfigError, InputError
from .schema import (
    INCIDENT_COLUMNS,
    MAPPING_FIELDS,
    OPTIONAL_MAPPING_FIELDS,
    POLICE_UK_HEADER,
    POLICE_UK_SOURCE,
    REJECTION_COLUMNS,
)
from .validate import (
    CONTROL_CHARACTERS,
    describe_character,
    file_message,
    format_distance,
    optional_columns_message,
    problem_message,
    visible,
)

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
    warnings: tuple[str, ...] = ()  # about the whole file (optional columns missing)

    @property
    def reasons(self) -> dict[str, int]:
        """Rejected rows per reason (a row with two problems counts under both)."""
        counts = self.problems.drop_duplicates(["row", "reason"])["reason"].value_counts()
        return {k: int(v) for k, v in sorted(counts.items())}


def read_mapping(path: str | Path, config: Config) -> Mapping:
    """Read and check a mapping file; raises ConfigError naming the file (by its name: an
    upload's temporary folder means nothing to its user) and the key."""
    where = Path(path).name
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise ConfigError(file_message(where, "mapping_unreadable",
                                       why=exc.strerror or type(exc).__name__)) from exc
    try:  # UTF-8, with or without a byte-order mark (Notepad's), or UTF-16 with one
        utf16 = data.startswith((b"\xff\xfe", b"\xfe\xff"))
        text = data.decode("utf-16" if utf16 else "utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ConfigError(file_message(where, "mapping_not_text", at=exc.start + 1)) from exc
    try:
        raw = tomllib.loads(text)
    except (tomllib.TOMLDecodeError, RecursionError) as exc:
        why = visible(str(exc)) if isinstance(exc, tomllib.TOMLDecodeError) else \
            "it nests too deeply"
        raise ConfigError(file_message(where, "mapping_not_toml", why=why)) from exc
    mapping = Mapping(source=raw.get("source"), columns=raw.get("columns", {}),
                      categories=raw.get("categories", {}), date_format=raw.get("date_format"),
                      sheet=raw.get("sheet"), path=where)
    check_mapping(mapping, config)
    return mapping


def check_mapping(mapping: Mapping, config: Config) -> None:
    """Raise ConfigError, naming the mapping file and key, unless ``mapping`` can be used
    (:func:`to_incidents` checks the mapping it is given, however it was made)."""
    where = mapping.path or "the mapping"

    def fail(problem: str, **fill) -> ConfigError:
        return ConfigError(file_message(where, problem, **fill))

    def shown(value) -> str:
        return visible(f'"{value}"' if isinstance(value, str) else repr(value))[:80]

    if not isinstance(mapping.source, str) or not mapping.source.strip():
        raise fail("mapping_no_source")
    for key, example in (("sheet", '"Cases"'), ("date_format", '"%d/%m/%Y %H:%M"')):
        value = getattr(mapping, key)
        if value is not None and not isinstance(value, str):
            raise fail("mapping_value_not_text", key=key, value=shown(value), example=example)
    cols = mapping.columns
    if not isinstance(cols, dict):
        raise fail("mapping_not_table", key="columns", value=shown(cols),
                   example='reference = "Case Ref"')
    unknown = sorted(set(cols) - set(MAPPING_FIELDS))
    if unknown:
        raise fail("mapping_unknown_fields", unknown=unknown, fields=list(MAPPING_FIELDS))
    for key, value in cols.items():
        if not isinstance(value, str) or not value:
            raise fail("mapping_not_column", key=key, value=shown(value))
    for need in ("reference", "category"):
        if need not in cols:
            raise fail("mapping_missing_field", need=need)
    if "datetime" not in cols and "date" not in cols:
        raise fail("mapping_no_date")
    latlon, grid = {"latitude", "longitude"} & set(cols), {"easting", "northing"} & set(cols)
    if len(latlon) + len(grid) != 2 or (latlon and grid):
        raise fail("mapping_coordinates", has=sorted(latlon | grid) or "neither")
    cats = mapping.categories
    if not isinstance(cats, dict):
        raise fail("mapping_not_table", key="categories", value=shown(cats),
                   example='"Rowdy behaviour" = "asb_nuisance"')
    for value, key in cats.items():
        if not isinstance(key, str) or key not in config.categories:
            raise fail("mapping_bad_category", value=visible(str(value)),
                       key=visible(repr(key))[:80], keys=sorted(config.categories))
    if mapping.date_format is not None:
        check_date_format(mapping.date_format, where)


def check_date_format(fmt: str, where: str) -> None:
    """A mapping's ``date_format`` must read back a date it wrote (day, month and year):
    a format with an unknown code (``%Q``), or without the day, is refused here rather than
    by every row."""
    sample = dt.datetime(2024, 8, 31, 21, 30, 15)
    why = ""
    try:
        text = sample.strftime(fmt)
        back = pd.to_datetime(pd.Series([text]), format=fmt, errors="raise").iloc[0]
        if getattr(back, "tzinfo", None) is not None or back.date() != sample.date():
            why = "it does not give the day, month and year"
    except (ValueError, TypeError, OverflowError) as exc:
        code = re.search(r"'(.)' is a bad directive", str(exc))
        why = f"%{code.group(1)} is not a date code" if code else \
            "it cannot read back a date written with it"
    if why:
        shown = visible(fmt if len(fmt) <= 60 else fmt[:57] + "...")
        raise ConfigError(file_message(where, "mapping_bad_date_format", value=f'"{shown}"',
                                       why=why))


def _cell_text(v) -> str:
    if v is None or (isinstance(v, float) and np.isnan(v)) or v is pd.NaT:
        return ""
    if isinstance(v, dt.datetime | pd.Timestamp):
        # a date-only cell comes back as midnight: keep it a date, so no hour is invented
        return v.date().isoformat() if v.time() == dt.time(0) else v.isoformat(sep=" ")
    if isinstance(v, dt.date | dt.time):
        return v.isoformat()
    if isinstance(v, float | int) and abs(v) >= 2**53:  # a spreadsheet number, not digits
        return str(float(v))
    if isinstance(v, float) and v.is_integer():
        return str(int(v))
    return str(v)


def read_export(path: str | Path, *, sheet: str | None = None) -> pd.DataFrame:
    """Read a CSV or XLSX export with every cell as text ('' when empty).

    CSV: comma- or tab-separated (told by the header row); UTF-8 (with or without a
    byte-order mark), UTF-16 (Excel's "Unicode text") or else Windows-1252 (Excel's plain
    "CSV" on a UK machine). Messages name the file by its name only (an upload's temporary
    folder means nothing to its user).

    Raises
    ------
    InputError
        the file is missing, empty, not CSV/XLSX, or cannot be parsed.
    """
    path = Path(path)
    name = path.name
    if not path.is_file():
        raise InputError(file_message(name, "no_file"))
    suffix = path.suffix.lower()
    if suffix in (".xlsx", ".xlsm"):
        try:
            frame = pd.read_excel(path, sheet_name=sheet or 0, dtype=object, engine="openpyxl")
        except Exception as exc:  # noqa: BLE001 - openpyxl raises its own types for corrupt files
            why = (f": it has no sheet '{sheet}'" if sheet and "not found" in str(exc)
                   else " (it is damaged, or not a workbook)")
            raise InputError(file_message(name, "unreadable_xlsx", why=why)) from exc
        frame = frame.apply(lambda col: col.map(_cell_text))
        frame.columns = [str(c) for c in frame.columns]
        frame = _as_text(frame)
    elif suffix in (".csv", ".txt", ".tsv"):
        frame = _read_csv_text(path)
    else:
        raise InputError(file_message(name, "unsupported_type", suffix=suffix or "(no suffix)"))
    if frame.columns.empty:
        raise InputError(file_message(name, "empty"))
    return frame


def _c1_controls(err: UnicodeDecodeError) -> tuple[str, int]:
    """The five bytes Windows-1252 leaves undefined (0x81, 0x8D, 0x8F, 0x90, 0x9D) read as
    the C1 control characters Windows maps them to; the row checks then reject them."""
    return err.object[err.start:err.end].decode("latin-1"), err.end


codecs.register_error("hotspots-c1", _c1_controls)


def _utf8(raw: bytes | mmap.mmap, name: str) -> bytes | mmap.mmap:
    """The file's text as UTF-8: ``raw`` itself when it is UTF-8 already (a byte-order mark
    is skipped by the CSV reader), else decoded from UTF-16 (by its byte-order mark, as
    Excel's "Unicode text" writes it, or by the zero bytes of ASCII text without one) or
    Windows-1252."""
    head = raw[:4]
    utf16 = ("utf-16" if head[:2] in (b"\xff\xfe", b"\xfe\xff") else
             "utf-16-le" if len(head) == 4 and head[1] == head[3] == 0 and head[0] and head[2]
             else "utf-16-be" if len(head) == 4 and head[0] == head[2] == 0 and head[1]
             and head[3] else None)
    if utf16:
        try:
            return str(raw, utf16).encode("utf-8")
        except UnicodeDecodeError as exc:
            raise InputError(file_message(name, "bad_utf16", at=exc.start + 1)) from exc
    if not len(raw) or np.frombuffer(raw, dtype=np.uint8).max() < 0x80:
        return raw  # ASCII (checked fast, without a copy) is UTF-8
    try:
        str(raw, "utf-8")
        return raw
    except UnicodeDecodeError:
        return str(raw, "cp1252", "hotspots-c1").encode("utf-8")


#: A header row must end within this many bytes of the file's start.
HEADER_MAX_BYTES = 16 * 2**20
#: A header with more columns than a spreadsheet allows (Excel: 16,384) is not an export.
MAX_COLUMNS = 16_384


def _header(text: bytes | mmap.mmap, name: str) -> tuple[list[str], str]:
    """The header row's names and the separator (a tab when the first line has more tabs
    than commas), checked: present, of a sane size, each name once."""
    for size in (2**16, HEADER_MAX_BYTES):  # nearly always the first: a header is short
        window = text[:size].decode("utf-8-sig", "ignore")
        first_line = window.split("\n", 1)[0]
        sep = "\t" if first_line.count("\t") > first_line.count(",") else ","
        stream = io.StringIO(window, newline="")
        try:
            header = next(csv.reader(stream, delimiter=sep), None)
        except csv.Error as exc:
            if "field limit" in str(exc):
                raise InputError(file_message(name, "header_field_too_long",
                                              limit=csv.field_size_limit())) from exc
            raise InputError(file_message(name, "unreadable_csv", why="")) from exc
        ended = len(text) <= size or stream.tell() < len(window)
        if ended:
            break
    if not ended:
        raise InputError(file_message(name, "header_too_long", mb=HEADER_MAX_BYTES >> 20))
    if not header:
        raise InputError(file_message(name, "empty"))
    if len(header) > MAX_COLUMNS:
        raise InputError(file_message(name, "too_many_columns", n=len(header)))
    dups = sorted(visible(h) for h, k in collections.Counter(header).items() if k > 1)
    if dups:
        raise InputError(file_message(name, "duplicate_columns", dups=dups))
    return header, sep


def _quoted_line_breaks(text: bytes | mmap.mmap) -> bool:
    """Whether a quoted cell spans lines (an odd number of quote marks before a line
    break). The CSV reader must then be told, or it may cut the file between its blocks
    inside such a cell and read the rest of the cell as a row of its own, silently."""
    if text.find(b'"') < 0:  # most files quote nothing (memchr: fast, no copy)
        return False
    data = np.frombuffer(text, dtype=np.uint8)
    quotes = np.flatnonzero(data == ord('"'))
    breaks = np.flatnonzero((data == ord("\n")) | (data == ord("\r")))
    return bool((np.searchsorted(quotes, breaks) & 1).any())


def _read_csv_text(path: Path) -> pd.DataFrame:
    """Every column as Arrow-backed text, '' for empty cells (no NA guessing)."""
    with open(path, "rb") as fh:  # mapped, not copied: checked, then parsed
        try:
            raw = mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ)
        except (OSError, ValueError):  # an empty file, or one that cannot be mapped
            raw = fh.read()
    text = _utf8(raw, path.name)
    header, sep = _header(text, path.name)
    types = pacsv.ConvertOptions(column_types={h: pa.string() for h in header},
                                 strings_can_be_null=False, quoted_strings_can_be_null=False)
    # Read, and again as the file needs: rows with the wrong number of fields (often an
    # unquoted comma in free text) set aside and noted by number; a row longer than the
    # reader's 1 MB blocks (then one block for the whole file).
    malformed: list[tuple[int, str, str]] = []

    def keep(row) -> str:
        malformed.append((row.number, f"{row.actual_columns} fields where the header has "
                                      f"{row.expected_columns}", row.text))
        return "skip"

    set_aside, newlines, block = False, _quoted_line_breaks(text), None
    data = pa.py_buffer(text)
    while True:
        malformed.clear()
        try:
            table = pacsv.read_csv(
                pa.BufferReader(data),
                read_options=pacsv.ReadOptions(use_threads=not set_aside, block_size=block),
                parse_options=pacsv.ParseOptions(
                    delimiter=sep, ignore_empty_lines=False, newlines_in_values=newlines,
                    invalid_row_handler=keep if set_aside else None),
                convert_options=types)
            break
        except pa.ArrowInvalid as exc:
            msg = str(exc)
            if not set_aside and re.search(r"Expected \d+ columns, got", msg):
                set_aside = True
            elif block is None and ("straddling" in msg or "Empty CSV file or block" in msg):
                block = int(min(max(len(text) + 1, 1 << 20), 2**31 - 1))
            else:
                raise InputError(file_message(path.name, "unreadable_csv", why="")) from exc
    frame = pd.DataFrame({h: pd.arrays.ArrowStringArray(table.column(h).combine_chunks())
                          for h in table.column_names})
    if malformed:
        bad = np.unique([m[0] for m in malformed])
        frame.attrs["row_numbers"] = np.setdiff1d(np.arange(2, len(frame) + len(bad) + 2), bad)
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


def _utf8_buffers(text: pd.Series) -> tuple[np.ndarray, np.ndarray] | None:
    """``(offsets, bytes)`` of an Arrow-backed text column without missing values: value i
    is ``bytes[offsets[i]:offsets[i + 1]]``. None for any other column."""
    if not isinstance(text.dtype, pd.StringDtype):
        return None
    arr = pa.array(text.array)
    if arr.null_count or not (pa.types.is_string(arr.type) or pa.types.is_large_string(arr.type)):
        return None
    wide = pa.types.is_large_string(arr.type)
    off = np.frombuffer(arr.buffers()[1], dtype=np.int64 if wide else np.int32)
    off = off[arr.offset:arr.offset + len(arr) + 1].astype(np.int64, copy=False)
    data = arr.buffers()[2]
    return off, np.frombuffer(data, dtype=np.uint8) if data is not None else np.zeros(0, np.uint8)


def _strip(text: pd.Series) -> pd.Series:
    """``text.str.strip()``, skipped (``text`` itself) when no value starts or ends with a
    space, a control character or a non-ASCII byte: checked on the Arrow buffers, which is
    cheaper than trimming a column that is nearly always clean already."""
    buf = _utf8_buffers(text)
    if buf is None:
        return text.str.strip()
    off, data = buf
    if not len(data):
        return text  # every value is empty
    # first and last byte of each value (for an empty value, bytes of its neighbours: at
    # worst a needless strip)
    first = data[np.minimum(off[:-1], len(data) - 1)]
    last = data[off[1:] - 1]
    # printable ASCII (0x21-0x7e) is the only byte range that needs no trimming
    if ((first - np.uint8(0x21)) <= 0x5D).all() and ((last - np.uint8(0x21)) <= 0x5D).all():
        return text
    return text.str.strip()


#: Masks keeping the first k bytes of a little-endian 8-byte word, k = 0..8.
_BYTE_MASKS = np.array([(1 << (8 * k)) - 1 for k in range(9)], dtype=np.uint64)


def _duplicated(text: pd.Series | None, values: np.ndarray) -> np.ndarray:
    """``pd.Series(values).duplicated()`` (every repeat of an earlier value), where
    ``values`` is ``text`` as objects. Fast for Arrow text: a 64-bit key per value from its
    bytes, read 8 at a time from the Arrow buffer, and the exact test only among the values
    whose keys repeat (true repeats and the rare key collisions)."""
    buf = _utf8_buffers(text) if text is not None else None
    if buf is None or len(values) < 2 or np.diff(buf[0]).max() > 64:
        return pd.Series(values).duplicated().to_numpy()
    off, data = buf
    lens = np.diff(off)
    padded = np.zeros(len(data) + 8, dtype=np.uint8)
    padded[:len(data)] = data
    words = np.ndarray((len(data) + 1,), dtype="<u8", buffer=padded, strides=(1,))
    key = lens.astype(np.uint64) * np.uint64(0x9E3779B97F4A7C15)
    with np.errstate(over="ignore"):
        for w in range(0, int(lens.max()), 8):
            word = words[np.minimum(off[:-1] + w, len(data))]
            key = key * np.uint64(0x100000001B3) + (word & _BYTE_MASKS[np.clip(lens - w, 0, 8)])
            key ^= key >> np.uint64(29)
    maybe = np.flatnonzero(pd.Series(key.view(np.int64)).duplicated(keep=False).to_numpy())
    out = np.zeros(len(values), dtype=bool)
    out[maybe] = pd.Series(values[maybe]).duplicated().to_numpy()
    return out


def _factorize_text(text: pd.Series) -> tuple[np.ndarray, pd.Series]:
    """``(codes, values)`` with ``values.iloc[codes]`` equal to ``text``: a column of few
    distinct values (dates, times) is then parsed once per value."""
    arr = pa.array(text.array)
    if arr.null_count:
        codes, uniq = pd.factorize(text, use_na_sentinel=False)
        return np.asarray(codes, dtype=np.int64), pd.Series(uniq, dtype=text.dtype)
    enc = pc.dictionary_encode(arr)
    return (enc.indices.to_numpy(zero_copy_only=False).astype(np.int64),
            pd.Series(pd.arrays.ArrowStringArray(enc.dictionary), dtype=text.dtype))


#: Distinct integer pairs are found with a table of every pair in their range when it has
#: at most this many entries (about 9 bytes each), else by hashing.
PAIR_TABLE_MAX = 8_000_000


def _int_pairs(gx: np.ndarray, gy: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Distinct (gx, gy) integer pairs: ``(codes, ux, uy)`` with ``ux[codes] == gx`` and
    ``uy[codes] == gy``: by a table over their range when it is small (cells of a borough),
    else by one hash of a combined key when it fits in 63 bits."""
    if not len(gx):
        return np.zeros(0, dtype=np.int64), gx[:0], gy[:0]
    lo_x, lo_y = int(gx.min()), int(gy.min())
    span_x, span_y = int(gx.max()) - lo_x + 1, int(gy.max()) - lo_y + 1
    if span_x * span_y <= PAIR_TABLE_MAX:
        key = (gx - lo_x) * span_y + (gy - lo_y)
        seen = np.zeros(span_x * span_y, dtype=bool)
        seen[key] = True
        uk = np.flatnonzero(seen)
        lut = np.empty(len(seen), dtype=np.int64)
        lut[uk] = np.arange(len(uk))
        return lut[key], uk // span_y + lo_x, uk % span_y + lo_y
    if span_x * span_y < 2**62:
        codes, uk = pd.factorize((gx - lo_x) * span_y + (gy - lo_y))
        return codes, uk // span_y + lo_x, uk % span_y + lo_y
    cx, ux = pd.factorize(gx)
    cy, uy = pd.factorize(gy)
    codes, uk = pd.factorize(cx * len(uy) + cy)
    return codes, ux[uk // len(uy)], uy[uk % len(uy)]


def _constant(value: str, n: int) -> pd.arrays.ArrowStringArray:
    return pd.arrays.ArrowStringArray(pa.repeat(pa.scalar(value, pa.large_string()), n))


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


#: Items per record above this are rejected (a count, not a typing slip or a date).
MAX_COUNT = 1_000_000
#: The police.uk columns read (the others are not kept).
POLICE_UK_READ = ("Crime ID", "Month", "Falls within", "Longitude", "Latitude", "Location",
                  "LSOA code", "Crime type")
#: A field longer than this is rejected: it is Excel's cell limit, so such a value cannot
#: have come whole from a spreadsheet (usually a quote mark that is never closed has
#: swallowed the lines after it).
MAX_FIELD_CHARS = 32_767


def _check_text(text: pd.Series, col: str, flag) -> None:
    """Flag the values longer than :data:`MAX_FIELD_CHARS` and those holding a control
    character other than tab and line breaks (NUL and the like are never stored). The
    Arrow buffers are scanned first: nearly every column has neither."""
    buf = _utf8_buffers(text)
    if buf is None:
        long_, suspect = np.ones(len(text), dtype=bool), True
    else:
        off, data = buf
        long_ = np.diff(off) > MAX_FIELD_CHARS  # bytes >= characters: candidates only
        # a byte below 0x20 (C0 controls) or from 0x7F (DEL, and every non-ASCII character,
        # C1 controls among them): two reductions, no temporary arrays
        suspect = bool(len(data)) and bool(data.min() < 0x20 or data.max() >= 0x7F)
    if long_.any():
        chars = np.zeros(len(text), dtype=np.int64)
        chars[long_] = text[long_].str.len().to_numpy(dtype=np.int64)
        over = chars > MAX_FIELD_CHARS
        flag(over, col, lambda idx: text.iloc[idx].to_numpy(dtype=object), "oversized_field",
             [f"{c:,}" for c in chars[over]])
    if suspect:
        has = pc.match_substring_regex(pa.array(text.array), CONTROL_CHARACTERS.pattern)
        bad = has.to_numpy(zero_copy_only=False).astype(bool)
        if bad.any():
            values = text[bad].to_numpy(dtype=object)
            flag(bad, col, lambda idx: text.iloc[idx].to_numpy(dtype=object),
                 "control_characters",
                 [describe_character(CONTROL_CHARACTERS.search(v).group()) for v in values])


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
        per_row = details is not None and np.ndim(details) > 0  # once: np.ndim copies a list
        for j, i in enumerate(idx):
            detail = "" if details is None else str(details[j] if per_row else details)
            row = int(self.row_no[i])
            self.rows.append((self.file, row, field_name, visible(str(shown[j])), reason,
                              problem_message(self.file, row, field_name, str(shown[j]),
                                              reason, detail)))
        self.bad[idx] = True

    def frame(self) -> pd.DataFrame:
        return pd.DataFrame(self.rows, columns=list(REJECTION_COLUMNS))


def _std_frame(frame: pd.DataFrame, fmt: str, mapping: Mapping | None, file: str) -> dict:
    """Pull the fields out of the export's own columns (Arrow text, stripped)."""
    empty = pd.Series("", index=frame.index, dtype="string[pyarrow]")
    if fmt == "policeuk":
        ids = _strip(frame["Crime ID"]).to_numpy(dtype=object)
        missing = ids == ""
        if missing.any():
            ids[missing] = _derived_refs(frame.loc[missing])
        return {
            "ref": (ids, "Crime ID"), "ref_empty": ids == "", "ref_text": None,
            "when": (_strip(frame["Month"]), "Month"),
            "time": None, "category": (_strip(frame["Crime type"]), "Crime type"),
            "a": (_strip(frame["Latitude"]), "Latitude"),
            "b": (_strip(frame["Longitude"]), "Longitude"), "grid": False,
            "location": _strip(frame["Location"]), "caller": empty, "description": empty,
            "count": (empty, None), "source_lsoa": _strip(frame["LSOA code"]),
        }
    assert mapping is not None
    cols = mapping.columns
    absent = [f"'{visible(c)}' ({f})" for f, c in cols.items() if c not in frame.columns]
    if absent:
        names = [visible(str(c)) for c in frame.columns[:20]]
        raise InputError(file_message(
            file, "export_columns_missing", absent=", ".join(absent),
            mapping=f"mapping {mapping.path}" if mapping.path else "the mapping",
            columns=names if len(frame.columns) <= 20 else f"{names[:-1]} and "
            f"{len(frame.columns) - 19:,} more"))

    def col(name: str) -> pd.Series:
        return _strip(frame[cols[name]]) if name in cols else empty

    grid = "easting" in cols
    ref = col("reference")
    return {
        "ref": (None, cols["reference"]),  # objects made later, while projection runs
        "ref_empty": (ref == "").to_numpy(dtype=bool), "ref_text": ref,
        "when": (col("datetime") if "datetime" in cols else col("date"),
                 cols.get("datetime", cols.get("date"))),
        "time": (col("time"), cols.get("time")) if "time" in cols else None,
        "category": (col("category"), cols["category"]),
        "a": (col("northing" if grid else "latitude"), cols["northing" if grid else "latitude"]),
        "b": (col("easting" if grid else "longitude"), cols["easting" if grid else "longitude"]),
        "grid": grid, "location": col("location"), "caller": col("caller"),
        "description": col("description"), "count": (col("count"), cols.get("count")),
        "source_lsoa": None,  # council exports carry no LSOA of their own
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
        raise InputError(file_message(file, "no_mapping", start=[visible(str(c))[:40] for c in
                                                                  frame.columns[:4]]))
    warnings = ()
    if fmt == "council":
        check_mapping(mapping, config)
        mapping, warnings = _optional_columns(mapping, frame, file)
    malformed = frame.attrs.get("malformed", [])
    row_no = np.asarray(frame.attrs.get("row_numbers", np.arange(2, len(frame) + 2)))
    frame = _as_text(frame)
    today = today or dt.date.today()
    n = len(frame)
    std = _std_frame(frame, fmt, mapping, file)
    probs = _Problems(file, row_no, np.zeros(n, dtype=bool))
    flag = probs.flag
    for col in (POLICE_UK_READ if fmt == "policeuk" else dict.fromkeys(mapping.columns.values())):
        _check_text(frame[col], col, flag)
    coords = _check_coordinates(std)
    projected = _Points.start(coords.b, coords.a, coords.good, project=not coords.grid)

    # reference
    ref, ref_col = std["ref"]
    if ref is None:
        ref = std["ref_text"].to_numpy(dtype=object)
    ref_empty = std["ref_empty"]
    flag(ref_empty, ref_col, ref, "missing_reference")
    refs = pd.Series(ref)
    dup = _duplicated(std["ref_text"], ref) & ~ref_empty
    if dup.any():
        rows = refs.isin(refs[dup]).to_numpy()  # the rows holding a repeated reference
        first_row = pd.Series(row_no[rows], index=refs[rows]).groupby(level=0).first()
        flag(dup, ref_col, ref, "duplicate_crime_id" if fmt == "policeuk"
             else "duplicate_reference", first_row[refs[dup]].to_numpy())

    # date and time: each distinct text parsed once
    when, when_col = std["when"]
    w_codes, w_text = _factorize_text(when)
    w_obj = w_text.to_numpy(dtype=object)
    when_txt = lambda idx: w_obj[w_codes[idx]]  # noqa: E731
    no_date = (w_text == "").to_numpy(dtype=bool)[w_codes]
    flag(no_date, when_col, when_txt, "missing_date")
    if fmt == "policeuk":
        stamp = pd.to_datetime(w_text, format="%Y-%m", errors="coerce")
        hour = np.full(n, -1)
        fmt_note = " (police.uk months are YYYY-MM)"
    else:
        stamp = _parse_dates(w_text, mapping.date_format)
        fmt_note = f" in the format {mapping.date_format}" if mapping.date_format else ""
        if std["time"] is not None:
            ttext, tcol = std["time"]
            t_codes, t_text = _factorize_text(ttext)
            t_obj = t_text.to_numpy(dtype=object)
            tparsed = _parse_times(t_text)
            flag((tparsed.isna() & (t_text != "")).to_numpy(dtype=bool)[t_codes], tcol,
                 lambda idx: t_obj[t_codes[idx]], "unparseable_date", " (times are HH:MM)")
            hour = np.where(tparsed.notna(), tparsed.dt.hour.fillna(0), -1).astype(int)[t_codes]
        else:
            has_time = w_text.str.contains(":", regex=False).to_numpy(dtype=bool)
            hour = np.where(has_time & stamp.notna(), stamp.dt.hour.fillna(0),
                            -1).astype(int)[w_codes]
    flag(stamp.isna().to_numpy()[w_codes] & ~no_date, when_col, when_txt, "unparseable_date",
         fmt_note)
    limit = pd.Timestamp(today + dt.timedelta(days=config.future_tolerance_days))
    flag((stamp.dt.normalize() > limit).to_numpy()[w_codes], when_col, when_txt, "future_date",
         today.isoformat())
    flag((stamp < pd.Timestamp(config.earliest_date)).to_numpy()[w_codes], when_col, when_txt,
         "implausible_date", config.earliest_date.isoformat())

    # category: look up each distinct value once
    cat_raw, cat_col = std["category"]
    codes, uniques = _factorize_text(cat_raw)
    if fmt == "policeuk":
        known = [config.police_uk_types.get(u) for u in uniques]
    else:
        lookup = {k.casefold(): k for k in config.categories}
        lookup.update({c.label.casefold(): k for k, c in config.categories.items()})
        lookup.update({k.casefold(): v for k, v in mapping.categories.items()})
        known = [lookup.get(str(u).casefold()) for u in uniques]
    cat_codes = np.arange(len(known) + 1)[codes]  # codes of -1 (missing cells) -> the last
    cat_known = np.array([k is not None for k in known] + [False])[cat_codes]
    flag(~cat_known, cat_col, lambda idx: cat_raw.iloc[idx].to_numpy(dtype=object),
         "unknown_category")

    # count (items per record)
    ctext, ccol = std["count"]
    if ccol:
        cnum = _numbers(ctext)
        given = (ctext != "").to_numpy(dtype=bool)
        with np.errstate(invalid="ignore"):  # inf and NaN are flagged, not warned about
            badc = given & ~(np.isfinite(cnum) & (cnum >= 0) & (cnum <= MAX_COUNT)
                             & (np.mod(cnum, 1) == 0))
        flag(badc, ccol, lambda idx: ctext.iloc[idx].to_numpy(dtype=object), "invalid_count")
        quantity = np.where(given & ~badc, np.nan_to_num(cnum), 1).astype(int)
    else:
        quantity = np.ones(n, dtype=int)

    # coordinates: a = latitude / northing, b = longitude / easting; each distinct position
    # is projected once (_Points.start), by a worker thread while the checks above run
    x, y, boundary_idx, points = _coordinates(coords, projected(), area,
                                              layers[config.boundary_layer], config, flag,
                                              own=(std["source_lsoa"], layers["lsoa"]))

    ok = ~probs.bad
    everything = bool(ok.all())
    keep = (lambda v: v) if everything else (lambda v: v[ok])  # noqa: E731
    n_ok = int(ok.sum())
    day = stamp.to_numpy()
    location = keep(std["location"])
    points = points.subset(ok)
    # text columns stay Arrow-backed or categorical: no copying into one object block
    cols = {
        "source": _constant(POLICE_UK_SOURCE if fmt == "policeuk" else mapping.source, n_ok),
        "ref": keep(ref),
        "category": _take_text(known + [""], cat_codes[ok]),
        "category_raw": keep(cat_raw),
        "period": _take_text(np.datetime_as_string(day.astype("datetime64[M]"), unit="M"),
                             w_codes[ok]),
        "date": _take_text(np.datetime_as_string(day.astype("datetime64[D]"), unit="D"),
                           w_codes[ok]),
        "hour": keep(hour),
        "x": keep(x), "y": keep(y),
        "location": location,
        "location_key": _location_keys(points, location, fmt, config.location_key_m),
        "caller_key": keep(std["caller"]),
        "description": keep(std["description"]),
        "quantity": keep(quantity),
    }
    src = std["source_lsoa"]
    if src is None:
        src, has_src = np.full(n_ok, "", dtype=object), np.zeros(n_ok, dtype=bool)
    else:
        src = keep(src)
        src, has_src = src.to_numpy(dtype=object), (src != "").to_numpy(dtype=bool)
    agreement = _assign(cols, src, has_src, layers, config,
                        {config.boundary_layer: boundary_idx[ok]}, points)
    cols.update({"file": _constant(file, n_ok), "row": row_no[ok]})
    # every column is a new array (Arrow text: a new wrapper of immutable data), so the
    # frame need not copy them again
    out = pd.DataFrame({c: (v.array.copy() if isinstance(v, pd.Series) else v)
                        for c, v in cols.items()}, columns=list(INCIDENT_COLUMNS), copy=False)
    for line, detail, text in malformed:
        probs.rows.append((file, int(line), "(whole row)", text, "malformed_row",
                           problem_message(file, int(line), "(whole row)", text,
                                           "malformed_row", detail)))
    problems = probs.frame().sort_values(["row", "field"], kind="stable", ignore_index=True)
    # a corrected rejected-rows file has the report's own "row" and "reasons": the new
    # report's replace them
    rejected = (frame.iloc[np.flatnonzero(probs.bad)].astype(object)
                .drop(columns=["row", "reasons"], errors="ignore"))
    rejected.insert(0, "row", row_no[probs.bad])
    if malformed:
        raw = pd.DataFrame({"row": [m[0] for m in malformed], "raw_text": [m[2] for m in
                                                                          malformed]})
        rejected = pd.concat([rejected, raw], ignore_index=True).sort_values(
            "row", kind="stable").fillna("")
    rejected["reasons"] = rejected["row"].map(_joined_messages(problems))
    return IngestResult(file=file, format=fmt, n_read=n + len(malformed),
                        incidents=out,
                        problems=problems, rejected=rejected.reset_index(drop=True),
                        lsoa_agreement=agreement, warnings=warnings)


def _optional_columns(mapping: Mapping, frame: pd.DataFrame, file: str
                      ) -> tuple[Mapping, tuple[str, ...]]:
    """The mapping without the optional columns the export lacks, and a warning naming
    them (a missing required column is refused later, by :func:`_std_frame`)."""
    gone = {f: c for f, c in mapping.columns.items()
            if f in OPTIONAL_MAPPING_FIELDS and c not in frame.columns}
    if not gone:
        return mapping, ()
    kept = {f: c for f, c in mapping.columns.items() if f not in gone}
    return dataclasses.replace(mapping, columns=kept), (optional_columns_message(
        file, gone, mapping=f"mapping {mapping.path}" if mapping.path else "the mapping"),)


@dataclasses.dataclass(frozen=True)
class _Coords:
    """A file's coordinate columns parsed and checked (a = latitude / northing, b =
    longitude / easting): ``checks`` are the problems to flag, in order, ``good`` the rows
    with usable coordinates, ``both`` shows a row's pair of values."""

    a: np.ndarray
    b: np.ndarray
    field: str
    grid: bool
    checks: list
    good: np.ndarray
    both: object


def _check_coordinates(std: dict) -> _Coords:
    """Parse the coordinates and find the rows whose coordinates are unusable (flagged
    later, by :func:`_coordinates`, in this order)."""
    (a_text, a_col), (b_text, b_col) = std["a"], std["b"]
    grid = std["grid"]
    n = len(a_text)
    a, b = _numbers(a_text), _numbers(b_text)
    a_str = lambda idx: a_text.iloc[idx].to_numpy(dtype=object)  # noqa: E731
    b_str = lambda idx: b_text.iloc[idx].to_numpy(dtype=object)  # noqa: E731
    both = lambda idx: [f"{p}, {q}" for p, q in zip(a_str(idx), b_str(idx),  # noqa: E731
                                                   strict=True)]
    fld = f"{a_col}/{b_col}"
    checks = []
    coord_bad = np.zeros(n, dtype=bool)
    for text, col, show in ((a_text, a_col, a_str), (b_text, b_col, b_str)):
        m = (text == "").to_numpy(dtype=bool) & ~coord_bad
        checks.append((m, col, show, "missing_coordinates"))
        coord_bad |= m
    for vals, col, show in ((a, a_col, a_str), (b, b_col, b_str)):
        m = ~coord_bad & ~np.isfinite(vals)
        checks.append((m, col, show, "unparseable_coordinates"))
        coord_bad |= m
    m = ~coord_bad & (a == 0) & (b == 0)
    checks.append((m, fld, both, "zero_coordinates"))
    coord_bad |= m
    if grid:
        m = ~coord_bad & (np.abs(a) <= 90) & (np.abs(b) <= 180)
        checks.append((m, f"{b_col}/{a_col}", lambda idx: [f"{q}, {p}" for p, q in
                                                           zip(a_str(idx), b_str(idx),
                                                               strict=True)],
                       "latlon_in_grid"))
    else:
        m = ~coord_bad & ((np.abs(a) > 90) | (np.abs(b) > 180))
        checks.append((m, fld, both, "grid_in_latlon"))
    coord_bad |= m
    return _Coords(a, b, fld, grid, checks, ~coord_bad, both)


def _coordinates(c: _Coords, points: _Points, area, boundary: gpd.GeoDataFrame,
                 config: Config, flag, own=None):
    """Flag the coordinate problems, place each point (projected to EPSG:27700:
    ``points``) in the boundary layer (the study area is that layer's union: a point is
    inside iff it has a boundary area), and flag points outside it, except a point whose
    own LSOA (``own``: the source's codes and the LSOA layer; police.uk) is in the area
    within ``nearest_max_m`` of it."""
    for m, col, show, reason in c.checks:
        flag(m, col, show, reason)
    a, b, grid, coord_bad, both, fld = c.a, c.b, c.grid, ~c.good, c.both, c.field
    n = len(a)
    swap_reason = "swapped_easting_northing" if grid else "swapped_latlon"
    x, y = points.rows()
    idx = np.full(n, -1, dtype=np.int64)
    idx[points.where] = assign_points(points.ux, points.uy, boundary)[points.ids]
    out = ~coord_bad & (idx < 0)
    if out.any() and own is not None and own[0] is not None and config.nearest_max_m > 0:
        o = np.flatnonzero(out)
        pos = pd.Index(own[1]["code"]).get_indexer(pd.Index(own[0].to_numpy(dtype=object)[o]))
        o, pos = o[pos >= 0], pos[pos >= 0]
        if len(o):
            geoms = np.asarray(own[1].geometry.values)
            close = shapely.distance(geoms[pos], shapely.points(x[o], y[o])) \
                <= config.nearest_max_m
            out[o[close]] = False
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
        mask = np.zeros(n, dtype=bool)
        mask[o[swapped]] = True
        flag(mask, fld, both, swap_reason, config.name)
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
    return x, y, idx, points


#: Files of at least this many rows are projected in chunks shared by a worker thread and
#: the caller (PROJ releases the GIL, so the worker overlaps the other checks and both
#: cores project), on a machine with 2 or more cores; smaller files in one go.
BACKGROUND_MIN_ROWS = 50_000
PROJECT_CHUNK = 100_000
_WORKER: dict = {}  # process id -> executor (a forked child makes its own)
_WORKER_LOCK = threading.Lock()


def _worker() -> ThreadPoolExecutor:
    with _WORKER_LOCK:
        pid = os.getpid()
        if pid not in _WORKER:
            _WORKER.clear()
            _WORKER[pid] = ThreadPoolExecutor(max_workers=1,
                                              thread_name_prefix="hotspots-project")
        return _WORKER[pid]


class _Projection:
    """lon/lat -> EPSG:27700 in chunks: a worker thread starts at once; :meth:`result`
    has the caller take the chunks left, then wait for the worker's last one (or call it
    off if the worker never got to it: busy with another file). Each point is projected
    once by whichever thread takes its chunk (the same numbers either way)."""

    def __init__(self, lon: np.ndarray, lat: np.ndarray) -> None:
        self.lon, self.lat = lon, lat
        self.x, self.y = np.empty(len(lon)), np.empty(len(lon))
        self.n_chunks = -(-len(lon) // PROJECT_CHUNK)
        self._next = itertools.count()  # next() is atomic under the GIL
        self._future = None
        if len(lon) >= BACKGROUND_MIN_ROWS and _cores() > 1:
            self._future = _worker().submit(self._work)

    def _work(self) -> None:
        for i in self._next:
            if i >= self.n_chunks:
                return
            sl = slice(i * PROJECT_CHUNK, (i + 1) * PROJECT_CHUNK)
            self.x[sl], self.y[sl] = _TO_BNG.transform(self.lon[sl], self.lat[sl])

    def result(self) -> tuple[np.ndarray, np.ndarray]:
        self._work()
        if self._future is not None and not self._future.cancel():
            self._future.result()  # the worker is on its last chunk
        return self.x, self.y


def _cores() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else \
        os.cpu_count() or 1


#: Positions are grouped (projected and placed once each) when at least
#: :data:`DISTINCT_MIN_ROWS` rows have one and a sample of :data:`DISTINCT_SAMPLE` of them
#: has at most :data:`DISTINCT_MAX_SHARE` distinct positions; otherwise row by row.
DISTINCT_MIN_ROWS = 4_000
DISTINCT_SAMPLE = 20_000
DISTINCT_MAX_SHARE = 0.5


@dataclasses.dataclass(frozen=True)
class _Points:
    """Points of the rows in ``where``: row ``where[i]`` is at ``(ux, uy)[ids[i]]``, in
    EPSG:27700. ``ids`` is the identity when positions are not grouped."""

    where: np.ndarray  # row numbers (positions) that have a point
    ids: np.ndarray
    ux: np.ndarray
    uy: np.ndarray
    n: int

    @classmethod
    def start(cls, e: np.ndarray, n_: np.ndarray, good: np.ndarray, *, project: bool):
        """Easting/northing (or longitude/latitude, ``project``) of the ``good`` rows;
        call the returned function for the _Points (projection may run meanwhile).

        police.uk snaps every crime to one of a fixed list of map points and council
        exports repeat addresses, so a file holds far fewer positions than rows: those
        repeat, each distinct position is projected and assigned once. A position is the
        pair of float64 bit patterns (the same numbers give the same point, exactly)."""
        where = np.flatnonzero(good)
        e, n_ = e[where], n_[where]
        ids, rep = _distinct_pairs(e, n_)
        if rep is not None:
            e, n_ = e[rep], n_[rep]
        if not project:
            return lambda: cls(where, ids, np.asarray(e, dtype=float),
                               np.asarray(n_, dtype=float), len(good))
        job = _Projection(np.ascontiguousarray(e, dtype=float),
                          np.ascontiguousarray(n_, dtype=float))
        return lambda: cls(where, ids, *job.result(), len(good))

    def rows(self) -> tuple[np.ndarray, np.ndarray]:
        """x, y of every row (NaN where the row has no point)."""
        x, y = np.full(self.n, np.nan), np.full(self.n, np.nan)
        x[self.where], y[self.where] = self.ux[self.ids], self.uy[self.ids]
        return x, y

    def subset(self, keep: np.ndarray) -> _Points:
        """The points of the rows in ``keep`` (each of which has a point), renumbered."""
        pos = np.full(self.n, -1, dtype=np.int64)
        pos[self.where] = self.ids
        ids = pos[keep]
        used = np.zeros(len(self.ux), dtype=bool)
        used[ids] = True
        new = np.cumsum(used) - 1
        return _Points(np.arange(len(ids)), new[ids], self.ux[used], self.uy[used], len(ids))


def _distinct_pairs(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
    """``(ids, rep)``: ``a[rep][ids] == a`` and ``b[rep][ids] == b`` bit for bit, ``rep``
    a row of each distinct (a, b) pair; ``(arange, None)`` when pairs repeat too little to pay
    for the grouping (judged on a sample) or on a hash collision."""
    n = len(a)
    plain = np.arange(n), None
    if n < max(DISTINCT_MIN_ROWS, 1):
        return plain
    bits_a = np.ascontiguousarray(a, dtype=np.float64).view(np.uint64)
    bits_b = np.ascontiguousarray(b, dtype=np.float64).view(np.uint64)
    with np.errstate(over="ignore"):
        key = bits_a * np.uint64(0x9E3779B97F4A7C15) ^ bits_b
    sample = key[::max(1, n // DISTINCT_SAMPLE)]
    if len(pd.unique(sample)) > DISTINCT_MAX_SHARE * len(sample):
        return plain
    ids, uniq = pd.factorize(key.view(np.int64))
    rep = np.empty(len(uniq), dtype=np.int64)
    rep[ids] = np.arange(n)  # a row of each pair
    if not (np.array_equal(bits_a[rep][ids], bits_a) and np.array_equal(bits_b[rep][ids], bits_b)):
        return plain  # two pairs share a hash: group nothing
    return ids.astype(np.int64), rep


#: An address starts with a house or flat number.
_ADDRESS = r"^\s*(?:(?:flat|unit|apartment|apt)\.?\s*)?\d+[a-z]?\b"


def _joined_messages(problems: pd.DataFrame) -> pd.Series:
    """Each rejected row's messages joined by " | ", indexed by row (most rows have one:
    only rows with several are grouped)."""
    several = problems["row"].duplicated(keep=False).to_numpy()
    one = problems.loc[~several]
    msgs = pd.Series(one["message"].to_numpy(), index=one["row"].to_numpy(), dtype=object)
    if several.any():
        msgs = pd.concat([msgs, problems.loc[several].groupby("row")["message"].agg(" | ".join)])
    return msgs


def _location_keys(points: _Points, location: pd.Series, fmt: str, key_m: int) -> np.ndarray:
    """police.uk: the map point; council: the address when it starts with a house or flat
    number ("12 ...", "Flat 3, ..."), else BNG coordinates rounded to ``key_m`` metres (a
    street name, a postcode or a bus stop code is no address)."""
    step = 1 if fmt == "policeuk" else key_m
    text = lambda v: pa.scalar(v, pa.large_string())  # noqa: E731
    # positions share rounded cells: each distinct cell is formatted once
    codes, gx, gy = _int_pairs(*(np.round(v / step).astype(np.int64) for v in (points.ux,
                                                                                points.uy)))
    gx, gy = (pc.cast(pa.array(v * step, pa.int64()), pa.large_string()) for v in (gx, gy))
    keys = pc.binary_join_element_wise(text("xy"), gx, gy, text(":")).to_numpy(
        zero_copy_only=False)[codes[points.ids]]
    if fmt == "council" and len(location):
        codes, uniq = _factorize_text(location)  # addresses repeat: normalise each once
        uniq = pa.array(uniq.to_numpy(dtype=object), pa.large_string())
        addr = pc.match_substring_regex(uniq, _ADDRESS, ignore_case=True).to_numpy(
            zero_copy_only=False)
        norm = pc.utf8_trim_whitespace(pc.replace_substring_regex(
            pc.utf8_lower(uniq), r"[^\w]+", " "))
        addr_keys = pc.binary_join_element_wise(text("addr"), norm, text(":")).to_numpy(
            zero_copy_only=False)
        use = (codes >= 0) & addr[codes]
        keys[use] = addr_keys[codes[use]]
    return keys


def _assign(cols: dict, src: np.ndarray, has: np.ndarray, layers: dict[str, gpd.GeoDataFrame],
            config: Config, known: dict[str, np.ndarray], points: _Points) -> float | None:
    """Add lsoa_code, ward_code ('' without a ward layer) and source_lsoa to ``cols``;
    return the agreement rate with the source's own LSOA codes (2011 codes checked against
    the 2011 layer), or None.
    ``has`` marks the rows with a source LSOA code."""
    x, y = cols["x"], cols["y"]
    src = np.asarray(src, dtype=object)
    for key in ("lsoa", "ward"):  # the layers the store keeps (the finest first)
        col = f"{key}_code"
        if key not in layers:
            cols[col] = _constant("", len(x))
            continue
        codes = np.append(layers[key]["code"].to_numpy(dtype=object), "")
        built_from = config.layers[key].built_from
        if built_from in ("lsoa", "ward") and built_from != key:  # follows the finer area
            finer = pd.Series(np.asarray(cols[f"{built_from}_code"], dtype=object))
            cols[col] = finer.map(nesting(layers[built_from], layers[key])).fillna(
                "").to_numpy(dtype=object)
            continue
        idx = known.get(key)
        if idx is None:
            idx = assign_points(points.ux, points.uy, layers[key],
                                nearest_max_m=config.nearest_max_m)[points.ids]
        elif (idx < 0).any():  # accepted outside the boundary (own LSOA): the nearest rule
            idx, miss = idx.copy(), idx < 0
            idx[miss] = assign_points(x[miss], y[miss], layers[key],
                                      nearest_max_m=config.nearest_max_m)
        if key == "lsoa" and has.any():  # police.uk's own LSOA on edges and just outside
            own = pd.Index(layers[key]["code"]).get_indexer(pd.Index(src))
            idx = prefer_own(x, y, idx, own, layers[key], edge_m=POLICE_UK_EDGE_M,
                             nearest_max_m=config.nearest_max_m)
        cols[col] = _take_text(codes, np.where(idx < 0, len(codes) - 1, idx))
    cols["source_lsoa"] = src
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


def export_date(frame: pd.DataFrame, *, path: str | Path, mapping: Mapping | None = None
                ) -> str:
    """The export's own date, ISO ``YYYY-MM-DDTHH:MM:SS`` (UK local time): the latest value
    of the mapping's ``extract_date`` column, else the file's recorded modification time.
    The store keeps a record's version from the latest-dated export (the load-order rule).

    Raises
    ------
    InputError
        the extract-date column has no date in any row.
    """
    column = mapping.columns.get("extract_date") if mapping else None
    if column and column in frame.columns:
        text = _strip(_as_text(frame[[column]])[column])
        when = _parse_dates(text, None).max()
        if pd.isna(when):
            raise InputError(f"{Path(path).name}: the extract-date column '{column}' named in "
                             f"mapping {mapping.path} has no date in any row (first value "
                             f"{text.iloc[0] if len(text) else ''!r}); give dates such as "
                             "2024-08-30, or remove extract_date from the mapping.")
        return when.strftime("%Y-%m-%dT%H:%M:%S")
    mtime = dt.datetime.fromtimestamp(Path(path).stat().st_mtime)
    return mtime.strftime("%Y-%m-%dT%H:%M:%S")
