"""Loading exports into the store, shared by the CLI and the app (through
:mod:`hotspots.jobs`, which re-exports these): :func:`ingest_files` loads them, one
transaction per file; :func:`preview_files` says what a load would do without writing.
Each returns a JSON-able dict."""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import json
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from . import geography, store
from .area import check_store_area
from .config import Config
from .errors import HotspotsError
from .export import write_csv
from .ingest import (
    IngestResult,
    Mapping,
    export_date,
    read_export,
    read_mapping,
    to_incidents,
)
from .ingest.stream import (
    CHUNK_ROWS,
    ChunkedIngest,
    StreamFailed,
    check_unchanged,
    file_stamp,
)
from .validate import explain_reasons, file_message

log = logging.getLogger(__name__)


#: Every entry of ``ingest_files``'s report has exactly these keys (null when not known).
INGEST_KEYS = ("path", "format", "read", "accepted", "rejected", "inserted", "replaced",
               "unchanged", "unassigned", "lsoa_agreement", "reasons", "load_id",
               "already_loaded", "rejected_file", "exported_at", "kept_newer", "note", "error",
               "warnings", "explained")
#: Every entry of ``preview_files``'s report has exactly these keys (null when not known).
PREVIEW_KEYS = ("path", "format", "read", "accepted", "rejected", "inserted", "replaced",
                "unchanged", "kept_newer", "already_loaded", "exported_at", "changes",
                "reasons", "explained", "warnings", "note", "error")

#: Configuration fields that decide whether a row is accepted and where it is assigned.
_ACCEPTANCE_FIELDS = ("code", "boundary_layer", "layers", "land_layer", "categories",
                      "police_uk_types", "nearest_max_m", "location_key_m",
                      "future_tolerance_days")


def load_key(content_sha256: str, mapping: Mapping | None, config: Config, *,
             force_older: bool = False) -> str:
    """What makes two loads the same: the file's bytes, its mapping (not where the mapping
    file lies), the configuration that decides row acceptance, and whether it was forced
    over newer records. After a mapping or the taxonomy is corrected, the same file loads
    again; so does a file whose newer records were kept, when it is forced."""
    what: dict[str, Any] = {
        "file": content_sha256,
        "mapping": None if mapping is None else
        {k: v for k, v in dataclasses.asdict(mapping).items() if k != "path"},
        "config": {f: _plain(getattr(config, f, None)) for f in _ACCEPTANCE_FIELDS}}
    if force_older:  # (unforced keys stay as stores already hold them)
        what["force_older"] = True
    return hashlib.sha256(json.dumps(what, sort_keys=True, default=str).encode()).hexdigest()


def _plain(value):
    if dataclasses.is_dataclass(value):
        return dataclasses.asdict(value)
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value


def _day(iso: str, seconds: bool = False) -> str:
    """An export date as people say it: the day, and the time when there is one (to the
    second with ``seconds``)."""
    if iso.endswith("T00:00:00") or len(iso) <= 10:
        return iso[:10]
    return iso[:19 if seconds else 16].replace("T", " ")


#: How to replace newer records with an older export, as the command line says it.
FORCE_HINT = "use --force-older to replace them"


def kept_newer_note(kept: list[dict], exported_at: str, force_hint: str = FORCE_HINT) -> str:
    """What the load-order rule kept, why, and how to replace them (``force_hint``: the
    front-end's own way)."""
    # two exports of the same minute (files saved one after the other) told apart
    sec = any(_day(k["exported_at"]) == _day(exported_at) for k in kept)
    parts = [f"{k['n']:,} newer version{'s' if k['n'] != 1 else ''} from load {k['load_id']} "
             f"(exported {_day(k['exported_at'], sec)})" for k in kept]
    return (f"kept {'; '.join(parts)}; this export is dated {_day(exported_at, sec)}; "
            f"{force_hint}")


def _check_file(p: Path, mapping: Mapping | None, config: Config, layers, area,
                today: dt.date | None, say, step: int, total: int):
    """Read and check one export: ``(result, exported_at)``."""
    if not p.is_file():
        raise HotspotsError(file_message(p.name, "no_file"))
    frame = read_export(p, sheet=mapping.sheet if mapping else None)
    say(step + 1, total, f"{p.name}: checking {len(frame):,} rows")
    res = to_incidents(frame, file=p.name, config=config, layers=layers, area=area,
                       mapping=mapping, today=today)
    return res, export_date(frame, path=p, mapping=mapping)


def plain_error(exc: Exception, name: str) -> str:
    """A message for a file that could not be used, in the user's words: the file by its
    own name (never an upload's temporary folder), no codec or Python jargon."""
    if isinstance(exc, HotspotsError):
        return str(exc)
    if isinstance(exc, UnicodeError):
        at = f" (byte {exc.start + 1:,})" if isinstance(exc, UnicodeDecodeError) else ""
        return file_message(name, "not_utf8", why=at)
    return (f"{name}: could not be loaded: an unexpected problem ({type(exc).__name__}); the "
            "store is unchanged for this file. Fix: please report it with the file's first "
            "lines.")


