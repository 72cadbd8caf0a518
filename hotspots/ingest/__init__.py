"""Exports -> clean incidents in EPSG:27700, with every rejected row kept and explained.

police.uk street-level CSVs are recognised by their header. Council exports (CSV or
XLSX) come with a mapping file (TOML) naming their columns::

    source = "lbth-asb"               # source system; references unique within it
    sheet = "Cases"                   # XLSX only, optional (default: first sheet)
    date_format = "%d/%m/%Y %H:%M"    # optional; default ISO 8601 or day-first dates

    [columns]                         # mapping field = export column
    reference = "Case Ref"
    datetime = "Reported"             # or: date = "...", time = "..."
    category = "Type"
    latitude = "Lat"                  # or: easting = "...", northing = "..."
    longitude = "Lon"
    location = "Address"              # optional
    caller = "Caller ID"              # optional
    description = "Details"           # optional
    count = "Canisters"               # optional, items per record
    extract_date = "Exported"         # optional: when the export was made (load order)

    [categories]                      # export value = taxonomy key
    "Rowdy behaviour" = "asb_nuisance"

Reading files (:func:`read_export`, :func:`read_mapping`) is kept apart from parsing
(:func:`to_incidents`), which does no I/O. The package, by what each part is about:

* :mod:`.read`: reading formats (CSV in Excel's encodings, XLSX), mappings, export dates;
* :mod:`.text`: text columns to numbers, dates and trimmed text (Arrow-backed);
* :mod:`.checks`: row checks and the problems they record;
* :mod:`.keys`: record keys (repeated references, derived police.uk keys, location keys);
* :mod:`.points`: projection, placing points in the study area, assignment to areas.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from dataclasses import dataclass

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely

from ..config import Config
from ..errors import InputError
from ..schema import INCIDENT_COLUMNS, OPTIONAL_MAPPING_FIELDS, POLICE_UK_SOURCE
from ..validate import file_message, optional_columns_message, problem_message, visible
from .carry import Carry
from .checks import (
    MAX_COUNT,
    MAX_FIELD_CHARS,
    POLICE_UK_READ,
    _check_coordinates,
    _check_text,
    _joined_messages,
    _Problems,
    _std_frame,
)
from .keys import _duplicated, _location_keys
from .points import _assign, _coordinates, _Points
from .read import (
    HEADER_MAX_BYTES,
    MAX_COLUMNS,
    Mapping,
    _as_text,
    check_date_format,
    check_mapping,
    detect_format,
    export_date,
    read_export,
    read_mapping,
)
from .text import (
    _constant,
    _factorize_text,
    _numbers,
    _parse_dates,
    _parse_times,
    _take_text,
)

__all__ = ["HEADER_MAX_BYTES", "MAX_COLUMNS", "MAX_COUNT", "MAX_FIELD_CHARS",
           "POLICE_UK_READ", "POLICE_UK_SOURCE", "IngestResult", "Mapping",
           "check_date_format", "check_mapping", "detect_format", "export_date",
           "read_export", "read_mapping", "to_incidents"]




@dataclass(frozen=True)
class IngestResult:
    """What one export gave: accepted incidents, the problems, the rejected raw rows."""

    file: str
    format: str
    n_read: int
    incidents: pd.DataFrame  # schema.INCIDENT_COLUMNS
    problems: pd.DataFrame  # schema.REJECTION_COLUMNS, one row per problem
    rejected: pd.DataFrame  # raw columns + row + reasons, one row per rejected row
    lsoa_agreement: float | None
    warnings: tuple[str, ...] = ()  # about the whole file (optional columns missing)
    #: (rows agreeing with their own LSOA code, rows with one): parts of a streamed file
    #: add up to the whole file's agreement
    lsoa_checked: tuple[int, int] | None = None

    @property
    def reasons(self) -> dict[str, int]:
        """Rejected rows per reason (a row with two problems counts under both)."""
        counts = self.problems.drop_duplicates(["row", "reason"])["reason"].value_counts()
        return {k: int(v) for k, v in sorted(counts.items())}


def to_incidents(frame: pd.DataFrame, *, file: str, config: Config,
                 layers: dict[str, gpd.GeoDataFrame], area: shapely.Geometry,
                 mapping: Mapping | None = None, today: dt.date | None = None,
                 carry: Carry | None = None) -> IngestResult:
    """Check and convert one export's rows into incidents assigned to wards and LSOAs.

    Parameters
    ----------
    frame : the export as text (:func:`read_export`).
    file : the export's name, used in every message.
    config, layers, area : study-area configuration, its layers (EPSG:27700) and the
        study-area polygon (the union of the boundary layer).
    mapping : required unless the export is a police.uk street-level file.
    today : the date future dates are judged against (default: today).
    carry : a chunk of a streamed file (:mod:`.stream`): what the chunks before it left
        (references seen, derived keys made), updated here.

    Returns
    -------
    IngestResult; ``n_read == len(incidents) + len(rejected)`` always.
    """
    fmt = detect_format(frame)
    warnings: tuple[str, ...] = ()
    if fmt == "policeuk":  # its own columns: a mapping given is not used
        mapping = Mapping(source=POLICE_UK_SOURCE, columns={})
    elif mapping is None:
        raise InputError(file_message(file, "no_mapping", start=[visible(str(c))[:40] for c in
                                                                  frame.columns[:4]]))
    else:
        check_mapping(mapping, config)
        mapping, warnings = _optional_columns(mapping, frame, file)
    malformed = frame.attrs.get("malformed", [])
    row_no = np.asarray(frame.attrs.get("row_numbers", np.arange(2, len(frame) + 2)))
    frame = _as_text(frame)
    n = len(frame)
    std = _std_frame(frame, fmt, mapping, file, carry)
    probs = _Problems(file, row_no, np.zeros(n, dtype=bool))
    flag = probs.flag
    for col in (POLICE_UK_READ if fmt == "policeuk" else dict.fromkeys(mapping.columns.values())):
        _check_text(frame[col], col, flag)
    coords = _check_coordinates(std)
    projected = _Points.start(coords.b, coords.a, coords.good, project=not coords.grid)

    ref = _check_references(std, fmt, flag, row_no, carry)
    stamp, hour, w_codes = _check_when(std, fmt, mapping, config, today or dt.date.today(), flag)
    known, cat_codes, cat_raw = _check_category(std, fmt, mapping, config, flag)
    quantity = _check_count(std, flag, n)

    # coordinates: a = latitude / northing, b = longitude / easting; each distinct position
    # is projected once (_Points.start), by a worker thread while the checks above run
    x, y, boundary_idx, points = _coordinates(coords, projected(), area,
                                              layers[config.boundary_layer], config, flag,
                                              own=(std["source_lsoa"], layers["lsoa"]))

    ok = ~probs.bad
    everything = bool(ok.all())
    keep = (lambda v: v) if everything else (lambda v: v[ok])  # noqa: E731
    n_ok = int(ok.sum())
    day = stamp.to_numpy()
    location = keep(std["location"])
    points = points.subset(ok)
    # text columns stay Arrow-backed or categorical: no copying into one object block
    cols = {
        "source": _constant(POLICE_UK_SOURCE if fmt == "policeuk" else mapping.source, n_ok),
        "ref": keep(ref),
        "category": _take_text(known + [""], cat_codes[ok]),
        "category_raw": keep(cat_raw),
        "period": _take_text(np.datetime_as_string(day.astype("datetime64[M]"), unit="M"),
                             w_codes[ok]),
        "date": _take_text(np.datetime_as_string(day.astype("datetime64[D]"), unit="D"),
                           w_codes[ok]),
        "hour": keep(hour),
        "x": keep(x), "y": keep(y),
        "location": location,
        "location_key": _location_keys(points, location, fmt, config.location_key_m),
        "caller_key": keep(std["caller"]),
        "description": keep(std["description"]),
        "quantity": keep(quantity),
    }
    src = std["source_lsoa"]
    if src is None:
        src, has_src = np.full(n_ok, "", dtype=object), np.zeros(n_ok, dtype=bool)
    else:
        src = keep(src)
        src, has_src = src.to_numpy(dtype=object), (src != "").to_numpy(dtype=bool)
    checked = _assign(cols, src, has_src, layers, config,
                      {config.boundary_layer: boundary_idx[ok]}, points)
    cols.update({"file": _constant(file, n_ok), "row": row_no[ok]})
    # every column is a new array (Arrow text: a new wrapper of immutable data), so the
    # frame need not copy them again
    out = pd.DataFrame({c: (v.array.copy() if isinstance(v, pd.Series) else v)
                        for c, v in cols.items()}, columns=list(INCIDENT_COLUMNS), copy=False)
    for line, detail, text in malformed:
        probs.rows.append((file, int(line), "(whole row)", text, "malformed_row",
                           problem_message(file, int(line), "(whole row)", text,
                                           "malformed_row", detail)))
    problems = probs.frame().sort_values(["row", "field"], kind="stable", ignore_index=True)
    return IngestResult(file=file, format=fmt, n_read=n + len(malformed),
                        incidents=out, problems=problems,
                        rejected=_rejected_rows(frame, probs.bad, row_no, malformed, problems),
                        lsoa_agreement=checked and float(checked[0] / checked[1]),
                        warnings=warnings, lsoa_checked=checked)


def _check_references(std: dict, fmt: str, flag, row_no: np.ndarray, carry: Carry | None
                      ) -> np.ndarray:
    """Flag missing and repeated references (a repeat names the row that had it first,
    in this chunk or an earlier one); the references, one a row."""
    ref, ref_col = std["ref"]
    if ref is None:
        ref = std["ref_text"].to_numpy(dtype=object)
    ref_empty = std["ref_empty"]
    flag(ref_empty, ref_col, ref, "missing_reference")
    refs = pd.Series(ref)
    dup = _duplicated(std["ref_text"], ref) & ~ref_empty
    earlier = (carry.earlier_rows(ref, ~ref_empty, ~dup, row_no) if carry is not None
               else np.full(len(refs), -1))
    repeat = dup | (earlier >= 0)  # a repeat here, or of a reference in an earlier chunk
    if repeat.any():
        here = dup & (earlier < 0)
        rows = refs.isin(refs[here]).to_numpy()  # the rows holding a repeated reference
        first_row = pd.Series(row_no[rows], index=refs[rows]).groupby(level=0).first()
        firsts = earlier.copy()
        firsts[here] = first_row[refs[here]].to_numpy()
        flag(repeat, ref_col, ref, "duplicate_crime_id" if fmt == "policeuk"
             else "duplicate_reference", firsts[repeat])
    return ref


def _check_when(std: dict, fmt: str, mapping: Mapping, config: Config, today: dt.date, flag
                ) -> tuple[pd.Series, np.ndarray, np.ndarray]:
    """Parse dates and times, each distinct text once, and flag missing, unparseable,
    future and implausible ones: ``(stamp per distinct text, hour per row (-1: none),
    each row's code into the distinct texts)``."""
    when, when_col = std["when"]
    w_codes, w_text = _factorize_text(when)
    w_obj = w_text.to_numpy(dtype=object)
    when_txt = lambda idx: w_obj[w_codes[idx]]  # noqa: E731
    no_date = (w_text == "").to_numpy(dtype=bool)[w_codes]
    flag(no_date, when_col, when_txt, "missing_date")
    if fmt == "policeuk":
        stamp = pd.to_datetime(w_text, format="%Y-%m", errors="coerce")
        hour = np.full(len(w_codes), -1)
        fmt_note = " (police.uk months are YYYY-MM)"
    else:
        stamp = _parse_dates(w_text, mapping.date_format)
        fmt_note = f" in the format {mapping.date_format}" if mapping.date_format else ""
        if std["time"] is not None:
            ttext, tcol = std["time"]
            t_codes, t_text = _factorize_text(ttext)
            t_obj = t_text.to_numpy(dtype=object)
            tparsed = _parse_times(t_text)
            flag((tparsed.isna() & (t_text != "")).to_numpy(dtype=bool)[t_codes], tcol,
                 lambda idx: t_obj[t_codes[idx]], "unparseable_date", " (times are HH:MM)")
            hour = np.where(tparsed.notna(), tparsed.dt.hour.fillna(0), -1).astype(int)[t_codes]
        else:
            has_time = w_text.str.contains(":", regex=False).to_numpy(dtype=bool)
            hour = np.where(has_time & stamp.notna(), stamp.dt.hour.fillna(0),
                            -1).astype(int)[w_codes]
    flag(stamp.isna().to_numpy()[w_codes] & ~no_date, when_col, when_txt, "unparseable_date",
         fmt_note)
    limit = pd.Timestamp(today + dt.timedelta(days=config.future_tolerance_days))
    flag((stamp.dt.normalize() > limit).to_numpy()[w_codes], when_col, when_txt, "future_date",
         today.isoformat())
    flag((stamp < pd.Timestamp(config.earliest_date)).to_numpy()[w_codes], when_col, when_txt,
         "implausible_date", config.earliest_date.isoformat())
    return stamp, hour, w_codes


def _check_category(std: dict, fmt: str, mapping: Mapping, config: Config, flag
                    ) -> tuple[list, np.ndarray, pd.Series]:
    """Look each distinct category value up once (police.uk types, or the taxonomy's keys
    and labels and the mapping's values) and flag the unknown: ``(taxonomy key per
    distinct value, each row's code into them (the last: none), the raw values)``."""
    cat_raw, cat_col = std["category"]
    codes, uniques = _factorize_text(cat_raw)
    if fmt == "policeuk":
        known = [config.police_uk_types.get(u) for u in uniques]
    else:
        lookup = {k.casefold(): k for k in config.categories}
        lookup.update({c.label.casefold(): k for k, c in config.categories.items()})
        lookup.update({k.casefold(): v for k, v in mapping.categories.items()})
        known = [lookup.get(str(u).casefold()) for u in uniques]
    cat_codes = np.arange(len(known) + 1)[codes]  # codes of -1 (missing cells) -> the last
    cat_known = np.array([k is not None for k in known] + [False])[cat_codes]
    flag(~cat_known, cat_col, lambda idx: cat_raw.iloc[idx].to_numpy(dtype=object),
         "unknown_category")
    return known, cat_codes, cat_raw


def _check_count(std: dict, flag, n: int) -> np.ndarray:
    """Items per record (1 without a count column); a count that is not a whole number
    from 0 to MAX_COUNT is flagged."""
    ctext, ccol = std["count"]
    if not ccol:
        return np.ones(n, dtype=int)
    cnum = _numbers(ctext)
    given = (ctext != "").to_numpy(dtype=bool)
    with np.errstate(invalid="ignore"):  # inf and NaN are flagged, not warned about
        badc = given & ~(np.isfinite(cnum) & (cnum >= 0) & (cnum <= MAX_COUNT)
                         & (np.mod(cnum, 1) == 0))
    flag(badc, ccol, lambda idx: ctext.iloc[idx].to_numpy(dtype=object), "invalid_count")
    return np.where(given & ~badc, np.nan_to_num(cnum), 1).astype(int)


def _rejected_rows(frame: pd.DataFrame, bad: np.ndarray, row_no: np.ndarray, malformed: list,
                   problems: pd.DataFrame) -> pd.DataFrame:
    """The rejected rows as read (malformed ones as their raw text), each with its row
    number and its reasons."""
    # a corrected rejected-rows file has the report's own "row" and "reasons": the new
    # report's replace them
    rejected = (frame.iloc[np.flatnonzero(bad)].astype(object)
                .drop(columns=["row", "reasons"], errors="ignore"))
    rejected.insert(0, "row", row_no[bad])
    if malformed:
        raw = pd.DataFrame({"row": [m[0] for m in malformed], "raw_text": [m[2] for m in
                                                                          malformed]})
        rejected = pd.concat([rejected, raw], ignore_index=True).sort_values(
            "row", kind="stable").fillna("")
    rejected["reasons"] = rejected["row"].map(_joined_messages(problems))
    return rejected.reset_index(drop=True)


def _optional_columns(mapping: Mapping, frame: pd.DataFrame, file: str
                      ) -> tuple[Mapping, tuple[str, ...]]:
    """The mapping without the optional columns the export lacks, and a warning naming
    them (a missing required column is refused later, by the column check)."""
    gone = {f: c for f, c in mapping.columns.items()
            if f in OPTIONAL_MAPPING_FIELDS and c not in frame.columns}
    if not gone:
        return mapping, ()
    kept = {f: c for f, c in mapping.columns.items() if f not in gone}
    return dataclasses.replace(mapping, columns=kept), (optional_columns_message(
        file, gone, mapping=f"mapping {mapping.path}" if mapping.path else "the mapping"),)
