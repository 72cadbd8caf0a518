"""Spreadsheets: CSV for machines and Power BI (column names, latitude and longitude) and
XLSX for people (readable headings, number formats, a frozen and filtered header row).

Every text cell and header goes through :func:`~hotspots.export.safe.neutralise`; the XLSX
writer (XlsxWriter) also writes every text cell by ``write_string``, which cannot write a
formula. No workbook written here contains a formula, and numbers stay numbers.
"""

from __future__ import annotations

import csv
import io
import math
import re
from collections.abc import Mapping
from pathlib import Path
from typing import BinaryIO

import numpy as np
import pandas as pd

from . import safe
from .geo import with_lonlat
from .headings import Column, sheet_columns

_SHEET_FORBIDDEN = re.compile(r"[\[\]:*?/\\]")
_ILLEGAL_XML = re.compile(r"[\000-\010\013\014\016-\037]")
_XLSX_MAX_TEXT = 32767
#: Excel's rows a sheet, the header's included: XlsxWriter leaves out any cell below.
_XLSX_MAX_ROWS = 1_048_576
_CARRIAGE_RETURN = re.compile(r"\r\n?")
#: Widths of XLSX columns, in characters: a heading longer than _HEADING_WIDTH wraps.
_MIN_WIDTH, _MAX_WIDTH, _HEADING_WIDTH = 8, 60, 22


def _rows(df: pd.DataFrame, columns: list[str]) -> list[tuple]:
    """The cells of ``columns`` as None, bool, int, float or neutralised text."""
    return list(zip(*(_cells(df[c]) for c in columns), strict=True)) if columns else \
        [() for _ in range(len(df))]


def _cells(values: pd.Series) -> list:
    """One column's cells as :func:`~hotspots.export.safe.to_cell` gives them: a column
    of NumPy booleans, integers or floats converted at once (non-finite floats None),
    any other value by value."""
    dtype = values.dtype
    if isinstance(dtype, np.dtype) and dtype.kind in "biu":
        return values.to_numpy().tolist()
    if isinstance(dtype, np.dtype) and dtype.kind == "f":
        arr = values.to_numpy()
        out = arr.astype(object)
        out[~np.isfinite(arr)] = None
        return out.tolist()
    return [safe.to_cell(v) for v in values.to_numpy(dtype=object)]


def _frame(df: pd.DataFrame, name: str) -> pd.DataFrame:
    if not isinstance(df, pd.DataFrame):
        raise ValueError(f"{name} must be a pandas DataFrame; got {type(df).__name__}.")
    return with_lonlat(df, name)


def write_csv(df: pd.DataFrame, out: str | Path | BinaryIO) -> Path | BinaryIO:
    """Write a table as CSV with every text cell and header neutralised.

    UTF-8 with a byte-order mark (so Excel reads accents and ``²`` correctly), comma
    separated, fields quoted only when needed, no index, the table's column names as the
    header (Power BI and scripts refer to them). A table with shapes (EPSG:27700) gets
    ``latitude`` and ``longitude`` columns (WGS84, of a point inside each shape: see
    :func:`~hotspots.export.geo.with_lonlat`) in place of the shapes. NaN and None are
    empty; dates are ISO text; floats are written in full.

    Parameters
    ----------
    df : the table; not modified.
    out : the file to write (replaced if it exists), or a binary buffer to write to.

    Returns
    -------
    pathlib.Path of the written file, or the buffer.
    """
    frame = _frame(df, "df")
    columns = list(frame.columns)
    text = io.StringIO(newline="")
    writer = csv.writer(text)
    writer.writerow(safe.neutralise(str(c)) for c in columns)
    for row in _rows(frame, columns):
        writer.writerow("" if v is None else repr(v) if isinstance(v, float) else v
                        for v in row)
    data = text.getvalue().encode("utf-8-sig")
    if not isinstance(out, str | Path):
        out.write(data)
        return out
    path = Path(out)
    path.write_bytes(data)
    return path


def _check_sheets(sheets: dict[str, pd.DataFrame]) -> None:
    if not isinstance(sheets, dict) or not sheets:
        raise ValueError("sheets must be a non-empty dict of sheet name -> DataFrame; "
                         f"got {sheets!r:.80}.")
    seen: set[str] = set()
    for name in sheets:
        ok = (isinstance(name, str) and 1 <= len(name) <= 31
              and not _SHEET_FORBIDDEN.search(name) and not name.startswith("'")
              and not name.endswith("'"))
        if not ok:
            raise ValueError(f"sheets: sheet name {name!r} is not allowed; Excel needs 1-31 "
                             "characters, none of [ ] : * ? / \\ and no apostrophe at "
                             "either end.")
        if name.casefold() in seen:
            raise ValueError(f"sheets: sheet name {name!r} is used twice (Excel ignores case).")
        seen.add(name.casefold())



def _kinds(frame: pd.DataFrame) -> dict[str, str | None]:
    """Number kind of each column by its values: ``"int"`` for whole numbers (a float
    column of whole numbers too), ``"dec2"`` for fractions, None for anything else."""
    kinds: dict[str, str | None] = {}
    for col in frame.columns:
        values = frame[col]
        kind = None
        if pd.api.types.is_integer_dtype(values) and not pd.api.types.is_bool_dtype(values):
            kind = "int"
        elif pd.api.types.is_float_dtype(values):
            finite = values[np.isfinite(values.to_numpy(dtype=float))]
            kind = "int" if (finite == finite.round()).all() else "dec2"
        kinds[str(col)] = kind
    return kinds


