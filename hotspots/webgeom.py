"""Area geometry for web maps: simplified once per layer, as a coverage, and kept.

A map cannot show a boundary more finely than a screen pixel, and a London-wide map of
4,994 LSOAs at full resolution (825,000 vertices) is a page of 17 MB. Every map of a
layer therefore draws :func:`simplified`: the layer simplified as a *coverage*
(``shapely.coverage_simplify``), so each edge two neighbours share is simplified once
and stays shared: no gaps or overlaps appear between neighbours, at any zoom. The study
area's outline (:func:`outline`) is the union of the same simplified polygons, so it
runs exactly along the outer edges of the areas drawn inside it. Both are computed once
per process for the same polygons and tolerance (:data:`CACHE_SIZE` layers kept), and the
simplified layer is kept in the geodata cache's ``derived/`` folder when a cache is given,
so the next process reads it instead of simplifying London's LSOAs again (2 s).

The tolerance grows with the layer's extent (:func:`web_tolerance_m`): 3 to 5 m for a
borough (invisible at street zoom), 37 m for London (under a pixel when the whole city
is on screen): London's 4,994 LSOAs take about 2 MB of a page.

:func:`packed_rings` writes the polygons of a layer drawn by
:func:`hotspots.maps.base.shapes_layer` (area and detection maps) as flat rings of whole
numbers of 1e-5 degrees (about 1 m; :func:`pack_scale`), each vertex the step from the one
before across the whole layer: a few characters a vertex instead of GeoJSON's 24, so a
50 m forecast cell takes about 30 characters.
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from pathlib import Path

import geopandas as gpd
import numpy as np
import shapely

from .kept import kept

#: The smallest tolerance (metres): far below what a screen shows at street zoom.
MIN_TOLERANCE_M = 3.0
#: The tolerance is the layer's longer side divided by this (and at least the minimum).
EXTENT_DIVISOR = 1500.0
#: Simplified layers and outlines kept per process.
CACHE_SIZE = 8
#: Packed coordinates are whole numbers of 1 / this degrees (1e-5 degrees is ~1 m) ...
PACK_SCALE = 1e5
#: ... or of 5e-5 degrees (~5 m) for a layer simplified by 10 m or more.
COARSE_PACK_SCALE = 2e4

_CACHE: OrderedDict = OrderedDict()
_LOCK = threading.Lock()


def web_tolerance_m(areas: gpd.GeoDataFrame) -> float:
    """The simplification tolerance for a layer (metres): its longer side /
    :data:`EXTENT_DIVISOR`, rounded down to a whole metre, and at least
    :data:`MIN_TOLERANCE_M`."""
    minx, miny, maxx, maxy = areas.total_bounds
    span = max(maxx - minx, maxy - miny) if np.isfinite([minx, maxx]).all() else 0.0
    return max(MIN_TOLERANCE_M, float(np.floor(span / EXTENT_DIVISOR)))


def _memo(kind: str, areas: gpd.GeoDataFrame, tolerance_m: float | None, build):
    geoms = np.asarray(areas.geometry.values)
    tol = web_tolerance_m(areas) if tolerance_m is None else float(tolerance_m)
    # the entry holds the geometries, so their ids cannot be reused while it is kept
    key = (kind, tuple(map(id, geoms)), tol)
    with _LOCK:
        hit = _CACHE.get(key)
        if hit is not None:
            _CACHE.move_to_end(key)
            return hit[1]
    out = build(geoms, tol)
    with _LOCK:
        _CACHE[key] = (geoms, out)
        while len(_CACHE) > CACHE_SIZE:
            _CACHE.popitem(last=False)
    return out


def _coverage_simplify(geoms: np.ndarray, tol: float, cache: str | Path | None) -> np.ndarray:
    """``shapely.coverage_simplify``, read from ``<cache>/derived/`` when these polygons
    (by their WKB) were simplified by ``tol`` with this GEOS before, else kept there (a
    read-only or absent cache is left as it is)."""
    if cache is None:
        return shapely.coverage_simplify(geoms, tol)
    ident = hashlib.sha256(f"{tol!r} {shapely.geos_version_string}".encode())
    for wkb in shapely.to_wkb(geoms):
        ident.update(wkb)
    path = Path(cache) / "derived" / f"web-{ident.hexdigest()[:24]}.wkb"

    def read(p: Path) -> np.ndarray:
        parts = shapely.get_parts(shapely.from_wkb(p.read_bytes()))
        if len(parts) != len(geoms):
            raise ValueError(f"{len(parts)} polygons for {len(geoms)}")
        return parts

    return kept(path, lambda: shapely.coverage_simplify(geoms, tol), read=read,
                write=lambda out, p: p.write_bytes(
                    shapely.to_wkb(shapely.geometrycollections(out))),
                what="simplified layer")


def simplified(areas: gpd.GeoDataFrame, *, tolerance_m: float | None = None,
               cache: str | Path | None = None) -> gpd.GeoDataFrame:
    """A copy of ``areas`` (projected, metres) with its polygons simplified as a coverage
    by ``tolerance_m`` (default :func:`web_tolerance_m`): shared edges stay shared. With
    ``cache`` (the geodata cache folder), kept there for the next process."""
    geoms = _memo("coverage", areas, tolerance_m,
                  lambda g, tol: _coverage_simplify(g, tol, cache))
    return areas.set_geometry(gpd.GeoSeries(geoms, index=areas.index, crs=areas.crs))


def outline(areas: gpd.GeoDataFrame, *, tolerance_m: float | None = None,
            cache: str | Path | None = None) -> shapely.Geometry:
    """The union of :func:`simplified` polygons (in the CRS of ``areas``; ``cache`` as
    there): the study area's outline, along the same edges as the areas drawn inside it.
    The simplified polygons are a coverage, so their union is a coverage union (London's
    4,994 LSOAs: 0.03 s, not union_all's 0.5 s)."""
    def build(geoms, tol):
        parts = np.asarray(simplified(areas, tolerance_m=tol, cache=cache).geometry.values)
        # polygons that overlap (a layer that is not a clean coverage) need the full union:
        # the coverage union gives an invalid shape, or raises (a polygon given twice)
        try:
            whole = shapely.coverage_union_all(parts)
        except shapely.errors.GEOSException:
            return shapely.union_all(parts)
        return whole if shapely.is_valid(whole) else shapely.union_all(parts)
    return _memo("outline", areas, tolerance_m, build)


def pack_scale(tolerance_m: float) -> float:
    """Packed coordinates' units per degree for a layer simplified by ``tolerance_m``."""
    return COARSE_PACK_SCALE if tolerance_m >= 10 else PACK_SCALE


def packed_rings(geoms: np.ndarray, scale: float = PACK_SCALE) -> list[list]:
    """Each polygon or multipolygon of ``geoms`` (degrees) as its polygons, each a list of
    rings, each ring a flat list ``[x, y, x, y, ...]`` in whole 1 / ``scale`` degrees
    without the closing vertex; every vertex is the step from the vertex before it in the
    whole list, across rings and shapes (the first from 0, 0), so a layer of small cells
    takes a few characters a vertex. An empty or missing shape is ``[]``. Read back by
    the layer of :func:`hotspots.maps.base.shapes_layer`."""
    geoms = np.asarray(geoms)
    parts, owner = shapely.get_parts(geoms, return_index=True)
    kinds = shapely.get_type_id(parts)
    if len(parts) and not (kinds == 3).all():
        raise ValueError("packed_rings takes polygons and multipolygons only, got a "
                         f"{shapely.get_type_id(parts[kinds != 3][0])} part.")
    rings, ring_part = shapely.get_rings(parts, return_index=True)
    xy, ring_of = shapely.get_coordinates(rings, return_index=True)
    closing = np.r_[ring_of[1:] != ring_of[:-1], True] if len(ring_of) else np.zeros(0, bool)
    xy, ring_of = xy[~closing], ring_of[~closing]
    q = np.round(xy * scale).astype(np.int64)
    flat = np.diff(q, axis=0, prepend=np.zeros((1, 2), np.int64)).ravel().tolist()
    bounds = 2 * np.searchsorted(ring_of, np.arange(len(rings) + 1))
    polys: list[list] = [[] for _ in parts]
    for a, b, p in zip(bounds[:-1], bounds[1:], ring_part, strict=True):
        polys[p].append(flat[a:b])
    out: list[list] = [[] for _ in geoms]
    for poly, g in zip(polys, owner, strict=True):
        if poly:  # an empty part has no rings
            out[g].append(poly)
    return out
