"""Evaluation: metrics against hand-computed grids, forecast methods, backtests on the
synthetic data and on the real police.uk months, and the WDQ on constructed cases."""

import numpy as np
import pandas as pd
import pyproj
import pytest
import shapely

from hotspots import evaluate as ev
from hotspots.geography import land_area
from hotspots.grid import make_grid
from hotspots.ingest import read_export, to_incidents
from hotspots.synthetic import make_synthetic

from .conftest import SHARED
from .test_detect import incidents_from

# ten cells of area 1 (A = 10), scored 9, 8, ..., 0
SCORES = np.arange(9, -1, -1, dtype=float)
TEST = np.array([3, 1, 0, 0, 2, 0, 0, 0, 0, 4])  # N = 10
TRAIN = np.array([5, 0, 0, 0, 0, 0, 0, 0, 0, 5])  # N = 10


# ------------------------------------------------------------------ metrics by hand


def test_hit_rate_and_pai_by_hand():
    # 10%: cell 0 alone, n = 3 of N = 10 in a / A = 1 / 10
    assert ev.hit_rate(SCORES, TEST, 1.0, coverage=0.10) == pytest.approx(0.3)
    assert ev.pai(SCORES, TEST, 1.0, coverage=0.10) == pytest.approx(0.3 / 0.1)
    # 20%: cells 0 and 1, n = 4
    assert ev.hit_rate(SCORES, TEST, np.ones(10), coverage=0.20) == pytest.approx(0.4)
    assert ev.pai(SCORES, TEST, np.ones(10), coverage=0.20) == pytest.approx(2.0)
    # 15% takes whole cells until the area reaches 15%: cells 0 and 1 again (a / A = 0.2)
    assert ev.pai(SCORES, TEST, 1.0, coverage=0.15) == pytest.approx(2.0)
    # 100%: PAI is 1 whatever the scores
    assert ev.pai(SCORES, TEST, 1.0, coverage=1.0) == pytest.approx(1.0)


def test_pai_uses_the_actual_area_of_unequal_cells():
    area = np.ones(10)
    area[0] = 2.0  # A = 11; 10% is 1.1: cell 0 (area 2) alone reaches it
    assert ev.select_cells(SCORES, area, coverage=0.10).tolist() == [True] + [False] * 9
    assert ev.pai(SCORES, TEST, area, coverage=0.10) == pytest.approx(0.3 / (2 / 11))


def test_pei_is_one_for_the_perfect_forecast_and_hand_computed_otherwise():
    for c in ev.COVERAGES + (0.2, 0.5):
        assert ev.pei(TEST, TEST, 1.0, coverage=c) == pytest.approx(1.0)
    # 10%: best is cell 9 (4 incidents): PAI* = 4; ours 3 -> 0.75
    assert ev.pei(SCORES, TEST, 1.0, coverage=0.10) == pytest.approx(0.75)
    # 20%: best cells 9 and 0 (7): PAI* = 3.5; ours 2
    assert ev.pei(SCORES, TEST, 1.0, coverage=0.20) == pytest.approx(2 / 3.5)
    # no test incident: undefined
    assert np.isnan(ev.pei(SCORES, np.zeros(10), 1.0, coverage=0.1))
    assert np.isnan(ev.pai(SCORES, np.zeros(10), 1.0, coverage=0.1))


def test_rri_and_evaluate_scores_table():
    assert ev.rri(4.0, 2.0) == 2.0
    assert ev.rri(0.0, 5.0) == 0.0
    table = ev.evaluate_scores(SCORES, TRAIN, TEST, 1.0, coverages=(0.1, 0.2))
    assert list(table.columns) == list(ev.SCORE_COLUMNS)
    first = table.iloc[0]
    assert first["cells"] == 1 and first["n_test"] == 3 and first["total_test"] == 10
    assert first["covered_share"] == pytest.approx(0.1)
    assert first["pai"] == pytest.approx(3.0) and first["pei"] == pytest.approx(0.75)
    # input period: cell 0 held 5 of 10 training incidents -> PAI 5; RRI = 3 / 5
    assert first["pai_input"] == pytest.approx(5.0) and first["rri"] == pytest.approx(0.6)
    assert table.iloc[1]["rri"] == pytest.approx(2.0 / 2.5)
    assert "PAI" in table.attrs["definitions"] and "Levine" in ev.metric_definitions()


