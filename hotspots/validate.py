"""Row checks' wording: the one place that says what is wrong with an input row and how
to fix it. Every message names the file, the row (as a spreadsheet numbers it, header =
row 1), the field and the value.
"""

from __future__ import annotations

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
        "'{value}' is not a whole number of 0 or more",
        "write the count as a whole number, or leave it empty for 1"),
}

DATE_FORMATS_HELP = "ISO 8601 (2024-08-31 21:30) or day-first (31/08/2024 21:30)"


def problem_message(file: str, row: int, field: str, value: str, reason: str,
                    detail: str = "") -> str:
    """The message for one problem, e.g. ``asb.csv row 7, field 'Latitude' = '0': ...``."""
    what, fix = REASONS[reason]
    fill = {"value": value, "detail": detail, "formats": DATE_FORMATS_HELP}
    shown = value if len(value) <= 60 else value[:57] + "..."
    return (f"{file} row {row}, field '{field}' = '{shown}': {what.format(**fill)}. "
            f"Fix: {fix.format(**fill)}.")


def format_distance(metres: float) -> str:
    """'340 m' or '2.4 km'."""
    return f"{metres:.0f} m" if metres < 1000 else f"{metres / 1000:.1f} km"
