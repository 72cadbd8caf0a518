"""Safe spreadsheets (CSV, XLSX) and the partner version of a table with data minimisation
(:func:`partner_table`, the one partner minimisation rule).

Text from records (locations, labels, category names typed by a call handler) can begin
with ``=`` or ``@`` and would run as a formula when a partner opens the file. Every text
cell and header goes through :func:`neutralise`; the XLSX writer also stores every text
cell as a string explicitly, since openpyxl turns any string starting with ``=`` into a
formula on its own. No workbook written here contains a formula.
"""

from __future__ import annotations

import csv
import datetime as dt
import math
import numbers
import re
from pathlib import Path

import numpy as np
import pandas as pd

#: First characters that make a spreadsheet evaluate a cell (OWASP "CSV Injection"):
#: ``= + - @``, tab and carriage return, plus their full-width forms, which some
#: spreadsheet locales also accept as formula starts.
DANGEROUS_STARTS: tuple[str, ...] = ("=", "+", "-", "@", "\t", "\r",
                                     "\uff1d", "\uff0b", "\uff0d", "\uff20")

#: The partner minimisation rule (:func:`partner_table`), column by column. A partner
#: table keeps these columns only; every other column is dropped.
#: Identifiers and facts that hold no count (``ward`` is the ward's name).
PARTNER_KEYS: tuple[str, ...] = ("place_id", "code", "name", "ward", "ward_code",
                                 "lsoa_code", "area_km2", "meeting_date", "owner",
                                 "review_date", "days")
#: Counts: 0 or ``min_count`` and more are shown, 1 to ``min_count - 1`` show ``"<5"``.
PARTNER_COUNTS: tuple[str, ...] = ("n", "n_before", "n_after", "n_at_repeat_locations")
#: Counts that are part of another (part -> whole): the part shows ``"[c]"`` when the whole
#: is suppressed or the rest (whole - part) is from 1 to ``min_count - 1``, since the rest
#: would be worked out.
PARTNER_PARTS: dict[str, str] = {"n_at_repeat_locations": "n"}
#: Values computed from counts: shown only when every count they come from is shown.
PARTNER_DERIVED: dict[str, tuple[str, ...]] = {
    "density_per_km2": ("n",), "per_1000_residents": ("n",), "verdict": ("n_before", "n_after"),
    "repeat_location_share": ("n", "n_at_repeat_locations")}

#: What a cell suppressed because it is derived from a suppressed count shows (the GSS
#: symbol for confidential).
DERIVED_SUPPRESSED = "[c]"

_SHEET_FORBIDDEN = re.compile(r"[\[\]:*?/\\]")
_ILLEGAL_XML = re.compile(r"[\000-\010\013\014\016-\037]")
_XLSX_MAX_TEXT = 32767


#: A plain decimal number written as text (``-0.0739``, ``+44``, ``1e-3``): a spreadsheet
#: reads it as that number, never as a formula, so it is not guarded. ASCII digits only.
_NUMBER_TEXT = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")


def neutralise(value):
    """Make a cell value safe to open in a spreadsheet: the one guard of every CSV and
    XLSX cell the package writes.

    Text whose first character (or first after leading spaces/newlines) is one of
    :data:`DANGEROUS_STARTS` (``=``, ``+``, ``-``, ``@``, tab, carriage return and their
    full-width forms) gets a leading apostrophe ``'``, as the OWASP CSV-injection
    guidance recommends: the spreadsheet then shows the text instead of evaluating it,
    the reader sees it was altered, and the original is the value without its first
    character. Text that is a plain decimal number (``-0.0739``, a negative longitude
    read from an export as text) is a number, not a formula, and stays as it is, so a
    file written here reads back with the same values. Anything that is not text
    (numbers, including negative ones, booleans, None) is returned unchanged.

    Parameters
    ----------
    value : any cell value.

    Returns
    -------
    The value, or ``"'" + value`` for dangerous text (always a plain ``str`` for text).
    """
    if not isinstance(value, str):
        return value
    text = str(value)
    if _NUMBER_TEXT.fullmatch(text):
        return text
    if text.startswith(DANGEROUS_STARTS) or text.lstrip(" \n").startswith(DANGEROUS_STARTS):
        return "'" + text
    return text


def _plain(value):
    """A cell value as None, bool, int, float or neutralised str."""
    if value is None or value is pd.NA or value is pd.NaT:
        return None
    if isinstance(value, bool | np.bool_):
        return bool(value)
    if isinstance(value, numbers.Integral):
        return int(value)
    if isinstance(value, numbers.Real):
        f = float(value)
        return f if math.isfinite(f) else None
    if isinstance(value, dt.date | dt.datetime | pd.Timestamp):
        return value.isoformat()
    return neutralise(value if isinstance(value, str) else str(value))


