"""A columnar copy of each month's incidents inside the SQLite store, so a read of a year
does not cost a year of SQL rows.

Reading rows out of SQLite costs about 0.27 µs a value (``fetchall``) and as much again
to make pandas columns: London's 13-month ranking window (1.08M rows, 11 columns) took
about 6 s that way. The same rows kept as Arrow IPC blocks (zstd) read back in about
1.5 s, most of it making the Python strings pandas holds. So:

* a load keeps the rows it inserts as one more block (a *part*) of each month they fall
  in (:func:`append`: 1.1-1.4 s per 1M rows, in its transaction);
* a read (:func:`read`) takes each month it needs from its parts, and a month whose
  parts do not hold all its rows (stored before this, or after a replaced record) from
  SQL, keeping that month as one block for the next read; a month of more than
  :data:`MAX_PARTS` parts is kept again as one block too.

A block is served only while it is the month's rows:

* each part records how many incidents it holds (``n``), and a read counts the month's
  rows again through the date index (a few ms a month): the parts serve only if they
  add up to it (an insert by another program changes the count);
* deleting or changing a stored incident fires a trigger that deletes its month's
  parts (:data:`TRIGGERS`), whichever program wrote it (an older hotspots too): a
  replaced record is a delete and an insert, which together may leave the count as it
  was;
* a block is written in the read's own transaction, which SQLite refuses to turn into a
  write if a load has landed since the read began (WAL: ``SQLITE_BUSY_SNAPSHOT``), so a
  block made from rows that a load has since changed is never kept. Nor does the read
  wait for a writer: the block is then simply not kept.

Frames are the same, value for value and dtype for dtype, as the SQL read gives them
(``tests/test_store.py``); PostgreSQL keeps the SQL read.
"""

from __future__ import annotations

import io
import logging
import sqlite3
from collections.abc import Sequence

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from ..schema import INCIDENT_COLUMNS, INCIDENT_NUMBERS

log = logging.getLogger(__name__)

#: A month kept in more parts than this (a part per load: daily or weekly exports) is
#: gathered into one by the next read that can write it.
MAX_PARTS = 8

#: The layout of a block: bumped when the incident columns or their types change (a block
#: of another layout is made again).
FORMAT = 1

SCHEMA = pa.schema([(c, pa.from_numpy_dtype(INCIDENT_NUMBERS[c]) if c in INCIDENT_NUMBERS
                     else pa.string()) for c in INCIDENT_COLUMNS])

#: The content columns: changing one in place changes the month's copy.
_CONTENT = ", ".join(INCIDENT_COLUMNS)

TABLE = """
CREATE TABLE IF NOT EXISTS incident_months (
    month TEXT NOT NULL, part INTEGER NOT NULL, n INTEGER NOT NULL,
    format INTEGER NOT NULL, block BLOB NOT NULL, PRIMARY KEY (month, part)
);
"""

#: Deleting or changing an incident deletes its month's parts (and those of the month it moves to).
TRIGGERS = f"""
CREATE TRIGGER IF NOT EXISTS incident_months_delete AFTER DELETE ON incidents BEGIN
    DELETE FROM incident_months WHERE month = substr(old.date, 1, 7);
END;
CREATE TRIGGER IF NOT EXISTS incident_months_update AFTER UPDATE OF {_CONTENT} ON incidents
BEGIN
    DELETE FROM incident_months WHERE month IN (substr(old.date, 1, 7),
                                                substr(new.date, 1, 7));
END;
"""


