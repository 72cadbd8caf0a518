"""The meeting review on the Tasking page: the meeting being prepared, the previous meeting's
tasked places (and earlier ones still open) with their counts before and since tasking
against the rest of the area, this meeting's decisions, and, for the chair, forms to
record a meeting and to edit and close decisions.

UI only: every figure and rule comes from :mod:`hotspots.meetings`, the model the CLI
(``hotspots task ...``) and the pack use. Text from records shows in tables and widgets
(never as markdown or HTML).
"""

from __future__ import annotations

import datetime as dt

import geopandas as gpd
import pandas as pd
import shapely
import streamlit as st

from app_pages import common
from hotspots import meetings, store
from hotspots.errors import HotspotsError
from hotspots.summary import Period, month_period

#: The review's columns, what a chair reads first on the left (no sideways scrolling for
#: the verdict at 1280 px); the expected count is in the verdict when it tells.
REVIEW_COLUMNS = {
    "place_id": "Place", "label": "Where", "n_before": "Before", "n_after": "Since",
    "days": "Days each", "verdict": "What happened", "status": "Status",
    "rank_now": "Rank now", "owner": "Owner", "actions": "Actions",
    "meeting_date": "Tasked at", "review_date": "Review",
}
DECISION_COLUMNS = {"decision_id": "No.", "place_id": "Place", "label": "Where",
                    "owner": "Owner", "actions": "Actions", "review_date": "Review",
                    "status": "Status", "outcome_note": "Outcome notes"}


def _log(version: tuple) -> tuple[list[meetings.Meeting], pd.DataFrame]:
    """The meetings and decisions in the store (``version`` keys the caches that use
    them; decisions, edits and closings each move it on)."""
    conn = store.connect(version[0])
    try:
        return meetings.list_meetings(conn), store.read_decisions(conn)
    finally:
        conn.close()


@st.cache_data(show_spinner="Reviewing the tasked places...")
def review(version: tuple, month: str, categories: tuple[str, ...],
           preparing: dt.date) -> pd.DataFrame:
    """:func:`hotspots.meetings.review_tasked` of the decisions the meeting on
    ``preparing`` reviews, on data to the end of ``month`` (as the pack does)."""
    listed, decisions = _log(version)
    reviewed = meetings.review_decisions(decisions, listed, preparing)
    if reviewed.empty:
        return reviewed
    end = month_period(month).end
    first = min(dt.date.fromisoformat(d) for d in reviewed["meeting_date"])
    start = (first - dt.timedelta(days=max((end - first).days + 1, 0))).replace(day=1)
    inc = common.incidents(version, start.isoformat(), end.isoformat(), categories or None)
    ranked = ranked_places(version, month, categories)
    return meetings.review_tasked(reviewed, inc, ranked, end)


def ranked_places(version: tuple, month: str, categories: tuple[str, ...]
                  ) -> gpd.GeoDataFrame:
    """The ranked places of the pack on screen, with their shapes (EPSG:27700)."""
    try:
        ranked = common.ranking(version, month, categories).ranked
    except HotspotsError:
        return gpd.GeoDataFrame({"rank": []}, geometry=gpd.GeoSeries([], crs=27700))
    return ranked[["place_id", "geometry", "rank"]].copy()


def tasked_marks(version: tuple, places: gpd.GeoDataFrame,
                 preparing: dt.date | None = None) -> pd.Series:
    """For the ranked table: each of ``places`` (place_id, geometry) tasked at a meeting
    before the one being prepared, with its mark ('tasked 2024-08-10 (Partnership Task
    Force), open'); :func:`hotspots.meetings.tasked_status`."""
    listed, decisions = _log(version)
    day = preparing or meetings.meeting_being_prepared(listed, dt.date.today())
    return meetings.tasked_status(decisions, before=day, places=places)["tasked"]


def _in_wards(frame: pd.DataFrame, wards: tuple[str, ...]) -> pd.DataFrame:
    """Decisions whose place lies in one of ``wards`` (all of them when none chosen)."""
    if not wards or frame.empty:
        return frame
    shapes = gpd.GeoDataFrame(frame[["place_id"]].assign(lsoa_code=""),
                              geometry=shapely.from_wkt(frame["geometry_wkt"].to_numpy()),
                              crs=27700)
    return frame.loc[pd.Series(common.area_codes(shapes), index=frame.index).isin(wards)]