def _table(df: pd.DataFrame, name: str) -> tuple[list[str], list[list]]:
    if not isinstance(df, pd.DataFrame):
        raise ValueError(f"{name} must be a pandas DataFrame; got {type(df).__name__}.")
    keep = [c for c in df.columns if getattr(df[c].dtype, "name", "") != "geometry"]
    header = [neutralise(str(c)) for c in keep]
    rows = [[_plain(v) for v in rec] for rec in df[keep].itertuples(index=False, name=None)]
    return header, rows


def write_csv(df: pd.DataFrame, path: str | Path) -> Path:
    """Write a table as CSV with every text cell and header neutralised.

    UTF-8 with a byte-order mark (so Excel reads accents and ``²`` correctly), comma
    separated, fields quoted only when needed, no index. Geometry columns are left out
    (a spreadsheet is a table; maps carry the shapes); NaN and None are empty; dates are
    ISO text.

    Parameters
    ----------
    df : the table; not modified.
    path : the file to write (replaced if it exists).

    Returns
    -------
    pathlib.Path of the written file.
    """
    header, rows = _table(df, "df")
    path = Path(path)
    with path.open("w", encoding="utf-8-sig", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(header)
        for row in rows:
            writer.writerow("" if v is None else repr(v) if isinstance(v, float) else v
                            for v in row)
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


def write_xlsx(sheets: dict[str, pd.DataFrame], path: str | Path) -> Path:
    """Write tables to an XLSX workbook, one sheet each, with no formulas anywhere.

    Every text cell and header is neutralised (:func:`neutralise`) and stored explicitly
    as a string (openpyxl would otherwise store text starting with ``=`` as a formula and
    ``#N/A`` as an error). Numbers stay numbers. Characters XML forbids (control
    characters other than tab, newline and carriage return) become U+FFFD; text is cut
    at Excel's limit of 32,767 characters. The header row is bold, frozen and filtered;
    columns are as wide as their longest value (8 to 60 characters, from the first 1,000
    rows). Geometry columns are left out, NaN and empty text give empty cells, no index is
    written. XML turns a carriage return into a newline when the file is read.

    Parameters
    ----------
    sheets : sheet name (1-31 characters, none of ``[]:*?/\\``) -> table, in sheet order;
        tables are not modified.
    path : the file to write (replaced if it exists).

    Returns
    -------
    pathlib.Path of the written file.
    """
    from openpyxl import Workbook
    from openpyxl.styles import Font
    from openpyxl.utils import get_column_letter

    _check_sheets(sheets)
    wb = Workbook()
    wb.remove(wb.active)
    bold = Font(bold=True)
    for name, frame in sheets.items():
        header, rows = _table(frame, f"sheets['{name}']")
        ws = wb.create_sheet(title=name)
        widths = [len(h) for h in header]
        for r, values in enumerate([header, *rows], start=1):
            for c, value in enumerate(values, start=1):
                cell = ws.cell(row=r, column=c)
                if isinstance(value, str) and value:
                    text = _ILLEGAL_XML.sub("\ufffd", value)[:_XLSX_MAX_TEXT]
                    cell.value = text
                    cell.data_type = "s"  # openpyxl makes "=..." a formula, "#N/A" an error
                else:
                    cell.value = value if value != "" else None
                if r == 1:
                    cell.font = bold
                if r <= 1001 and value is not None:
                    widths[c - 1] = max(widths[c - 1], len(str(value)))
        for c, width in enumerate(widths, start=1):
            ws.column_dimensions[get_column_letter(c)].width = min(60, max(8, width + 2))
        ws.freeze_panes = "A2"
        if header:
            ws.auto_filter.ref = f"A1:{get_column_letter(len(header))}{len(rows) + 1}"
    path = Path(path)
    wb.save(path)
    return path


def partner_table(table: pd.DataFrame, *, min_count: int = 5) -> pd.DataFrame:
    """The version of an aggregate table that may circulate to partners: the one partner
    minimisation rule, which every partner output (the partner pack's HTML, CSV and XLSX,
    and the app's Partner page) is made from.

    No value from which a count under ``min_count`` can be worked out is kept:

    * Only the columns of :data:`PARTNER_KEYS`, :data:`PARTNER_COUNTS`,
      :data:`PARTNER_DERIVED` and ``rank`` are kept. Everything else is dropped: text from
      records (street labels, locations, callers, descriptions), ranking components,
      points and scores (percentiles among all units: a tie or a gap pins a neighbour's
      count), harm (weights are published, so harm and ``n`` give the category mix),
      shares (but the share at repeat locations, a derived value), previous counts,
      changes, trends, p-values, expected counts, category
      counts (they subtract from ``n``), busiest times and dates seen.
    * Counts from 1 to ``min_count - 1`` become the text ``"<5"`` (``f"<{min_count}"``);
      0 stays 0 and counts of ``min_count`` or more stay as they are.
    * A count that is part of another (:data:`PARTNER_PARTS`) shows
      :data:`DERIVED_SUPPRESSED` when the whole is suppressed or the rest of the whole is
      from 1 to ``min_count - 1``.
    * A value of :data:`PARTNER_DERIVED` is dropped when a count it comes from is not in
      the table (it cannot be checked), and shows :data:`DERIVED_SUPPRESSED` (``"[c]"``)
      when a count it comes from is suppressed.
    * A row whose ``n`` is suppressed has no rank (``"[c]"``) and comes after the ranked
      rows, in order of ``place_id`` (or ``code``); the other rows keep their order by
      ``rank`` and are numbered 1, 2, ... again, so neither a rank nor a row's position
      shows where a suppressed row stood.

    Parameters
    ----------
    table : an aggregate table, one row per area, cell or place (``rank_units`` output,
        tasked places); not modified. Incident records (a ``ref`` column) are refused.
    min_count : smallest count shown; a whole number of 1 or more. Default 5.

    Returns
    -------
    A new DataFrame (never a GeoDataFrame: shapes are left out) with the kept columns in
    their order; suppressed columns have object dtype.

    Raises
    ------
    ValueError
        for a bad ``min_count`` or a table of incident records.
    """
    if isinstance(min_count, bool) or not isinstance(min_count, numbers.Integral) \
            or min_count < 1:
        raise ValueError(f"min_count must be a whole number of 1 or more; got {min_count!r}.")
    if "ref" in table.columns:
        raise ValueError("table has a 'ref' column, so it holds incident records; a partner "
                         "table holds aggregates only: summarise first (area_summary, "
                         "find_places) and pass that table.")
    kept = set(PARTNER_KEYS) | set(PARTNER_COUNTS) | set(PARTNER_DERIVED) | {"rank"}
    out = pd.DataFrame(table[[c for c in table.columns if c in kept]])
    marker = f"<{min_count}"
    none = pd.Series(False, index=out.index)
    small = {}
    for col in PARTNER_COUNTS:
        if col in out.columns:
            v = pd.to_numeric(out[col], errors="coerce")
            small[col] = (v > 0) & (v < min_count)
            if small[col].any():
                out[col] = pd.Series(np.where(small[col], marker, out[col].astype(object)),
                                     index=out.index, dtype=object)
    for part, whole in PARTNER_PARTS.items():
        if part in out.columns and whole in table.columns:
            rest = pd.to_numeric(table[whole], errors="coerce") - pd.to_numeric(
                table[part], errors="coerce")
            gives = (((rest > 0) & (rest < min_count)) | small.get(whole, none)) \
                & ~small.get(part, none)
            if gives.any():
                out[part] = pd.Series(np.where(gives, DERIVED_SUPPRESSED,
                                               out[part].astype(object)),
                                      index=out.index, dtype=object)
                small[part] = small.get(part, none) | gives
    for col, sources in PARTNER_DERIVED.items():
        if col in out.columns and not set(sources) <= set(table.columns):
            out = out.drop(columns=col)  # a count it comes from cannot be checked
        elif col in out.columns:
            hide = none.copy()
            for src in sources:
                hide |= small.get(src, none)
            if hide.any():
                out[col] = pd.Series(np.where(hide, DERIVED_SUPPRESSED,
                                              out[col].astype(object)),
                                     index=out.index, dtype=object)
    if "rank" in out.columns or "n" in small:
        hidden = small.get("n", none)
        key = next((c for c in ("place_id", "code") if c in out.columns), None)
        ranked = out.loc[~hidden]
        if "rank" in out.columns:
            ranked = ranked.sort_values("rank", kind="stable")
        rest = out.loc[hidden]
        rest = rest.sort_values(key, kind="stable") if key else rest
        if "rank" in out.columns:
            ranked = ranked.assign(rank=np.arange(1, len(ranked) + 1))
            rest = rest.assign(rank=DERIVED_SUPPRESSED)
            out = pd.concat([ranked.astype({"rank": object}), rest])
        else:
            out = pd.concat([ranked, rest])
    return out.reset_index(drop=True)
