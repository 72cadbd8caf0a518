"""The tasking pack end to end on the demo data: full and partner versions, record text
kept harmless, small counts suppressed, opened and printed in headless Chromium; the trend
label and last meeting's tasked places judged against the rest of the borough."""

import contextlib
import csv
import datetime as dt
import json
import shutil
import sqlite3
import zipfile
from pathlib import Path

import geopandas as gpd
import openpyxl
import pandas as pd
import pytest
import shapely
from scipy.stats import binomtest

from hotspots.cli import main
from hotspots.export import PARTNER_COUNTS, PARTNER_DERIVED, PARTNER_KEYS
from hotspots.pack import _review_tasked
from hotspots.trends import TRENDS, poisson_change_test

from .conftest import open_page

EVIL = "<script>window.__pwned=1</script>"
HYPERLINK = '=HYPERLINK("http://x")'


@pytest.fixture(scope="module")
def demo(tmp_path_factory, cache):
    """A store with the police.uk rows, synthetic council data and one hostile record."""
    root = tmp_path_factory.mktemp("pack")
    assert main(["--geodata", str(cache), "demo", "--data", str(root / "d"), "--out",
                 str(root / "o"), "--n", "6000", "--json"]) == 0
    hostile = root / "hostile.csv"
    with open(hostile, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["Ref", "When", "Type", "Lat", "Lon", "Where", "Caller"])
        for i in range(60):  # two tight groups: each becomes a place labelled by its text
            lat, lon, text = ((51.5150, -0.0280, EVIL) if i < 30 else
                              (51.5000, -0.0100, HYPERLINK))
            w.writerow([f"H{i}", f"2024-08-{1 + i % 28:02d} 21:00", "drug_dealing", lat, lon,
                        text, "C-SECRET"])
    mapping = root / "hostile.toml"
    mapping.write_text('source = "hostile"\n[columns]\nreference = "Ref"\ndatetime = "When"\n'
                       'category = "Type"\nlatitude = "Lat"\nlongitude = "Lon"\n'
                       'location = "Where"\ncaller = "Caller"\n')
    store = str(root / "d" / "hotspots.sqlite")
    assert main(["--geodata", str(cache), "ingest", str(hostile), "--mapping", str(mapping),
                 "--store", store, "--json"]) == 0
    assert main(["--geodata", str(cache), "detect", "--store", store, "--out",
                 str(root / "o")]) == 0
    return root, store


def build(root, store, cache, capsys, *extra):
    capsys.readouterr()
    assert main(["--geodata", str(cache), "pack", "--store", store, "--out", str(root / "o"),
                 "--json", *extra]) == 0
    return json.loads(capsys.readouterr().out)


def test_full_pack_is_written_and_record_text_stays_text(demo, cache, capsys):
    root, store = demo
    out = build(root, store, cache, capsys)
    page = Path(out["files"]["html"]).read_text(encoding="utf-8")
    assert "Ranked places" in page and "Places in detail" in page
    assert "&lt;script&gt;window.__pwned=1&lt;/script&gt;" in page  # shown, as text
    assert "<script>window.__pwned" not in page
    found = False
    wb = openpyxl.load_workbook(out["files"]["xlsx"])
    for ws in wb.worksheets:
        for row in ws.iter_rows():
            for cell in row:
                assert cell.data_type != "f", (ws.title, cell.coordinate, cell.value)
                if isinstance(cell.value, str) and "HYPERLINK" in cell.value:
                    assert cell.value.startswith("'=HYPERLINK")
                    found = True
    assert found
    with zipfile.ZipFile(out["files"]["xlsx"]) as z:
        assert not any("<f>" in z.read(n).decode("utf-8", "ignore") for n in z.namelist()
                       if n.startswith("xl/worksheets/"))


def test_partner_pack_minimises(demo, cache, capsys):
    root, store = demo
    out = build(root, store, cache, capsys, "--partner")
    page = Path(out["files"]["html"]).read_text(encoding="utf-8")
    assert "Partner version" in page
    assert "C-SECRET" not in page and "pwned" not in page and "HYPERLINK" not in page
    # no hour-by-day grids and no previous-month counts: those are small counts
    assert "class='profile'" not in page and "Previous month / same month" not in page
    csv_text = Path(out["files"]["csv"]).read_text(encoding="utf-8-sig")
    assert "C-SECRET" not in csv_text and "caller" not in csv_text.splitlines()[0].lower()
    ranked = list(csv.DictReader(csv_text.splitlines()))
    assert ranked and all(r["n"] == "<5" or int(r["n"]) >= 5 for r in ranked)


