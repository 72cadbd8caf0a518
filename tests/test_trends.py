"""Trends: the exact Poisson test against hand computations, period comparisons, the
season-adjusted trend label (each place against the rest of the borough), the
Mann-Kendall test, every emerging hot spot class on constructed series and end to end,
hour x weekday profiles and patrol windows; the planted step changes of the synthetic data.
"""

import datetime as dt
import math

import numpy as np
import pandas as pd
import pytest
from scipy.stats import binom, binomtest, kendalltau

from hotspots.gistar import benjamini_hochberg, gistar, grid_neighbours
from hotspots.summary import Period, month_period
from hotspots.synthetic import make_synthetic
from hotspots.trends import (
    EMERGING_COLUMNS,
    NO_TIMES_NOTE,
    PATTERNS,
    REFERENCES,
    TREND_COLUMNS,
    classify_series,
    emerging_hotspots,
    left_out,
    mann_kendall,
    patrol_windows,
    period_trends,
    poisson_change_test,
    relative_change_test,
    time_profile,
)

from .test_repeats import incidents, synthetic_incidents

# --- poisson_change_test -----------------------------------------------------------------


def test_poisson_change_test_against_hand_computation():
    # 4 against 2, equal periods: Binomial(6, 0.5). Every outcome but 3 is no likelier
    # than 4 (P(2) = P(4) = 15/64), so p = 1 - P(3) = 1 - 20/64 = 0.6875
    assert poisson_change_test(4, 2) == 0.6875
    assert poisson_change_test(2, 4) == 0.6875
    assert poisson_change_test(40, 10) < 0.001
    # unequal exposures: 10 in 31 days against 2 in 28 days, by summing the pmf
    k, n, share = 10, 12, 31 / 59
    pmf = binom.pmf(np.arange(n + 1), n, share)
    expected = pmf[pmf <= pmf[k] * (1 + 1e-7)].sum()
    got = poisson_change_test(10, 2, exposure=31, previous_exposure=28)
    assert got == pytest.approx(expected, rel=1e-9)
    assert poisson_change_test(0, 0) == 1.0
    # the same rate over twice the time is no change at all
    assert poisson_change_test(20, 10, exposure=2) == 1.0


@pytest.mark.parametrize("kwargs, message", [
    ({"count": -1, "previous": 2}, "count must be a whole number of incidents >= 0; got -1"),
    ({"count": 1, "previous": 2.5}, "previous must be a whole number of incidents >= 0"),
    ({"count": 1, "previous": 2, "exposure": 0},
     r"exposure must be a finite length > 0 \(e.g. days\); got 0"),
])
def test_poisson_change_test_rejects_bad_values(kwargs, message):
    with pytest.raises(ValueError, match=message):
        poisson_change_test(**kwargs)


# --- period_trends -----------------------------------------------------------------------

def test_period_trends_compares_previous_period_and_year_before():
    rows = (
        [{"unit": "A", "date": "2024-08-10"}] * 40 + [{"unit": "A", "date": "2024-07-10"}] * 10
        + [{"unit": "A", "date": "2023-08-10"}] * 38
        + [{"unit": "B", "date": "2024-08-02"}] * 4 + [{"unit": "B", "date": "2024-07-02"}] * 2
        + [{"unit": "C", "date": "2024-07-05"}] * 30 + [{"unit": "C", "date": "2023-08-20"}] * 5
        # police.uk rows are dated the 1st and count when their whole month is inside
        + [{"unit": "D", "date": "2024-08-01", "source": "policeuk"}] * 3
        + [{"unit": "", "date": "2024-08-10"}] * 7  # no unit: left out
    )
    inc = incidents(rows)
    before = inc.copy()
    out = period_trends(inc, period=month_period("2024-08"))
    pd.testing.assert_frame_equal(inc, before)
    assert list(out.columns) == list(TREND_COLUMNS) and out.index.name == "unit"
    assert out.index.tolist() == ["A", "B", "C", "D"]
    assert out[["n", "n_previous", "n_last_year"]].values.tolist() == [
        [40, 10, 38], [4, 2, 0], [0, 30, 5], [3, 0, 0]]
    # D's police.uk stream has records in August only: no comparison counts it
    assert out["change_previous"].tolist() == [30, 2, -30, 0]
    assert out["change_year"].tolist() == [2, 4, -5, 0]
    assert left_out(inc, month_period("2024-08")) == {
        "previous": [("policeuk", "asb_nuisance")], "year": [("policeuk", "asb_nuisance")]}
    # July and August both have 31 days: the equal-exposure test
    assert out.loc["B", "p_previous"] == 0.6875
    assert out.loc["A", "p_previous"] == pytest.approx(poisson_change_test(40, 10))
    assert out.loc["A", "p_year"] == pytest.approx(poisson_change_test(40, 38))
    assert out["trend"].tolist() == ["rising", "no clear change", "falling", "no clear change"]
    # a fortnight: half the police.uk month is outside, so those rows do not count
    two_weeks = period_trends(inc, period=Period(dt.date(2024, 8, 1), dt.date(2024, 8, 14)))
    assert "D" not in two_weeks.index and two_weeks.loc["A", "n"] == 40


