"""The incident store that weekly exports accumulate in: the one interface the rest of the
package calls. Nothing outside this subpackage writes SQL.

Two backends with the same schema, behaviour and messages:

* an embedded SQLite file (default ``data/hotspots.sqlite``; :mod:`.sqlite`), in WAL mode
  so the app keeps reading while a load writes;
* a PostgreSQL server with PostGIS for a team (``postgresql://user@host/db``;
  :mod:`.postgres`), incidents with a point geometry and a GiST index.

``connect(target)`` picks the backend: ``target``, else ``$HOTSPOTS_STORE``, else the
default file. Rules every backend keeps:

* (source, ref) is the key: loading the same export again changes nothing; a later
  export with the same source and reference replaces the earlier version (counted).
* The load-order rule: a record's newest version wins by the export's own date
  (``exported_at``). An export dated before the version in the store never replaces it
  unless forced; the result says which versions were kept and from which load.
* Every load is recorded (file, key, time, who, counts), with its problems and its
  rejected rows, so nothing is lost silently.
* A load is one transaction: if it fails midway the store is as it was before. Loads
  are serialised; a second writer waits up to ``BUSY_TIMEOUT_S`` before a clear
  StoreError.
"""

from __future__ import annotations

import contextlib
import getpass
import os
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path

import pandas as pd

from ..errors import StoreError
from ..schema import INCIDENT_COLUMNS, INCIDENT_NUMBERS
from .columnar import month_after
from .loading import STORED_COLUMNS, find_load, preview_load, write_load
from .meta import data_fingerprint, read_backtest, read_meta, write_backtest, write_meta
from .tasking import (
    OUTCOMES,
    OWNERS,
    close_decision,
    read_decisions,
    read_meetings,
    read_places,
    record_decision,
    reopen_decision,
    update_decision,
    write_meeting,
    write_places,
)

__all__ = ["BUSY_TIMEOUT_S", "DEFAULT_STORE", "OWNERS", "STORED_COLUMNS", "StoreError",
           "connect", "connection", "counts_by_source", "current_user", "data_fingerprint",
           "date_range", "engine",
           "exists", "find_load",
           "is_server", "last_date", "last_day", "lsoa_codes", "months", "preview_load",
           "read_backtest", "read_decisions", "read_incidents", "read_loads", "read_meta",
           "read_places", "read_problems", "read_rejected", "record_decision", "rejected_dir",
           "store_name", "store_path", "store_target", "version", "write_backtest", "write_load",
           "write_meta", "write_places"]
__all__ += ["OUTCOMES", "close_decision", "read_meetings", "reopen_decision",
            "update_decision", "write_meeting"]

DEFAULT_STORE = Path("data/hotspots.sqlite")
#: How long a writer waits for another one to finish before giving up, in seconds.
BUSY_TIMEOUT_S = 60.0



def store_target(target: str | Path | None = None) -> str:
    """The store: ``target``, else ``$HOTSPOTS_STORE``, else ``data/hotspots.sqlite``."""
    return str(target or os.environ.get("HOTSPOTS_STORE") or DEFAULT_STORE)


def is_server(target: str | Path | None = None) -> bool:
    """Whether the store is a PostgreSQL server (a ``postgresql://`` URL)."""
    return store_target(target).startswith(("postgresql://", "postgres://"))


def store_path(target: str | Path | None = None) -> Path:
    """The store file of an embedded store."""
    return Path(store_target(target))


def store_name(target: str | Path | None = None) -> str:
    """The store as it may be shown: a server URL without its password."""
    t = store_target(target)
    if is_server(t):
        from urllib.parse import urlsplit, urlunsplit
        u = urlsplit(t)
        if u.password:
            host = u.hostname or ""
            netloc = f"{u.username}@{host}" + (f":{u.port}" if u.port else "")
            t = urlunsplit(u._replace(netloc=netloc))
    return t


def rejected_dir(target: str | Path | None = None) -> Path:
    """Where rejected rows are written: ``rejected/`` next to a store file, ``data/rejected``
    for a server."""
    return Path("data/rejected") if is_server(target) else store_path(target).parent / "rejected"


def connect(target: str | Path | None = None, *, timeout_s: float = BUSY_TIMEOUT_S):
    """Open (creating the tables if needed) the store; see the module docstring.

    A writer waits up to ``timeout_s`` seconds for another writer before StoreError.
    """
    if is_server(target):
        from .postgres import PostgresStore
        return PostgresStore(store_target(target), timeout_s=timeout_s)
    from .sqlite import SQLiteStore
    return SQLiteStore(store_path(target), timeout_s=timeout_s)


@contextlib.contextmanager
def connection(target: str | Path | None = None, *,
               timeout_s: float = BUSY_TIMEOUT_S) -> Iterator:
    """Open ``connect(target)`` for a ``with`` block, closed at its end however it ends.

    Examples
    --------
    ``with store.connection(path) as conn: incidents = store.read_incidents(conn)``
    """
    conn = connect(target, timeout_s=timeout_s)
    try:
        yield conn
    finally:
        conn.close()


def engine(target: str | Path | None = None) -> str:
    """The engine a store target uses, e.g. ``sqlite 3.40.1`` (without connecting to a
    server: ``postgresql``)."""
    if is_server(target):
        return "postgresql+postgis"
    import sqlite3
    return f"sqlite {sqlite3.sqlite_version} (WAL)"


def current_user() -> str:
    """The user running the command, as the operating system names them."""
    try:
        return getpass.getuser()
    except (OSError, KeyError):  # no name for this uid (a bare container)
        return f"uid {os.getuid()}"


# -- reading ----------------------------------------------------------------------------


