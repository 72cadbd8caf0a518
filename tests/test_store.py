"""The store's contract, run against both backends (a SQLite file and a PostgreSQL +
PostGIS server): loads, idempotency, replacement, the load-order rule, rejected rows,
decisions, two concurrent writers and a load killed midway."""

import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pandas as pd
import psycopg
import pytest

from hotspots import store
from hotspots.ingest import IngestResult
from hotspots.schema import INCIDENT_COLUMNS, REJECTION_COLUMNS
from hotspots.store import loading


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


ROOT = Path(__file__).resolve().parents[1]
STORED = ", ".join(store.STORED_COLUMNS)


def snapshot(conn):
    return {"incidents": conn.query(f"SELECT {STORED} FROM incidents ORDER BY 1, 2"),
            **{t: conn.query(f"SELECT * FROM {t} ORDER BY 1, 2")
               for t in ("loads", "problems", "rejected_rows")}}


@pytest.fixture()
def conn(store_target):
    c = store.connect(store_target)
    yield c
    c.close()


def test_store_is_a_real_sqlite_file(tmp_path):
    conn = store.connect(tmp_path / "store.sqlite")
    store.write_load(conn, result([{"ref": "A"}]), path="asb.csv", content_sha256="h1")
    other = sqlite3.connect(tmp_path / "store.sqlite")
    assert other.execute("SELECT ref FROM incidents").fetchall() == [("A",)]
    assert other.execute("PRAGMA journal_mode").fetchone() == ("wal",)
    assert other.execute("PRAGMA page_size").fetchone() == (16384,)  # a new store's pages
    other.close()
    conn.close()


def test_server_store_has_postgis_points_with_a_gist_index(pg_url):
    conn = store.connect(pg_url)
    store.write_load(conn, result([{"ref": "A", "x": 534100.5, "y": 181200.25}]), path="a",
                     content_sha256="h1")
    assert conn.query("SELECT ST_AsText(geom), ST_SRID(geom) FROM incidents") == [
        ("POINT(534100.5 181200.25)", 27700)]
    assert conn.query("SELECT indexdef FROM pg_indexes WHERE indexname = 'incidents_geom'"
                      )[0][0].endswith("USING gist (geom)")
    assert conn.engine().startswith("postgresql ") and "postgis" in conn.engine()
    conn.close()


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


def test_results_are_kept_against_the_data_they_were_made_from(conn):
    """A backtest (or forecast layer) is served only for the data it was made from: the
    fingerprint read before the data, not the one at the time of writing; ``only`` keeps
    a selection's result for its data alone."""
    store.write_load(conn, result([{"ref": "A"}]), path="a.csv", content_sha256="h1")
    before = store.data_fingerprint(conn)
    store.write_backtest(conn, "sel", {"v": 1.0 / 3})
    assert store.read_backtest(conn, "sel") == {"v": 1.0 / 3}
    store.write_load(conn, result([{"ref": "B"}]), path="b.csv", content_sha256="h2")
    assert store.data_fingerprint(conn) != before and store.read_backtest(conn, "sel") is None
    store.write_backtest(conn, "sel", {"v": 2}, fingerprint=before)  # made from older data
    assert store.read_backtest(conn, "sel") is None
    store.write_backtest(conn, "sel", {"v": 3})
    store.write_backtest(conn, "other", {"v": 4}, fingerprint=before)
    assert store.read_backtest(conn, "sel") == {"v": 3}
    assert conn.query("SELECT count(*) FROM backtests WHERE selection = 'sel'")[0][0] == 2
    store.write_backtest(conn, "sel", {"v": 5}, only=True)
    assert store.read_backtest(conn, "sel") == {"v": 5}
    assert conn.query("SELECT count(*) FROM backtests WHERE selection = 'sel'")[0][0] == 1
    assert conn.query("SELECT count(*) FROM backtests WHERE selection = 'other'")[0][0] == 1


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


def test_unchanged_records_take_a_later_exports_date_and_load(conn):
    """Records seen unchanged in a later export carry its date and load (of two sources,
    in a chunked load), so an export dated between cannot revert them."""
    rows = [{"ref": "A"}, {"ref": "B"}, {"ref": "C", "source": "other"}]
    store.write_load(conn, result(rows), path="w1", content_sha256="1",
                     exported_at="2024-08-01T00:00:00")
    later = store.write_load(conn, [result(rows[:1]), result(rows[1:])], path="w2",
                             content_sha256="2", exported_at="2024-08-30T00:00:00")
    assert later["unchanged"] == 3
    assert conn.query("SELECT ref, exported_at, load_id FROM incidents ORDER BY ref") == [
        (r, "2024-08-30T00:00:00", later["load_id"]) for r in "ABC"]
    between = store.write_load(conn, result([{"ref": "B", "hour": 5}]), path="w3",
                               content_sha256="3", exported_at="2024-08-15T00:00:00")
    assert (between["replaced"], between["kept_newer"]) == (0, [
        {"load_id": later["load_id"], "exported_at": "2024-08-30T00:00:00", "n": 1}])


