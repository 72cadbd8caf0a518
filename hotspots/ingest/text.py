"""Text columns (Arrow-backed) turned into values: numbers, dates, times, trimmed text,
distinct values; read from the Arrow buffers where that is cheaper."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

_DAYFIRST_FORMATS = ("%d/%m/%Y %H:%M", "%d/%m/%Y %H:%M:%S", "%d/%m/%Y", "%d-%m-%Y %H:%M",
                     "%d-%m-%Y")


# --- parsing helpers -------------------------------------------------------------------

def _parse_dates(text: pd.Series, fmt: str | None) -> pd.Series:
    """Dates as naive UK local time. With ``fmt``, that format first; then ISO 8601 (an
    offset such as +01:00 is converted to London time) and day-first UK forms."""
    out = pd.Series(pd.NaT, index=text.index, dtype="datetime64[ns]")
    if fmt:
        out = pd.to_datetime(text, format=fmt, errors="coerce")
    todo = (out.isna() & (text != "")).to_numpy(dtype=bool)
    offset = text.str.contains(r"(?:[+-]\d\d:?\d\d|Z)$", regex=True).to_numpy(dtype=bool)
    plain, zoned = todo & ~offset, todo & offset
    if plain.any():
        out[plain] = pd.to_datetime(text[plain], format="ISO8601", errors="coerce")
    if zoned.any():  # an offset is converted to London time
        out[zoned] = (pd.to_datetime(text[zoned], format="ISO8601", errors="coerce", utc=True)
                      .dt.tz_convert("Europe/London").dt.tz_localize(None))
    if fmt:
        return out
    for f in _DAYFIRST_FORMATS:
        todo = (out.isna() & (text != "")).to_numpy(dtype=bool)
        if not todo.any():
            break
        out[todo] = pd.to_datetime(text[todo], format=f, errors="coerce")
    return out


def _parse_times(text: pd.Series) -> pd.Series:
    out = pd.to_datetime(text, format="%H:%M", errors="coerce")
    todo = (out.isna() & (text != "")).to_numpy(dtype=bool)
    if todo.any():
        out[todo] = pd.to_datetime(text[todo], format="%H:%M:%S", errors="coerce")
    return out


def _numbers(text: pd.Series) -> np.ndarray:
    """Text -> float, NaN where it is not a number (Arrow cast first: fast when clean)."""
    try:
        arr = pc.cast(pa.array(text.array), pa.float64())
        return arr.to_numpy(zero_copy_only=False)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        return pd.to_numeric(text.astype(object), errors="coerce").to_numpy(dtype=float)


def _take_text(values, codes: np.ndarray) -> pd.arrays.ArrowStringArray:
    """``values[codes]`` as Arrow-backed text: cheap when few distinct values repeat."""
    arr = pa.array(np.asarray(values, dtype=object), pa.large_string())
    return pd.arrays.ArrowStringArray(arr.take(pa.array(codes)))


def _utf8_buffers(text: pd.Series) -> tuple[np.ndarray, np.ndarray] | None:
    """``(offsets, bytes)`` of an Arrow-backed text column without missing values: value i
    is ``bytes[offsets[i]:offsets[i + 1]]``. None for any other column."""
    if not isinstance(text.dtype, pd.StringDtype):
        return None
    arr = pa.array(text.array)
    if arr.null_count or not (pa.types.is_string(arr.type) or pa.types.is_large_string(arr.type)):
        return None
    wide = pa.types.is_large_string(arr.type)
    off = np.frombuffer(arr.buffers()[1], dtype=np.int64 if wide else np.int32)
    off = off[arr.offset:arr.offset + len(arr) + 1].astype(np.int64, copy=False)
    data = arr.buffers()[2]
    return off, np.frombuffer(data, dtype=np.uint8) if data is not None else np.zeros(0, np.uint8)


def telling_word(text: pd.Series) -> np.ndarray | None:
    """Eight bytes of each value of text without missing values, from the
    first multiple of 8 where the values differ (zero past a value's end), as unsigned
    64-bit numbers that sort as those bytes do: for police.uk crime IDs their first 8
    bytes, for "ASB-2024-000123" the next 8. None for any other column, or when all the
    values are the same. Text as Python strings is read as Arrow text first."""
    if text.dtype == object:
        try:
            text = pd.Series(pd.arrays.ArrowStringArray(pa.array(text.to_numpy(),
                                                                 pa.large_string())))
        except (pa.ArrowInvalid, pa.ArrowTypeError):
            return None
    buf = _utf8_buffers(text)
    if buf is None:
        return None
    off, data = buf
    lens = np.diff(off)
    padded = np.zeros(len(data) + 8, dtype=np.uint8)
    padded[:len(data)] = data
    words = np.ndarray((len(data) + 1,), dtype="<u8", buffer=padded, strides=(1,))
    keep = np.array([(1 << (8 * k)) - 1 for k in range(9)], dtype=np.uint64)
    for at in range(0, int(lens.max(initial=0)), 8):
        word = words[np.minimum(off[:-1] + at, len(data))] & keep[np.clip(lens - at, 0, 8)]
        if (word != word[0]).any():
            return word.byteswap()
    return None


def _strip(text: pd.Series) -> pd.Series:
    """``text.str.strip()``, skipped (``text`` itself) when no value starts or ends with a
    space, a control character or a non-ASCII byte: checked on the Arrow buffers, which is
    cheaper than trimming a column that is nearly always clean already."""
    buf = _utf8_buffers(text)
    if buf is None:
        return text.str.strip()
    off, data = buf
    if not len(data):
        return text  # every value is empty
    # first and last byte of each value (for an empty value, bytes of its neighbours: at
    # worst a needless strip)
    first = data[np.minimum(off[:-1], len(data) - 1)]
    last = data[off[1:] - 1]
    # printable ASCII (0x21-0x7e) is the only byte range that needs no trimming
    if ((first - np.uint8(0x21)) <= 0x5D).all() and ((last - np.uint8(0x21)) <= 0x5D).all():
        return text
    return text.str.strip()


def _factorize_text(text: pd.Series) -> tuple[np.ndarray, pd.Series]:
    """``(codes, values)`` with ``values.iloc[codes]`` equal to ``text``: a column of few
    distinct values (dates, times) is then parsed once per value."""
    arr = pa.array(text.array)
    if arr.null_count:
        codes, uniq = pd.factorize(text, use_na_sentinel=False)
        return np.asarray(codes, dtype=np.int64), pd.Series(uniq, dtype=text.dtype)
    enc = pc.dictionary_encode(arr)
    return (enc.indices.to_numpy(zero_copy_only=False).astype(np.int64),
            pd.Series(pd.arrays.ArrowStringArray(enc.dictionary), dtype=text.dtype))


def few_values(column: pd.Series) -> pa.DictionaryArray | None:
    """The dictionary encoding of Arrow-backed text without missing values whose distinct
    values are few (a quarter of its rows at most; a column whose first 10,000 values
    are nearly all distinct is not encoded at all: street names are, map points or
    references not); else None."""
    values = column.array
    if not isinstance(values, pd.arrays.ArrowStringArray):
        return None
    arr = pa.array(values)
    if isinstance(arr, pa.ChunkedArray):  # a frame put together from parts
        arr = arr.combine_chunks()
    sample = arr.slice(0, 10_000)
    if arr.null_count or pc.count_distinct(sample).as_py() > 0.95 * len(sample):
        return None
    enc = pc.dictionary_encode(arr)
    return enc if len(enc.dictionary) * 4 <= len(arr) else None


def _constant(value: str, n: int) -> pd.arrays.ArrowStringArray:
    return pd.arrays.ArrowStringArray(pa.repeat(pa.scalar(value, pa.large_string()), n))
