"""The embedded store: one SQLite file in WAL mode (readers never wait for a load; a
second writer waits up to the busy timeout, then gets a StoreError saying so)."""

from __future__ import annotations

import contextlib
import json
import sqlite3
from collections.abc import Iterable, Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from ..errors import StoreError
from ..ingest.text import few_values, telling_word
from . import columnar

SCHEMA = """
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
    exported_at TEXT NOT NULL DEFAULT ''
);
CREATE TABLE IF NOT EXISTS problems (
    load_id INTEGER NOT NULL REFERENCES loads(load_id), file TEXT NOT NULL,
    row INTEGER NOT NULL, field TEXT NOT NULL, value TEXT NOT NULL,
    reason TEXT NOT NULL, message TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS place_runs (
    run_id INTEGER PRIMARY KEY, period TEXT NOT NULL, start TEXT NOT NULL,
    "end" TEXT NOT NULL, method TEXT NOT NULL, params_json TEXT NOT NULL,
    created_at TEXT NOT NULL
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
    recorded_at TEXT NOT NULL, recorded_by TEXT NOT NULL DEFAULT '',
    outcome TEXT NOT NULL DEFAULT '', outcome_note TEXT NOT NULL DEFAULT '',
    closed_on TEXT NOT NULL DEFAULT '', edited_at TEXT NOT NULL DEFAULT '',
    edited_by TEXT NOT NULL DEFAULT '', revision INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS meetings (
    meeting_id INTEGER PRIMARY KEY, meeting_date TEXT NOT NULL UNIQUE,
    period_start TEXT NOT NULL DEFAULT '', period_end TEXT NOT NULL DEFAULT '',
    notes TEXT NOT NULL DEFAULT '', created_at TEXT NOT NULL,
    created_by TEXT NOT NULL DEFAULT ''
);
CREATE TABLE IF NOT EXISTS rejected_rows (
    load_id INTEGER NOT NULL REFERENCES loads(load_id), row INTEGER NOT NULL,
    reasons TEXT NOT NULL, raw_json TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
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
          ("tasking", "recorded_by", "TEXT NOT NULL DEFAULT ''"),
          *[("tasking", c, "TEXT NOT NULL DEFAULT ''") for c in
            ("outcome", "outcome_note", "closed_on", "edited_at", "edited_by")],
          ("tasking", "revision", "INTEGER NOT NULL DEFAULT 0")]

#: Stores written before meetings were records: one meeting for each date decisions were
#: recorded at (its period unknown).
BACKFILL_MEETINGS = (
    "INSERT OR IGNORE INTO meetings (meeting_date, created_at, created_by) SELECT "
    "meeting_date, min(recorded_at), '' FROM tasking WHERE meeting_date NOT IN "
    "(SELECT meeting_date FROM meetings) GROUP BY meeting_date")


def _locked(exc: sqlite3.OperationalError) -> bool:
    return "locked" in str(exc) or "busy" in str(exc)


class SQLiteStore:
    """One connection to a store file; see :mod:`hotspots.store` for the interface."""

    def __init__(self, path: Path, *, timeout_s: float):
        self.name, self.timeout_s = str(path), timeout_s
        #: indexes of incidents a bulk insert set aside in this transaction (their SQL)
        self._set_aside: dict[str, str] = {}
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            self.conn = sqlite3.connect(path, isolation_level=None, timeout=timeout_s)
            # a new store's pages: 16 KB (rows of ~300 bytes; a 200k-row load measured
            # 15% faster than with 4 KB); an existing file keeps its own
            self.conn.execute("PRAGMA page_size=16384")
            self.conn.execute("PRAGMA journal_mode=WAL")
            self.conn.execute("PRAGMA synchronous=NORMAL")  # durable at checkpoints, in WAL
            self.conn.execute("PRAGMA cache_size=-262144")  # 256 MB of pages, not 2 MB
            self.conn.execute("PRAGMA temp_store=MEMORY")
            had_meetings = self.conn.execute(
                "SELECT 1 FROM sqlite_master WHERE name = 'meetings'").fetchone()
            self.conn.executescript(SCHEMA + columnar.TABLE + columnar.TRIGGERS)
            self.conn.execute(DATE_INDEX)
            # the key (source, ref): a named unique index, which a bulk insert can build
            # after its rows; a store made before it keeps its table's PRIMARY KEY
            self._key_index = not self.conn.execute(
                "SELECT 1 FROM sqlite_master WHERE name = 'sqlite_autoindex_incidents_1'"
            ).fetchone()
            if self._key_index:
                self.conn.execute(INDEXES["incidents_key"])
            for table, column, decl in _ADDED:
                have = {r[1] for r in self.conn.execute(f"PRAGMA table_info({table})")}
                if column not in have:
                    self.conn.execute(f"ALTER TABLE {table} ADD COLUMN {column} {decl}")
            if not had_meetings:
                self.conn.execute(BACKFILL_MEETINGS)
        except sqlite3.OperationalError as exc:
            if _locked(exc):
                raise self._busy(exc) from exc
            raise self._cannot_open(exc) from exc
        except (sqlite3.Error, OSError) as exc:
            raise self._cannot_open(exc) from exc

    def _cannot_open(self, exc) -> StoreError:
        return StoreError(f"cannot open the store {self.name}: {exc}. Check the path given to "
                          "--store and that the folder is writable.")

    def _busy(self, exc) -> StoreError:
        return StoreError(f"the store {self.name} is busy: another load (or a tasking "
                          f"decision) has been writing to it for more than {self.timeout_s:g} s "
                          f"({exc}). Nothing was written; try again when the other load has "
                          "finished.")

    def close(self) -> None:
        self.conn.close()

    def engine(self) -> str:
        return f"sqlite {sqlite3.sqlite_version} (WAL)"

    # plain SQL, "?" placeholders
    def query(self, sql: str, args: Iterable = ()) -> list[tuple]:
        return self.conn.execute(sql, tuple(args)).fetchall()

    def frame(self, sql: str, args: Iterable = ()) -> pd.DataFrame:
        return pd.read_sql_query(sql, self.conn, params=list(args))

    def incidents(self, names: list[str], *, start: str | None, end: str | None,
                  categories: list[str] | None, ordered: bool) -> pd.DataFrame:
        """Incidents as :func:`hotspots.store.read_incidents` reads them: from each
        month's columnar copy (:mod:`.columnar`)."""
        return columnar.read(self.conn, names, start=start, end=end, categories=categories,
                           ordered=ordered, busy_timeout_ms=int(self.timeout_s * 1000))

    def insert(self, sql: str, args: Iterable, id_column: str) -> int:
        rowid = self.conn.execute(sql, tuple(args)).lastrowid
        if rowid is None:
            raise RuntimeError(f"no row was inserted by: {sql}")
        return int(rowid)

    def executemany(self, sql: str, rows: Iterable[tuple]) -> None:
        self.conn.executemany(sql, rows)

    @contextlib.contextmanager
    def transaction(self, *, load: bool = False) -> Iterator[None]:
        """One write transaction, taken at once (BEGIN IMMEDIATE) so two writers queue.
        The indexes a bulk insert set aside (:meth:`upsert_incidents`) are built again
        before the commit, in the same transaction (the key's refuses a repeated key: the
        load is then rolled back)."""
        self._set_aside.clear()
        try:
            self.conn.execute("BEGIN IMMEDIATE")
            yield
            self._rebuild()
            self.conn.execute("COMMIT")
        except sqlite3.OperationalError as exc:
            if self.conn.in_transaction:
                self.conn.execute("ROLLBACK")
            if _locked(exc):
                raise self._busy(exc) from exc
            raise
        except BaseException:
            if self.conn.in_transaction:
                self.conn.execute("ROLLBACK")
            raise
        finally:
            self._set_aside.clear()

    def _rebuild(self, name: str | None = None) -> None:
        """Build again the indexes set aside (or only ``name``), in the transaction."""
        for index in [name] if name else list(self._set_aside):
            if index in self._set_aside:
                self.conn.execute(self._set_aside.pop(index))

    def _set_aside_for(self, n_rows: int, *, keys_needed: bool) -> None:
        """Before a bulk insert of ``n_rows``: set aside the indexes it is cheaper to build
        once after the rows are in than to keep up row by row (1M rows: the date index
        0.4 s against 2-5 s; the key 1.9 s against 3.4 s): the date index when the rows
        are a quarter of those stored or more, the key when they are as many or more and
        nothing is looked up by key (``keys_needed`` false: none of the rows replaces
        one stored). Only within a transaction, which builds them again before it ends;
        a lookup by key meanwhile builds the key first (:meth:`_keys`)."""
        if not self.conn.in_transaction:
            return
        stored = self._rows_estimate()
        wanted = {"incidents_date": n_rows * BULK_FRACTION >= stored,
                  "incidents_key": self._key_index and not keys_needed and n_rows >= stored}
        for name, bulk in wanted.items():
            if bulk and name not in self._set_aside:
                self.conn.execute(f"DROP INDEX IF EXISTS {name}")
                self._set_aside[name] = INDEXES[name]

    def _keys(self) -> None:
        """The key index, before a lookup by (source, ref)."""
        self._rebuild("incidents_key")

    # loads
    def existing(self, keys: pd.DataFrame) -> pd.DataFrame:
        """Stored source, ref, row_hash, exported_at and load_id of these keys."""
        parts = []
        self._keys()
        for source, refs in keys.groupby("source", sort=False)["ref"]:
            if not self.conn.execute("SELECT 1 FROM incidents WHERE source = ? LIMIT 1",
                                     (source,)).fetchone():
                continue  # a source's first load: nothing to look up
            rows = self.conn.execute(
                "SELECT ref, row_hash, exported_at, load_id FROM incidents "
                "WHERE source = ? AND ref IN (SELECT value FROM json_each(?))",
                (source, json.dumps(refs.tolist()))).fetchall()
            ref, row_hash, exported_at, load_id = zip(*rows, strict=True) if rows else [()] * 4
            parts.append(pd.DataFrame({
                "source": source, "ref": np.array(ref, dtype=object),
                "row_hash": np.array(row_hash, dtype=np.int64),
                "exported_at": np.array(exported_at, dtype=object),
                "load_id": np.array(load_id, dtype=np.int64)}))
        return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(
            columns=["source", "ref", "row_hash", "exported_at", "load_id"])

    def restamp(self, keys: pd.DataFrame, *, exported_at: str, load_id: int) -> None:
        """Give the stored incidents of these keys (source, ref) a later export's date
        and load: one statement per source (1M rows: a row at a time took ~15 s)."""
        self._keys()
        for source, refs in keys.groupby("source", sort=False)["ref"]:
            self.conn.execute(
                "UPDATE incidents SET exported_at = ?, load_id = ? WHERE source = ? AND ref "
                "IN (SELECT value FROM json_each(?))",
                (exported_at, load_id, source, json.dumps(refs.tolist())))

    def upsert_incidents(self, rows: pd.DataFrame, *, replace: bool = True) -> None:
        """Insert or (with ``replace``) replace whole incidents (columns in table order).

        The stored versions of replaced incidents are deleted first; then every row goes
        in as new (by date and reference: :func:`_insert_order`), in batches of
        :data:`INSERT_BATCH` rows, with the values every row shares (source, file, load,
        export date, ...) written once into the statement, not bound row by row."""
        if replace:
            self._keys()
            self.conn.executemany("DELETE FROM incidents WHERE source = ? AND ref = ?",
                                  zip(rows["source"].tolist(), rows["ref"].tolist(),
                                      strict=True))
        self._set_aside_for(len(rows), keys_needed=replace)
        shared = {c: v for c in rows.columns if (v := _shared_value(rows[c])) is not None}
        bound = [_Bound(rows[c]) for c in rows.columns if c not in shared]
        sql = (f"INSERT INTO incidents ({', '.join([b.name for b in bound] + list(shared))}) "
               f"VALUES ({', '.join(['?'] * len(bound) + list(shared.values()))})")
        order = _insert_order(rows)
        for start in range(0, len(rows), INSERT_BATCH):
            at = order[start:start + INSERT_BATCH]
            self.conn.executemany(sql, zip(*(b.values(at) for b in bound), strict=True))
        columnar.append(self.conn, rows)

    def _rows_estimate(self) -> int:
        """The incidents stored, or more (the largest rowid: no count of the table)."""
        return int(self.conn.execute("SELECT coalesce(max(rowid), 0) FROM incidents"
                                     ).fetchone()[0])