@pytest.mark.skipif(shutil.which("chromium") is None, reason="needs Debian chromium")
def test_pack_opens_and_prints_on_a4(demo, cache, capsys, tmp_path):
    from playwright.sync_api import sync_playwright

    root, store = demo
    out = build(root, store, cache, capsys)
    with sync_playwright() as pw:
        browser, page, errors = open_page(pw, width=1200, height=900)
        page.goto(f"file://{out['files']['html']}")
        page.wait_for_timeout(800)
        assert page.locator(".card").count() >= 5
        assert page.evaluate("window.__pwned === undefined")
        pdf = tmp_path / "pack.pdf"
        page.pdf(path=str(pdf), format="A4", print_background=True)
        browser.close()
    assert errors == []
    data = pdf.read_bytes()
    assert data.startswith(b"%PDF")
    pages = len(__import__("re").findall(rb"/Type\s*/Page[^s]", data))
    assert pages >= 2, pages


@pytest.mark.parametrize("units, prefix", [("lsoa", "E01"), ("cells", "C")])
def test_pack_ranks_lsoas_or_cells_and_reports_emerging_classes(demo, cache, capsys, units,
                                                                 prefix):
    root, store = demo
    out = build(root, store, cache, capsys, "--units", units)
    assert out["units"] == units and out["files"]["csv"].endswith(f"_{units}.csv")
    rows = Path(out["files"]["csv"]).read_text(encoding="utf-8-sig").splitlines()
    header = rows[0].split(",")
    ids = [r.split(",")[header.index("place_id")] for r in rows[1:]]
    assert ids and all(i.startswith(prefix) for i in ids)
    assert out["emerging"] and sum(out["emerging"].values()) > 0  # 24 months in the store


def test_pack_for_a_month_and_some_categories(demo, cache, capsys):
    root, store = demo
    out = build(root, store, cache, capsys, "--month", "2024-07", "--categories",
                "nox_sighting")
    assert out["period"] == "2024-07"
    rows = Path(out["files"]["csv"]).read_text(encoding="utf-8-sig").splitlines()
    header = rows[0].split(",")
    cats = [r.split(",")[header.index("main_categories")] for r in rows[1:]]
    assert cats and all(c.startswith("Nitrous oxide sighting 100%") for c in cats)


# --- the trend label: each place against the rest of the borough -------------------------

def test_pack_trend_label_is_judged_against_the_borough(demo, cache, capsys):
    root, store = demo
    out = build(root, store, cache, capsys)
    ranked = pd.read_csv(out["files"]["csv"])
    # the plain comparisons the cards show, and the season-adjusted test beside them
    for col in ("n_previous", "n_last_year", "p_previous", "expected", "p_borough",
                "p_adjusted", "reference", "trend_label"):
        assert col in ranked.columns
    assert set(ranked["trend_label"]) <= set(TRENDS)
    called = ranked["trend_label"] != "no clear change"
    assert (ranked.loc[called, "p_adjusted"] <= 0.05).all()
    rising = ranked["trend_label"] == "rising"
    assert (ranked.loc[rising, "n"] > ranked.loc[rising, "expected"]).all()
    assert (ranked["p_adjusted"] >= ranked["p_borough"] - 1e-12).all()
    page = Path(out["files"]["html"]).read_text(encoding="utf-8")
    assert "changed more than the rest of the borough did" in page
    assert "only when p &lt; 0.05 against the previous month" not in page
    assert "Against the borough" in page and "expected had it moved as the rest" in page
    # the partner table: nothing that gives away the previous month's count
    partner = build(root, store, cache, capsys, "--partner")
    header = Path(partner["files"]["csv"]).read_text(encoding="utf-8-sig").splitlines()[0]
    assert set(header.split(",")) <= {"rank", *PARTNER_KEYS, *PARTNER_COUNTS,
                                      *PARTNER_DERIVED}


def test_pack_compares_like_with_like(demo, cache, capsys):
    """police.uk burglary starts in 2023-09 in the demo store: September's pack does not
    count its burglaries as a rise on August, and August 2024's pack does not compare them
    with August 2023; each pack says so."""
    root, store = demo
    sept = build(root, store, cache, capsys, "--month", "2023-09")
    page = Path(sept["files"]["html"]).read_text(encoding="utf-8")
    assert "Not compared with 2023-08: Burglary (police.uk)" in page
    ranked = pd.read_csv(sept["files"]["csv"])
    # the previous-month change counts council rows only, on both sides
    with contextlib.closing(sqlite3.connect(store)) as conn:
        council = pd.read_sql_query("SELECT date FROM incidents WHERE source != 'policeuk'",
                                    conn)
    counted = ranked.dropna(subset=["n_previous"])
    assert (counted["n"] - counted["n_previous"] >= counted["change_previous"]).all()
    assert (counted["n"] - counted["n_previous"] > counted["change_previous"]).any()
    assert counted["n_previous"].sum() <= (council["date"].str[:7] == "2023-08").sum()
    aug = build(root, store, cache, capsys)
    page = Path(aug["files"]["html"]).read_text(encoding="utf-8")
    # the hostile test file has records in 2024-08 only: left out of both comparisons
    assert ("Not compared with 2023-08: Drug dealing (hostile), Burglary (police.uk) "
            "(records in only one of 2023-08 and 2024-08)") in page
    assert "Not compared with 2024-07: Drug dealing (hostile) " in page


