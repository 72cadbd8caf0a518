"""Property-based fuzzing of ingest (hypothesis): arbitrary bytes, rows with random
corruptions, encodings, separators and mappings, through the public entry points
(read_export, read_mapping, to_incidents, jobs.ingest_files).

Properties: the only exception that escapes is the package's own (HotspotsError), with a
message that names the file (and for a row: the row, the field and a fix, with no codec
jargon, temporary folder or control character in it); rows read = accepted + rejected;
a row written without a corruption is accepted (no good row is lost to its neighbours).

Runs derandomized (the same examples on every run: reproducible in CI) within a fixed
number of examples each; ``HYPOTHESIS_PROFILE=explore`` draws new examples, and more;
``HYPOTHESIS_PROFILE=quick`` stops at the first failure without shrinking it.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import os
import re
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import shapely
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from pyproj import Transformer

from hotspots import geography, jobs
from hotspots.errors import HotspotsError
from hotspots.ingest import Mapping, read_export, read_mapping, to_incidents
from hotspots.schema import MAPPING_FIELDS, POLICE_UK_HEADER

settings.register_profile(
    "ci", derandomize=True, database=None, deadline=20_000, print_blob=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                           HealthCheck.data_too_large])
settings.register_profile(
    "explore", parent=settings.get_profile("ci"), derandomize=False)
settings.register_profile(  # hunting: new examples, the first failure shown unshrunk
    "quick", parent=settings.get_profile("ci"), derandomize=False,
    phases=[Phase.explicit, Phase.generate])
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))
SCALE = 10 if os.environ.get("HYPOTHESIS_PROFILE") in ("explore", "quick") else 1


def examples(n: int):
    return settings(max_examples=n * SCALE)


TODAY = dt.date(2024, 9, 15)
HEADER = ["Ref", "When", "Type", "Lat", "Lon", "Where", "Caller", "Text", "Qty"]
MAPPING = Mapping(source="fuzz", columns={
    "reference": "Ref", "datetime": "When", "category": "Type", "latitude": "Lat",
    "longitude": "Lon", "location": "Where", "caller": "Caller", "description": "Text",
    "count": "Qty"}, categories={"Rowdy": "asb_nuisance"}, path="fuzz.toml")
CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")
TEXT_COLUMNS = ("ref", "category_raw", "location", "caller_key", "description")

#: Values export systems and spreadsheets put where a value should be, and text that
#: upsets CSV readers.
NASTY = ["", " ", "0", "-0", "0.0", "NaN", "nan", "inf", "-inf", "1e400", "NULL", "#N/A",
         "None", "1899-12-31", "1900-01-01", "1900-01", "1970-01-01", "00/01/1900",
         "9999-12-31", "2024-02-30", "31/02/2024", "2024-13", "24:00", "=1+2", "@SUM(A1)",
         "\x00", "a\x00b", "\x1b[31m", "\x7f", "\x90", '"', '""', '"unclosed', ",", ",,",
         "\t", "\n", "\r", "\r\n", "a\nb", "\ufeff", "\u2028", "é", "Ａ", "🙂", "\\",
         "x" * 33_000, "-0.0716", "51.5205", "530000", "180000", "Rowdy", "Burglary"]
corruption = st.one_of(st.sampled_from(NASTY), st.text(max_size=30),
                       st.integers().map(str), st.floats().map(repr))
plain = st.text(alphabet="abcdefghijklmnopqrstuvwxyz ABCDEFGHIJ0123456789-'/&.,", max_size=20)


@pytest.fixture(scope="module")
def inside(layers):
    """Longitude/latitude of a point well inside each LSOA (so a clean row is accepted)."""
    pts = shapely.get_coordinates(layers["lsoa"].geometry.representative_point().values)
    lon, lat = Transformer.from_crs(27700, 4326, always_xy=True).transform(pts[:, 0],
                                                                          pts[:, 1])
    return [(f"{a:.6f}", f"{b:.6f}") for a, b in zip(lat, lon, strict=True)]


def clean_council_row(i: int, draw, inside) -> dict:
    lat, lon = inside[draw(st.integers(0, len(inside) - 1))]
    day = dt.date(2020, 1, 1) + dt.timedelta(days=draw(st.integers(0, 1600)))
    when = draw(st.sampled_from(["%Y-%m-%d %H:%M", "%d/%m/%Y %H:%M", "%Y-%m-%d",
                                 "%Y-%m-%dT%H:%M:%S"]))
    stamp = dt.datetime.combine(day, dt.time(draw(st.integers(0, 23)), 5))
    return {"Ref": f"REF-{i}-OK", "When": stamp.strftime(when),
            "Type": draw(st.sampled_from(["Rowdy", "rowdy", "asb_nuisance"])),
            "Lat": lat, "Lon": lon, "Where": draw(plain), "Caller": draw(plain),
            "Text": draw(plain), "Qty": draw(st.sampled_from(["", "1", "3"]))}


def clean_police_row(i: int, draw, inside, config) -> dict:
    lat, lon = inside[draw(st.integers(0, len(inside) - 1))]
    row = dict.fromkeys(POLICE_UK_HEADER, "")
    row.update({"Crime ID": draw(st.sampled_from([f"{i:064x}", ""])),
                "Month": f"{draw(st.integers(2019, 2023))}-{draw(st.integers(1, 12)):02d}",
                "Reported by": "Metropolitan Police Service",
                "Falls within": "Metropolitan Police Service", "Longitude": lon,
                "Latitude": lat, "Location": f"On or near {draw(plain)}",
                "Crime type": draw(st.sampled_from(sorted(config.police_uk_types))),
                "Context": draw(plain)})
    row["Location"] += f" {i}"  # ASB rows (no Crime ID) are told apart by their fields
    return row


@st.composite
def exports(draw, inside, config):
    """(file bytes, suffix, the rows as written, which rows are clean, whether the
    structure is sure to survive, police.uk or not)."""
    police = draw(st.booleans())
    header = list(POLICE_UK_HEADER) if police else HEADER
    n = draw(st.integers(0, 12))
    rows, clean = [], []
    for i in range(n):
        row = clean_police_row(i, draw, inside, config) if police else \
            clean_council_row(i, draw, inside)
        bad = draw(st.lists(st.sampled_from(header), max_size=3, unique=True)) \
            if draw(st.booleans()) else []
        for col in bad:
            row[col] = draw(corruption)
        rows.append([row[h] for h in header])
        clean.append(not bad)
    sep = draw(st.sampled_from([",", ",", "\t"]))
    quoted = draw(st.booleans())
    eol = draw(st.sampled_from(["\n", "\r\n"]))
    if quoted:  # as a spreadsheet writes it: a cell with a line break of any kind quoted
        buf = io.StringIO()
        minimal = eol == "\r\n"  # (Python's writer leaves a lone \r unquoted with "\n")
        csv.writer(buf, delimiter=sep, lineterminator=eol, quoting=csv.QUOTE_MINIMAL
                   if minimal else csv.QUOTE_ALL).writerows([header, *rows])
        text = buf.getvalue()
    else:
        text = "".join(sep.join(r) + eol for r in [header, *rows])
    encoding = draw(st.sampled_from(["utf-8", "utf-8-sig", "cp1252", "utf-16", "utf-16-le"]))
    data = text.encode(encoding, errors="replace")
    suffix = draw(st.sampled_from([".csv", ".txt"]))
    return data, suffix, rows, clean, quoted, police


def check_messages(messages, name: str, tmp: str) -> None:
    for m in messages:
        assert m.startswith(f"{name} row ") and " field '" in m and ". Fix: " in m, m
        assert "codec" not in m and tmp not in m and not CONTROL.search(m), m


def check_result(res, name: str, tmp: str, config) -> None:
    inc, rej, probs = res.incidents, res.rejected, res.problems
    assert res.n_read == len(inc) + len(rej)
    assert set(rej["row"]) == set(probs["row"])
    assert not set(inc["row"]) & set(rej["row"]) and inc["row"].is_unique
    check_messages(probs["message"], name, tmp)
    for col in TEXT_COLUMNS:
        assert not inc[col].astype(str).str.contains(CONTROL.pattern).any(), col
    if len(inc):
        assert inc["date"].min() >= config.earliest_date.isoformat()
        assert inc["date"].max() <= (TODAY + dt.timedelta(days=1)).isoformat()
        assert inc["hour"].between(-1, 23).all() and (inc["quantity"] >= 0).all()
        assert np.isfinite(inc["x"]).all() and np.isfinite(inc["y"]).all()


def ingest(path: Path, config, layers, area, mapping):
    """read_export then to_incidents; None when the file is refused (with a good message)."""
    try:
        frame = read_export(path)
        return to_incidents(frame, file=path.name, config=config, layers=layers, area=area,
                            mapping=mapping, today=TODAY)
    except HotspotsError as exc:
        msg = str(exc)
        assert msg.startswith((f"{path.name}: ", f"{MAPPING.path}: ")), msg
        assert "Fix: " in msg or "Name the export column" in msg or "mapping" in msg, msg
        assert "codec" not in msg and str(path.parent) not in msg, msg
        assert not CONTROL.search(msg), msg
        return None


@pytest.fixture(scope="module")
def area(layers, config):
    return geography.study_area(layers, config)


@examples(120)
@given(data=st.data())
def test_rows_with_random_corruptions_in_any_encoding(data, inside, config, layers, area):
    raw, suffix, rows, clean, quoted, police = data.draw(exports(inside, config))
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / f"export{suffix}"
        path.write_bytes(raw)
        res = ingest(path, config, layers, area, None if police else MAPPING)
        if res is None:
            assert not quoted, "a file written by a CSV writer is refused"
            return
        check_result(res, path.name, tmp, config)
        if quoted:  # the structure survives: every row read, every clean row accepted
            assert res.n_read == len(rows)
            want = {i + 2 for i, ok in enumerate(clean) if ok}
            assert want <= set(res.incidents["row"]), res.problems["message"].tolist()


@examples(150)
@given(raw=st.binary(max_size=400), suffix=st.sampled_from([".csv", ".txt", ".xlsx"]),
       prefix=st.sampled_from([b"", b"\xff\xfe", b"\xfe\xff", b"\xef\xbb\xbf", b"PK\x03\x04",
                               ",".join(HEADER).encode() + b"\n"]))
def test_arbitrary_bytes(raw, suffix, prefix, config, layers, area):
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / f"junk{suffix}"
        path.write_bytes(prefix + raw)
        res = ingest(path, config, layers, area, MAPPING)
        if res is not None:
            check_result(res, path.name, tmp, config)


def toml_value(v) -> str:
    if isinstance(v, dict):
        return "{ " + ", ".join(f"{json.dumps(k)} = {toml_value(x)}" for k, x in v.items()) + " }"
    if isinstance(v, list):
        return "[" + ", ".join(toml_value(x) for x in v) + "]"
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, str):
        return json.dumps(v)
    return repr(v)


DATE_CODES = st.text(alphabet="%dmYyHMSbBjpIaAzZfQ/-: xT", max_size=14)
any_value = st.one_of(st.text(max_size=12), st.integers(-10, 10), st.booleans(),
                      st.lists(st.integers(0, 3), max_size=2),
                      st.dictionaries(st.text(max_size=3), st.integers(0, 3), max_size=2))


@st.composite
def mapping_files(draw, config) -> bytes:
    if draw(st.integers(0, 9)) == 0:
        return draw(st.binary(max_size=200))
    cols = {}
    for f in draw(st.lists(st.sampled_from(list(MAPPING_FIELDS)), max_size=9, unique=True)):
        cols[f] = draw(st.one_of(st.sampled_from(HEADER), st.text(max_size=6), any_value))
    for f in draw(st.lists(st.text(max_size=6), max_size=1)):
        cols[f] = draw(st.sampled_from(HEADER))
    if draw(st.booleans()):  # usually a usable set of columns
        cols.update(MAPPING.columns)
        cols.pop(draw(st.sampled_from([None, "count", "datetime", "latitude"])), None)
    cats = draw(st.dictionaries(st.one_of(st.sampled_from(["Rowdy", "Loud", ""]), st.text(
        max_size=6)), st.one_of(st.sampled_from(sorted(config.categories)), any_value),
        max_size=3))
    top = {"source": draw(st.one_of(st.just("fuzz"), any_value)),
           "date_format": draw(st.one_of(st.none(), DATE_CODES, st.sampled_from(
               ["%d/%m/%Y %H:%M", "%Y-%m-%d", "%d/%m/%y", "%Q", "%H:%M", "%Y%m%d", "%j %Y"]),
               any_value)),
           "sheet": draw(st.one_of(st.none(), st.text(max_size=5), any_value))}
    lines = [f"{k} = {toml_value(v)}" for k, v in top.items() if v is not None]
    if draw(st.booleans()):
        lines.append(f"columns = {toml_value(draw(any_value))}")
    else:
        lines += ["[columns]"] + [f"{json.dumps(k)} = {toml_value(v)}" for k, v in cols.items()]
    lines += ["[categories]"] + [f"{json.dumps(k)} = {toml_value(v)}" for k, v in cats.items()]
    text = "\n".join(lines) + "\n"
    return text.encode(draw(st.sampled_from(["utf-8", "utf-8", "utf-16", "utf-8-sig"])))


@examples(120)
@given(data=st.data())
def test_mappings_valid_and_invalid(data, config, layers, area, inside):
    raw = data.draw(mapping_files(config))
    when = data.draw(st.lists(st.one_of(st.sampled_from(NASTY[:25]), st.text(max_size=12),
                                        st.just("31/08/2024 21:30")), min_size=1, max_size=4))
    lat, lon = inside[0]
    frame = pd.DataFrame([{**dict.fromkeys(HEADER, ""), "Ref": f"R{i}", "When": w,
                           "Type": "Rowdy", "Lat": lat, "Lon": lon}
                          for i, w in enumerate(when)], dtype=str)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "m.toml"
        path.write_bytes(raw)
        try:
            mapping = read_mapping(path, config)
        except HotspotsError as exc:
            msg = str(exc)
            assert msg.startswith("m.toml: ") and tmp not in msg and "codec" not in msg, msg
            assert not CONTROL.search(msg), msg
            return
        try:
            res = to_incidents(frame, file="export.csv", config=config, layers=layers,
                               area=area, mapping=mapping, today=TODAY)
        except HotspotsError as exc:
            assert str(exc).startswith("export.csv: column(s) "), str(exc)
            return
        check_result(res, "export.csv", tmp, config)


@examples(15)
@given(data=st.data())
def test_excel_workbooks(data, inside, config, layers, area):
    """XLSX: cells of every type (numbers, dates, text) with corruptions."""
    from openpyxl.cell.cell import ILLEGAL_CHARACTERS_RE

    rows = []
    for i in range(data.draw(st.integers(1, 6))):
        row = clean_council_row(i, data.draw, inside)
        for col in data.draw(st.lists(st.sampled_from(HEADER), max_size=2, unique=True)):
            row[col] = data.draw(st.one_of(
                corruption.map(lambda v: ILLEGAL_CHARACTERS_RE.sub("", v)),
                st.floats(-9.99999999999999e307, 9.99999999999999e307),  # Excel's range
                st.integers(-10**6, 10**6),
                st.datetimes(min_value=dt.datetime(1900, 3, 1),
                             max_value=dt.datetime(2100, 1, 1))))
        rows.append(row)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "export.xlsx"
        pd.DataFrame(rows, columns=HEADER).to_excel(path, index=False)
        res = to_incidents(read_export(path), file=path.name, config=config, layers=layers,
                           area=area, mapping=MAPPING, today=TODAY)
        check_result(res, path.name, tmp, config)
        assert res.n_read == len(rows)


@pytest.mark.slow
@examples(4)
@given(data=st.data())
def test_jobs_ingest_files_into_a_temporary_store(data, inside, config, cache):
    files = [data.draw(exports(inside, config)) for _ in range(data.draw(st.integers(1, 3)))]
    with tempfile.TemporaryDirectory() as tmp:
        paths = []
        for k, (raw, suffix, *_rest) in enumerate(files):
            paths.append(Path(tmp) / f"export{k}{suffix}")
            paths[-1].write_bytes(raw)
        mapping = Path(tmp) / "mapping.toml"
        mapping.write_text('source = "fuzz"\n[columns]\n' + "".join(
            f"{k} = {json.dumps(v)}\n" for k, v in MAPPING.columns.items())
            + '[categories]\n"Rowdy" = "asb_nuisance"\n')
        report = jobs.ingest_files(paths, config=config, store_file=Path(tmp) / "store.db",
                                   mapping=mapping, cache=cache, today=TODAY)
        for entry, (_raw, _s, rows, _c, quoted, _police) in zip(report["files"], files,
                                                               strict=True):
            name = Path(entry["path"]).name
            if entry["error"]:
                assert "Please report it" not in entry["error"], entry["error"]
                assert entry["error"].startswith(name) and tmp not in entry["error"]
                continue
            assert entry["read"] == entry["accepted"] + entry["rejected"]
            if quoted:
                assert entry["read"] == len(rows)
