"""What a person reading a spreadsheet sees of each column: its heading and its number
format, and which internal columns are left out.

The CSV, GeoJSON and GeoPackage files keep the column names (``density_per_km2``): scripts,
Power BI refreshes and GIS field names rely on them. The XLSX a person opens shows the
headings (``Incidents per km²``) instead, from :data:`COLUMNS`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

#: Excel number format of each kind of column. Percentages are shares (0.25 shows 25%).
NUMBER_FORMATS: dict[str, str] = {
    "int": "#,##0", "dec1": "#,##0.0", "dec2": "0.00", "dec3": "0.000", "pct": "0%",
    "deg": "0.000000"}

#: Column name -> (heading, kind of number: a key of :data:`NUMBER_FORMATS`, or None for
#: text). Columns not listed take their name with spaces (see :func:`heading`).
COLUMNS: dict[str, tuple[str, str | None]] = {
    "rank": ("Rank", "int"), "place_id": ("Place", None), "code": ("Code", None),
    "name": ("Name", None), "label": ("Where", None), "ward": ("Ward", None),
    "ward_code": ("Ward code", None), "lsoa_code": ("LSOA code", None),
    "cell_id": ("Cell", None), "area_km2": ("Area (km²)", "dec3"),
    "n": ("Incidents", "int"), "harm": ("Harm", "dec1"),
    "density_per_km2": ("Incidents per km²", "dec1"), "harm_per_km2": ("Harm per km²", "dec1"),
    "residents": ("Residents", "int"),
    "per_1000_residents": ("Incidents per 1,000 residents", "dec1"),
    "repeat_locations": ("Repeat locations", "int"),
    "n_at_repeat_locations": ("Incidents at repeat locations", "int"),
    "n_at_repeat": ("Incidents at repeat locations", "int"),
    "repeat_location_share": ("Share at repeat locations", "pct"),
    "repeat_share": ("Share at repeat locations", "pct"),
    "repeat_callers": ("Repeat callers", "int"),
    "n_from_repeat_callers": ("Incidents from repeat callers", "int"),
    "repeat_caller_share": ("Share from repeat callers", "pct"),
    "main_categories": ("Main incident types", None), "busiest_hour": ("Busiest hour", "int"),
    "busiest_weekday": ("Busiest day", None), "first_seen": ("First seen", None),
    "last_seen": ("Last seen", None), "patrol_windows": ("Patrol windows", None),
    "n_prev": ("Previous period", "int"), "n_previous": ("Previous period", "int"),
    "n_last_year": ("Same period last year", "int"),
    "change": ("Change on previous period", "int"),
    "change_previous": ("Change on previous period", "int"),
    "change_pct": ("Change on previous period (%)", "dec1"),
    "p_previous": ("p, change on previous period", "dec3"),
    "expected": ("Expected from the borough's change", "dec1"),
    "p_borough": ("p against the borough", "dec3"),
    "p_adjusted": ("p against the borough, adjusted for the places tested", "dec3"),
    "reference": ("Trend compared with", None), "trend_label": ("Trend", None),
    "score": ("Score", "dec2"),
    "meeting_date": ("Meeting", None), "owner": ("Owner", None), "actions": ("Actions", None),
    "review_date": ("Review date", None), "n_before": ("Incidents before", "int"),
    "n_after": ("Incidents since", "int"), "days": ("Days each", "int"),
    "p_value": ("p (exact)", "dec3"), "verdict": ("What happened", None),
    "rank_now": ("Rank now", None), "decision_id": ("Decision", "int"),
    "gi_z": ("Gi* z-score", "dec2"), "gi_p": ("Gi* p", "dec3"), "gi_class": ("Gi* class", "int"),
    "x": ("Easting (m)", "int"), "y": ("Northing (m)", "int"),
    "latitude": ("Latitude", "deg"), "longitude": ("Longitude", "deg"),
}

#: Columns of the workings, never shown in a spreadsheet: the scaled ranking components
#: (the ``points_`` columns, which add up to the score, say the same), the signed trend
#: statistic behind the trend label, lattice indexes and copies kept for other outputs.
INTERNAL: frozenset[str] = frozenset({
    "trend", "unit_id", "row", "col", "geometry_wkt", "verdict_brief", "run_id"})
INTERNAL_PREFIXES: tuple[str, ...] = ("component_",)

#: A column left out when its twin (same meaning, same heading) is in the table too.
TWINS: dict[str, str] = {"repeat_share": "repeat_location_share",
                         "n_at_repeat": "n_at_repeat_locations"}

#: Readable names of the ranking components in ``points_<component>`` headings.
_COMPONENTS = {"volume": "volume", "density": "density", "harm": "harm",
               "repeat_locations": "repeat locations", "repeat_callers": "repeat callers",
               "trend": "trend"}


def component_name(key: str) -> str:
    """The readable name of a ranking component (a key of the ``[ranking]`` weights).

    >>> component_name("repeat_locations")
    'repeat locations'
    """
    return _COMPONENTS.get(key, key.replace("_", " "))


@dataclass(frozen=True)
class Column:
    """One column of a spreadsheet: its name in the table, the heading shown and the
    Excel number format of its numbers (None: General)."""

    name: str
    heading: str
    number_format: str | None


def heading(column: str, labels: Mapping[str, str] | None = None) -> tuple[str, str | None]:
    """The heading and number kind of ``column``.

    ``n_<category>`` reads ``Incidents: <label>`` (label from ``labels``, the taxonomy's
    category labels, else the key with spaces), ``points_<component>`` reads
    ``Score from <component>``; any other column not in :data:`COLUMNS` shows its name
    with spaces for underscores, first letter capitalised, and its kind is decided by
    its values (see :func:`sheet_columns`).

    >>> heading("density_per_km2")
    ('Incidents per km²', 'dec1')
    >>> heading("n_nox_sighting", {"nox_sighting": "Nitrous oxide sighting"})
    ('Incidents: Nitrous oxide sighting', 'int')
    """
    if column in COLUMNS:
        return COLUMNS[column]
    if column.startswith("points_"):
        part = column.removeprefix("points_")
        return f"Score from {component_name(part)}", "dec2"
    if column.startswith("n_") and len(column) > 2:
        key = column[2:]
        return f"Incidents: {(labels or {}).get(key, key.replace('_', ' '))}", "int"
    text = column.replace("_", " ")
    return text[:1].upper() + text[1:], None


def is_internal(column: str, columns: Iterable[str]) -> bool:
    """Whether ``column`` is left out of a spreadsheet of ``columns``."""
    return (column in INTERNAL or column.startswith(INTERNAL_PREFIXES)
            or (column in TWINS and TWINS[column] in set(columns)))


def sheet_columns(columns: Iterable[str], kinds: Mapping[str, str | None],
                  labels: Mapping[str, str] | None = None) -> list[Column]:
    """The columns a spreadsheet shows, in table order, with headings and formats.

    Parameters
    ----------
    columns : the table's column names (geometry already left out).
    kinds : column -> number kind found from its values (``"int"``, ``"dec2"`` or None
        for text), used for columns :func:`heading` does not know, and to show a known
        column of whole numbers that holds fractions with one decimal.
    labels : taxonomy key -> label, for ``n_<category>`` headings.

    Returns
    -------
    list of :class:`Column`, internal columns (:func:`is_internal`) left out.
    """
    columns = [str(c) for c in columns]
    out = []
    for col in columns:
        if is_internal(col, columns):
            continue
        text, kind = heading(col, labels)
        if col not in COLUMNS and not col.startswith(("points_", "n_")):
            kind = kinds.get(col)
        elif kind == "int" and kinds.get(col) == "dec2":
            kind = "dec1"  # a column of counts that holds fractions (shared residents)
        out.append(Column(col, text, NUMBER_FORMATS.get(kind) if kind else None))
    return out
