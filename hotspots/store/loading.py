"""Writing a load into the store, and checking one before it is written: the rules of
:mod:`hotspots.store` for loads (one transaction; a key loaded once; a record replaced
only by a version as new or newer unless forced; rejected rows kept with their reasons),
on whichever backend the connection is.
"""

from __future__ import annotations

import dataclasses
import json
import tempfile
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from ..ingest import IngestResult
from ..ingest.text import few_values
from ..schema import INCIDENT_COLUMNS
from .tasking import _now, _user

#: Columns whose change makes a newer export a replacement (not file/row: moving a row
#: within an export is no change to the incident).
_CONTENT = [c for c in INCIDENT_COLUMNS if c not in ("file", "row")]
#: Columns of the incidents table, in order.
STORED_COLUMNS = [*INCIDENT_COLUMNS, "row_hash", "load_id", "exported_at"]


def _row_hash(frame: pd.DataFrame) -> np.ndarray:
    """``pd.util.hash_pandas_object(frame[_CONTENT], index=False)`` as int64 (the hash the
    store has always kept), with each distinct text of a column hashed once."""
    # pandas' combination of the columns' hashes (CPython's tuple hash)
    out = np.full(len(frame), 0x345678, dtype=np.uint64)
    mult = np.uint64(1000003)
    with np.errstate(over="ignore"):
        for i, c in enumerate(_CONTENT):
            out ^= _column_hash(frame[c], c)
            out *= mult
            mult += np.uint64(82520 + 2 * (len(_CONTENT) - i))
        out += np.uint64(97531)
    return out.view(np.int64)


def _column_hash(column: pd.Series, name: str) -> np.ndarray:
    """Hash each value of ``column`` with pandas' hash: Arrow text of few distinct values
    dictionary-encoded (in C++) and each distinct value hashed once; other text (a
    reference, a map point: distinct nearly everywhere) hashed as it is."""
    enc = few_values(column)
    if enc is not None:
        uniq = pd.util.hash_array(enc.dictionary.to_numpy(zero_copy_only=False),
                                  categorize=False)
        return uniq[enc.indices.to_numpy(zero_copy_only=False)]
    values = column.to_numpy()
    # distinct values hashed once (categorised) only where they repeat
    repeats = name != "ref" and not isinstance(column.array, pd.arrays.ArrowStringArray) \
        and len(pd.unique(values[:10_000])) <= 0.95 * min(len(values), 10_000)
    return pd.util.hash_array(values, categorize=repeats)


def _keys(frame: pd.DataFrame) -> pd.Index:
    """(source, ref) as one hashed text index (no sorting: fast for millions of rows)."""
    return pd.Index(pc.binary_join_element_wise(
        pa.array(frame["source"], pa.string()), pa.array(frame["ref"], pa.string()),
        "\x1f").to_numpy(zero_copy_only=False))


# -- loads ------------------------------------------------------------------------------


def find_load(conn, load_key: str) -> dict | None:
    """The latest load with this key (file, mapping and configuration), with its counts
    and rejected rows by reason; None if there is none."""
    rows = conn.query(
        "SELECT load_id, format, n_read, n_accepted, n_rejected, n_unassigned, "
        "lsoa_agreement FROM loads WHERE load_key = ? ORDER BY load_id DESC LIMIT 1",
        (load_key,))
    if not rows:
        return None
    keys = ("load_id", "format", "read", "accepted", "rejected", "unassigned",
            "lsoa_agreement")
    out = dict(zip(keys, rows[0], strict=True))
    out["reasons"] = {r: int(n) for r, n in conn.query(
        "SELECT reason, count(DISTINCT row) FROM problems WHERE load_id = ? GROUP BY reason "
        "ORDER BY reason", (out["load_id"],))}
    return out


def _compare(old: pd.DataFrame, inc: pd.DataFrame, new_hash: np.ndarray, exported_at: str,
             force_older: bool) -> dict:
    """How each incident of an export stands against its stored version (``old``, from
    ``conn.existing``): the masks ``found``, ``same``, ``write``, ``kept_mask`` (kept by
    the load-order rule), ``at`` (the positions of ``old``'s rows in ``inc``), the counts
    and ``kept`` (per load whose newer versions are kept)."""
    at = _keys(inc).get_indexer(_keys(old)) if len(old) else np.zeros(0, np.intp)
    found = np.zeros(len(inc), dtype=bool)
    found[at] = True
    same = np.zeros(len(inc), dtype=bool)
    same[at] = old["row_hash"].to_numpy(dtype=np.int64) == new_hash[at]
    newer = np.zeros(len(inc), dtype=bool)
    if not force_older:
        newer[at] = old["exported_at"].to_numpy(dtype=object) > exported_at
    kept_mask = found & ~same & newer
    write = ~found | (found & ~same & ~newer)
    kept = []
    if kept_mask.any():
        held = old.set_index(at).loc[np.flatnonzero(kept_mask)]
        kept = [{"load_id": int(k[0]), "exported_at": k[1], "n": int(v)} for k, v in
                held.groupby(["load_id", "exported_at"]).size().sort_index().items()]
    unchanged, n_kept, inserted = int(same.sum()), int(kept_mask.sum()), int((~found).sum())
    return {"at": at, "found": found, "same": same, "write": write, "kept_mask": kept_mask,
            "kept": kept, "unchanged": unchanged, "n_kept": n_kept, "inserted": inserted,
            "replaced": len(inc) - unchanged - n_kept - inserted}


