"""Evaluation: metrics against hand-computed grids (ties, clipped cells) and the WDQ on
constructed cases. The forecast search is tested in test_forecast.py."""

import numpy as np
import pandas as pd
import pytest
import shapely

from hotspots import evaluate as ev

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
    # 15% covers exactly 15%: cell 0 and half of cell 1, n = 3.5
    assert ev.pai(SCORES, TEST, 1.0, coverage=0.15) == pytest.approx(0.35 / 0.15)
    # 100%: PAI is 1 whatever the scores
    assert ev.pai(SCORES, TEST, 1.0, coverage=1.0) == pytest.approx(1.0)


def test_pai_uses_the_actual_area_of_unequal_cells():
    area = np.ones(10)
    area[0] = 2.0  # A = 11; 10% is 1.1 of cell 0's 2: n = 3 * 0.55
    assert ev.select_cells(SCORES, area, coverage=0.10).tolist() == [True] + [False] * 9
    assert ev.hit_rate(SCORES, TEST, area, coverage=0.10) == pytest.approx(0.165)
    assert ev.pai(SCORES, TEST, area, coverage=0.10) == pytest.approx(1.65)


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


def test_pei_never_exceeds_one_with_clipped_edge_cells():
    # the defect: a small clipped edge cell with one incident. Ranked by counts the "best"
    # map took the big cell with 2 incidents and a map choosing the dense edge cell scored
    # PEI > 1. The best map ranks by incidents per area, so PEI <= 1 for every map.
    area = np.array([0.1, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0])
    test = np.array([1, 2, 0, 0, 0, 0, 0, 0, 0, 0], dtype=float)
    rng = np.random.default_rng(0)
    for c in (0.01, 0.05, 0.1, 0.2, 0.5):
        assert ev.pei(test / area, test, area, coverage=c) == pytest.approx(1.0)
        for _ in range(50):
            assert ev.pei(rng.uniform(size=10), test, area, coverage=c) <= 1 + 1e-12
    # the dense edge cell first is the best map at 1% (A = 9.1, 1% = 0.091 of its 0.1)
    assert ev.pei([9, 1, 0, 0, 0, 0, 0, 0, 0, 0], test, area, coverage=0.01) == pytest.approx(1)


def test_tied_cells_count_fractionally_so_cell_order_cannot_help():
    # the defect: ties broken by cell_id, so a naive map scored better or worse by where
    # its tied cells happened to sit. Four cells tie for the last place at 20%: each counts
    # for a quarter, whatever the order: n = 3 (cell 0) + (1 + 0 + 0 + 2) / 4
    scores = np.array([5, 1, 1, 1, 1, 0, 0, 0, 0, 0], dtype=float)
    test = np.array([3, 1, 0, 0, 2, 0, 0, 0, 0, 4], dtype=float)
    expected = (3 + 3 / 4) / 10
    for perm in (np.arange(10), np.array([0, 4, 3, 2, 1, 5, 6, 7, 8, 9])):
        assert ev.hit_rate(scores[perm], test[perm], 1.0, coverage=0.2) == pytest.approx(expected)
    # and it is the mean over random tie orders of the whole-cell map
    rng = np.random.default_rng(1)
    sims = []
    for _ in range(4000):
        p = rng.permutation(10)
        sel = ev.select_cells(scores[p], 1.0, coverage=0.2)
        sims.append(test[p][sel].sum() / 10)
    assert np.mean(sims) == pytest.approx(expected, abs=0.01)