#: Rows bound per executemany: the rows' Python values exist for one batch at a time.
INSERT_BATCH = 100_000
#: An insert of at least 1/BULK_FRACTION of the rows stored builds the date index after
#: its rows are in, not as they go in.
BULK_FRACTION = 4
#: The indexes of incidents a bulk insert may set aside, by name.
INDEXES = {"incidents_date": "CREATE INDEX IF NOT EXISTS incidents_date ON incidents(date)",
           "incidents_key": "CREATE UNIQUE INDEX IF NOT EXISTS incidents_key ON "
                            "incidents(source, ref)"}
DATE_INDEX = INDEXES["incidents_date"]


def _insert_order(rows: pd.DataFrame) -> np.ndarray:
    """The order rows go into the table: by date, then by reference (by 8 of its bytes:
    :func:`telling_word`). A date's rows lie together (a date range is read from few
    pages), and the key and date indexes are kept up or built from sorted runs: 1M
    police.uk rows' two indexes built in 1.2 s, not 2.4 s (a sort by the whole
    reference costs more than it saves)."""
    dates = pd.factorize(rows["date"], sort=True)[0]
    word = telling_word(rows["ref"])
    order = np.argsort(word) if word is not None else np.arange(len(rows))
    if len(dates) and dates.max() < 2**16:
        dates = dates.astype(np.uint16)  # sorted by radix
    return order[np.argsort(dates[order], kind="stable")]


