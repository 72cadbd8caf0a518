"""Meetings as records (hotspots.meetings) and `hotspots task ...`: the previous meeting is
the latest before the one being prepared, not the latest date typed in; decisions are
edited and closed with an outcome; tasked places are marked; the review compares like
with like."""

from __future__ import annotations

import contextlib
import datetime as dt
import json

import geopandas as gpd
import pandas as pd
import pytest
import shapely

from hotspots import meetings, store
from hotspots.cli import main
from hotspots.summary import month_period
from tests.test_store import places_frame

TODAY = dt.date.today()


def days_ago(n: int) -> dt.date:
    return TODAY - dt.timedelta(days=n)


@pytest.fixture()
def target(tmp_path):
    path = str(tmp_path / "store.sqlite")
    with contextlib.closing(store.connect(path)) as conn:
        store.write_places(conn, places_frame(), period="2024-08", start="2024-08-01",
                           end="2024-08-31", method="dbscan", params={})
    return path


def decide(conn, place: str, meeting: dt.date) -> int:
    return meetings.decide(conn, meeting=meeting, place_id=place, owner="ptf",
                           actions=f"patrol {place}", review_date=meeting + dt.timedelta(28))


def test_previous_meeting_is_not_a_decision_recorded_today(target):
    with contextlib.closing(store.connect(target)) as conn:
        meetings.create_meeting(conn, days_ago(28), period=month_period("2024-07"))
        decide(conn, "P1", days_ago(28))
        decide(conn, "P2", TODAY)  # recorded at today's meeting
        listed = meetings.list_meetings(conn)
        decisions = store.read_decisions(conn)
    preparing = meetings.meeting_being_prepared(listed, TODAY)
    assert preparing == TODAY
    prev = meetings.previous_meeting(listed, preparing)
    assert prev.date == days_ago(28) and prev.period_start == dt.date(2024, 7, 1)
    assert prev.label.endswith("(reviewed 2024-07-01 to 2024-07-31)")
    # the latest date on record is today's: the old rule reviewed P2 and lost P1
    assert decisions["meeting_date"].max() == TODAY.isoformat()
    reviewed = meetings.review_decisions(decisions, listed, preparing)
    assert reviewed["place_id"].tolist() == ["P1"]
    assert meetings.previous_meeting(listed, prev) is None


def test_a_decision_dated_earlier_through_the_cli_is_reviewed(target, capsys):
    with contextlib.closing(store.connect(target)) as conn:
        decide(conn, "P2", TODAY)  # the app first, for today's meeting
    # then the minutes of last week's meeting, typed in late through the CLI
    assert main(["task", "decide", "--store", target, "--place", "P1", "--owner", "housing",
                 "--actions", "Lighting", "--review", TODAY.isoformat(), "--meeting",
                 days_ago(7).isoformat(), "--json"]) == 0
    late = json.loads(capsys.readouterr().out)["decision_id"]
    with contextlib.closing(store.connect(target)) as conn:
        listed = meetings.list_meetings(conn)
        decisions = store.read_decisions(conn)
    prev = meetings.previous_meeting(listed, meetings.meeting_being_prepared(listed, TODAY))
    assert prev.date == days_ago(7)
    reviewed = meetings.review_decisions(decisions, listed, TODAY)
    assert reviewed["decision_id"].tolist() == [late]
    # preparing a later meeting: today's decisions, and last week's while still open
    later = TODAY + dt.timedelta(14)
    assert meetings.review_decisions(decisions, listed, later)["place_id"].tolist() == [
        "P1", "P2"]
    with contextlib.closing(store.connect(target)) as conn:
        meetings.close_decision(conn, late, outcome="no_longer", note="lights fixed")
        decisions = store.read_decisions(conn)
    assert meetings.review_decisions(decisions, listed, later)["place_id"].tolist() == ["P2"]
    # the previous meeting's own decisions show, open or closed
    assert meetings.review_decisions(decisions, listed, TODAY)["decision_id"].tolist() == [
        late]


def test_open_decisions_of_earlier_meetings_are_reviewed_until_closed(target):
    with contextlib.closing(store.connect(target)) as conn:
        old = decide(conn, "P1", days_ago(56))
        decide(conn, "P2", days_ago(28))
        listed = meetings.list_meetings(conn)
        assert meetings.review_decisions(store.read_decisions(conn), listed, TODAY)[
            "meeting_date"].tolist() == [days_ago(56).isoformat(), days_ago(28).isoformat()]
        meetings.close_decision(conn, old, outcome="resolved")
        assert meetings.review_decisions(store.read_decisions(conn), listed, TODAY)[
            "place_id"].tolist() == ["P2"]


def test_edit_and_close_persist_through_the_model(target):
    with contextlib.closing(store.connect(target)) as conn:
        d = decide(conn, "P1", days_ago(10))
        meetings.edit_decision(conn, d, actions="Joint patrol <b>Fri</b>",
                               review_date=TODAY, user="chair ana")
        meetings.close_decision(conn, d, outcome="escalated", note="three meetings running",
                                closed_on=days_ago(1), user="chair ana")
    with contextlib.closing(store.connect(target)) as conn:
        row = store.read_decisions(conn).iloc[0]
    assert (row["actions"], row["review_date"], row["owner"]) == (
        "Joint patrol <b>Fri</b>", TODAY.isoformat(), "ptf")
    assert meetings.status_label(row) == (f"closed {days_ago(1).isoformat()}: Escalated "
                                          "(problem-solving case)")
    assert (row["outcome_note"], row["edited_by"]) == ("three meetings running", "chair ana")


