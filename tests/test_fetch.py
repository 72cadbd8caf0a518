"""police.uk by API: against a local stand-in of the API built from the real CSV rows."""

from __future__ import annotations

import json
import re
import sys
import time

import numpy as np
import pytest
import shapely

from hotspots import assign, fetch, jobs, store, webclient
from hotspots.config import load_config
from hotspots.errors import HotspotsError
from hotspots.schema import WEB_CRS, WORKING_CRS, transformer

from .conftest import SHARED
from .fake_services import Fake, crimes_from_csvs, serve

MONTHS = fetch.parse_months("2023-09..2024-08")
TH = [SHARED / "policeuk" / f"{m}-metropolitan-street_tower-hamlets_burglary-only.csv"
      for m in MONTHS]
CITY = [SHARED / "policeuk" / f"{m}-city-of-london-street.csv" for m in MONTHS]
SAME = ["ref", "category", "category_raw", "period", "date", "x", "y", "location",
        "location_key", "ward_code", "lsoa_code"]


@pytest.fixture(scope="module")
def crimes():
    # the borough's burglaries and every City of London Police crime: the City lies next
    # to Tower Hamlets, some of its crimes fall inside the borough, most do not
    return crimes_from_csvs(TH + CITY)


@pytest.fixture()
def api(crimes):
    fake = Fake(crimes={m: list(c) for m, c in crimes.items()})  # a test may revise records
    with serve(fake) as base:
        yield fake, f"{base}/police"


def quick() -> fetch.Client:
    return fetch.Client(rate_per_s=1000, backoff_s=0.001)


def incidents(db, categories=("burglary",), columns=SAME):
    conn = store.connect(db)
    try:
        inc = store.read_incidents(conn, categories=list(categories))
        loads = store.read_loads(conn)
    finally:
        conn.close()
    return inc[columns].sort_values("ref", ignore_index=True), loads


def as_fetched(csv_rows, layers, area, config):
    """The CSV's incidents (with ``source_lsoa``) as a fetch of the same crimes gives them.

    The API gives no LSOA code, so the police.uk rules that follow a row's own LSOA
    (issue 13, :func:`hotspots.assign.prefer_own`) cannot apply to fetched rows: a point
    on a shared LSOA edge (within ``assign.POLICE_UK_EDGE_M``) takes the edge rule's LSOA
    (smallest code) instead of its own, and a point outside the study area accepted for
    its own LSOA is left out (the fetch keeps the crimes inside the area). Checks that
    the rows changed are exactly those these rules decided. Returns the rows (SAME
    columns, in the same order) and how many were re-assigned."""
    x, y = csv_rows["x"].to_numpy(), csv_rows["y"].to_numpy()
    lsoa = layers["lsoa"]
    plain = assign.assign_codes(x, y, lsoa, nearest_max_m=config.nearest_max_m)
    own = csv_rows["lsoa_code"].to_numpy(dtype=object)
    moved = own != plain
    assert (own[moved] == csv_rows["source_lsoa"].to_numpy(dtype=object)[moved]).all(), \
        "a CSV row's LSOA differs from its point's without being the row's own LSOA code"
    inside = shapely.intersects_xy(area, x, y)
    polygon = lsoa.set_index("code").geometry
    dist = shapely.distance(np.asarray(polygon.loc[own[moved]].values),
                            shapely.points(x[moved], y[moved]))
    limit = np.where(inside[moved], assign.POLICE_UK_EDGE_M, config.nearest_max_m)
    assert (dist <= limit).all(), \
        "a CSV row took its own LSOA though it is neither on that LSOA's edge nor just " \
        f"outside the area: {csv_rows.loc[moved][dist > limit].head().to_dict('records')}"
    out = csv_rows.assign(lsoa_code=plain)[SAME]
    return out[inside].reset_index(drop=True), int((moved & inside).sum())


def run(config, cache, db, base, months=MONTHS, **kw):
    return fetch.fetch_policeuk(config=config, months=months, categories=["burglary"],
                                store_file=db, cache=cache, base_url=base,
                                client=kw.pop("client", quick()), **kw)