def test_a_stream_that_starts_between_the_periods_is_no_rise():
    """police.uk burglary loaded from August only: the places it lands in are not rising
    and their year-ago counts are not compared with it; council ASB, recorded in every
    month, is compared as before."""
    council = ([{"unit": u, "date": d} for u in "ABCDEFGH"
                for d in ["2024-08-05"] * 10 + ["2024-07-05"] * 10 + ["2023-08-05"] * 10])
    burglary = [{"unit": "A", "date": "2024-08-01", "source": "policeuk",
                 "category": "burglary"}] * 40
    aug = month_period("2024-08")
    out = period_trends(incidents(council + burglary), period=aug)
    assert out.loc["A", "n"] == 50 and out.loc["A", "n_previous"] == 10
    assert out.loc["A", "change_previous"] == 0 and out.loc["A", "change_year"] == 0
    assert out.loc["A", "p_previous"] == 1.0 and out.loc["A", "trend"] == "no clear change"
    assert left_out(incidents(council + burglary), aug)["previous"] == [("policeuk", "burglary")]
    # had burglary been recorded in July too (a few), A's rise would be real
    july = [{"unit": "A", "date": "2024-07-01", "source": "policeuk",
             "category": "burglary"}] * 2
    out = period_trends(incidents(council + burglary + july), period=month_period("2024-08"))
    assert out.loc["A", "trend"] == "rising"
    assert left_out(incidents(council + burglary + july), aug) == {
        "previous": [], "year": [("policeuk", "burglary")]}
    assert out.loc["A", "n_last_year"] == 10 and out.loc["A", "change_year"] == 0


def test_period_trends_uses_period_lengths_as_exposure():
    # March (31 days) against February 2024 (29 days): 31 vs 29 is the same daily rate
    rows = ([{"date": "2024-03-05"}] * 31 + [{"date": "2024-02-05"}] * 29)
    out = period_trends(incidents(rows), period=month_period("2024-03"))
    assert out.loc["A", "p_previous"] == pytest.approx(1.0)
    assert out.loc["A", "trend"] == "no clear change"


def test_period_trends_rejects_bad_parameters():
    inc = incidents([{}])
    with pytest.raises(ValueError, match=r"alpha must be a significance level in \(0, 1\), "
                                         "such as 0.05; got 1.5"):
        period_trends(inc, period=month_period("2024-08"), alpha=1.5)
    with pytest.raises(ValueError, match="period must be a hotspots.summary.Period"):
        period_trends(inc, period="2024-08")
    with pytest.raises(ValueError, match="incidents has no column 'place'"):
        period_trends(inc, period=month_period("2024-08"), unit="place")


# --- the season-adjusted trend: each place against the rest of the borough ---------------

def test_relative_change_test_against_binomtest():
    # the place 9 against 3; the rest of the borough 60 against 20, so r = 3 and under H0
    # 9 ~ Binomial(12, 3 / 4): the exact p-value and the expected count 12 x 3 / 4 = 9
    expected, p = relative_change_test(9, 3, 60, 20)
    assert expected == pytest.approx(9.0)
    assert p == pytest.approx(binomtest(9, 12, 0.75).pvalue, rel=1e-12)
    assert p == pytest.approx(1.0)  # exactly what the borough's change predicts
    # by hand: Binomial(4, 1/2) with r = 1 (the rest flat); 4 against 0 gives
    # P(0) + P(4) = 2 / 16, the same as the plain test of equal periods
    assert relative_change_test(4, 0, 50, 50) == (2.0, 0.125)
    assert relative_change_test(4, 0, 50, 50)[1] == poisson_change_test(4, 0)
    # a small case where the borough matters: 7 against 1 with the rest 10 against 30
    # (r = 1/3, share 1/4): far more than the borough's fall would leave
    expected, p = relative_change_test(7, 1, 10, 30)
    assert expected == pytest.approx(2.0)
    k, n, share = 7, 8, 0.25
    pmf = binom.pmf(np.arange(n + 1), n, share)
    assert p == pytest.approx(pmf[pmf <= pmf[k] * (1 + 1e-7)].sum(), rel=1e-9)
    assert p == pytest.approx(binomtest(7, 8, 0.25).pvalue, rel=1e-12)
    assert p < 0.001 < poisson_change_test(7, 1) < 0.1
    # exposures are already in the reference counts: they do not change the test
    assert relative_change_test(7, 1, 10, 30, exposure=31, previous_exposure=28) == (
        expected, p)
    assert relative_change_test(0, 0, 10, 30) == (0.0, 1.0)


def test_the_binomial_without_scipy_stats_is_scipys_value_for_value():
    """trends' binomial (scipy.stats' kernels, not the module: a second of import) gives
    scipy.stats.binom's pmf, cdf and sf to the bit, at and beyond the support's edges and
    for arguments that are not a binomial's."""
    from hotspots import trends

    ns = np.array([0, 1, 2, 7, 30, 1000, 2.5, -1])
    ps = np.array([0.0, 1e-12, 0.1, 0.25, 0.5, 0.75, 0.999, 1.0, -0.1, 1.5, np.nan])
    ks = np.array([-np.inf, -2, -1, -0.5, 0, 0.5, 1, 2, 3, 6.5, 7, 8, 29, 30, 31, 500,
                   999, 1000, 1001, np.inf, np.nan])
    k, n, p = (a.ravel() for a in np.meshgrid(ks, ns, ps))
    for name in ("pmf", "cdf", "sf"):
        np.testing.assert_array_equal(getattr(trends.binom, name)(k, n, p),
                                      getattr(binom, name)(k, n, p), err_msg=name)
    ints = np.arange(0, 31)  # the integer arrays the p-values pass
    np.testing.assert_array_equal(trends.binom.cdf(ints, 30, 0.3), binom.cdf(ints, 30, 0.3))