def _entry(keys, p: Path) -> dict:
    entry = dict.fromkeys(keys)
    entry.update(path=str(p), reasons={}, kept_newer=0, warnings=[], explained=[])
    return entry


def _counts(res: IngestResult, accepted: int | None = None) -> dict:
    return {"format": res.format, "read": res.n_read,
            "accepted": len(res.incidents) if accepted is None else accepted,
            "rejected": len(res.rejected), "reasons": res.reasons,
            "explained": explain_reasons(res.problems), "warnings": list(res.warnings)}


def ingest_files(paths: Sequence[str | Path], *, config: Config,
                 store_file: str | Path | None = None,
                 mapping: str | Path | None = None, cache: str | Path | None = None,
                 today: dt.date | None = None, force_older: bool = False,
                 user: str | None = None, progress=None, force_hint: str = FORCE_HINT,
                 chunk_rows: int = CHUNK_ROWS) -> dict:
    """Load exports into the store, one transaction per file.

    Returns ``{"store", "files": [...]}`` with :data:`INGEST_KEYS` per file. A file loaded
    before with the same mapping and configuration (:func:`load_key`) is skipped
    (``already_loaded`` names that load) without reading it or the boundaries. A record
    whose version in the store comes from a later-dated export is kept (``kept_newer``,
    explained in ``note``, which ends with ``force_hint``) unless ``force_older``. A file
    that cannot be read, or that changes while it is loaded (an export still being
    written), gets an ``error``, nothing of it is written, and the others still load.
    Rejected rows go to ``<store folder>/rejected/<file>.load<N>.rejected.csv``.
    ``warnings`` say what a file lacks (optional mapping columns missing); ``explained``
    the rejected rows by reason, fix first (:func:`hotspots.validate.explain_reasons`).
    ``user`` is who loads (default: the operating system's user). ``progress(done,
    total, step)`` is told of each step (three per file: read, checked, written). A CSV
    is read, checked and written ``chunk_rows`` rows at a time
    (:mod:`hotspots.ingest.stream`), still in one transaction.
    """
    db = store.store_target(store_file)
    mapping_obj = read_mapping(mapping, config) if mapping else None
    files_in = [Path(p) for p in paths]
    # each file's size and time of change before its hash: a file that changes after
    # (an export still being written) is refused once read, not loaded under this hash
    stamps = {p: file_stamp(p) for p in files_in if p.is_file()}
    shas = {p: geography.sha256_file(p) for p in stamps}
    keys = {p: load_key(shas[p], mapping_obj, config, force_older=force_older)
            if p in shas else None for p in files_in}
    files = []
    with store.connection(db) as conn:
        check_store_area(conn, config, store_file=db, cache=cache, record=True)
        priors = {p: store.find_load(conn, k) if k else None for p, k in keys.items()}
        geo: dict = {}
        if any(priors[p] is None for p in files_in):  # something to read: the boundaries too
            geo["layers"] = geography.read_layers(config, cache=cache)
            geo["area"] = geography.study_area(geo["layers"], config, cache=cache)
        total = 3 * len(files_in)
        say = progress or (lambda done, total, step: None)
        for i, p in enumerate(files_in):
            say(3 * i, total, f"{p.name}: reading")
            entry = _entry(INGEST_KEYS, p)
            files.append(entry)
            key, prior = keys[p], priors[p]
            try:
                if key is None:
                    raise HotspotsError(file_message(p.name, "no_file"))
                if prior is not None:
                    _already_loaded(conn, entry, prior)
                    continue
                _load_one(conn, p, entry, sha=shas[p], stamp=stamps[p], key=key,
                          config=config, geo=geo,
                          mapping=mapping_obj, today=today, force_older=force_older,
                          user=user, db=db, force_hint=force_hint, chunk_rows=chunk_rows,
                          say=lambda k, step, i=i: say(3 * i + k, total, step))
            except Exception as exc:  # noqa: BLE001 - one bad file must not stop the others
                if not isinstance(exc, HotspotsError):
                    log.exception("unexpected failure on %s", p)
                entry["error"] = plain_error(exc, p.name)
        say(total, total, "done")
    return {"store": store.store_name(db), "files": files}


def _already_loaded(conn, entry: dict, prior: dict) -> None:
    entry.update({k: prior[k] for k in ("format", "read", "accepted", "rejected", "unassigned",
                                        "lsoa_agreement", "reasons")})
    entry.update(already_loaded=prior["load_id"], inserted=0, replaced=0,
                 unchanged=prior["accepted"],
                 explained=explain_reasons(store.read_problems(conn, prior["load_id"])))