def test_parse_months():
    assert fetch.parse_months("2023-11..2024-02") == ["2023-11", "2023-12", "2024-01",
                                                      "2024-02"]
    assert fetch.parse_months("2024-03,2024-01,2024-03") == ["2024-01", "2024-03"]
    with pytest.raises(HotspotsError, match="'2024-13' is not a month"):
        fetch.parse_months("2024-13")
    with pytest.raises(HotspotsError, match="ends before it starts"):
        fetch.parse_months("2024-05..2024-01")


@pytest.mark.slow
def test_fetched_months_give_the_same_incidents_as_the_csvs(api, config, cache, layers, area,
                                                             tmp_path):
    """The same incidents, wards, places and location keys, and the same LSOAs except
    where the CSV's own LSOA code decided (no LSOA code comes from the API: see
    :func:`as_fetched`)."""
    fake, base = api
    report = run(config, cache, tmp_path / "api.sqlite", base)
    assert report["error"] is None
    assert [m["status"] for m in report["months"]] == ["loaded"] * 12
    assert all(fake_path == ("GET", "/police/crimes-street/burglary")
               for fake_path in fake.log[1:])
    got, loads = incidents(tmp_path / "api.sqlite")
    assert len(loads) == 12  # one load per month

    csv_report = jobs.ingest_files(TH + CITY, config=config, store_file=tmp_path / "csv.sqlite",
                                   cache=cache)
    assert not any(f["error"] for f in csv_report["files"])
    csv_rows, _ = incidents(tmp_path / "csv.sqlite", columns=SAME + ["source_lsoa"])
    want, on_edge = as_fetched(csv_rows, layers, area, config)
    assert on_edge > 0  # police.uk's own LSOA on a shared edge: some every month
    # the City's burglaries inside the borough come with the borough's own
    city_ids = {c["persistent_id"] for m in crimes_from_csvs(CITY).values() for c in m}
    assert 0 < want["ref"].isin(city_ids).sum() < 50
    assert len(got) == len(want) > 2000
    assert got.equals(want)  # same incidents, LSOAs, wards, places and location keys
    months = {m["month"]: m for m in report["months"]}
    files = report["ingest"]["files"]
    assert sum(m["crimes"] for m in months.values()) == sum(f["read"] for f in files)
    assert sum(f["accepted"] for f in files) == len(got)
    # a crime id on two records (two outcomes) is rejected as in the CSV, not hidden
    assert {k for f in files for k in f["reasons"]} == {"duplicate_crime_id"}
    assert sum(m["outside"] for m in months.values()) > 0  # City burglaries left out


def test_forced_split_loses_and_duplicates_nothing(api, config, cache, tmp_path):
    fake, base = api
    whole = run(config, cache, tmp_path / "whole.sqlite", base, months=["2024-01"])
    fake.max_crimes = 40  # a month holds ~250 burglaries: tiles of at most 40
    split = run(config, cache, tmp_path / "split.sqlite", base, months=["2024-01"])
    (w,), (s,) = whole["months"], split["months"]
    assert w["tiles"] == 1 and w["splits"] == 0
    assert s["splits"] >= 3 and s["tiles"] > 6
    assert s["crimes"] == w["crimes"] > 200
    got, _ = incidents(tmp_path / "split.sqlite")
    want, _ = incidents(tmp_path / "whole.sqlite")
    assert got.equals(want)


def test_crimes_answered_twice_are_kept_once(api, config, layers, area):
    fake, base = api
    polys = fetch.query_polygons(area)
    once, stats1 = fetch.fetch_month(quick(), base, "2024-02", ["burglary"], polys, area)
    twice, stats2 = fetch.fetch_month(quick(), base, "2024-02", ["burglary"], polys * 2, area)
    assert twice == once and stats2.duplicates == stats1.received > 150


