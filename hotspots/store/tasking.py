"""Detection runs' places, tasking decisions on them, meetings as records, and the life
of a decision after it is recorded: edited, then closed with an outcome. Every change says
who made it and when, and bumps the decision's ``revision`` so that cached results keyed
on :func:`hotspots.store.version` see it.

A meeting is one row per date: its date and the period it reviewed. A decision belongs
to the meeting of its ``meeting_date`` (recording a decision on a date with no meeting
records one, its period unknown).
"""

from __future__ import annotations

import datetime as dt
import json

import pandas as pd

from ..errors import StoreError

#: How a decision may be closed.
OUTCOMES = {
    "resolved": "Resolved", "ongoing": "Ongoing (closed here, carried on elsewhere)",
    "escalated": "Escalated (problem-solving case)", "no_longer": "No longer a problem",
    "other": "Other",
}


def _now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")


def _user(user: str | None) -> str:
    from . import current_user
    return user or current_user()


def check_date(name: str, value: str) -> str:
    """``value`` if it is an ISO date (YYYY-MM-DD), else a StoreError naming ``name``."""
    try:
        dt.date.fromisoformat(value)
    except (TypeError, ValueError) as exc:
        raise StoreError(f"{name} '{value}' is not a date; write YYYY-MM-DD.") from exc
    if len(value) != 10:
        raise StoreError(f"{name} '{value}' is not a date; write YYYY-MM-DD.")
    return value


def ensure_meeting(conn, meeting_date: str, *, user: str | None = None) -> None:
    """Record a meeting on ``meeting_date`` (period unknown) unless there is one; inside
    the caller's transaction."""
    conn.executemany("INSERT INTO meetings (meeting_date, created_at, created_by) "
                     "VALUES (?, ?, ?) ON CONFLICT (meeting_date) DO NOTHING",
                     [(meeting_date, _now(), _user(user))])


def write_meeting(conn, *, meeting_date: str, period_start: str = "", period_end: str = "",
                  notes: str = "", user: str | None = None) -> int:
    """Record a meeting, or set the period and notes of the one on ``meeting_date``.

    Returns the meeting's id. Raises StoreError for dates that are not ISO dates or a
    period that ends before it starts.
    """
    check_date("meeting date", meeting_date)
    if bool(period_start) != bool(period_end):
        raise StoreError("give both ends of the period the meeting reviewed "
                         f"(start '{period_start}', end '{period_end}'), or neither.")
    if period_start:
        check_date("period start", period_start)
        check_date("period end", period_end)
        if period_end < period_start:
            raise StoreError(f"period end {period_end} is before its start {period_start}.")
    with conn.transaction():
        conn.executemany(
            "INSERT INTO meetings (meeting_date, period_start, period_end, notes, created_at, "
            "created_by) VALUES (?,?,?,?,?,?) ON CONFLICT (meeting_date) DO UPDATE SET "
            "period_start = excluded.period_start, period_end = excluded.period_end, "
            "notes = excluded.notes",
            [(meeting_date, period_start, period_end, notes, _now(), _user(user))])
        return int(conn.query("SELECT meeting_id FROM meetings WHERE meeting_date = ?",
                              (meeting_date,))[0][0])


def read_meetings(conn) -> pd.DataFrame:
    """Every meeting, oldest first: ``meeting_id``, ``meeting_date``, ``period_start``,
    ``period_end`` ('' when unknown), ``notes``, ``created_at``, ``created_by`` and the
    number of decisions recorded at it (``n_decisions``)."""
    frame = conn.frame(
        "SELECT m.meeting_id, m.meeting_date, m.period_start, m.period_end, m.notes, "
        "m.created_at, m.created_by, (SELECT count(*) FROM tasking t WHERE t.meeting_date = "
        "m.meeting_date) AS n_decisions FROM meetings m ORDER BY m.meeting_date")
    return frame.astype({"meeting_id": "int64", "n_decisions": "int64"})


def _decision(conn, decision_id: int) -> tuple[str, str]:
    """(meeting date, closed on) of a decision, or a StoreError naming it."""
    rows = conn.query("SELECT meeting_date, closed_on FROM tasking WHERE decision_id = ?",
                      (int(decision_id),))
    if not rows:
        raise StoreError(f"there is no decision {decision_id}; `hotspots task list` shows "
                         "the decisions and their numbers.")
    return rows[0]


def update_decision(conn, decision_id: int, *, owner: str | None = None,
                    actions: str | None = None, review_date: str | None = None,
                    user: str | None = None) -> None:
    """Change a decision's owner, actions or review date (those given), recording who and
    when. Raises StoreError for an unknown decision, owner or a bad review date."""
    from . import OWNERS
    meeting, _ = _decision(conn, decision_id)
    changes: dict[str, str] = {}
    if owner is not None:
        if owner not in OWNERS:
            raise StoreError(f"owner '{owner}' is not one of {sorted(OWNERS)} "
                             f"({', '.join(OWNERS.values())}).")
        changes["owner"] = owner
    if actions is not None:
        changes["actions"] = actions
    if review_date is not None:
        check_date("review date", review_date)
        if review_date < meeting:
            raise StoreError(f"review date {review_date} is before the meeting {meeting}.")
        changes["review_date"] = review_date
    if not changes:
        raise StoreError(f"nothing to change in decision {decision_id}: give an owner, "
                         "actions or a review date.")
    _set(conn, decision_id, changes, user)


