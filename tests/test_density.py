import logging
import math

import geopandas as gpd
import numpy as np
import pytest
import shapely

from hotspots import density
from hotspots.density import Raster, kde, sample, suggest_bandwidth
from hotspots.errors import CRSError
from hotspots.grid import make_grid

SQUARE = shapely.box(0, 0, 1500, 1500)


def direct_sum(raster: Raster, x, y, w=None) -> np.ndarray:
    """sum_i w_i K(|c - p_i| / h) / h² at every cell centre, per km², the slow exact way."""
    cx, cy = raster.centres()
    h = raster.bandwidth_m
    w = np.ones(len(x)) if w is None else w
    u2 = ((cx[None, None, :] - x[:, None, None]) ** 2
          + (cy[None, :, None] - y[:, None, None]) ** 2) / h**2
    if raster.kernel == "quartic":
        k = np.where(u2 < 1, 3 / math.pi * (1 - np.minimum(u2, 1)) ** 2, 0.0)
    else:
        k = np.exp(-u2 / 2) / (2 * math.pi)
    return np.tensordot(w, k, axes=1) / h**2 * 1e6


def clustered(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Gaussian clusters (sd 20-100 m), a uniform background and two stacks of incidents at
    one address each (the hardest case for a binned estimate: the rim of a point mass)."""
    rng = np.random.default_rng(seed)
    cx, cy, sd = rng.uniform(350, 1150, 6), rng.uniform(350, 1150, 6), rng.uniform(20, 100, 6)
    k = rng.integers(0, 6, n)
    x = np.r_[rng.normal(cx[k], sd[k]), rng.uniform(250, 1250, n // 5), np.full(25, 777.7),
              np.full(4, 402.2)]
    y = np.r_[rng.normal(cy[k], sd[k]), rng.uniform(250, 1250, n // 5), np.full(25, 901.3),
              np.full(4, 1111.1)]
    return x, y


@pytest.mark.parametrize("kernel", ["quartic", "gaussian"])
@pytest.mark.parametrize("bandwidth_m", [50, 150, 400])
def test_matches_the_direct_sum_within_one_percent(kernel, bandwidth_m):
    x, y = clustered(600, seed=bandwidth_m)
    raster = kde(x, y, area=SQUARE, bandwidth_m=bandwidth_m, cell_size_m=25, kernel=kernel)
    exact = direct_sum(raster, x, y)
    above = exact > 0.01 * exact.max()
    assert above.sum() > 100
    err = np.abs(raster.values[above] / exact[above] - 1)
    assert err.max() < 0.01
    # cells below 1% of the maximum are not promised a relative error, but are close in absolute
    assert np.abs(raster.values - exact).max() < 0.001 * exact.max()


@pytest.mark.parametrize("kernel", ["quartic", "gaussian"])
def test_error_bound_keeps_the_contract_when_binning_alone_would_not(kernel, monkeypatch):
    # 4 fine steps per bandwidth: binning alone is off by several percent on the rims, so
    # the cells whose error bound is too wide must be recomputed exactly
    monkeypatch.setitem(density.STEPS_PER_BANDWIDTH, kernel, 4)
    x, y = clustered(600, seed=11)
    raster = kde(x, y, area=SQUARE, bandwidth_m=100, cell_size_m=25, kernel=kernel)
    assert raster.oversample == 1 and raster.exact_cells > 50
    exact = direct_sum(raster, x, y)
    above = exact > 0.01 * exact.max()
    assert np.abs(raster.values[above] / exact[above] - 1).max() < 0.01


@pytest.mark.parametrize("kernel", ["quartic", "gaussian"])
def test_rim_of_a_lone_stack_is_within_one_percent(kernel):
    # 12 reports at one address and nothing else: the cells at 1% of the maximum sit where
    # the quartic kernel falls to zero, the hardest place for a binned estimate
    x, y = np.full(12, 731.3), np.full(12, 802.9)
    raster = kde(x, y, area=SQUARE, bandwidth_m=150, cell_size_m=25, kernel=kernel)
    exact = direct_sum(raster, x, y)
    above = exact > 0.01 * exact.max()
    assert np.abs(raster.values[above] / exact[above] - 1).max() < 0.01
    assert raster.exact_cells > 0 or kernel == "gaussian"


def test_weights_match_the_direct_sum_and_scale_the_surface():
    x, y = clustered(400, seed=9)
    w = np.random.default_rng(1).choice([0.5, 1.0, 4.0], len(x))
    raster = kde(x, y, area=SQUARE, bandwidth_m=120, cell_size_m=25, weights=w)
    exact = direct_sum(raster, x, y, w)
    above = exact > 0.01 * exact.max()
    assert np.abs(raster.values[above] / exact[above] - 1).max() < 0.01
    plain = kde(x, y, area=SQUARE, bandwidth_m=120, cell_size_m=25)
    doubled = kde(x, y, area=SQUARE, bandwidth_m=120, cell_size_m=25, weights=np.full(len(x), 2.0))
    assert np.allclose(doubled.values, 2 * plain.values, rtol=1e-9, atol=0)
    assert doubled.n == plain.n == len(x)
    assert doubled.total == pytest.approx(2 * plain.total)
    # weight 3 on one point is three incidents there
    stacked = kde(np.r_[x, x[:1], x[:1]], np.r_[y, y[:1], y[:1]], area=SQUARE, bandwidth_m=120,
                  cell_size_m=25)
    heavy = kde(x, y, area=SQUARE, bandwidth_m=120, cell_size_m=25,
                weights=np.r_[3.0, np.ones(len(x) - 1)])
    assert np.allclose(heavy.values, stacked.values, rtol=1e-6, atol=1e-9)


@pytest.mark.parametrize(("kernel", "per_km2"), [
    ("quartic", 23.873241),   # 3 / (pi * 200²) per m² = 2.3873e-5, x 1e6
    ("gaussian", 3.978874),   # 1 / (2 pi * 200²) per m² = 3.9789e-6, x 1e6
])
def test_one_incident_peaks_at_the_kernel_height(kernel, per_km2):
    area = shapely.box(0, 0, 5000, 5000)
    raster = kde([2505.0], [2505.0], area=area, bandwidth_m=200, cell_size_m=10, kernel=kernel)
    assert raster.values.max() == pytest.approx(per_km2, rel=1e-4)
    assert sample(raster, [2505.0], [2505.0])[0] == raster.values.max()
    assert raster.total == pytest.approx(1, abs=1e-3)  # far from the edges: nothing lost
    assert raster.edge_loss == pytest.approx(0, abs=1e-3)


def test_edge_loss_is_the_mass_outside_the_area():
    rng = np.random.default_rng(2)
    area = shapely.box(0, 0, 3000, 3000)
    # far inside: total = n, no loss (discretisation under 0.1% at 6 cells per bandwidth)
    x, y = rng.normal(1500, 100, 2000), rng.normal(1500, 100, 2000)
    inner = kde(x, y, area=area, bandwidth_m=150, cell_size_m=25)
    assert inner.n == 2000
    assert abs(inner.edge_loss) < 0.001 * inner.n
    # on the west edge: about half of each kernel falls outside
    x = rng.uniform(0, 5, 2000)
    edge = kde(x, y, area=area, bandwidth_m=150, cell_size_m=25)
    assert 0.4 * 2000 < edge.edge_loss < 0.55 * 2000
    cell_km2 = (25 / 1000) ** 2
    assert edge.total == pytest.approx(edge.values[edge.mask].sum() * cell_km2)
    assert edge.total + edge.edge_loss == pytest.approx(2000)
    # the surface spills outside the area: values there, but not in mask or total
    assert (edge.values[~edge.mask] > 0).any()
    assert np.isnan(edge.masked()[~edge.mask]).all()


def test_points_outside_the_area_are_dropped():
    x, y = clustered(300, seed=4)
    outside_x, outside_y = np.array([-50.0, 1600.0, np.nan]), np.array([700.0, 700.0, 10.0])
    both = kde(np.r_[x, outside_x], np.r_[y, outside_y], area=SQUARE, bandwidth_m=100,
               cell_size_m=25)
    only = kde(x, y, area=SQUARE, bandwidth_m=100, cell_size_m=25)
    assert both.n == len(x)
    assert np.array_equal(both.values, only.values)
    none = kde(outside_x, outside_y, area=SQUARE, bandwidth_m=100, cell_size_m=25)
    assert none.n == 0 and none.total == 0 and not none.values.any()


def test_raster_layout_matches_the_square_grid(area):
    rng = np.random.default_rng(5)
    minx, miny, maxx, maxy = area.bounds
    x, y = rng.uniform(minx, maxx, 3000), rng.uniform(miny, maxy, 3000)
    raster = kde(x, y, area=area, bandwidth_m=300, cell_size_m=100)
    grid = make_grid(area, cell_size_m=100)
    # the raster's lower-left corner is a multiple of the cell size, on the grid's lattice
    col0, row0 = raster.x0 / 100, raster.y0 / 100
    assert col0 == int(col0) and row0 == int(row0)
    cx, cy = raster.centres()
    assert np.allclose(cx[grid["col"] - int(col0)], grid["x"])
    assert np.allclose(cy[grid["row"] - int(row0)], grid["y"])
    # row 0 is the southern row; the mask holds the cells whose centre is in the area
    assert cy[0] < cy[-1]
    gx, gy = np.meshgrid(cx, cy)
    assert np.array_equal(raster.mask, shapely.intersects_xy(area, gx, gy))
    assert raster.values.shape == raster.mask.shape
    with pytest.raises(ValueError, match="read-only"):
        raster.values[0, 0] = 1.0


def test_sample_takes_the_cell_holding_each_point():
    x, y = clustered(200, seed=6)
    raster = kde(x, y, area=SQUARE, bandwidth_m=100, cell_size_m=25)
    got = sample(raster, [12.5, 25.0, 37.4, -1.0, 1500.0], [12.5, 12.5, 37.4, 10.0, 10.0])
    v = raster.values
    assert got[:3].tolist() == [v[0, 0], v[0, 1], v[1, 1]]  # an edge goes east / north
    assert np.isnan(got[3])  # off the rectangle
    assert got[4] == v[0, 60]  # the rectangle reaches past the area's east edge


def test_defaults_are_chosen_logged_and_recorded(caplog):
    x, y = clustered(2000, seed=8)
    with caplog.at_level(logging.INFO):
        raster = kde(x, y, area=SQUARE)
    messages = [r.getMessage() for r in caplog.records]
    h = suggest_bandwidth(x, y)
    assert raster.bandwidth_m == h
    assert any(m.startswith(f"bandwidth set to {h:g} m") for m in messages)
    assert any(m.startswith(f"cell size set to {raster.cell_size_m:g} m") for m in messages)
    assert raster.cell_size_m <= h / 3
    assert raster.kernel == "quartic"


def test_suggest_bandwidth_rule_by_hand(caplog):
    # four corners of a 300 x 400 m rectangle: mean centre (150, 200), every distance 250 m,
    # standard distance sqrt(150² + 200²) = 250 m, median distance 250 m (x sqrt(1/ln 2) =
    # 300.3 m); h = 0.9 * 250 * 4^-0.2 = 170.5 m, rounded to 171 m
    with caplog.at_level(logging.INFO, logger="hotspots.density"):
        assert suggest_bandwidth([0, 300, 0, 300], [0, 0, 400, 400]) == 171
    assert caplog.records[-1].getMessage().startswith("bandwidth set to 171 m (rule: ArcGIS Pro")
    # an outlier inflates the standard distance (400.1 m) but not the median distance
    # (200.25 m, x sqrt(1/ln 2) = 240.5 m): h = 0.9 * 240.5 * 5^-0.2 = 156.9 m -> 157 m
    assert suggest_bandwidth([-10, 10, 0, 0, 1000], [0, 0, -10, 10, 0]) == 157
    with pytest.raises(ValueError, match=r"needs at least 2 distinct points, got 1 \(from 3 "
                                         r"point\(s\) with finite coordinates\); pass "
                                         r"bandwidth_m explicitly"):
        suggest_bandwidth([5, 5, 5], [1, 1, 1])


def test_parameter_errors_name_the_parameter():
    x, y = np.array([700.0, 800.0]), np.array([700.0, 750.0])
    with pytest.raises(ValueError, match=r"kernel must be one of 'quartic', 'gaussian'; "
                                         r"got 'epanechnikov'"):
        kde(x, y, area=SQUARE, bandwidth_m=100, kernel="epanechnikov")
    with pytest.raises(ValueError, match=r"bandwidth_m must be a positive number of metres, "
                                         r"got 0"):
        kde(x, y, area=SQUARE, bandwidth_m=0)
    with pytest.raises(ValueError, match=r"cell_size_m must be a positive number of metres, "
                                         r"got -5"):
        kde(x, y, area=SQUARE, bandwidth_m=100, cell_size_m=-5)
    with pytest.raises(ValueError, match=r"weights must be finite and non-negative; 1 are not, "
                                         r"the first at position 1 \(-1\.0\)"):
        kde(x, y, area=SQUARE, bandwidth_m=100, weights=[1.0, -1.0])
    with pytest.raises(ValueError, match=r"weights must have one value per point \(2\), got 3"):
        kde(x, y, area=SQUARE, bandwidth_m=100, weights=[1.0, 1.0, 1.0])
    with pytest.raises(ValueError, match=r"x and y must have the same length; got 2 and 1"):
        kde(x, y[:1], area=SQUARE, bandwidth_m=100)


def test_degrees_are_refused():
    with pytest.raises(CRSError, match=r"area is in EPSG:4326, not a projected CRS in metres"):
        kde([0.01], [51.5], area=shapely.box(-0.05, 51.45, 0.05, 51.55), bandwidth_m=100,
            crs="EPSG:4326")
    lonlat = gpd.GeoSeries([SQUARE], crs=27700).to_crs(4326)
    with pytest.raises(CRSError, match=r"Convert it with \.to_crs\(27700\) first"):
        kde([700.0], [700.0], area=lonlat, bandwidth_m=100)
