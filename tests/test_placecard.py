"""The one place card (pack and app): evidence computed from a place's records, drawn as
escaped HTML with no script."""

import datetime as dt

import numpy as np
import pandas as pd
import shapely

from hotspots.placecard import card_html, partner_evidence, place_evidence, trend_words
from hotspots.summary import month_period

EVIL = "<img src=x onerror=alert(1)>"


def _records():
    """Council rows with times, police.uk rows (month only, hour -1) over 14 months."""
    rows = []
    rng = np.random.default_rng(3)
    for month in pd.period_range("2023-07", "2024-08", freq="M"):
        k = 2 if str(month) < "2024-08" else 9
        for i in range(k):
            day = 1 + int(rng.integers(0, 28))
            rows.append({"source": "council", "category": EVIL if i % 3 == 0 else "asb",
                         "date": f"{month}-{day:02d}", "hour": 21,
                         "location_key": f"L{i % 2}", "caller_key": "C1" if i < 4 else ""})
        rows.append({"source": "policeuk", "category": "burglary", "date": f"{month}-01",
                     "hour": -1, "location_key": "M1", "caller_key": ""})
    return pd.DataFrame(rows)


def _row(**extra):
    return {"rank": 1, "place_id": "P1", "label": f"{EVIL} Street", "n": 10, "score": 0.8,
            "component_volume": 1.0, "points_volume": 0.2, "component_trend": 0.25,
            "points_trend": 0.05, "repeat_locations": 3, "n_at_repeat_locations": 8,
            "repeat_callers": 1, "n_from_repeat_callers": 4, "trend_label": "rising", **extra}


def test_evidence_counts_what_the_records_say():
    inc = _records()
    period = month_period("2024-08")
    square = shapely.box(0, 0, 10, 10)
    decisions = pd.DataFrame({
        "meeting_date": ["2024-08-16", "2024-08-20"], "place_id": ["X", "Y"],
        "geometry_wkt": [square.wkt, shapely.box(50, 50, 60, 60).wkt],
        "owner": ["ptf", "housing"], "actions": [EVIL, "x"], "review_date": ["2024-09-01"] * 2})
    ev = place_evidence(_row(), inc, period=period, decisions=decisions, geometry=square,
                        label_of=lambda c: c.upper(), owner_names={"ptf": "Task Force"})
    now = inc.loc[inc["date"].str.startswith("2024-08")]
    assert sum(n for _, n in ev.categories) == len(now)  # police.uk's whole month is in
    assert dict(ev.categories)["ASB"] == (now["category"] == "asb").sum()
    # the hour grid counts timed council rows only, all at 21:00
    timed = now.loc[now["source"] == "council"]
    assert ev.n_timed == len(timed) and ev.profile[:, 21].sum() == len(timed)
    assert ev.profile.sum() == ev.profile[:, 21].sum()
    months = dict(ev.months)
    assert list(months) == [str(m) for m in pd.period_range("2023-09", "2024-08", freq="M")]
    assert months["2024-08"] == len(now) and months["2024-07"] == 3
    assert "up from 3" in ev.trend_words and "rising" in ev.trend_words
    assert [t.meeting_date for t in ev.tasking] == ["2024-08-16"]  # by geometry, not id
    t = ev.tasking[0]
    assert t.owner == "Task Force" and t.days == 16
    assert t.n_since == ((now["source"] == "council")
                         & (now["date"] >= "2024-08-16")).sum()
    assert [c.name for c in ev.components] == ["volume", "trend"]
    # escaped everywhere: the label, a category and the actions
    page = card_html(ev)
    assert "<script" not in page
    assert page.lower().count("&lt;img src=x onerror=alert(1)&gt;") >= 3
    assert "<img" not in page.lower()
    assert "tasked before" in page and "<svg" in page


def test_partner_card_shows_only_the_partner_table():
    page = card_html(partner_evidence({"rank": 2, "place_id": "P2", "n": "<5"},
                                      label=f"{EVIL} ward", facts=[("Incidents", "<5")]))
    assert EVIL not in page and "&lt;5" in page
    assert "<svg" not in page and "Tasking history" not in page


def test_trend_words_say_the_direction_and_extremes():
    assert trend_words((("2024-07", 5), ("2024-08", 2))).startswith("2 in Aug 2024, down")
    assert "fewest" in trend_words((("2024-06", 4), ("2024-07", 5), ("2024-08", 2)))
    assert trend_words((("2024-08", 0),)) == "No incidents in the 1 months shown."
    assert dt.date(2024, 8, 1)  # keeps the import honest for the doctest's dates
