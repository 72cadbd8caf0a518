import re

import numpy as np
import pandas as pd
import pytest

from hotspots.rank import COMPONENTS, DEFAULT_WEIGHTS, explain_rank, rank_units, trend_z


def units(k: int = 8, seed: int = 0) -> pd.DataFrame:
    """k units with varied components and some deliberate ties."""
    rng = np.random.default_rng(seed)
    n = rng.integers(5, 60, k)
    if k > 1:
        n[1] = n[0]  # ties on volume
    area = rng.uniform(0.05, 0.5, k)
    table = pd.DataFrame({
        "unit_id": [f"u{i}" for i in range(k)],
        "n": n,
        "density_per_km2": n / area,
        "harm": n * rng.uniform(1, 4, k),
        "repeat_location_share": rng.choice([0.0, 0.2, 0.5, 0.8], k),
        "repeat_caller_share": rng.choice([0.0, 0.1, 0.3], k),
        "trend": rng.normal(0, 2, k),
    })
    if k > 3:
        table.loc[3, "trend"] = np.nan
    return table


def order(ranked: pd.DataFrame) -> list[str]:
    return ranked["unit_id"].tolist()


def rank_of(ranked: pd.DataFrame, uid: str) -> int:
    return int(ranked.loc[ranked["unit_id"] == uid, "rank"].iloc[0])


def test_output_columns_scores_and_percentile_scaling():
    table = units()
    before = table.copy()
    ranked = rank_units(table)
    pd.testing.assert_frame_equal(table, before)  # input not mutated
    assert ranked.columns[0] == "rank" and ranked["rank"].tolist() == list(range(1, 9))
    for name in COMPONENTS:
        assert ranked[f"component_{name}"].between(0, 1).all()
    points = ranked[[f"points_{name}" for name in COMPONENTS]].sum(axis=1)
    np.testing.assert_allclose(points, ranked["score"], atol=1e-9)
    assert ranked["score"].is_monotonic_decreasing
    # a single outlier does not flatten the others: scaled by rank percentile
    outlier = units(4).assign(n=[1, 2, 3, 1000])
    got = rank_units(outlier).set_index("unit_id")["component_volume"]
    assert got.to_dict() == pytest.approx({"u0": 0, "u1": 1 / 3, "u2": 2 / 3, "u3": 1})
    # ties share the average; NaN trend counts as 0; one unit gets 0.5
    tied = rank_units(units(4).assign(n=[7, 7, 7, 9], trend=[np.nan, 0.0, -1.0, 1.0]))
    tied = tied.set_index("unit_id")
    assert tied["component_volume"].tolist().count(pytest.approx(1 / 3)) == 3
    assert tied.loc["u0", "component_trend"] == tied.loc["u1", "component_trend"]
    assert rank_units(units(1))["component_volume"].iloc[0] == 0.5


def test_shuffling_rows_never_changes_the_ranking():
    for seed in range(5):
        table = units(12, seed=seed)
        table.loc[5] = table.loc[4].to_numpy()  # an exact tie, apart from the id
        table.loc[5, "unit_id"] = "a-tied"
        expected = rank_units(table)
        rng = np.random.default_rng(100 + seed)
        for _ in range(10):
            shuffled = table.sample(frac=1, random_state=rng).reset_index(drop=True)
            got = rank_units(shuffled)
            pd.testing.assert_frame_equal(got, expected)


@pytest.mark.parametrize("name", list(COMPONENTS))
def test_each_component_moves_a_unit_up_and_never_down(name):
    col = COMPONENTS[name]
    table = units(10, seed=3).astype({"n": float})
    low = table[col].fillna(0).min()
    high = table[col].fillna(0).max()
    uid = "u5"
    previous = None
    # raise the component of one unit step by step, everything else fixed
    for value in np.linspace(low - 1, high + 1, 12):
        changed = table.copy()
        changed.loc[changed["unit_id"] == uid, col] = value
        r = rank_of(rank_units(changed), uid)
        if previous is not None:
            assert r <= previous, f"{name}: rank fell from {previous} to {r} at {value}"
        previous = r
    bottom = table.copy()
    bottom.loc[bottom["unit_id"] == uid, col] = low - 1
    top = table.copy()
    top.loc[top["unit_id"] == uid, col] = high + 1
    assert rank_of(rank_units(top), uid) < rank_of(rank_units(bottom), uid)


def test_a_zero_weight_makes_its_component_irrelevant():
    table = units(10, seed=4)
    weights = {"trend": 0.0}
    base = order(rank_units(table, weights=weights))
    for value in (-100.0, 0.0, 100.0):
        changed = table.copy()
        changed.loc[changed["unit_id"] == "u7", "trend"] = value
        assert order(rank_units(changed, weights=weights)) == base
    # and its column may be absent
    without = rank_units(table.drop(columns="trend"), weights=weights)
    assert order(without) == base
    assert without["component_trend"].isna().all() and (without["points_trend"] == 0).all()