def test_period_trends_p_values_are_binomtests_of_each_unit():
    """The p-values of every unit, computed for all units at once, are scipy's binomtest
    of that unit's counts, to the last bit (the equal-split case, the borough's share,
    counts on either side of the expected one, zero counts and a unit the size of the
    rest)."""
    rng = np.random.default_rng(7)
    now = np.r_[rng.poisson(rng.choice([0.5, 4, 30, 300], 300)), 0, 5, 900]
    before = np.r_[rng.poisson(rng.choice([0.5, 4, 30, 300], 300)), 0, 0, 1000]
    previous = np.r_[rng.poisson(rng.choice([0.5, 4, 30], 300)), 3, 0, 0]
    units = [f"U{i:03d}" for i in range(len(now))]
    dates = {"now": "2024-05-04", "before": "2024-04-04", "previous": "2023-05-04"}
    inc = pd.DataFrame({
        "unit": np.repeat(units * 3, np.r_[now, before, previous]),
        "date": np.repeat([dates["now"], dates["before"], dates["previous"]],
                          [now.sum(), before.sum(), previous.sum()]),
        "source": "asb", "category": "asb_nuisance"})
    out = period_trends(inc, period=month_period("2024-05"), fdr=False)
    out = out.reindex(units)
    rest_now, rest_before = now.sum() - now, before.sum() - before
    for i, u in enumerate(units):
        a, b, c = int(now[i]), int(before[i]), int(previous[i])
        if a + b + c == 0:
            continue
        row = out.loc[u]
        want_previous = 1.0 if a + b == 0 else binomtest(a, a + b, 31 / 61).pvalue
        want_year = 1.0 if a + c == 0 else binomtest(a, a + c, 31 / 62).pvalue
        assert row["p_previous"] == want_previous and row["p_year"] == want_year, u
        share = rest_now[i] / (rest_now[i] + rest_before[i])
        want = 1.0 if a + b == 0 else binomtest(a, a + b, share).pvalue
        assert row["p_borough"] == want and row["expected"] == (a + b) * share, u
        assert (row["expected"], row["p_borough"]) == relative_change_test(
            a, b, int(rest_now[i]), int(rest_before[i])), u


def test_relative_change_test_falls_back_when_the_rest_had_nothing():
    # no reference in one period: judged on the period lengths alone, as the plain test
    for ref, ref_prev in ((0, 12), (12, 0), (0, 0)):
        expected, p = relative_change_test(10, 2, ref, ref_prev, exposure=31,
                                           previous_exposure=28)
        assert expected == pytest.approx(12 * 31 / 59)
        assert p == poisson_change_test(10, 2, exposure=31, previous_exposure=28)


@pytest.mark.parametrize("kwargs, message", [
    ({"reference": -1}, "reference must be a whole number of incidents >= 0; got -1"),
    ({"reference_previous": 2.5}, "reference_previous must be a whole number"),
    ({"count": True}, "count must be a whole number of incidents >= 0; got True"),
    ({"exposure": np.inf}, r"exposure must be a finite length > 0 \(e.g. days\); got inf"),
])
def test_relative_change_test_rejects_bad_values(kwargs, message):
    args = {"count": 3, "previous": 2, "reference": 10, "reference_previous": 10, **kwargs}
    with pytest.raises(ValueError, match=message):
        relative_change_test(**args)


def borough(place_now, place_before, rest_now, rest_before, *, months=("2024-08", "2024-07")):
    """Unit A with its counts; the rest of the borough as units B and C and rows in no
    unit (which count for the borough but get no row)."""
    rows = []
    for month, a, rest in ((months[0], place_now, rest_now), (months[1], place_before,
                                                              rest_before)):
        rows += [{"unit": "A", "date": f"{month}-10"}] * a
        third = rest // 3
        rows += ([{"unit": "B", "date": f"{month}-11"}] * third
                 + [{"unit": "C", "date": f"{month}-12"}] * third
                 + [{"unit": "", "date": f"{month}-13"}] * (rest - 2 * third))
    return incidents(rows)


def test_a_place_that_doubles_with_the_borough_is_not_rising():
    # A: 30 -> 60, the plain test calls it a rise (p about 0.002) ...
    doubling = period_trends(borough(60, 30, 600, 300), period=month_period("2024-08"))
    a = doubling.loc["A"]
    assert a["p_previous"] < 0.01
    # ... but the rest of the borough doubled too (300 -> 600): exactly as expected
    assert a["expected"] == pytest.approx(90 * 600 / 900)
    assert a["p_borough"] == pytest.approx(1.0) and a["trend"] == "no clear change"
    assert a["reference"] == REFERENCES[0] == "rest of borough"
    assert doubling.index.tolist() == ["A", "B", "C"]  # rows with no unit get no row
    # the same place while the rest of the borough stays flat (300 -> 300): rising
    flat = period_trends(borough(60, 30, 300, 300), period=month_period("2024-08"))
    a = flat.loc["A"]
    assert a["expected"] == pytest.approx(45.0)
    assert a["p_borough"] == pytest.approx(binomtest(60, 90, 0.5).pvalue)
    assert a["p_adjusted"] <= 0.05 and a["trend"] == "rising"
    # the plain comparisons are kept as they were
    assert a["p_previous"] == pytest.approx(poisson_change_test(60, 30))
    assert (flat["n_previous"].tolist(), flat["change_previous"].tolist()) == (
        [30, 100, 100], [30, 0, 0])


def test_a_place_that_holds_steady_while_the_borough_falls():
    # the borough halves (winter): A holding steady is more than the rest's change would
    # leave, but its count did not rise, so it is not called rising; the same, mirrored
    out = period_trends(borough(60, 60, 300, 600), period=month_period("2024-08"))
    assert out.loc["A", "expected"] == pytest.approx(40.0)
    assert out.loc["A", "p_adjusted"] < 0.01 and out.loc["A", "trend"] == "no clear change"
    out = period_trends(borough(60, 60, 600, 300), period=month_period("2024-08"))
    assert out.loc["A", "p_adjusted"] < 0.01 and out.loc["A", "trend"] == "no clear change"
    # falling against a flat borough: falling
    out = period_trends(borough(20, 60, 300, 300), period=month_period("2024-08"))
    assert out.loc["A", "trend"] == "falling"