def _shown(value, number_format: str | None) -> str:
    """About what a cell shows, for its column's width."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return str(value)
    if number_format == "0%":
        return f"{value:.0%}"
    decimals = number_format.rpartition(".")[2].count("0") if number_format and "." in \
        number_format else 0
    return f"{value:,.{decimals}f}"


def _width(column: Column, values: list) -> float:
    """Characters of a column: its widest value among the first 1,000 rows or the
    heading's longest word, the heading wrapping past _HEADING_WIDTH characters."""
    words = max((len(w) for w in column.heading.split()), default=0)
    widest = max([min(len(column.heading), _HEADING_WIDTH), words,
                  *(len(_shown(v, column.number_format)) for v in values[:1000]
                    if v is not None)])
    return min(_MAX_WIDTH, max(_MIN_WIDTH, widest + 2))


def _text(value: str) -> str:
    """Text as an XLSX cell holds it: a carriage return (or CR LF) as a newline, as any
    reader reads it back from XML, characters XML forbids as U+FFFD, cut at Excel's limit."""
    value = _CARRIAGE_RETURN.sub("\n", value) if "\r" in value else value
    return _ILLEGAL_XML.sub("\ufffd", value)[:_XLSX_MAX_TEXT]


def _fill_sheet(wb, ws, frame: pd.DataFrame, labels: Mapping[str, str] | None) -> None:
    """Write ``frame`` to ``ws`` (an XlsxWriter worksheet of ``wb``) cell by cell, each
    with the method of its type: text by ``write_string`` only, never as a formula."""
    shown = sheet_columns(frame.columns, _kinds(frame), labels)
    head = wb.add_format({"bold": True, "text_wrap": True, "valign": "top"})
    formats: dict[str, object] = {}
    lines = 1
    for c, column in enumerate(shown):
        text = safe.neutralise(column.heading)
        ws.write_string(0, c, _text(text), head)
        values = _cells(frame[column.name])
        width = _width(column, values)
        ws.set_column(c, c, width)
        lines = max(lines, math.ceil(len(column.heading) / max(1.0, width - 2)))
        fmt = None
        if column.number_format:
            fmt = formats.get(column.number_format)
            if fmt is None:
                fmt = formats[column.number_format] = wb.add_format(
                    {"num_format": column.number_format})
        for r, value in enumerate(values, start=1):
            if value is None or value == "":
                continue
            if isinstance(value, str):
                ws.write_string(r, c, _text(value))
            elif isinstance(value, bool):
                ws.write_boolean(r, c, value)
            else:
                ws.write_number(r, c, value, fmt)
    ws.set_row(0, 15 * lines)
    ws.freeze_panes(1, 0)
    if shown:
        ws.autofilter(0, 0, len(frame), len(shown) - 1)


def write_xlsx(sheets: dict[str, pd.DataFrame], out: str | Path | BinaryIO, *,
               labels: Mapping[str, str] | None = None) -> Path | BinaryIO:
    r"""Write tables to an XLSX workbook for people to read, one sheet each, with no
    formulas anywhere.

    * Headings are readable (:data:`~hotspots.export.headings.COLUMNS`:
      ``density_per_km2`` shows "Incidents per km²"), bold, wrapped, frozen and filtered.
    * Internal columns are left out (:func:`~hotspots.export.headings.is_internal`: the
      ranking's scaled components, the trend statistic, lattice indexes).
    * Numbers stay numbers, with a number format: whole numbers ``#,##0``, rates one
      decimal, shares as percentages, p-values three decimals, degrees six.
    * A table with shapes (EPSG:27700) gets ``latitude`` and ``longitude`` in place of
      the shapes, as in :func:`write_csv`.
    * Every text cell and heading is neutralised and written as a string by XlsxWriter's
      ``write_string`` (never its ``write``, which would store text starting with ``=``
      as a formula), so ``#N/A`` is text too. Characters XML forbids (control characters
      other than tab, newline and carriage return) become U+FFFD, a carriage return a
      newline (as XML reads it back); text is cut at Excel's limit of 32,767 characters.
    * Columns are as wide as their widest shown value among the first 1,000 rows (8 to 60
      characters; headings wrap past 22). NaN and empty text give empty cells; no index.

    Parameters
    ----------
    sheets : sheet name (1-31 characters, none of ``[]:*?/\``) -> table, in sheet order;
        tables are not modified; a table longer than a sheet (1,048,575 rows below the
        header) is refused (ValueError), never cut short.
    out : the file to write (replaced if it exists), or a binary buffer to write to.
    labels : taxonomy key -> label, for the headings of ``n_<category>`` columns.

    Returns
    -------
    pathlib.Path of the written file, or the buffer.
    """
    import xlsxwriter
    from xlsxwriter.exceptions import FileCreateError

    _check_sheets(sheets)
    frames = {name: _frame(frame, f"sheets['{name}']") for name, frame in sheets.items()}
    for name, frame in frames.items():
        if len(frame) >= _XLSX_MAX_ROWS:
            raise ValueError(f"sheets['{name}'] has {len(frame):,} rows; a sheet holds "
                             f"{_XLSX_MAX_ROWS - 1:,} below its header: write it as csv.")
    target = out if not isinstance(out, str | Path) else Path(out)
    # write_string etc. only; these options also keep write() from reading text as a
    # formula, a number or a link should it ever be called
    wb = xlsxwriter.Workbook(target, {"in_memory": True, "strings_to_formulas": False,
                                      "strings_to_numbers": False, "strings_to_urls": False})
    try:
        with wb:
            for name, frame in frames.items():
                _fill_sheet(wb, wb.add_worksheet(name), frame, labels)
    except FileCreateError as exc:  # the OSError it wraps, as the other formats raise
        raise exc.args[0] from None
    return target
