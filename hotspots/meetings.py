"""Tasking meetings as records: the one model the CLI (``hotspots task ...``), the pack and
the app use.

* A meeting has a date and the period it reviewed (:class:`Meeting`).
* The *previous meeting* is the latest meeting before the one being prepared
  (:func:`previous_meeting`), never the latest date typed in: a decision recorded today
  belongs to today's meeting and does not hide the review of the one before.
* Decisions belong to a meeting; they can be edited and closed with an outcome
  (:func:`edit_decision`, :func:`close_decision`).
* The review (:func:`review_tasked`) counts incidents inside each tasked place before and
  since its meeting, like with like, against the rest of the area.
* :func:`tasked_status` says, place by place, whether a place was tasked at an earlier
  meeting and how that decision stands, so the ranked table can mark it.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely

from . import store
from .summary import Period, in_period
from .trends import poisson_change_test, relative_change_test

__all__ = ["Meeting", "close_decision", "create_meeting", "decide", "edit_decision",
           "list_meetings", "meeting_being_prepared", "previous_meeting", "review_decisions",
           "review_tasked", "status_label", "tasked_status"]


@dataclass(frozen=True)
class Meeting:
    """A tasking meeting: its date and the period it reviewed (None when not recorded)."""

    meeting_id: int
    date: dt.date
    period_start: dt.date | None = None
    period_end: dt.date | None = None
    notes: str = ""
    n_decisions: int = 0

    @property
    def label(self) -> str:
        """'2024-09-05 (reviewed 2024-08-01 to 2024-08-31)'."""
        if self.period_start is None or self.period_end is None:
            return f"{self.date.isoformat()} (period not recorded)"
        return (f"{self.date.isoformat()} (reviewed {self.period_start.isoformat()} to "
                f"{self.period_end.isoformat()})")


def _day(value: str) -> dt.date | None:
    return dt.date.fromisoformat(value) if value else None


def list_meetings(conn) -> list[Meeting]:
    """Every meeting in the store, oldest first."""
    return [Meeting(int(r.meeting_id), dt.date.fromisoformat(r.meeting_date),
                    _day(r.period_start), _day(r.period_end), r.notes, int(r.n_decisions))
            for r in store.read_meetings(conn).itertuples()]


def create_meeting(conn, date: dt.date, *, period: Period | None = None, notes: str = "",
                   user: str | None = None) -> Meeting:
    """Record a meeting on ``date`` that reviewed ``period`` (or set the period and notes
    of the meeting already on that date). Raises StoreError for a period that ends
    before it starts."""
    store.write_meeting(conn, meeting_date=date.isoformat(),
                        period_start=period.start.isoformat() if period else "",
                        period_end=period.end.isoformat() if period else "",
                        notes=notes, user=user)
    return next(m for m in list_meetings(conn) if m.date == date)


def meeting_being_prepared(meetings: Sequence[Meeting], today: dt.date) -> dt.date:
    """The date of the meeting being prepared: the first recorded meeting on or after
    ``today``, else ``today``."""
    coming = [m.date for m in meetings if m.date >= today]
    return min(coming) if coming else today


def previous_meeting(meetings: Sequence[Meeting], meeting: Meeting | dt.date
                     ) -> Meeting | None:
    """The latest meeting strictly before ``meeting`` (a Meeting or a date), or None."""
    day = meeting.date if isinstance(meeting, Meeting) else meeting
    earlier = [m for m in meetings if m.date < day]
    return max(earlier, key=lambda m: m.date) if earlier else None


def decide(conn, *, meeting: dt.date, place_id: str, owner: str, actions: str,
           review_date: dt.date, run_id: int | None = None, user: str | None = None) -> int:
    """Record a decision at the meeting on ``meeting`` (recorded as a meeting if it is
    not yet); see :func:`hotspots.store.record_decision`. Returns its id."""
    return store.record_decision(conn, place_id=place_id, owner=owner, actions=actions,
                                 review_date=review_date.isoformat(),
                                 meeting_date=meeting.isoformat(), run_id=run_id, user=user)


def edit_decision(conn, decision_id: int, *, owner: str | None = None,
                  actions: str | None = None, review_date: dt.date | None = None,
                  user: str | None = None) -> None:
    """Change a decision's owner, actions or review date (the ones given)."""
    store.update_decision(conn, decision_id, owner=owner, actions=actions,
                          review_date=review_date.isoformat() if review_date else None,
                          user=user)