def test_period_trends_falls_back_when_the_rest_of_the_borough_had_nothing():
    # only unit A has incidents: no borough to compare with, so the period lengths alone
    # (March has 31 days, February 2024 29)
    rows = [{"date": "2024-03-05"}] * 40 + [{"date": "2024-02-05"}] * 10
    out = period_trends(incidents(rows), period=month_period("2024-03"))
    a = out.loc["A"]
    assert a["reference"] == REFERENCES[1] == "period lengths only"
    assert a["expected"] == pytest.approx(50 * 31 / 60)
    assert a["p_borough"] == a["p_previous"] == poisson_change_test(
        40, 10, exposure=31, previous_exposure=29)
    assert a["trend"] == "rising"
    # for A the rest (B) had incidents this month but none the month before: the same
    # fallback; for B the rest (A) had both, so B is judged against A's change
    rows += [{"unit": "B", "date": "2024-03-06"}] * 5
    out = period_trends(incidents(rows), period=month_period("2024-03"))
    assert out["reference"].tolist() == ["period lengths only", "rest of borough"]
    assert out.loc["A", "p_borough"] == out.loc["A", "p_previous"]
    assert out.loc["B", "expected"] == pytest.approx(5 * 40 / 50)
    assert out.loc["B", "p_borough"] == pytest.approx(binomtest(5, 5, 0.8).pvalue)


def test_period_trends_adjusts_for_the_many_places_tested():
    rng = np.random.default_rng(5)
    rows = [{"unit": "Z", "date": "2023-08-05"}]  # only a year before: not tested
    for i in range(12):
        for month, mean in (("2024-08", 20 + 4 * i), ("2024-07", 20)):
            rows += [{"unit": f"U{i:02d}", "date": f"{month}-09"}] * int(rng.poisson(mean))
    inc = incidents(rows)
    out = period_trends(inc, period=month_period("2024-08"))
    raw = period_trends(inc, period=month_period("2024-08"), fdr=False)
    tested = out.index != "Z"
    np.testing.assert_allclose(out.loc[tested, "p_adjusted"],
                               benjamini_hochberg(out.loc[tested, "p_borough"]))
    assert out.loc["Z", "p_adjusted"] == 1.0 and out.loc["Z", "trend"] == "no clear change"
    assert (raw["p_adjusted"] == raw["p_borough"]).all()
    assert (out["p_adjusted"] >= out["p_borough"]).all()
    # BH flags a subset of what the unadjusted test flags
    assert set(out.index[out["trend"] != "no clear change"]) <= set(
        raw.index[raw["trend"] != "no clear change"])
    with pytest.raises(ValueError, match="fdr must be True or False; got 'yes'"):
        period_trends(inc, period=month_period("2024-08"), fdr="yes")


# --- Mann-Kendall ------------------------------------------------------------------------

def test_mann_kendall_against_hand_computation():
    # 1..5: S = 10, Var = 5*4*15/18, z = (10 - 1) / sqrt(Var)
    s, z, p = mann_kendall([1, 2, 3, 4, 5])
    assert s == 10
    assert z == pytest.approx(9 / math.sqrt(300 / 18))
    assert p == pytest.approx(math.erfc(z / math.sqrt(2)))
    assert p == pytest.approx(0.027486, abs=1e-6)
    # ties: [1, 1, 2, 3]: S = 5, Var = (4*3*13 - 2*1*9) / 18 = 138 / 18
    s, z, p = mann_kendall([1, 1, 2, 3])
    assert s == 5 and z == pytest.approx(4 / math.sqrt(138 / 18))
    assert p == pytest.approx(0.148562, abs=1e-6)
    # decreasing: symmetric
    s, z, p2 = mann_kendall([3, 2, 1, 1])
    assert s == -5 and z == pytest.approx(-4 / math.sqrt(138 / 18)) and p2 == p
    assert mann_kendall([2, 2, 2]) == (0, 0.0, 1.0)


def test_mann_kendall_s_agrees_with_kendalls_tau():
    x = np.random.default_rng(4).normal(size=25)
    s, _, _ = mann_kendall(x)
    tau = kendalltau(np.arange(25), x).statistic  # no ties: tau = S / (n (n - 1) / 2)
    assert s == round(tau * 25 * 24 / 2)


def test_mann_kendall_rejects_short_or_missing_series():
    with pytest.raises(ValueError, match="at least 3 values; got shape \\(2,\\)"):
        mann_kendall([1, 2])
    with pytest.raises(ValueError, match=r"series must be finite; 1 values are not, the first "
                                         r"at position 1 \(nan\)"):
        mann_kendall([1, np.nan, 3])


# --- emerging hot spot classes on constructed series -------------------------------------

H, C = "h", "c"  # "." = neither


def flags(pattern: str):
    return (np.array([ch == H for ch in pattern]), np.array([ch == C for ch in pattern]))


UP, DOWN, FLAT = (3.0, 0.001), (-3.0, 0.001), (0.5, 0.6)