def test_tasked_places_are_judged_against_the_borough(demo, cache, capsys, tmp_path):
    root, store_file = demo
    copy = tmp_path / "hotspots.sqlite"
    shutil.copy(store_file, copy)
    top = pd.read_csv(build(root, store_file, cache, capsys)["files"]["csv"])["place_id"][0]
    assert main(["--geodata", str(cache), "task", "add", "--store", str(copy), "--place",
                 top, "--owner", "ptf", "--actions", "patrols", "--review", "2024-09-01",
                 "--meeting", "2024-08-10"]) == 0
    out = build(root, str(copy), cache, capsys)
    assert out["tasked_reviewed"] == 1
    page = Path(out["files"]["html"]).read_text(encoding="utf-8")
    assert "Expected from the borough&#x27;s change" in page or \
        "Expected from the borough's change" in page
    assert "the rest of the borough" in page.split("Last meeting's tasked places")[1]
    partner = build(root, str(copy), cache, capsys, "--partner")
    page = Path(partner["files"]["html"]).read_text(encoding="utf-8")
    tasked = page.split("Last meeting's tasked places")[1].split("<h2>")[0]
    assert "p against the borough" not in tasked and " against " not in tasked


def square(x0, y0, size=100.0):
    return shapely.box(x0, y0, x0 + size, y0 + size)


def tasked_case(place_before, place_after, rest_before, rest_after, meeting="2024-03-01",
                policeuk=(), dates=("2024-02-10", "2024-03-10")):
    """A place tasked on 1 March 2024, data to 31 March: 31 days each side; the place at
    (50, 50), the rest of the borough at (500, 500)."""
    before, after = dates
    rows = ([(50.0, 50.0, before, "lbth-asb")] * place_before
            + [(50.0, 50.0, after, "lbth-asb")] * place_after
            + [(500.0, 500.0, before, "lbth-asb")] * rest_before
            + [(500.0, 500.0, after, "lbth-asb")] * rest_after
            + [(x, x, month, "policeuk") for x, month in policeuk])
    inc = pd.DataFrame(rows, columns=["x", "y", "date", "source"])
    decisions = pd.DataFrame({"meeting_date": [meeting], "place_id": ["P1"],
                              "geometry_wkt": [square(0, 0).wkt]})
    ranked = gpd.GeoDataFrame({"rank": [1]}, geometry=[square(0, 0)], crs=27700)
    return _review_tasked(decisions, inc, ranked, dt.date(2024, 3, 31)).iloc[0]


def test_review_tasked_against_the_rest_of_the_borough():
    # the place doubled, and so did the rest of the borough: no effect of its own
    row = tasked_case(10, 20, 100, 200)
    assert (row["n_before"], row["n_after"], row["days"]) == (10, 20, 31)
    assert row["p_value"] == pytest.approx(poisson_change_test(20, 10))
    assert row["expected"] == pytest.approx(20.0) and row["p_borough"] == pytest.approx(1.0)
    assert row["verdict"] == ("more incidents (20 against 10); in line with the change in "
                              "the rest of the borough")
    assert row["verdict_brief"] == ("more incidents; in line with the change in the rest "
                                    "of the borough")
    # the place fell while the rest of the borough stayed flat
    row = tasked_case(30, 8, 100, 100)
    assert row["expected"] == pytest.approx(19.0)
    assert row["p_borough"] == pytest.approx(binomtest(8, 38, 0.5).pvalue)
    assert row["verdict"] == ("fewer incidents (8 against 30); fewer than the change in the "
                              "rest of the borough would give (19)")
    # nothing else in the borough: the plain test, and the verdict says so
    row = tasked_case(30, 8, 0, 0)
    assert row["p_borough"] == row["p_value"]
    assert row["verdict"].endswith("more than chance (the rest of the borough had no "
                                   "incidents in one window)")
    assert row["rank_now"] == "1"
    # police.uk rows are dated the 1st of their month: they count only in a window that
    # holds the whole month (March, after a meeting on 1 March), never by that date
    row = tasked_case(10, 20, 100, 200, policeuk=[(50.0, "2024-03-01")] * 4
                      + [(500.0, "2024-02-01")] * 50)
    assert (row["n_before"], row["n_after"]) == (10, 24)
    assert row["expected"] == pytest.approx(34 * 200 / 350)  # February is not in 31 days
    row = tasked_case(10, 20, 100, 200, meeting="2024-03-10", dates=("2024-03-05",
                                                                     "2024-03-15"),
                      policeuk=[(50.0, "2024-03-01")] * 4 + [(500.0, "2024-03-01")] * 50)
    assert (row["n_before"], row["n_after"], row["days"]) == (10, 20, 22)
    assert row["expected"] == pytest.approx(20.0)
