"""The one place that says what is wrong with an input and how to fix it.

Row checks' wording: every message names the file, the row (as a spreadsheet numbers it,
header = row 1), the field and the value. Argument checks (``check_*``): x/y coordinates,
projected CRS, metres, positive numbers and options; each raises
:class:`hotspots.errors.ValidationError` (a ``ValueError``) naming the argument, or
:class:`hotspots.errors.CRSError` for degrees.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from typing import Any

import numpy as np

from .errors import CRSError, ValidationError

# --- argument checks ---------------------------------------------------------------------


def check_xy(x: Any, y: Any, *, finite: bool = False, metres: bool = False
             ) -> tuple[np.ndarray, np.ndarray]:
    """``x`` and ``y`` as flat float arrays of the same length.

    ``finite=True`` also rejects NaN and infinite values (naming the first);
    ``metres=True`` raises CRSError when every point looks like degrees (|x| <= 180,
    |y| <= 90): analysis works in EPSG:27700 metres.

    Examples
    --------
    >>> check_xy([530000, 531000], [180000, 181000])[0]
    array([530000., 531000.])
    >>> check_xy([1, 2], [3])
    Traceback (most recent call last):
    hotspots.errors.ValidationError: x and y must have the same length; got 2 and 1.
    """
    xs = np.asarray(x, dtype=float).ravel()
    ys = np.asarray(y, dtype=float).ravel()
    if xs.shape != ys.shape:
        raise ValidationError(f"x and y must have the same length; got {xs.size} and "
                              f"{ys.size}.")
    if finite:
        bad = ~(np.isfinite(xs) & np.isfinite(ys))
        if bad.any():
            first = int(np.flatnonzero(bad)[0])
            raise ValidationError(
                f"x and y must be finite EPSG:27700 metres; {int(bad.sum())} points are not, "
                f"the first at position {first} ({float(xs[first])!r}, {float(ys[first])!r}). "
                "Drop them.")
    if metres and xs.size and np.abs(xs).max() <= 180 and np.abs(ys).max() <= 90:
        raise CRSError("x and y look like degrees (longitude, latitude); analysis needs "
                       "EPSG:27700 metres. Project them first (ingest does this).")
    return xs, ys


def check_projected(gdf: Any, what: str) -> None:
    """Raise CRSError unless ``gdf`` (anything with ``.crs``) is in a projected CRS in
    metres (EPSG:27700 here)."""
    if gdf.crs is None or not gdf.crs.is_projected:
        raise CRSError(f"{what} is in {gdf.crs or 'no CRS'}, not a projected CRS in metres. "
                       "Convert it with .to_crs(27700) first.")


def check_metres(name: str, value: Any) -> float:
    """``value`` as a positive finite number of metres, or ValidationError naming ``name``.

    Examples
    --------
    >>> check_metres("cell_size_m", 150)
    150.0
    >>> check_metres("cell_size_m", 0)
    Traceback (most recent call last):
    hotspots.errors.ValidationError: cell_size_m must be a positive number of metres, got 0.
    """
    try:
        v = float(value)
    except (TypeError, ValueError):
        v = math.nan
    if not (math.isfinite(v) and v > 0):
        raise ValidationError(f"{name} must be a positive number of metres, got {value!r}.")
    return v


def check_positive(name: str, value: Any, *, allow_zero: bool = False,
                   integer: bool = False) -> None:
    """Raise ValidationError unless ``value`` is a finite number above 0 (0 or more with
    ``allow_zero``; a whole number, not bool, with ``integer``)."""
    kind = "an integer" if integer else "a number"
    ok = isinstance(value, int | np.integer) if integer else isinstance(
        value, int | float | np.integer | np.floating)
    ok = ok and not isinstance(value, bool) and bool(np.isfinite(value))
    if not ok or value < 0 or (value == 0 and not allow_zero):
        bound = "0 or more" if allow_zero else ("1 or more" if integer else "above 0")
        raise ValidationError(f"{name} must be {kind} {bound}; got {value!r}.")


def check_option(name: str, value: object, allowed: Sequence[object]) -> None:
    """Raise ValidationError unless ``value`` is one of ``allowed``.

    Examples
    --------
    >>> check_option("kernel", "box", ("quartic", "gaussian"))
    Traceback (most recent call last):
    hotspots.errors.ValidationError: kernel must be one of 'quartic', 'gaussian'; got 'box'.
    """
    if value not in allowed:
        raise ValidationError(f"{name} must be one of {', '.join(map(repr, allowed))}; "
                              f"got {value!r}.")


# --- row checks' wording -----------------------------------------------------------------

#: reason key -> (what is wrong, how to fix it). ``{value}``, ``{detail}`` are filled in.
REASONS: dict[str, tuple[str, str]] = {
    "missing_coordinates": (
        "no location: the coordinate is empty",
        "fill in latitude/longitude or easting/northing, or remove the row"),
    "unparseable_coordinates": (
        "'{value}' is not a number",
        "give decimal degrees (latitude/longitude) or metres (easting/northing)"),
    "zero_coordinates": (
        "the location is (0, 0), a placeholder for a missing location",
        "geocode the record or remove the row"),
    "swapped_latlon": (
        "latitude and longitude are swapped: exchanged, the point falls in {detail}",
        "swap the two columns in the export, or swap them in the mapping file"),
    "swapped_easting_northing": (
        "easting and northing are swapped: exchanged, the point falls in {detail}",
        "swap the two columns in the export, or swap them in the mapping file"),
    "grid_in_latlon": (
        "'{value}' is a British National Grid coordinate in metres, not degrees",
        "map these columns as `easting` and `northing` in the mapping file"),
    "latlon_in_grid": (
        "'{value}' looks like degrees, not a British National Grid coordinate in metres",
        "map these columns as `latitude` and `longitude` in the mapping file"),
    "outside_study_area": (
        "the point is {detail}",
        "check the coordinates; records for another area belong in that area's study"),
    "missing_date": (
        "the date is empty",
        "fill in the date or remove the row"),
    "unparseable_date": (
        "'{value}' is not a date{detail}",
        "write dates as {formats}, or set date_format in the mapping file"),
    "future_date": (
        "{value} is in the future (today is {detail})",
        "correct the date in the export"),
    "unknown_category": (
        "'{value}' is not a known category",
        "add it under [categories] in the mapping file, for example \"{value}\" = "
        "\"asb_nuisance\", or add it to the taxonomy in the configuration"),
    "missing_reference": (
        "the reference is empty",
        "give every row a reference, unique within the export"),
    "duplicate_reference": (
        "reference '{value}' already appears at row {detail}",
        "remove the duplicate row, or give it its own reference"),
    "duplicate_crime_id": (
        "Crime ID '{value}' already appears at row {detail} (police.uk lists some crimes "
        "twice, with different outcome rows)",
        "nothing to do: the first row is kept and the crime is counted once"),
    "malformed_row": (
        "the row has {detail}",
        "quote text that contains commas (\"like, this\") or remove the extra fields; "
        "the row is kept in the rejected rows file"),
    "invalid_count": (
        "'{value}' is not a whole number from 0 to 1,000,000",
        "write the count as a whole number, or leave it empty for 1"),
    "implausible_date": (
        "{value} is before {detail}, the earliest plausible date (1899-12-31, 1900-01-01 and "
        "1970-01-01 are what spreadsheets and databases write for an empty date)",
        "correct the date in the export, or remove the row; if records this old are real, "
        "lower earliest_date under [ingest] in the configuration"),
    "oversized_field": (
        "the value is {detail} characters long, more than a spreadsheet cell holds (32,767)",
        "check the export: a quote mark that is never closed makes one cell swallow the "
        "lines after it; shorten the text, or remove the row"),
    "control_characters": (
        "the value contains the control character {detail}, which is not text (the row is "
        "rejected rather than stored with the character removed, so nothing is changed "
        "silently)",
        "remove the character from the export (NUL bytes and other control characters come "
        "from a damaged copy or a binary file), or remove the row"),
}

DATE_FORMATS_HELP = "ISO 8601 (2024-08-31 21:30) or day-first (31/08/2024 21:30)"


def problem_message(file: str, row: int, field: str, value: str, reason: str,
                    detail: str = "") -> str:
    """The message for one problem, e.g. ``asb.csv row 7, field 'Latitude' = '0': ...``."""
    what, fix = REASONS[reason]
    shown = value if len(value) <= 60 else value[:57] + "..."
    value, shown = visible(value[:200]), visible(shown)
    fill = {"value": value, "detail": detail, "formats": DATE_FORMATS_HELP}
    return (f"{file} row {row}, field '{visible(field)}' = '{shown}': {what.format(**fill)}. "
            f"Fix: {fix.format(**fill)}.")


def format_distance(metres: float) -> str:
    """'340 m' or '2.4 km'."""
    return f"{metres:.0f} m" if metres < 1000 else f"{metres / 1000:.1f} km"


#: Control characters other than tab, line feed and carriage return (C0, DEL and C1).
CONTROL_CHARACTERS = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")


def visible(text: str) -> str:
    r"""``text`` with each control character written as ``\x00`` (NUL and the like are
    invisible, and must not reach a message, a page or a spreadsheet as themselves)."""
    return CONTROL_CHARACTERS.sub(lambda m: f"\\x{ord(m.group()):02x}", text)


def describe_character(char: str) -> str:
    """'U+0000 (NUL)' for a control character."""
    names = {0: "NUL", 0x7F: "DEL", 0x0B: "vertical tab", 0x0C: "form feed", 0x1B: "escape"}
    code = ord(char)
    return f"U+{code:04X}" + (f" ({names[code]})" if code in names else "")


#: File-level problems (the whole file or the mapping cannot be used): key -> (what is
#: wrong, how to fix it). ``{file}`` and the other fields are filled in by
#: :func:`file_message`.
FILE_PROBLEMS: dict[str, tuple[str, str]] = {
    "no_file": (
        "no such file",
        "check the file's name and folder"),
    "changed_while_read": (
        "the file changed while it was being loaded (its size or time of last change are "
        "not what they were when its content was fingerprinted), so none of it was written",
        "load it again once whatever writes the file has finished with it"),
    "unsupported_type": (
        "'{suffix}' is not a supported export",
        "give a CSV (comma- or tab-separated text) or an Excel workbook (.xlsx)"),
    "empty": (
        "the file is empty (no header row)",
        "export the records again with their header row"),
    "too_many_columns": (
        "the header row has {n:,} columns; an export has at most 16,384 (a spreadsheet's "
        "limit), so this is not a table of records (or its separator is not a comma or a "
        "tab)",
        "export the records again as CSV (comma-separated, one header row) or XLSX"),
    "header_too_long": (
        "the first row is longer than {mb} MB, so it is not a header row (a file that is not "
        "a table, or a quote mark that is never closed)",
        "export the records again as CSV (comma-separated, one header row) or XLSX"),
    "header_field_too_long": (
        "a cell of the header row is longer than {limit:,} characters (a quote mark that is "
        "never closed?)",
        "close the quote in the header row, or export the records again"),
    "duplicate_columns": (
        "the header repeats column(s) {dups}",
        "give each column its own name"),
    "bad_utf16": (
        "the file starts as UTF-16 text (Excel's \"Unicode text\") but is not valid UTF-16 "
        "from byte {at:,} on",
        "open it in a spreadsheet and save it again as \"CSV UTF-8\""),
    "unreadable_csv": (
        "cannot be read as a CSV table{why}",
        "open it in a spreadsheet and save it again as \"CSV UTF-8\" (or as XLSX)"),
    "unreadable_xlsx": (
        "cannot be read as an Excel workbook{why}",
        "open it in Excel and save it again as .xlsx, or export the records as CSV"),
    "mapping_unreadable": (
        "cannot read the mapping file: {why}",
        "check the path given as the mapping"),
    "mapping_not_text": (
        "the mapping file is not text (byte {at:,} is not UTF-8; a binary file, or a "
        "document saved by a word processor?)",
        "write the mapping as plain text (TOML) in a text editor and save it as UTF-8"),
    "mapping_not_toml": (
        "the mapping file is not valid TOML: {why}",
        "correct that line (see the mapping example in the README)"),
    "no_mapping": (
        "not a police.uk street-level file (its header starts {start}) and no mapping was "
        "given",
        "write a mapping file naming its columns (see the README) and give it with the "
        "export: --mapping on the command line; in the app, choose a saved mapping, upload "
        "one, or make one with the mapping form"),
    "export_columns_missing": (
        "column(s) {absent} named in {mapping} are not in the export, which cannot be loaded "
        "without them; its columns are {columns}",
        "choose the export's own columns for these fields in the mapping ([columns]), or "
        "export the records again with them"),
    "export_optional_columns_missing": (
        "optional column(s) {absent} named in {mapping} are not in the export: it is loaded "
        "without {without}",
        "nothing, if the export never has them; to stop this warning, take the field(s) out "
        "of the mapping's [columns]"),
    "not_utf8": (
        "the file is not UTF-8 text{why}",
        "open it in Excel and save it as \"CSV UTF-8 (Comma delimited)\", then load it again"),
    "mapping_no_source": (
        "no 'source'",
        "name the source system, e.g. source = \"lbth-asb\" (references are unique within a "
        "source)"),
    "mapping_value_not_text": (
        "{key} = {value} is not text",
        "write it in quotes, e.g. {key} = {example}"),
    "mapping_not_table": (
        "{key} = {value} is not a table",
        "write a [{key}] table, e.g. {example}"),
    "mapping_unknown_fields": (
        "[columns] has unknown field(s) {unknown}",
        "use the fields {fields}"),
    "mapping_not_column": (
        "[columns] {key} = {value} is not a column name",
        "write the export column's name in quotes, e.g. {key} = \"Case Ref\""),
    "mapping_missing_field": (
        "[columns] has no '{need}'",
        "name the export column holding the {need}"),
    "mapping_no_date": (
        "[columns] has neither 'datetime' nor 'date'",
        "name the export column of the date and time (datetime = \"...\"), or of the date "
        "(date = \"...\", and time = \"...\" if the time is apart)"),
    "mapping_coordinates": (
        "[columns] needs either latitude and longitude or easting and northing; it has {has}",
        "name both columns of one pair"),
    "mapping_bad_category": (
        "[categories] \"{value}\" = {key} is not a taxonomy key",
        "use one of {keys}"),
    "mapping_bad_date_format": (
        "date_format = {value} is not a usable date format: {why}",
        "write it with strftime codes for day, month and year, e.g. date_format = "
        "\"%d/%m/%Y %H:%M\" for 31/08/2024 21:30, or leave it out for ISO 8601 and "
        "day-first dates"),
}


def file_message(file: str, problem: str, **fill) -> str:
    """The message for a file that cannot be used at all.

    For example ``asb.csv: the file is empty (no header row). Fix: export the records
    again with their header row.``
    """
    what, fix = FILE_PROBLEMS[problem]
    return f"{file}: {what.format(**fill)}. Fix: {fix.format(**fill)}."


#: What a record lacks when an optional mapping column is missing from an export.
WITHOUT_FIELD = {
    "time": "the time of day (hours unknown)",
    "location": "addresses (places are keyed by coordinates)",
    "caller": "caller identifiers (repeat callers are not counted)",
    "description": "descriptions",
    "count": "item counts (each record counts once)",
    "extract_date": "the export's own date (the file's date is used for the load order)",
}


def optional_columns_message(file: str, gone: dict[str, str], *, mapping: str) -> str:
    """The warning for optional mapping columns (field -> column) missing from an export."""
    absent = ", ".join(f"'{visible(c)}' ({f})" for f, c in gone.items())
    return file_message(file, "export_optional_columns_missing", absent=absent,
                        mapping=mapping, without="; ".join(WITHOUT_FIELD[f] for f in gone))


def explain_reasons(problems) -> list[dict]:
    """Rejected rows by reason in plain words, the fix first, the most rows first: per
    reason ``fix``, ``rows`` (distinct rows), ``example`` (the first row's problem, without
    the file name and the fix) and ``reason`` (the code, for the details). ``problems`` has
    :data:`hotspots.schema.REJECTION_COLUMNS`."""
    out = []
    for reason, group in problems.groupby("reason", sort=False):
        first = group.sort_values("row", kind="stable").iloc[0]
        fix = REASONS[reason][1].format(value=visible(str(first["value"]))[:60],
                                        formats=DATE_FORMATS_HELP)
        example = str(first["message"]).rsplit(". Fix: ", 1)[0]
        file = f"{first['file']} "
        out.append({"fix": fix[:1].upper() + fix[1:] + ".",
                    "rows": int(group["row"].nunique()),
                    "example": (example[len(file):] if example.startswith(file) else example)
                    + ".", "reason": reason})
    return sorted(out, key=lambda r: (-r["rows"], r["reason"]))
