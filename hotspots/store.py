"""The incident store: one SQLite database file that weekly exports accumulate in.

* (source, ref) is the key: loading the same export again changes nothing; a later
  export with the same source and reference replaces the earlier version (counted).
* The load-order rule: a record's newest version wins by the export's own date
  (``exported_at``). An export dated before the version in the store never replaces it
  unless forced; the result says which versions were kept and from which load.
* Every load is recorded (file, key, time, who, counts), with its problems and its
  rejected rows, so nothing is lost silently.
* A load is one transaction: if it fails midway the store is as it was before.
* The file is in WAL mode: readers (the app) keep reading while a load writes, and a
  second writer waits up to ``BUSY_TIMEOUT_S`` before a clear StoreError.
"""

from __future__ import annotations

import datetime as dt
import getpass
import json
import os
import sqlite3
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import pandas as pd

from .errors import StoreError
from .ingest import IngestResult
from .schema import INCIDENT_COLUMNS

DEFAULT_STORE = Path("data/hotspots.sqlite")
#: How long a writer waits for another one to finish before giving up, in seconds.
BUSY_TIMEOUT_S = 60.0

_SCHEMA = """
CREATE TABLE IF NOT EXISTS loads (
    load_id INTEGER PRIMARY KEY,
    file TEXT NOT NULL, path TEXT NOT NULL, content_sha256 TEXT NOT NULL,
    format TEXT NOT NULL, loaded_at TEXT NOT NULL,
    n_read INTEGER NOT NULL, n_accepted INTEGER NOT NULL, n_rejected INTEGER NOT NULL,
    n_inserted INTEGER NOT NULL, n_replaced INTEGER NOT NULL, n_unchanged INTEGER NOT NULL,
    n_unassigned INTEGER NOT NULL, lsoa_agreement REAL,
    load_key TEXT NOT NULL DEFAULT '', exported_at TEXT NOT NULL DEFAULT '',
    loaded_by TEXT NOT NULL DEFAULT '', n_kept_newer INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS loads_key ON loads(load_key);
CREATE TABLE IF NOT EXISTS incidents (
    source TEXT NOT NULL, ref TEXT NOT NULL,
    category TEXT NOT NULL, category_raw TEXT NOT NULL,
    period TEXT NOT NULL, date TEXT NOT NULL, hour INTEGER NOT NULL,
    x REAL NOT NULL, y REAL NOT NULL,
    location TEXT NOT NULL, location_key TEXT NOT NULL, caller_key TEXT NOT NULL,
    description TEXT NOT NULL, quantity INTEGER NOT NULL,
    ward_code TEXT NOT NULL, lsoa_code TEXT NOT NULL, source_lsoa TEXT NOT NULL,
    file TEXT NOT NULL, row INTEGER NOT NULL,
    row_hash INTEGER NOT NULL, load_id INTEGER NOT NULL REFERENCES loads(load_id),
    exported_at TEXT NOT NULL DEFAULT '',
    PRIMARY KEY (source, ref)
);
CREATE INDEX IF NOT EXISTS incidents_date ON incidents(date);
CREATE TABLE IF NOT EXISTS problems (
    load_id INTEGER NOT NULL REFERENCES loads(load_id), file TEXT NOT NULL,
    row INTEGER NOT NULL, field TEXT NOT NULL, value TEXT NOT NULL,
    reason TEXT NOT NULL, message TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS place_runs (
    run_id INTEGER PRIMARY KEY, period TEXT NOT NULL, start TEXT NOT NULL, end TEXT NOT NULL,
    method TEXT NOT NULL, params_json TEXT NOT NULL, created_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS places (
    run_id INTEGER NOT NULL REFERENCES place_runs(run_id), place_id TEXT NOT NULL,
    rank INTEGER NOT NULL, label TEXT NOT NULL, n INTEGER NOT NULL,
    geometry_wkt TEXT NOT NULL, PRIMARY KEY (run_id, place_id)
);
CREATE TABLE IF NOT EXISTS tasking (
    decision_id INTEGER PRIMARY KEY, meeting_date TEXT NOT NULL, run_id INTEGER NOT NULL,
    place_id TEXT NOT NULL, label TEXT NOT NULL, geometry_wkt TEXT NOT NULL,
    owner TEXT NOT NULL, actions TEXT NOT NULL, review_date TEXT NOT NULL,
    recorded_at TEXT NOT NULL, recorded_by TEXT NOT NULL DEFAULT ''
);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS rejected_rows (
    load_id INTEGER NOT NULL REFERENCES loads(load_id), row INTEGER NOT NULL,
    reasons TEXT NOT NULL, raw_json TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS backtests (
    selection TEXT NOT NULL, fingerprint TEXT NOT NULL, created_at TEXT NOT NULL,
    result_json TEXT NOT NULL, PRIMARY KEY (selection, fingerprint)
);
"""