def test_preview_counts_what_a_load_would_do_and_writes_nothing(conn):
    store.write_load(conn, result([{"ref": "A"}, {"ref": "B"}, {"ref": "C", "hour": 3}]),
                     path="w1.csv", content_sha256="h1", exported_at="2024-08-10T00:00:00")
    before = snapshot(conn)
    newer = result([{"ref": "A"}, {"ref": "B", "category": "asb_personal", "x": 534010.5},
                    {"ref": "C", "hour": 4}, {"ref": "D"}], file="w2.csv")
    got = store.preview_load(conn, newer, load_key="h2", exported_at="2024-08-17T00:00:00")
    assert snapshot(conn) == before  # nothing written
    assert (got["inserted"], got["replaced"], got["unchanged"]) == (1, 2, 1)
    assert got["already_loaded"] is None and got["kept_newer"] == []
    assert got["changes"].values.tolist() == [
        ["B", "category", "asb_nuisance", "asb_personal"], ["B", "x", "534000", "534010.5"],
        ["C", "hour", "3", "4"]]
    # the load then does what the preview said
    done = store.write_load(conn, newer, path="w2.csv", content_sha256="h2",
                            exported_at="2024-08-17T00:00:00")
    assert (done["inserted"], done["replaced"], done["unchanged"]) == (1, 2, 1)
    # an older export: the newer versions are kept, as the load would keep them
    older = result([{"ref": "B", "category": "asb_environmental"}], file="w0.csv")
    got = store.preview_load(conn, older, load_key="h0", exported_at="2024-08-01T00:00:00")
    assert (got["replaced"], got["kept_newer"]) == (0, [
        {"load_id": done["load_id"], "exported_at": "2024-08-17T00:00:00", "n": 1}])
    assert got["changes"].empty
    assert store.preview_load(conn, newer, load_key="h2")["already_loaded"] == done["load_id"]


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
    with pytest.raises((sqlite3.IntegrityError, psycopg.errors.NotNullViolation)):
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
    # some columns only (a year's points for the forecast), the same rows and dtypes
    got = store.read_incidents(conn, end="2024-08-31", categories=["asb_nuisance"],
                               columns=("date", "x", "y"))
    assert list(got.columns) == ["date", "x", "y"]
    assert sorted(got["date"]) == ["2024-07-31", "2024-08-01"]
    assert got["x"].dtype == "float64"
    with pytest.raises(ValueError, match="geometry.*not incident columns"):
        store.read_incidents(conn, columns=("x", "geometry"))


def test_months_are_the_months_with_incidents_newest_first(conn):
    assert store.months(conn) == []
    store.write_load(conn, result([{"ref": r, "date": d} for r, d in [
        ("A", "2023-11-30"), ("B", "2023-12-01"), ("C", "2023-12-31"), ("D", "2024-02-29"),
        ("E", "2024-02-01"), ("F", "2025-01-15")]]), path="w", content_sha256="1")
    assert store.months(conn) == ["2025-01", "2024-02", "2023-12", "2023-11"]


def test_unwritable_store_message(tmp_path, pg_server):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(store.StoreError, match=r"cannot open the store .*Check the path given "
                                               r"to --store"):
        store.connect(blocker / "store.sqlite")
    with pytest.raises(store.StoreError, match=r"cannot open the store postgresql://postgres@"
                                               r".*/no_such_db: .*Check the URL given to "
                                               r"--store or HOTSPOTS_STORE"):
        store.connect(f"{pg_server}/no_such_db")


def test_the_password_of_a_server_is_never_shown():
    assert store.store_name("postgresql://ana:s3cret@db.example:5433/hot") == (
        "postgresql://ana@db.example:5433/hot")


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


def test_meetings_are_records_with_the_period_they_reviewed(conn):
    store.write_places(conn, places_frame(), period="2024-08", start="2024-08-01",
                       end="2024-08-31", method="dbscan", params={})
    first = store.write_meeting(conn, meeting_date="2024-08-08", period_start="2024-07-01",
                                period_end="2024-07-31", notes="July", user="ana")
    # a decision on a date with no meeting records the meeting (its period unknown)
    store.record_decision(conn, place_id="P1", owner="ptf", actions="a",
                          review_date="2024-10-01", meeting_date="2024-09-05")
    got = store.read_meetings(conn)
    assert got[["meeting_date", "period_start", "period_end", "n_decisions"]].values.tolist() \
        == [["2024-08-08", "2024-07-01", "2024-07-31", 0], ["2024-09-05", "", "", 1]]
    assert got["created_by"].iloc[0] == "ana"
    # recording the meeting again sets its period; it stays one meeting with its id
    again = store.write_meeting(conn, meeting_date="2024-08-08", period_start="2024-07-01",
                                period_end="2024-07-28")
    assert again == first and len(store.read_meetings(conn)) == 2
    assert store.read_meetings(conn)["period_end"].iloc[0] == "2024-07-28"
    for kw, message in (({"period_start": "2024-07-31", "period_end": "2024-07-01"},
                         r"period end 2024-07-01 is before its start 2024-07-31"),
                        ({"period_start": "2024-07-01"}, r"give both ends of the period"),
                        ({"meeting_date": "5/9/2024"}, r"meeting date '5/9/2024' is not a "
                                                       r"date; write YYYY-MM-DD")):
        with pytest.raises(store.StoreError, match=message):
            store.write_meeting(conn, **{"meeting_date": "2024-08-08", **kw})


