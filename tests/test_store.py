import sqlite3

import pandas as pd
import pytest

from hotspots import store
from hotspots.ingest import IngestResult
from hotspots.schema import INCIDENT_COLUMNS, REJECTION_COLUMNS


def result(rows: list[dict], file="asb.csv", rejected=0) -> IngestResult:
    base = {"source": "lbth-asb", "category": "asb_nuisance", "category_raw": "Rowdy",
            "period": "2024-08", "date": "2024-08-03", "hour": 21, "x": 534000.0,
            "y": 181000.0, "location": "", "location_key": "xy:534000:181000",
            "caller_key": "", "description": "", "quantity": 1, "ward_code": "W1",
            "lsoa_code": "L1", "source_lsoa": "", "file": file}
    inc = pd.DataFrame([{**base, **r, "row": i + 2} for i, r in enumerate(rows)])
    problems = pd.DataFrame([[file, 100 + i, "Lat", "", "missing_coordinates", "msg"]
                             for i in range(rejected)], columns=list(REJECTION_COLUMNS))
    rej = pd.DataFrame({"row": [100 + i for i in range(rejected)], "Lat": [""] * rejected,
                        "reasons": ["msg"] * rejected})
    return IngestResult(file=file, format="council", n_read=len(rows) + rejected,
                        incidents=inc[list(INCIDENT_COLUMNS)], problems=problems, rejected=rej,
                        lsoa_agreement=None)


def snapshot(conn):
    return {t: conn.execute(f"SELECT * FROM {t} ORDER BY 1, 2").fetchall()
            for t in ("incidents", "loads", "problems", "rejected_rows")}


@pytest.fixture()
def conn(tmp_path):
    c = store.connect(tmp_path / "sub" / "store.sqlite")
    yield c
    c.close()


def test_store_is_a_real_sqlite_file(tmp_path, conn):
    store.write_load(conn, result([{"ref": "A"}]), path="asb.csv", content_sha256="h1")
    other = sqlite3.connect(tmp_path / "sub" / "store.sqlite")
    assert other.execute("SELECT ref FROM incidents").fetchall() == [("A",)]
    other.close()


def test_same_export_twice_changes_nothing(conn):
    res = result([{"ref": "A"}, {"ref": "B"}], rejected=1)
    first = store.write_load(conn, res, path="asb.csv", content_sha256="h1")
    assert (first["inserted"], first["replaced"], first["unchanged"]) == (2, 0, 0)
    before = snapshot(conn)
    second = store.write_load(conn, res, path="asb.csv", content_sha256="h1")
    assert second == {"load_id": None, "inserted": 0, "replaced": 0, "unchanged": 2,
                      "kept_newer": [], "already_loaded": first["load_id"]}
    assert snapshot(conn) == before
    assert len(before["problems"]) == 1 and len(before["rejected_rows"]) == 1


def test_later_export_replaces_same_reference_and_counts(conn):
    store.write_load(conn, result([{"ref": "A"}, {"ref": "B"}]), path="w1.csv",
                     content_sha256="h1")
    newer = result([{"ref": "B", "category": "asb_personal"}, {"ref": "C"}], file="w2.csv")
    got = store.write_load(conn, newer, path="w2.csv", content_sha256="h2")
    assert (got["inserted"], got["replaced"], got["unchanged"]) == (1, 1, 0)
    inc = store.read_incidents(conn)
    assert inc.set_index("ref")["category"].to_dict() == {
        "A": "asb_nuisance", "B": "asb_personal", "C": "asb_nuisance"}
    loads = store.read_loads(conn)
    assert loads[["file", "n_inserted", "n_replaced", "n_unchanged"]].values.tolist() == [
        ["asb.csv", 2, 0, 0], ["w2.csv", 1, 1, 0]]


def test_row_moving_within_an_export_is_not_a_change(conn):
    store.write_load(conn, result([{"ref": "A"}, {"ref": "B"}]), path="w1", content_sha256="1")
    moved = result([{"ref": "B"}, {"ref": "A"}, {"ref": "C"}])
    got = store.write_load(conn, moved, path="w2", content_sha256="2")
    assert (got["inserted"], got["replaced"], got["unchanged"]) == (1, 0, 2)