def test_ties_are_broken_by_position_deterministically():
    scores = np.array([0, 1, 1, 1, 0, 0, 0, 0, 0, 0], dtype=float)
    sel = ev.select_cells(scores, 1.0, coverage=0.2)
    assert np.flatnonzero(sel).tolist() == [1, 2]
    flat = ev.select_cells(np.zeros(10), 1.0, coverage=0.3)
    assert np.flatnonzero(flat).tolist() == [0, 1, 2]
    # same input, same answer; inputs are not modified
    before = scores.copy()
    assert (ev.select_cells(scores, 1.0, coverage=0.2) == sel).all()
    assert (scores == before).all()


def test_metric_errors_name_the_parameter_and_the_value():
    with pytest.raises(ValueError, match=r"coverage must be a share of the study area in "
                                         r"\(0, 1\], e.g. 0.05 for 5%; got 5"):
        ev.pai(SCORES, TEST, 1.0, coverage=5)
    with pytest.raises(ValueError, match=r"test_counts must have one value per cell \(10\); "
                                         r"got 9"):
        ev.pai(SCORES, TEST[:9], 1.0, coverage=0.1)
    with pytest.raises(ValueError, match=r"test_counts must be incident counts >= 0; position 1 "
                                         r"is -1.0"):
        ev.hit_rate(SCORES, [0, -1, 0, 0, 0, 0, 0, 0, 0, 0], 1.0, coverage=0.1)
    with pytest.raises(ValueError, match=r"scores must be finite; 1 are not, the first at "
                                         r"position 2 \(nan\)"):
        ev.pai([1, 2, np.nan], [1, 1, 1], 1.0, coverage=0.5)
    with pytest.raises(ValueError, match=r"cell_area must be > 0 for every cell"):
        ev.pai(SCORES, TEST, 0.0, coverage=0.1)
    with pytest.raises(ValueError, match=r"pai_input must be a PAI > 0 .*got 0"):
        ev.rri(1.0, 0)
    with pytest.raises(ValueError, match=r"coverage=0.3 has no PAI in the table; it has "
                                         r"\[0.1, 0.2\]"):
        ev.best_method(ev.evaluate_scores(SCORES, TRAIN, TEST, 1.0, coverages=(0.1, 0.2))
                       .assign(method="m"), coverage=0.3)


# ------------------------------------------------------------------ forecast methods


def strip_grid():
    """Five 100 m cells in a row (x 0-500, y 0-100)."""
    return make_grid(shapely.box(0, 0, 500, 100), cell_size_m=100)


def frame(points):
    return pd.DataFrame(points, columns=["period", "x", "y"])


def test_naive_counts_and_no_peeking():
    grid = strip_grid()
    train = frame([("2024-03", 50, 50), ("2024-03", 150, 50), ("2024-02", 450, 50),
                   ("2024-04", 250, 50)])  # the forecast month itself: ignored
    naive = ev.forecast_scores(train, grid, method="naive", period="2024-04")
    assert naive.tolist() == [1, 1, 0, 0, 0]
    counts = ev.forecast_scores(train, grid, method="counts", period="2024-04")
    assert counts.tolist() == [1, 1, 0, 0, 1]
    last1 = ev.forecast_scores(train, grid, method="counts", period="2024-04", months=1)
    assert last1.tolist() == [1, 1, 0, 0, 0]


def test_prospective_weights_by_hand():
    grid = strip_grid()
    one = ev.forecast_scores(frame([("2024-03", 50, 50)]), grid, method="prospective",
                             period="2024-04")
    # last month (m = 0), d = 0..4 cells, all within 400 m: 1 / (1 + d)
    assert one == pytest.approx([1, 1 / 2, 1 / 3, 1 / 4, 1 / 5])
    two = ev.forecast_scores(frame([("2024-02", 50, 50), ("2024-01", 50, 50)]), grid,
                             method="prospective", period="2024-04")
    # m = 1 weighs 1/2; m = 2 is outside the default 2-month band
    assert two == pytest.approx(np.array([1, 1 / 2, 1 / 3, 1 / 4, 1 / 5]) / 2)
    near = ev.forecast_scores(frame([("2024-03", 50, 50)]), grid, method="prospective",
                              period="2024-04", distance_m=150)
    assert near == pytest.approx([1, 1 / 2, 0, 0, 0])


