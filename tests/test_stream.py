"""A CSV loaded a chunk of rows at a time (issue 14): the same store as the whole file at
once, rejected rows and their row numbers included, in one transaction."""

from __future__ import annotations

import datetime as dt
import json
import os
from pathlib import Path

import pandas as pd
import pytest

from hotspots import jobs, store
from hotspots.ingest import read_export
from hotspots.ingest.stream import read_csv_chunks

from .conftest import SHARED
from .test_loads import MAPPING as LOADS_MAPPING

TODAY = dt.date(2024, 9, 15)
ASB = SHARED / "policeuk" / "2023-04-metropolitan-street_tower-hamlets_asb-drugs-only.csv"
MAPPING = LOADS_MAPPING.format(extra='extract_date = "Exported"', cats="")


def police_file(tmp_path: Path) -> Path:
    """Real police.uk rows (ASB without Crime IDs: derived keys) with, spread over the
    file: identical ASB rows far apart (occurrence numbers go on across chunks), a Crime
    ID repeated far from its first row, rows with too many or too few fields (before,
    between and after others, and last), no coordinates, an unknown crime type, a quoted
    cell over two lines."""
    lines = ASB.read_text(encoding="utf-8-sig").splitlines()
    header, body = lines[0], lines[1:41]
    with_id = [ln for ln in ASB.read_text().splitlines()[1:] if not ln.startswith(",")][:3]
    body[5:5] = with_id[:1]
    body[9:9] = ["too,few"]
    body[17:17] = [body[2], with_id[0], "x," * 14 + "x"]  # a repeat of row 4's ASB row
    body[25:25] = [body[2], body[2]]
    cols = body[30].split(",")
    cols[4] = cols[5] = ""
    body[30] = ",".join(cols)
    cols = body[31].split(",")
    cols[9] = "Dragon theft"
    body[31] = ",".join(cols)
    cols = body[33].split(",")
    cols[6] = '"On or near\nTwo Lines"'  # a quoted cell over two lines
    body[33] = ",".join(cols)
    body += ["a,b", body[2]]
    out = tmp_path / "police.csv"
    out.write_text("\n".join([header, *body]) + "\n", encoding="utf-8")
    return out


def council_file(tmp_path: Path) -> Path:
    """Rows with repeated references, no coordinates, an unknown type, one row with a
    field too many; in Windows-1252 (read as UTF-8 in memory, then streamed)."""
    rows = [{"Ref": f"R{i % 23}", "When": f"2024-08-{1 + i % 28:02d} 21:15",
             "Type": "Rowdy" if i % 11 else "Bogus", "Lat": f"{51.5205 + i * 1e-4:.6f}",
             "Lon": "" if i % 13 == 5 else "-0.0716", "Exported": f"2024-09-{1 + i % 9:02d}",
             "Note": "café £5" if i % 7 == 3 else ""}
            for i in range(40)]
    text = pd.DataFrame(rows).to_csv(index=False).splitlines()
    text[12:12] = ['"R99","2024-08-02 10:00","Rowdy","51.52","-0.07","2024-09-01","extra","more"']
    out = tmp_path / "council.csv"
    out.write_text("\n".join(text) + "\n", encoding="cp1252")  # Excel's plain CSV
    return out


def load(path: Path, folder: Path, cache, config, chunk_rows: int, mapping=None) -> tuple:
    folder.mkdir()
    db = folder / "s.sqlite"
    report = jobs.ingest_files([path], config=config, store_file=db, cache=cache,
                               today=TODAY, chunk_rows=chunk_rows, mapping=mapping)
    entry = report["files"][0]
    assert entry["error"] is None, entry["error"]
    assert entry["read"] == entry["accepted"] + entry["rejected"]
    with store.connection(db) as conn:
        tables = {"incidents": store.read_incidents(conn),
                  "problems": store.read_problems(conn),
                  "rejected": store.read_rejected(conn),
                  "loads": store.read_loads(conn).drop(columns=["loaded_at"])}
    rejected_csv = Path(entry["rejected_file"]).read_bytes()
    entry = {k: v for k, v in entry.items() if k != "rejected_file"}
    return entry, tables, rejected_csv


