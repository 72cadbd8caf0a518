"""Row checks: fields pulled from the export's columns, oversized and control-character
cells, coordinates, and the problems they give (one per row and field)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from ..errors import InputError
from ..schema import REJECTION_COLUMNS
from ..validate import (
    CONTROL_CHARACTERS,
    describe_character,
    file_message,
    problem_message,
    visible,
)
from .keys import _derived_refs
from .read import Mapping
from .text import _numbers, _strip, _utf8_buffers

#: Items per record above this are rejected (a count, not a typing slip or a date).
MAX_COUNT = 1_000_000
#: The police.uk columns read (the others are not kept).
POLICE_UK_READ = ("Crime ID", "Month", "Falls within", "Longitude", "Latitude", "Location",
                  "LSOA code", "Crime type")
#: A field longer than this is rejected: it is Excel's cell limit, so such a value cannot
#: have come whole from a spreadsheet (usually a quote mark that is never closed has
#: swallowed the lines after it).
MAX_FIELD_CHARS = 32_767


def _check_text(text: pd.Series, col: str, flag) -> None:
    """Flag the values longer than :data:`MAX_FIELD_CHARS` and those holding a control
    character other than tab and line breaks (NUL and the like are never stored). The
    Arrow buffers are scanned first: nearly every column has neither."""
    buf = _utf8_buffers(text)
    if buf is None:
        long_, suspect = np.ones(len(text), dtype=bool), True
    else:
        off, data = buf
        long_ = np.diff(off) > MAX_FIELD_CHARS  # bytes >= characters: candidates only
        # a byte below 0x20 (C0 controls) or from 0x7F (DEL, and every non-ASCII character,
        # C1 controls among them): two reductions, no temporary arrays
        suspect = bool(len(data)) and bool(data.min() < 0x20 or data.max() >= 0x7F)
    if long_.any():
        chars = np.zeros(len(text), dtype=np.int64)
        chars[long_] = text[long_].str.len().to_numpy(dtype=np.int64)
        over = chars > MAX_FIELD_CHARS
        flag(over, col, lambda idx: text.iloc[idx].to_numpy(dtype=object), "oversized_field",
             [f"{c:,}" for c in chars[over]])
    if suspect:
        has = pc.match_substring_regex(pa.array(text.array), CONTROL_CHARACTERS.pattern)
        bad = has.to_numpy(zero_copy_only=False).astype(bool)
        if bad.any():
            values = text[bad].to_numpy(dtype=object)
            flag(bad, col, lambda idx: text.iloc[idx].to_numpy(dtype=object),
                 "control_characters",
                 [describe_character(_first_control(v)) for v in values])


@dataclass
class _Problems:
    file: str
    row_no: np.ndarray
    bad: np.ndarray
    rows: list = field(default_factory=list)

    def flag(self, mask, field_name: str, values, reason: str, details=None) -> None:
        """Record a problem for each row in ``mask``; ``values`` is an array or a function
        of the row indices (so values are formatted only for the rows that need them)."""
        idx = np.nonzero(np.asarray(mask, dtype=bool))[0]
        if not len(idx):
            return
        shown = values(idx) if callable(values) else np.asarray(values, dtype=object)[idx]
        per_row = details is not None and np.ndim(details) > 0  # once: np.ndim copies a list
        for j, i in enumerate(idx):
            detail = "" if details is None else str(details[j] if per_row else details)
            row = int(self.row_no[i])
            self.rows.append((self.file, row, field_name, visible(str(shown[j])), reason,
                              problem_message(self.file, row, field_name, str(shown[j]),
                                              reason, detail)))
        self.bad[idx] = True

    def frame(self) -> pd.DataFrame:
        return pd.DataFrame(self.rows, columns=list(REJECTION_COLUMNS))


def _std_frame(frame: pd.DataFrame, fmt: str, mapping: Mapping | None, file: str,
               carry=None) -> dict:
    """Pull the fields out of the export's own columns (Arrow text, stripped); ``carry``:
    what earlier chunks of a streamed file left (:class:`.carry.Carry`)."""
    empty = pd.Series("", index=frame.index, dtype="string[pyarrow]")
    if fmt == "policeuk":
        ids = _strip(frame["Crime ID"]).to_numpy(dtype=object)
        missing = ids == ""
        if missing.any():
            ids[missing] = _derived_refs(frame.loc[missing], carry)
        return {
            "ref": (ids, "Crime ID"), "ref_empty": ids == "", "ref_text": None,
            "when": (_strip(frame["Month"]), "Month"),
            "time": None, "category": (_strip(frame["Crime type"]), "Crime type"),
            "a": (_strip(frame["Latitude"]), "Latitude"),
            "b": (_strip(frame["Longitude"]), "Longitude"), "grid": False,
            "location": _strip(frame["Location"]), "caller": empty, "description": empty,
            "count": (empty, None), "source_lsoa": _strip(frame["LSOA code"]),
        }
    assert mapping is not None
    cols = mapping.columns
    absent = [f"'{visible(c)}' ({f})" for f, c in cols.items() if c not in frame.columns]
    if absent:
        names = [visible(str(c)) for c in frame.columns[:20]]
        raise InputError(file_message(
            file, "export_columns_missing", absent=", ".join(absent),
            mapping=f"mapping {mapping.path}" if mapping.path else "the mapping",
            columns=names if len(frame.columns) <= 20 else f"{names[:-1]} and "
            f"{len(frame.columns) - 19:,} more"))

    def col(name: str) -> pd.Series:
        return _strip(frame[cols[name]]) if name in cols else empty

    grid = "easting" in cols
    ref = col("reference")
    return {
        "ref": (None, cols["reference"]),  # objects made later, while projection runs
        "ref_empty": (ref == "").to_numpy(dtype=bool), "ref_text": ref,
        "when": (col("datetime") if "datetime" in cols else col("date"),
                 cols.get("datetime", cols.get("date"))),
        "time": (col("time"), cols.get("time")) if "time" in cols else None,
        "category": (col("category"), cols["category"]),
        "a": (col("northing" if grid else "latitude"), cols["northing" if grid else "latitude"]),
        "b": (col("easting" if grid else "longitude"), cols["easting" if grid else "longitude"]),
        "grid": grid, "location": col("location"), "caller": col("caller"),
        "description": col("description"), "count": (col("count"), cols.get("count")),
        "source_lsoa": None,  # council exports carry no LSOA of their own
    }


@dataclasses.dataclass(frozen=True)
class _Coords:
    """A file's coordinate columns parsed and checked (a = latitude / northing, b =
    longitude / easting): ``checks`` are the problems to flag, in order, ``good`` the rows
    with usable coordinates, ``both`` shows a row's pair of values."""

    a: np.ndarray
    b: np.ndarray
    field: str
    grid: bool
    checks: list
    good: np.ndarray
    both: object


