"""The Data page through AppTest on a small store of its own: the check before a load
(counts of new, replaced, unchanged and rejected records, the replaced records' changes),
nothing written until the replacement is confirmed, warnings for optional columns, plain
messages (the file's own name, no temporary folder, no codec jargon) and the mapping
form that saves a mapping for next week's export."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from streamlit.testing.v1 import AppTest

from hotspots import jobs, mappingform, store
from hotspots.config import load_config
from hotspots.ingest import read_mapping

ROOT = Path(__file__).resolve().parents[1]
APP = str(ROOT / "streamlit_app.py")
HEADER = "Ref,When,Type,Lat,Lon\n"
AT = "51.5205,-0.0716"  # Brick Lane
MAPPING = ('source = "lbth-asb"\n[columns]\nreference = "Ref"\ndatetime = "When"\n'
           'category = "Type"\nlatitude = "Lat"\nlongitude = "Lon"\ncaller = "Caller ID"\n'
           '[categories]\n"Rowdy" = "asb_nuisance"\n"Dealing" = "drug_dealing"\n')
WEEK1 = HEADER + "".join(f"A{i},2024-08-0{i} 10:00,Rowdy,{AT}\n" for i in (1, 2, 3))
#: A1 corrected (dealing, not rowdy), A2 unchanged, A3 moved to the next hour, A4 new,
#: A5 without a location.
WEEK2 = (HEADER + f"A1,2024-08-01 10:00,Dealing,{AT}\nA2,2024-08-02 10:00,Rowdy,{AT}\n"
         f"A3,2024-08-03 11:00,Rowdy,{AT}\nA4,2024-08-04 10:00,Rowdy,{AT}\n"
         "A5,2024-08-05 10:00,Rowdy,,\n")


@pytest.fixture
def page(tmp_path, cache, monkeypatch):
    """The Data page of an analyst on a store holding week 1, its mapping saved."""
    from app_pages import common

    db = tmp_path / "d" / "hotspots.sqlite"
    monkeypatch.setenv("HOTSPOTS_LOCAL", "1")
    monkeypatch.delenv("HOTSPOTS_TEST_ROLE", raising=False)
    monkeypatch.setenv("HOTSPOTS_STORE", str(db))
    monkeypatch.setenv("HOTSPOTS_GEODATA", str(cache))
    monkeypatch.setattr(common, "WORK", tmp_path / "work" / "hotspots-app")
    common.WORK.mkdir(parents=True)
    (tmp_path / "in").mkdir()
    week1, mapping = tmp_path / "in" / "week1.csv", tmp_path / "in" / "asb.toml"
    week1.write_text(WEEK1)
    mapping.write_text(MAPPING)
    at = AppTest.from_file(APP, default_timeout=120).run()  # no store yet: nothing to rank
    at.switch_page("app_pages/data.py").run()
    config = load_config()
    done = jobs.ingest_files([week1], config=config, store_file=db, mapping=mapping,
                             cache=cache)
    assert done["files"][0]["inserted"] == 3
    mappingform.save_mapping(read_mapping(mapping, config), mappingform.mapping_dir(db))
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    return at, db


def _state(db):
    conn = store.connect(db)
    try:
        inc = store.read_incidents(conn)
        return len(store.read_loads(conn)), inc.set_index("ref")[["category", "hour"]]
    finally:
        conn.close()


def _texts(at) -> str:
    """Everything the page says in messages, text and tables."""
    parts = [e.value for kind in ("error", "warning", "info", "success", "markdown",
                                  "caption", "code") for e in at.get(kind)]
    parts += [t.value.to_csv() for t in at.table] + [d.value.to_csv() for d in at.dataframe]
    return "\n".join(map(str, parts))


def _table(at, column):
    return next(t.value for t in at.table if column in t.value.columns)


def test_the_check_counts_a_replacing_file_and_nothing_is_written_until_confirmed(page,
                                                                                   cache):
    at, db = page
    before = _state(db)
    assert at.selectbox(key="mapping_choice").options[1] == "Saved: lbth-asb"
    assert "load" not in {b.key for b in at.button}  # no load before a check
    at.file_uploader(key="uploads").set_value(("week2.csv", WEEK2.encode(), "text/csv"))
    at.selectbox(key="mapping_choice").set_value("lbth-asb").run()
    at.button(key="check").click().run()
    assert not at.exception, [e.value for e in at.exception]
    counts = at.dataframe[0].value.iloc[0]
    assert (counts["rows read"], counts["new"], counts["replaced"], counts["unchanged"],
            counts["rejected"]) == (5, 1, 2, 1, 1)
    changes = _table(at, "Reference")
    assert changes.values.tolist() == [["A1", "category", "asb_nuisance", "drug_dealing"],
                                       ["A3", "hour", "10", "11"]]
    # the optional caller column is missing: a warning, and the file is still loadable
    assert any("optional column(s) 'Caller ID' (caller)" in w.value for w in at.warning)
    # reasons: the fix first, in words; the code only in the last column
    reasons = _table(at, "Fix")
    assert list(reasons.columns) == ["Fix", "Rows", "First row with it", "Code"]
    assert reasons["Fix"].iloc[0].startswith("Fill in latitude/longitude")
    assert reasons["Code"].tolist() == ["missing_coordinates"]
    assert "missing_coordinates" not in reasons["Fix"].iloc[0] + reasons.iloc[0, 2]
    # replacing needs the box ticked: the load button waits for it
    assert at.button(key="load").disabled and not at.checkbox(key="confirm_replace").value
    assert "Replace 2 records" in at.checkbox(key="confirm_replace").label
    assert _state(db)[0] == before[0] and _state(db)[1].equals(before[1])
    at.checkbox(key="confirm_replace").check().run()
    assert not at.button(key="load").disabled
    assert _state(db)[0] == before[0] and _state(db)[1].equals(before[1])  # still nothing
    at.button(key="load").click().run()
    assert not at.exception, [e.value for e in at.exception]
    n_loads, inc = _state(db)
    assert n_loads == before[0] + 1
    assert inc["category"].to_dict() == {"A1": "drug_dealing", "A2": "asb_nuisance",
                                         "A3": "asb_nuisance", "A4": "asb_nuisance"}
    assert inc.loc["A3", "hour"] == 11
    assert not any("What loading would do" in m.value for m in at.markdown)  # done: report
    report = next(d.value for d in at.dataframe if "accepted" in d.value.columns).iloc[0]
    assert (report["inserted"], report["replaced"], report["unchanged"]) == (1, 2, 1)
    # a file that only adds records needs no confirmation
    week3 = HEADER + f"A9,2024-08-09 10:00,Rowdy,{AT}\n"
    at.file_uploader(key="uploads").set_value(("week3.csv", week3.encode(), "text/csv"))
    at.button(key="check").click().run()
    assert at.dataframe[0].value.iloc[0]["new"] == 1
    assert not at.button(key="load").disabled
    assert "confirm_replace" not in {c.key for c in at.checkbox}
    # another load between the check and the click: the check no longer holds
    other = db.parent.parent / "in" / "other.csv"
    other.write_text(HEADER + f"B1,2024-08-09 10:00,Rowdy,{AT}\n")
    jobs.ingest_files([other], config=load_config(), store_file=db, cache=cache,
                      mapping=db.parent.parent / "in" / "asb.toml")
    at.button(key="load").click().run()
    assert any("The store has changed since the files were checked" in w.value
               for w in at.warning)
    assert "A9" not in _state(db)[1].index


def test_messages_name_the_file_without_temporary_folders_or_codec_jargon(page):
    at, db = page
    at.file_uploader(key="uploads").set_value(("week2.csv", WEEK2.encode(), "text/csv"))
    at.selectbox(key="mapping_choice").set_value(at.selectbox(key="mapping_choice")
                                                 .options[-1]).run()  # upload one
    # a mapping saved by Word in Windows-1252, with a byte that is no character there
    bad = MAPPING.replace("Rowdy", "Rowdy \u201cloud\u201d").encode("cp1252") + b"\x90"
    at.file_uploader(key="mapping").set_value(("Weekly ASB mapping.toml", bad, "text/plain"))
    at.run()
    at.button(key="check").click().run()
    assert not at.exception, [e.value for e in at.exception]
    errors = [e.value for e in at.error]
    assert errors and errors[0].startswith("Weekly ASB mapping.toml: the mapping file is not "
                                           "text")
    # a required column missing from the export: refused, naming the file and the field
    at.file_uploader(key="mapping").set_value(
        ("asb.toml", MAPPING.replace('"Type"', '"Incident type"').encode(), "text/plain"))
    at.run()
    at.button(key="check").click().run()
    assert any(e.value.startswith("week2.csv: column(s) 'Incident type' (category) named in "
                                  "mapping asb.toml are not in the export") for e in at.error)
    # an export that cannot be decoded as UTF-16 (its byte-order mark says it is)
    at.file_uploader(key="uploads").set_value(("Export (1).csv", b"\xff\xfeR\x00\x00\xd8",
                                               "text/csv"))
    at.run()
    at.button(key="check").click().run()
    assert any(e.value.startswith("Export (1).csv: ") for e in at.error)
    said = _texts(at)
    uploads_folder = str(db.parent.parent / "work")  # where the page writes uploads
    for jargon in (uploads_folder, "upload-", "codec", "0x", "Traceback", "UnicodeDecodeError"):
        assert jargon not in said, jargon
    assert _state(db)[0] == 1  # nothing loaded


def test_the_mapping_form_writes_saves_and_chooses_a_mapping(page, cache):
    at, db = page
    export = ("Case Ref,Date Reported,Incident Type,Easting,Northing,Caller ID\n"
              "N1,05/08/2024 21:30,Noise,533700,181900,C1\n"
              "N2,06/08/2024 22:00,Loud music,533700,181900,C2\n"
              "N3,06/08/2024 23:00,Noise,533710,181910,C1\n")
    at.file_uploader(key="uploads").set_value(("council-calls.csv", export.encode(),
                                               "text/csv"))
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    fid = at.file_uploader(key="uploads").value[0].file_id
    # the columns are suggested by their names; the category values are listed
    assert at.selectbox(key=f"mf_{fid}_reference").value == "Case Ref"
    assert at.selectbox(key=f"mf_{fid}_easting").value == "Easting"
    assert at.radio(key="mf_coords").value == "Easting and northing"
    cats = [s for s in at.selectbox if s.key.startswith(f"mf_cat_{fid}_")]
    assert [s.label for s in cats] == ["Noise", "Loud music"]  # the commonest first
    at.text_input(key="mf_source").set_value("council calls")
    at.text_input(key="mf_date_format").set_value("%d/%m/%Y %H:%M")
    cats[0].set_value("asb_nuisance")
    cats[1].set_value("asb_nuisance")
    at.button(key="mf_save").click().run()
    assert not at.exception, [e.value for e in at.exception]
    toml = at.code[0].value
    assert 'source = "council calls"' in toml and '"Loud music" = "asb_nuisance"' in toml
    saved = mappingform.saved_mappings(mappingform.mapping_dir(db))
    back = read_mapping(saved["council calls"], load_config())
    assert back.columns == {"reference": "Case Ref", "datetime": "Date Reported",
                            "category": "Incident Type", "easting": "Easting",
                            "northing": "Northing", "caller": "Caller ID"}
    assert back.categories == {"Noise": "asb_nuisance", "Loud music": "asb_nuisance"}
    assert back.date_format == "%d/%m/%Y %H:%M"
    # chosen for the export on screen: it loads in one step
    assert at.selectbox(key="mapping_choice").value == "council calls"
    at.button(key="check").click().run()
    counts = at.dataframe[0].value.iloc[0]
    assert (counts["new"], counts["rejected"]) == (3, 0)
    at.button(key="load").click().run()
    assert _state(db)[1].loc["N2", "category"] == "asb_nuisance"


def _shown(at, column: str) -> pd.DataFrame:
    """The table on the page with ``column``."""
    return next(d.value for d in at.dataframe if column in d.value.columns)


def test_the_data_page_shows_who_loaded_and_decided_what_and_when(page, cache):
    """The audit trail: a load through the page records the signed-in user, a load and a
    decision from the CLI record the user running it; each with when. The Data page
    lists both."""
    import getpass

    from hotspots.cli import main
    from tests.test_store import places_frame

    at, db = page
    week3 = HEADER + f"A9,2024-08-09 10:00,Rowdy,{AT}\n"
    at.file_uploader(key="uploads").set_value(("week3.csv", week3.encode(), "text/csv"))
    at.selectbox(key="mapping_choice").set_value("lbth-asb").run()
    at.button(key="check").click().run()
    at.button(key="load").click().run()
    assert not at.exception, [e.value for e in at.exception]
    conn = store.connect(db)
    store.write_places(conn, places_frame(), period="2024-08", start="2024-08-01",
                       end="2024-08-31", method="dbscan", params={})
    conn.close()
    base = ["--geodata", str(cache)]
    assert main([*base, "task", "add", "--store", str(db), "--place", "P1", "--owner", "ptf",
                 "--actions", "Joint patrol", "--review", "2024-09-20", "--meeting",
                 "2024-09-05"]) == 0
    assert main([*base, "task", "edit", "1", "--store", str(db), "--actions",
                 "Joint patrol, Fri"]) == 0
    conn = store.connect(db)
    store.record_decision(conn, place_id="P2", owner="housing", actions="Letter",
                          review_date="2024-09-20", meeting_date="2024-09-05",
                          user="chair@example.org")
    conn.close()
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    now = pd.Timestamp.now(tz="UTC")
    loads = _shown(at, "who")
    assert loads["who"].tolist() == [getpass.getuser(), "local analyst"]
    assert loads["file"].tolist() == ["week1.csv", "week3.csv"]
    when = pd.to_datetime(loads["when (UTC)"], utc=True)
    assert ((now - when) < pd.Timedelta(minutes=10)).all() and when.is_monotonic_increasing
    decisions = _shown(at, "recorded by")
    assert decisions[["decision", "place", "recorded by", "changed by"]].values.tolist() == [
        [1, "P1", getpass.getuser(), getpass.getuser()], [2, "P2", "chair@example.org", ""]]
    recorded = pd.to_datetime(decisions["recorded (UTC)"], utc=True)
    assert ((now - recorded) < pd.Timedelta(minutes=10)).all()
    changed = pd.to_datetime(decisions["last changed (UTC)"].iloc[0], utc=True)
    assert recorded.iloc[0] <= changed <= now


def test_an_older_export_keeps_newer_records_unless_the_page_is_told_to_replace_them(page):
    """The load-order rule on the Data page: the check says what would be kept and why,
    and how to replace them here (not a command-line flag); ticking the box and checking
    again replaces them, once the replacement is confirmed."""
    at, db = page
    mapping = MAPPING.replace('caller = "Caller ID"\n',
                              'caller = "Caller ID"\nextract_date = "Exported"\n')
    # A1 as it was in an export of 2 August; week 1 (in the store) is today's file
    old = "Ref,When,Type,Lat,Lon,Exported\n" f"A1,2024-08-01 10:00,Dealing,{AT},02/08/2024\n"
    at.file_uploader(key="uploads").set_value(("old.csv", old.encode(), "text/csv"))
    at.selectbox(key="mapping_choice").set_value(at.selectbox(key="mapping_choice")
                                                 .options[-1]).run()
    at.file_uploader(key="mapping").set_value(("asb.toml", mapping.encode(), "text/plain"))
    at.run()
    at.button(key="check").click().run()
    assert not at.exception, [e.value for e in at.exception]
    counts = at.dataframe[0].value.iloc[0]
    assert (counts["kept (newer in store)"], counts["replaced"]) == (1, 0)
    note = next(w.value for w in at.warning if w.value.startswith("old.csv: kept"))
    assert "kept 1 newer version from load 1" in note and "dated 2024-08-02" in note
    assert "--force-older" not in note and "Replace newer records" in note
    at.checkbox(key="force_older").check().run()
    assert any("check them again" in i.value for i in at.info)  # the check was without it
    at.button(key="check").click().run()
    counts = at.dataframe[0].value.iloc[0]
    assert (counts["kept (newer in store)"], counts["replaced"]) == (0, 1)
    at.checkbox(key="confirm_replace").check().run()
    at.button(key="load").click().run()
    assert not at.exception, [e.value for e in at.exception]
    assert _state(db)[1].loc["A1", "category"] == "drug_dealing"