def test_ties_broken_by_score_then_n_then_id():
    same = {"density_per_km2": 10.0, "harm": 5.0, "repeat_location_share": 0.5,
            "repeat_caller_share": 0.0, "trend": 0.0}
    table = pd.DataFrame([
        {"unit_id": "c", "n": 5, **same},
        {"unit_id": "a", "n": 5, **same},
        {"unit_id": "b", "n": 9, **same},
        {"unit_id": "d", "n": 1, **{**same, "harm": 50.0}},
    ])
    # volume not weighted: a, b, c tie on score; b has more incidents, then a before c
    ranked = rank_units(table, weights={"volume": 0})
    assert order(ranked) == ["d", "b", "a", "c"]
    assert ranked["score"].iloc[1] == ranked["score"].iloc[2] == ranked["score"].iloc[3]
    # identical rows including n: id ascending
    assert order(rank_units(table.assign(n=5), weights={"volume": 0, "harm": 0})) == [
        "a", "b", "c", "d"]


def test_repeat_share_accepted_and_existing_rank_replaced():
    table = units(5).rename(columns={"repeat_location_share": "repeat_share"})
    table.insert(0, "rank", [5, 4, 3, 2, 1])
    ranked = rank_units(table)
    assert list(ranked.columns).count("rank") == 1
    assert ranked["component_repeat_locations"].notna().all()


def test_trend_z():
    np.testing.assert_allclose(trend_z([20, 5, 0, 9], [5, 20, 0, 9]),
                               [15 / 5, -15 / 5, 0, 0])


def test_errors_name_the_problem():
    table = units(4)
    allowed = str(sorted(COMPONENTS))
    with pytest.raises(ValueError, match=r"unknown component name\(s\) \['volum'\]; allowed "
                       r"names are " + re.escape(allowed)):
        rank_units(table, weights={"volum": 1})
    with pytest.raises(ValueError, match=r"weights\['harm'\] = -1; give a number of 0 or more"):
        rank_units(table, weights={"harm": -1})
    with pytest.raises(ValueError, match=r"weights\['harm'\] = 'x'"):
        rank_units(table, weights={"harm": "x"})
    with pytest.raises(ValueError, match=r"weights are all 0"):
        rank_units(table, weights=dict.fromkeys(DEFAULT_WEIGHTS, 0))
    with pytest.raises(ValueError, match=r"missing component column\(s\) "
                       r"\['harm', 'trend'\]; add them or give their components weight 0"):
        rank_units(table.drop(columns=["harm", "trend"]))
    with pytest.raises(ValueError, match=r"missing component column\(s\) \['n'\]"):
        rank_units(table.drop(columns="n"), weights={"volume": 0})
    with pytest.raises(ValueError, match=r"id_col = 'place_id' is not a column of table"):
        rank_units(table, id_col="place_id")
    with pytest.raises(ValueError, match=r"unit_id must be unique: 1 duplicate\(s\), the first "
                       r"'u0' on 2 rows"):
        rank_units(table.assign(unit_id=["u0", "u0", "u2", "u3"]))
    with pytest.raises(ValueError, match=r"column 'harm' must be numeric: 1 value\(s\) are not, "
                       r"the first 'lots' at unit_id = 'u2'"):
        rank_units(table.astype({"harm": object}).assign(harm=[1, 2, "lots", 4]))


def test_explain_rank_reads_like_a_sentence():
    table = pd.DataFrame({
        "unit_id": ["a", "b", "c", "d"], "n": [41, 30, 10, 5],
        "density_per_km2": [310.0, 100.0, 200.0, 50.0], "harm": [96.0, 40.0, 20.0, 10.0],
        "repeat_location_share": [0.6, 0.2, 0.1, 0.0], "repeat_caller_share": [0.25, 0, 0, 0],
        "trend": trend_z([41, 30, 10, 5], [23, 30, 12, 5]), "n_prev": [23, 30, 12, 5],
    })
    ranked = rank_units(table)
    first = explain_rank(ranked.iloc[0], borough_density_per_km2=100.0,
                         previous="previous month")
    assert first.startswith("1st (score ")
    assert "41 incidents (volume 1.00)" in first
    assert "3.1x borough density (density 1.00)" in first
    assert "60% at repeat locations" in first and "25% from repeat callers" in first
    assert "up, +18 vs previous month" in first
    third = explain_rank(ranked.iloc[2])
    assert third.startswith("3rd") and "per km²" in third
    assert "down, -2 vs previous period" in third
    steady = explain_rank(rank_units(table, weights={"harm": 0}).iloc[1])
    assert "harm" not in steady and "level, no change vs previous period" in steady