def close_decision(conn, decision_id: int, *, outcome: str, note: str = "",
                   closed_on: dt.date | None = None, user: str | None = None) -> None:
    """Close a decision with an outcome (:data:`hotspots.store.OUTCOMES`), free text and
    its closing date (default today)."""
    store.close_decision(conn, decision_id, outcome=outcome, note=note,
                         closed_on=closed_on.isoformat() if closed_on else None, user=user)


def status_label(row) -> str:
    """'open' or 'closed 2024-10-02: Resolved' for a decision (a row of
    :func:`hotspots.store.read_decisions`)."""
    if not row["closed_on"]:
        return "open"
    return f"closed {row['closed_on']}: {store.OUTCOMES.get(row['outcome'], row['outcome'])}"


def review_decisions(decisions: pd.DataFrame, meetings: Sequence[Meeting],
                     preparing: dt.date) -> pd.DataFrame:
    """The decisions the meeting on ``preparing`` reviews: those of the previous meeting,
    and those of earlier meetings still open (a decision stays open until closed), oldest
    meeting first. Decisions recorded at or after ``preparing`` are not reviewed."""
    prev = previous_meeting(meetings, preparing)
    if prev is None or decisions.empty:
        return decisions.iloc[0:0]
    day = prev.date.isoformat()
    keep = (decisions["meeting_date"] == day) | (
        (decisions["meeting_date"] < day) & (decisions["closed_on"] == ""))
    return decisions.loc[keep].sort_values(["meeting_date", "decision_id"])


def tasked_status(decisions: pd.DataFrame, *, before: dt.date,
                  places: gpd.GeoDataFrame | None = None) -> pd.DataFrame:
    """Places tasked at meetings before ``before`` and how they stand, to mark them in a
    ranked table.

    A decision marks the place with its ``place_id`` and, when ``places`` (with
    ``place_id`` and geometry in EPSG:27700) is given, every one of them its tasked shape
    overlaps: place ids of a later detection run need not match the earlier ones.

    Returns
    -------
    DataFrame indexed by ``place_id`` with ``times_tasked`` (meetings it was tasked at),
    ``last_meeting`` (ISO date), ``owner``, ``status`` ('open' or 'closed DATE: outcome',
    of the latest decision) and ``tasked`` (a one-line mark such as 'tasked 2024-08-10
    (PTF), open; 2 meetings').
    """
    cols = ["times_tasked", "last_meeting", "owner", "status", "tasked"]
    earlier = decisions.loc[decisions["meeting_date"] < before.isoformat()]
    if earlier.empty:
        return pd.DataFrame(columns=cols, index=pd.Index([], name="place_id"))
    pairs = [(p, i) for i, p in zip(earlier.index, earlier["place_id"], strict=True)]
    if places is not None and len(places):
        shapes = shapely.from_wkt(earlier["geometry_wkt"].to_numpy())
        tree = shapely.STRtree(np.asarray(places.geometry.values))
        hit_d, hit_p = tree.query(shapes, predicate="intersects")
        ids = places["place_id"].to_numpy()
        pairs += [(ids[p], earlier.index[d]) for d, p in zip(hit_d, hit_p, strict=True)]
    rows = []
    for place_id, idx in pd.DataFrame(pairs, columns=["place_id", "i"]).drop_duplicates() \
            .groupby("place_id")["i"]:
        mine = earlier.loc[idx].sort_values(["meeting_date", "decision_id"])
        last = mine.iloc[-1]
        times = mine["meeting_date"].nunique()
        status = status_label(last)
        owner = store.OWNERS.get(last["owner"], last["owner"])
        rows.append({"place_id": place_id, "times_tasked": times,
                     "last_meeting": last["meeting_date"], "owner": owner, "status": status,
                     "tasked": f"tasked {last['meeting_date']} ({owner}), {status}"
                               + (f"; {times} meetings" if times > 1 else "")})
    return pd.DataFrame(rows, columns=["place_id", *cols]).set_index("place_id")


def _streams(inc: pd.DataFrame) -> np.ndarray:
    """A code per row for its stream: its source, and category where there is one."""
    keys = ["source", "category"] if "category" in inc.columns else ["source"]
    return pd.MultiIndex.from_frame(inc[keys].astype(str)).factorize()[0] if len(inc) \
        else np.zeros(0, dtype=np.intp)