#: Columns added since the first stores were written: (table, column, declaration).
_ADDED = [("loads", "load_key", "TEXT NOT NULL DEFAULT ''"),
          ("loads", "exported_at", "TEXT NOT NULL DEFAULT ''"),
          ("loads", "loaded_by", "TEXT NOT NULL DEFAULT ''"),
          ("loads", "n_kept_newer", "INTEGER NOT NULL DEFAULT 0"),
          ("incidents", "exported_at", "TEXT NOT NULL DEFAULT ''"),
          ("tasking", "recorded_by", "TEXT NOT NULL DEFAULT ''")]

#: Columns whose change makes a newer export a replacement (not file/row: moving a row
#: within an export is no change to the incident).
_CONTENT = [c for c in INCIDENT_COLUMNS if c not in ("file", "row")]


def store_path(path: str | Path | None = None) -> Path:
    """The store file: ``path``, else ``$HOTSPOTS_STORE``, else ``data/hotspots.sqlite``."""
    return Path(path or os.environ.get("HOTSPOTS_STORE") or DEFAULT_STORE)


def _busy(p, exc: sqlite3.OperationalError, timeout_s: float) -> StoreError:
    return StoreError(f"the store {p} is busy: another load (or a tasking decision) has been "
                      f"writing to it for more than {timeout_s:g} s ({exc}). Nothing was "
                      "written; try again when the other load has finished.")


def connect(path: str | Path | None = None, *, timeout_s: float = BUSY_TIMEOUT_S
            ) -> sqlite3.Connection:
    """Open (creating if needed) the store in WAL mode and make sure its tables exist.

    A writer waits up to ``timeout_s`` seconds for another writer before StoreError.
    """
    p = store_path(path)
    try:
        p.parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(p, isolation_level=None, timeout=timeout_s, factory=_Connection)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")
        conn.executescript(_SCHEMA)
        for table, column, decl in _ADDED:
            have = {r[1] for r in conn.execute(f"PRAGMA table_info({table})")}
            if column not in have:
                conn.execute(f"ALTER TABLE {table} ADD COLUMN {column} {decl}")
        conn.execute("CREATE TEMP TABLE IF NOT EXISTS staging AS SELECT * FROM incidents "
                     "WHERE 0")
    except sqlite3.OperationalError as exc:
        if "locked" in str(exc) or "busy" in str(exc):
            raise _busy(p, exc, timeout_s) from exc
        raise StoreError(f"cannot open the store {p}: {exc}. Check the path given to --store "
                         "and that the folder is writable.") from exc
    except (sqlite3.Error, OSError) as exc:
        raise StoreError(f"cannot open the store {p}: {exc}. Check the path given to --store "
                         "and that the folder is writable.") from exc
    conn.busy_timeout_s = timeout_s
    return conn


class _Connection(sqlite3.Connection):
    busy_timeout_s = BUSY_TIMEOUT_S


def current_user() -> str:
    """The user running the command, as the operating system names them."""
    try:
        return getpass.getuser()
    except (OSError, KeyError):  # no name for this uid (a bare container)
        return f"uid {os.getuid()}"


def _row_hash(frame: pd.DataFrame) -> np.ndarray:
    return pd.util.hash_pandas_object(frame[_CONTENT], index=False).to_numpy().view(np.int64)


def _columns(frame: pd.DataFrame, cols: list[str]) -> Iterable[tuple]:
    """Rows as tuples of plain Python values, built column by column (fast)."""
    return zip(*(frame[c].to_numpy().tolist() for c in cols), strict=True)


