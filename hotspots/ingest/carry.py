"""What a chunk of a streamed export needs from the chunks before it: the references seen
(a repeat of one is rejected, naming the row that first had it) and how many times each
derived police.uk key was made (its occurrence number goes on across chunks).

Kept as hashes, not text: one sorted array of 64-bit keys (Python's own hash of the
text, made once per reference and kept with it, so checking for repeats has made most
already), merged chunk by chunk, with a second 64-bit hash that confirms a reference's
match (so a repeat is never claimed by a chance collision of one hash; made only for
the references kept and the few that match) and the first rows, about 24 bytes per row,
against the hundreds a row of text takes.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

#: The hash keys (16 characters each, pandas' hashing) of a reference's second hash and
#: of the derived keys.
_KEYS = ("hotspots-refs-01", "hotspots-refs-02")


def _hash(values: np.ndarray, key: str) -> np.ndarray:
    return pd.util.hash_array(np.asarray(values, dtype=object), hash_key=key,
                              categorize=False)


def _first_hash(values: np.ndarray) -> np.ndarray:
    """Python's hash of each value (this process's: the carry lives no longer)."""
    return np.fromiter(map(hash, values), dtype=np.int64, count=len(values))


@dataclass
class Carry:
    """State carried from one chunk of an export to the next (see the module docstring).
    ``last`` marks the file's last chunk: what it would remember is never asked for."""

    #: (first hashes sorted, second hashes, rows) of the references of earlier chunks
    refs: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None
    derived: list[tuple[np.ndarray, np.ndarray]] = field(default_factory=list)
    last: bool = False

    def earlier_rows(self, values: np.ndarray, usable: np.ndarray, first: np.ndarray,
                     row_no: np.ndarray) -> np.ndarray:
        """The row of an earlier chunk that first had each value (-1: none did); then
        remember the ``first`` occurrences (among ``usable``) of the values new here."""
        out = np.full(len(values), -1, dtype=np.int64)
        if self.refs is None and self.last:
            return out
        values = np.asarray(values, dtype=object)
        h1 = _first_hash(values)
        if self.refs is not None and len(self.refs[0]):
            keys, seconds, rows = self.refs
            # looked up in their own order: a search starts where the last one ended, in
            # memory just read (500k in 500k: 0.45 s in a random order, 0.08 s sorted)
            by = np.argsort(h1)
            pos = np.empty(len(h1), dtype=np.intp)
            pos[by] = np.minimum(np.searchsorted(keys, h1[by]), len(keys) - 1)
            maybe = np.flatnonzero((keys[pos] == h1) & usable)
            hit = seconds[pos[maybe]] == _hash(values[maybe], _KEYS[1])
            out[maybe[hit]] = rows[pos[maybe[hit]]]
        if not self.last:
            new = np.flatnonzero(usable & first & (out < 0))
            new = new[np.argsort(h1[new], kind="stable")]
            add = (h1[new], _hash(values[new], _KEYS[1]),
                   np.asarray(row_no)[new].astype(np.int64))
            if self.refs is None:
                self.refs = add
            else:  # merged into the sorted keys: one search per chunk, however many before
                at = np.searchsorted(self.refs[0], add[0], side="right")
                keys, seconds, rows = (np.insert(old, at, part)
                                       for old, part in zip(self.refs, add, strict=True))
                self.refs = (keys, seconds, rows)
        return out

    def derived_before(self, joined: np.ndarray) -> np.ndarray:
        """How many rows of earlier chunks had each of these derived-key texts; then count
        this chunk's."""
        keys = _hash(joined, _KEYS[0])
        before = np.zeros(len(keys), dtype=np.int64)
        for seen, counts in self.derived:
            if not len(seen):
                continue
            pos = np.minimum(np.searchsorted(seen, keys), len(seen) - 1)
            hit = seen[pos] == keys
            before[hit] += counts[pos[hit]]
        if not self.last:
            uniq, counts = np.unique(keys, return_counts=True)
            self.derived.append((uniq, counts.astype(np.int64)))
        return before
