"""What a chunk of a streamed export needs from the chunks before it: the references seen
(a repeat of one is rejected, naming the row that first had it) and how many times each
derived police.uk key was made (its occurrence number goes on across chunks).

Kept as hashes, not text: per chunk one sorted array of 64-bit keys (a second 64-bit
hash confirms a reference's match, so a repeat is never claimed by a chance collision of
one hash) and the first rows, about 20 bytes per row, against the hundreds a row of
text takes.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

#: The two hash keys (16 characters each, pandas' hashing) of a reference.
_KEYS = ("hotspots-refs-01", "hotspots-refs-02")


def _hash(values: np.ndarray, key: str) -> np.ndarray:
    return pd.util.hash_array(np.asarray(values, dtype=object), hash_key=key,
                              categorize=False)


@dataclass
class Carry:
    """State carried from one chunk of an export to the next (see the module docstring).
    ``last`` marks the file's last chunk: what it would remember is never asked for."""

    refs: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = field(default_factory=list)
    derived: list[tuple[np.ndarray, np.ndarray]] = field(default_factory=list)
    last: bool = False

    def earlier_rows(self, values: np.ndarray, usable: np.ndarray, first: np.ndarray,
                     row_no: np.ndarray) -> np.ndarray:
        """The row of an earlier chunk that first had each value (-1: none did); then
        remember the ``first`` occurrences (among ``usable``) of the values new here."""
        out = np.full(len(values), -1, dtype=np.int64)
        if not self.refs and self.last:
            return out
        h1, h2 = _hash(values, _KEYS[0]), _hash(values, _KEYS[1])
        for keys, seconds, rows in self.refs:
            if not len(keys):
                continue
            pos = np.minimum(np.searchsorted(keys, h1), len(keys) - 1)
            hit = (keys[pos] == h1) & (seconds[pos] == h2) & (out < 0) & usable
            out[hit] = rows[pos[hit]]
        if not self.last:
            new = np.flatnonzero(usable & first & (out < 0))
            order = new[np.argsort(h1[new], kind="stable")]
            self.refs.append((h1[order], h2[order], np.asarray(row_no)[order].astype(np.int64)))
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