def test_kde_and_gistar_rank_the_dense_end_first():
    grid = make_grid(shapely.box(0, 0, 1000, 1000), cell_size_m=100)
    rng = np.random.default_rng(1)
    pts = [("2024-03", x, y) for x, y in rng.normal(250, 40, size=(60, 2))]
    pts += [("2024-03", x, y) for x, y in rng.uniform(0, 1000, size=(20, 2))]
    train = frame(pts)
    dense = (np.hypot(grid["x"] - 250, grid["y"] - 250) < 150).to_numpy()  # 3 x 3 cells
    for method in ("kde", "gistar", "counts"):
        s = ev.forecast_scores(train, grid, method=method, period="2024-04")
        assert dense[np.argsort(-s, kind="stable")[:4]].all(), method
    with pytest.raises(ValueError, match=r"method must be one of 'naive', 'counts', 'kde', "
                                         r"'gistar', 'places', 'prospective'; got 'sepp'"):
        ev.forecast_scores(train, grid, method="sepp", period="2024-04")
    with pytest.raises(ValueError, match=r"config is required for method='places'"):
        ev.forecast_scores(train, grid, method="places", period="2024-04")
    with pytest.raises(ValueError, match=r"period must be months 'YYYY-MM'; got '2024-4'"):
        ev.forecast_scores(train, grid, method="naive", period="2024-4")


# ------------------------------------------------------------------ backtests


@pytest.fixture(scope="module")
def synthetic_incidents(layers):
    data = make_synthetic(layers["lsoa"], n_incidents=20_000, rng=5, dirty_fraction=0.0)
    return incidents_from(data.incidents, layers)


def test_backtest_on_synthetic_data_beats_a_random_map(synthetic_incidents, layers, config):
    grid = make_grid(land_area(layers, config), cell_size_m=100)
    periods = ["2024-04", "2024-05", "2024-06"]
    before = synthetic_incidents.copy()
    table = ev.backtest(synthetic_incidents, grid, periods=periods, window=6, config=config)
    pd.testing.assert_frame_equal(synthetic_incidents, before)
    assert list(table.columns) == list(ev.BACKTEST_COLUMNS)
    assert set(table["method"]) == set(ev.DEFAULT_METHODS)
    assert len(table) == len(ev.DEFAULT_METHODS) * len(periods) * len(ev.COVERAGES)
    assert (table["covered_share"] >= table["coverage"] - 1e-12).all()

    # a uniform random score, on the same months
    rng = np.random.default_rng(0)
    area = grid["area_km2"].to_numpy()
    random_pai = []
    for p in periods:
        test = synthetic_incidents.loc[synthetic_incidents["period"] == p]
        counts = ev._bincount(ev._positions(grid, test["x"], test["y"]), len(grid))
        # 20 random maps a month: one random map's PAI swings when incidents concentrate
        random_pai.extend(ev.pai(rng.uniform(size=len(grid)), counts, area, coverage=0.05)
                          for _ in range(20))
    summary = ev.backtest_summary(table)
    at5 = summary.loc[summary["coverage"] == 0.05].set_index("method")
    assert np.mean(random_pai) < 1.5
    assert (at5["pai"] > 2 * np.mean(random_pai)).all(), at5["pai"]
    assert (at5["pei"] <= 1.0 + 1e-9).all()
    best = ev.best_method(table, coverage=0.05)
    assert at5.loc[best, "pai"] == at5["pai"].max()
    assert "PAI" in table.attrs["definitions"]


def test_backtest_errors(synthetic_incidents, layers, config):
    grid = make_grid(shapely.box(530000, 180000, 531000, 181000), cell_size_m=100)
    with pytest.raises(ValueError, match=r"window must be a whole number of months >= 1; got 0"):
        ev.backtest(synthetic_incidents, grid, periods=["2024-01"], window=0)
    with pytest.raises(ValueError, match=r"methods\['x'\] must name a method, one of 'naive'"):
        ev.backtest(synthetic_incidents, grid, periods=["2024-01"], methods={"x": {}})
    with pytest.raises(ValueError, match=r"periods must be a non-empty list of months"):
        ev.backtest(synthetic_incidents, grid, periods="2024-01")


# ------------------------------------------------------------------ real police.uk months


