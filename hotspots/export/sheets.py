"""Spreadsheets: CSV for machines and Power BI (column names, latitude and longitude) and
XLSX for people (readable headings, number formats, a frozen and filtered header row).

Every text cell and header goes through :func:`~hotspots.export.safe.neutralise`; the XLSX
writer also stores every text cell as a string explicitly, since openpyxl turns any string
starting with ``=`` into a formula on its own. No workbook written here contains a
formula, and numbers stay numbers.
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


def _set(cell, value, number_format: str | None) -> None:
    if isinstance(value, str) and value:
        cell.value = _ILLEGAL_XML.sub("\ufffd", value)[:_XLSX_MAX_TEXT]
        cell.data_type = "s"  # openpyxl makes "=..." a formula, "#N/A" an error
    else:
        cell.value = value if value != "" else None
        if number_format and isinstance(value, int | float) and not isinstance(value, bool):
            cell.number_format = number_format


def _fill_sheet(ws, frame: pd.DataFrame, labels: Mapping[str, str] | None) -> None:
    from openpyxl.styles import Alignment, Font
    from openpyxl.utils import get_column_letter

    shown = sheet_columns(frame.columns, _kinds(frame), labels)
    rows = _rows(frame, [c.name for c in shown])
    head_font, head_align = Font(bold=True), Alignment(wrap_text=True, vertical="top")
    lines = 1
    for c, column in enumerate(shown, start=1):
        cell = ws.cell(row=1, column=c)
        _set(cell, safe.neutralise(column.heading), None)
        cell.font, cell.alignment = head_font, head_align
        values = [row[c - 1] for row in rows]
        width = _width(column, values)
        ws.column_dimensions[get_column_letter(c)].width = width
        lines = max(lines, math.ceil(len(column.heading) / max(1.0, width - 2)))
        for r, value in enumerate(values, start=2):
            _set(ws.cell(row=r, column=c), value, column.number_format)
    ws.row_dimensions[1].height = 15 * lines
    ws.freeze_panes = "A2"
    if shown:
        ws.auto_filter.ref = f"A1:{get_column_letter(len(shown))}{len(rows) + 1}"


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
    * Every text cell and heading is neutralised and stored explicitly as a string
      (openpyxl would otherwise store text starting with ``=`` as a formula and ``#N/A``
      as an error). Characters XML forbids (control characters other than tab, newline
      and carriage return) become U+FFFD; text is cut at Excel's limit of 32,767
      characters; XML turns a carriage return into a newline when the file is read.
    * Columns are as wide as their widest shown value among the first 1,000 rows (8 to 60
      characters; headings wrap past 22). NaN and empty text give empty cells; no index.

    Parameters
    ----------
    sheets : sheet name (1-31 characters, none of ``[]:*?/\``) -> table, in sheet order;
        tables are not modified.
    out : the file to write (replaced if it exists), or a binary buffer to write to.
    labels : taxonomy key -> label, for the headings of ``n_<category>`` columns.

    Returns
    -------
    pathlib.Path of the written file, or the buffer.
    """
    from openpyxl import Workbook

    _check_sheets(sheets)
    wb = Workbook()
    wb.remove(wb.active)
    for name, frame in sheets.items():
        _fill_sheet(wb.create_sheet(title=name), _frame(frame, f"sheets['{name}']"), labels)
    if not isinstance(out, str | Path):
        wb.save(out)
        return out
    path = Path(out)
    wb.save(path)
    return path