def read_incidents(conn, *, start: str | None = None, end: str | None = None,
                   categories: Iterable[str] | None = None,
                   columns: Sequence[str] | None = None) -> pd.DataFrame:
    """Incidents with ``start <= date <= end`` (ISO dates, inclusive), optionally of some
    categories, as a DataFrame with :data:`hotspots.schema.INCIDENT_COLUMNS` in order of
    source and reference.

    ``columns`` (some of those columns) reads only these, in no particular order: a step
    that needs a year's points but not their order is spared the sort.

    A SQLite store reads each month from its columnar copy (:mod:`.columnar`: London's
    13-month window in about a fifth of the time of SQL); PostgreSQL by SQL
    (:func:`sql_incidents`). Either way the frame is the same.
    """
    names = list(INCIDENT_COLUMNS if columns is None else columns)
    unknown = [c for c in names if c not in INCIDENT_COLUMNS]
    if unknown or not names:
        raise ValueError(f"columns {unknown or names} are not incident columns; use some of "
                         f"{', '.join(INCIDENT_COLUMNS)}.")
    return conn.incidents(names, start=start, end=end,
                          categories=None if categories is None else list(categories),
                          ordered=columns is None)


def sql_incidents(conn, names: list[str], *, start: str | None, end: str | None,
                  categories: list[str] | None, ordered: bool) -> pd.DataFrame:
    """:func:`read_incidents` by one SQL query (a backend without columnar copies)."""
    where, args = [], []
    if start:
        where.append("date >= ?")
        args.append(start)
    if end:
        where.append("date <= ?")
        args.append(end)
    if categories is not None:
        where.append(f"category IN ({', '.join('?' * len(categories))})" if categories
                     else "1 = 0")
        args.extend(categories)
    sql = f"SELECT {', '.join(names)} FROM incidents"
    if where:
        sql += " WHERE " + " AND ".join(where)
    frame = conn.frame(sql + (" ORDER BY source, ref" if ordered else ""), args)
    return frame.astype({c: t for c, t in INCIDENT_NUMBERS.items() if c in names})



def read_loads(conn) -> pd.DataFrame:
    """Every load, oldest first: file, counts, the export's date, when (``loaded_at``,
    UTC) and who (``loaded_by``)."""
    return conn.frame("SELECT * FROM loads ORDER BY load_id")


def read_problems(conn, load_id: int | None = None) -> pd.DataFrame:
    """Problems found in rejected rows, for one load or all."""
    sql, args = "SELECT * FROM problems", []
    if load_id is not None:
        sql, args = sql + " WHERE load_id = ?", [load_id]
    return conn.frame(sql + " ORDER BY load_id, row", args)


def read_rejected(conn, load_id: int | None = None) -> pd.DataFrame:
    """Rejected rows as read (``raw_json``) with their reasons, for one load or all."""
    sql, args = "SELECT * FROM rejected_rows", []
    if load_id is not None:
        sql, args = sql + " WHERE load_id = ?", [load_id]
    return conn.frame(sql + " ORDER BY load_id, row", args)


def date_range(conn) -> tuple[str | None, str | None]:
    """First and last incident date in the store."""
    # one aggregate per SELECT: each is then a step to one end of the date index, where
    # SQLite answers min and max together by reading every row (0.1 s a million)
    return tuple(conn.query("SELECT (SELECT min(date) FROM incidents), "
                            "(SELECT max(date) FROM incidents)")[0])


def last_day(conn) -> tuple[str | None, bool]:
    """The last incident date and whether a police.uk (month-only) row carries it."""
    last = conn.query("SELECT max(date) FROM incidents")[0][0]
    if last is None:
        return None, False
    # the first such row is enough (a London month's 90k rows share their date)
    return last, bool(conn.query("SELECT EXISTS (SELECT 1 FROM incidents WHERE date = ? "
                                 "AND source = 'policeuk')", (last,))[0][0])


def last_date(conn, *, except_source: str | None = None) -> str | None:
    """The latest incident date, optionally leaving out one source's records."""
    if except_source is None:
        return conn.query("SELECT max(date) FROM incidents")[0][0]
    return conn.query("SELECT max(date) FROM incidents WHERE source != ?",
                      (except_source,))[0][0]


def months(conn) -> list[str]:
    """Months with incidents, newest first: one step of the date index per month (London's
    year: milliseconds; a scan of every row's date took 0.4 s)."""
    found, at = [], ""
    while (first := conn.query("SELECT min(date) FROM incidents WHERE date >= ?",
                               (at,))[0][0]) is not None:
        found.append(first[:7])
        at = month_after(first[:7])
    return found[::-1]


def counts_by_source(conn) -> pd.DataFrame:
    """Incidents per source."""
    return conn.frame("SELECT source, count(*) AS incidents FROM incidents GROUP BY source "
                      "ORDER BY source")


def exists(target: str | Path | None = None) -> bool:
    """Whether there is a store to open (a server is taken to exist)."""
    return is_server(target) or store_path(target).is_file()


def lsoa_codes(conn, *, limit: int = 1000) -> list[str]:
    """Some distinct LSOA codes of the stored incidents (up to ``limit``)."""
    return [r[0] for r in conn.query("SELECT DISTINCT lsoa_code FROM incidents WHERE "
                                     "lsoa_code != '' LIMIT ?", (limit,))]


def version(conn) -> tuple[int, int, int]:
    """What results computed from the store depend on: the number of loads, the latest
    load and the tasking log (decisions, their edits and closings, meetings)."""
    n, last = conn.query("SELECT count(*), coalesce(max(load_id), 0) FROM loads")[0]
    # decisions, their edits and closings, and meetings: each change moves this on
    n_dec = conn.query("SELECT (SELECT count(*) + coalesce(sum(revision), 0) FROM tasking) "
                       "+ (SELECT count(*) FROM meetings)")[0][0]
    return int(n), int(last), int(n_dec)
