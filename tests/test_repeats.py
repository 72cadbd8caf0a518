"""Repeat locations and callers, the Community Trigger threshold, Gini, Lorenz and top-5%
share: hand computations, and the planted repeat callers of the synthetic data."""

import numpy as np
import pandas as pd
import pytest

from hotspots.repeats import (
    REPEAT_COLUMNS,
    TRIGGER_COLUMNS,
    community_trigger,
    concentration,
    lorenz,
    repeat_summary,
)
from hotspots.schema import INCIDENT_COLUMNS
from hotspots.synthetic import make_synthetic


def incidents(rows):
    base = {"source": "lbth-asb", "category": "asb_nuisance", "hour": 20, "x": 1.0, "y": 1.0,
            "location": "", "location_key": "", "caller_key": "", "description": "",
            "quantity": 1, "ward_code": "", "lsoa_code": "", "source_lsoa": "", "file": "f",
            "row": 2, "date": "2024-08-01", "unit": "A"}
    out = pd.DataFrame([{**base, "ref": f"r{i}", **r} for i, r in enumerate(rows)])
    out["period"] = out["date"].str[:7]
    return out


# --- repeat_summary ----------------------------------------------------------------------

def test_repeat_summary_counts_by_hand():
    inc = incidents([
        {"unit": "A", "location_key": "k1", "caller_key": "c1"},
        {"unit": "A", "location_key": "k1", "caller_key": "c1"},
        {"unit": "A", "location_key": "k2", "caller_key": ""},
        {"unit": "A", "location_key": "k3", "caller_key": "c2"},
        {"unit": "B", "location_key": "k3", "caller_key": "c2"},  # k3, c2 span two units
        {"unit": "B", "location_key": "", "caller_key": ""},
        {"unit": "B", "location_key": "", "caller_key": ""},  # empty keys never repeat
        {"unit": "", "location_key": "k1", "caller_key": "c1"},  # no unit: counts for keys
    ])
    before = inc.copy()
    out = repeat_summary(inc)
    pd.testing.assert_frame_equal(inc, before)
    assert list(out.columns) == list(REPEAT_COLUMNS) and out.index.name == "unit"
    assert out.index.tolist() == ["A", "B"]
    a, b = out.loc["A"], out.loc["B"]
    assert (a["n"], a["repeat_locations"], a["n_at_repeat_locations"]) == (4, 2, 3)
    assert (a["repeat_callers"], a["n_from_repeat_callers"]) == (2, 3)
    assert a["repeat_location_share"] == pytest.approx(0.75)
    assert a["repeat_caller_share"] == pytest.approx(0.75)
    assert (b["n"], b["repeat_locations"], b["n_at_repeat_locations"]) == (3, 1, 1)
    assert (b["repeat_callers"], b["n_from_repeat_callers"]) == (1, 1)
    assert b["repeat_caller_share"] == pytest.approx(1 / 3)


def test_repeat_summary_names_a_missing_column():
    with pytest.raises(ValueError, match="incidents has no column 'place'"):
        repeat_summary(incidents([{}]), unit="place")


# --- community_trigger -------------------------------------------------------------------

def trigger_rows():
    return incidents([
        # c1: 1 Jan and 30 Jun are 181 days apart: 3 within 182 days
        {"caller_key": "c1", "date": "2024-01-01", "unit": "A"},
        {"caller_key": "c1", "date": "2024-03-01", "unit": "B"},
        {"caller_key": "c1", "date": "2024-06-30", "unit": "A"},
        # c2: 1 Jan to 1 Jul is 182 days: never 3 within 182 days
        {"caller_key": "c2", "date": "2024-01-01"},
        {"caller_key": "c2", "date": "2024-03-01"},
        {"caller_key": "c2", "date": "2024-07-01"},
        # c3: 4 reports, best window is the later one (3 + 1 reports on the same day)
        {"caller_key": "c3", "date": "2023-01-01", "unit": "C"},
        {"caller_key": "c3", "date": "2024-02-01", "unit": "D"},
        {"caller_key": "c3", "date": "2024-02-01", "unit": "D"},
        {"caller_key": "c3", "date": "2024-02-20", "unit": "E"},
        # c4: reaches 3 only with its police.uk rows, which are excluded
        {"caller_key": "c4", "date": "2024-02-01", "source": "policeuk"},
        {"caller_key": "c4", "date": "2024-02-01", "source": "policeuk"},
        {"caller_key": "c4", "date": "2024-02-03"},
        # empty keys are ignored however many
        *[{"caller_key": "", "date": "2024-02-03"}] * 5,
    ])


def test_community_trigger_finds_exact_rolling_windows():
    inc = trigger_rows()
    before = inc.copy()
    out = community_trigger(inc)
    pd.testing.assert_frame_equal(inc, before)
    assert list(out.columns) == list(TRIGGER_COLUMNS)
    assert out["key"].tolist() == ["c1", "c3"]
    c1, c3 = out.iloc[0].to_dict(), out.iloc[1].to_dict()
    assert c1 == {"key": "c1", "n_in_window": 3, "window_start": "2024-01-01",
                  "window_end": "2024-06-30", "total": 3, "units": "A; B"}
    assert c3 == {"key": "c3", "n_in_window": 3, "window_start": "2024-02-01",
                  "window_end": "2024-02-20", "total": 4, "units": "D; E"}


