import geopandas as gpd
import numpy as np
import pytest
import shapely
from shapely.geometry import box

from hotspots.assign import assign_codes, assign_points
from hotspots.errors import CRSError


def squares(codes=("B", "A", "D", "C")):
    """2 x 2 squares of 100 m: A bottom-left, B bottom-right, C top-left, D top-right."""
    boxes = {"A": (0, 0, 100, 100), "B": (100, 0, 200, 100), "C": (0, 100, 100, 200),
             "D": (100, 100, 200, 200)}
    return gpd.GeoDataFrame({"code": list(codes)},
                            geometry=[shapely.box(*boxes[c]) for c in codes], crs=27700)


def test_interior_points_go_to_their_square():
    got = assign_codes(np.array([50, 150, 50, 150.0]), np.array([50, 50, 150, 150.0]), squares())
    assert got.tolist() == ["A", "B", "C", "D"]


def test_shared_edge_and_vertex_go_to_smallest_code():
    # on the A|B edge, on the C|D edge, on the A|C edge, on the shared corner of all four
    x = np.array([100, 100, 50, 100.0])
    y = np.array([50, 150, 100, 100.0])
    assert assign_codes(x, y, squares()).tolist() == ["A", "C", "A", "A"]
    # renaming changes the winner: the rule follows codes, not row order
    renamed = squares().assign(code=["Z", "Y", "X", "W"])  # B->Z, A->Y, D->X, C->W
    assert assign_codes(x, y, renamed).tolist() == ["Y", "W", "W", "W"]


def test_outside_points_use_nearest_within_limit():
    x = np.array([-30.0, -300.0, 250.0])
    y = np.array([50.0, 50.0, 150.0])
    assert assign_codes(x, y, squares(), nearest_max_m=50).tolist() == ["A", "", "D"]
    assert assign_codes(x, y, squares()).tolist() == ["", "", ""]


def test_overlapping_polygons_give_smallest_code():
    gdf = gpd.GeoDataFrame({"code": ["Q", "P"]},
                           geometry=[shapely.box(0, 0, 100, 100), shapely.box(50, 0, 150, 100)],
                           crs=27700)
    assert assign_codes(np.array([75.0, 25.0]), np.array([50.0, 50.0]), gdf).tolist() == ["P", "Q"]


def test_nan_coordinates_are_unassigned():
    got = assign_points(np.array([np.nan, 50.0]), np.array([50.0, np.nan]), squares())
    assert got.tolist() == [-1, -1]


def test_geographic_crs_is_refused():
    with pytest.raises(CRSError, match=r"not a projected CRS in metres\. Convert it with "
                                       r"\.to_crs\(27700\)"):
        assign_points(np.array([0.0]), np.array([0.0]), squares().to_crs(4326))


@pytest.mark.parametrize("cell", [None, 3.0, 40.0])
def test_same_answer_as_point_in_polygon_join_on_real_lsoas(layers, cell):
    lsoa = layers["lsoa"]
    rng = np.random.default_rng(7)
    minx, miny, maxx, maxy = lsoa.total_bounds
    x = rng.uniform(minx, maxx, 60_000)
    y = rng.uniform(miny, maxy, 60_000)
    # and points exactly on polygon vertices (shared boundaries)
    vx, vy = shapely.get_coordinates(lsoa.geometry.values[:40]).T
    x, y = np.r_[x, vx], np.r_[y, vy]
    got = assign_points(x, y, lsoa, cell_size_m=cell)
    pts = gpd.GeoDataFrame(geometry=gpd.points_from_xy(x, y), crs=lsoa.crs)
    j = gpd.sjoin(pts, lsoa, predicate="intersects")
    j["rank"] = j["code"]
    best = j.sort_values(["rank"]).groupby(level=0)["index_right"].first()
    want = np.full(len(x), -1)
    want[best.index.to_numpy()] = best.to_numpy()
    # a vertex lies inside no polygon, so 'intersects' + smallest code is exactly the rule
    assert np.array_equal(got, want)
    assert (got >= 0).sum() > 25_000


def exact_rule(x, y, areas, nearest_max_m=0.0):
    """The edge rule by brute force over every (point, polygon) pair."""
    geoms = np.asarray(areas.geometry.values)
    rank = np.argsort(np.argsort(areas["code"].to_numpy(dtype=str), kind="stable"))
    pi = np.repeat(np.arange(len(x)), len(geoms))
    gi = np.tile(np.arange(len(geoms)), len(x))
    inside = shapely.contains_xy(geoms[gi], x[pi], y[pi]).reshape(len(x), -1)
    touch = shapely.intersects_xy(geoms[gi], x[pi], y[pi]).reshape(len(x), -1)
    dist = shapely.distance(geoms[gi], shapely.points(x[pi], y[pi])).reshape(len(x), -1)
    nearest = (dist <= nearest_max_m) & (dist == dist.min(axis=1, keepdims=True))
    out = np.full(len(x), -1)
    for hit in (inside, touch, nearest & (nearest_max_m > 0)):
        score = np.where(hit, rank, len(geoms))
        best = score.argmin(axis=1)
        take = (out < 0) & hit.any(axis=1)
        out[take] = best[take]
    return out