def city_incidents(config):
    """The 36 City of London Police months inside the City (its 6 LSOAs), as incidents.

    police.uk rows; points without coordinates or outside the City (some fall in Tower
    Hamlets) are left out. Categories follow the default configuration's police.uk types.
    """
    import geopandas as gpd

    lsoas = gpd.read_file(SHARED / "city_of_london_lsoa21.geojson").to_crs(27700)
    city = shapely.union_all(lsoas.geometry.values)
    rows = pd.concat([read_export(f) for f in
                      sorted((SHARED / "policeuk").glob("*-city-of-london-street.csv"))],
                     ignore_index=True)
    lon = pd.to_numeric(rows["Longitude"], errors="coerce").to_numpy()
    lat = pd.to_numeric(rows["Latitude"], errors="coerce").to_numpy()
    x, y = pyproj.Transformer.from_crs(4326, 27700, always_xy=True).transform(lon, lat)
    keep = np.isfinite(x) & np.isfinite(y)
    keep[keep] = shapely.intersects_xy(city, x[keep], y[keep])
    rows, x, y = rows.loc[keep].reset_index(drop=True), x[keep], y[keep]
    n = len(rows)
    inc = pd.DataFrame({
        "source": "policeuk", "ref": np.arange(n).astype(str),
        "category": rows["Crime type"].map(config.police_uk_types),
        "category_raw": rows["Crime type"], "period": rows["Month"],
        "date": rows["Month"] + "-01", "hour": -1, "x": x, "y": y, "location": rows["Location"],
        "location_key": [f"pt:{a:.0f}:{b:.0f}" for a, b in zip(x, y, strict=True)],
        "caller_key": "", "description": "", "quantity": 1, "ward_code": "",
        "lsoa_code": rows["LSOA code"], "source_lsoa": rows["LSOA code"], "file": "city",
        "row": np.arange(n) + 2,
    })
    return inc, city


def real_backtests(layers, config, area):
    """Backtest tables for Tower Hamlets burglary (12 months: test the last 9) and the
    City of London's ASB, drugs and all crime (36 months: test the last 24, window 12)."""
    files = sorted((SHARED / "policeuk").glob("*tower-hamlets_burglary-only.csv"))
    th = pd.concat([to_incidents(read_export(f), file=f.name, config=config, layers=layers,
                                 area=area).incidents for f in files], ignore_index=True)
    city, city_area = city_incidents(config)
    cases = [("Tower Hamlets", "burglary", th, land_area(layers, config), 3),
             ("City of London", "asb", city[city["category"] == "asb"], city_area, 12),
             ("City of London", "drugs", city[city["category"] == "drugs"], city_area, 12),
             ("City of London", "all", city, city_area, 12)]
    out = []
    for dataset, crime, inc, geom, skip in cases:
        grid = make_grid(geom, cell_size_m=100)
        months = sorted(inc["period"].unique())
        table = ev.backtest(inc, grid, periods=months[skip:], window=12, config=config)
        out.append(table.assign(dataset=dataset, crime=crime))
    return pd.concat(out, ignore_index=True), th, city


@pytest.mark.slow
def test_backtest_on_real_police_uk_months(layers, config, area):
    table, th, city = real_backtests(layers, config, area)
    assert th["period"].nunique() == 12 and len(th) > 2000
    assert city["period"].nunique() == 36 and (city["category"] == "asb").sum() > 1000
    at5 = (table.loc[table["coverage"] == 0.05]
           .groupby(["dataset", "crime", "method"])["pai"].mean().unstack("method"))
    assert len(at5) == 4
    for (dataset, crime), row in at5.iterrows():
        assert row.max() > 2, (dataset, crime, row)  # far better than chance
        assert row["naive"] > 1, (dataset, crime)
        # the winner is a long-window or short-window count or a narrow KDE, not Gi* or
        # the 400 m KDE (police.uk points are snapped to map points)
        assert row.idxmax() in ("counts_all", "counts_3m", "kde_100m"), (dataset, crime, row)


# ------------------------------------------------------------------ displacement


def test_wdq_displacement_by_hand():
    # target halves, buffer rises 40 -> 60, control flat
    r = ev.wdq(100, 50, 40, 60, 1000, 1000)
    assert r["success_measure"] == pytest.approx(50 / 1000 - 100 / 1000)  # -0.05
    assert r["buffer_measure"] == pytest.approx(60 / 1000 - 40 / 1000)  # 0.02
    assert r["wdq"] == pytest.approx(-0.4)
    assert r["total_net_effect"] == pytest.approx((100 - 50) + (40 - 60))  # 30 prevented
    assert r["interpretation"].startswith("displacement smaller than the direct effect")
    # control falls by a fifth: SM = 50/800 - 0.1 = -0.0375, BM = 60/800 - 0.04 = 0.035
    r = ev.wdq(100, 50, 40, 60, 1000, 800)
    assert r["wdq"] == pytest.approx(0.035 / -0.0375)
    assert r["total_net_effect"] == pytest.approx((100 * 0.8 - 50) + (40 * 0.8 - 60))
    # buffer rises more than the target falls: net harm
    r = ev.wdq(100, 50, 40, 100, 1000, 1000)
    assert r["wdq"] == pytest.approx(-1.2) and r["interpretation"].startswith(
        "displacement greater than the direct effect")


