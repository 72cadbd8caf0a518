"""``hotspots task ...``: the tasking log from the command line, through the same model
(:mod:`hotspots.meetings`) as the app and the pack.

    hotspots task meeting new --date 2024-09-05 --month 2024-08
    hotspots task meeting list
    hotspots task decide --place P5339-1819 --owner ptf --actions "..." --review 2024-10-03
        [--meeting 2024-09-05]          (``add`` is the same command, its older name)
    hotspots task edit 7 [--owner ..] [--actions ..] [--review ..]
    hotspots task close 7 --outcome resolved [--note ..] [--on 2024-10-03]
    hotspots task list [--meeting 2024-09-05]
"""

from __future__ import annotations

import datetime as dt
import json
from typing import TYPE_CHECKING

from . import store
from .summary import month_period, parse_period

if TYPE_CHECKING:  # imported when a task command runs: every command builds this parser
    from . import meetings


def _day(flag: str, value: str) -> dt.date:
    """A required date option (argparse has made sure it is given)."""
    day = _date(flag, value)
    assert day is not None
    return day


def _date(flag: str, value: str | None) -> dt.date | None:
    if value is None:
        return None
    try:
        day = dt.date.fromisoformat(value)
    except ValueError:
        day = None
    if day is None or len(value) != 10:
        raise ValueError(f"{flag} '{value}' is not a date; write YYYY-MM-DD.")
    return day


def _period(args):
    if args.month and (args.start or args.end):
        raise ValueError("give the period reviewed either as --month or as --start/--end, "
                         "not both.")
    if args.month:
        return month_period(args.month)
    if args.start or args.end:
        if not (args.start and args.end):
            raise ValueError("--start and --end go together (inclusive dates, YYYY-MM-DD).")
        return parse_period(args.start, args.end)
    return None


def _meeting_text(m: meetings.Meeting) -> str:
    return f"meeting {m.label}: {m.n_decisions} decision(s)" + (f"; {m.notes}" if m.notes
                                                                 else "")


def _decision_text(r) -> str:
    from . import meetings

    return (f"{r['meeting_date']} #{r['decision_id']} {r['place_id']} {r['label']}: "
            f"{store.OWNERS.get(r['owner'], r['owner'])}; {r['actions']}; review "
            f"{r['review_date']}; {meetings.status_label(r)}"
            + (f" ({r['outcome_note']})" if r["outcome_note"] else ""))


def _meeting_cmd(conn, args) -> tuple[dict, str]:
    from . import meetings

    if args.meeting_command == "new":
        m = meetings.create_meeting(conn, _day("--date", args.date), period=_period(args),
                                    notes=args.notes or "")
        return ({"meeting_id": m.meeting_id, "meeting_date": m.date.isoformat()},
                f"recorded {_meeting_text(m)}")
    listed = meetings.list_meetings(conn)
    out = {"meetings": [{"meeting_id": m.meeting_id, "meeting_date": m.date.isoformat(),
                         "period_start": m.period_start and m.period_start.isoformat(),
                         "period_end": m.period_end and m.period_end.isoformat(),
                         "notes": m.notes, "n_decisions": m.n_decisions} for m in listed]}
    return out, "\n".join(_meeting_text(m) for m in listed) or "no meetings recorded"


def run(args) -> int:
    """Carry out one ``hotspots task`` command."""
    from . import meetings

    conn = store.connect(args.store)
    try:
        cmd = args.task_command
        if cmd == "meeting":
            out, text = _meeting_cmd(conn, args)
        elif cmd in ("add", "decide"):
            decision = meetings.decide(
                conn, place_id=args.place, owner=args.owner, actions=args.actions,
                review_date=_day("--review", args.review),
                meeting=_date("--meeting", args.meeting) or dt.date.today())
            out = {"decision_id": decision, "store": store.store_name(args.store)}
            text = f"decision {decision} recorded for place {args.place}"
        elif cmd == "edit":
            meetings.edit_decision(conn, args.decision, owner=args.owner, actions=args.actions,
                                   review_date=_date("--review", args.review))
            out, text = {"decision_id": args.decision}, f"decision {args.decision} changed"
        elif cmd == "close":
            meetings.close_decision(conn, args.decision, outcome=args.outcome,
                                    note=args.note or "", closed_on=_date("--on", args.on))
            out = {"decision_id": args.decision, "outcome": args.outcome}
            text = f"decision {args.decision} closed: {store.OUTCOMES[args.outcome]}"
        else:
            meeting = _date("--meeting", args.meeting)
            table = store.read_decisions(conn,
                                         meeting_date=meeting.isoformat() if meeting else None)
            out = {"decisions": table.drop(columns="geometry_wkt").to_dict("records")}
            text = "\n".join(_decision_text(r) for r in table.to_dict("records")) or \
                "no decisions recorded"
    finally:
        conn.close()
    print(json.dumps(out)) if args.json else print(text)
    return 0


def add_parser(sub, common) -> None:
    """The ``task`` command and its subcommands (``common`` adds --json and --store)."""
    k = sub.add_parser("task", help="the tasking log: meetings, and decisions on places")
    ksub = k.add_subparsers(dest="task_command", required=True)
    km = ksub.add_parser("meeting", help="meetings: their dates and the periods reviewed")
    kmsub = km.add_subparsers(dest="meeting_command", required=True)
    kn = kmsub.add_parser("new", help="record a meeting (or set the period of one)")
    kn.add_argument("--date", required=True, help="meeting date, YYYY-MM-DD")
    kn.add_argument("--month", help="the month it reviewed, YYYY-MM")
    kn.add_argument("--start", help="or the first day it reviewed, YYYY-MM-DD")
    kn.add_argument("--end", help="and the last day, YYYY-MM-DD")
    kn.add_argument("--notes", help="free text")
    common(kn)
    common(kmsub.add_parser("list", help="meetings recorded, oldest first"))
    for name, text in (("decide", "record a decision on a place of the latest detect run"),
                       ("add", "the same as decide")):
        ka = ksub.add_parser(name, help=text)
        ka.add_argument("--place", required=True, help="place id, e.g. P5339-1819")
        ka.add_argument("--owner", required=True, choices=sorted(store.OWNERS))
        ka.add_argument("--actions", required=True, help="what will be done")
        ka.add_argument("--review", required=True, help="review date, YYYY-MM-DD")
        ka.add_argument("--meeting", help="meeting date, YYYY-MM-DD (default today)")
        common(ka)
    ke = ksub.add_parser("edit", help="change a decision's owner, actions or review date")
    ke.add_argument("decision", type=int, help="decision number (from `task list`)")
    ke.add_argument("--owner", choices=sorted(store.OWNERS))
    ke.add_argument("--actions")
    ke.add_argument("--review", help="review date, YYYY-MM-DD")
    common(ke)
    kc = ksub.add_parser("close", help="close a decision with an outcome")
    kc.add_argument("decision", type=int, help="decision number (from `task list`)")
    kc.add_argument("--outcome", required=True, choices=sorted(store.OUTCOMES))
    kc.add_argument("--note", help="what happened, free text")
    kc.add_argument("--on", help="closing date, YYYY-MM-DD (default today)")
    common(kc)
    kl = ksub.add_parser("list", help="decisions recorded, with their status")
    kl.add_argument("--meeting", help="only this meeting, YYYY-MM-DD")
    common(kl)
    k.set_defaults(func=lambda args, config: run(args))
