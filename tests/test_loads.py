"""Loading exports into the store again and again (issue 10): reloads, corrected mappings,
rejected rows kept, the load-order rule, concurrent loads and the audit trail."""

from __future__ import annotations

import datetime as dt
import getpass
import json
import os
import time
from pathlib import Path

import openpyxl
import pandas as pd
import pytest

from hotspots import jobs, store

TODAY = dt.date(2024, 9, 15)
MAPPING = """
source = "test-asb"
[columns]
reference = "Ref"
datetime = "When"
category = "Type"
latitude = "Lat"
longitude = "Lon"
{extra}
[categories]
"Rowdy" = "asb_nuisance"
{cats}
"""


def rows(n=5, *, kind="Rowdy", bad=0, exported=None, text="noise"):
    """``n`` good rows near Brick Lane and ``bad`` with no coordinates."""
    out = [{"Ref": f"R{i}", "When": f"2024-08-{1 + i % 28:02d} 21:15", "Type": kind,
            "Lat": f"{51.5205 + i * 1e-4:.6f}", "Lon": "-0.0716", "Text": text}
           for i in range(n)]
    out += [{"Ref": f"B{i}", "When": "2024-08-03 10:00", "Type": kind, "Lat": "", "Lon": "",
             "Text": text} for i in range(bad)]
    if exported:
        for r in out:
            r["Exported"] = exported
    return pd.DataFrame(out)


def write_mapping(folder: Path, *, extra="", cats="", name="asb.mapping.toml") -> Path:
    p = folder / name
    p.write_text(MAPPING.format(extra=extra, cats=cats))
    return p


def ingest(paths, tmp_path, cache, config, mapping=None, **kw):
    report = jobs.ingest_files([str(p) for p in paths], config=config,
                               store_file=tmp_path / "s.sqlite", mapping=mapping, cache=cache,
                               today=TODAY, **kw)
    for f in report["files"]:
        assert f["error"] is None, f["error"]
        assert f["read"] == f["accepted"] + f["rejected"]
    return report["files"]


def test_xlsx_saved_again_while_it_is_loaded_is_refused(tmp_path, cache, config,
                                                        monkeypatch):
    """A workbook (read whole, not streamed) saved again after its hash was taken and
    while it was read is refused, nothing written: the rows read may not be the file
    fingerprinted."""
    from hotspots import loads

    mapping = write_mapping(tmp_path)
    xlsx = tmp_path / "asb.xlsx"
    rows(5).to_excel(xlsx, index=False)
    real = loads._check_file

    def saved_meanwhile(p, *args):
        got = real(p, *args)
        rows(6).to_excel(xlsx, index=False)  # someone saves a newer version
        return got

    monkeypatch.setattr(loads, "_check_file", saved_meanwhile)
    report = jobs.ingest_files([xlsx], config=config, store_file=tmp_path / "s.sqlite",
                               mapping=mapping, cache=cache, today=TODAY)
    assert report["files"][0]["error"].startswith(
        "asb.xlsx: the file changed while it was being loaded"), report
    with store.connection(tmp_path / "s.sqlite") as conn:
        assert len(store.read_incidents(conn)) == 0 and len(store.read_loads(conn)) == 0
    monkeypatch.setattr(loads, "_check_file", real)
    assert ingest([xlsx], tmp_path, cache, config, mapping)[0]["inserted"] == 6


def test_xlsx_resaved_by_openpyxl_reloads_without_a_crash(tmp_path, cache, config):
    mapping = write_mapping(tmp_path)
    xlsx = tmp_path / "asb.xlsx"
    rows(5, bad=1).to_excel(xlsx, index=False)
    first = ingest([xlsx], tmp_path, cache, config, mapping)[0]
    assert (first["inserted"], first["rejected"]) == (5, 1)
    book = openpyxl.load_workbook(xlsx)
    book.save(xlsx)  # the same cells, new bytes
    again = ingest([xlsx], tmp_path, cache, config, mapping)[0]
    assert (again["inserted"], again["replaced"], again["unchanged"]) == (0, 0, 5)
    assert again["load_id"] == first["load_id"] + 1 and again["already_loaded"] is None
    # its rejected row is kept with this load too: nothing exists only in a report
    assert Path(again["rejected_file"]).is_file()
    conn = store.connect(tmp_path / "s.sqlite")
    assert len(store.read_problems(conn, again["load_id"])) == 1
    conn.close()
    # the very same bytes a third time: already loaded, nothing written
    third = ingest([xlsx], tmp_path, cache, config, mapping)[0]
    assert third["already_loaded"] == again["load_id"] and third["load_id"] is None