SERIES = [  # (hot/cold per period, oldest first; Mann-Kendall z, p; expected)
    (".........h", FLAT, "new hot spot"),
    (".......hhh", FLAT, "consecutive hot spot"),
    ("..hhhhhhhh", UP, "consecutive hot spot"),  # 80% hot: not yet intensifying
    ("hhhhhhhhhh", UP, "intensifying hot spot"),
    (".hhhhhhhhh", UP, "intensifying hot spot"),  # 90% incl. final
    ("hhhhhhhhhh", FLAT, "persistent hot spot"),
    ("hhhhh.hhhh", DOWN, "diminishing hot spot"),
    ("..h..h.h.h", FLAT, "sporadic hot spot"),
    ("h.......hh", FLAT, "sporadic hot spot"),  # hot before the final run
    ("c.......hh", FLAT, "oscillating hot spot"),
    ("cc.......h", FLAT, "oscillating hot spot"),  # once cold: not new
    ("hhhhhhhhh.", FLAT, "historical hot spot"),
    ("hhhhhhhhh.", DOWN, "historical hot spot"),
    (".........c", FLAT, "new cold spot"),
    ("......cccc", FLAT, "consecutive cold spot"),
    ("cccccccccc", DOWN, "intensifying cold spot"),  # ever colder
    ("cccccccccc", FLAT, "persistent cold spot"),
    ("cccccccccc", UP, "diminishing cold spot"),
    ("c.c.c....c", FLAT, "sporadic cold spot"),
    ("hh.......c", FLAT, "oscillating cold spot"),
    ("ccccccccc.", FLAT, "historical cold spot"),
    ("..........", FLAT, "no pattern"),
    ("hhh.......", FLAT, "no pattern"),  # hot once, not now, under 90%
    ("hhhhhhhhhc", FLAT, "oscillating cold spot"),  # the final period decides the side
    ("...h.c....", UP, "no pattern"),
]


@pytest.mark.parametrize("pattern, trend, expected", SERIES)
def test_classify_series_on_constructed_series(pattern, trend, expected):
    hot, cold = flags(pattern)
    assert classify_series(hot, cold, *trend) == expected


def test_every_class_is_constructed_and_rows_classify_at_once():
    assert {e for _, _, e in SERIES} == set(PATTERNS)
    hot = np.array([flags(p)[0] for p, _, _ in SERIES])
    cold = np.array([flags(p)[1] for p, _, _ in SERIES])
    z = np.array([t[0] for _, t, _ in SERIES])
    p = np.array([t[1] for _, t, _ in SERIES])
    assert classify_series(hot, cold, z, p).tolist() == [e for _, _, e in SERIES]


def test_classify_series_uses_alpha_for_the_trend_and_90_percent_on_20_periods():
    hot, cold = flags("h" * 10)
    assert classify_series(hot, cold, 2.0, 0.08) == "intensifying hot spot"
    assert classify_series(hot, cold, 2.0, 0.08, alpha=0.05) == "persistent hot spot"
    hot, cold = flags("." * 2 + "h" * 18)  # exactly 90%
    assert classify_series(hot, cold, *FLAT) == "persistent hot spot"
    hot, cold = flags("." * 3 + "h" * 17)  # 85%
    assert classify_series(hot, cold, *FLAT) == "consecutive hot spot"


def test_classify_series_rejects_bad_input():
    with pytest.raises(ValueError, match="a period cannot be both a hot and a cold spot"):
        classify_series(np.ones(10, bool), np.ones(10, bool), 0.0, 1.0)
    with pytest.raises(ValueError, match=r"mk_p must hold one value per series \(3\); got 2"):
        classify_series(np.zeros((3, 10), bool), np.zeros((3, 10), bool), 0.0, [1.0, 1.0])
    with pytest.raises(ValueError, match="hot must be boolean"):
        classify_series(np.ones(10), np.zeros(10, bool), 0.0, 1.0)


# --- emerging hot spots end to end -------------------------------------------------------

T = 12
LEVELS = {  # the 3 x 3 block's count per period; the background is ~10 per cell
    "persistent hot spot": [40] * T,
    "intensifying hot spot": [20 + 4 * t for t in range(T)],
    "diminishing hot spot": [20 + 4 * (T - 1 - t) for t in range(T)],
    "new hot spot": [10] * (T - 1) + [40],
    "consecutive hot spot": [10] * (T - 3) + [40] * 3,
    "sporadic hot spot": [40 if t % 3 == 2 else 10 for t in range(T)],
    "oscillating hot spot": [0] * 3 + [10] * (T - 4) + [40],
    "historical hot spot": [40] * (T - 1) + [10],
    "persistent cold spot": [0] * T,
    "intensifying cold spot": [4 - 0.3 * t for t in range(T)],
    "diminishing cold spot": [0.3 * t for t in range(T)],
    "new cold spot": [10] * (T - 1) + [0],
    "consecutive cold spot": [10] * (T - 3) + [0] * 3,
    "sporadic cold spot": [0 if t % 3 == 2 else 10 for t in range(T)],
    "oscillating cold spot": [40] * 3 + [10] * (T - 4) + [0],
    "historical cold spot": [0] * (T - 1) + [10],
    "no pattern": [10] * T,
}


def cube(levels):
    """12 x 12 square grid, a static Poisson(10) background, the centre block at levels."""
    rows, cols = np.meshgrid(np.arange(12), np.arange(12), indexing="ij")
    grid = pd.DataFrame({"row": rows.ravel(), "col": cols.ravel()})
    background = np.random.default_rng(0).poisson(10.0, size=len(grid)).astype(float)
    counts = np.tile(background[:, None], (1, T))
    block = (grid["row"].between(4, 6) & grid["col"].between(4, 6)).to_numpy()
    counts[block] = np.asarray(levels, dtype=float)[None, :]
    months = [f"2024-{m:02d}" for m in range(1, T + 1)]
    centre = int(np.flatnonzero((grid["row"] == 5) & (grid["col"] == 5))[0])
    frame = pd.DataFrame(counts, columns=months, index=[f"cell{i}" for i in range(len(grid))])
    return frame, grid_neighbours(grid, cell_shape="square"), centre