def _in_both(stream: np.ndarray, since: np.ndarray, earlier: np.ndarray) -> np.ndarray:
    """Rows of a stream with records in both windows anywhere in the area: a stream in
    one window only (a source not loaded for the other, or a police.uk month that falls in
    one window only) is left out of both."""
    return np.isin(stream, np.intersect1d(stream[since], stream[earlier]))


def review_tasked(decisions: pd.DataFrame, inc: pd.DataFrame, ranked: pd.DataFrame,
                  data_end: dt.date) -> pd.DataFrame:
    """Counts inside each tasked place before and since its meeting, like with like.

    * The same number of days each side: from the meeting to ``data_end`` (``days``), and
      as many days before the meeting.
    * The same streams: a source (and category) with records in only one of the two
      windows anywhere in the area is left out of both. police.uk rows (dated by month)
      count in a window only when their whole month lies inside it
      (:func:`hotspots.summary.in_period`): dated the 1st, they would otherwise all fall
      before a mid-month meeting.
    * Against the rest of the area: the exact Poisson test (``p_value``) and the same
      against the rest of the area (``expected``, ``p_borough``:
      :func:`hotspots.trends.relative_change_test`), so that the season and area-wide
      swings do not pass for the effect of the tasking.

    The verdict is judged against the rest of the area. The few places tasked at one
    meeting were chosen beforehand, each with its own question, so no multiple-testing
    adjustment. ``rank_now`` is the rank of the places of ``ranked`` it overlaps;
    ``status`` the decision's standing (:func:`status_label`) when ``decisions`` carries
    ``closed_on``.
    """
    rows = []
    xs, ys = inc["x"].to_numpy(), inc["y"].to_numpy()
    stream = _streams(inc)
    for d in decisions.itertuples():
        meeting = dt.date.fromisoformat(d.meeting_date)
        days = (data_end - meeting).days + 1
        geom = shapely.from_wkt(d.geometry_wkt)
        inside = shapely.contains_xy(geom, xs, ys) | shapely.intersects_xy(geom, xs, ys)
        if days <= 0:
            counts = {"n_before": 0, "n_after": 0, "p_value": 1.0, "expected": 0.0,
                      "p_borough": 1.0, "verdict": "no data since the meeting yet",
                      "verdict_brief": "no data since the meeting yet"}
        else:
            since = np.asarray(in_period(inc, Period(meeting, data_end)))
            earlier = np.asarray(in_period(inc, Period(meeting - dt.timedelta(days=days),
                                                       meeting - dt.timedelta(days=1))))
            alike = _in_both(stream, since, earlier)
            counts = _judge(int((inside & since & alike).sum()),
                            int((inside & earlier & alike).sum()),
                            int((~inside & since & alike).sum()),
                            int((~inside & earlier & alike).sum()))
        hit = ranked.loc[ranked.geometry.intersects(geom)]
        row = {**d._asdict(), **counts, "days": max(days, 0),
               "rank_now": (", ".join(str(r) for r in hit["rank"].head(3))
                            if len(hit) else "not ranked")}
        if "closed_on" in decisions.columns:
            row["status"] = status_label(row)
        rows.append(row)
    return pd.DataFrame(rows)


def _judge(after: int, before: int, rest_after: int, rest_before: int) -> dict:
    """The counts, tests and verdict of one tasked place (see :func:`review_tasked`)."""
    p = poisson_change_test(after, before)
    expected, p_borough = relative_change_test(after, before, rest_after, rest_before)
    change = "fewer" if after < before else "more" if after > before else "the same"
    if rest_after == 0 or rest_before == 0:
        judged = ("more than chance" if p_borough < 0.05 else "within chance") + (
            " (the rest of the borough had no incidents in one window)")
    elif p_borough >= 0.05:
        judged = "in line with the change in the rest of the borough"
    else:
        judged = ("more than" if after > expected else "fewer than") + (
            " the change in the rest of the borough would give")
    verdict = f"{change} incidents ({after} against {before}); {judged}"
    if rest_after and rest_before and p_borough < 0.05:
        verdict += f" ({expected:.0f})"
    return {"n_before": before, "n_after": after, "p_value": p, "expected": expected,
            "p_borough": p_borough, "verdict": verdict,
            "verdict_brief": f"{change} incidents; {judged}"}  # no counts, for partners