def test_long_polygon_goes_by_post_and_long_get_is_refused(api, area):
    fake, base = api
    detailed = fetch._lonlat(area)  # every vertex of the borough: far over 4,094 characters
    assert len(fetch.poly_param(detailed)) > 4094
    simple = fetch.query_polygons(area)
    rows, _ = fetch.fetch_month(quick(), base, "2024-03", ["burglary"], [detailed], area)
    assert fake.log[-1] == ("POST", "/police/crimes-street/burglary")
    rows2, _ = fetch.fetch_month(quick(), base, "2024-03", ["burglary"], simple, area)
    assert fake.log[-1] == ("GET", "/police/crimes-street/burglary")
    assert rows == rows2 and len(rows) > 150
    # the stand-in refuses a GET over the limit, as the service does
    client = quick()
    status, _, _ = client.request(f"{base}/crimes-street/burglary?date=2024-03&poly="
                                  + fetch.poly_param(detailed), what="t", accept=(400,))
    assert status == 400


def test_query_polygon_covers_the_area_and_fits_a_get(area):
    (poly,) = fetch.query_polygons(area)
    back = fetch.shapely.transform(poly, lambda xy: fetch.np.column_stack(
        transformer(WEB_CRS, WORKING_CRS).transform(xy[:, 0], xy[:, 1])))
    assert back.buffer(1).covers(area)
    assert back.area < area.area * 1.05  # a margin, not a box
    assert len("https://x/api/crimes-street/all-crime?date=2024-01&poly="
               + fetch.poly_param(poly)) <= 4094


def test_429_5xx_and_dropped_connections_are_retried(api, config, cache, tmp_path):
    fake, base = api
    fake.faults = ["429", "500", "cut", "429"]
    report = run(config, cache, tmp_path / "s.sqlite", base, months=["2024-04"])
    assert report["error"] is None and report["months"][0]["status"] == "loaded"
    assert report["months"][0]["requests"] == 5  # four refused or cut short, then the answer
    fake.faults = ["500"] * 6
    failed = run(config, cache, tmp_path / "s.sqlite", base, months=["2024-05"],
                 client=fetch.Client(rate_per_s=1000, backoff_s=0.001, retries=2))
    assert "answered HTTP 500" in failed["error"] and "after 3 tries" in failed["error"]
    assert "run the command again later (it resumes)" in failed["error"]


def test_a_service_down_with_503s_is_not_split_forever(api, config, cache, tmp_path):
    fake, base = api
    fake.faults = ["503"] * 1000  # an outage: every answer 503
    report = run(config, cache, tmp_path / "s.sqlite", base, months=["2024-01"])
    assert re.search(r"answered 503 7 times, still for a tile split 6 times \(1/64 of the "
                     r"area across\); it is more likely down", report["error"])
    assert report["months"][0]["status"] == "failed"
    assert len(fake.log) == 8  # crimes-street-dates, then one tile at each depth: not 4**6


def test_at_most_15_requests_a_second_retries_included(api, config, cache, tmp_path):
    """Measured where the service sees it: the stand-in's arrival times of every request
    of a month fetched by the default client, through a forced split and three 429s."""
    fake, base = api
    fake.max_crimes = 40  # about 250 burglaries: split into tiles, a dozen requests
    fake.faults = ["429"] * 3
    report = run(config, cache, tmp_path / "s.sqlite", base, months=["2024-01"],
                 client=fetch.Client(backoff_s=0.001))
    assert report["error"] is None and report["months"][0]["splits"] >= 3
    times = fake.times
    assert len(times) == report["requests"] >= 16
    # any 16 consecutive requests span at least a second (less a little network jitter)
    spans = [b - a for a, b in zip(times[:-15], times[15:], strict=True)]
    assert min(spans) > 0.95, spans