def test_a_corrected_mapping_loads_the_same_file(tmp_path, cache, config):
    csv = tmp_path / "asb.csv"
    rows(3, kind="Shouting").to_csv(csv, index=False)
    wrong = write_mapping(tmp_path)  # no entry for "Shouting"
    first = ingest([csv], tmp_path, cache, config, wrong)[0]
    assert (first["accepted"], first["rejected"]) == (0, 3)
    assert list(first["reasons"]) == ["unknown_category"]
    fixed = write_mapping(tmp_path, cats='"Shouting" = "asb_nuisance"', name="fixed.toml")
    second = ingest([csv], tmp_path, cache, config, fixed)[0]
    assert second["already_loaded"] is None
    assert (second["accepted"], second["inserted"]) == (3, 3)
    # the same mapping again (moved elsewhere): already loaded
    moved = tmp_path / "elsewhere"
    moved.mkdir()
    third = ingest([csv], tmp_path, cache, config,
                   write_mapping(moved, cats='"Shouting" = "asb_nuisance"'))[0]
    assert third["already_loaded"] == second["load_id"]


def test_load_key_follows_the_configuration_that_decides_acceptance(config):
    import dataclasses
    other = dataclasses.replace(config, nearest_max_m=config.nearest_max_m + 1)
    assert jobs.load_key("abc", None, config) == jobs.load_key("abc", None, config)
    assert jobs.load_key("abc", None, config) != jobs.load_key("abc", None, other)
    assert jobs.load_key("abc", None, config) != jobs.load_key("abd", None, config)
    # forcing an older export over newer records is another load of the same file
    assert jobs.load_key("abc", None, config) != jobs.load_key("abc", None, config,
                                                               force_older=True)


def test_rejected_rows_are_kept_when_every_accepted_row_is_unchanged(tmp_path, cache, config):
    mapping = write_mapping(tmp_path)
    a, b = tmp_path / "week1.csv", tmp_path / "week2.csv"
    rows(4).to_csv(a, index=False)
    rows(4, bad=2).to_csv(b, index=False)
    ingest([a], tmp_path, cache, config, mapping)
    got = ingest([b], tmp_path, cache, config, mapping)[0]
    assert (got["unchanged"], got["inserted"], got["rejected"]) == (4, 0, 2)
    assert got["load_id"] is not None and got["already_loaded"] is None
    kept = pd.read_csv(got["rejected_file"], dtype=str)
    assert kept["Ref"].tolist() == ["B0", "B1"]
    conn = store.connect(tmp_path / "s.sqlite")
    assert len(store.read_rejected(conn, got["load_id"])) == 2
    conn.close()