def test_community_trigger_threshold_window_and_location_keys_are_configurable():
    inc = trigger_rows()
    # one day longer: c2 qualifies too
    assert community_trigger(inc, window_days=183)["key"].tolist() == ["c1", "c2", "c3"]
    two = community_trigger(inc, threshold=2, unit=None)
    assert set(two["key"]) == {"c1", "c2", "c3"}  # c4 has one non-police.uk report
    assert (two["units"] == "").all()
    assert community_trigger(inc, threshold=5).empty
    loc = incidents([{"location_key": "x", "date": d} for d in
                     ("2024-01-01", "2024-01-02", "2024-01-03")])
    hit = community_trigger(loc, key="location_key")
    assert hit[["key", "n_in_window", "total"]].values.tolist() == [["x", 3, 3]]


@pytest.mark.parametrize("kwargs, message", [
    ({"key": "victim"}, r"key must be one of 'caller_key', 'location_key'; got 'victim'"),
    ({"threshold": 1}, r"threshold must be a whole number of reports >= 2 \(default 3\); "
                       "got 1"),
    ({"threshold": 2.5}, r"threshold must be .*got 2.5"),
    ({"window_days": 0}, r"window_days must be a whole number of days >= 1 \(default 182\); "
                         "got 0"),
])
def test_community_trigger_rejects_bad_parameters(kwargs, message):
    with pytest.raises(ValueError, match=message):
        community_trigger(trigger_rows(), **kwargs)


# --- concentration and Lorenz ------------------------------------------------------------

def test_gini_and_top5_share_by_hand():
    assert concentration([3, 3, 3, 3])["gini"] == 0.0
    one = concentration([0, 0, 0, 10])
    assert one["gini"] == pytest.approx(3 / 4)  # (n - 1) / n
    assert one["top5_share"] == 1.0 and one["top_units"] == 1
    # mean absolute difference: sum_ij |xi - xj| = 20, / (2 n^2 mean = 80) = 0.25
    four = concentration(np.array([4, 1, 3, 2]))
    assert four["gini"] == pytest.approx(0.25)
    assert (four["n_units"], four["total"]) == (4, 10.0)
    assert four["top5_share"] == pytest.approx(0.4)
    # 20 units: the top 5% is 1 unit; 21 units: 1.05, rounded up to 2
    assert concentration(np.arange(1, 21))["top5_share"] == pytest.approx(20 / 210)
    c21 = concentration(np.arange(1, 22))
    assert c21["top_units"] == 2 and c21["top5_share"] == pytest.approx(41 / 231)


def test_lorenz_by_hand_and_its_area_is_half_the_gini():
    curve = lorenz(pd.Series([4, 1, 3, 2], index=list("abcd")))
    assert curve["share_units"].tolist() == [0, 0.25, 0.5, 0.75, 1]
    assert curve["share_incidents"].to_numpy() == pytest.approx([0, 0.1, 0.3, 0.6, 1])
    counts = np.random.default_rng(0).poisson(3, 50)
    curve = lorenz(counts)
    x, y = curve["share_units"].to_numpy(), curve["share_incidents"].to_numpy()
    area_under = np.sum((y[1:] + y[:-1]) / 2 * np.diff(x))
    assert 1 - 2 * area_under == pytest.approx(concentration(counts)["gini"])


@pytest.mark.parametrize("counts, message", [
    ([], "counts must hold one count per unit; got none"),
    ([1, -2], r"counts must be finite and >= 0; 1 are not, the first at position 1 \(-2.0\)"),
    ([0, 0], "counts are all 0 over 2 units"),
])
def test_concentration_rejects_bad_counts(counts, message):
    with pytest.raises(ValueError, match=message):
        concentration(counts)
    with pytest.raises(ValueError, match=message):
        lorenz(counts)


# --- synthetic data ----------------------------------------------------------------------

def synthetic_incidents(truth: pd.DataFrame) -> pd.DataFrame:
    x, y = truth["x"].to_numpy(), truth["y"].to_numpy()
    inc = pd.DataFrame({
        "source": "synthetic", "ref": np.arange(len(truth)).astype(str),
        "category": truth["category"], "category_raw": truth["category"],
        "period": truth["date"].astype(str).str[:7], "date": truth["date"].astype(str),
        "hour": truth["hour"], "x": x, "y": y, "location": "",
        "location_key": [f"xy:{round(a / 10) * 10}:{round(b / 10) * 10}"
                         for a, b in zip(x, y, strict=True)],
        "caller_key": truth["caller"], "description": "", "quantity": 1, "ward_code": "",
        "lsoa_code": "", "source_lsoa": "", "file": "synthetic",
        "row": np.arange(len(truth)) + 2,
    })[list(INCIDENT_COLUMNS)]
    return inc.assign(unit=truth["hotspot"].to_numpy())


def test_planted_repeat_callers_reach_the_community_trigger(layers):
    data = make_synthetic(layers["lsoa"], n_incidents=20_000, rng=3, dirty_fraction=0.0)
    out = community_trigger(synthetic_incidents(data.incidents)).set_index("key")
    planted = data.callers.set_index("caller")
    expected = planted.loc[planted["max_in_182_days"] >= 3]
    assert len(expected) >= 6
    # every planted caller with 3+ reports within 182 days is found, with the exact count,
    # and no other caller (ordinary callers report at most twice)
    assert sorted(out.index) == sorted(expected.index)
    assert (out.loc[expected.index, "n_in_window"] == expected["max_in_182_days"]).all()
    assert (out.loc[expected.index, "total"] == expected["n_reports"]).all()
    summary = repeat_summary(synthetic_incidents(data.incidents))
    assert len(summary) == len(data.hotspots)
