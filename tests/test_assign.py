import geopandas as gpd
import numpy as np
import pytest
import shapely

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