def _owner(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.assign(owner=frame["owner"].map(store.OWNERS))


def show(version: tuple, filters: dict) -> None:
    """The meeting review section (called by the Tasking page)."""
    listed, decisions = _log(version)
    today = dt.date.today()
    st.subheader("Meeting review")
    choices = sorted({m.date for m in listed} | {today})
    default = meetings.meeting_being_prepared(listed, today)
    preparing = st.selectbox("Meeting being prepared", choices, index=choices.index(default),
                             key="meeting_preparing", format_func=dt.date.isoformat)
    prev = meetings.previous_meeting(listed, preparing)
    if prev is None:
        st.caption(f"No meeting recorded before {preparing.isoformat()}: nothing to review.")
    else:
        st.caption(f"Previous meeting: {prev.label}. Its tasked places (and earlier ones "
                   "still open): incidents since tasking against as many days before, "
                   "the same sources and categories, judged against the change in the "
                   "rest of the area.")
        table = review(version, filters["month"], filters["categories"], preparing)
        table = _in_wards(table, filters["wards"])
        if table.empty:
            st.write("No tasked places to review for these filters.")
        else:
            st.dataframe(_owner(table)[list(REVIEW_COLUMNS)], hide_index=True,
                         key="meeting_review", column_config=REVIEW_COLUMNS)
    mine = _in_wards(decisions.loc[decisions["meeting_date"] == preparing.isoformat()],
                     filters["wards"])
    st.caption(f"Meeting of {preparing.isoformat()}: {len(mine)} decision(s) recorded.")
    if len(mine):
        st.dataframe(_owner(mine).assign(status=mine.apply(meetings.status_label, axis=1))
                     [list(DECISION_COLUMNS)], hide_index=True, key="meeting_decisions",
                     column_config=DECISION_COLUMNS)
    if common.role() == "chair":
        _chair_forms(decisions, preparing)


def _run(action, message: str) -> None:
    """Carry out a change to the tasking log; rerun with ``message`` or show the error."""
    conn = store.connect(common.store_file())
    try:
        action(conn)
    except (HotspotsError, ValueError) as exc:
        st.error(str(exc))
        return
    finally:
        conn.close()
    st.session_state["meeting_msg"] = message
    st.rerun()


def _chair_forms(decisions: pd.DataFrame, preparing: dt.date) -> None:
    """Record a meeting; edit and close decisions (the chair only)."""
    if "meeting_msg" in st.session_state:
        st.success(st.session_state.pop("meeting_msg"))
    by_id = decisions.set_index("decision_id")

    def name(i: int) -> str:
        r = by_id.loc[i]
        return (f"#{i} {r['meeting_date']} {r['place_id']} {r['label']} "
                f"({meetings.status_label(r)})")

    with st.expander("Record a meeting"), st.form("meeting_new"):
        day = st.date_input("Meeting date", preparing, key="mn_date")
        start = st.date_input("Period reviewed: first day", None, key="mn_start")
        end = st.date_input("Period reviewed: last day", None, key="mn_end")
        notes = st.text_input("Notes", key="mn_notes")
        if st.form_submit_button("Record meeting"):
            period = Period(start, end) if start and end else None
            if bool(start) != bool(end):
                st.error("Give both days of the period reviewed, or neither.")
            else:
                _run(lambda c: meetings.create_meeting(c, day, period=period, notes=notes,
                                                       user=common.user()),
                     f"Meeting of {day.isoformat()} recorded.")
    if decisions.empty:
        return
    ids = by_id.index.tolist()[::-1]  # the latest first
    with st.expander("Edit a decision"):
        pick = st.selectbox("Decision", ids, format_func=name, key="de_id")
        r = by_id.loc[pick]
        with st.form("decision_edit"):  # keyed by decision: its own values as defaults
            owner = st.selectbox("Owner", list(store.OWNERS), format_func=store.OWNERS.get,
                                 index=list(store.OWNERS).index(r["owner"]),
                                 key=f"de_owner_{pick}")
            actions = st.text_area("Actions", r["actions"], key=f"de_actions_{pick}")
            review_day = st.date_input("Review date",
                                       dt.date.fromisoformat(r["review_date"]),
                                       key=f"de_review_{pick}")
            if st.form_submit_button("Save changes"):
                _run(lambda c: meetings.edit_decision(c, int(pick), owner=owner,
                                                      actions=actions, review_date=review_day,
                                                      user=common.user()),
                     f"Decision {pick} changed.")
    with st.expander("Close a decision"), st.form("decision_close"):
        pick_c = st.selectbox("Decision", ids, format_func=name, key="dc_id")
        outcome = st.selectbox("Outcome", list(store.OUTCOMES),
                               format_func=store.OUTCOMES.get, key="dc_outcome")
        note = st.text_area("What happened", key="dc_note")
        on = st.date_input("Closed on", dt.date.today(), key="dc_on")
        if st.form_submit_button("Close decision"):
            _run(lambda c: meetings.close_decision(c, int(pick_c), outcome=outcome,
                                                   note=note, closed_on=on,
                                                   user=common.user()),
                 f"Decision {pick_c} closed: {store.OUTCOMES[outcome]}.")
