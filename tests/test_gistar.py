import re
import warnings

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
import shapely
from scipy import stats

from hotspots.gistar import (
    GISTAR_COLUMNS,
    benjamini_hochberg,
    distance_band_neighbours,
    gi_classes,
    gistar,
    grid_neighbours,
    polygon_neighbours,
)
from hotspots.schema import GRID_COLUMNS

X0, Y0 = 530_000.0, 180_000.0


def square_grid(n_rows=12, n_cols=15, size=100.0, rng=0):
    """Squares with an irregular outline, a hole of 3 x 2 cells and a single missing cell,
    rows shuffled so that nothing may depend on the frame's order."""
    rows, cols = np.mgrid[0:n_rows, 0:n_cols]
    rows, cols = rows.ravel(), cols.ravel()
    keep = ~((rows >= 4) & (rows <= 6) & (cols >= 6) & (cols <= 7))  # hole
    keep &= ~((rows == 2) & (cols == 3))  # single missing cell
    keep &= cols + rows // 2 < n_cols  # ragged eastern edge
    keep &= ~((rows < 3) & (cols < 3 - rows))  # cut south-west corner
    rows, cols = rows[keep], cols[keep]
    order = np.random.default_rng(rng).permutation(len(rows))
    rows, cols = rows[order], cols[order]
    x = X0 + (cols + 0.5) * size
    y = Y0 + (rows + 0.5) * size
    geom = shapely.box(x - size / 2, y - size / 2, x + size / 2, y + size / 2)
    return gpd.GeoDataFrame(
        {"cell_id": np.arange(len(rows)), "row": rows, "col": cols, "x": x, "y": y,
         "area_km2": size**2 / 1e6},
        geometry=geom, crs=27700)[list(GRID_COLUMNS)]