def test_decisions_are_edited_and_closed_and_it_persists(store_target):
    conn = store.connect(store_target)
    store.write_places(conn, places_frame(), period="2024-08", start="2024-08-01",
                       end="2024-08-31", method="dbscan", params={})
    d = store.record_decision(conn, place_id="P2", owner="ptf", actions="patrols",
                              review_date="2024-10-01", meeting_date="2024-09-05")
    before = store.version(conn)
    store.update_decision(conn, d, owner="housing", actions="CCTV =1+1", user="ben")
    edited = store.version(conn)
    store.close_decision(conn, d, outcome="resolved", note="Dealing moved on",
                         closed_on="2024-10-02", user="cat")
    closed = store.version(conn)
    assert before[2] < edited[2] < closed[2]  # cached results see every change
    for kw, message in (({"outcome": "gone"}, r"outcome 'gone' is not one of \['escalated', "),
                        ({"closed_on": "2024-09-01"}, r"closing date 2024-09-01 is before the "
                                                      r"meeting 2024-09-05"),
                        ({"closed_on": "2.10.24"}, r"closing date '2.10.24' is not a date")):
        with pytest.raises(store.StoreError, match=message):
            store.close_decision(conn, d, **{"outcome": "resolved", **kw})
    with pytest.raises(store.StoreError, match=r"there is no decision 99; `hotspots task "
                                               r"list`"):
        store.update_decision(conn, 99, actions="x")
    with pytest.raises(store.StoreError, match=r"review date 2024-09-01 is before the meeting"):
        store.update_decision(conn, d, review_date="2024-09-01")
    with pytest.raises(store.StoreError, match=r"nothing to change in decision"):
        store.update_decision(conn, d)
    conn.close()
    conn = store.connect(store_target)  # another connection sees what was written
    got = store.read_decisions(conn).iloc[0]
    conn.close()
    assert (got["owner"], got["actions"], got["review_date"]) == ("housing", "CCTV =1+1",
                                                                  "2024-10-01")
    assert (got["outcome"], got["outcome_note"], got["closed_on"]) == (
        "resolved", "Dealing moved on", "2024-10-02")
    assert (got["edited_by"], int(got["revision"]), got["recorded_by"]) == ("cat", 2,
                                                                           store.current_user())
    assert got["edited_at"] >= got["recorded_at"]


def test_an_older_store_gets_its_meetings_from_its_decision_dates(store_target):
    conn = store.connect(store_target)
    store.write_places(conn, places_frame(), period="2024-08", start="2024-08-01",
                       end="2024-08-31", method="dbscan", params={})
    for day in ("2024-08-08", "2024-09-05", "2024-09-05"):
        store.record_decision(conn, place_id="P1", owner="ptf", actions="a",
                              review_date="2024-10-01", meeting_date=day)
    # as a store written before meetings were records
    conn.conn.execute("DROP TABLE meetings")
    for column in ("outcome", "outcome_note", "closed_on", "edited_at", "edited_by",
                   "revision"):
        conn.conn.execute(f"ALTER TABLE tasking DROP COLUMN {column}")
    conn.close()
    conn = store.connect(store_target)
    got = store.read_meetings(conn)
    assert got[["meeting_date", "period_start", "n_decisions"]].values.tolist() == [
        ["2024-08-08", "", 1], ["2024-09-05", "", 2]]
    store.close_decision(conn, 1, outcome="escalated")
    decisions = store.read_decisions(conn)
    conn.close()
    assert decisions["outcome"].tolist() == ["escalated", "", ""]
    assert decisions["closed_on"].iloc[1] == ""


# -- several processes on one store -----------------------------------------------------

WRITER = textwrap.dedent("""
    import sys
    from hotspots import store
    from tests.test_store import result
    conn = store.connect(sys.argv[1], timeout_s=float(sys.argv[3]))
    n, tag = int(sys.argv[4]), sys.argv[2]
    res = result([{"ref": f"{tag}{i}"} for i in range(n)], file=f"{tag}.csv")
    upsert = conn.upsert_incidents

    def inside(rows, **kw):  # say when the rows are being written, in the transaction
        print("inside", flush=True)
        upsert(rows, **kw)

    conn.upsert_incidents = inside
    got = store.write_load(conn, res, path=tag, content_sha256=tag)
    print("done", got["inserted"], flush=True)
""")


