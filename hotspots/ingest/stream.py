"""A CSV export read and checked a chunk of rows at a time (default 500,000), so memory
does not grow with the file: five years of London (6M rows) load in the memory of one
chunk. Every chunk is checked by :func:`to_incidents` with what the chunks before it
left (:class:`.carry.Carry`: references seen, derived keys made), so the chunks give
the same incidents, problems and rejected rows (with the same row numbers) as the whole
file read at once; the store writes them in one transaction (:func:`hotspots.store.
write_load`).
"""

from __future__ import annotations

import codecs
import ctypes
import datetime as dt
import itertools
import mmap
from collections.abc import Iterator
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pacsv
import shapely

from ..config import Config
from ..errors import InputError
from ..validate import file_message
from . import IngestResult, to_incidents
from .carry import Carry
from .read import (
    _WINDOW,
    Mapping,
    _header,
    _quoted_line_breaks,
    _utf8,
    export_date,
    latest_export_date,
    text_columns,
)

#: Rows checked and written at a time.
CHUNK_ROWS = 500_000
#: Bytes the CSV reader parses at a time (rows are gathered into chunks of CHUNK_ROWS).
_BLOCK = 16 * 2**20


def file_stamp(path: str | Path) -> tuple[int, int]:
    """The file's size and time of last change (ns): taken before its content is hashed,
    and asked again once it has been read (:func:`check_unchanged`)."""
    st = Path(path).stat()
    return st.st_size, st.st_mtime_ns


def check_unchanged(path: str | Path, stamp: tuple[int, int] | None) -> None:
    """Refuse (InputError) a file whose :func:`file_stamp` is no longer ``stamp`` (None:
    not checked): what was read may not be what was hashed (the load's key), nor all of
    one version of the file."""
    if stamp is None:
        return
    try:
        now = file_stamp(path)
    except OSError:  # gone meanwhile: changed too
        now = None
    if now != stamp:
        raise InputError(file_message(Path(path).name, "changed_while_read"))


class StreamFailed(Exception):
    """The file cannot be read a block at a time (a row longer than a block, say): read
    it whole instead, which knows those cases and words their messages."""