def test_tasked_status_marks_places_by_id_and_by_location(target):
    with contextlib.closing(store.connect(target)) as conn:
        first = decide(conn, "P1", days_ago(56))
        decide(conn, "P1", days_ago(28))
        decide(conn, "P2", days_ago(28))
        meetings.close_decision(conn, first, outcome="ongoing")
        decide(conn, "P2", TODAY)  # today's: not an earlier meeting
        decisions = store.read_decisions(conn)
    # a later detection run: new ids, one place over P2's shape, one elsewhere
    later = gpd.GeoDataFrame({"place_id": ["Q7", "Q8"]}, geometry=[
        shapely.box(550, 550, 700, 700), shapely.box(5000, 5000, 5100, 5100)], crs=27700)
    marks = meetings.tasked_status(decisions, before=TODAY, places=later)
    assert sorted(marks.index) == ["P1", "P2", "Q7"]
    assert marks.loc["P1", "times_tasked"] == 2
    assert marks.loc["P1", "status"] == "open"  # the latest decision on it
    assert marks.loc["P1", "tasked"] == (f"tasked {days_ago(28).isoformat()} (Partnership "
                                         "Task Force), open; 2 meetings")
    assert marks.loc["Q7", "last_meeting"] == days_ago(28).isoformat()
    assert meetings.tasked_status(decisions, before=days_ago(56)).empty


def test_the_review_leaves_out_a_stream_seen_in_one_window_only():
    # meeting 1 March, data to 31 March: 31 days each side; the place at (50, 50)
    rows = ([("lbth-asb", "asb", 50.0, "2024-02-10")] * 10
            + [("lbth-asb", "asb", 50.0, "2024-03-10")] * 4
            + [("lbth-asb", "asb", 500.0, "2024-02-10")] * 50
            + [("lbth-asb", "asb", 500.0, "2024-03-10")] * 50
            # a new source loaded from March only: not like with like, left out
            + [("lbth-cctv", "asb", 50.0, "2024-03-12")] * 30
            # a category the place had before only still counts (it is in both windows
            # elsewhere): its disappearance is a real change
            + [("lbth-asb", "drugs", 50.0, "2024-02-12")] * 6
            + [("lbth-asb", "drugs", 500.0, "2024-03-12")] * 6)
    inc = pd.DataFrame(rows, columns=["source", "category", "x", "date"]).assign(
        y=lambda d: d["x"])
    decisions = pd.DataFrame({"meeting_date": ["2024-03-01"], "place_id": ["P1"],
                              "geometry_wkt": [shapely.box(0, 0, 100, 100).wkt],
                              "closed_on": [""], "outcome": [""]})
    ranked = gpd.GeoDataFrame({"rank": [3]}, geometry=[shapely.box(0, 0, 100, 100)],
                              crs=27700)
    row = meetings.review_tasked(decisions, inc, ranked, dt.date(2024, 3, 31)).iloc[0]
    assert (row["n_before"], row["n_after"], row["days"]) == (16, 4, 31)
    assert row["expected"] == pytest.approx(20 * 56 / 106)
    assert row["verdict"].startswith("fewer incidents (4 against 16); fewer than")
    assert (row["status"], row["rank_now"]) == ("open", "3")


def test_task_cli_meetings_edit_close_and_list(target, capsys):
    assert main(["task", "meeting", "new", "--store", target, "--date", "2024-09-05",
                 "--month", "2024-08", "--notes", "=cmd|' /C calc'!A0"]) == 0
    assert "recorded meeting 2024-09-05 (reviewed 2024-08-01 to 2024-08-31)" in \
        capsys.readouterr().out
    assert main(["task", "add", "--store", target, "--place", "P1", "--owner", "ptf",
                 "--actions", "patrols", "--review", "2024-10-01", "--meeting",
                 "2024-09-05"]) == 0
    assert main(["task", "edit", "1", "--store", target, "--owner", "enforcement",
                 "--review", "2024-10-03"]) == 0
    assert main(["task", "close", "1", "--store", target, "--outcome", "resolved",
                 "--note", "no reports since", "--on", "2024-10-03"]) == 0
    capsys.readouterr()
    assert main(["task", "list", "--store", target]) == 0
    assert capsys.readouterr().out.strip() == (
        "2024-09-05 #1 P1 Brick Lane: Enforcement officers; patrols; review 2024-10-03; "
        "closed 2024-10-03: Resolved (no reports since)")
    assert main(["task", "meeting", "list", "--store", target, "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)["meetings"]
    assert [(m["meeting_date"], m["period_end"], m["n_decisions"], m["notes"])
            for m in listed] == [("2024-09-05", "2024-08-31", 1, "=cmd|' /C calc'!A0")]
    for argv, message in (
            (["close", "9", "--outcome", "resolved"], "there is no decision 9"),
            (["close", "1", "--outcome", "resolved", "--on", "2024-09-01"],
             "closing date 2024-09-01 is before the meeting 2024-09-05"),
            (["edit", "1", "--review", "3 Oct"], "--review '3 Oct' is not a date; write "
                                                 "YYYY-MM-DD"),
            (["meeting", "new", "--date", "2024-09-05", "--start", "2024-08-01"],
             "--start and --end go together")):
        assert main(["task", *argv, "--store", target]) == 1
        assert message in capsys.readouterr().err
