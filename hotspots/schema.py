"""Column names of the tables hotspots passes around, defined once.

Incidents (one row per accepted record, EPSG:27700 metres):

=============== ====== ==========================================================
source          str    source system (``policeuk`` or the mapping's ``source``)
ref             str    reference, unique within the source
category        str    taxonomy key (see the configuration's [categories])
category_raw    str    the value as the export had it
period          str    month, ``YYYY-MM``
date            str    ``YYYY-MM-DD``; the 1st of the month when only the month is known
hour            int    hour of day 0-23, or -1 when the record has no time of day
x, y            float  British National Grid easting and northing, metres
location        str    location text (street, address); may be empty
location_key    str    key of the repeat-location rule (map point, address or rounded BNG)
caller_key      str    caller or victim identifier; empty when none
description     str    free text; never rendered as HTML
quantity        int    items per record (canisters per NOx sighting); 1 otherwise
ward_code       str    assigned ward; empty when unassigned
lsoa_code       str    assigned LSOA; empty when unassigned
source_lsoa     str    the source's own LSOA code (police.uk); empty otherwise
file            str    export file name
row             int    row in the export (header = row 1, as a spreadsheet shows it)
=============== ====== ==========================================================
"""

from __future__ import annotations

import functools
from typing import Literal

#: The option values analysis functions accept (typed, so a checker catches a typo).
CellShape = Literal["square", "hex"]
Kernel = Literal["quartic", "gaussian"]
ClusterMethod = Literal["dbscan", "hdbscan"]
Contiguity = Literal["queen", "rook"]
RepeatKey = Literal["caller_key", "location_key"]

INCIDENT_COLUMNS: tuple[str, ...] = (
    "source", "ref", "category", "category_raw", "period", "date", "hour", "x", "y",
    "location", "location_key", "caller_key", "description", "quantity",
    "ward_code", "lsoa_code", "source_lsoa", "file", "row",
)

#: The incident columns that are numbers, and their dtypes (the others are text).
INCIDENT_NUMBERS: dict[str, str] = {"hour": "int64", "quantity": "int64", "row": "int64",
                                    "x": "float64", "y": "float64"}

#: Columns of a rejection report: one row per problem found in a rejected row.
REJECTION_COLUMNS: tuple[str, ...] = ("file", "row", "field", "value", "reason", "message")

#: Columns of an area layer after :func:`hotspots.geography.read_layer`.
AREA_COLUMNS: tuple[str, ...] = ("code", "name", "area_km2", "geometry")

#: ``source`` of rows from police.uk street-level files and the police.uk API (dated by
#: month only, no time of day).
POLICE_UK_SOURCE = "policeuk"

WORKING_CRS = "EPSG:27700"
WEB_CRS = "EPSG:4326"


@functools.lru_cache(maxsize=16)
def transformer(source, target):
    """A pyproj Transformer from ``source`` to ``target`` (any CRS pyproj takes), x and y
    as longitude and latitude; made once per process (each takes 60-100 ms to make, and
    a pack made five)."""
    from pyproj import Transformer

    return Transformer.from_crs(source, target, always_xy=True)

#: police.uk street-level header, the way files are recognised without a mapping.
POLICE_UK_HEADER: tuple[str, ...] = (
    "Crime ID", "Month", "Reported by", "Falls within", "Longitude", "Latitude",
    "Location", "LSOA code", "LSOA name", "Crime type", "Last outcome category", "Context",
)

#: Fields a council mapping file may name under [columns].
MAPPING_FIELDS: tuple[str, ...] = (
    "reference", "datetime", "date", "time", "category", "latitude", "longitude",
    "easting", "northing", "location", "caller", "description", "count", "extract_date",
)
#: Mapping fields an export may lack: a file without one of these columns loads without
#: it, with a warning (the others are required).
OPTIONAL_MAPPING_FIELDS: tuple[str, ...] = (
    "time", "location", "caller", "description", "count", "extract_date",
)

#: Columns of a grid from :func:`hotspots.grid.make_grid` (EPSG:27700). ``row``/``col``
#: index the full lattice: for squares, row counts north and col east from the origin;
#: for flat-topped hexagons they are axial coordinates (col = q, row = r), whose six
#: neighbours are (q±1, r), (q, r±1), (q+1, r-1) and (q-1, r+1). ``x``/``y`` is the
#: full cell's centre; geometry is the cell clipped to the study area and ``area_km2``
#: the clipped area.
GRID_COLUMNS: tuple[str, ...] = ("cell_id", "row", "col", "x", "y", "area_km2", "geometry")

#: Columns of the places from :func:`hotspots.cluster.find_places`.
PLACE_COLUMNS: tuple[str, ...] = (
    "place_id", "label", "n", "harm", "area_km2", "density_per_km2", "repeat_locations",
    "repeat_share", "main_categories", "busiest_hour", "busiest_weekday", "first_seen",
    "last_seen", "ward_code", "lsoa_code", "geometry",
)