def read_csv_chunks(path: str | Path, *, chunk_rows: int = CHUNK_ROWS
                    ) -> Iterator[pd.DataFrame]:
    """:func:`read_export` of a CSV, ``chunk_rows`` rows at a time: frames of Arrow text
    with the attributes ``row_numbers`` (each row's number in the file, the header being
    row 1), ``malformed`` (the rows with the wrong number of fields since the previous
    chunk, as the whole file's reader notes them) and ``last``.

    Raises
    ------
    InputError
        as :func:`read_export` (missing file, no header, ...).
    StreamFailed
        the file needs reading whole (see :class:`StreamFailed`).
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(file_message(path.name, "no_file"))
    raw: bytes | mmap.mmap
    with open(path, "rb") as fh:  # mapped, not copied
        try:
            raw = mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ)
        except (OSError, ValueError):  # an empty file, or one that cannot be mapped
            raw = fh.read()
    utf8, newlines = _scan(path)
    if utf8:  # read from the file as it is parsed: its pages are not held as ours
        header, sep = _header(raw, path.name)
        source = pa.OSFile(str(path))
    else:  # other encodings: the file as UTF-8 in memory
        raw = _utf8(raw, path.name)
        header, sep = _header(raw, path.name)
        source, newlines = pa.BufferReader(pa.py_buffer(raw)), _quoted_line_breaks(raw)
    del raw
    malformed: list[tuple[int, str, str]] = []

    def keep(row) -> str:
        malformed.append((row.number, f"{row.actual_columns} fields where the header has "
                                      f"{row.expected_columns}", row.text))
        return "skip"

    try:
        reader = pacsv.open_csv(
            source,
            # one thread: the reader numbers the rows it sets aside only then
            read_options=pacsv.ReadOptions(block_size=_BLOCK, use_threads=False),
            parse_options=pacsv.ParseOptions(delimiter=sep, ignore_empty_lines=False,
                                             newlines_in_values=newlines,
                                             invalid_row_handler=keep),
            convert_options=text_columns(header))
    except pa.ArrowInvalid as exc:
        raise StreamFailed(str(exc)) from exc
    numbers = _Numbering(malformed)
    pending: list[pa.RecordBatch] = []
    held = 0
    while True:
        try:
            batch = reader.read_next_batch()
        except StopIteration:
            break
        except pa.ArrowInvalid as exc:
            raise StreamFailed(str(exc)) from exc
        pending.append(batch)
        held += batch.num_rows
        while held > chunk_rows:  # more to come after this chunk: it is not the last
            table = pa.Table.from_batches(pending)
            yield numbers.frame(table.slice(0, chunk_rows), last=False)
            rest = table.slice(chunk_rows)
            pending, held = rest.to_batches(), rest.num_rows
    yield numbers.frame(pa.Table.from_batches(pending, schema=reader.schema), last=True)


def _scan(path: Path) -> tuple[bool, bool]:
    """Whether the file is UTF-8 as it is (not UTF-16, no byte invalid in UTF-8), and
    whether a quoted cell spans lines (see :func:`.read._quoted_line_breaks`): read once,
    a window at a time, not mapped (the pages read are not held as the process's)."""
    check = codecs.getincrementaldecoder("utf-8")()
    utf8, before, breaks = True, 0, False
    buffer = bytearray(_WINDOW)  # one buffer read into, not a new one per window
    with open(path, "rb") as fh:
        head = fh.read(4)
        if head[:2] in (b"\xff\xfe", b"\xfe\xff") or (len(head) == 4 and (
                (head[1] == head[3] == 0 and head[0] and head[2])
                or (head[0] == head[2] == 0 and head[1] and head[3]))):
            return False, False  # UTF-16 (as :func:`.read._utf8` tells it)
        fh.seek(0)
        while n := fh.readinto(buffer):
            window = buffer if n == len(buffer) else buffer[:n]
            # ASCII is UTF-8 as it is (unless a character begun before is left unfinished)
            if utf8 and not (window.isascii() and not check.getstate()[0]):
                try:
                    check.decode(window)
                except UnicodeDecodeError:
                    utf8 = False
            if breaks:
                continue
            if b'"' in window:
                data = np.frombuffer(window, dtype=np.uint8)
                quotes = np.flatnonzero(data == ord('"'))
                ends = np.flatnonzero((data == ord("\n")) | (data == ord("\r")))
                breaks = bool(((np.searchsorted(quotes, ends) + before) & 1).any())
                before += len(quotes)
            elif before & 1:  # inside a quoted cell the whole window
                breaks = b"\n" in window or b"\r" in window
    if utf8:
        try:
            check.decode(b"", final=True)
        except UnicodeDecodeError:
            utf8 = False
    return utf8, breaks


class _Numbering:
    """Row numbers of the chunks: records counted from 2 (the header is row 1), the
    malformed rows the reader set aside left out (they are numbered, and told, by the
    time the rows after them are read)."""

    def __init__(self, malformed: list[tuple[int, str, str]]):
        self.malformed, self.used, self.next = malformed, 0, 2

    def frame(self, table: pa.Table, *, last: bool) -> pd.DataFrame:
        k = table.num_rows
        pending = self.malformed[self.used:]
        skip = np.array([m[0] for m in pending], dtype=np.int64)
        rows = np.arange(self.next, self.next + k + len(skip))
        if len(skip):  # the numbers less those set aside (np.setdiff1d, without its sort)
            keep = np.ones(len(rows), dtype=bool)
            keep[skip[(skip >= self.next) & (skip < rows[-1] + 1)] - self.next] = False
            rows = rows[keep]
        rows = rows[:k]
        mine = len(pending) if last or not k else int(np.searchsorted(skip, rows[-1]))
        frame = pd.DataFrame({h: pd.arrays.ArrowStringArray(table.column(h).combine_chunks())
                              for h in table.column_names})
        frame.attrs.update(row_numbers=rows, last=last)
        if mine:
            frame.attrs["malformed"] = pending[:mine]
        self.used += mine
        if k:
            self.next = int(rows[-1]) + 1
        return frame


class ChunkedIngest:
    """An export checked a chunk at a time: iterating gives each chunk's IngestResult
    (made as it is asked for, so a chunk's rows are let go before the next is read);
    :meth:`summary` then gives the whole file's result without its incidents (its
    ``accepted`` counted)."""

    def __init__(self, path: str | Path, *, config: Config,
                 layers: dict[str, gpd.GeoDataFrame], area: shapely.Geometry,
                 mapping: Mapping | None = None, today: dt.date | None = None,
                 chunk_rows: int = CHUNK_ROWS, progress=None,
                 stamp: tuple[int, int] | None = None):
        self.path, self.chunk_rows = Path(path), chunk_rows
        #: :func:`file_stamp` of the file when its content was hashed: the file must still
        #: have it once the last chunk has been read (else the iteration raises InputError)
        self.stamp = stamp
        #: told ``(step, text)`` of each chunk: step 1 while checking, 2 writing the last
        self.progress = progress or (lambda step, text: None)
        self.options = {"config": config, "layers": layers, "area": area,
                        "mapping": mapping, "today": today}
        self.parts: list[IngestResult] = []
        self.accepted = self.unassigned = 0
        #: whether the chunk last given is the file's last
        self.last = False

    def __iter__(self) -> Iterator[IngestResult]:
        carry = Carry()
        self.parts.clear()
        self.accepted = self.unassigned = 0
        name, done = self.path.name, 0
        for frame in read_csv_chunks(self.path, chunk_rows=self.chunk_rows):
            carry.last = frame.attrs["last"]
            self.progress(1, f"{name}: checking {len(frame):,} rows" if carry.last and not done
                          else f"{name}: checking rows {done + 1:,} to {done + len(frame):,}")
            done += len(frame)
            res = to_incidents(frame, file=name, carry=carry, **self.options)
            del frame
            self.accepted += len(res.incidents)
            self.unassigned += int((res.incidents["lsoa_code"] == "").sum())
            if carry.last:
                self.progress(2, f"{name}: writing {self.accepted:,} rows")
            self.last = carry.last
            yield res
            # kept: what the report needs (problems, rejected rows), not the incidents
            self.parts.append(IngestResult(
                file=res.file, format=res.format, n_read=res.n_read,
                incidents=_empty_like(res.incidents), problems=res.problems,
                rejected=res.rejected, lsoa_agreement=res.lsoa_agreement,
                warnings=res.warnings, lsoa_checked=res.lsoa_checked))
            del res
            _give_back_memory()  # the chunk's buffers, before the next is read
        check_unchanged(self.path, self.stamp)  # read whole, before anything is written

    def summary(self) -> IngestResult:
        """The whole file's result once every chunk has been read; ``incidents`` is
        empty (``accepted`` counts them)."""
        parts = self.parts
        checked = [p.lsoa_checked for p in parts if p.lsoa_checked]
        agree, has = (sum(c[0] for c in checked), sum(c[1] for c in checked))
        problems = [p.problems for p in parts if len(p.problems)] or [parts[0].problems]
        return IngestResult(
            file=parts[0].file, format=parts[0].format, n_read=sum(p.n_read for p in parts),
            incidents=parts[0].incidents, problems=pd.concat(problems, ignore_index=True),
            rejected=combined_rejected([p.rejected for p in parts]),
            lsoa_agreement=float(agree / has) if has else None, warnings=parts[0].warnings,
            lsoa_checked=(agree, has) if has else None)

    def export_date(self) -> str:
        """The export's own date (:func:`export_date`), the extract-date column read a
        chunk at a time."""
        mapping = self.options["mapping"]
        column = mapping.columns.get("extract_date") if mapping else None
        if column:
            chunks = read_csv_chunks(self.path, chunk_rows=self.chunk_rows)
            first = next(chunks)
            if column in first.columns:
                return latest_export_date(
                    (f[[column]] for f in itertools.chain([first], chunks)), path=self.path,
                    mapping=mapping)
        return export_date(pd.DataFrame(), path=self.path)


def _empty_like(frame: pd.DataFrame) -> pd.DataFrame:
    """No rows, the same columns and types, and no reference to ``frame``'s data (a slice
    would keep every chunk's incidents alive)."""
    return pd.DataFrame({c: pd.Series([], dtype=t) for c, t in frame.dtypes.items()})


def _give_back_memory() -> None:
    """Return freed memory to the system: Arrow's pool keeps freed blocks for reuse, and
    the C library keeps freed heap, so without this a load's resident memory creeps up
    chunk by chunk instead of staying at one chunk's."""
    pa.default_memory_pool().release_unused()
    try:
        ctypes.CDLL(None).malloc_trim(0)  # glibc; absent elsewhere
    except (OSError, AttributeError):
        pass


def combined_rejected(parts: list[pd.DataFrame]) -> pd.DataFrame:
    """The rejected rows of a file's chunks as one table, as the whole file gives it: the
    raw text of malformed rows ('' for the others) before the reasons."""
    kept = [p for p in parts if len(p)]
    if len(kept) < 2:
        return kept[0] if kept else parts[0]
    out = pd.concat(kept, ignore_index=True)
    if "raw_text" in out.columns:
        out["raw_text"] = out["raw_text"].fillna("")
        out = out[[c for c in out.columns if c != "reasons"] + ["reasons"]]
    return out
