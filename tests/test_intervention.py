"""Before and after an intervention for people: monthly steps that add up to the counts
the effect is judged on, and the verdict in plain words."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest
import shapely

from hotspots.evaluate import intervention_effect
from hotspots.intervention import before_after_series, plain_verdict

TARGET = shapely.box(0, 0, 200, 200)
CONTROL = shapely.box(-2000, -2000, 2000, 2000)


def _incidents(rng, per_month: dict[str, tuple[int, int]]) -> pd.DataFrame:
    """Incidents per month before/after 2024-03-01 (6 months each side) in the target
    (x, y in it), the 250 m ring, and the rest."""
    spots = {"target": (100, 100), "buffer": (330, 100), "control": (1500, 1500)}
    rows = []
    for month in pd.period_range("2023-09", "2024-08", freq="M"):
        side = 0 if month < pd.Period("2024-03", "M") else 1
        for area, counts in per_month.items():
            for _ in range(counts[side]):
                day = int(rng.integers(1, month.days_in_month + 1))
                x, y = spots[area]
                rows.append({"source": "council", "date": f"{month}-{day:02d}",
                             "x": x + rng.uniform(-50, 50), "y": y + rng.uniform(-50, 50)})
    return pd.DataFrame(rows)


def test_steps_add_up_to_the_effects_counts():
    inc = _incidents(np.random.default_rng(1), {"target": (20, 8), "buffer": (10, 6),
                                                 "control": (200, 190)})
    # a row on the window edges on both sides, and one outside both windows
    inc = pd.concat([inc, pd.DataFrame({"source": "council", "x": [100.0] * 3,
                                        "y": [100.0] * 3,
                                        "date": ["2024-02-29", "2024-03-01", "2023-08-31"]})])
    eff = intervention_effect(inc, target=TARGET, date="2024-03-01", control=CONTROL, months=6)
    steps = before_after_series(inc, target=TARGET, date=dt.date(2024, 3, 1), control=CONTROL,
                                months=6)
    assert len(steps) == 3 * 12
    for area in ("target", "buffer", "control"):
        mine = steps.loc[steps["area"] == area]
        for side in ("before", "after"):
            assert mine.loc[mine["side"] == side, "n"].sum() == eff[f"{area}_{side}"]
        assert mine["start"].iloc[0] == dt.date(2023, 9, 1)
        assert mine["start"].iloc[6] == dt.date(2024, 3, 1)
        assert mine.loc[mine["side"] == "before", "index"].mean() == pytest.approx(100)
    target = steps.loc[steps["area"] == "target"]
    assert target.loc[target["start"] == dt.date(2024, 2, 1), "n"].iloc[0] == 21  # + edge
    assert target.loc[target["start"] == dt.date(2024, 3, 1), "n"].iloc[0] == 9


def test_a_date_mid_month_makes_steps_from_that_day():
    inc = pd.DataFrame({"source": "council", "date": ["2024-03-14", "2024-03-15"],
                        "x": [100.0, 100.0], "y": [100.0, 100.0]})
    steps = before_after_series(inc, target=TARGET, date="2024-03-15", control=CONTROL,
                                months=2)
    target = steps.loc[steps["area"] == "target"].set_index("start")["n"]
    assert target.to_dict() == {dt.date(2024, 1, 15): 0, dt.date(2024, 2, 15): 1,
                                dt.date(2024, 3, 15): 1, dt.date(2024, 4, 15): 0}
    with pytest.raises(ValueError, match="months must be a whole number of months >= 1"):
        before_after_series(inc, target=TARGET, date="2024-03-15", control=CONTROL, months=0)


def test_verdicts_in_plain_words():
    rng = np.random.default_rng(2)
    fell = intervention_effect(_incidents(rng, {"target": (40, 20), "buffer": (10, 6),
                                                "control": (300, 285)}),
                               target=TARGET, date="2024-03-01", control=CONTROL)
    text = plain_verdict(fell, buffer_m=250)
    assert text.startswith(f"The target fell {1 - fell['target_after'] / fell['target_before']:.0%}"
                           ", more than the rest of the borough (fell ")
    assert "; unlikely to be chance." in text
    assert "The 250 m ring round it fell " in text and "benefit spread" in text
    assert "p =" not in text and "WDQ" not in text

    same = intervention_effect(_incidents(rng, {"target": (10, 9), "buffer": (5, 5),
                                                "control": (300, 310)}),
                               target=TARGET, date="2024-03-01", control=CONTROL)
    text = plain_verdict(same)
    assert "while the rest of the borough rose" in text or "than the rest" in text
    assert text.endswith("; the difference could well be chance.")
    assert "ring" not in text  # nothing to read next door without a clear effect

    moved = {"target_before": 60, "target_after": 20, "buffer_before": 10, "buffer_after": 30,
             "control_before": 300, "control_after": 300, "p_value_vs_control": 1e-6,
             "clear": True, "wdq": -1.2}
    assert plain_verdict(moved) == (
        "The target fell 67%, while the rest of the borough stayed level; unlikely to be "
        "chance. The ring round it rose 200%: some of the problem may have moved there.")
    rose = dict(moved, target_before=10, target_after=40, control_after=330)
    assert plain_verdict(rose) == ("The target rose 300%, more than the rest of the borough "
                                   "(rose 10%); unlikely to be chance.")
    new = dict(moved, target_before=0)
    assert plain_verdict(new).startswith("The target had no incidents before;")