@pytest.mark.parametrize("kind", ["police", "council"])
def test_chunks_give_the_same_store_as_the_whole_file(tmp_path, cache, config, kind):
    if kind == "police":
        path, mapping = police_file(tmp_path), None
    else:
        path, mapping = council_file(tmp_path), tmp_path / "m.toml"
        mapping.write_text(MAPPING)
    os.utime(path, (1.7e9, 1.7e9))
    chunks = list(read_csv_chunks(path, chunk_rows=4))
    assert len(chunks) > 5 and [c.attrs["last"] for c in chunks].count(True) == 1
    whole = read_export(path)
    together = pd.concat([pd.DataFrame(dict(c)) for c in chunks], ignore_index=True)
    pd.testing.assert_frame_equal(together, pd.DataFrame(dict(whole)))
    numbers = [n for c in chunks for n in c.attrs["row_numbers"]]
    assert numbers == list(whole.attrs.get("row_numbers", range(2, len(whole) + 2)))
    assert [m for c in chunks for m in c.attrs.get("malformed", [])] == whole.attrs["malformed"]

    one = load(path, tmp_path / "one", cache, config, 10**6, mapping)
    many = load(path, tmp_path / "many", cache, config, 4, mapping)
    assert one[0] == many[0]
    for name in one[1]:
        pd.testing.assert_frame_equal(one[1][name], many[1][name], obj=name)
    assert one[2] == many[2]
    entry, tables = one[0], one[1]
    reasons = set(tables["problems"]["reason"])
    if kind == "police":  # every case the file was made to hold, then, was met
        assert {"duplicate_crime_id", "malformed_row", "missing_coordinates",
                "unknown_category"} <= reasons
        assert entry["lsoa_agreement"] is not None
        repeats = tables["problems"].query("reason == 'duplicate_crime_id'")
        assert repeats["message"].str.contains("row 7").all() and len(repeats) >= 1
        asb = tables["incidents"].query("category_raw == 'Anti-social behaviour'")
        assert asb["ref"].is_unique and len(asb) >= 40  # identical rows: distinct keys
    else:
        assert {"duplicate_reference", "malformed_row", "missing_coordinates",
                "unknown_category"} <= reasons
        assert entry["exported_at"] == "2024-09-09T00:00:00"
    bad_rows = sorted(set(tables["problems"]["row"]))
    assert tables["rejected"]["row"].tolist() == bad_rows
    malformed = tables["rejected"].loc[tables["rejected"]["reasons"].str.contains("fields")]
    assert all("raw_text" in json.loads(j) for j in malformed["raw_json"])


def test_a_chunk_that_fails_leaves_the_store_as_it_was(tmp_path, cache, config, monkeypatch):
    """A load is one transaction however many chunks it has: a failure in a later chunk
    takes back the earlier chunks' rows."""
    path = police_file(tmp_path)
    db = tmp_path / "s.sqlite"
    from hotspots.ingest import stream

    real, calls = stream.to_incidents, []

    def failing(*args, **kw):
        calls.append(1)
        if len(calls) == 3:
            raise OSError("disk on fire")
        return real(*args, **kw)

    monkeypatch.setattr(stream, "to_incidents", failing)
    report = jobs.ingest_files([path], config=config, store_file=db, cache=cache,
                               today=TODAY, chunk_rows=5)
    assert report["files"][0]["error"] and len(calls) == 3
    with store.connection(db) as conn:
        assert len(store.read_incidents(conn)) == 0 and len(store.read_loads(conn)) == 0
    monkeypatch.setattr(stream, "to_incidents", real)
    again = jobs.ingest_files([path], config=config, store_file=db, cache=cache,
                              today=TODAY, chunk_rows=5)["files"][0]
    assert again["error"] is None and again["inserted"] == again["accepted"] > 0


