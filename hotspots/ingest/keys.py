"""Record keys: repeated references, the derived keys of police.uk rows without a Crime
ID, and location keys (map points, addresses, rounded cells)."""

from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from .text import _factorize_text, _numbers, _utf8_buffers

if TYPE_CHECKING:
    from .carry import Carry
    from .points import _Points


#: Masks keeping the first k bytes of a little-endian 8-byte word, k = 0..8.
_BYTE_MASKS = np.array([(1 << (8 * k)) - 1 for k in range(9)], dtype=np.uint64)


def _duplicated(text: pd.Series | None, values: np.ndarray) -> np.ndarray:
    """``pd.Series(values).duplicated()`` (every repeat of an earlier value), where
    ``values`` is ``text`` as objects. Fast for Arrow text: a 64-bit key per value from its
    bytes, read 8 at a time from the Arrow buffer, and the exact test only among the values
    whose keys repeat (true repeats and the rare key collisions)."""
    buf = _utf8_buffers(text) if text is not None else None
    if buf is None or len(values) < 2 or np.diff(buf[0]).max() > 64:
        return pd.Series(values).duplicated().to_numpy()
    off, data = buf
    lens = np.diff(off)
    padded = np.zeros(len(data) + 8, dtype=np.uint8)
    padded[:len(data)] = data
    words = np.ndarray((len(data) + 1,), dtype="<u8", buffer=padded, strides=(1,))
    key = lens.astype(np.uint64) * np.uint64(0x9E3779B97F4A7C15)
    with np.errstate(over="ignore"):
        for w in range(0, int(lens.max()), 8):
            word = words[np.minimum(off[:-1] + w, len(data))]
            key = key * np.uint64(0x100000001B3) + (word & _BYTE_MASKS[np.clip(lens - w, 0, 8)])
            key ^= key >> np.uint64(29)
    maybe = np.flatnonzero(pd.Series(key.view(np.int64)).duplicated(keep=False).to_numpy())
    out = np.zeros(len(values), dtype=bool)
    out[maybe] = pd.Series(values[maybe]).duplicated().to_numpy()
    return out


#: Distinct integer pairs are found with a table of every pair in their range when it has
#: at most this many entries (about 9 bytes each), else by hashing.
PAIR_TABLE_MAX = 8_000_000


def _int_pairs(gx: np.ndarray, gy: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Distinct (gx, gy) integer pairs: ``(codes, ux, uy)`` with ``ux[codes] == gx`` and
    ``uy[codes] == gy``: by a table over their range when it is small (cells of a borough),
    else by one hash of a combined key when it fits in 63 bits."""
    if not len(gx):
        return np.zeros(0, dtype=np.int64), gx[:0], gy[:0]
    lo_x, lo_y = int(gx.min()), int(gy.min())
    span_x, span_y = int(gx.max()) - lo_x + 1, int(gy.max()) - lo_y + 1
    if span_x * span_y <= PAIR_TABLE_MAX:
        key = (gx - lo_x) * span_y + (gy - lo_y)
        seen = np.zeros(span_x * span_y, dtype=bool)
        seen[key] = True
        uk = np.flatnonzero(seen)
        lut = np.empty(len(seen), dtype=np.int64)
        lut[uk] = np.arange(len(uk))
        return lut[key], uk // span_y + lo_x, uk % span_y + lo_y
    if span_x * span_y < 2**62:
        codes, uk = pd.factorize((gx - lo_x) * span_y + (gy - lo_y))
        return codes, uk // span_y + lo_x, uk % span_y + lo_y
    cx, ux = pd.factorize(gx)
    cy, uy = pd.factorize(gy)
    codes, uk = pd.factorize(cx * len(uy) + cy)
    return codes, ux[uk // len(uy)], uy[uk % len(uy)]


def _derived_refs(frame: pd.DataFrame, carry: Carry | None = None) -> np.ndarray:
    """Stable keys for police.uk rows without a Crime ID (ASB): a hash of the row's parsed
    values (month, force, coordinates to 6 decimals, location text normalised, LSOA, type)
    plus its occurrence number among identical rows of the file (counted on from the
    earlier chunks of a streamed file by ``carry``). Parsed, not raw, so a file re-saved
    by a spreadsheet (trailing zeros dropped, spaces trimmed) keeps its keys.
    """
    def text(col: str) -> pd.Series:
        return (frame[col].astype(object).fillna("").astype(str).str.strip().str.casefold()
                .str.replace(r"\s+", " ", regex=True))

    coords = [pd.Series(_numbers(frame[c].str.strip()), index=frame.index)
              .map(lambda v: "" if np.isnan(v) else f"{v:.6f}")
              for c in ("Longitude", "Latitude")]
    joined = (text("Month") + "|" + text("Falls within") + "|" + coords[0] + "|" + coords[1]
              + "|" + text("Location") + "|" + text("LSOA code") + "|" + text("Crime type"))
    nth = joined.groupby(joined, sort=False).cumcount()
    if carry is not None:
        nth = nth + carry.derived_before(joined.to_numpy(dtype=object))
    nth = nth.astype(str)
    return np.array([hashlib.sha1(f"{j}|{k}".encode()).hexdigest()[:20]
                     for j, k in zip(joined, nth, strict=True)], dtype=object)


#: An address starts with a house or flat number.
_ADDRESS = r"^\s*(?:(?:flat|unit|apartment|apt)\.?\s*)?\d+[a-z]?\b"


def _location_keys(points: _Points, location: pd.Series, fmt: str, key_m: int) -> np.ndarray:
    """police.uk: the map point; council: the address when it starts with a house or flat
    number ("12 ...", "Flat 3, ..."), else BNG coordinates rounded to ``key_m`` metres (a
    street name, a postcode or a bus stop code is no address)."""
    step = 1 if fmt == "policeuk" else key_m
    text = lambda v: pa.scalar(v, pa.large_string())  # noqa: E731
    # positions share rounded cells: each distinct cell is formatted once
    codes, gx, gy = _int_pairs(*(np.round(v / step).astype(np.int64) for v in (points.ux,
                                                                                points.uy)))
    gx, gy = (pc.cast(pa.array(v * step, pa.int64()), pa.large_string()) for v in (gx, gy))
    keys = pc.binary_join_element_wise(text("xy"), gx, gy, text(":")).to_numpy(
        zero_copy_only=False)[codes[points.ids]]
    if fmt == "council" and len(location):
        codes, uniq = _factorize_text(location)  # addresses repeat: normalise each once
        uniq = pa.array(uniq.to_numpy(dtype=object), pa.large_string())
        addr = pc.match_substring_regex(uniq, _ADDRESS, ignore_case=True).to_numpy(
            zero_copy_only=False)
        norm = pc.utf8_trim_whitespace(pc.replace_substring_regex(
            pc.utf8_lower(uniq), r"[^\w]+", " "))
        addr_keys = pc.binary_join_element_wise(text("addr"), norm, text(":")).to_numpy(
            zero_copy_only=False)
        use = (codes >= 0) & addr[codes]
        keys[use] = addr_keys[codes[use]]
    return keys
