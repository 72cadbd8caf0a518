"""Reading exports and mappings: CSV (any of the encodings Excel writes) and XLSX as
text, the mapping file and its checks, the export's own date."""

from __future__ import annotations

import codecs
import collections
import csv
import datetime as dt
import io
import mmap
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pacsv

from ..config import Config
from ..errors import ConfigError, InputError
from ..schema import MAPPING_FIELDS, POLICE_UK_HEADER
from ..validate import (
    file_message,
    visible,
)
from .text import _parse_dates, _strip


@dataclass(frozen=True)
class Mapping:
    """How a council export's columns map to incident fields; see the module docstring."""

    source: str
    columns: dict[str, str]
    categories: dict[str, str] = field(default_factory=dict)
    date_format: str | None = None
    sheet: str | None = None
    path: str = ""


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
    mapping = Mapping(source=raw.get("source", ""), columns=raw.get("columns", {}),
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


def _c1_controls(err: UnicodeError) -> tuple[str, int]:
    """The five bytes Windows-1252 leaves undefined (0x81, 0x8D, 0x8F, 0x90, 0x9D) read as
    the C1 control characters Windows maps them to; the row checks then reject them."""
    if not isinstance(err, UnicodeDecodeError):  # only ever used for decoding
        raise err
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
    try:  # checked a window at a time: never the whole file as Python text
        check = codecs.getincrementaldecoder("utf-8")()
        for start in range(0, len(raw), _WINDOW):
            check.decode(raw[start:start + _WINDOW], final=start + _WINDOW >= len(raw))
        return raw
    except UnicodeDecodeError:
        return str(raw, "cp1252", "hotspots-c1").encode("utf-8")


#: Bytes of a file scanned at a time (UTF-8 check, quotes across lines).
_WINDOW = 16 * 2**20


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
    before = 0  # quote marks before the window
    for start in range(0, len(text), _WINDOW):  # a window at a time: bounded memory
        data = np.frombuffer(text[start:start + _WINDOW], dtype=np.uint8)
        quotes = np.flatnonzero(data == ord('"'))
        breaks = np.flatnonzero((data == ord("\n")) | (data == ord("\r")))
        if ((np.searchsorted(quotes, breaks) + before) & 1).any():
            return True
        before += len(quotes)
    return False


def text_columns(header: list[str]) -> pacsv.ConvertOptions:
    """The CSV reader's options for text already known to be UTF-8 (:func:`_utf8`, or
    :func:`.stream._scan`): every column as text, '' for empty cells (no NA guessing),
    and the bytes not checked again (1M police.uk rows: 1.3 s to read, not 1.6 s)."""
    return pacsv.ConvertOptions(column_types={h: pa.string() for h in header},
                                strings_can_be_null=False, quoted_strings_can_be_null=False,
                                check_utf8=False)


def _read_csv_text(path: Path) -> pd.DataFrame:
    """Every column as Arrow-backed text, '' for empty cells (no NA guessing)."""
    raw: bytes | mmap.mmap
    with open(path, "rb") as fh:  # mapped, not copied: checked, then parsed
        try:
            raw = mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ)
        except (OSError, ValueError):  # an empty file, or one that cannot be mapped
            raw = fh.read()
    text = _utf8(raw, path.name)
    header, sep = _header(text, path.name)
    types = text_columns(header)
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
    if mapping and column and column in frame.columns:
        return latest_export_date([frame[[column]]], path=path, mapping=mapping)
    mtime = dt.datetime.fromtimestamp(Path(path).stat().st_mtime)
    return mtime.strftime("%Y-%m-%dT%H:%M:%S")


def latest_export_date(parts, *, path: str | Path, mapping: Mapping) -> str:
    """:func:`export_date` from the extract-date column, given in ``parts`` (one-column
    frames: the whole column, or a streamed file's chunks of it, in order)."""
    column = mapping.columns["extract_date"]
    when, first = pd.NaT, None
    for part in parts:
        text = _strip(_as_text(part)[column])
        if first is None and len(text):
            first = text.iloc[0]
        latest = _parse_dates(text, None).max()
        if not pd.isna(latest) and (pd.isna(when) or latest > when):
            when = latest
    if pd.isna(when):
        raise InputError(f"{Path(path).name}: the extract-date column '{column}' named in "
                         f"mapping {mapping.path} has no date in any row (first value "
                         f"{first or ''!r}); give dates such as "
                         "2024-08-30, or remove extract_date from the mapping.")
    return when.strftime("%Y-%m-%dT%H:%M:%S")