def hex_grid(n_q=14, n_r=11, radius=50.0):
    """Flat-topped hexagons in axial coordinates (col = q, row = r), roughly rectangular,
    with a hole of three cells and a ragged edge."""
    cells = [(q, r) for q in range(n_q) for r in range(-(q // 2), -(q // 2) + n_r)]
    holes = {(6, 2), (7, 2), (6, 3)}
    cells = [(q, r) for q, r in cells if (q, r) not in holes and not (q > 10 and r > 3)]
    q = np.array([c[0] for c in cells])
    r = np.array([c[1] for c in cells])
    x = X0 + 1.5 * radius * q
    y = Y0 + np.sqrt(3) * radius * (r + q / 2)
    angles = np.deg2rad(np.arange(0, 360, 60))
    geom = [shapely.Polygon(np.column_stack([cx + radius * np.cos(angles),
                                             cy + radius * np.sin(angles)]))
            for cx, cy in zip(x, y, strict=True)]
    return gpd.GeoDataFrame(
        {"cell_id": np.arange(len(q)), "row": r, "col": q, "x": x, "y": y,
         "area_km2": 1.5 * np.sqrt(3) * radius**2 / 1e6},
        geometry=geom, crs=27700)[list(GRID_COLUMNS)]


def same(a, b):
    return (sp.csr_matrix(a) != sp.csr_matrix(b)).nnz == 0


@pytest.fixture
def esda_z():
    """esda's analytic Gi* z on a libpysal W built from our CSR.

    with_self=False drops our diagonal first, as libpysal weights normally come."""
    esda = pytest.importorskip("esda")
    libpysal = pytest.importorskip("libpysal")

    def run(values, weights, *, with_self=True):
        w = sp.csr_matrix(weights)
        if not with_self:
            w = w - sp.diags(w.diagonal())
            w.eliminate_zeros()
        with warnings.catch_warnings():  # disconnected components, islands
            warnings.simplefilter("ignore")
            lw = libpysal.weights.WSP(w).to_W()
            return esda.G_Local(np.asarray(values, dtype=float), lw, transform="B", star=True,
                                permutations=0).Zs

    return run


def counts(n, rng=1, lam=4.0):
    return np.random.default_rng(rng).poisson(lam, n).astype(float)


# --- neighbours -------------------------------------------------------------------------


def test_square_neighbours_match_distance_band_and_polygons():
    grid = square_grid()
    queen = grid_neighbours(grid)
    rook = grid_neighbours(grid, contiguity="rook")
    assert isinstance(queen, sp.csr_matrix) and queen.shape == (len(grid), len(grid))
    assert np.all(queen.diagonal() == 1) and np.all(queen.data == 1)
    assert same(queen, queen.T)
    assert same(queen, distance_band_neighbours(grid.x, grid.y, distance_m=100 * 1.415))
    assert same(rook, distance_band_neighbours(grid.x, grid.y, distance_m=101))
    assert same(queen, polygon_neighbours(grid))
    assert same(rook, polygon_neighbours(grid, contiguity="rook"))
    sizes = np.diff(queen.indptr) - 1
    assert sizes.max() == 8 and sizes.min() < 8  # interior cells and edge cells
    assert np.diff(rook.indptr).max() - 1 == 4


def test_square_neighbours_of_one_cell():
    grid = square_grid()
    at = {(r, c): i for i, (r, c) in enumerate(zip(grid.row, grid.col, strict=True))}
    queen = grid_neighbours(grid)
    # (3, 7) borders the hole at rows 4-6, cols 6-7: its neighbours there are missing
    got = {(int(grid.row.iloc[j]), int(grid.col.iloc[j])) for j in queen[at[(3, 7)]].indices}
    assert got == {(3, 7), (2, 6), (2, 7), (2, 8), (3, 6), (3, 8), (4, 8)}


def test_sparse_lattice_gives_the_same_neighbours():
    # two patches 5 km apart: the lattice's bounding box is far larger than the cell count,
    # so neighbours are found by binary search instead of a dense lookup array
    grid = square_grid()
    far = grid.col.to_numpy() > 7
    grid = grid.assign(col=np.where(far, grid.col + 50_000, grid.col),
                       x=np.where(far, grid.x + 5e6, grid.x))
    for contiguity, band in (("queen", 141.5), ("rook", 101)):
        assert same(grid_neighbours(grid, contiguity=contiguity),
                    distance_band_neighbours(grid.x, grid.y, distance_m=band))
    dup = pd.concat([grid, grid.iloc[[7, 2]]], ignore_index=True)
    with pytest.raises(ValueError, match=f"2 cells whose \\(row, col\\) repeats an earlier one; "
                                         f"the first at position {len(grid)}"):
        grid_neighbours(dup)


def test_hex_neighbours_are_the_six_axial_ones():
    grid = hex_grid()
    w = grid_neighbours(grid)
    assert same(w, grid_neighbours(grid, contiguity="rook"))
    assert same(w, grid_neighbours(grid, cell_shape="hex"))
    assert same(w, distance_band_neighbours(grid.x, grid.y, distance_m=np.sqrt(3) * 50 * 1.01))
    assert np.diff(w.indptr).max() - 1 == 6
    at = {(q, r): i for i, (q, r) in enumerate(zip(grid.col, grid.row, strict=True))}
    got = {(int(grid.col.iloc[j]), int(grid.row.iloc[j])) for j in w[at[(3, 1)]].indices}
    assert got == {(3, 1), (4, 1), (2, 1), (3, 2), (3, 0), (4, 0), (2, 2)}
    # read as squares the same lattice would be wrong: the shape must matter
    assert not same(w, grid_neighbours(grid, cell_shape="square"))


def test_polygon_neighbours_match_libpysal_on_real_lsoas(layers):
    libpysal = pytest.importorskip("libpysal")
    lsoa = layers["lsoa"]
    for contiguity, cls in (("queen", libpysal.weights.Queen), ("rook", libpysal.weights.Rook)):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ref = cls.from_dataframe(lsoa, use_index=False).sparse
        ours = polygon_neighbours(lsoa, contiguity=contiguity)
        assert same(ours, ref + sp.identity(len(lsoa)))


def test_rook_needs_a_shared_edge_not_a_corner():
    boxes = gpd.GeoSeries([shapely.box(0, 0, 1, 1), shapely.box(1, 1, 2, 2),
                           shapely.box(1, 0, 2, 1)])
    gdf = gpd.GeoDataFrame(geometry=boxes)
    assert polygon_neighbours(gdf).toarray().tolist() == [[1, 1, 1], [1, 1, 1], [1, 1, 1]]
    assert polygon_neighbours(gdf, contiguity="rook").toarray().tolist() == [
        [1, 0, 1], [0, 1, 1], [1, 1, 1]]


def test_neighbours_do_not_mutate_inputs():
    grid = square_grid()
    before = grid.copy()
    grid_neighbours(grid)
    polygon_neighbours(grid, contiguity="rook")
    distance_band_neighbours(grid.x, grid.y, distance_m=150)
    pd.testing.assert_frame_equal(grid, before)


# --- z equals esda's --------------------------------------------------------------------


def test_z_equals_esda_square_queen_and_rook(esda_z):
    grid = square_grid()
    y = counts(len(grid))
    for contiguity in ("queen", "rook"):
        w = grid_neighbours(grid, contiguity=contiguity)
        got = gistar(y, w)
        assert list(got.columns) == list(GISTAR_COLUMNS)
        np.testing.assert_allclose(got.gistar_z, esda_z(y, w), rtol=0, atol=1e-9)


def test_esda_adds_the_diagonal_itself_for_binary_star(esda_z):
    """esda with star=True, transform="B" sets w_ii = 1 when W has no diagonal and keeps it
    when it has one, so both give our z."""
    grid = square_grid()
    y = counts(len(grid), rng=5)
    w = grid_neighbours(grid)
    ours = gistar(y, w).gistar_z.to_numpy()
    np.testing.assert_allclose(esda_z(y, w, with_self=False), ours, rtol=0, atol=1e-9)
    np.testing.assert_allclose(esda_z(y, w, with_self=True), ours, rtol=0, atol=1e-9)


def test_z_equals_esda_hex(esda_z):
    grid = hex_grid()
    y = counts(len(grid), rng=2)
    w = grid_neighbours(grid)
    np.testing.assert_allclose(gistar(y, w).gistar_z, esda_z(y, w), rtol=0, atol=1e-9)


def test_z_equals_esda_distance_band(esda_z):
    rng = np.random.default_rng(3)
    x, yy = rng.uniform(0, 2000, 300) + X0, rng.uniform(0, 1500, 300) + Y0
    w = distance_band_neighbours(x, yy, distance_m=250)
    libpysal = pytest.importorskip("libpysal")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        band = libpysal.weights.DistanceBand(np.column_stack([x, yy]), threshold=250).sparse
    assert same(w, band + sp.identity(300))
    values = counts(300, rng=4, lam=2.5)
    got = gistar(values, w)
    assert not got.island.any()
    np.testing.assert_allclose(got.gistar_z, esda_z(values, w), rtol=0, atol=1e-9)


def test_z_equals_esda_real_lsoas(layers, esda_z):
    lsoa = layers["lsoa"]
    w = polygon_neighbours(lsoa)
    # counts that grow with area, so there is real structure to find
    values = np.random.default_rng(6).poisson(40 * lsoa.area_km2.to_numpy() + 5)
    got = gistar(values, w)
    np.testing.assert_allclose(got.gistar_z, esda_z(values, w), rtol=0, atol=1e-9)
    assert got.n_neighbours.min() >= 2 and not got.island.any()


def test_z_is_the_textbook_formula_by_hand():
    # 5 cells on a line, rook: cell 1's neighbourhood is cells 0, 1, 2
    values = np.array([1.0, 4.0, 2.0, 0.0, 3.0])
    w = grid_neighbours(pd.DataFrame({"row": [0] * 5, "col": range(5)}), contiguity="rook",
                        cell_shape="square")
    n, xbar, s = 5, values.mean(), values.std()
    z1 = (7.0 - xbar * 3) / (s * np.sqrt((n * 3 - 9) / (n - 1)))
    z0 = (5.0 - xbar * 2) / (s * np.sqrt((n * 2 - 4) / (n - 1)))
    got = gistar(values, w, fdr=False)
    assert got.gistar_z[1] == pytest.approx(z1, abs=1e-12)
    assert got.gistar_z[0] == pytest.approx(z0, abs=1e-12)
    assert got.n_neighbours.tolist() == [1, 2, 2, 2, 1]


# --- p-values, FDR, classes ------------------------------------------------------------


def test_p_values_are_two_sided_and_fdr_is_bh():
    grid = square_grid()
    y = counts(len(grid), rng=7)
    w = grid_neighbours(grid)
    got = gistar(y, w)
    np.testing.assert_allclose(got.p_value, 2 * stats.norm.sf(np.abs(got.gistar_z)), atol=1e-15)
    np.testing.assert_allclose(got.p_adjusted, benjamini_hochberg(got.p_value), atol=1e-15)
    plain = gistar(y, w, fdr=False)
    assert (plain.p_adjusted == plain.p_value).all()
    np.testing.assert_array_equal(plain.gistar_z, got.gistar_z)
    np.testing.assert_array_equal(got.gi_class, gi_classes(got.gistar_z, got.p_adjusted))
    np.testing.assert_array_equal(plain.gi_class, gi_classes(plain.gistar_z, plain.p_value))


def test_benjamini_hochberg_by_hand():
    p = np.array([0.01, 0.04, 0.03, 0.005])
    # sorted: 0.005 (i=1), 0.01 (2), 0.03 (3), 0.04 (4); m = 4; p_(i) * m / i:
    # 0.02, 0.02, 0.04, 0.04; cumulative minimum from the top leaves them as they are
    expected = np.array([0.01 * 4 / 2, 0.04 * 4 / 4, 0.03 * 4 / 3, 0.005 * 4 / 1])
    np.testing.assert_allclose(benjamini_hochberg(p), expected, atol=1e-15)
    # where the running minimum bites: 0.04 * 3/2 = 0.06 but 0.045 * 3/3 = 0.045
    np.testing.assert_allclose(benjamini_hochberg([0.04, 0.045, 0.001]),
                               [0.045, 0.045, 0.003], atol=1e-15)
    assert benjamini_hochberg([0.9, 0.8]).tolist() == [0.9, 0.9]
    assert benjamini_hochberg([]).shape == (0,)


def test_benjamini_hochberg_equals_scipy():
    p = np.random.default_rng(8).beta(0.3, 2.0, 5000)
    p[:10] = 0.02  # ties
    np.testing.assert_allclose(benjamini_hochberg(p),
                               stats.false_discovery_control(p, method="bh"), atol=1e-14)


def test_classes_at_the_thresholds():
    z = np.array([1.644, 1.645, 1.959, 1.960, 2.575, 2.576, 0.3, 0.0])
    z = np.concatenate([z, -z])
    p = 2 * stats.norm.sf(np.abs(z))
    expected = np.array([0, 1, 1, 2, 2, 3, 0, 0])
    np.testing.assert_array_equal(gi_classes(z, p), np.concatenate([expected, -expected]))
    # the levels apply to p: exact boundaries count as significant
    assert gi_classes([1, 1, 1, -1], [0.10, 0.05, 0.01, 0.1000001]).tolist() == [1, 2, 3, 0]
    assert gi_classes([2.0], [0.04], alpha_levels=(0.01, 0.2, 0.05)).tolist() == [2]


def test_planted_hot_block_and_cold_pit():
    rng = np.random.default_rng(9)
    n = 30
    rows, cols = (a.ravel() for a in np.mgrid[0:n, 0:n])
    y = rng.poisson(20, n * n).astype(float)
    hot = (abs(rows - 6) <= 1) & (abs(cols - 6) <= 1)
    cold = (abs(rows - 20) <= 2) & (abs(cols - 21) <= 2)
    y[hot] = rng.poisson(60, hot.sum())
    y[cold] = 0
    grid = pd.DataFrame({"row": rows, "col": cols, "x": cols * 100.0, "y": rows * 100.0})
    got = gistar(y, grid_neighbours(grid))
    centre_hot = (rows == 6) & (cols == 6)
    centre_cold = (rows == 20) & (cols == 21)
    assert got.gi_class[centre_hot].item() == 3
    assert got.gi_class[centre_cold].item() == -3
    assert (got.gi_class[hot] > 0).all() and (got.gi_class[cold] < 0).all()
    far = (np.maximum(abs(rows - 6), abs(cols - 6)) > 3) & (
        np.maximum(abs(rows - 20), abs(cols - 21)) > 4)
    assert (got.gi_class[far] == 0).mean() > 0.95


def test_islands_are_flagged_and_not_tested(esda_z):
    grid = square_grid()
    lone = pd.DataFrame({"row": [40, 40], "col": [40, 60], "x": [0.0, 0.0], "y": [0.0, 0.0]})
    grid = pd.concat([pd.DataFrame(grid.drop(columns="geometry")), lone], ignore_index=True)
    y = counts(len(grid), rng=10)
    y[-2:] = 50  # extreme values: islands would be "hot" if they were tested
    w = grid_neighbours(grid, cell_shape="square")
    got = gistar(y, w)
    isl = got.island.to_numpy()
    assert isl.tolist()[-2:] == [True, True] and isl.sum() == 2
    assert (got.loc[isl, "gistar_z"] == 0).all() and (got.loc[isl, "p_value"] == 1).all()
    assert (got.loc[isl, "p_adjusted"] == 1).all() and (got.loc[isl, "gi_class"] == 0).all()
    assert (got.loc[isl, "n_neighbours"] == 0).all()
    # the rest: esda's z (mean and SD over all cells, islands included); FDR over the rest
    np.testing.assert_allclose(got.gistar_z[~isl], esda_z(y, w)[~isl], rtol=0, atol=1e-9)
    np.testing.assert_allclose(got.p_adjusted[~isl], benjamini_hochberg(got.p_value[~isl]))


def test_series_index_is_kept_and_inputs_not_mutated():
    grid = square_grid()
    values = pd.Series(counts(len(grid), rng=11), index=grid.cell_id.to_numpy() + 1000)
    before = values.copy()
    w = grid_neighbours(grid)
    w_before = w.copy()
    got = gistar(values, w)
    assert got.index.equals(values.index)
    pd.testing.assert_series_equal(values, before)
    assert same(w, w_before)


def test_bool_and_csr_array_weights_are_accepted():
    grid = square_grid()
    y = counts(len(grid), rng=12)
    w = grid_neighbours(grid)
    ref = gistar(y, w)
    pd.testing.assert_frame_equal(gistar(y, sp.csr_array(w).astype(bool)), ref)
    pd.testing.assert_frame_equal(gistar(y, w.tocoo()), ref)


# --- errors ----------------------------------------------------------------------------


def line_weights(n):
    return grid_neighbours(pd.DataFrame({"row": [0] * n, "col": range(n)}), contiguity="rook")


@pytest.mark.parametrize("values, message", [
    ([1.0, np.nan, 2.0, 3.0], "values must be finite and >= 0 .*1 are not, the first at "
                              "position 1 \\(nan\\)"),
    ([1.0, 2.0, np.inf, -1.0], "2 are not, the first at position 2 \\(inf\\)"),
    ([1.0, 2.0, 3.0, -0.5], "values must be finite and >= 0 .* position 3 \\(-0.5\\)"),
    ([[1.0, 2.0], [3.0, 4.0]], "values must be one-dimensional.*shape \\(2, 2\\)"),
    ([3.0, 3.0, 3.0, 3.0], "every cell has the same value \\(3.0\\), so no cell can stand out"),
])
def test_bad_values(values, message):
    with pytest.raises(ValueError, match=message):
        gistar(values, line_weights(4))


def test_too_few_cells():
    with pytest.raises(ValueError, match="at least 3 cells for Gi\\*; got 2"):
        gistar([1.0, 2.0], sp.identity(2, format="csr"))


def test_bad_weights():
    y = [1.0, 2.0, 0.0, 5.0]
    with pytest.raises(ValueError, match="weights must be 4 x 4 to match the 4 values; got 5 x 5"):
        gistar(y, line_weights(5))
    with pytest.raises(ValueError, match="weights must be a scipy.sparse matrix.*got ndarray"):
        gistar(y, line_weights(4).toarray())
    with pytest.raises(ValueError, match="weights must be binary .*got values \\[0.5\\]"):
        gistar(y, line_weights(4) * 0.5)
    no_self = line_weights(4) - sp.identity(4)
    with pytest.raises(ValueError, match="include each cell in its own neighbourhood .*4 cells "
                                         "lack it, the first at position 0"):
        gistar(y, no_self)
    with pytest.raises(ValueError, match="neighbourhood of 4 cells covers all 4 cells"):
        gistar(y, sp.csr_matrix(np.ones((4, 4))))
    with pytest.raises(ValueError, match=re.escape(
            "alpha_levels must be three different significance levels in (0, 1), such as "
            "(0.10, 0.05, 0.01); got (0.1, 0.05)")):
        gistar(y, line_weights(4), alpha_levels=(0.1, 0.05))


def test_bad_classes_and_bh_input():
    with pytest.raises(ValueError, match="alpha_levels must be three.*got \\(0.1, 0.05, 1.0\\)"):
        gi_classes([1.0], [0.5], alpha_levels=(0.1, 0.05, 1.0))
    with pytest.raises(ValueError, match="z and p must have the same shape; got \\(2,\\) and"):
        gi_classes([1.0, 2.0], [0.5])
    with pytest.raises(ValueError, match="p must hold p-values in \\[0, 1\\]; 2 do not, the "
                                         "first at position 1 \\(1.5\\)"):
        benjamini_hochberg([0.1, 1.5, np.nan])


def test_bad_neighbour_parameters():
    grid = square_grid()
    with pytest.raises(ValueError, match="contiguity must be one of 'queen', 'rook'; got 'bishop'"):
        grid_neighbours(grid, contiguity="bishop")
    with pytest.raises(ValueError, match="cell_shape must be one of 'square', 'hex', None; "
                                         "got 'triangle'"):
        grid_neighbours(grid, cell_shape="triangle")
    with pytest.raises(ValueError, match="grid has no column 'col'"):
        grid_neighbours(grid.drop(columns="col"))
    with pytest.raises(ValueError, match="grid column 'row' must hold whole lattice indices; "
                                         "1 rows do not, the first at position 0 \\(0.5\\)"):
        grid_neighbours(grid.assign(row=np.r_[0.5, grid.row.to_numpy()[1:]]))
    dup = pd.concat([grid, grid.iloc[[5]]], ignore_index=True)
    with pytest.raises(ValueError, match=f"1 cells whose \\(row, col\\) repeats an earlier one; "
                                         f"the first at position {len(grid)}"):
        grid_neighbours(dup)
    with pytest.raises(ValueError, match="no column 'x' to tell squares from hexes; pass "
                                         "cell_shape"):
        grid_neighbours(grid[["row", "col"]])
    diagonal = pd.DataFrame({"row": [0, 1, 2], "col": [0, 1, 2], "x": [0.0, 1, 2],
                             "y": [0.0, 1, 2]})
    with pytest.raises(ValueError, match="cells lie on one diagonal.*pass cell_shape"):
        grid_neighbours(diagonal)
    with pytest.raises(ValueError, match="contiguity must be one of 'queen', 'rook'; got 'Queen'"):
        polygon_neighbours(grid, contiguity="Queen")
    holed = grid.copy()
    holed.loc[3, "geometry"] = shapely.Polygon()
    with pytest.raises(ValueError, match="1 missing or empty geometries; the first at position 3"):
        polygon_neighbours(holed)


@pytest.mark.parametrize("distance", [0, -5.0, np.nan, np.inf])
def test_bad_distance_band(distance):
    with pytest.raises(ValueError, match="distance_m must be a finite distance in metres > 0; "
                                         "got "):
        distance_band_neighbours([0.0, 1.0], [0.0, 1.0], distance_m=distance)


def test_bad_points():
    with pytest.raises(ValueError, match="x and y must have the same length; got 3 and 2"):
        distance_band_neighbours([0.0, 1.0, 2.0], [0.0, 1.0], distance_m=10)
    with pytest.raises(ValueError, match="x and y must be finite EPSG:27700 metres; 1 points are "
                                         "not, the first at "
                                         "position 1 \\(nan, 1.0\\)"):
        distance_band_neighbours([0.0, np.nan], [0.0, 1.0], distance_m=10)