def write_load(conn, result: IngestResult | Iterable[IngestResult], *, path: str,
               content_sha256: str, load_key: str | None = None, exported_at: str = "",
               force_older: bool = False, user: str | None = None) -> dict:
    """Write one ingested export in a single transaction.

    Parameters
    ----------
    result : the export's result, or its chunks' results in order (a streamed file,
        :class:`hotspots.ingest.stream.ChunkedIngest`: every chunk is read and checked
        first, its rows kept in a temporary Arrow file, so a file of millions of rows
        never sits in memory whole and the write transaction holds the store only while
        the rows are written).
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
    "n"}``: versions kept because their export is dated after this one),
    ``already_loaded`` (the earlier load of the same key, if any) and, when written, the
    file's ``read``, ``accepted``, ``rejected`` and ``unassigned`` rows.
    """
    load_key = load_key or content_sha256
    if isinstance(result, IngestResult):
        return _write_load(conn, [result], path=path, content_sha256=content_sha256,
                           load_key=load_key, exported_at=exported_at,
                           force_older=force_older, user=user)
    prior = find_load(conn, load_key)
    if prior is not None:  # nothing to read
        return _already(prior)
    with tempfile.TemporaryDirectory(prefix="hotspots-load-") as folder:
        # every chunk read and checked before the write lock is taken: another writer (a
        # decision recorded in the app) waits for the writing only
        spooled = _spool(result, Path(folder))
        return _write_load(conn, spooled, path=path, content_sha256=content_sha256,
                           load_key=load_key, exported_at=exported_at,
                           force_older=force_older, user=user)


def _already(prior: dict) -> dict:
    return {"load_id": None, "inserted": 0, "replaced": 0, "unchanged": prior["accepted"],
            "kept_newer": [], "already_loaded": prior["load_id"]}


def _spool(chunks: Iterable[IngestResult], folder: Path) -> list[IngestResult]:
    """The chunks, each but the last (``chunks.last`` true: read as the last) with its
    incidents written to an Arrow file in ``folder`` (memory holds one chunk's rows at
    a time) and its ``incidents`` the file's path, for :func:`_unspool`."""
    out = []
    for i, res in enumerate(chunks):
        if getattr(chunks, "last", False):
            out.append(res)
            continue
        file = folder / f"chunk{i}.arrow"
        # with the rows' hashes (they depend on the rows alone): not made under the lock
        table = pa.Table.from_pandas(res.incidents, preserve_index=False).append_column(
            "row_hash", pa.array(_row_hash(res.incidents)))
        table = table.cast(pa.schema([  # as Arrow-backed pandas text holds it
            f.with_type(pa.large_string()) if pa.types.is_string(f.type) else f
            for f in table.schema]))
        with pa.OSFile(str(file), "wb") as sink, pa.ipc.new_file(sink, table.schema) as ipc:
            ipc.write_table(table)
        out.append(dataclasses.replace(res, incidents=file))  # type: ignore[arg-type]
        del res, table
    return out


def _unspool(res: IngestResult) -> IngestResult:
    """A spooled chunk with its incidents (and their ``row_hash``) read back: text as
    Arrow text, read in place (mapped, not copied)."""
    if not isinstance(res.incidents, Path):
        return res
    with pa.memory_map(str(res.incidents)) as source:
        table = pa.ipc.open_file(source).read_all()
    frame = pd.DataFrame({name: pd.arrays.ArrowStringArray(col.combine_chunks())
                          if pa.types.is_large_string(col.type) else col.to_numpy()
                          for name, col in zip(table.column_names, table.columns, strict=True)},
                         copy=False)
    return dataclasses.replace(res, incidents=frame)


