import logging

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import shapely

from hotspots.errors import CRSError, ValidationError
from hotspots.grid import cell_index, grid_counts, make_grid, suggest_cell_size
from hotspots.schema import GRID_COLUMNS

SHAPES = ["square", "hex"]


@pytest.fixture(scope="module")
def grids(area):
    return {shape: make_grid(area, cell_size_m=200, shape=shape) for shape in SHAPES}


@pytest.mark.parametrize("shape", SHAPES)
def test_cells_cover_the_area_once(area, grids, shape):
    grid = grids[shape]
    assert list(grid.columns) == list(GRID_COLUMNS)
    assert grid.crs == "EPSG:27700"
    # clipped areas add up to the area, and no two cells overlap
    assert grid["area_km2"].sum() * 1e6 == pytest.approx(area.area, rel=1e-6)
    assert np.allclose(grid["area_km2"], grid.geometry.area / 1e6)
    assert (grid["area_km2"] > 0).all()
    pairs = grid.sindex.query(grid.geometry.values, predicate="overlaps")
    assert pairs.shape[1] == 0
    # ids 0..n-1 in row-major order, one cell per lattice position
    assert grid["cell_id"].tolist() == list(range(len(grid)))
    assert (np.diff(grid["row"] * 10**6 + grid["col"]) > 0).all()
    assert not grid.attrs  # the layout is the cell size and shape, passed, never carried


def test_square_lattice_is_anchored_at_the_crs_origin(area, grids):
    grid = grids["square"]
    assert np.array_equal(grid["x"], (grid["col"] + 0.5) * 200)
    assert np.array_equal(grid["y"], (grid["row"] + 0.5) * 200)
    # a grid over one part of the area lines up, cell for cell, with the grid over all of it
    part = make_grid(shapely.box(535000, 180000, 536500, 181300), cell_size_m=200)
    common = part.set_index(["row", "col"]).join(grid.set_index(["row", "col"]),
                                                 rsuffix="_whole", how="inner")
    assert len(common) > 20
    assert np.array_equal(common["x"], common["x_whole"])
    assert np.array_equal(common["y"], common["y_whole"])


@pytest.mark.parametrize("shape", SHAPES)
def test_same_area_and_size_give_the_same_cells(area, grids, shape):
    again = make_grid(area, cell_size_m=200, shape=shape)
    assert again[["cell_id", "row", "col"]].equals(grids[shape][["cell_id", "row", "col"]])
    assert shapely.equals_exact(again.geometry.values, grids[shape].geometry.values).all()


def test_hex_cells_have_the_stated_size(grids):
    grid = grids["hex"]
    full = grid[np.isclose(grid["area_km2"], np.sqrt(3) / 2 * 200**2 / 1e6)]
    assert len(full) > 100  # most cells are whole hexagons of sqrt(3)/2 * 200² m²
    centres = np.c_[full["x"], full["y"]]
    d = np.linalg.norm(centres[:, None] - centres[None], axis=-1)
    np.fill_diagonal(d, np.inf)
    assert d.min(axis=1) == pytest.approx(200)  # neighbouring centres 200 m apart
    # flat-topped: two vertices at the centre's height, 200/sqrt(3) m east and west
    xy = shapely.get_coordinates(full.geometry.values[0])
    assert np.isclose(xy[:, 1], full["y"].iloc[0]).sum() >= 2
    assert np.abs(xy[:, 0] - full["x"].iloc[0]).max() == pytest.approx(200 / np.sqrt(3))