class _Bound:
    """A column bound row by row, its values as Python values a batch of rows at a
    time; Arrow text of few distinct values as one Python string per distinct value,
    not one per row (less to make and free)."""

    def __init__(self, column: pd.Series):
        self.name = str(column.name)
        self.distinct: np.ndarray | None = None
        self.codes = self.plain = np.zeros(0)
        self.arrow: pa.Array | None = None
        enc = few_values(column)
        if enc is not None:
            self.distinct = np.array(enc.dictionary.to_pylist(), dtype=object)
            self.codes = enc.indices.to_numpy(zero_copy_only=False)
        elif isinstance(column.array, pd.arrays.ArrowStringArray):
            arrow = pa.array(column.array)
            self.arrow = arrow.combine_chunks() if isinstance(arrow, pa.ChunkedArray) else arrow
        else:
            self.plain = column.to_numpy()

    def values(self, at: np.ndarray) -> list:
        """The values of the rows at positions ``at``."""
        if self.distinct is not None:
            return self.distinct[self.codes[at]].tolist()
        if self.arrow is not None:
            return self.arrow.take(pa.array(at)).to_numpy(zero_copy_only=False).tolist()
        return self.plain[at].tolist()


def _shared_value(column: pd.Series) -> str | None:
    """The SQL literal of the value every row of ``column`` has, if they all have one
    that is text (without NUL) or an integer; else None (the values are then bound)."""
    if not len(column):
        return None
    first = column.iloc[0]
    if isinstance(first, str):
        if "\x00" in first:
            return None
        values = column.array
        if isinstance(values, pd.arrays.ArrowStringArray):
            arr = pa.array(values)
            same = not arr.null_count and pc.all(pc.equal(arr, pa.scalar(first))).as_py()
        else:
            same = bool((column.to_numpy(dtype=object) == first).all())
        return "'" + first.replace("'", "''") + "'" if same else None
    if isinstance(first, int | np.integer) and not isinstance(first, bool | np.bool_):
        return str(int(first)) if bool((column.to_numpy() == first).all()) else None
    return None