def test_back_off_doubles_honours_retry_after_and_is_capped(api, config, cache, tmp_path,
                                                            monkeypatch):
    """The waits between tries, recorded instead of slept: ``backoff_s * 2**attempt``,
    the 429's ``Retry-After`` when it gives one, never more than ``max_wait_s``."""
    fake, base = api
    waits: list[float] = []
    monkeypatch.setattr(webclient, "time", type("Clock", (), {
        "sleep": staticmethod(waits.append), "monotonic": staticmethod(time.monotonic)}))
    client = fetch.Client(rate_per_s=1000, backoff_s=1, max_wait_s=5)
    fake.faults, fake.retry_after = ["500", "500", "429", "500"], "3"
    report = run(config, cache, tmp_path / "s.sqlite", base, months=["2024-02"], client=client)
    assert report["error"] is None
    assert [w for w in waits if w >= 0.5] == [1, 2, 3, 5]  # 8 capped at 5
    waits.clear()
    fake.faults = ["500"] * 6
    failed = run(config, cache, tmp_path / "s.sqlite", base, months=["2024-03"],
                 client=fetch.Client(rate_per_s=1000, backoff_s=0.5, max_wait_s=60, retries=3))
    assert [w for w in waits if w >= 0.25] == [0.5, 1, 2]
    assert "answered HTTP 500 Internal Server Error (after 4 tries)" in failed["error"]


def test_a_sliver_beside_the_area_costs_no_request_of_its_own():
    """A boundary file's sliver metres from the rest lies in the main part's margin; a
    part far away gets its own polygon. Every part is covered."""
    main = shapely.box(530000, 180000, 534000, 183000)
    sliver = shapely.box(534012, 181000, 534015, 181005)  # 15 m², 12 m away
    island = shapely.box(540000, 180000, 541000, 181000)
    area = shapely.MultiPolygon([sliver, main, island])
    polys = fetch.query_polygons(area)
    assert len(polys) == 2
    back = shapely.union_all([fetch.shapely.transform(p, lambda xy: np.column_stack(
        transformer(WEB_CRS, WORKING_CRS).transform(xy[:, 0], xy[:, 1]))) for p in polys])
    assert all(back.covers(part) for part in (main, sliver, island))


def test_only_listed_months_are_asked_for(api, config, cache, tmp_path):
    fake, base = api
    fake.dates = ["2024-06", "2024-08"]
    report = run(config, cache, tmp_path / "s.sqlite", base,
                 months=["2024-06", "2024-07", "2024-08"])
    assert [m["status"] for m in report["months"]] == ["loaded", "unavailable", "loaded"]
    asked = [p for p in fake.log if p[1].startswith("/police/crimes-street/")]
    assert len(asked) == 2
    _, loads = incidents(tmp_path / "s.sqlite")
    assert [f[:7] for f in loads["file"]] == ["2024-06", "2024-08"]


@pytest.mark.parametrize("fault, message", [
    ("html", r"answered with a web page, not JSON \(it starts '<!DOCTYPE html>"),
    ("truncated", r"is not complete JSON \(.* at character \d+ of \d+\): it was cut short"),
    ("wrong_month", r"holds a crime of 2019-01 .*wrong month. Nothing of 2023-10 was kept"),
])
def test_bad_answer_keeps_months_before_and_nothing_of_its_month(api, config, cache, tmp_path,
                                                                 fault, message):
    fake, base = api
    fake.faults = [None, fault]  # the second month's answer is bad
    db = tmp_path / "s.sqlite"
    report = run(config, cache, db, base, months=MONTHS[:3])
    assert report["error"] and re.search(message, report["error"])
    assert [m["status"] for m in report["months"]] == ["loaded", "failed", "not_fetched"]
    got, loads = incidents(db)
    assert sorted(got["period"].unique()) == MONTHS[:1] and len(loads) == 1
    assert not list((tmp_path / "s.policeuk-api").glob("2023-10*"))
    # run again: the month loaded is skipped, the rest fetched
    n_before = len(fake.log)
    again = run(config, cache, db, base, months=MONTHS[:3])
    assert again["error"] is None
    assert [m["status"] for m in again["months"]] == ["already_loaded"] + ["loaded"] * 2
    assert len([p for p in fake.log[n_before:] if "crimes-street/" in p[1]]) == 2
    got, loads = incidents(db)
    assert sorted(got["period"].unique()) == MONTHS[:3] and len(loads) == 3