def test_no_metric_depends_on_the_order_of_tied_cells():
    # hit rate, PAI, PEI and RRI alike, with unequal (clipped) cells: the coverage ends
    # inside a group of tied cells, which are shuffled with their counts and areas
    scores = np.array([5, 1, 1, 1, 1, 0, 0, 0, 0, 0], dtype=float)
    area = np.array([1, 1, 0.5, 1, 0.25, 1, 1, 1, 1, 1])
    base = ev.evaluate_scores(scores, TRAIN, TEST, area, coverages=(0.2, 0.3))
    rng = np.random.default_rng(4)
    for _ in range(20):
        p = rng.permutation(10)
        pd.testing.assert_frame_equal(
            ev.evaluate_scores(scores[p], TRAIN[p], TEST[p], area[p], coverages=(0.2, 0.3)),
            base)
    # by hand, A = 8.75: 20% = 1.75 = cell 0 and 0.75 of the tied group's 2.75
    share = 0.75 / 2.75
    first = base.iloc[0]
    assert first["n_test"] == pytest.approx(3 + share * 3)
    assert first["pai_input"] == pytest.approx(5 / 10 / 0.2)
    assert first["rri"] == pytest.approx(first["pai"] / first["pai_input"])
    assert (base["pei"] <= 1).all()


def test_whole_cells_for_a_map_are_deterministic():
    scores = np.array([0, 1, 1, 1, 0, 0, 0, 0, 0, 0], dtype=float)
    sel = ev.select_cells(scores, 1.0, coverage=0.2)
    assert np.flatnonzero(sel).tolist() == [1, 2]
    before = scores.copy()
    assert (ev.select_cells(scores, 1.0, coverage=0.2) == sel).all()
    assert (scores == before).all()


def test_rri_and_evaluate_scores_table():
    assert ev.rri(4.0, 2.0) == 2.0
    assert ev.rri(0.0, 5.0) == 0.0
    table = ev.evaluate_scores(SCORES, TRAIN, TEST, 1.0, coverages=(0.1, 0.2))
    assert list(table.columns) == list(ev.SCORE_COLUMNS)
    first = table.iloc[0]
    assert first["n_test"] == 3 and first["total_test"] == 10
    assert first["covered_share"] == pytest.approx(0.1)
    assert first["pai"] == pytest.approx(3.0) and first["pei"] == pytest.approx(0.75)
    # input period: cell 0 held 5 of 10 training incidents -> PAI 5; RRI = 3 / 5
    assert first["pai_input"] == pytest.approx(5.0) and first["rri"] == pytest.approx(0.6)
    assert table.iloc[1]["rri"] == pytest.approx(2.0 / 2.5)
    assert not table.attrs  # definitions are metric_definitions(), not carried in attrs
    assert "PAI" in ev.metric_definitions() and "Levine" in ev.metric_definitions()


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


def _captured_by_full_sort(scores, counts, area, coverages):
    """The capture curve with every cell sorted (the definition)."""
    order = np.argsort(-scores, kind="stable")
    s = scores[order]
    ends = np.flatnonzero(np.r_[s[1:] != s[:-1], True])
    cum_a = np.r_[0.0, np.cumsum(area[order])[ends]]
    cum_n = np.r_[0.0, np.cumsum(counts[order])[ends]]
    return np.interp(coverages * area.sum(), cum_a, cum_n)


@pytest.mark.parametrize("seed", range(40))
def test_captured_sorts_only_the_top_cells_and_gives_the_whole_curve(seed):
    # captured sorts the cells that cover the largest coverage asked for, whole tie groups
    # included: the same curve as sorting them all (ties, zeros, clipped edge cells)
    rng = np.random.default_rng(seed)
    n = int(rng.integers(1, 3000))
    kind = seed % 4
    scores = (rng.integers(0, 3, n) if kind == 0 else rng.poisson(0.3, n) if kind == 1
              else rng.normal(size=n) if kind == 2 else np.zeros(n)).astype(float)
    counts = rng.poisson(0.5, n).astype(float)
    area = np.where(rng.random(n) < 0.1, rng.uniform(1e-6, 1, n), 1.0)
    covs = np.sort(rng.choice([0.0, 0.001, 0.01, 0.02, 0.05, 0.1, 0.5, 1.0],
                              size=int(rng.integers(1, 5)), replace=False))
    got = ev.captured(scores, counts, area, covs)
    np.testing.assert_allclose(got, _captured_by_full_sort(scores, counts, area, covs),
                               rtol=1e-12, atol=1e-9)
