"""Web geometry: a layer simplified once as a coverage keeps its neighbours' shared edges
(no gap, no overlap), the outline runs along the same edges, and packed rings read back
to the simplified vertices, neighbours still sharing their edges."""

from __future__ import annotations

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import shapely

from hotspots import webgeom


def _read_back(packed, scale):
    """The shapes of :func:`webgeom.packed_rings` summed up again (degrees)."""
    x = y = 0
    got = []
    for polys in packed:
        shape = []
        for poly in polys:
            rings = []
            for ring in poly:
                pts = []
                for dx, dy in zip(ring[::2], ring[1::2], strict=True):
                    x, y = x + dx, y + dy
                    pts.append((x / scale, y / scale))
                rings.append(pts)
            shape.append(shapely.Polygon(rings[0], rings[1:]))
        got.append(shapely.MultiPolygon(shape))
    return got


def test_simplified_layer_keeps_neighbours_without_gaps(layers):
    lsoa = layers["lsoa"]
    tol = webgeom.web_tolerance_m(lsoa)
    assert webgeom.MIN_TOLERANCE_M <= tol <= 5  # a borough: a few metres
    simple = webgeom.simplified(lsoa)
    geoms = np.asarray(simple.geometry.values)
    before = shapely.get_num_coordinates(np.asarray(lsoa.geometry.values)).sum()
    assert shapely.get_num_coordinates(geoms).sum() < before
    assert list(simple["code"]) == list(lsoa["code"]) and simple.crs == lsoa.crs
    # no gap and no overlap between neighbours: the areas still tile the same whole
    assert shapely.coverage_is_valid(geoms)
    whole = shapely.union_all(geoms)
    assert abs(whole.area - shapely.area(geoms).sum()) < 1.0  # m², over the borough
    assert shapely.get_num_interior_rings(whole) == shapely.get_num_interior_rings(
        shapely.union_all(np.asarray(lsoa.geometry.values)))
    # each area moved by about the tolerance at most (Visvalingam-Whyatt: an area rule)
    assert (shapely.hausdorff_distance(geoms, np.asarray(lsoa.geometry.values))
            <= 2 * tol).all()
    # the outline is the union of the same simplified polygons, computed once
    assert webgeom.outline(lsoa).equals(whole)
    assert webgeom.simplified(lsoa).geometry.values[0] is geoms[0]


def test_tolerance_grows_with_the_extent():
    box = gpd.GeoDataFrame(geometry=[shapely.box(0, 0, 56_000, 46_000)], crs=27700)
    assert webgeom.web_tolerance_m(box) == 37.0
    small = gpd.GeoDataFrame(geometry=[shapely.box(0, 0, 4_000, 3_000)], crs=27700)
    assert webgeom.web_tolerance_m(small) == webgeom.MIN_TOLERANCE_M


def test_packed_rings_read_back_to_the_vertices():
    """Every vertex is the step from the one before across the whole layer (rings and
    shapes), rings lose their closing vertex, an empty shape has no polygon; summed up
    again they give the shapes at 1 / scale degrees."""
    hole = shapely.Polygon([(-0.05, 51.5), (-0.01, 51.5), (-0.01, 51.53), (-0.05, 51.53)],
                           [[(-0.04, 51.51), (-0.02, 51.51), (-0.02, 51.52)]])
    shapes = [hole, shapely.Polygon(), None,
              shapely.MultiPolygon([shapely.box(0.1, 51.4, 0.12, 51.41), hole])]
    for scale in (webgeom.PACK_SCALE, webgeom.COARSE_PACK_SCALE):
        packed = webgeom.packed_rings(np.array(shapes, dtype=object), scale)
        assert packed[1] == [] and packed[2] == []
        assert len(packed[0]) == 1 and [len(r) for r in packed[0][0]] == [8, 6]
        got = _read_back(packed, scale)
        for g, want in zip([got[0], got[3]], [shapes[0], shapes[3]], strict=True):
            want = shapely.set_precision(want, 1 / scale)
            assert g.equals(shapely.MultiPolygon(list(getattr(want, "geoms", [want]))))
    with pytest.raises(ValueError, match="polygons and multipolygons only"):
        webgeom.packed_rings(np.array([shapely.Point(0, 51)]))