def test_load_failing_midway_leaves_store_as_before(conn):
    store.write_load(conn, result([{"ref": "A"}]), path="w1", content_sha256="1")
    before = snapshot(conn)
    rows = [{"ref": f"R{i}"} for i in range(500)]
    bad = result(rows)
    bad.incidents.loc[400, "x"] = None  # violates NOT NULL while the rows are being written
    with pytest.raises(sqlite3.IntegrityError):
        store.write_load(conn, bad, path="w2", content_sha256="2")
    assert snapshot(conn) == before
    # and the store still takes the next good load
    got = store.write_load(conn, result(rows[:3]), path="w3", content_sha256="3")
    assert got["inserted"] == 3


def test_read_incidents_filters_dates_and_categories(conn):
    store.write_load(conn, result([
        {"ref": "A", "date": "2024-07-31"}, {"ref": "B", "date": "2024-08-01"},
        {"ref": "C", "date": "2024-08-31", "category": "drug_dealing"}]), path="w",
        content_sha256="1")
    got = store.read_incidents(conn, start="2024-08-01", end="2024-08-31")
    assert got["ref"].tolist() == ["B", "C"]
    got = store.read_incidents(conn, categories=["drug_dealing"])
    assert got["ref"].tolist() == ["C"]
    assert list(got.columns) == list(INCIDENT_COLUMNS)
    assert store.date_range(conn) == ("2024-07-31", "2024-08-31")


def test_unwritable_store_message(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(store.StoreError, match=r"cannot open the store .*Check the path given "
                                               r"to --store"):
        store.connect(blocker / "store.sqlite")


def places_frame():
    import geopandas as gpd
    import shapely
    return gpd.GeoDataFrame(
        {"place_id": ["P1", "P2"], "label": ["Brick Lane", "Watney Street"], "n": [40, 30]},
        geometry=[shapely.box(0, 0, 100, 100), shapely.box(500, 500, 600, 650)], crs=27700)


def test_tasking_log_round_trip(conn):
    run = store.write_places(conn, places_frame(), period="2024-08", start="2024-08-01",
                             end="2024-08-31", method="dbscan", params={"eps_m": 75})
    latest = store.read_places(conn)
    assert latest[["place_id", "rank", "run_id", "period"]].values.tolist() == [
        ["P1", 1, run, "2024-08"], ["P2", 2, run, "2024-08"]]
    d = store.record_decision(conn, place_id="P2", owner="enforcement",
                              actions="Dispersal patrols; =HYPERLINK(\"x\")",
                              review_date="2024-10-01", meeting_date="2024-09-05")
    got = store.read_decisions(conn).iloc[0]
    assert (got["decision_id"], got["place_id"], got["label"], got["owner"]) == (
        d, "P2", "Watney Street", "enforcement")
    assert got["actions"] == "Dispersal patrols; =HYPERLINK(\"x\")"  # stored as given
    assert got["geometry_wkt"].startswith("POLYGON ((600 500")
    assert store.read_decisions(conn, meeting_date="2024-09-06").empty


@pytest.mark.parametrize("kw, message", [
    ({"place_id": "P9"}, r"place 'P9' is not in the latest detection run \(2024-08\); run "
                         r"`hotspots detect`"),
    ({"owner": "police"}, r"owner 'police' is not one of \['enforcement', 'housing', "),
    ({"review_date": "01/10/2024"}, r"review date '01/10/2024' is not a date; write YYYY-MM-DD"),
    ({"review_date": "2024-09-01"}, r"review date 2024-09-01 is before the meeting 2024-09-05"),
])
def test_tasking_decision_errors(conn, kw, message):
    store.write_places(conn, places_frame(), period="2024-08", start="2024-08-01",
                       end="2024-08-31", method="dbscan", params={})
    args = {"place_id": "P1", "owner": "ptf", "actions": "patrol", "review_date": "2024-10-01",
            "meeting_date": "2024-09-05", **kw}
    with pytest.raises(store.StoreError, match=message):
        store.record_decision(conn, **args)


def test_decision_on_the_run_on_screen_not_only_the_latest(conn):
    first = store.write_places(conn, places_frame(), period="2024-08", start="2024-08-01",
                               end="2024-08-31", method="dbscan", params={})
    store.write_places(conn, places_frame().iloc[:1], period="2024-07", start="2024-07-01",
                       end="2024-07-31", method="dbscan", params={})
    with pytest.raises(store.StoreError, match=r"place 'P2' is not in the latest detection run"):
        store.record_decision(conn, place_id="P2", owner="ptf", actions="a",
                              review_date="2024-10-01", meeting_date="2024-09-05")
    store.record_decision(conn, place_id="P2", owner="ptf", actions="a",
                          review_date="2024-10-01", meeting_date="2024-09-05", run_id=first)
    assert store.read_decisions(conn)["run_id"].tolist() == [first]