@pytest.mark.parametrize("expected", list(LEVELS))
def test_emerging_hotspots_end_to_end(expected):
    counts, w, centre = cube(LEVELS[expected])
    before = counts.copy()
    out = emerging_hotspots(counts, w)
    pd.testing.assert_frame_equal(counts, before)
    assert list(out.columns) == list(EMERGING_COLUMNS) and out.index.equals(counts.index)
    assert out["pattern"].iloc[centre] == expected


def test_emerging_hotspots_matches_gistar_mann_kendall_and_classify_series():
    counts, w, centre = cube(LEVELS["intensifying hot spot"])
    out = emerging_hotspots(counts, w)
    z = np.column_stack([gistar(counts[c].to_numpy(), w)["gistar_z"] for c in counts])
    p = np.column_stack([gistar(counts[c].to_numpy(), w)["p_adjusted"] for c in counts])
    for i in (centre, 0, 30):
        _, mk_z, mk_p = mann_kendall(z[i])
        hot, cold = (p[i] <= 0.10) & (z[i] > 0), (p[i] <= 0.10) & (z[i] < 0)
        row = out.iloc[i]
        assert (row["mk_z"], row["mk_p"]) == pytest.approx((mk_z, mk_p))
        assert (row["n_periods_hot"], row["n_periods_cold"]) == (hot.sum(), cold.sum())
        assert row["final_z"] == pytest.approx(z[i, -1])
        assert row["pattern"] == classify_series(hot, cold, mk_z, mk_p)


def test_emerging_hotspots_needs_ten_periods_and_survives_empty_periods():
    counts, w, centre = cube(LEVELS["new hot spot"])
    with pytest.raises(ValueError, match=r"counts has 9 periods \(columns\); emerging hot "
                                         "spot classes need at least 10"):
        emerging_hotspots(counts.iloc[:, :9], w)
    counts.iloc[:, 0] = 0.0  # a period with no incidents at all: no hot or cold spot
    out = emerging_hotspots(counts, w)
    assert out["pattern"].iloc[centre] == "new hot spot"


# --- time profile and patrol windows -----------------------------------------------------

def test_time_profile_counts_only_real_times():
    inc = incidents([
        {"date": "2024-08-02", "hour": 21},  # Friday
        {"date": "2024-08-02", "hour": 21},
        {"date": "2024-08-04", "hour": 0},  # Sunday
        {"date": "2024-08-05", "hour": -1},  # no time of day
        {"date": "2024-08-01", "hour": 0, "source": "policeuk"},  # month only
    ])
    prof = time_profile(inc)
    assert prof.shape == (7, 24) and prof.index.tolist()[0] == "Mon"
    assert prof.loc["Fri", 21] == 2 and prof.loc["Sun", 0] == 1
    assert prof.to_numpy().sum() == 3
    only_policeuk = time_profile(inc.iloc[3:])
    assert only_policeuk.to_numpy().sum() == 0
    assert patrol_windows(only_policeuk) == []
    assert "police.uk" in NO_TIMES_NOTE


def night_profile():
    prof = np.ones((7, 24))
    for day in (4, 5):  # Friday and Saturday nights, 20:00 to 01:00 the next morning
        prof[day, 20:24] += 20
        prof[day + 1, 0] += 20
    return prof


def test_patrol_windows_find_a_night_block_across_midnight():
    windows = patrol_windows(night_profile())
    assert windows[0]["label"] == "Fri-Sat 20:00-01:00"
    assert windows[0]["n"] == 210 and windows[0]["share"] == pytest.approx(210 / 368)
    assert (windows[0]["weekdays"], windows[0]["start_hour"], windows[0]["hours"]) == (
        ("Fri", "Sat"), 20, 5)
    # the rest is flat: nothing else stands out
    assert len(windows) == 1


def test_patrol_windows_from_incidents_via_time_profile():
    rows = []
    for date in ("2024-08-02", "2024-08-09", "2024-08-03", "2024-08-10"):  # Fri, Sat
        rows += [{"date": date, "hour": h} for h in (20, 21, 22, 23)] * 3
    rows += [{"date": d, "hour": 0} for d in ("2024-08-03", "2024-08-04")] * 6  # after 0:00
    rows += [{"date": "2024-08-06", "hour": 10}, {"date": "2024-08-07", "hour": 15}]
    windows = patrol_windows(time_profile(incidents(rows)), top=3)
    assert windows[0]["label"] == "Fri-Sat 20:00-01:00"
    assert windows[0]["n"] == 60


def test_patrol_windows_respect_top_max_hours_and_min_share():
    prof = np.ones((7, 24))
    prof[:, 14:23] += 10  # daily 14:00 to 23:00: longer than 6 hours
    labels = [w["label"] for w in patrol_windows(prof)]
    assert labels == ["daily 14:00-20:00", "daily 20:00-23:00"]
    assert [w["label"] for w in patrol_windows(prof, top=1)] == ["daily 14:00-20:00"]
    assert [w["label"] for w in patrol_windows(prof, max_hours=9)] == ["daily 14:00-23:00"]
    assert len(patrol_windows(prof, min_share=0.35)) == 1
    assert patrol_windows(np.ones((7, 24))) == []  # flat: no window stands out