@pytest.mark.parametrize("shape", SHAPES)
def test_neighbours_in_the_schema_are_the_cells_that_touch(area, grids, shape):
    grid = grids[shape]
    if shape == "hex":
        offsets = [(0, 1), (0, -1), (1, 0), (-1, 0), (-1, 1), (1, -1)]  # (dr, dq)
    else:
        offsets = [(dr, dc) for dr in (-1, 0, 1) for dc in (-1, 0, 1) if (dr, dc) != (0, 0)]
    pos = {(r, c): i for i, (r, c) in enumerate(zip(grid["row"], grid["col"], strict=True))}
    full = np.isclose(grid["area_km2"], grid["area_km2"].max())
    a, b = grid.sindex.query(grid.geometry.values, predicate="intersects")
    touching = {}
    for i, j in zip(a, b, strict=True):
        if i != j:
            touching.setdefault(i, set()).add(j)
    checked = 0
    for i in np.nonzero(full)[0]:
        r, c = grid["row"].iloc[i], grid["col"].iloc[i]
        lattice = {pos[(r + dr, c + dc)] for dr, dc in offsets if (r + dr, c + dc) in pos}
        assert touching[i] == lattice
        checked += 1
    assert checked > 100


@pytest.mark.parametrize("shape", SHAPES)
def test_counts_conserve_points(area, grids, shape):
    rng = np.random.default_rng(3)
    minx, miny, maxx, maxy = area.bounds
    x = rng.uniform(minx - 200, maxx + 200, 20_000)
    y = rng.uniform(miny - 200, maxy + 200, 20_000)
    x[:3], y[:3] = np.nan, np.nan
    weights = rng.uniform(0, 3, 20_000)
    counts = grid_counts(grids[shape], x, y, weights=weights, cell_size_m=200, shape=shape)
    inside = shapely.intersects_xy(area, x, y)
    assert counts["n"].sum() == inside.sum() > 5000
    assert counts["weighted"].sum() == pytest.approx(weights[inside].sum())
    assert list(counts.columns) == [*GRID_COLUMNS, "n", "weighted"]
    assert "n" not in grids[shape].columns  # input not modified
    # every counted point lies in (or on the edge of) its cell
    idx = cell_index(grids[shape], x, y, cell_size_m=200, shape=shape)
    got = idx >= 0
    geoms = grids[shape].geometry.values[idx[got]]
    assert shapely.intersects_xy(geoms, x[got], y[got]).all()


def test_points_on_square_edges_go_to_one_cell_by_the_rule():
    grid = make_grid(shapely.box(0, 0, 300, 200), cell_size_m=100)
    ids = {(r, c): i for i, r, c in zip(grid["cell_id"], grid["row"], grid["col"], strict=True)}
    cases = [  # (x, y) -> (row, col)
        ((100, 50), (0, 1)),   # shared vertical edge: the cell to the east
        ((50, 100), (1, 0)),   # shared horizontal edge: the cell to the north
        ((100, 100), (1, 1)),  # shared corner: north-east
        ((300, 50), (0, 2)),   # on the area's east edge: the only cell there
        ((150, 200), (1, 1)),  # on the area's north edge
        ((300, 200), (1, 2)),  # the area's north-east corner
        ((0, 0), (0, 0)),
    ]
    x = np.array([p[0] for p, _ in cases], dtype=float)
    y = np.array([p[1] for p, _ in cases], dtype=float)
    assert cell_index(grid, x, y, cell_size_m=100).tolist() == [ids[rc] for _, rc in cases]
    outside = cell_index(grid, np.array([300.001, -0.001]), np.array([50.0, 50.0]),
                         cell_size_m=100)
    assert outside.tolist() == [-1, -1]