def read(db: sqlite3.Connection, names: Sequence[str], *, start: str | None,
         end: str | None, categories: list[str] | None, ordered: bool,
         busy_timeout_ms: int) -> pd.DataFrame:
    """The incidents with ``start <= date <= end`` (either open), of ``categories`` (all
    when None), columns ``names``; ordered by source and reference when ``ordered``
    (else by month). All read in one transaction (one view of the data), which also keeps
    the blocks made for months that had none, when it can without waiting."""
    own = not db.in_transaction
    if own:
        db.execute("BEGIN")
    try:
        counts = _counts(db, start, end) if categories != [] else {}
        kept = _kept(db, counts)
        wanted = {*names, "date", *(["category"] if categories is not None else []),
                  *(["source", "ref"] if ordered else [])}
        needed = [c for c in INCIDENT_COLUMNS if c in wanted]  # one schema for every part
        fields = [INCIDENT_COLUMNS.index(c) for c in needed]
        parts, made = [], {}
        for month in counts:
            if month in kept and len(kept[month]) > MAX_PARTS:  # gathered into one
                made[month] = table = _decode(kept[month], list(range(len(SCHEMA))))
                parts.append(table.select(needed))
            elif month in kept:
                parts.append(_decode(kept[month], fields))
            else:
                made[month] = table = _from_sql(db, month)
                parts.append(table.select(needed))
        if made and own:
            _keep(db, made, busy_timeout_ms)
    finally:
        if own and db.in_transaction:
            db.execute("ROLLBACK")  # read only, or a refused write
    return _frame(parts, names, start, end, categories, ordered)


def month_after(month: str) -> str:
    """The month after ``month`` (both ``YYYY-MM``)."""
    year, mon = int(month[:4]), int(month[5:7])
    return f"{year + mon // 12:04d}-{mon % 12 + 1:02d}"


def _counts(db: sqlite3.Connection, start: str | None, end: str | None) -> dict[str, int]:
    """The months from ``start`` to ``end`` (within the stored dates) that have
    incidents, with how many (counted through the date index: about 5 ms a month)."""
    first, last = db.execute("SELECT (SELECT min(date) FROM incidents), "
                             "(SELECT max(date) FROM incidents)").fetchone()
    if first is None:
        return {}
    month, stop = max(first, start or first)[:7], min(last, end or last)[:7]
    counts = {}
    while month <= stop:
        after = month_after(month)
        n = db.execute("SELECT count(*) FROM incidents WHERE date >= ? AND date < ?",
                       (month, after)).fetchone()[0]
        if n:
            counts[month] = int(n)
        month = after
    return counts


def _kept(db: sqlite3.Connection, counts: dict[str, int]) -> dict[str, list[bytes]]:
    """The blocks kept for these months that still hold all their rows."""
    if not counts:
        return {}
    parts: dict[str, list[bytes]] = {}
    held: dict[str, int] = {}
    for month, n, block in db.execute(
            f"SELECT month, n, block FROM incident_months WHERE format = ? AND month IN "
            f"({', '.join('?' * len(counts))}) ORDER BY month, part", (FORMAT, *counts)):
        parts.setdefault(month, []).append(block)
        held[month] = held.get(month, 0) + n
    return {month: blocks for month, blocks in parts.items() if held[month] == counts[month]}


def _decode(blocks: list[bytes], fields: list[int]) -> pa.Table:
    options = pa.ipc.IpcReadOptions(included_fields=fields)
    return pa.concat_tables([pa.ipc.open_file(pa.BufferReader(b), options=options).read_all()
                             for b in blocks])


def _from_sql(db: sqlite3.Connection, month: str) -> pa.Table:
    """One month's incidents from SQL, every column, in the store's own order."""
    rows = db.execute(f"SELECT {_CONTENT} FROM incidents WHERE date >= ? AND date < ?",
                      (month, month_after(month))).fetchall()
    columns = list(zip(*rows, strict=True)) if rows else [()] * len(SCHEMA)
    return pa.table([pa.array(col, type=f.type) for col, f in zip(columns, SCHEMA,
                                                                   strict=True)],
                    schema=SCHEMA)


def _encode(table: pa.Table) -> bytes:
    sink = io.BytesIO()
    with pa.ipc.new_file(sink, SCHEMA,
                         options=pa.ipc.IpcWriteOptions(compression="zstd")) as writer:
        writer.write_table(table)
    return sink.getvalue()