def spawn(code: str, *args: str) -> subprocess.Popen:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    return subprocess.Popen([sys.executable, "-c", code, *args], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


@pytest.mark.slow
def test_two_concurrent_loads_both_succeed(store_target):
    store.connect(store_target).close()
    procs = [spawn(WRITER, store_target, tag, "60", "20000") for tag in ("A", "B")]
    for p in procs:
        out, err = p.communicate(timeout=180)
        assert p.returncode == 0, err
        assert "done 20000" in out
    conn = store.connect(store_target)
    assert len(store.read_incidents(conn)) == 40_000
    assert store.read_loads(conn)["n_inserted"].tolist() == [20_000, 20_000]
    conn.close()


def test_a_writer_that_waits_too_long_gets_a_clear_message(store_target):
    holder = store.connect(store_target)
    conn = store.connect(store_target, timeout_s=0.2)
    before = snapshot(conn)
    with holder.transaction(load=True):  # another load in the middle of writing
        with pytest.raises(store.StoreError, match=r"the store .* is busy: another load .* "
                                                   r"more than 0\.2 s .*Nothing was written; "
                                                   r"try again"):
            store.write_load(conn, result([{"ref": "A"}]), path="a", content_sha256="a")
    assert snapshot(conn) == before
    conn.close()
    holder.close()


@pytest.mark.slow
def test_a_load_killed_midway_leaves_the_store_unchanged(store_target):
    conn = store.connect(store_target)
    store.write_load(conn, result([{"ref": f"Z{i}"} for i in range(100)]), path="z",
                     content_sha256="z")
    before = snapshot(conn)
    conn.close()
    writer = spawn(WRITER, store_target, "K", "60", "200000")
    assert writer.stdout.readline().strip() == "inside"
    time.sleep(0.5)  # rows of the load's transaction are being written
    writer.send_signal(signal.SIGKILL)
    writer.communicate(timeout=60)
    conn = store.connect(store_target)
    assert snapshot(conn) == before
    got = store.write_load(conn, result([{"ref": "N1"}]), path="n", content_sha256="n")
    assert got["inserted"] == 1  # and the store still takes the next load
    conn.close()


READER = textwrap.dedent("""
    import sys, time
    from hotspots import store
    counts, t_end = [], time.time() + float(sys.argv[2])
    while time.time() < t_end:
        conn = store.connect(sys.argv[1])
        counts.append(len(store.read_incidents(conn)))
        conn.close()
    print(min(counts), max(counts), len(counts), flush=True)
""")


@pytest.mark.slow
def test_the_app_keeps_reading_while_a_load_writes(store_target):
    conn = store.connect(store_target)
    store.write_load(conn, result([{"ref": f"Z{i}"} for i in range(1000)]), path="z",
                     content_sha256="z")
    conn.close()
    reader = spawn(READER, store_target, "6")
    time.sleep(1.0)
    writer = spawn(WRITER, store_target, "A", "60", "20000")
    w_out, w_err = writer.communicate(timeout=120)
    r_out, r_err = reader.communicate(timeout=120)
    assert writer.returncode == 0, w_err
    assert reader.returncode == 0, r_err
    low, high, reads = map(int, r_out.split())
    # every read saw the store before the load or after it, never a part, and reads went
    # on while the load wrote
    assert low == 1000 and high in (1000, 21_000) and reads > 5


APP_INSTANCE = textwrap.dedent("""
    import sys, time
    from hotspots import store
    from tests.test_store import places_frame
    me, other = sys.argv[2], sys.argv[3]
    conn = store.connect(sys.argv[1])
    store.record_decision(conn, place_id="P1", owner="ptf", actions=f"from {me}",
                          review_date="2024-10-01", meeting_date="2024-09-05", user=me)
    deadline = time.time() + 60
    while time.time() < deadline:
        seen = store.read_decisions(conn)
        if f"from {other}" in set(seen["actions"]):
            print(sorted(zip(seen["recorded_by"], seen["actions"])), flush=True)
            break
        time.sleep(0.2)
""")


@pytest.mark.slow
def test_two_app_instances_see_each_others_decisions(store_target):
    conn = store.connect(store_target)
    store.write_places(conn, places_frame(), period="2024-08", start="2024-08-01",
                       end="2024-08-31", method="dbscan", params={})
    conn.close()
    procs = [spawn(APP_INSTANCE, store_target, me, other)
             for me, other in (("ana", "ben"), ("ben", "ana"))]
    for p in procs:
        out, err = p.communicate(timeout=120)
        assert p.returncode == 0, err
        assert out.strip() == "[('ana', 'from ana'), ('ben', 'from ben')]"


def test_values_every_row_shares_round_trip_exactly(conn):
    """A load's shared values (one file name, one source) are written once into the
    statement: quote marks and non-ASCII text come back as they went in."""
    rows = [{"ref": f"R{i}", "source": "o'neil's \"asb\" – système", "hour": 7,
             "location": "1 O'Neil's Yard" if i % 2 else "", "x": 534000.5 + i / 3}
            for i in range(5)]
    res = result(rows, file="it's; DROP TABLE incidents;--.csv")
    store.write_load(conn, res, path="p", content_sha256="h1")
    back = store.read_incidents(conn)
    pd.testing.assert_frame_equal(back.reset_index(drop=True),
                                  res.incidents.sort_values(["source", "ref"],
                                                            ignore_index=True),
                                  check_dtype=False)


def test_row_hash_is_pandas_hash_of_the_content_columns():
    """Stored row hashes stay comparable with those of earlier versions of the package."""
    import numpy as np

    inc = result([{"ref": f"R{i}", "category_raw": ["Rowdy", "Noise", "é"][i % 3],
                   "x": 534000.0 + i} for i in range(50)]).incidents
    arrow = inc.astype({c: "string[pyarrow]" for c in inc.columns if inc[c].dtype == object})
    want = pd.util.hash_pandas_object(inc[loading._CONTENT], index=False).to_numpy()
    for frame in (inc, arrow):
        assert np.array_equal(loading._row_hash(frame), want.view(np.int64))


def test_row_hash_of_text_in_several_chunks():
    """A frame put together from parts holds Arrow text in chunks: hashed the same."""
    import numpy as np
    import pyarrow as pa

    inc = result([{"ref": f"R{i}", "category_raw": ["Rowdy", "Noise"][i % 2]}
                  for i in range(6)]).incidents
    parts = pa.chunked_array([inc["category_raw"].iloc[:2].tolist(),
                              inc["category_raw"].iloc[2:].tolist()])
    chunked = inc.assign(category_raw=pd.arrays.ArrowStringArray(parts))
    want = pd.util.hash_pandas_object(inc[loading._CONTENT], index=False).to_numpy()
    assert np.array_equal(loading._row_hash(chunked), want.view(np.int64))


def test_arrow_text_of_few_values_round_trips_exactly(conn):
    """Arrow text with few distinct values is bound one Python string per value (the
    store's bulk path): every row still comes back with its own value."""
    rows = [{"ref": f"R{i:02d}", "category_raw": ["Rowdy", "O'Neil's \"noise\"", "é"][i % 3],
             "location": "" if i % 4 else f"{i} High St", "x": 534000.0 + i}
            for i in range(40)]
    res = result(rows)
    arrow = res.incidents.astype({c: "string[pyarrow]" for c in res.incidents.columns
                                  if res.incidents[c].dtype == object})
    store.write_load(conn, IngestResult(**{**res.__dict__, "incidents": arrow}), path="p",
                     content_sha256="h1")
    pd.testing.assert_frame_equal(store.read_incidents(conn), res.incidents,
                                  check_dtype=False)


def test_a_load_in_chunks_compares_with_what_was_stored_before_it(conn):
    """A chunked load of a source the store holds compares every chunk with the stored
    versions; a source new to the store is not looked up, and its rows are all new."""
    store.write_load(conn, result([{"ref": "A"}, {"ref": "B"}]), path="w1",
                     content_sha256="1")
    chunks = [result([{"ref": "A", "hour": 3}, {"ref": "C"}]),
              result([{"ref": "D", "source": "other"}, {"ref": "B"}, {"ref": "E"}]),
              result([{"ref": "F", "source": "other"}])]
    got = store.write_load(conn, chunks, path="w2", content_sha256="2")
    assert (got["inserted"], got["replaced"], got["unchanged"]) == (4, 1, 1)
    back = store.read_incidents(conn)
    assert back["ref"].tolist() == ["A", "B", "C", "E", "D", "F"]
    assert back.set_index("ref").loc["A", "hour"] == 3


def test_a_bulk_load_keeps_the_date_index(store_target):
    """SQLite builds the date index after a bulk load's rows, in its transaction: there
    after the load, and after one that failed."""
    conn = store.connect(store_target)
    store.write_load(conn, result([{"ref": f"R{i}"} for i in range(50)]), path="w1",
                     content_sha256="1")
    bad = result([{"ref": f"S{i}"} for i in range(400)])
    bad.incidents.loc[300, "x"] = None
    with pytest.raises((sqlite3.IntegrityError, psycopg.errors.NotNullViolation)):
        store.write_load(conn, bad, path="w2", content_sha256="2")
    sql = ("SELECT count(*) FROM pg_indexes WHERE indexname = 'incidents_date'"
           if store.is_server(store_target) else
           "SELECT count(*) FROM sqlite_master WHERE name = 'incidents_date'")
    assert conn.query(sql) == [(1,)]
    if not store.is_server(store_target):
        plan = conn.query("EXPLAIN QUERY PLAN SELECT * FROM incidents WHERE date = '2024-08-03'")
        assert "incidents_date" in str(plan)
    assert len(store.read_incidents(conn, start="2024-08-03", end="2024-08-03")) == 50
    conn.close()


def test_a_bulk_load_builds_the_key_after_its_rows(tmp_path):
    """A bulk load of rows new to the store sets the key index aside and builds it before
    the commit: it is there after the load (and used), after a load that failed, and a
    repeated key still fails the load, leaving the store as it was."""
    conn = store.connect(tmp_path / "s.sqlite")
    seen: list[str] = []
    conn.conn.set_trace_callback(seen.append)  # the statements run
    store.write_load(conn, result([{"ref": f"R{i}"} for i in range(50)]), path="w1",
                     content_sha256="1")
    conn.conn.set_trace_callback(None)
    assert "DROP INDEX IF EXISTS incidents_key" in seen  # set aside: 50 rows, none stored
    bad = result([{"ref": f"S{i}"} for i in range(400)])
    bad.incidents.loc[300, "x"] = None
    with pytest.raises(sqlite3.IntegrityError):
        store.write_load(conn, bad, path="w2", content_sha256="2")
    before = snapshot(conn)
    with pytest.raises(sqlite3.IntegrityError, match="UNIQUE"), conn.transaction(load=True):
        rows = result([{"ref": "T1"}, {"ref": "T2"}, {"ref": "T1"}]).incidents
        rows["row_hash"], rows["load_id"], rows["exported_at"] = 0, 1, ""
        conn.upsert_incidents(rows, replace=False)
    assert snapshot(conn) == before
    assert conn.query("SELECT sql FROM sqlite_master WHERE name = 'incidents_key'") == [
        ("CREATE UNIQUE INDEX incidents_key ON incidents(source, ref)",)]
    plan = conn.query("EXPLAIN QUERY PLAN SELECT * FROM incidents WHERE source = 'lbth-asb' "
                      "AND ref = 'R3'")
    assert "incidents_key" in str(plan)
    assert store.read_incidents(conn)["ref"].tolist() == sorted(f"R{i}" for i in range(50))
    conn.close()


def test_rows_go_into_a_store_file_by_date_then_reference(tmp_path):
    """The embedded store writes a load's rows by date, then by reference (a date's rows
    together; the indexes fed sorted runs), whatever the export's order; references
    sharing their first bytes are told apart by the bytes where they differ."""
    import numpy as np

    from hotspots.ingest.text import telling_word

    refs = ["ASB-2024-000123", "ASB-2024-000045", "ASB-2024-000046", "ASB-2024-1"]
    arrow = pd.Series(refs, dtype="string[pyarrow]")
    assert [refs[i] for i in np.argsort(telling_word(arrow))] == sorted(refs)
    rows = [{"ref": r, "date": d, "period": d[:7]} for r, d in
            zip(refs * 2, ["2024-08-03"] * 4 + ["2024-08-01"] * 4, strict=True)]
    rows = [{**r, "ref": r["ref"] + ("b" if i >= 4 else "")} for i, r in enumerate(rows)]
    res = result(rows)
    arrow_rows = res.incidents.astype({c: "string[pyarrow]" for c in res.incidents.columns
                                       if res.incidents[c].dtype == object})
    conn = store.connect(tmp_path / "s.sqlite")
    store.write_load(conn, IngestResult(**{**res.__dict__, "incidents": arrow_rows}),
                     path="p", content_sha256="h")
    got = conn.query("SELECT date, ref FROM incidents ORDER BY rowid")
    assert got == sorted(got)
    conn.close()


def test_a_store_made_with_the_key_in_its_table_loads_as_before(tmp_path):
    """A store written before the key was a named index keeps its table's PRIMARY KEY (no
    second index of the same key) and loads, replaces and refuses repeats as before."""
    path = tmp_path / "old.sqlite"
    conn = store.connect(path)
    ddl = conn.query("SELECT sql FROM sqlite_master WHERE name = 'incidents'")[0][0]
    conn.close()
    old = sqlite3.connect(path)
    old.executescript("DROP TABLE incidents; " + ddl.replace(
        "DEFAULT ''\n)", "DEFAULT '',\n    PRIMARY KEY (source, ref)\n)") + "; "
        + "DROP INDEX IF EXISTS incidents_key")
    old.close()
    conn = store.connect(path)
    names = [r[0] for r in conn.query("SELECT name FROM sqlite_master WHERE tbl_name = "
                                      "'incidents' AND type = 'index' ORDER BY name")]
    assert names == ["incidents_date", "sqlite_autoindex_incidents_1"]
    store.write_load(conn, result([{"ref": f"R{i}"} for i in range(50)]), path="w1",
                     content_sha256="1")
    got = store.write_load(conn, result([{"ref": "R1", "hour": 3}, {"ref": "N"}]),
                           path="w2", content_sha256="2")
    assert (got["inserted"], got["replaced"]) == (1, 1)
    assert len(store.read_incidents(conn)) == 51
    with pytest.raises(sqlite3.IntegrityError), conn.transaction(load=True):
        rows = result([{"ref": "T1"}, {"ref": "T1"}]).incidents
        rows["row_hash"], rows["load_id"], rows["exported_at"] = 0, 1, ""
        conn.upsert_incidents(rows, replace=False)
    conn.close()


# -- the columnar copy of each month (SQLite) -------------------------------------------

#: References whose order differs by byte, by case and by number (SQLite's BINARY order)
REFS = ["a", "B", "é", "Z", "ß", "10", "9", "b", "Ä", "_x"]


def months_store(path):
    conn = store.connect(path)
    rows = [{"ref": f"{r}{i}", "date": f"2024-{m:02d}-{d:02d}", "hour": i % 24,
             "category": ("drug_dealing", "asb_nuisance")[i % 2], "x": 534000.0 + i / 7,
             "location": f"Street {i % 3}", "quantity": i}
            for i, (r, m, d) in enumerate((r, m, d) for m in (6, 7, 9) for d in (1, 15, 30)
                                          for r in REFS)]
    store.write_load(conn, result(rows), path="w", content_sha256="1")
    return conn


def same_as_sql(conn, **kw) -> pd.DataFrame:
    """read_incidents, checked against one SQL query: the same values and dtypes (rows in
    the same order when the read is ordered, as a set when it is not)."""
    got = store.read_incidents(conn, **kw)
    names = list(kw.get("columns") or INCIDENT_COLUMNS)
    want = store.sql_incidents(conn, names, start=kw.get("start"), end=kw.get("end"),
                               categories=kw.get("categories"), ordered="columns" not in kw)
    if "columns" in kw:
        got, want = (f.sort_values(names).reset_index(drop=True) for f in (got, want))
    pd.testing.assert_frame_equal(got, want, check_exact=True)
    assert got.dtypes.to_dict() == want.dtypes.to_dict()
    return got


def kept_months(conn) -> list[str]:
    return [r[0] for r in conn.query("SELECT month FROM incident_months ORDER BY month")]


READS = [{}, {"start": "2024-06-15", "end": "2024-07-15"},
         {"start": "2024-07-01", "categories": ["drug_dealing"]},
         {"end": "2024-06-30", "columns": ("date", "x", "ref", "hour")},
         {"categories": ["asb_nuisance"], "columns": ("quantity",)},
         {"start": "2024-08-01", "end": "2024-08-31"}, {"start": "2025-01-01"},
         {"categories": []}, {"categories": ["none"], "columns": ("x", "y")}]


@pytest.mark.parametrize("kw", READS)
def test_a_read_from_the_months_copies_is_the_sql_read(tmp_path, kw):
    conn = months_store(tmp_path / "s.sqlite")
    assert kept_months(conn) == ["2024-06", "2024-07", "2024-09"]  # kept by the load
    first = same_as_sql(conn, **kw)
    conn.query("DELETE FROM incident_months")
    pd.testing.assert_frame_equal(same_as_sql(conn, **kw), first)  # made from SQL
    kept = kept_months(conn)
    dates = store.read_incidents(conn, start=kw.get("start"), end=kw.get("end"),
                                 columns=["date"])["date"]
    # the months read are kept (all of a month's rows, whatever the read's categories)
    assert kept == ([] if kw.get("categories") == [] else sorted({d[:7] for d in dates}))
    conn.close()


def test_each_load_adds_its_rows_to_the_months_copies(tmp_path, monkeypatch):
    """A month's copy is a load's rows and then the next ones' (parts): the reads after
    loads take nothing from SQL, until a load replaces a stored record of a month."""
    conn = months_store(tmp_path / "s.sqlite")
    from_sql = []
    made = store.columnar._from_sql
    monkeypatch.setattr(store.columnar, "_from_sql",
                        lambda db, month: from_sql.append(month) or made(db, month))
    for i, month in enumerate(["2024-07", "2024-09", "2024-10"]):
        store.write_load(conn, result([{"ref": f"L{i}-{j}", "date": f"{month}-0{j + 1}"}
                                       for j in range(3)]), path=f"l{i}", content_sha256=f"l{i}")
    got = same_as_sql(conn)
    assert from_sql == [] and len(got) == 90 + 9
    assert conn.query("SELECT month, count(*), sum(n) FROM incident_months GROUP BY month") == [
        ("2024-06", 1, 30), ("2024-07", 2, 33), ("2024-09", 2, 33), ("2024-10", 1, 3)]
    store.write_load(conn, result([{"ref": "L0-0", "date": "2024-07-01", "hour": 3}]),
                     path="r", content_sha256="r")
    got = same_as_sql(conn)
    assert from_sql == ["2024-07"] and got.loc[got["ref"] == "L0-0", "hour"].tolist() == [3]
    conn.close()


def test_a_month_loaded_in_many_parts_is_gathered_into_one(tmp_path, monkeypatch):
    """A daily load adds a part a day to its month: the first read after the month has
    more than MAX_PARTS keeps it as one block again (none taken from SQL)."""
    monkeypatch.setattr(store.columnar, "_from_sql", None)
    conn = months_store(tmp_path / "s.sqlite")
    for day in range(1, store.columnar.MAX_PARTS + 2):
        store.write_load(conn, result([{"ref": f"D{day}", "date": f"2024-07-{day:02d}"}]),
                         path=f"d{day}", content_sha256=f"d{day}")
    parts = "SELECT count(*), sum(n) FROM incident_months WHERE month = '2024-07'"
    assert conn.query(parts) == [(store.columnar.MAX_PARTS + 2, 30 + store.columnar.MAX_PARTS
                                  + 1)]
    narrow = same_as_sql(conn, columns=("ref", "date"))  # a read of some columns keeps all
    assert conn.query(parts) == [(1, 30 + store.columnar.MAX_PARTS + 1)]
    pd.testing.assert_frame_equal(same_as_sql(conn, columns=("ref", "date")), narrow)
    same_as_sql(conn)
    conn.close()


def test_the_months_copy_follows_every_change_to_the_store(tmp_path):
    path = tmp_path / "s.sqlite"
    conn = months_store(path)
    same_as_sql(conn)
    assert kept_months(conn) == ["2024-06", "2024-07", "2024-09"]
    # a later export changes one record: the month's count stays, its copy goes (but for
    # the new version)
    store.write_load(conn, result([{"ref": "a0", "date": "2024-06-01", "hour": 5}]),
                     path="w2", content_sha256="2")
    assert conn.query("SELECT month, n FROM incident_months WHERE month = '2024-06'") == [
        ("2024-06", 1)]
    got = same_as_sql(conn)
    assert got.loc[got["ref"] == "a0", "hour"].tolist() == [5]
    # another program changes a record in place, or swaps one for another
    other = sqlite3.connect(path)
    with other:
        other.execute("UPDATE incidents SET location = 'Moved' WHERE ref = 'B1'")
        other.execute("DELETE FROM incidents WHERE ref = 'Z33'")
        other.execute("INSERT INTO incidents SELECT 'lbth-asb', 'New', category, category_raw,"
                      " period, date, hour, x, y, location, location_key, caller_key, "
                      "description, quantity, ward_code, lsoa_code, source_lsoa, file, row, "
                      "row_hash, load_id, exported_at FROM incidents WHERE ref = 'a30'")
    other.close()
    got = same_as_sql(conn)
    assert "Moved" in set(got["location"]) and "New" in set(got["ref"])
    assert "Z33" not in set(got["ref"])
    # a record moved to another month takes both months' copies with it
    same_as_sql(conn)
    store.write_load(conn, result([{"ref": "b7", "date": "2024-09-01"}]), path="w3",
                     content_sha256="3")
    got = same_as_sql(conn)
    assert got.loc[got["ref"] == "b7", "date"].tolist() == ["2024-09-01"]
    conn.close()


def test_a_months_copy_made_before_a_load_landed_is_not_kept(tmp_path, monkeypatch):
    """A read sees the store as it was when it began, even if a load lands meanwhile, and
    keeps no copy made from rows the load has since changed."""
    path = tmp_path / "s.sqlite"
    conn = months_store(path)
    before = store.read_incidents(conn)
    conn.query("DELETE FROM incident_months")
    made = store.columnar._from_sql

    def load_lands(db, month):
        table = made(db, month)
        if month == "2024-07":  # halfway through the read
            writer = store.connect(path)
            store.write_load(writer, result([{"ref": "a0", "date": "2024-07-02"}]),
                             path="w2", content_sha256="2")
            writer.close()
        return table

    monkeypatch.setattr(store.columnar, "_from_sql", load_lands)
    pd.testing.assert_frame_equal(store.read_incidents(conn), before)
    # only the load's own rows are kept (not yet the whole month's)
    assert conn.query("SELECT month, n FROM incident_months") == [("2024-07", 1)]
    monkeypatch.undo()
    got = same_as_sql(conn)
    assert got.loc[got["ref"] == "a0", "date"].tolist() == ["2024-07-02"]
    assert kept_months(conn) == ["2024-06", "2024-07", "2024-09"]
    conn.close()


def test_a_read_does_not_wait_for_a_load_to_keep_its_copies(tmp_path):
    """While a load holds the store, a read returns what was committed at once, without
    keeping copies (it would otherwise wait for the load, up to its busy timeout)."""
    import threading

    path = tmp_path / "s.sqlite"
    conn = months_store(path)
    conn.query("DELETE FROM incident_months")
    want = store.sql_incidents(conn, list(INCIDENT_COLUMNS), start=None, end=None,
                               categories=None, ordered=True)
    holder, got = store.connect(path), []

    def read():
        with store.connection(path, timeout_s=600) as reader:
            got.append(store.read_incidents(reader))

    with holder.transaction(load=True):
        holder.query("DELETE FROM incidents WHERE ref = 'a0'")  # not committed
        thread = threading.Thread(target=read)
        thread.start()
        thread.join(timeout=60)
        assert not thread.is_alive(), "the read waited for the load"
    pd.testing.assert_frame_equal(got[0], want)
    assert kept_months(conn) == []
    holder.close()
    conn.close()