def _check_coordinates(std: dict) -> _Coords:
    """Parse the coordinates and find the rows whose coordinates are unusable (flagged
    later, by :func:`_coordinates`, in this order)."""
    (a_text, a_col), (b_text, b_col) = std["a"], std["b"]
    grid = std["grid"]
    n = len(a_text)
    a, b = _numbers(a_text), _numbers(b_text)
    a_str = lambda idx: a_text.iloc[idx].to_numpy(dtype=object)  # noqa: E731
    b_str = lambda idx: b_text.iloc[idx].to_numpy(dtype=object)  # noqa: E731
    both = lambda idx: [f"{p}, {q}" for p, q in zip(a_str(idx), b_str(idx),  # noqa: E731
                                                   strict=True)]
    fld = f"{a_col}/{b_col}"
    checks = []
    coord_bad = np.zeros(n, dtype=bool)
    for text, col, show in ((a_text, a_col, a_str), (b_text, b_col, b_str)):
        m = (text == "").to_numpy(dtype=bool) & ~coord_bad
        checks.append((m, col, show, "missing_coordinates"))
        coord_bad |= m
    for vals, col, show in ((a, a_col, a_str), (b, b_col, b_str)):
        m = ~coord_bad & ~np.isfinite(vals)
        checks.append((m, col, show, "unparseable_coordinates"))
        coord_bad |= m
    m = ~coord_bad & (a == 0) & (b == 0)
    checks.append((m, fld, both, "zero_coordinates"))
    coord_bad |= m
    if grid:
        m = ~coord_bad & (np.abs(a) <= 90) & (np.abs(b) <= 180)
        checks.append((m, f"{b_col}/{a_col}", lambda idx: [f"{q}, {p}" for p, q in
                                                           zip(a_str(idx), b_str(idx),
                                                               strict=True)],
                       "latlon_in_grid"))
    else:
        m = ~coord_bad & ((np.abs(a) > 90) | (np.abs(b) > 180))
        checks.append((m, fld, both, "grid_in_latlon"))
    coord_bad |= m
    return _Coords(a, b, fld, grid, checks, ~coord_bad, both)


def _joined_messages(problems: pd.DataFrame) -> pd.Series:
    """Each rejected row's messages joined by " | ", indexed by row (most rows have one:
    only rows with several are grouped)."""
    several = problems["row"].duplicated(keep=False).to_numpy()
    one = problems.loc[~several]
    msgs = pd.Series(one["message"].to_numpy(), index=one["row"].to_numpy(), dtype=object)
    if several.any():
        msgs = pd.concat([msgs, problems.loc[several].groupby("row")["message"].agg(" | ".join)])
    return msgs


def _first_control(value: str) -> str:
    """The first control character of ``value`` (one is known to be there)."""
    found = CONTROL_CHARACTERS.search(value)
    return found.group() if found else ""
