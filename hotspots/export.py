"""Safe spreadsheets (CSV, XLSX) and the partner version of a table with data minimisation.

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
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

#: First characters that make a spreadsheet evaluate a cell (OWASP "CSV Injection"):
#: ``= + - @``, tab and carriage return, plus their full-width forms, which some
#: spreadsheet locales also accept as formula starts.
DANGEROUS_STARTS: tuple[str, ...] = ("=", "+", "-", "@", "\t", "\r",
                                     "\uff1d", "\uff0b", "\uff0d", "\uff20")

#: Columns :func:`partner_table` drops by default (when present).
PARTNER_DROP: tuple[str, ...] = ("caller_key", "description", "location", "label_detail",
                                 "category_raw", "context")

#: Any column whose name contains one of these (case-insensitive) is dropped from a
#: partner table, whatever ``drop_columns`` says: caller or victim identifiers, free text.
PARTNER_DROP_PATTERNS: tuple[str, ...] = ("caller", "description", "text", "location_key")

#: What a cell suppressed because it is derived from a suppressed count shows (the GSS
#: symbol for confidential).
DERIVED_SUPPRESSED = "[c]"

# Derived column -> the counts it is computed from. Columns not listed whose name says
# share/rate/density/percentage are taken to derive from ``n``.
_DERIVED_FROM: dict[str, tuple[str, ...]] = {
    "harm": ("n",), "density_per_km2": ("n",), "harm_per_km2": ("n",),
    "rate_per_1000": ("n",), "repeat_share": ("n", "n_at_repeat"),
    "repeat_location_share": ("n", "n_at_repeat"), "change": ("n", "n_prev"),
    "change_pct": ("n", "n_prev"), "trend": ("n", "n_prev"),
    "change_previous": ("n", "n_previous"), "change_year": ("n", "n_last_year"),
    "expected": ("n", "n_previous"),
    # details that describe the few incidents behind a small count
    "main_categories": ("n",), "busiest_hour": ("n",), "busiest_weekday": ("n",),
    "first_seen": ("n",), "last_seen": ("n",),
}
_DERIVED_WORDS = ("share", "rate", "density", "per_km2", "per_1000", "pct", "ratio")
_COUNT_NAMES = ("n", "repeat_locations", "count", "quantity")
# rank_units columns: percentiles among units, not computed from a unit's own counts.
_RANK_PREFIXES = ("component_", "points_", "score", "rank")
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


def _is_count_name(name: str) -> bool:
    return (name in _COUNT_NAMES or name.startswith("n_") or name.endswith("_count")
            or name.startswith("count_"))


def _numbers(series: pd.Series) -> pd.Series:
    """Numeric view of a column; text (already suppressed cells) becomes NaN."""
    return pd.to_numeric(series.where(series.map(lambda v: isinstance(v, numbers.Real)
                                                  and not isinstance(v, bool))),
                         errors="coerce").astype(float)


def _implied_counts(table: pd.DataFrame) -> dict[str, pd.Series]:
    """Counts a table gives away without holding them: repeats from a share, the
    previous count from a change."""
    out: dict[str, pd.Series] = {}
    if "n" not in table.columns:
        return out
    n = _numbers(table["n"])
    if "n_at_repeat" not in table.columns:
        for col in ("repeat_location_share", "repeat_share"):
            if col in table.columns:
                out["n_at_repeat"] = (n * _numbers(table[col])).round()
                break
    if "n_prev" not in table.columns:
        if "change" in table.columns:
            out["n_prev"] = n - _numbers(table["change"])
        elif "change_pct" in table.columns:
            pct = _numbers(table["change_pct"])
            out["n_prev"] = (n * 100 / (100 + pct)).where(pct != -100).round()
        elif "trend" in table.columns:  # trend_z inverted: (n - p) / sqrt(n + p) = z
            z = _numbers(table["trend"])
            out["n_prev"] = (n + (z * z - z * np.sqrt(z * z + 8 * n)) / 2).round()
    return out


def partner_table(table: pd.DataFrame, *, min_count: int = 5,
                  count_columns: list[str] | None = None,
                  drop_columns: Sequence[str] = PARTNER_DROP) -> pd.DataFrame:
    """The version of an aggregate table that may circulate to partners.

    * Counts from 1 to ``min_count - 1`` become the text ``"<5"`` (``f"<{min_count}"``);
      0 stays 0 and counts of ``min_count`` or more stay as they are.
    * A value computed from a suppressed count shows :data:`DERIVED_SUPPRESSED`
      (``"[c]"``): harm, densities, rates, shares and percentages of the row's ``n``;
      ``repeat_share`` also when the count at repeat locations (held, or implied by the
      share x ``n``) is small; ``change``, ``change_pct`` and ``trend`` also when the
      previous count (held, or implied by ``n`` and the change) is small; and the
      details of the incidents behind a small ``n`` (``main_categories``,
      ``busiest_hour``, ``busiest_weekday``, ``first_seen``, ``last_seen``).
    * Caller identifiers and free text are removed: every column whose name contains
      ``caller``, ``description``, ``text`` or ``location_key`` (case-insensitive), and
      the columns in ``drop_columns``.

    Suppression is cell by cell: when exactly one category count of a row is suppressed
    and ``n`` is shown, the others subtract to it. Give partners group-level counts (or
    only ``n``) when that matters.

    Parameters
    ----------
    table : an aggregate table, one row per area, cell or place (``area_summary``,
        ``find_places``, ``rank_units`` output); not modified. Incident records (a
        ``ref`` column) are refused.
    min_count : smallest count shown; a whole number of 1 or more. Default 5.
    count_columns : the columns holding counts. Default None: ``n``, ``n_*``,
        ``repeat_locations``, ``count``, ``quantity``, ``*_count`` and ``count_*``.
    drop_columns : further columns to drop when present. Default :data:`PARTNER_DROP`
        (``caller_key``, ``description``, ``location``, ``label_detail``,
        ``category_raw``, ``context``).

    Returns
    -------
    A new DataFrame (a GeoDataFrame stays one) with the same rows in the same order and
    the remaining columns in their order; suppressed columns have object dtype.

    Raises
    ------
    ValueError
        for a bad ``min_count``, ``count_columns`` naming missing or non-numeric columns,
        or a table of incident records.
    """
    if isinstance(min_count, bool) or not isinstance(min_count, numbers.Integral) \
            or min_count < 1:
        raise ValueError(f"min_count must be a whole number of 1 or more; got {min_count!r}.")
    if "ref" in table.columns:
        raise ValueError("table has a 'ref' column, so it holds incident records; a partner "
                         "table holds aggregates only: summarise first (area_summary, "
                         "find_places) and pass that table.")
    columns = [str(c) for c in table.columns]
    if count_columns is None:
        counts = [c for c in table.columns if isinstance(c, str) and _is_count_name(c)
                  and table[c].dtype != bool
                  and (pd.api.types.is_numeric_dtype(table[c]) or table[c].dtype == object)]
    else:
        missing = [c for c in count_columns if c not in table.columns]
        if missing:
            raise ValueError(f"count_columns names column(s) {missing} that table does not "
                             f"have; columns are {columns}.")
        bad = [c for c in count_columns if not pd.api.types.is_numeric_dtype(table[c])
               and table[c].dtype != object]
        if bad:
            raise ValueError(f"count_columns: column(s) {bad} are not numeric.")
        counts = list(count_columns)

    marker = f"<{min_count}"
    small: dict[str, pd.Series] = {}
    for col in counts:
        v = _numbers(table[col])
        small[col] = (v > 0) & (v < min_count)
    for col, implied in _implied_counts(table).items():
        small.setdefault(col, (implied > 0) & (implied < min_count))

    out = table.copy()
    for col in counts:
        if small[col].any():
            out[col] = pd.Series(np.where(small[col], marker, out[col].astype(object)),
                                 index=out.index, dtype=object)
    none = pd.Series(False, index=table.index)
    for col in table.columns:
        if col in counts or not isinstance(col, str) or col.startswith(_RANK_PREFIXES):
            continue
        sources = _DERIVED_FROM.get(col)
        if sources is None and any(word in col for word in _DERIVED_WORDS):
            sources = ("n",)
        if not sources:
            continue
        hide = none.copy()
        for src in sources:
            hide |= small.get(src, none)
        if hide.any():
            out[col] = pd.Series(np.where(hide, DERIVED_SUPPRESSED, out[col].astype(object)),
                                 index=out.index, dtype=object)

    listed = set(drop_columns)
    drop = [c for c in out.columns if c in listed or any(
        p in str(c).lower() for p in PARTNER_DROP_PATTERNS)]
    return out.drop(columns=drop)