def _write_load(conn, chunks: Iterable[IngestResult], *, path: str, content_sha256: str,
                load_key: str, exported_at: str, force_older: bool, user: str | None
                ) -> dict:
    """:func:`write_load` of results whose rows are read and checked."""
    with conn.transaction(load=True):
        prior = find_load(conn, load_key)  # inside: two loads of one file at once load once
        if prior is not None:
            return _already(prior)
        load_id, tally = None, _Tally()
        for res in map(_unspool, chunks):
            if load_id is None:  # counted once every chunk is written
                load_id = conn.insert(
                    "INSERT INTO loads (file, path, content_sha256, format, loaded_at, n_read, "
                    "n_accepted, n_rejected, n_inserted, n_replaced, n_unchanged, "
                    "n_unassigned, lsoa_agreement, load_key, exported_at, loaded_by, "
                    "n_kept_newer) VALUES (?,?,?,?,?,0,0,0,0,0,0,0,NULL,?,?,?,0)",
                    (res.file, path, content_sha256, res.format, _now(), load_key,
                     exported_at, _user(user)), "load_id")
            _write_chunk(conn, res, load_id, exported_at, force_older, tally)
            del res  # let go of this chunk's rows before the next is read
        if load_id is None:
            raise ValueError(f"write_load of {path}: no chunk of rows was given.")
        t = tally.totals()
        conn.executemany(
            "UPDATE loads SET n_read = ?, n_accepted = ?, n_rejected = ?, n_inserted = ?, "
            "n_replaced = ?, n_unchanged = ?, n_unassigned = ?, lsoa_agreement = ?, "
            "n_kept_newer = ? WHERE load_id = ?",
            [(t["read"], t["accepted"], t["rejected"], t["inserted"], t["replaced"],
              t["unchanged"], t["unassigned"], t["lsoa_agreement"],
              sum(k["n"] for k in t["kept_newer"]), load_id)])
    return {"load_id": int(load_id), "already_loaded": None, **t}


class _Tally:
    """A load's counts, added up over its chunks."""

    def __init__(self):
        self.n = dict.fromkeys(("read", "accepted", "rejected", "inserted", "replaced",
                                "unchanged", "unassigned", "agree", "has"), 0)
        self.kept: dict[tuple[int, str], int] = {}
        self.agreement: list[float | None] = []
        #: per source met so far: whether the store had records of it when it was first
        #: met (in the load's transaction, so only this load's rows can have come since,
        #: and none of them twice: a repeated reference is rejected in any chunk)
        self.had: dict[str, bool] = {}

    def stored_before(self, conn, sources: pd.Series) -> np.ndarray:
        """Whether each row's source had records in the store before this load."""
        for source in sources.unique():
            if source not in self.had:
                self.had[source] = bool(conn.query(
                    "SELECT 1 FROM incidents WHERE source = ? LIMIT 1", (source,)))
        if len(self.had) == 1:
            return np.full(len(sources), next(iter(self.had.values())), dtype=bool)
        return sources.map(self.had).to_numpy(dtype=bool)

    def add(self, res: IngestResult, c: dict, unassigned: int) -> None:
        for key, value in (("read", res.n_read), ("accepted", len(res.incidents)),
                           ("rejected", len(res.rejected)), ("inserted", c["inserted"]),
                           ("replaced", c["replaced"]), ("unchanged", c["unchanged"]),
                           ("unassigned", unassigned)):
            self.n[key] += value
        if res.lsoa_checked:
            self.n["agree"] += res.lsoa_checked[0]
            self.n["has"] += res.lsoa_checked[1]
        self.agreement.append(res.lsoa_agreement)
        for k in c["kept"]:
            version = (k["load_id"], k["exported_at"])
            self.kept[version] = self.kept.get(version, 0) + k["n"]

    def totals(self) -> dict:
        n = self.n
        agreement = (float(n["agree"] / n["has"]) if n["has"] else
                     next((a for a in self.agreement if a is not None), None))
        return {**{k: v for k, v in n.items() if k not in ("agree", "has")},
                "lsoa_agreement": agreement,
                "kept_newer": [{"load_id": int(k[0]), "exported_at": k[1], "n": int(v)}
                               for k, v in sorted(self.kept.items())]}


