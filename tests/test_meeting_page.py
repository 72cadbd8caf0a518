"""The meeting review on the Tasking page (app_pages/meeting.py) through Streamlit's AppTest
on a demo store: the previous meeting's tasked place is reviewed even when a decision was
recorded today, and the chair edits and closes decisions through forms (an analyst sees
no forms)."""

from __future__ import annotations

import contextlib
import datetime as dt
import os

import pytest

from hotspots import meetings, store
from tests.test_app import demo, role  # noqa: F401 (fixtures: a demo store of its own)

XSS = "<img src=x onerror=alert(1)>"


def _df(at, column: str):
    return next(d.value for d in at.dataframe if column in d.value.columns)


def _button(at, label: str):
    return next(b for b in at.button if b.label == label)


@pytest.mark.slow
def test_meeting_review_edit_and_close(role):  # noqa: F811
    at = role("chair")
    assert at.title[0].value == "Tasking"
    target = os.environ["HOTSPOTS_STORE"]
    with contextlib.closing(store.connect(target)) as conn:
        places = store.read_places(conn)  # the run on screen
        first, other = places["place_id"].iloc[0], places["place_id"].iloc[1]
        meetings.create_meeting(conn, dt.date(2024, 8, 10))
        tasked = meetings.decide(conn, meeting=dt.date(2024, 8, 10), place_id=first,
                                 owner="ptf", actions=f"patrols {XSS}",
                                 review_date=dt.date(2024, 9, 1))
        meetings.decide(conn, meeting=dt.date.today(), place_id=other, owner="housing",
                        actions="today's", review_date=dt.date.today())
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    captions = " ".join(c.value for c in at.caption)
    assert "Previous meeting: 2024-08-10 (period not recorded)" in captions
    review = _df(at, "verdict")
    # the previous meeting's place, not today's decision (the latest date on record)
    assert review["place_id"].tolist() == [first]
    row = review.iloc[0]
    assert row["days"] == 22 and row["n_before"] + row["n_after"] > 0  # 10 to 31 August
    assert row["verdict"].startswith(("fewer", "more", "the same")) and row["status"] == "open"
    assert f"Meeting of {dt.date.today().isoformat()}: 1 decision(s) recorded." in captions
    assert _df(at, "outcome_note")["place_id"].tolist() == [other]
    assert all(XSS not in m.value for m in at.markdown)  # record text only in tables

    at.selectbox(key="de_id").set_value(tasked).run()
    at.text_area(key=f"de_actions_{tasked}").input("Joint patrol Fri and Sat")
    at.selectbox(key=f"de_owner_{tasked}").set_value("enforcement")
    _button(at, "Save changes").click().run()
    assert not at.exception, [e.value for e in at.exception]
    assert at.success[0].value == f"Decision {tasked} changed."
    at.selectbox(key="dc_id").set_value(tasked)
    at.selectbox(key="dc_outcome").set_value("resolved")
    at.text_area(key="dc_note").input("No reports since the lighting was fixed")
    _button(at, "Close decision").click().run()
    assert not at.exception, [e.value for e in at.exception]
    assert at.success[0].value == f"Decision {tasked} closed: Resolved."
    with contextlib.closing(store.connect(target)) as conn:
        got = store.read_decisions(conn).set_index("decision_id").loc[tasked]
    assert (got["actions"], got["owner"], got["outcome"], got["closed_on"]) == (
        "Joint patrol Fri and Sat", "enforcement", "resolved", dt.date.today().isoformat())
    assert (got["edited_by"], got["outcome_note"]) == (
        "local analyst", "No reports since the lighting was fixed")
    # the review shows the change at once (the caches are keyed on the tasking log)
    row = _df(at, "verdict").iloc[0]
    assert row["status"] == f"closed {dt.date.today().isoformat()}: Resolved"
    assert row["actions"] == "Joint patrol Fri and Sat"

    analyst = role("analyst")
    assert _df(analyst, "verdict")["place_id"].tolist() == [first]
    assert not {"Save changes", "Close decision", "Record meeting"} & {
        b.label for b in analyst.button}