def test_wdq_diffusion_by_hand():
    r = ev.wdq(100, 50, 40, 20, 1000, 1000)
    assert r["buffer_measure"] == pytest.approx(-0.02)
    assert r["wdq"] == pytest.approx(0.4)
    assert r["total_net_effect"] == pytest.approx(50 + 20)
    assert r["interpretation"].startswith("diffusion of benefits:")
    r = ev.wdq(100, 90, 40, 20, 1000, 1000)  # buffer fell more than the target
    assert r["wdq"] == pytest.approx(-0.02 / -0.01) and "greater than" in r["interpretation"]
    r = ev.wdq(100, 120, 40, 20, 1000, 1000)  # target rose: no success, no reading
    assert r["interpretation"].startswith("no success")
    r = ev.wdq(100, 50, 40, 40, 1000, 1000)
    assert r["wdq"] == 0 and r["interpretation"].startswith("neither")
    with pytest.raises(ValueError, match=r"control_before must be an incident count > 0 \(the "
                                         r"control must have incidents\); got 0"):
        ev.wdq(10, 5, 4, 6, 0, 100)
    with pytest.raises(ValueError, match=r"buffer_after must be an incident count >= 0; got -1"):
        ev.wdq(10, 5, 4, -1, 10, 100)


def _points(rng, geom, n, date):
    minx, miny, maxx, maxy = geom.bounds
    xs, ys = [], []
    while len(xs) < n:
        x, y = rng.uniform(minx, maxx), rng.uniform(miny, maxy)
        if shapely.contains_xy(geom, x, y):
            xs.append(x)
            ys.append(y)
    return pd.DataFrame({"x": xs, "y": ys, "date": date})


def test_intervention_effect_on_constructed_displacement():
    rng = np.random.default_rng(2)
    target = shapely.box(0, 0, 200, 200)
    ring = shapely.difference(shapely.buffer(target, 250), target)
    control = shapely.box(2000, 0, 4000, 2000)
    parts = [
        _points(rng, target, 80, "2024-01-15"), _points(rng, target, 20, "2024-05-01"),
        _points(rng, ring, 30, "2024-02-01"), _points(rng, ring, 45, "2024-04-10"),
        _points(rng, control, 500, "2024-01-20"), _points(rng, control, 500, "2024-04-20"),
        _points(rng, control, 70, "2023-06-01"),  # before the before window: ignored
    ]
    inc = pd.concat(parts, ignore_index=True)
    r = ev.intervention_effect(inc, target=target, date="2024-03-01", control=control,
                               buffer_m=250, months=3)
    assert r["before"] == ("2023-12-01", "2024-02-29") and r["after"][0] == "2024-03-01"
    assert (r["target_before"], r["target_after"]) == (80, 20)
    assert (r["buffer_before"], r["buffer_after"]) == (30, 45)
    assert (r["control_before"], r["control_after"]) == (500, 500)
    assert r["change"] == pytest.approx(-0.75)
    assert r["p_value"] < 1e-6 and r["p_value_vs_control"] < 1e-6
    assert r["wdq"] == pytest.approx((45 / 500 - 30 / 500) / (20 / 500 - 80 / 500))
    assert r["wdq"] < 0 and "displacement" in r["interpretation"] and r["clear"]
    # the same counts with a smaller drop: the WDQ exists but is not read
    calm = pd.concat([_points(rng, target, 80, "2024-01-15"),
                      _points(rng, target, 74, "2024-05-01"), *parts[2:]], ignore_index=True)
    r3 = ev.intervention_effect(calm, target=target, date="2024-03-01", control=control,
                                buffer_m=250, months=3)
    assert r3["wdq"] < 0 and r3["p_value_vs_control"] > 0.05 and not r3["clear"]
    assert r3["interpretation"].startswith("no clear effect")
    # the control given as a whole area around everything: target and buffer are removed
    big = shapely.box(-3000, -3000, 5000, 5000)
    r2 = ev.intervention_effect(inc, target=target, date="2024-03-01", control=big,
                                buffer_m=250, months=3)
    assert r2["control_before"] == 500 and r2["target_before"] == 80
    with pytest.raises(ValueError, match=r"buffer_m must be a distance in metres > 0; got -5"):
        ev.intervention_effect(inc, target=target, date="2024-03-01", control=control,
                               buffer_m=-5)
    with pytest.raises(ValueError, match=r"date must be a day 'YYYY-MM-DD'; got 'soon'"):
        ev.intervention_effect(inc, target=target, date="soon", control=control)