def _keep(db: sqlite3.Connection, made: dict[str, pa.Table], busy_timeout_ms: int) -> None:
    """Keep the blocks made by this read, in its transaction: refused (and not kept) if
    a load landed since the read began or is writing now."""
    rows = [(month, 0, table.num_rows, FORMAT, _encode(table)) for month, table in made.items()]
    db.execute("PRAGMA busy_timeout = 0")
    try:
        db.executemany("DELETE FROM incident_months WHERE month = ?", [(m,) for m in made])
        db.executemany("INSERT INTO incident_months VALUES (?, ?, ?, ?, ?)", rows)
        db.execute("COMMIT")
    except sqlite3.Error as exc:  # busy, a newer snapshot, a read-only file
        log.info("the columnar copy of %s was not kept (%s)", ", ".join(made), exc)
    finally:
        db.execute(f"PRAGMA busy_timeout = {busy_timeout_ms}")


def append(db: sqlite3.Connection, rows: pd.DataFrame) -> None:
    """Keep the incidents a load inserts (``rows``, in its transaction, after any it
    replaces were deleted) as one more part of each month's copy: a month whose parts
    held all its rows before still does, and the first read after the load is served
    from the copies (not a month of SQL rows each)."""
    if not len(rows):
        return
    table = pa.Table.from_pandas(rows[list(INCIDENT_COLUMNS)], preserve_index=False)
    table = table.cast(SCHEMA)
    month = pc.utf8_slice_codeunits(table["date"], 0, 7)
    months = pc.unique(month).to_pylist()
    for m in months:  # a month's file (police.uk) is its own part: no copy of its rows
        part = table if len(months) == 1 else table.filter(pc.equal(month, pa.scalar(m)))
        db.execute("INSERT INTO incident_months SELECT ?, coalesce(max(part), -1) + 1, ?, ?, ? "
                   "FROM incident_months WHERE month = ?",
                   (m, part.num_rows, FORMAT, _encode(part), m))


def _frame(parts: list[pa.Table], names: Sequence[str], start: str | None, end: str | None,
           categories: list[str] | None, ordered: bool) -> pd.DataFrame:
    """The rows wanted of the months read, as the SQL read gives them."""
    if not parts:
        return pd.DataFrame({c: pd.Series([], dtype=_dtype(c)) for c in names})
    table = pa.concat_tables(parts)
    keep = None
    first, last = pc.min_max(table["date"]).values()
    if start and first.as_py() < start:  # only the months at the ends hold rows to leave
        keep = pc.greater_equal(table["date"], pa.scalar(start))
    if end and last.as_py() > end:
        upto = pc.less_equal(table["date"], pa.scalar(end))
        keep = upto if keep is None else pc.and_(keep, upto)
    if categories is not None:
        of = pc.is_in(table["category"], value_set=pa.array(categories, pa.string()))
        keep = of if keep is None else pc.and_(keep, of)
    if keep is not None:
        table = table.filter(keep)
    if ordered:  # SQLite's BINARY collation is the UTF-8 bytes' order, as Arrow's
        table = table.take(pc.sort_indices(table, sort_keys=[("source", "ascending"),
                                                             ("ref", "ascending")]))
    # text of few values (a category, a month, an LSOA) as one Python string per value;
    # a record's own text (its reference, its place) one per row: finding repeats in it
    # costs more than making them (1.08M references: 1.7 s against 0.2 s)
    # copy=False: each column stays its own block; gathering them into one block per
    # dtype copied a year of London (0.56 s) for no later step's gain
    return pd.DataFrame({c: table[c].to_pandas(deduplicate_objects=c not in _OWN_TEXT)
                         for c in names}, columns=list(names), copy=False)


#: Text columns that differ from record to record.
_OWN_TEXT = ("ref", "location", "location_key", "description")


def _dtype(column: str) -> str:
    return INCIDENT_NUMBERS.get(column, "object")