def snapped_polygons(seed, grid=5.0):
    """Overlapping polygons whose vertices sit on a 5 m grid and which carry that precision
    grid (GEOS then snaps any vertex it adds to them, too)."""
    rng = np.random.default_rng(seed)
    centres = shapely.points(rng.uniform(0, 600, (25, 2)))
    polys = shapely.make_valid(shapely.set_precision(
        shapely.buffer(centres, rng.uniform(30, 150, 25), quad_segs=3), grid))
    polys = polys[~shapely.is_empty(polys)]
    return gpd.GeoDataFrame({"code": [f"C{rng.integers(0, 20):02d}" for _ in polys]},
                            geometry=polys, crs=27700)


def fine_lattice_points(areas):
    """Points on a 5 m lattice's lines, on the polygons' vertices, on their edges and
    anywhere (always the same points for the same polygons)."""
    rng = np.random.default_rng(4)
    gx, gy = np.meshgrid(np.arange(-40, 700, 5.0), np.arange(-40, 700, 5.0))
    coords = shapely.get_coordinates(shapely.boundary(areas.geometry.values))
    t = rng.uniform(0, 1, len(coords) - 1)[:, None]
    on_edge = coords[:-1] + t * (coords[1:] - coords[:-1])
    x = np.r_[gx.ravel(), coords[:, 0], on_edge[:, 0], rng.uniform(-40, 700, 6000)]
    y = np.r_[gy.ravel(), coords[:, 1], on_edge[:, 1], rng.uniform(-40, 700, 6000)]
    return x, y


@pytest.fixture(scope="module")
def fine_lattice_truth():
    """The brute-force answer (about 2 s each) for the fine-lattice points, without and
    with a 20 m nearest limit: it does not depend on the lookup's cell size, so the four
    cell sizes below are checked against one computation instead of four."""
    areas = snapped_polygons(3)
    x, y = fine_lattice_points(areas)
    return {nearest: exact_rule(x, y, areas, nearest) for nearest in (0.0, 20.0)}


@pytest.mark.parametrize("cell", [0.7, 1.0, 2.5, 5.0])
def test_fine_lattice_on_gridded_polygons_matches_the_exact_rule(cell, fine_lattice_truth):
    # boundaries cut finer than the polygons' precision grid, points on lattice lines,
    # on vertices, on edges and anywhere
    areas = snapped_polygons(3)
    x, y = fine_lattice_points(areas)
    for nearest in (0.0, 20.0):
        got = assign_points(x, y, areas, nearest_max_m=nearest, cell_size_m=cell)
        assert np.array_equal(got, fine_lattice_truth[nearest])


def test_edges_along_lattice_lines():
    # squares whose edges lie exactly on lines of a 5 m lattice, points on those lines
    x = np.r_[np.arange(0, 201, 2.5), np.full(81, 100.0), np.arange(0, 201, 2.5) + 1e-9]
    y = np.r_[np.full(81, 100.0), np.arange(0, 201, 2.5), np.full(81, 100.0 - 1e-9)]
    for cell in (None, 5.0, 2.5, 12.5):
        got = assign_points(x, y, squares(), cell_size_m=cell)
        assert np.array_equal(got, exact_rule(x, y, squares()))


def test_lookup_kept_for_a_layer_follows_its_codes():
    from hotspots import assign

    x = np.array([100, 100, 50, 100.0])
    y = np.array([50, 150, 100, 100.0])
    layer = squares()
    first = assign_codes(x, y, layer)
    assert assign_codes(x, y, layer).tolist() == first.tolist() == ["A", "C", "A", "A"]
    # the same polygon objects under other codes: a new lookup, not the kept one
    renamed = layer.assign(code=["Z", "Y", "X", "W"])
    assert renamed.geometry.values[0] is layer.geometry.values[0]
    assert assign_codes(x, y, renamed).tolist() == ["Y", "W", "W", "W"]
    assign._CACHE.clear()
    assert assign_codes(x, y, layer).tolist() == first.tolist()


def test_police_uk_rows_prefer_their_own_area_on_edges_and_just_outside():
    from hotspots.assign import prefer_own

    # two 100 m squares sharing the edge x = 100; codes A (left) < B (right)
    sq = gpd.GeoDataFrame({"code": ["A", "B"]}, geometry=[box(0, 0, 100, 100),
                                                          box(100, 0, 200, 100)], crs=27700)
    x = np.array([100.0, 100.05, 100.5, 205.0, 420.0, 100.0])
    y = np.array([50.0, 50.0, 50.0, 50.0, 50.0, 50.0])
    got = assign_points(x, y, sq, nearest_max_m=250)
    assert got.tolist() == [0, 1, 1, 1, 1, 0]  # edge: smallest code; outside: nearest
    own = np.array([1, 0, 0, 0, 0, -1])  # B, A, A, A, A, none
    out = prefer_own(x, y, got, own, sq, edge_m=0.15, nearest_max_m=250)
    # on the edge -> own B; 5 cm inside B (coordinate precision) -> own A; 50 cm inside
    # B stays B; 5 m outside (nearest B) -> own A within 250 m; 320 m from A: nearest
    # B stays; no own code: the smallest-code rule stays
    assert out.tolist() == [1, 0, 1, 0, 1, 0]
    assert got.tolist() == [0, 1, 1, 1, 1, 0]  # not modified