def test_packed_areas_keep_their_shared_edges(layers):
    """An area map's simplified LSOAs, packed at either scale and read back, still tile
    the borough: a vertex two neighbours share is the same whole number in both."""
    simple = webgeom.simplified(layers["lsoa"]).to_crs(4326)
    for scale in (webgeom.PACK_SCALE, webgeom.COARSE_PACK_SCALE):
        got = np.array(_read_back(webgeom.packed_rings(np.asarray(simple.geometry.values),
                                                       scale), scale), dtype=object)
        assert len(got) == len(simple)
        # every edge two neighbours shared is still in both (no gap opens between them;
        # rounding may make a vertex near a neighbour's edge cross it by under a metre)
        shared = _shared_edges(simple.geometry.values, scale)
        assert len(shared) > 100 and shared <= _shared_edges(got, None)


def _shared_edges(geoms, scale) -> set:
    """The edges (a pair of vertices, either way round) two of ``geoms`` both have, with
    the vertices rounded to 1 / ``scale`` first if given (an edge rounded to a point is
    left out)."""
    xy, ring = shapely.get_coordinates(shapely.get_rings(shapely.get_parts(np.asarray(
        geoms))), return_index=True)
    if scale is not None:
        xy = np.round(xy * scale) / scale
    same = ring[1:] == ring[:-1]
    a, b = map(tuple, xy[:-1][same].tolist()), map(tuple, xy[1:][same].tolist())
    edges = pd.Series([min(e, f) + max(e, f) for e, f in zip(a, b, strict=True) if e != f])
    counts = edges.value_counts()
    return set(counts.index[counts >= 2])


def test_simplified_layer_is_kept_in_the_cache_for_the_next_process(layers, tmp_path,
                                                                     monkeypatch):
    lsoa = layers["lsoa"]
    webgeom._CACHE.clear()  # as in a new process
    first = webgeom.simplified(lsoa, cache=tmp_path)
    kept = list((tmp_path / "derived").glob("web-*.wkb"))
    assert len(kept) == 1
    # the next process reads the kept layer: the same polygons, not simplified again
    webgeom._CACHE.clear()
    monkeypatch.setattr(shapely, "coverage_simplify", lambda *a, **k: 1 / 0)
    again = webgeom.simplified(lsoa, cache=tmp_path)
    assert shapely.equals_exact(np.asarray(again.geometry.values),
                                np.asarray(first.geometry.values), tolerance=0).all()
    # other polygons or another tolerance are simplified again, not read from that file
    with pytest.raises(ZeroDivisionError):
        webgeom.simplified(lsoa.head(5), cache=tmp_path)
    with pytest.raises(ZeroDivisionError):
        webgeom.simplified(lsoa, tolerance_m=7.0, cache=tmp_path)
    # a damaged file is simplified again (and written again)
    monkeypatch.undo()
    webgeom._CACHE.clear()
    kept[0].write_bytes(b"not wkb")
    assert webgeom.simplified(lsoa, cache=tmp_path).geometry.geom_equals(first.geometry).all()


def test_outline_of_overlapping_polygons_is_their_union():
    """The outline's fast coverage union is for polygons that meet edge to edge; polygons
    that overlap get the full union, never an invalid shape."""
    import geopandas as gpd
    import shapely

    from hotspots import webgeom

    over = gpd.GeoDataFrame(geometry=[shapely.box(0, 0, 100, 100), shapely.box(50, 0, 150, 100),
                                      shapely.box(0, 100, 100, 200)], crs=27700)
    got = webgeom.outline(over, tolerance_m=1)
    assert got.is_valid and got.equals(shapely.union_all(over.geometry.values))


def test_outline_of_a_layer_with_a_repeated_polygon_is_their_union():
    """A boundary file with a feature given twice is not a coverage: the coverage union
    raises on it (GEOS refuses overlapping inputs) where the full union draws it."""
    twice = gpd.GeoDataFrame(geometry=[shapely.box(0, 0, 100, 100), shapely.box(0, 0, 100, 100),
                                       shapely.box(100, 0, 200, 100)], crs=27700)
    got = webgeom.outline(twice, tolerance_m=1)
    assert got.is_valid and got.equals(shapely.box(0, 0, 200, 100))


def test_simplified_layer_is_not_kept_without_a_geodata_cache(tmp_path):
    areas = gpd.GeoDataFrame(geometry=[shapely.box(0, 0, 100, 100),
                                       shapely.box(100, 0, 200, 100)], crs=27700)
    webgeom._CACHE.clear()
    got = webgeom.simplified(areas, tolerance_m=3, cache=tmp_path / "absent")
    assert not (tmp_path / "absent").exists() and len(got) == 2
