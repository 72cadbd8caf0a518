"""Web geometry: a layer simplified once as a coverage keeps its neighbours' shared edges
(no gap, no overlap), the outline runs along the same edges, and packed coordinates read
back to the simplified vertices."""

from __future__ import annotations

import geopandas as gpd
import numpy as np
import pytest
import shapely

from hotspots import webgeom


def _unpack(ring, scale):
    x = y = 0
    out = []
    for c in ring:
        if len(c) > 2:
            x, y = c[0], c[1]
        else:
            x, y = x + c[0], y + c[1]
        out.append((x / scale, y / scale))
    return out


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


def test_packed_coordinates_read_back_to_the_vertices():
    hole = shapely.Polygon([(-0.05, 51.5), (-0.01, 51.5), (-0.01, 51.53), (-0.05, 51.53)],
                           [[(-0.04, 51.51), (-0.02, 51.51), (-0.02, 51.52)]])
    shapes = [hole, shapely.MultiPolygon([shapely.box(0.1, 51.4, 0.12, 51.41), hole]),
              shapely.Polygon()]
    frame = gpd.GeoDataFrame({"v": [1.5, np.nan, 2.0]}, geometry=shapes, crs=4326)
    for scale in (webgeom.PACK_SCALE, webgeom.COARSE_PACK_SCALE):
        fc = webgeom.packed_features(frame, ["v"], scale=scale)
        assert [f["properties"]["v"] for f in fc["features"]] == [1.5, None, 2.0]
        assert fc["features"][2]["geometry"] is None  # an empty shape is not drawn
        for f, shape in zip(fc["features"][:2], shapes[:2], strict=True):
            g = f["geometry"]
            polys = [g["coordinates"]] if g["type"] == "Polygon" else g["coordinates"]
            got = shapely.MultiPolygon([shapely.Polygon(_unpack(p[0], scale),
                                                        [_unpack(r, scale) for r in p[1:]])
                                        for p in polys])
            want = shapely.set_precision(shape, 1 / scale)
            assert got.equals(shapely.MultiPolygon(list(getattr(want, "geoms", [want]))))
        assert f"/ {scale:g}" in webgeom.unpack_js(scale)


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
        for g, want in zip([got[0], got[3]], [shapes[0], shapes[3]], strict=True):
            want = shapely.set_precision(want, 1 / scale)
            assert g.equals(shapely.MultiPolygon(list(getattr(want, "geoms", [want]))))
    with pytest.raises(ValueError, match="polygons and multipolygons only"):
        webgeom.packed_rings(np.array([shapely.Point(0, 51)]))


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