@pytest.mark.parametrize("kwargs, message", [
    ({"profile": np.ones((24, 7))}, r"profile must be 7 x 24 .*got shape \(24, 7\)"),
    ({"top": 0}, r"top must be a whole number of windows >= 1 \(default 2\); got 0"),
    ({"max_hours": 25}, r"max_hours must be a whole number of hours from 1 to 24 "
                        r"\(default 6\); got 25"),
    ({"min_share": 1.0}, r"min_share must be a share in \[0, 1\) \(default 0.05\); got 1.0"),
])
def test_patrol_windows_reject_bad_parameters(kwargs, message):
    args = {"profile": night_profile(), **kwargs}
    with pytest.raises(ValueError, match=message):
        patrol_windows(**args)


# --- synthetic data: planted step changes ------------------------------------------------

@pytest.fixture(scope="module")
def synthetic(layers):
    data = make_synthetic(layers["lsoa"], n_incidents=20_000, rng=3, dirty_fraction=0.0)
    return data, synthetic_incidents(data.incidents)


def three_months_from(step_date: str) -> Period:
    start = dt.date.fromisoformat(step_date)
    end = (pd.Timestamp(start) + pd.DateOffset(months=3) - pd.Timedelta(days=1)).date()
    return Period(start, end)


@pytest.mark.parametrize("direction", ["rising", "falling"])
def test_planted_step_changes_are_flagged(synthetic, direction):
    """The 3 months from the planted step against the 3 months (same number of days)
    before it. Seasonality moves every place too (peak in July), so beside the label the
    test checks that the planted places have the smallest p-values, and that against the
    same months a year before (no seasonal difference) only planted places change."""
    data, inc = synthetic
    hot = data.hotspots
    planted = hot.loc[(hot["step_factor"] > 1) if direction == "rising"
                      else (hot["step_factor"] < 1)]
    assert len(planted) == (3 if direction == "rising" else 1)
    period = three_months_from(planted["step_date"].iloc[0])
    assert (planted["step_date"] == planted["step_date"].iloc[0]).all()
    out = period_trends(inc, period=period)
    assert set(out.index) == set(hot["name"])
    names = planted["name"].tolist()
    assert (out.loc[names, "trend"] == direction).all(), out.loc[names]
    smallest = out["p_previous"].nsmallest(len(names)).index
    assert set(smallest) == set(names)
    sign = 1 if direction == "rising" else -1
    assert (sign * out.loc[names, "change_year"] > 0).all()
    assert (out.loc[names, "p_year"] < 1e-6).all()
    unplanted = hot.loc[hot["step_factor"] == 1, "name"]
    # at 1% for the family of unplanted places (Bonferroni), not 1% each
    assert (out.loc[unplanted, "p_year"] > 0.01 / len(unplanted)).all(), out.loc[unplanted]


def plain_label(out: pd.DataFrame, period: Period, alpha: float = 0.05) -> pd.Series:
    """The label as it was before the season adjustment: the plain test on the previous
    period, p_previous <= alpha, in the direction of the daily rate."""
    days, days_before = period.days, period.previous().days
    up = out["n"] * days_before > out["n_previous"] * days
    down = out["n"] * days_before < out["n_previous"] * days
    sig = out["p_previous"] <= alpha
    return pd.Series(np.select([sig & up, sig & down], ["rising", "falling"],
                               "no clear change"), index=out.index)


def test_spring_step_season_is_not_a_rising_place(synthetic):
    """Planted truth. The 3 months from the spring step (March to May 2024) against the 3
    months before: the season (peak in July) lifts every place, and the plain test calls
    some of the 11 places with no planted change rising (3 to 6 of 11, by seed and layout).
    Against the rest of the borough none is, and the 3 planted rises (x2.5) still are."""
    data, inc = synthetic
    hot = data.hotspots
    assert (inc["unit"] == "").mean() > 0.2  # the background counts for the borough
    rises = hot.loc[hot["step_factor"] > 1, "name"].tolist()
    unplanted = hot.loc[hot["step_factor"] == 1, "name"].tolist()
    assert len(rises) == 3 and len(unplanted) == 11
    period = three_months_from(hot.loc[hot["step_factor"] > 1, "step_date"].iloc[0])
    assert period.start == dt.date(2024, 3, 1)
    out = period_trends(inc, period=period)
    before = plain_label(out, period)
    assert (before[unplanted] == "rising").sum() >= 1, out.loc[unplanted]
    assert (out.loc[unplanted, "trend"] == "rising").sum() == 0, out.loc[unplanted]
    assert (out.loc[rises, "trend"] == "rising").all(), out.loc[rises]
    assert (out.loc[rises, "reference"] == "rest of borough").all()
    # nor is a steady place called falling because the borough rose (the three planted
    # rises lift the borough too): a falling label always goes with fewer incidents
    falling = out.loc[out["trend"] == "falling"]
    assert (falling["n"] < falling["n_previous"]).all(), falling
    # the rises are far beyond the season: the borough-adjusted p-values stay tiny
    assert (out.loc[rises, "p_adjusted"] < 1e-4).all()


def test_coverage_of_each_stream():
    from hotspots.trends import COVERAGE_COLUMNS, coverage

    inc = pd.DataFrame({
        "source": ["policeuk"] * 4 + ["council"] * 3,
        "category": ["burglary", "burglary", "burglary", "asb", "asb", "asb", "asb"],
        "date": ["2024-01-01", "2024-03-01", "2024-03-01", "2023-04-01", "2023-12-31",
                 "2024-01-05", "2024-02-29"],
    })
    before = inc.copy()
    cov = coverage(inc.sample(frac=1, random_state=1))  # row order does not matter
    pd.testing.assert_frame_equal(inc, before)
    assert list(cov.columns) == list(COVERAGE_COLUMNS)
    assert cov.index.tolist() == [("council", "asb"), ("policeuk", "asb"),
                                  ("policeuk", "burglary")]
    assert cov.loc[("policeuk", "burglary")].tolist() == ["2024-01", "2024-03", 2, 3, 3]
    assert cov.loc[("council", "asb")].tolist() == ["2023-12", "2024-02", 3, 3, 3]
    assert cov.loc[("policeuk", "asb")].tolist() == ["2023-04", "2023-04", 1, 1, 1]
    with pytest.raises(ValueError, match="incidents has no column 'category'"):
        coverage(inc.drop(columns="category"))