def find_load(conn: sqlite3.Connection, load_key: str) -> dict | None:
    """The latest load with this key (file, mapping and configuration), with its counts
    and rejected rows by reason; None if there is none."""
    row = conn.execute(
        "SELECT load_id, format, n_read, n_accepted, n_rejected, n_unassigned, "
        "lsoa_agreement FROM loads WHERE load_key = ? ORDER BY load_id DESC LIMIT 1",
        (load_key,)).fetchone()
    if row is None:
        return None
    keys = ("load_id", "format", "read", "accepted", "rejected", "unassigned",
            "lsoa_agreement")
    out = dict(zip(keys, row, strict=True))
    out["reasons"] = dict(conn.execute(
        "SELECT reason, count(DISTINCT row) FROM problems WHERE load_id = ? GROUP BY reason "
        "ORDER BY reason", (row[0],)).fetchall())
    return out


def write_load(conn: sqlite3.Connection, result: IngestResult, *, path: str,
               content_sha256: str, load_key: str | None = None, exported_at: str = "",
               force_older: bool = False, user: str | None = None) -> dict:
    """Write one ingested export in a single transaction.

    Parameters
    ----------
    content_sha256 : the file's SHA-256.
    load_key : what makes two loads the same (the file with its mapping and the
        configuration; default ``content_sha256``). A key loaded before is not loaded again.
    exported_at : the export's own date, ISO (``YYYY-MM-DDTHH:MM:SS``); a record in the
        store from a later-dated export is kept unless ``force_older``.
    user : who loads (default: the operating system's user).

    Returns
    -------
    dict with ``load_id`` (None when this key was loaded before), ``inserted``,
    ``replaced``, ``unchanged``, ``kept_newer`` (list of ``{"load_id", "exported_at",
    "n"}``: versions kept because their export is dated after this one) and
    ``already_loaded`` (the earlier load of the same key, if any).
    """
    inc = result.incidents
    load_key = load_key or content_sha256
    prior = find_load(conn, load_key)
    if prior is not None:
        return {"load_id": None, "inserted": 0, "replaced": 0, "unchanged": prior["accepted"],
                "kept_newer": [], "already_loaded": prior["load_id"]}
    staged = inc.assign(row_hash=_row_hash(inc), exported_at=exported_at)
    cols = list(INCIDENT_COLUMNS) + ["row_hash", "exported_at"]
    try:
        conn.execute("BEGIN IMMEDIATE")
        conn.execute("DELETE FROM staging")
        conn.executemany(
            f"INSERT INTO staging ({', '.join(cols)}, load_id) VALUES "
            f"({', '.join('?' * len(cols))}, 0)", _columns(staged, cols))
        older = "0" if force_older else "i.exported_at > s.exported_at"
        unchanged, replaced, n_kept = conn.execute(
            "SELECT coalesce(sum(i.row_hash = s.row_hash), 0), "
            f"coalesce(sum(i.row_hash != s.row_hash AND NOT ({older})), 0), "
            f"coalesce(sum(i.row_hash != s.row_hash AND ({older})), 0) "
            "FROM staging s JOIN incidents i USING (source, ref)").fetchone()
        kept = [{"load_id": r[0], "exported_at": r[1], "n": r[2]} for r in conn.execute(
            "SELECT i.load_id, i.exported_at, count(*) FROM staging s JOIN incidents i "
            f"USING (source, ref) WHERE i.row_hash != s.row_hash AND ({older}) "
            "GROUP BY i.load_id, i.exported_at ORDER BY i.load_id")] if n_kept else []
        inserted = len(inc) - unchanged - replaced - n_kept
        unassigned = int((inc["lsoa_code"] == "").sum())  # no area of the finest layer
        load_id = conn.execute(
            "INSERT INTO loads (file, path, content_sha256, format, loaded_at, n_read, "
            "n_accepted, n_rejected, n_inserted, n_replaced, n_unchanged, n_unassigned, "
            "lsoa_agreement, load_key, exported_at, loaded_by, n_kept_newer) "
            "VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
            (result.file, path, content_sha256, result.format, _now(), result.n_read,
             len(inc), len(result.rejected), inserted, int(replaced), int(unchanged),
             unassigned, result.lsoa_agreement, load_key, exported_at,
             user or current_user(), int(n_kept))).lastrowid
        conn.execute(
            "INSERT OR REPLACE INTO incidents SELECT s.source, s.ref, s.category, "
            "s.category_raw, s.period, s.date, s.hour, s.x, s.y, s.location, s.location_key, "
            "s.caller_key, s.description, s.quantity, s.ward_code, s.lsoa_code, "
            "s.source_lsoa, s.file, s.row, s.row_hash, ?, s.exported_at FROM staging s "
            "LEFT JOIN incidents i USING (source, ref) "
            f"WHERE i.row_hash IS NULL OR (i.row_hash != s.row_hash AND NOT ({older}))",
            (load_id,))
        # an unchanged version seen in a later export carries that export's date, so an
        # export dated between the two cannot revert it
        conn.execute(
            "UPDATE incidents SET exported_at = s.exported_at, load_id = ? FROM staging s "
            "WHERE incidents.source = s.source AND incidents.ref = s.ref AND "
            "incidents.row_hash = s.row_hash AND incidents.exported_at < s.exported_at",
            (load_id,))
        conn.executemany("INSERT INTO problems VALUES (?,?,?,?,?,?,?)",
                         ((load_id, *r) for r in result.problems.itertuples(index=False,
                                                                            name=None)))
        raw_cols = [c for c in result.rejected.columns if c not in ("row", "reasons")]
        conn.executemany(
            "INSERT INTO rejected_rows VALUES (?,?,?,?)",
            ((load_id, int(r["row"]), r["reasons"],
              json.dumps({c: r[c] for c in raw_cols}, ensure_ascii=False))
             for r in result.rejected.to_dict("records")))
        conn.execute("DELETE FROM staging")
        conn.execute("COMMIT")
    except sqlite3.OperationalError as exc:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        if "locked" in str(exc) or "busy" in str(exc):
            raise _busy(path_of(conn), exc, conn.busy_timeout_s) from exc
        raise
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise
    return {"load_id": int(load_id), "inserted": int(inserted), "replaced": int(replaced),
            "unchanged": int(unchanged), "kept_newer": kept, "already_loaded": None}