def test_points_on_hex_edges_go_to_one_cell_by_the_rule():
    grid = make_grid(shapely.box(0, 0, 1000, 1000), cell_size_m=100, shape="hex")
    inner = grid[np.isclose(grid["area_km2"], grid["area_km2"].max())]
    cell = inner.iloc[len(inner) // 2]
    # a point on the horizontal edge between a hexagon and its north neighbour (q, r+1)
    x, y = np.array([cell["x"] + 10.0]), np.array([cell["y"] + 50.0])
    north = grid[(grid["col"] == cell["col"]) & (grid["row"] == cell["row"] + 1)]
    assert cell_index(grid, x, y, cell_size_m=100, shape="hex").tolist() == \
        north["cell_id"].tolist()
    # points on the sloping edges and the vertices: each in exactly one cell holding it
    angles = np.deg2rad(np.arange(0, 360, 30))
    radius = np.where(np.arange(12) % 2 == 0, 100 / np.sqrt(3), 50.0)
    px, py = cell["x"] + radius * np.cos(angles), cell["y"] + radius * np.sin(angles)
    idx = cell_index(grid, px, py, cell_size_m=100, shape="hex")
    assert (idx >= 0).all()
    dist = shapely.distance(grid.geometry.values[idx], shapely.points(px, py))
    assert dist.max() < 1e-9


def test_parameter_errors_name_the_parameter(area, grids):
    with pytest.raises(ValueError, match=r"cell_size_m must be a positive number of metres, got 0"):
        make_grid(area, cell_size_m=0)
    with pytest.raises(ValueError, match=r"cell_size_m must be a positive number of metres, "
                                         r"got 'abc'"):
        make_grid(area, cell_size_m="abc")
    with pytest.raises(ValueError, match=r"shape must be one of 'square', 'hex'; "
                                         r"got 'hexagon'"):
        make_grid(area, cell_size_m=100, shape="hexagon")
    with pytest.raises(ValueError, match=r"cell_size_m=1 gives about 4[\d,]+ cells .* the limit "
                                         r"is 4,000,000\. Use a larger cell size"):
        make_grid(area, cell_size_m=1)
    with pytest.raises(ValueError, match=r"area must be a polygon or multipolygon with non-zero "
                                         r"area, got LineString"):
        make_grid(shapely.LineString([(0, 0), (100, 100)]), cell_size_m=10)
    # a lookup with another size or shape than the grid's is refused, not answered wrongly
    with pytest.raises(ValidationError, match=r"grid's cell 0 \(row \d+, col \d+\) has its "
                       r"centre at .* where a square lattice of 100 m puts it; pass the "
                       r"cell_size_m and shape the grid was made with"):
        cell_index(grids["square"], [0.0], [0.0], cell_size_m=100)
    with pytest.raises(ValidationError, match=r"square lattice of 200 m"):
        grid_counts(grids["hex"], [0.0], [0.0], cell_size_m=200)
    with pytest.raises(ValidationError, match=r"grid lacks the column\(s\) x, y"):
        cell_index(grids["square"].drop(columns=["x", "y"]), [0.0], [0.0], cell_size_m=200)


def test_a_joined_grid_still_looks_points_up(area, grids):
    """The layout is passed, not carried in attrs: a merge (which drops attrs) and a concat
    of parts keep every lookup the same."""
    grid = grids["square"]
    rng = np.random.default_rng(7)
    minx, miny, maxx, maxy = area.bounds
    x, y = rng.uniform(minx, maxx, 2000), rng.uniform(miny, maxy, 2000)
    want = cell_index(grid, x, y, cell_size_m=200)
    merged = grid.merge(pd.DataFrame({"cell_id": grid["cell_id"], "label": "c"}), on="cell_id")
    assert not merged.attrs
    assert np.array_equal(cell_index(merged, x, y, cell_size_m=200), want)
    halves = pd.concat([grid.iloc[::2], grid.iloc[1::2].assign(extra=1)])
    assert np.array_equal(cell_index(halves, x, y, cell_size_m=200), want)
    counts = grid_counts(merged, x, y, cell_size_m=200)
    assert counts["n"].sum() == (want >= 0).sum() > 800


def test_multipolygon_with_a_hole_is_covered_once():
    area = shapely.union_all([
        shapely.box(0, 0, 1000, 1000).difference(shapely.Point(500, 500).buffer(220)),
        shapely.box(1500, 130, 1910, 470),
    ])
    for shape in SHAPES:
        grid = make_grid(area, cell_size_m=90, shape=shape)
        assert grid["area_km2"].sum() * 1e6 == pytest.approx(area.area, rel=1e-6)
        assert grid.sindex.query(grid.geometry.values, predicate="overlaps").shape[1] == 0
        union = shapely.union_all(grid.geometry.values)
        assert shapely.symmetric_difference(union, area).area < 1e-6 * area.area
        rng = np.random.default_rng(1)
        x, y = rng.uniform(-50, 2000, 5000), rng.uniform(-50, 1050, 5000)
        counts = grid_counts(grid, x, y, cell_size_m=90, shape=shape)
        assert counts["n"].sum() == shapely.intersects_xy(area, x, y).sum()


def test_degrees_are_refused(area):
    with pytest.raises(CRSError, match=r"area is in EPSG:4326, not a projected CRS in metres"):
        make_grid(shapely.box(-0.05, 51.5, 0.0, 51.55), cell_size_m=100, crs="EPSG:4326")
    wards = gpd.GeoSeries([area], crs=27700).to_crs(4326)
    with pytest.raises(CRSError, match=r"not a projected CRS in metres\. Convert it with "
                                       r"\.to_crs\(27700\)"):
        make_grid(wards, cell_size_m=100)


def test_suggest_cell_size_rule_by_hand(caplog):
    area = shapely.box(0, 0, 4000, 2500)  # shorter side 2500 m, 10 km²
    rng = np.random.default_rng(0)
    x, y = rng.uniform(0, 4000, 10_000), rng.uniform(0, 2500, 10_000)
    far = np.full(5000, 1e6)  # outside the bounding box: not counted
    with caplog.at_level(logging.INFO, logger="hotspots.grid"):
        # 400 points: sqrt(1e7 / 400) = 158.1 m beats 2500 / 50 = 50 m; rounded down to 100
        assert suggest_cell_size(np.r_[x[:400], far], np.r_[y[:400], far], area) == 100
        # 10,000 points: sqrt(1e7 / 1e4) = 31.6 m < 50 m, so 50 m
        assert suggest_cell_size(x, y, area) == 50
        # capped at a third of a 120 m bandwidth: 40 m, rounded down to 25 m
        assert suggest_cell_size(x, y, area, bandwidth_m=120) == 25
        # no points, 20 cells across: 125 m, rounded down to 100 m
        assert suggest_cell_size([], [], area, cells_across=20) == 100
    messages = [r.getMessage() for r in caplog.records]
    assert messages[0].startswith("cell size set to 100 m (rule: max(shorter side 2500 m / 50")
    assert messages[1].startswith("cell size set to 50 m")
    assert "capped at bandwidth 120 m / 3" in messages[2]
    with pytest.raises(ValueError, match=r"cells_across must be an integer 1 or more; got 0"):
        suggest_cell_size(x, y, area, cells_across=0)


@pytest.mark.parametrize("shape", SHAPES)
def test_full_cells_are_told_apart_by_coordinates_as_equals_exact_does(area, grids, shape):
    # cell_index skips the exact test in full cells: found from coordinates, without
    # drawing every cell again (641,000 at 50 m over London), the same cells as equals_exact
    from hotspots.grid import _cells, _unclipped

    grid = grids[shape]
    geoms = np.asarray(grid.geometry.values)
    rows, cols = grid["row"].to_numpy(), grid["col"].to_numpy()
    drawn = _cells(shape, rows, cols, 200.0)
    # a full cell reversed, a cell with its ring started elsewhere, one with a hole, an
    # empty one: equal as sets, not as drawn
    odd = [shapely.reverse(drawn[0]), shapely.Polygon(np.roll(
        shapely.get_coordinates(drawn[1])[:-1], 1, axis=0)),
        drawn[2].difference(shapely.Point(*drawn[2].centroid.coords[0]).buffer(5)),
        shapely.Polygon()]
    geoms = np.concatenate([geoms, odd])
    rows, cols = np.r_[rows, rows[:4]], np.r_[cols, cols[:4]]
    drawn = np.concatenate([drawn, drawn[:4]])
    want = shapely.equals_exact(geoms, drawn, tolerance=0.0)
    got = _unclipped(geoms, shape, rows, cols, 200.0)
    assert want.sum() > 100 and (~want).sum() > 10
    assert np.array_equal(got, want)
    assert not got[-4:].any()