def _write_chunk(conn, res: IngestResult, load_id: int, exported_at: str, force_older: bool,
                 tally: _Tally) -> None:
    """Write one export's (or one chunk's) incidents, problems and rejected rows."""
    inc = res.incidents
    new_hash = (inc["row_hash"].to_numpy(dtype=np.int64) if "row_hash" in inc.columns
                else _row_hash(inc))  # a spooled chunk's were made before
    keys = inc[["source", "ref"]]
    stored = tally.stored_before(conn, keys["source"])
    # source, ref, row_hash, exported_at, load_id of the versions stored before this load
    # (a source new to the store has none: its rows are not looked up)
    old = conn.existing(keys if stored.all() else keys[stored]) if stored.any() else \
        pd.DataFrame(columns=["source", "ref", "row_hash", "exported_at", "load_id"])
    c = _compare(old, inc, new_hash, exported_at, force_older)
    at, found, same, write = c["at"], c["found"], c["same"], c["write"]
    tally.add(res, c, int((inc["lsoa_code"] == "").sum()))  # no area of the finest layer
    if write.any():  # the rows to write, their columns not copied when all are written
        every = bool(write.all())
        rows = pd.DataFrame({c: inc[c] if every else inc[c].array[write]
                             for c in INCIDENT_COLUMNS}, copy=False)
        rows["row_hash"], rows["load_id"] = new_hash[write], load_id
        rows["exported_at"] = exported_at
        conn.upsert_incidents(rows, replace=bool((found & write).any()))
    # an unchanged version seen in a later export carries that export's date, so an
    # export dated between the two cannot revert it
    bump = np.zeros(len(inc), dtype=bool)
    bump[at] = same[at] & (old["exported_at"].to_numpy(dtype=object) < exported_at)
    if bump.any():  # one statement per source, not one per row
        conn.restamp(keys[bump], exported_at=exported_at, load_id=load_id)
    conn.executemany("INSERT INTO problems VALUES (?,?,?,?,?,?,?)",
                     [(load_id, *r) for r in res.problems.itertuples(index=False, name=None)])
    raw_cols = [c for c in res.rejected.columns if c not in ("row", "reasons")]
    # a malformed row's own text is kept with it (no other row has one)
    conn.executemany(
        "INSERT INTO rejected_rows VALUES (?,?,?,?)",
        [(load_id, int(r["row"]), r["reasons"],
          json.dumps({c: r[c] for c in raw_cols if c != "raw_text" or r[c]},
                     ensure_ascii=False))
         for r in res.rejected.to_dict("records")])


#: Fields shown in a preview's changes: what a person reads in a record (the keys and
#: positions derived from them follow).
_SHOWN = ("category", "category_raw", "date", "hour", "x", "y", "location", "caller_key",
          "description", "quantity", "ward_code", "lsoa_code")


def preview_load(conn, result: IngestResult, *, load_key: str | None = None,
                 exported_at: str = "", force_older: bool = False,
                 sample: int = 20) -> dict:
    """What :func:`write_load` would do with this export, without writing anything.

    Returns
    -------
    dict with ``inserted`` (new records), ``replaced``, ``unchanged``, ``kept_newer`` (as
    :func:`write_load`), ``already_loaded`` (the earlier load of the same key, or None;
    then nothing would change) and ``changes``: a DataFrame (``ref``, ``field``, ``old``,
    ``new``) of the changed fields of up to ``sample`` of the records that would be
    replaced, in the export's order.
    """
    inc = result.incidents
    none = pd.DataFrame(columns=["ref", "field", "old", "new"])
    with conn.transaction():  # one consistent reading of the store (nothing is written)
        prior = find_load(conn, load_key) if load_key else None
        if prior is not None:
            return {"inserted": 0, "replaced": 0, "unchanged": prior["accepted"],
                    "kept_newer": [], "already_loaded": prior["load_id"], "changes": none}
        old = conn.existing(inc[["source", "ref"]])
        c = _compare(old, inc, _row_hash(inc), exported_at, force_older)
        replace = np.flatnonzero(c["found"] & c["write"])[:sample]
        stored = _stored(conn, inc.iloc[replace][["source", "ref"]])
    changes = []
    new = inc.iloc[replace]
    for _, row in new.iterrows():
        was = stored.get((row["source"], row["ref"]))
        if was is None:
            continue
        fields = [f for f in _SHOWN if _shown(was[f]) != _shown(row[f])]
        if "category" in fields:  # its export label changes with it: said once
            fields = [f for f in fields if f != "category_raw"]
        changes += [{"ref": row["ref"], "field": f, "old": _shown(was[f]), "new": _shown(row[f])}
                    for f in fields]
    return {"inserted": c["inserted"], "replaced": c["replaced"], "unchanged": c["unchanged"],
            "kept_newer": c["kept"], "already_loaded": None,
            "changes": pd.DataFrame(changes, columns=none.columns) if changes else none}


def _shown(value) -> str:
    """A stored or new value as text, the same for both (5.0 and 5 read alike)."""
    if isinstance(value, float | np.floating):
        return f"{float(value):.2f}".rstrip("0").rstrip(".")
    return str(value)


def _stored(conn, keys: pd.DataFrame) -> dict[tuple[str, str], dict]:
    """The stored incidents of a few (source, ref) keys, by key."""
    out = {}
    for source, refs in keys.groupby("source", sort=False)["ref"]:
        refs = refs.tolist()
        frame = conn.frame(f"SELECT {', '.join(INCIDENT_COLUMNS)} FROM incidents WHERE "
                           f"source = ? AND ref IN ({', '.join('?' * len(refs))})",
                           [source, *refs])
        out.update({(source, r["ref"]): r for r in frame.to_dict("records")})
    return out
