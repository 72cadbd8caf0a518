"""Tables to files, the one way the CLI, the pack and the app write them:
:func:`write_table` (a file or a buffer) and :func:`table_bytes` (for a download button).

=========  ==============================================================================
format     what it holds
=========  ==============================================================================
xlsx       for people: readable headings, number formats, frozen and filtered header,
           no internal columns (one sheet per table)
csv        for Power BI and scripts: the column names, ``latitude``/``longitude`` (WGS84)
           of a point inside each shape
geojson    for ArcGIS and web maps: shapes in WGS84 longitude/latitude (RFC 7946)
gpkg       for QGIS: shapes in EPSG:27700 (one layer per table)
=========  ==============================================================================

Every text cell, heading and field of every format is neutralised
(:func:`neutralise`: no text starts a formula) and numbers stay numbers. Partner outputs
are made by :func:`partner_table` (the one partner minimisation rule) before they are
written; it leaves the shapes out, so partner tables are written as xlsx or csv.
"""

from __future__ import annotations

import io
from collections.abc import Mapping
from pathlib import Path
from typing import BinaryIO, TypeAlias

import pandas as pd

from .geo import gis_bytes, to_gis, with_lonlat, write_geojson, write_gpkg
from .headings import COLUMNS, INTERNAL, NUMBER_FORMATS, component_name, heading, is_internal
from .partner import (
    DERIVED_SUPPRESSED,
    PARTNER_COUNTS,
    PARTNER_DERIVED,
    PARTNER_KEYS,
    partner_table,
)
from .safe import DANGEROUS_STARTS, neutralise
from .sheets import write_csv, write_xlsx

#: Formats of :func:`write_table`, by file suffix.
FORMATS: tuple[str, ...] = ("xlsx", "csv", "geojson", "gpkg")

#: Media type of each format, for download buttons.
MIME: dict[str, str] = {
    "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    "csv": "text/csv", "geojson": "application/geo+json",
    "gpkg": "application/geopackage+sqlite3"}

Tables: TypeAlias = pd.DataFrame | Mapping[str, pd.DataFrame]


def _format(out, fmt: str | None) -> str:
    if fmt is None:
        if hasattr(out, "write"):
            raise ValueError(f"fmt is needed when writing to a buffer; use one of {FORMATS}.")
        fmt = Path(out).suffix.lstrip(".").lower()
        if fmt not in FORMATS:
            raise ValueError(f"cannot tell the format from the file name {Path(out).name!r}; "
                             f"end it in .{', .'.join(FORMATS)} or pass fmt.")
    if fmt not in FORMATS:
        raise ValueError(f"fmt = {fmt!r} is not a table format; use one of {FORMATS}.")
    return fmt


def _tables(table: Tables, fmt: str, name: str) -> dict[str, pd.DataFrame]:
    if isinstance(table, pd.DataFrame):
        return {name: table}
    if not isinstance(table, Mapping) or not table:
        raise ValueError("table must be a DataFrame or a non-empty dict of name -> "
                         f"DataFrame; got {type(table).__name__}.")
    if fmt in ("csv", "geojson") and len(table) > 1:
        raise ValueError(f"a {fmt} file holds one table; got {len(table)} "
                         f"({', '.join(map(str, table))}): write one file each, or use "
                         "xlsx (sheets) or gpkg (layers).")
    return dict(table)


def write_table(table: Tables, out: str | Path | BinaryIO, fmt: str | None = None, *,
                name: str = "Table", labels: Mapping[str, str] | None = None,
                ) -> Path | BinaryIO:
    """Write a table (or several) as XLSX, CSV, GeoJSON or GeoPackage.

    Parameters
    ----------
    table : a DataFrame or GeoDataFrame (shapes in EPSG:27700), or a dict of name ->
        table: the sheets of an xlsx, the layers of a gpkg (csv and geojson hold one
        table). Not modified.
    out : the file to write (replaced if it exists), or a binary buffer (``fmt`` needed).
    fmt : ``"xlsx"``, ``"csv"``, ``"geojson"`` or ``"gpkg"``; default: the file's suffix.
    name : the sheet (xlsx) or layer (gpkg) name of a single table. Default ``"Table"``.
    labels : taxonomy key -> label, for the xlsx headings of ``n_<category>`` columns.

    Returns
    -------
    pathlib.Path of the written file, or the buffer.

    Raises
    ------
    ValueError
        for an unknown format, several tables for csv or geojson, shapes in another CRS
        than EPSG:27700, or a table without shapes for geojson or gpkg.

    Examples
    --------
    >>> import io, pandas as pd
    >>> buf = write_table(pd.DataFrame({"n": [3], "label": ["=1+1"]}), io.BytesIO(), "csv")
    >>> buf.getvalue().decode("utf-8-sig").splitlines()
    ['n,label', "3,'=1+1"]
    """
    fmt = _format(out, fmt)
    tables = _tables(table, fmt, name)
    if fmt == "xlsx":
        return write_xlsx(tables, out, labels=labels)
    if fmt == "csv":
        return write_csv(next(iter(tables.values())), out)
    if not isinstance(out, str | Path):
        out.write(table_bytes(table, fmt, name=name))
        return out
    if fmt == "geojson":
        only, frame = next(iter(tables.items()))
        return write_geojson(frame, out, name=only)
    return write_gpkg(tables, out)


def table_bytes(table: Tables, fmt: str, *, name: str = "Table",
                labels: Mapping[str, str] | None = None) -> bytes:
    """The file :func:`write_table` writes, as bytes (for ``st.download_button``; its
    media type is ``MIME[fmt]``)."""
    fmt = _format(None, fmt)
    if fmt in ("geojson", "gpkg"):
        return gis_bytes(lambda tables, path: write_table(tables, path, fmt, name=name),
                         table, suffix=f".{fmt}")
    buf = io.BytesIO()
    write_table(table, buf, fmt, name=name, labels=labels)
    return buf.getvalue()


__all__ = ["COLUMNS", "DANGEROUS_STARTS", "DERIVED_SUPPRESSED", "FORMATS", "INTERNAL", "MIME",
           "NUMBER_FORMATS", "PARTNER_COUNTS", "PARTNER_DERIVED", "PARTNER_KEYS", "component_name",
           "heading",
           "is_internal", "neutralise", "partner_table", "table_bytes", "to_gis",
           "with_lonlat", "write_csv", "write_geojson", "write_gpkg", "write_table",
           "write_xlsx"]