@pytest.mark.slow
@pytest.mark.parametrize("stop", ["loading", "fetching the third month"])
def test_interrupted_run_resumes_without_asking_again(api, config, cache, tmp_path,
                                                      monkeypatch, stop):
    """Stopped (Ctrl-C) while loading the months fetched, or in the middle of fetching:
    the months fetched are loaded by the next run without asking for them again."""
    fake, base = api
    db = tmp_path / "s.sqlite"
    fetch_month = fetch.fetch_month

    def killed(*a, **k):
        if stop == "loading" or a[2] == MONTHS[2]:
            raise KeyboardInterrupt
        return fetch_month(*a, **k)

    if stop == "loading":
        monkeypatch.setattr(jobs, "ingest_files", killed)
    else:
        monkeypatch.setattr(fetch, "fetch_month", killed)
    with pytest.raises(KeyboardInterrupt):
        run(config, cache, db, base, months=MONTHS[:3])
    monkeypatch.undo()
    assert incidents(db)[0].empty
    n_before = len(fake.log)
    report = run(config, cache, db, base, months=MONTHS[:4])
    assert [m["status"] for m in report["months"]] == ["loaded"] * 4
    asked = 1 if stop == "loading" else 2  # the fourth month (and the third, not fetched)
    assert len([p for p in fake.log[n_before:] if "crimes-street/" in p[1]]) == asked
    got, loads = incidents(db)
    assert sorted(got["period"].unique()) == MONTHS[:4] and len(loads) == 4
    # and once more: nothing asked, nothing loaded
    n_before = len(fake.log)
    same = run(config, cache, db, base, months=MONTHS[:4])
    assert [m["status"] for m in same["months"]] == ["already_loaded"] * 4
    assert len(fake.log) == n_before


def test_api_rows_are_the_csv_columns_with_categories_mapped(crimes):
    asb = {"category": "anti-social-behaviour", "persistent_id": "", "id": 7, "month": "2024-01",
           "context": "", "outcome_status": None,
           "location": {"latitude": "51.5", "longitude": "-0.05",
                        "street": {"id": 1, "name": "On or near Brick Lane"}}}
    rows = fetch.month_rows([crimes["2024-01"][0], asb])
    assert rows[0] == ["api-7", "2024-01", "", "", "-0.05", "51.5", "On or near Brick Lane",
                       "", "", "Anti-social behaviour", "", ""]
    assert rows[1][9] == "Burglary" and len(rows[1][0]) == 64
    assert set(fetch.API_CRIME_TYPES.values()) == set(load_config().police_uk_types)


def test_unknown_category_is_refused(config):
    with pytest.raises(HotspotsError, match="'asb_personal' is not a police.uk category"):
        fetch._slugs(config, ["asb_personal"])
    assert fetch._slugs(config, ["asb", "drugs"]) == ["anti-social-behaviour", "drugs"]


