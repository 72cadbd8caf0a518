"""Tables with shapes: a latitude and longitude for each row (so Power BI can map a CSV),
GeoJSON for ArcGIS and web maps (WGS84 longitude/latitude) and GeoPackage for QGIS
(British National Grid, EPSG:27700).

The one conversion to longitude/latitude is :func:`hotspots.maps.lonlat`; shapes are
converted point by point with it.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
import shapely

from ..schema import WORKING_CRS
from .safe import to_cell

#: Decimal places of degrees written (about 0.1 m).
DEGREE_DECIMALS = 6


def geometry_column(df: pd.DataFrame) -> str | None:
    """The name of the table's active geometry column, or None when it has no shapes."""
    name = getattr(df, "_geometry_column_name", None)
    if name in df.columns and getattr(df[name].dtype, "name", "") == "geometry":
        return name
    return next((c for c in df.columns if getattr(df[c].dtype, "name", "") == "geometry"),
                None)


def _check_crs(df: pd.DataFrame, geom: str, name: str) -> None:
    crs = df[geom].crs
    if crs is None or crs.to_epsg() != 27700:
        raise ValueError(f"{name}: the shapes in column '{geom}' are in "
                         f"{crs.to_string() if crs is not None else 'no stated CRS'}; tables "
                         f"are written from {WORKING_CRS} (British National Grid metres): "
                         "convert with .to_crs(27700), or .set_crs(27700) if the numbers "
                         "already are metres.")


def with_lonlat(df: pd.DataFrame, name: str = "table") -> pd.DataFrame:
    """The table without its shapes, with ``latitude`` and ``longitude`` (WGS84 degrees,
    6 decimals) of a representative point of each shape appended: the point itself for
    points, a point inside the polygon (not the centroid, which can fall outside an
    L-shaped area) for areas and places. An empty shape gives empty coordinates. A table
    without shapes is returned as it is.

    Parameters
    ----------
    df : the table; shapes in EPSG:27700. Not modified.
    name : what the table is called in error messages.

    Returns
    -------
    pandas.DataFrame (never a GeoDataFrame).

    Raises
    ------
    ValueError
        for shapes in any other CRS, or a table that already has ``latitude``/``longitude``.
    """
    from ..maps import lonlat

    geom = geometry_column(df)
    if geom is None:
        return pd.DataFrame(df)
    _check_crs(df, geom, name)
    clash = [c for c in ("latitude", "longitude") if c in df.columns]
    if clash:
        raise ValueError(f"{name} already has column(s) {clash}; drop them: the coordinates "
                         "are taken from the shapes.")
    shapes = np.array(df[geom].values, dtype=object)  # a copy: emptied shapes become None
    empty = shapely.is_missing(shapes) | shapely.is_empty(shapes)
    shapes[empty] = None
    points = shapely.point_on_surface(shapes)
    x, y = shapely.get_x(points), shapely.get_y(points)
    lon, lat = lonlat(x, y)
    rest = [c for c in df.columns if getattr(df[c].dtype, "name", "") != "geometry"]
    return pd.DataFrame(df[rest]).assign(latitude=np.round(lat, DEGREE_DECIMALS),
                                         longitude=np.round(lon, DEGREE_DECIMALS))


def _to_lonlat(coords: np.ndarray) -> np.ndarray:
    """Metres to longitude/latitude, rounded to 7 decimals (about 1 cm), as RFC 7946
    recommends."""
    from ..maps import lonlat

    lon, lat = lonlat(coords[:, 0], coords[:, 1])
    return np.round(np.column_stack([lon, lat]), 7)


def _each_distinct(values: pd.Series, func) -> list:
    """``[func(v) for v in values]``, calling ``func`` once per distinct value of a text
    column (labels, codes and classes repeat over tens of thousands of cells)."""
    if pd.api.types.infer_dtype(values, skipna=True) not in ("string", "empty"):
        return [func(v) for v in values.to_numpy(dtype=object)]
    codes, seen = pd.factorize(values, use_na_sentinel=False)
    done = np.array([func(v) for v in np.asarray(seen, dtype=object)] + [None], dtype=object)
    return done[codes].tolist()