def close_decision(conn, decision_id: int, *, outcome: str, note: str = "",
                   closed_on: str | None = None, user: str | None = None) -> None:
    """Close a decision with an outcome (one of :data:`OUTCOMES`), a free-text note and
    the closing date (default today), recording who and when. A closed decision may be
    closed again to correct its outcome.

    Raises StoreError for an unknown decision or outcome, or a closing date that is not a
    date or is before the meeting.
    """
    meeting, _ = _decision(conn, decision_id)
    if outcome not in OUTCOMES:
        raise StoreError(f"outcome '{outcome}' is not one of {sorted(OUTCOMES)} "
                         f"({', '.join(OUTCOMES.values())}).")
    closed_on = check_date("closing date", closed_on or dt.date.today().isoformat())
    if closed_on < meeting:
        raise StoreError(f"closing date {closed_on} is before the meeting {meeting}.")
    _set(conn, decision_id, {"outcome": outcome, "outcome_note": note,
                             "closed_on": closed_on}, user)


def reopen_decision(conn, decision_id: int, *, user: str | None = None) -> None:
    """Open a closed decision again (its outcome is cleared)."""
    _decision(conn, decision_id)
    _set(conn, decision_id, {"outcome": "", "outcome_note": "", "closed_on": ""}, user)


def _set(conn, decision_id: int, changes: dict[str, str], user: str | None) -> None:
    cols = ", ".join(f"{c} = ?" for c in changes)
    with conn.transaction():
        conn.executemany(
            f"UPDATE tasking SET {cols}, edited_at = ?, edited_by = ?, "
            "revision = revision + 1 WHERE decision_id = ?",
            [(*changes.values(), _now(), _user(user), int(decision_id))])


# -- places and the tasking log ---------------------------------------------------------

#: Who a tasking decision goes to.
OWNERS = {
    "ptf": "Partnership Task Force", "enforcement": "Enforcement officers",
    "neighbourhood": "Neighbourhood Management", "housing": "Housing provider",
    "other": "Other",
}


def write_places(conn, places, *, period: str, start: str, end: str, method: str,
                 params: dict) -> int:
    """Keep a detection run's places (EPSG:27700 WKT) so decisions can refer to them."""
    with conn.transaction():
        run_id = conn.insert(
            'INSERT INTO place_runs (period, start, "end", method, params_json, created_at) '
            "VALUES (?,?,?,?,?,?)", (period, start, end, method, json.dumps(params), _now()),
            "run_id")
        conn.executemany(
            "INSERT INTO places VALUES (?,?,?,?,?,?)",
            [(run_id, r.place_id, i, r.label, int(r.n), r.geometry.wkt)
             for i, r in enumerate(places.itertuples(index=False), start=1)])
    return int(run_id)


def read_places(conn, run_id: int | None = None) -> pd.DataFrame:
    """Places of one detection run (default: the latest), with period and rank."""
    if run_id is None:
        run_id = conn.query("SELECT max(run_id) FROM place_runs")[0][0]
    return conn.frame(
        'SELECT p.*, r.period, r.start, r."end" FROM places p JOIN place_runs r '
        "ON r.run_id = p.run_id WHERE p.run_id = ? ORDER BY rank", [run_id])


def record_decision(conn, *, place_id: str, owner: str, actions: str, review_date: str,
                    meeting_date: str | None = None, run_id: int | None = None,
                    user: str | None = None) -> int:
    """Record a tasking decision on a place of a detection run (default: the latest), with
    who recorded it (``user``, default: the operating system's user) and when.

    Raises
    ------
    StoreError
        unknown place, owner or dates that are not ISO dates.
    """
    if owner not in OWNERS:
        raise StoreError(f"owner '{owner}' is not one of {sorted(OWNERS)} "
                         f"({', '.join(OWNERS.values())}).")
    meeting_date = meeting_date or dt.date.today().isoformat()
    for name, value in (("meeting date", meeting_date), ("review date", review_date)):
        try:
            dt.date.fromisoformat(value)
        except ValueError as exc:
            raise StoreError(f"{name} '{value}' is not a date; write YYYY-MM-DD.") from exc
    if review_date < meeting_date:
        raise StoreError(f"review date {review_date} is before the meeting {meeting_date}.")
    latest = read_places(conn, run_id)
    match = latest.loc[latest["place_id"] == place_id]
    if match.empty:
        period = latest["period"].iloc[0] if len(latest) else None
        which = "the latest detection run" if run_id is None else f"detection run {run_id}"
        raise StoreError(f"place '{place_id}' is not in {which}"
                         + (f" ({period})" if period else " (there is none)")
                         + "; run `hotspots detect` and use one of its place ids.")
    r = match.iloc[0]
    with conn.transaction():
        ensure_meeting(conn, meeting_date, user=user)  # a decision belongs to a meeting
        return int(conn.insert(
            "INSERT INTO tasking (meeting_date, run_id, place_id, label, geometry_wkt, owner, "
            "actions, review_date, recorded_at, recorded_by) VALUES (?,?,?,?,?,?,?,?,?,?)",
            (meeting_date, int(r["run_id"]), place_id, r["label"], r["geometry_wkt"], owner,
             actions, review_date, _now(), _user(user)), "decision_id"))


def read_decisions(conn, *, meeting_date: str | None = None) -> pd.DataFrame:
    """Tasking decisions, all or of one meeting, oldest first, with when and by whom each
    was recorded (``recorded_at``, ``recorded_by``), its outcome once closed (``outcome``,
    ``outcome_note``, ``closed_on``; '' while open) and its last edit (``edited_at``,
    ``edited_by``, ``revision``: :mod:`hotspots.store.tasking`)."""
    sql, args = "SELECT * FROM tasking", []
    if meeting_date:
        sql, args = sql + " WHERE meeting_date = ?", [meeting_date]
    return conn.frame(sql + " ORDER BY meeting_date, decision_id", args)