def path_of(conn: sqlite3.Connection) -> str:
    """The file a connection has open."""
    return conn.execute("PRAGMA database_list").fetchone()[2]


def read_incidents(conn: sqlite3.Connection, *, start: str | None = None,
                   end: str | None = None, categories: Iterable[str] | None = None
                   ) -> pd.DataFrame:
    """Incidents with ``start <= date <= end`` (ISO dates, inclusive), optionally of some
    categories, as a DataFrame with :data:`hotspots.schema.INCIDENT_COLUMNS`."""
    where, args = [], []
    if start:
        where.append("date >= ?")
        args.append(start)
    if end:
        where.append("date <= ?")
        args.append(end)
    if categories is not None:
        cats = list(categories)
        where.append(f"category IN ({', '.join('?' * len(cats))})")
        args.extend(cats)
    sql = f"SELECT {', '.join(INCIDENT_COLUMNS)} FROM incidents"
    if where:
        sql += " WHERE " + " AND ".join(where)
    return pd.read_sql_query(sql + " ORDER BY source, ref", conn, params=args)


def read_loads(conn: sqlite3.Connection) -> pd.DataFrame:
    """Every load, oldest first: file, counts, when (``loaded_at``, UTC) and who
    (``loaded_by``)."""
    return pd.read_sql_query("SELECT * FROM loads ORDER BY load_id", conn)


def read_problems(conn: sqlite3.Connection, load_id: int | None = None) -> pd.DataFrame:
    """Problems found in rejected rows, for one load or all."""
    sql, args = "SELECT * FROM problems", []
    if load_id is not None:
        sql, args = sql + " WHERE load_id = ?", [load_id]
    return pd.read_sql_query(sql + " ORDER BY load_id, row", conn, params=args)


def date_range(conn: sqlite3.Connection) -> tuple[str | None, str | None]:
    """First and last incident date in the store."""
    return conn.execute("SELECT min(date), max(date) FROM incidents").fetchone()


#: Who a tasking decision goes to.
OWNERS = {
    "ptf": "Partnership Task Force", "enforcement": "Enforcement officers",
    "neighbourhood": "Neighbourhood Management", "housing": "Housing provider",
    "other": "Other",
}