def test_cli_fetch_policeuk_text_and_json(api, cache, tmp_path, capsys, monkeypatch):
    from hotspots.cli import main

    fake, base = api
    fake.dates = ["2024-07"]
    monkeypatch.setenv(fetch.POLICEUK_API_ENV, base)
    db = str(tmp_path / "s.sqlite")
    args = ["--geodata", str(cache), "fetch", "policeuk", "--months", "2024-06..2024-07",
            "--categories", "burglary", "--store", db]
    monkeypatch.setattr(sys.stderr, "isatty", lambda: True)  # progress on a terminal
    assert main(args) == 0
    out, err = capsys.readouterr()
    assert "police.uk 2024-06: not available from police.uk (crimes-street-dates)" in err
    assert re.search(r"police.uk 2024-07: \d{3} crimes \(1 requests, 1 tile\(s\), 0 on tile "
                     r"edges kept once, \d+ outside the area left out\)", err)
    assert "2 request(s): 1 month(s) unavailable, 1 month(s) loaded" in out
    assert "2024-07-policeuk-api_e09000030_burglary.csv (policeuk): read" in out
    assert main(args + ["--json"]) == 0
    out, err = capsys.readouterr()
    assert err == ""  # quiet with --json, even on a terminal
    report = json.loads(out)
    assert [m["status"] for m in report["months"]] == ["unavailable", "already_loaded"]
    fake.dates = ["2024-06", "2024-07", "2024-08"]
    assert main(args[:5] + ["latest:2"] + args[6:] + ["--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert [(m["month"], m["status"]) for m in report["months"]] == [
        ("2024-07", "already_loaded"), ("2024-08", "loaded")]
    assert main(args[:5] + ["latest:x"] + args[6:]) == 1
    assert "write latest or latest:N" in capsys.readouterr().err
    fake.faults = ["html"]
    fake.dates = None
    assert main(args[:5] + ["2024-05"] + args[6:]) == 1
    err = capsys.readouterr().err
    assert "hotspots: error: burglary crimes for 2024-05: " in err and "web page" in err


def test_asb_and_drugs_month_gives_the_same_incidents_as_its_csv(config, cache, layers, area,
                                                                 tmp_path):
    """All crime types at once (all-crime), anti-social behaviour without persistent ids:
    the same incidents, categories, LSOAs (but where the CSV's own LSOA code decided: see
    :func:`as_fetched`), wards and places as the CSV (ASB references are the API's ids,
    the CSV's are derived from the row)."""
    path = SHARED / "policeuk" / "2023-04-metropolitan-street_tower-hamlets_asb-drugs-only.csv"
    fake = Fake(crimes=crimes_from_csvs([path]))
    with serve(fake) as base:
        report = fetch.fetch_policeuk(config=config, months=["2023-04"], store_file=tmp_path /
                                      "api.sqlite", cache=cache, base_url=f"{base}/police",
                                      client=quick())
    assert report["error"] is None and fake.log[-1][1] == "/police/crimes-street/all-crime"
    jobs.ingest_files([path], config=config, store_file=tmp_path / "csv.sqlite", cache=cache)
    cols = ["category", "category_raw", "period", "x", "y", "location", "lsoa_code",
            "ward_code"]
    got, _ = incidents(tmp_path / "api.sqlite", categories=("asb", "drugs"))
    csv_rows, _ = incidents(tmp_path / "csv.sqlite", categories=("asb", "drugs"),
                            columns=SAME + ["source_lsoa"])
    want, on_edge = as_fetched(csv_rows, layers, area, config)
    assert on_edge > 0
    assert len(got) == len(want) > 900
    assert got["category"].value_counts().to_dict() == want["category"].value_counts().to_dict()
    assert (got[cols].sort_values(cols, ignore_index=True)
            .equals(want[cols].sort_values(cols, ignore_index=True)))
    asb = got[got["category"] == "asb"]
    assert len(asb) > 800 and asb["ref"].str.startswith("api-").all()


@pytest.mark.slow
def test_refresh_asks_again_and_replaces_revised_records(api, config, cache, tmp_path):
    fake, base = api
    db = tmp_path / "s.sqlite"
    run(config, cache, db, base, months=["2024-02"])
    assert run(config, cache, db, base, months=["2024-02"])["months"][0]["status"] == \
        "already_loaded"
    unchanged = run(config, cache, db, base, months=["2024-02"], refresh=True)
    assert unchanged["months"][0]["status"] == "unchanged"  # asked again: nothing new
    revised = dict(fake.crimes["2024-02"][0])
    revised["location"] = dict(revised["location"], street={"id": 1, "name": "On or near X"})
    fake.crimes["2024-02"][0] = revised
    report = run(config, cache, db, base, months=["2024-02"], refresh=True)
    (f,) = report["ingest"]["files"]
    assert report["months"][0]["status"] == "loaded" and f["replaced"] == 1
    got, _ = incidents(db)
    assert (got["location"] == "On or near X").sum() == 1