@pytest.mark.slow
def test_trend_labels_raise_no_false_alarms_on_stationary_data():
    # the same Poisson rate every month for every place (rates from 1 to 40 a month):
    # nothing rises or falls, so the labels must (almost) never say so. The plain,
    # unadjusted test does flag about 1 place in 20, which is why the label does not use it
    rng = np.random.default_rng(12)
    rates = rng.uniform(1, 40, size=100)
    units = np.array([f"U{i:03d}" for i in range(len(rates))])
    labelled, plain, replicates_with_alarm = 0, 0, 0
    for _ in range(12):
        parts = []
        for date in ("2023-08-15", "2024-07-15", "2024-08-15"):
            n = rng.poisson(rates)
            parts.append(pd.DataFrame({"unit": np.repeat(units, n), "date": date}))
        rows = pd.concat(parts, ignore_index=True)
        inc = rows.assign(source="lbth-asb", category="asb_nuisance",
                          period=rows["date"].str[:7])
        out = period_trends(inc, period=month_period("2024-08"))
        alarms = int((out["trend"] != "no clear change").sum())
        labelled += alarms
        replicates_with_alarm += alarms > 0
        plain += int((out["p_previous"] <= 0.05).sum())
    tested = 12 * len(rates)
    assert plain > 0.02 * tested  # the unadjusted test raises false alarms...
    assert labelled <= 2  # ...the labels next to none
    assert replicates_with_alarm <= 1  # BH at 5%: a false alarm in about 1 month in 20


def test_monthly_series_runs_each_stream_over_its_own_months():
    from hotspots.trends import coverage, monthly_series

    inc = pd.DataFrame({
        "source": ["policeuk"] * 3 + ["council"] * 4,
        "category": ["burglary"] * 3 + ["asb"] * 4,
        "date": ["2024-01-01", "2024-03-01", "2024-03-01", "2023-11-30", "2023-12-31",
                 "2024-02-29", "2024-02-01"],
        "ward_code": ["A", "A", "B", "A", "B", "A", "A"],
    })
    spans = coverage(inc).loc[[("policeuk", "burglary"), ("council", "asb")]]
    out = monthly_series(inc.loc[inc["ward_code"] == "B"], spans)  # one ward, store's spans
    assert out.columns.tolist() == [("policeuk", "burglary"), ("council", "asb")]
    assert out.index.tolist() == ["2023-11", "2023-12", "2024-01", "2024-02", "2024-03"]
    burglary, asb = out[("policeuk", "burglary")], out[("council", "asb")]
    assert burglary.isna().tolist() == [True, True, False, False, False]
    assert burglary.dropna().tolist() == [0, 0, 1]  # 0 inside its span, NaN before it
    assert asb.tolist()[:4] == [0, 1, 0, 0] and math.isnan(asb.iloc[4])
    everywhere = monthly_series(inc, spans)
    assert everywhere.sum().tolist() == [3, 4]  # every row counted once
    assert monthly_series(inc, spans.iloc[:0]).empty


def test_emerging_cells_are_the_pack_classes_on_the_grid(synthetic, layers, config):
    """emerging_grid: the cells, their class and the grid the tasking pack counts them on."""
    from hotspots.analysis import GridSpec
    from hotspots.geography import land_area
    from hotspots.grid import cell_index, make_grid, suggest_cell_size
    from hotspots.trends import emerging_cells, emerging_grid, emerging_grid_spec

    area = land_area(layers, config)
    syn = synthetic[1]
    last = syn["period"].max()
    period = month_period(last)
    out = emerging_grid(syn, area, period=period)
    cur = syn.loc[syn["period"] == last]
    cell = suggest_cell_size(cur["x"].to_numpy(), cur["y"].to_numpy(), area)
    assert emerging_grid_spec(syn, area, period=period) == GridSpec(cell)
    grid = make_grid(area, cell_size_m=cell)
    assert out["cell_id"].tolist() == grid["cell_id"].tolist()
    assert set(EMERGING_COLUMNS) <= set(out.columns) and out.crs == grid.crs
    # the classes are emerging_hotspots of the monthly cell counts of the last 12 months
    months = pd.period_range(end=pd.Period(last, "M"), periods=12, freq="M").strftime("%Y-%m")
    idx = cell_index(grid, syn["x"].to_numpy(), syn["y"].to_numpy(), cell_size_m=cell)
    keep = (idx >= 0) & syn["period"].isin(months).to_numpy()
    counts = pd.crosstab(idx[keep], syn["period"].to_numpy()[keep]).reindex(
        index=grid["cell_id"], columns=months, fill_value=0)
    want = emerging_hotspots(counts, grid_neighbours(grid, cell_shape="square"))
    assert out["pattern"].tolist() == want["pattern"].tolist()
    assert (out["pattern"] != "no pattern").any()
    # fewer than 10 months with incidents: no classes
    short = syn.loc[syn["period"] >= months[4]]
    assert emerging_cells(short, grid, cell_size_m=cell, end_month=last) is None