def test_an_older_export_never_reverts_newer_records(tmp_path, cache, config, capsys):
    from hotspots.cli import main
    mapping = write_mapping(tmp_path, extra='extract_date = "Exported"')
    new, old = tmp_path / "new.csv", tmp_path / "old.csv"
    rows(5, text="x", exported="30/08/2024").assign(Type="Rowdy").to_csv(new, index=False)
    older = rows(7, exported="2024-08-01")
    older.loc[:4, "When"] = "2024-08-02 08:00"  # five records as they were then
    older.to_csv(old, index=False)
    ingest([new], tmp_path, cache, config, mapping)
    before = store.read_incidents(store.connect(tmp_path / "s.sqlite"))
    got = ingest([old], tmp_path, cache, config, mapping)[0]
    assert (got["replaced"], got["kept_newer"], got["inserted"]) == (0, 5, 2)
    assert got["note"] == ("kept 5 newer versions from load 1 (exported 2024-08-30); this "
                           "export is dated 2024-08-01; use --force-older to replace them")
    conn = store.connect(tmp_path / "s.sqlite")
    after = store.read_incidents(conn)
    assert after.set_index("ref").loc[before["ref"], "date"].tolist() == before["date"].tolist()
    assert store.read_loads(conn)["n_kept_newer"].tolist() == [0, 5]
    conn.close()
    # the CLI says it, and --force-older replaces them
    os.utime(old)  # a new mtime, the same extract dates
    code = main(["--geodata", str(cache), "ingest", str(old), "--mapping", str(mapping),
                 "--store", str(tmp_path / "s.sqlite")])
    assert code == 0 and "already loaded" in capsys.readouterr().out
    older.loc[0, "Text"] = "edited"  # new bytes, so not the same load
    older.to_csv(old, index=False)
    code = main(["--geodata", str(cache), "ingest", str(old), "--mapping", str(mapping),
                 "--store", str(tmp_path / "s.sqlite")])
    out = capsys.readouterr().out
    assert "kept 5 newer versions from load 1 (exported 2024-08-30)" in out
    # the advice works on the very file it was given for (not "already loaded")
    code = main(["--geodata", str(cache), "ingest", str(old), "--mapping", str(mapping),
                 "--store", str(tmp_path / "s.sqlite"), "--force-older", "--json"])
    forced = json.loads(capsys.readouterr().out)["files"][0]
    assert forced["already_loaded"] is None
    assert (forced["replaced"], forced["kept_newer"]) == (5, 0)
    code = main(["--geodata", str(cache), "ingest", str(old), "--mapping", str(mapping),
                 "--store", str(tmp_path / "s.sqlite"), "--force-older", "--json"])
    assert json.loads(capsys.readouterr().out)["files"][0]["already_loaded"] == 4
    conn = store.connect(tmp_path / "s.sqlite")
    assert (store.read_incidents(conn)["date"].iloc[:5] == "2024-08-02").all()
    conn.close()


def test_an_unchanged_record_carries_its_latest_export_date(tmp_path, cache, config):
    """A record seen unchanged in a later export cannot be reverted by an export dated
    between the two."""
    mapping = write_mapping(tmp_path, extra='extract_date = "Exported"')
    files = {}
    for name, exported, when in (("aug01", "2024-08-01", "2024-08-02 08:00"),
                                 ("aug30", "2024-08-30", "2024-08-02 08:00"),
                                 ("aug15", "2024-08-15", "2024-08-05 08:00")):
        files[name] = tmp_path / f"{name}.csv"
        rows(2, exported=exported).assign(When=when).to_csv(files[name], index=False)
    ingest([files["aug01"], files["aug30"]], tmp_path, cache, config, mapping)
    got = ingest([files["aug15"]], tmp_path, cache, config, mapping)[0]
    assert (got["replaced"], got["kept_newer"]) == (0, 2)
    assert "from load 2 (exported 2024-08-30)" in got["note"]


def test_file_time_orders_exports_without_an_extract_date(tmp_path, cache, config):
    mapping = write_mapping(tmp_path)
    new, old = tmp_path / "new.csv", tmp_path / "old.csv"
    rows(3).to_csv(new, index=False)
    rows(3).assign(When="2024-08-20 10:00").to_csv(old, index=False)
    os.utime(new, (time.time(), dt.datetime(2024, 9, 1).timestamp()))
    os.utime(old, (time.time(), dt.datetime(2024, 8, 1, 9, 30).timestamp()))
    ingest([new], tmp_path, cache, config, mapping)
    got = ingest([old], tmp_path, cache, config, mapping)[0]
    assert got["kept_newer"] == 3 and got["exported_at"] == "2024-08-01T09:30:00"
    assert "this export is dated 2024-08-01 09:30" in got["note"]


def test_the_note_tells_apart_exports_of_the_same_minute():
    kept = [{"n": 3, "load_id": 1, "exported_at": "2024-08-30T09:15:40"}]
    assert jobs.kept_newer_note(kept, "2024-08-30T09:15:05").startswith(
        "kept 3 newer versions from load 1 (exported 2024-08-30 09:15:40); this export is "
        "dated 2024-08-30 09:15:05; ")
    # otherwise to the minute, or the day alone
    assert "(exported 2024-08-30 09:15); this export is dated 2024-08-29 23:59;" in \
        jobs.kept_newer_note(kept, "2024-08-29T23:59:59")
    kept[0]["exported_at"] = "2024-08-30T00:00:00"
    assert "(exported 2024-08-30); this export is dated 2024-08-01;" in \
        jobs.kept_newer_note(kept, "2024-08-01")