def _gis_values(values: pd.Series) -> pd.Series:
    """One column as a GIS field: numbers and booleans stay as they are (infinities become
    empty), dates become ISO text, text is neutralised; a column of numbers and text (a
    partner count of ``"<5"``) becomes text."""
    if pd.api.types.is_bool_dtype(values) or pd.api.types.is_integer_dtype(values):
        return values
    if pd.api.types.is_float_dtype(values):
        return values.where(np.isfinite(values.to_numpy(dtype=float)))
    if pd.api.types.is_datetime64_any_dtype(values):
        return values.map(lambda v: None if pd.isna(v) else v.isoformat()).astype(object)
    cells = pd.Series(_each_distinct(values, to_cell), index=values.index, dtype=object)
    kinds = {type(v) for v in cells if v is not None}
    if kinds and kinds <= {int, float}:
        return pd.to_numeric(cells)
    if str in kinds or len(kinds) > 1:
        return cells.map(lambda v: v if v is None or isinstance(v, str) else str(v))
    return cells


def to_gis(df: pd.DataFrame, *, web: bool, name: str = "table"):
    """The table as a GeoDataFrame ready for a GIS file: every field through
    :func:`_gis_values`; shapes in EPSG:27700, or in WGS84 longitude/latitude when
    ``web``."""
    import geopandas as gpd

    geom = geometry_column(df)
    if geom is None:
        raise ValueError(f"{name} has no shapes, so it cannot be written as GeoJSON or a "
                         "GeoPackage; write it as xlsx or csv, or pass the GeoDataFrame "
                         "with its geometry.")
    _check_crs(df, geom, name)
    fields = {str(c): _gis_values(df[c]) for c in df.columns
              if getattr(df[c].dtype, "name", "") != "geometry"}
    shapes = np.array(df[geom].values, dtype=object)  # a copy: emptied shapes become None
    if web:
        shapes = shapely.transform(shapes, _to_lonlat)
    crs = "EPSG:4326" if web else WORKING_CRS
    return gpd.GeoDataFrame(pd.DataFrame(fields, index=df.index),
                            geometry=gpd.GeoSeries(shapes, index=df.index, crs=crs))


def _json_value(value):
    """A numpy scalar that json does not know, as its Python value."""
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def write_geojson(df: pd.DataFrame, path: str | Path, *, name: str = "table") -> Path:
    """GeoJSON (RFC 7946: WGS84 longitude/latitude to 7 decimals, exterior rings
    counterclockwise, no ``crs`` member) of a table with shapes in EPSG:27700; fields keep
    their names, text neutralised (:func:`to_gis`); NaN is null. Written here rather than
    by GDAL's driver, which took three times as long for all of London's LSOAs
    (bench/bench_export.py)."""
    import json

    gis = to_gis(df, web=True, name=name)
    shapes = shapely.orient_polygons(np.asarray(gis.geometry.values, dtype=object),
                                     exterior_cw=False)
    geometries = shapely.to_geojson(shapes)
    fields = gis.drop(columns=gis.geometry.name).astype(object)
    fields = fields.where(fields.notna(), None)
    features = (
        '{"type":"Feature","properties":'
        + json.dumps(dict(zip(fields.columns, row, strict=True)), ensure_ascii=False,
                     allow_nan=False, default=_json_value)
        + ',"geometry":' + (geometry if geometry is not None else "null") + "}"
        for row, geometry in zip(fields.itertuples(index=False, name=None), geometries,
                                 strict=True))
    path = Path(path)
    with path.open("w", encoding="utf-8") as fh:
        fh.write('{"type":"FeatureCollection","features":[\n')
        fh.write(",\n".join(features))
        fh.write("\n]}\n")
    return path


def write_gpkg(layers: dict[str, pd.DataFrame], path: str | Path) -> Path:
    """A GeoPackage with one layer per table (EPSG:27700), replacing the file; fields keep
    their names, text neutralised (:func:`to_gis`)."""
    path = Path(path)
    path.unlink(missing_ok=True)
    for layer, frame in layers.items():
        to_gis(frame, web=False, name=f"layer '{layer}'").to_file(
            path, layer=layer, driver="GPKG", engine="pyogrio")
    return path


def gis_bytes(write, *args, suffix: str) -> bytes:
    """The bytes of a GIS file written by ``write(*args, path)`` into a temporary folder
    (the GDAL drivers write to files)."""
    with tempfile.TemporaryDirectory(prefix="hotspots-export-") as tmp:
        path = Path(tmp) / f"table{suffix}"
        write(*args, path)
        return path.read_bytes()


__all__ = ["DEGREE_DECIMALS", "geometry_column", "gis_bytes", "to_gis", "with_lonlat",
           "write_geojson", "write_gpkg"]