def _load_one(conn, p: Path, entry: dict, *, sha: str, stamp: tuple[int, int], key: str,
              config: Config, geo: dict, mapping: Mapping | None, today, force_older: bool,
              user, db, say, force_hint: str = FORCE_HINT, chunk_rows: int = CHUNK_ROWS
              ) -> None:
    """Read, check and write one export; fill in its report ``entry``. A CSV is streamed
    (:class:`ChunkedIngest`: bounded memory, one transaction), unless it cannot be read
    a block at a time; then, like an XLSX, it is read whole."""
    opts = {"path": str(p), "content_sha256": sha, "load_key": key,
            "force_older": force_older, "user": user}
    written = None
    if p.suffix.lower() in (".csv", ".txt", ".tsv"):
        chunks = ChunkedIngest(p, config=config, layers=geo["layers"], area=geo["area"],
                               mapping=mapping, today=today, chunk_rows=chunk_rows,
                               progress=say, stamp=stamp)
        try:
            exported = chunks.export_date()
            written = store.write_load(conn, chunks, exported_at=exported, **opts)
        except StreamFailed:  # rolled back: nothing was written
            written = None
        if written is not None and written["load_id"] is None:  # loaded meanwhile
            prior = store.find_load(conn, key)
            if prior is None:  # write_load found it; it cannot have gone since
                raise RuntimeError(f"{p.name}: loaded meanwhile, but no load has its key.")
            _already_loaded(conn, entry, prior)
            return
    if written is not None:
        res = chunks.summary()
    else:
        res, exported = _check_file(p, mapping, config, geo["layers"], geo["area"], today,
                                    lambda done, total, step: say(1, step), 0, 3)
        check_unchanged(p, stamp)
        say(2, f"{p.name}: writing {len(res.incidents):,} rows")
        written = store.write_load(conn, res, exported_at=exported, **opts)
    kept = written["kept_newer"]
    entry.update(_counts(res, written.get("accepted")))
    entry.update({
        "inserted": written["inserted"], "replaced": written["replaced"],
        "unchanged": written["unchanged"],
        "unassigned": written.get("unassigned", int((res.incidents["lsoa_code"] == "").sum())),
        "lsoa_agreement": res.lsoa_agreement, "load_id": written["load_id"],
        "already_loaded": written["already_loaded"], "exported_at": exported,
        "kept_newer": sum(k["n"] for k in kept),
        "note": kept_newer_note(kept, exported, force_hint) if kept else None,
    })
    if len(res.rejected) and written["load_id"] is not None:
        out = store.rejected_dir(db) / f"{p.stem}.load{written['load_id']}.rejected.csv"
        out.parent.mkdir(parents=True, exist_ok=True)
        write_csv(res.rejected, out)
        entry["rejected_file"] = str(out)


def preview_files(paths: list[str | Path], *, config: Config,
                  store_file: str | Path | None = None, mapping: str | Path | None = None,
                  cache: str | Path | None = None, today: dt.date | None = None,
                  force_older: bool = False, sample: int = 20,
                  force_hint: str = FORCE_HINT) -> dict:
    """What :func:`ingest_files` would do with these exports, without writing anything
    (the store is not even created): per file, :data:`PREVIEW_KEYS` with the counts of
    new (``inserted``), ``replaced``, ``unchanged``, ``kept_newer`` and ``rejected``
    records, and ``changes``: ``{"ref", "field", "old", "new"}`` of the changed fields of
    up to ``sample`` of the records that would be replaced; ``note`` as in
    :func:`ingest_files`.
    """
    db = store.store_target(store_file)
    layers = geography.read_layers(config, cache=cache)
    area = geography.study_area(layers, config, cache=cache)
    mapping_obj = read_mapping(mapping, config) if mapping else None
    conn = store.connect(db) if store.exists(db) else None
    files = []
    try:
        if conn is not None:
            check_store_area(conn, config, store_file=db, cache=cache)
        for p in map(Path, paths):
            entry = _entry(PREVIEW_KEYS, p)
            files.append(entry)
            try:
                res, exported = _check_file(p, mapping_obj, config, layers, area, today,
                                            lambda *a: None, 0, 3)
                key = load_key(geography.sha256_file(p), mapping_obj, config,
                               force_older=force_older)
                got = (store.preview_load(conn, res, load_key=key, exported_at=exported,
                                          force_older=force_older, sample=sample)
                       if conn is not None else _all_new(res))
            except Exception as exc:  # noqa: BLE001 - one bad file must not stop the others
                if not isinstance(exc, HotspotsError):
                    log.exception("unexpected failure on %s", p)
                entry["error"] = plain_error(exc, p.name)
                continue
            entry.update(_counts(res))
            entry.update({k: got[k] for k in ("inserted", "replaced", "unchanged",
                                              "already_loaded")},
                         exported_at=exported, changes=got["changes"].to_dict("records"),
                         kept_newer=sum(k["n"] for k in got["kept_newer"]),
                         note=kept_newer_note(got["kept_newer"], exported, force_hint)
                         if got["kept_newer"] else None)
    finally:
        if conn is not None:
            conn.close()
    return {"store": store.store_name(db), "files": files}


def _all_new(res: IngestResult) -> dict:
    """A preview against a store that does not exist yet: every record is new."""
    return {"inserted": len(res.incidents), "replaced": 0, "unchanged": 0, "kept_newer": [],
            "already_loaded": None, "changes": pd.DataFrame(columns=["ref", "field", "old",
                                                                      "new"])}