def test_extract_date_column_without_dates_is_named(tmp_path, cache, config):
    mapping = write_mapping(tmp_path, extra='extract_date = "Exported"')
    csv = tmp_path / "asb.csv"
    rows(2, exported="soon").to_csv(csv, index=False)
    report = jobs.ingest_files([csv], config=config, store_file=tmp_path / "s.sqlite",
                               mapping=mapping, cache=cache, today=TODAY)
    assert ("asb.csv: the extract-date column 'Exported' named in mapping "
            in report["files"][0]["error"])


def test_audit_trail_records_who_and_when(tmp_path, cache, config):
    mapping = write_mapping(tmp_path)
    csv = tmp_path / "asb.csv"
    rows(3).to_csv(csv, index=False)
    ingest([csv], tmp_path, cache, config, mapping, user="chair@example.org")
    rows(4).to_csv(csv, index=False)
    ingest([csv], tmp_path, cache, config, mapping)  # the CLI's user
    conn = store.connect(tmp_path / "s.sqlite")
    loads = store.read_loads(conn)
    assert loads["loaded_by"].tolist() == ["chair@example.org", getpass.getuser()]
    when = pd.to_datetime(loads["loaded_at"], utc=True)
    assert ((pd.Timestamp.now(tz="UTC") - when) < pd.Timedelta(minutes=5)).all()
    conn.close()


@pytest.mark.parametrize("fmt, name", [("gpkg", "i.gpkg"), ("geoparquet", "i.parquet"),
                                       ("csv", "i.csv"), ("geojson", "i.geojson")])
def test_export_for_qgis_and_power_bi(tmp_path, cache, config, capsys, fmt, name):
    import geopandas as gpd

    from hotspots.cli import main
    mapping = write_mapping(tmp_path)
    csv = tmp_path / "asb.csv"
    rows(4).to_csv(csv, index=False)
    ingest([csv], tmp_path, cache, config, mapping)
    out = tmp_path / name
    code = main(["--geodata", str(cache), "export", "--format", fmt, "--store",
                 str(tmp_path / "s.sqlite"), "--out", str(out), "--start", "2024-08-02"])
    assert code == 0 and "3 incidents written to" in capsys.readouterr().out
    if fmt == "csv":
        got = pd.read_csv(out, encoding="utf-8-sig")
        assert got["ref"].tolist() == ["R1", "R2", "R3"]
        # the rows' own coordinates come back (6 decimals, as given)
        assert got["latitude"].round(4).tolist() == [51.5206, 51.5207, 51.5208]
        assert (got["longitude"].round(4) == -0.0716).all()
    elif fmt == "geojson":  # for ArcGIS: WGS84, the rows' own coordinates
        got = gpd.read_file(out)
        assert got.crs.to_epsg() == 4326 and got["ref"].tolist() == ["R1", "R2", "R3"]
        assert got.geometry.y.round(4).tolist() == [51.5206, 51.5207, 51.5208]
        assert (got.geometry.x.round(4) == -0.0716).all()
    else:
        got = gpd.read_file(out) if fmt == "gpkg" else gpd.read_parquet(out)
        assert got.crs.to_epsg() == 27700 and len(got) == 3
        assert (got.geometry.x == got["x"]).all() and (got.geometry.y == got["y"]).all()


def test_ingest_reports_progress_and_the_cli_is_quiet_off_a_terminal(tmp_path, cache, config,
                                                                     capsys):
    from hotspots.cli import main
    mapping = write_mapping(tmp_path)
    files = [tmp_path / "a.csv", tmp_path / "b.csv"]
    rows(3).to_csv(files[0], index=False)
    rows(4).to_csv(files[1], index=False)
    steps = []
    ingest(files, tmp_path, cache, config, mapping,
           progress=lambda done, total, step: steps.append((done, total, step)))
    assert [s[0] for s in steps] == [0, 1, 2, 3, 4, 5, 6] and {s[1] for s in steps} == {6}
    assert steps[1][2] == "a.csv: checking 3 rows" and steps[-1][2] == "done"
    capsys.readouterr()
    rows(5).to_csv(files[1], index=False)
    assert main(["--geodata", str(cache), "ingest", str(files[1]), "--mapping", str(mapping),
                 "--store", str(tmp_path / "s.sqlite")]) == 0
    assert capsys.readouterr().err == ""  # stderr is no terminal here: no progress bar