def _now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")


def write_places(conn: sqlite3.Connection, places, *, period: str, start: str, end: str,
                 method: str, params: dict) -> int:
    """Keep a detection run's places (EPSG:27700 WKT) so decisions can refer to them."""
    with conn:
        run_id = conn.execute(
            "INSERT INTO place_runs (period, start, end, method, params_json, created_at) "
            "VALUES (?,?,?,?,?,?)",
            (period, start, end, method, json.dumps(params), _now())).lastrowid
        conn.executemany(
            "INSERT INTO places VALUES (?,?,?,?,?,?)",
            ((run_id, r.place_id, i, r.label, int(r.n), r.geometry.wkt)
             for i, r in enumerate(places.itertuples(index=False), start=1)))
    return int(run_id)


def read_places(conn: sqlite3.Connection, run_id: int | None = None) -> pd.DataFrame:
    """Places of one detection run (default: the latest), with period and rank."""
    if run_id is None:
        run_id = conn.execute("SELECT max(run_id) FROM place_runs").fetchone()[0]
    return pd.read_sql_query(
        "SELECT p.*, r.period, r.start, r.end FROM places p JOIN place_runs r USING (run_id) "
        "WHERE run_id = ? ORDER BY rank", conn, params=[run_id])


def record_decision(conn: sqlite3.Connection, *, place_id: str, owner: str, actions: str,
                    review_date: str, meeting_date: str | None = None,
                    run_id: int | None = None, user: str | None = None) -> int:
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
    with conn:
        return int(conn.execute(
            "INSERT INTO tasking (meeting_date, run_id, place_id, label, geometry_wkt, owner, "
            "actions, review_date, recorded_at, recorded_by) VALUES (?,?,?,?,?,?,?,?,?,?)",
            (meeting_date, int(r["run_id"]), place_id, r["label"], r["geometry_wkt"], owner,
             actions, review_date, _now(), user or current_user())).lastrowid)


def read_decisions(conn: sqlite3.Connection, *, meeting_date: str | None = None
                   ) -> pd.DataFrame:
    """Tasking decisions, all or of one meeting, oldest first, with when and by whom each
    was recorded (``recorded_at``, ``recorded_by``)."""
    sql, args = "SELECT * FROM tasking", []
    if meeting_date:
        sql, args = sql + " WHERE meeting_date = ?", [meeting_date]
    return pd.read_sql_query(sql + " ORDER BY meeting_date, decision_id", conn, params=args)


def read_meta(conn: sqlite3.Connection) -> dict[str, str]:
    """The store's key/value facts (the area it was built for: see hotspots.area)."""
    return dict(conn.execute("SELECT key, value FROM meta").fetchall())


def write_meta(conn: sqlite3.Connection, **values: str) -> None:
    """Set some key/value facts of the store (others are kept)."""
    with conn:
        conn.executemany("INSERT OR REPLACE INTO meta VALUES (?, ?)",
                         [(k, str(v)) for k, v in values.items()])


# --- backtest results (hotspots.forecast), reused until the store's data change --------


def _data_fingerprint(conn: sqlite3.Connection) -> str:
    load, n = conn.execute("SELECT (SELECT max(load_id) FROM loads), count(*) FROM incidents"
                           ).fetchone()
    return f"load{load or 0}:n{n}"


def write_backtest(conn: sqlite3.Connection, selection: str, result: dict) -> None:
    """Keep a backtest result for a selection (sources, categories, options) against the
    store's current data; an earlier result for the same selection and data is replaced."""
    conn.execute("INSERT OR REPLACE INTO backtests VALUES (?, ?, ?, ?)",
                 (selection, _data_fingerprint(conn), _now(),
                  json.dumps(result, allow_nan=True)))


def read_backtest(conn: sqlite3.Connection, selection: str) -> dict | None:
    """The latest backtest result kept for a selection, or None when there is none for the
    store's current data (a load since then changes the data and so the answer)."""
    row = conn.execute("SELECT result_json FROM backtests WHERE selection = ? AND fingerprint "
                       "= ? ORDER BY created_at DESC LIMIT 1",
                       (selection, _data_fingerprint(conn))).fetchone()
    return json.loads(row[0]) if row else None