@pytest.mark.parametrize("chunk_rows", [5, 10**6])
def test_a_file_that_changes_while_it_is_loaded_is_refused(tmp_path, cache, config,
                                                           monkeypatch, chunk_rows):
    """An export still being written when it is loaded (rows appended after its hash was
    taken, while its chunks are read, or after its one chunk) is refused with a message
    that says so and what to do; nothing of it is written. Loaded again once it is
    finished, it goes in whole."""
    from hotspots.ingest import stream

    path, db = police_file(tmp_path), tmp_path / "s.sqlite"
    extra = path.read_text(encoding="utf-8").splitlines()[3] + "\n"
    real, calls = stream.to_incidents, []

    def appended(*args, **kw):
        calls.append(1)
        if len(calls) == 1:  # another program adds a row while the file is read
            with path.open("a", encoding="utf-8") as fh:
                fh.write(extra)
        return real(*args, **kw)

    monkeypatch.setattr(stream, "to_incidents", appended)
    entry = jobs.ingest_files([path], config=config, store_file=db, cache=cache,
                              today=TODAY, chunk_rows=chunk_rows)["files"][0]
    assert entry["error"] == ("police.csv: the file changed while it was being loaded (its "
                              "size or time of last change are not what they were when its "
                              "content was fingerprinted), so none of it was written. Fix: "
                              "load it again once whatever writes the file has finished with "
                              "it."), entry
    with store.connection(db) as conn:
        assert len(store.read_incidents(conn)) == 0 and len(store.read_loads(conn)) == 0
        assert len(store.read_rejected(conn)) == 0
    monkeypatch.setattr(stream, "to_incidents", real)
    again = jobs.ingest_files([path], config=config, store_file=db, cache=cache,
                              today=TODAY, chunk_rows=chunk_rows)["files"][0]
    assert again["error"] is None and again["inserted"] == again["accepted"] > 0
    assert again["read"] == again["accepted"] + again["rejected"]


def test_another_writer_is_not_kept_waiting_while_a_file_is_read(tmp_path, cache, config,
                                                                  monkeypatch):
    """A streamed load reads and checks every chunk before it takes the store's write
    lock: a decision recorded meanwhile (a writer that waits 0.2 s at most) goes in, and
    the load is whole. The chunks' rows wait in a temporary folder, removed after."""
    import tempfile

    from hotspots.ingest import stream

    path, db, spool = police_file(tmp_path), tmp_path / "s.sqlite", tmp_path / "spool"
    spool.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(spool))
    real, calls = stream.to_incidents, []

    def meanwhile(*args, **kw):
        calls.append(1)
        if len(calls) == 2:  # a chunk read after the load began
            assert len(list(spool.iterdir())) == 1
            with store.connection(db, timeout_s=0.2) as other:
                store.write_meta(other, probe="recorded while the load read its file")
        return real(*args, **kw)

    monkeypatch.setattr(stream, "to_incidents", meanwhile)
    entry = jobs.ingest_files([path], config=config, store_file=db, cache=cache,
                              today=TODAY, chunk_rows=5)["files"][0]
    assert entry["error"] is None and len(calls) > 2
    with store.connection(db) as conn:
        assert store.read_meta(conn)["probe"] == "recorded while the load read its file"
        assert len(store.read_incidents(conn)) == entry["inserted"] == entry["accepted"] > 0
    assert not list(spool.iterdir())


@pytest.mark.parametrize(("data", "want"), [
    (b"a,b\n1,\xc3\xa9t\xc3\xa9\n" + b"x" * 20, (True, False)),  # a character across windows
    (b"a,b\n1,2\xc3" + b"x" * 20, (False, False)),  # one left unfinished, ASCII after it
    (b"a,b\n1,2\xc3" + b"x" * 8 + b"\xa9" + b"x" * 7, (False, False)),  # ... and its end later
    (b"a,b\n1,2\xff" + b"x" * 20, (False, False)),
    (b"a,b\n1,\xc3", (False, False)),  # unfinished at the end
    (b'a,b\n1,"two\nlines"\n' + b"x" * 20, (True, True)),
    (b'a,b\n1,"one line"\n' + b"x" * 20, (True, False)),
])
def test_the_file_scan_reads_window_by_window(tmp_path, monkeypatch, data, want):
    """The scan before streaming (UTF-8 as it is? a quoted cell over two lines?) tells
    the same however the file falls into windows (ASCII windows are not decoded)."""
    from hotspots.ingest import stream

    path = tmp_path / "f.csv"
    path.write_bytes(data)
    for window in (3, 7, 8, 1 << 20):  # 8: "\xc3" ends a window, ASCII follows
        monkeypatch.setattr(stream, "_WINDOW", window)
        assert stream._scan(path) == want, window
