"""The tasking pack end to end on the demo data: full and partner versions, record text
kept harmless, small counts suppressed, opened and printed in headless Chromium; the trend
label and last meeting's tasked places judged against the rest of the borough."""

import contextlib
import csv
import datetime as dt
import json
import re
import shutil
import zipfile
from pathlib import Path

import geopandas as gpd
import openpyxl
import pandas as pd
import pytest
import shapely
from scipy.stats import binomtest

from hotspots import geography
from hotspots import store as hotspots_store
from hotspots.assign import assign_codes
from hotspots.cli import main
from hotspots.config import load_config
from hotspots.export import PARTNER_COUNTS, PARTNER_DERIVED, PARTNER_KEYS, heading
from hotspots.pack import _review_tasked
from hotspots.summary import in_period, month_period
from hotspots.trends import TRENDS, poisson_change_test

from .conftest import copy_demo, open_page

EVIL = "<script>window.__pwned=1</script>"
HYPERLINK = '=HYPERLINK("http://x")'


@pytest.fixture(scope="module")
def demo(tmp_path_factory, cache, demo_build):
    """A store with the police.uk rows, synthetic council data and one hostile record."""
    root = copy_demo(demo_build, tmp_path_factory.mktemp("pack"))  # the module's own copy
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
    # the same ranked table for people (XLSX), Power BI (CSV) and GIS (GeoJSON, GeoPackage)
    ws = wb["Ranked places"]
    head = [c.value for c in ws[1]]
    assert head[:3] == ["Rank", "Place", "Where"] and "Incidents per km²" in head
    assert not [h for h in head if "_" in h] and ws.freeze_panes == "A2" and ws.auto_filter.ref
    ranked = pd.read_csv(out["files"]["csv"], dtype={"place_id": str})
    assert ranked["latitude"].between(51.48, 51.55).all()
    assert ranked["longitude"].between(-0.09, 0.01).all()
    web = gpd.read_file(out["files"]["geojson"])
    grid = gpd.read_file(out["files"]["gpkg"])
    assert web.crs.to_epsg() == 4326 and grid.crs.to_epsg() == 27700
    assert web["place_id"].tolist() == grid["place_id"].tolist() == ranked["place_id"].tolist()
    for a, b in zip(web.to_crs(27700).geometry, grid.geometry, strict=True):
        assert a.hausdorff_distance(b) < 0.05  # the same shapes, 7 decimals of a degree
    labels = grid["label"].tolist()
    assert any(str(t).startswith("'=HYPERLINK") for t in labels)  # guarded, as in the XLSX


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


#: In the browser: every legend row and inset fits inside the map section (nothing is
#: clipped or runs off the page), and the interactive map's colour scale caption fits its
#: own SVG (it was cut off as "100 m c").
_FITS_JS = """() => {
  const out = [];
  const box = document.querySelector('.hs-map').getBoundingClientRect();
  for (const el of document.querySelectorAll('.hs-legend, .hs-legend-row > *, .hs-inset')) {
    const r = el.getBoundingClientRect();
    if (r.left < box.left - 0.5 || r.right > box.right + 0.5 || el.scrollWidth > el.clientWidth + 1)
      out.push(el.textContent);
  }
  return out;
}"""
_SCALE_JS = """() => [...document.querySelectorAll('.legend svg')].flatMap(svg => {
  const s = svg.getBoundingClientRect();
  return [...svg.querySelectorAll('text')].filter(t => {
    const b = t.getBoundingClientRect();
    return b.left < s.left - 0.5 || b.right > s.right + 0.5; }).map(t => t.textContent);
})"""


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("chromium") is None, reason="needs Debian chromium")
def test_pack_prints_as_a_brief_with_the_marking_on_every_page(demo, cache, capsys,
                                                                tmp_path):
    """Printed to PDF in Chromium: the brief on page 1, the marking, period and date on
    every page, at most two cards a page, legends whole, record text inert."""
    import pypdf
    from playwright.sync_api import sync_playwright

    from hotspots.config import load_config

    root, store_file = demo
    store = str(tmp_path / "hotspots.sqlite")  # a copy: the decision stays in this test
    shutil.copy(store_file, store)
    with contextlib.closing(hotspots_store.connect(store)) as conn:  # tasked before
        place = hotspots_store.read_places(conn).iloc[0]
        hotspots_store.record_decision(conn, place_id=place["place_id"], owner="ptf",
                                       actions="<b>patrol</b>", review_date="2024-09-30",
                                       meeting_date="2024-08-20")
    out = build(root, store, cache, capsys)
    config = load_config()
    ranked = pd.read_csv(out["files"]["csv"])
    with sync_playwright() as pw:
        browser, page, errors = open_page(pw, width=1200, height=900)
        page.goto(f"file://{out['files']['html']}")
        page.wait_for_timeout(500)
        n_cards = page.locator(".hs-card").count()
        page.emulate_media(media="print")
        clipped = page.evaluate(_FITS_JS)
        pdf = tmp_path / "pack.pdf"
        page.pdf(path=str(pdf), format="A4", print_background=True)
        page.goto(f"file://{out['files']['map']}")
        page.wait_for_timeout(800)
        scale_cut = page.evaluate(_SCALE_JS)
        assert page.evaluate("window.__pwned === undefined")
        browser.close()
    assert errors == [] and clipped == [] and scale_cut == []
    assert n_cards == len(ranked) >= 5
    pages = [p.extract_text() for p in pypdf.PdfReader(pdf).pages]
    # brief (1) + map + tables (2-3) + cards two a page + appendix (1-2)
    assert 4 <= len(pages) <= 3 + (n_cards + 1) // 2 + 3, len(pages)
    produced = dt.date.today().isoformat()
    for i, text in enumerate(pages, start=1):
        assert config.pack_marking in text and produced in text and "2024-08" in text, i
        assert text.count("Tasking history") <= 2, i  # one per card
    assert sum(t.count("Tasking history") for t in pages) == n_cards
    first = pages[0]
    top = ranked.sort_values("rank").iloc[0]
    assert "Why it ranks" in first and "Tasked before" in first and top["label"] in first
    assert "Benjamini" not in first and "Where:" not in first  # map and method come later
    assert "SYNTHETIC" in first  # the demo's caveat is not left to the appendix
    assert "Where:" in pages[1] and "Incidents per km²" in pages[1] and "m cells)" in pages[1]
    assert "Benjamini-Hochberg" in pages[-1] or "Benjamini-Hochberg" in pages[-2]
    assert "yes, 2024-08-20" in "".join(pages)  # the decision, in the brief or on a card
    assert "<b>patrol</b>" in "".join(pages)  # the actions as text on the card


def test_pack_cell_size_reaches_the_cells_ranked_and_the_notes(demo, cache, capsys):
    """--cell-size-m goes, as a GridSpec, to the grid the cells are ranked on, the cells'
    lookup and the method notes (the attrs carrier lost it in joins)."""
    root, store = demo
    out = build(root, store, cache, capsys, "--units", "cells", "--cell-size-m", "333")
    assert out["cell_size_m"] == 333
    table = gpd.read_file(out["files"]["gpkg"])
    full = table.loc[table.geometry.area.round(0) == 333**2]  # whole cells, not clipped
    corners = shapely.get_coordinates(full.geometry.values) / 333
    assert len(full) and corners == pytest.approx(corners.round())  # the 333 m lattice
    html = Path(out["files"]["html"]).read_text(encoding="utf-8")
    assert "grid cells of 333 m: Gini" in html
    # the interactive map names its Gi* layer by the grid it was made on (it said 0 m)
    page = Path(out["files"]["map"]).read_text(encoding="utf-8")
    assert "(queen neighbours, 333 m cells, FDR-corrected)" in page
    capsys.readouterr()
    assert main(["--geodata", str(cache), "pack", "--store", store, "--out", str(root / "o"),
                 "--cell-size-m", "0"]) == 1
    assert "cell_size_m must be a positive number of metres, got 0.0" in \
        capsys.readouterr().err


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
    if units == "lsoa":  # rates per 1,000 residents from the Census population file
        table = pd.read_csv(out["files"]["csv"], dtype={"place_id": str})
        pop = pd.read_csv(cache / "population_lsoa21_london.csv").set_index("lsoa21cd")
        want = 1000 * table["n"] / table["place_id"].map(pop["usual_residents"])
        assert table["per_1000_residents"].to_numpy() == pytest.approx(want.to_numpy())
        assert "Per 1,000 residents" in Path(out["files"]["html"]).read_text(encoding="utf-8")
    # where each ranks: an LSOA's label names its ward already, and says it once
    page = Path(out["files"]["html"]).read_text(encoding="utf-8")
    labelled = re.findall(r"<td>([^<>]*?), ([^<>(),]+) \(\2\)</td>", page)
    assert not labelled
    if units == "lsoa":
        assert re.search(r"<td>Tower Hamlets \d{3}[A-Z], [^<>()]+</td>", page)
    # the printed map's legend names the units ranked, not clusters
    assert ("ranked LSOA</span>" if units == "lsoa" else "ranked grid cell</span>") in page
    assert "place (cluster of incidents)" not in page


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
    with August 2023; each pack says so. The hostile file has records in 2024-08 only:
    August's change on July counts, in each place's footprint, every other stream on both
    sides and the hostile rows on neither."""
    root, store = demo
    sept = build(root, store, cache, capsys, "--month", "2023-09")
    page = Path(sept["files"]["html"]).read_text(encoding="utf-8")
    assert "Not compared with 2023-08: Burglary (police.uk)" in page
    aug = build(root, store, cache, capsys)
    page = Path(aug["files"]["html"]).read_text(encoding="utf-8")
    # the hostile test file has records in 2024-08 only: left out of both comparisons
    assert ("Not compared with 2023-08: Drug dealing (hostile), Burglary (police.uk) "
            "(records in only one of 2023-08 and 2024-08)") in page
    assert "Not compared with 2024-07: Drug dealing (hostile) " in page
    # the counts, from the store: the incidents in each place's footprint (the places
    # `detect` wrote for 2024-08, the pack's own), each incident in one place
    ranked = pd.read_csv(aug["files"]["csv"]).dropna(subset=["n_previous"])
    shapes = gpd.read_file(root / "o" / "hotspots_2024-08.gpkg", layer="places")
    assert set(ranked["place_id"]) <= set(shapes["place_id"])
    with contextlib.closing(hotspots_store.connect(store)) as conn:
        inc = hotspots_store.read_incidents(conn, start="2024-07-01", end="2024-08-31")
    unit = assign_codes(inc["x"].to_numpy(), inc["y"].to_numpy(),
                        shapes[["place_id", "geometry"]].rename(columns={"place_id": "code"}))
    now = in_period(inc, month_period("2024-08"))
    before = in_period(inc, month_period("2024-07"))
    hostile = (inc["source"] == "hostile").to_numpy()

    def count(mask):
        return (pd.Series(unit[mask]).value_counts()
                .reindex(ranked["place_id"], fill_value=0).to_numpy())

    assert (ranked["n_previous"].to_numpy() == count(before)).all()
    compared = ranked["n_previous"].to_numpy() + ranked["change_previous"].to_numpy()
    assert (compared == count(now & ~hostile)).all()
    # both hostile places are ranked, so counting the hostile rows would fail the line above
    assert (count(now & hostile) >= 30).sum() == 2


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


# --- the partner version: nothing a suppressed count can be worked back from ------------

#: Incidents per LSOA (A to D, in four wards) and month: (drug dealing, NOx sightings).
#: August: B is under the threshold, C had 2 in July, A's NOx count is 3.
PLANTED = {"2024-07": {"A": (10, 0), "B": (8, 0), "C": (2, 0), "D": (0, 6)},
           "2024-08": {"A": (12, 3), "B": (3, 0), "C": (9, 0), "D": (0, 6)},
           "2024-09": {"A": (11, 0), "B": (3, 0), "C": (7, 0), "D": (0, 2)}}
STREET = "Secretive Street"


@pytest.fixture(scope="module")
def planted(tmp_path_factory, cache, layers):
    """A store of known small counts in four LSOAs of four different wards."""
    root = tmp_path_factory.mktemp("partner")
    lsoa = layers["lsoa"]
    ward_of = {}
    for code, geom in zip(lsoa["code"], lsoa.geometry, strict=True):
        p = geom.representative_point()
        hit = layers["ward"].loc[layers["ward"].contains(p), "code"]
        if len(hit) and hit.iloc[0] not in ward_of.values():
            ward_of[code] = hit.iloc[0]
        if len(ward_of) == 4:
            break
    codes = dict(zip("ABCD", ward_of, strict=True))
    pts = gpd.GeoSeries(lsoa.set_index("code").loc[list(codes.values())].geometry
                        .representative_point().to_numpy(), crs=27700).to_crs(4326)
    where = dict(zip("ABCD", pts, strict=True))
    path = root / "planted.csv"
    with open(path, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["Ref", "When", "Type", "Lat", "Lon", "Where", "Caller"])
        for month, areas in PLANTED.items():
            for name, (drugs, nox) in areas.items():
                for k in range(drugs + nox):
                    w.writerow([f"{month}-{name}-{k}", f"{month}-{1 + (k * 3) % 28:02d} "
                                f"{20 + k % 3}:00", "drugs" if k < drugs else "nox",
                                f"{where[name].y:.6f}", f"{where[name].x:.6f}",
                                f"{k % 2 + 1} {STREET}", f"caller-{name}"])
    mapping = root / "planted.toml"
    mapping.write_text('source = "planted"\n[columns]\nreference = "Ref"\ndatetime = "When"\n'
                       'category = "Type"\nlatitude = "Lat"\nlongitude = "Lon"\n'
                       'location = "Where"\ncaller = "Caller"\n[categories]\n'
                       '"drugs" = "drug_dealing"\n"nox" = "nox_sighting"\n')
    store = str(root / "s.sqlite")
    assert main(["--geodata", str(cache), "ingest", str(path), "--mapping", str(mapping),
                 "--store", store, "--json"]) == 0
    return root, store, codes


def _pack(root, store, cache, capsys, month, *extra):
    capsys.readouterr()
    code = main(["--geodata", str(cache), "pack", "--store", store, "--out",
                 str(root / month / "-".join(extra or ("full",))), "--units", "lsoa",
                 "--month", month, "--json", *extra])
    out = capsys.readouterr()
    return (json.loads(out.out) if code == 0 else None), out.err


def _seen(out) -> dict:
    """Everything a reader of a pack's files sees: the ranked and tasked tables (CSV and
    every XLSX sheet) and the text of the page and of its map's title."""
    import html
    import re

    page = Path(out["files"]["html"]).read_text(encoding="utf-8")
    page = re.sub(r"<style>.*?</style>|<iframe.*?</iframe>", " ", page, flags=re.S)
    text = html.unescape(re.sub(r"<[^>]+>", " ", page))
    title = re.search(r"<div class='hs-title'>(.*?)</div>",
                      Path(out["files"]["map"]).read_text(encoding="utf-8"), re.S).group(1)
    text += " " + html.unescape(re.sub(r"<[^>]+>", " ", title))
    wb = openpyxl.load_workbook(out["files"]["xlsx"])
    # the sheets show readable headings: back to column names (an unknown one stays)
    named = {heading(c)[0]: c for c in ("rank", *PARTNER_KEYS, *PARTNER_COUNTS,
                                        *PARTNER_DERIVED)}
    sheets = {ws.title: [dict(zip([named.get(c.value, c.value) for c in ws[1]],
                                  [c.value for c in row], strict=True))
                         for row in ws.iter_rows(min_row=2)]
              for ws in wb.worksheets}
    with open(out["files"]["csv"], encoding="utf-8-sig", newline="") as fh:
        ranked = list(csv.DictReader(fh))
    return {"text": text, "ranked": ranked, "sheets": sheets,
            "csv": Path(out["files"]["csv"]).read_text(encoding="utf-8-sig")}


def _number(v):
    try:
        return float(v)
    except (TypeError, ValueError):
        return None


def _candidates(row: dict, n: float) -> set[int]:
    """What an attacker works out from the numbers of one row, taking each (other than the
    rank, the area and the density, whose meaning is known) as the previous count itself,
    a change, a trend z-score or a share of ``n``."""
    found = set()
    for col, raw in row.items():
        v = _number(raw)
        if v is None or col in ("rank", "n", "area_km2", "density_per_km2", "place_id"):
            continue
        guesses = [v, n - v, n * v, n * v / 100]
        # (n - p) / sqrt(n + p) = z  =>  p = n + (z^2 - z sqrt(z^2 + 8n)) / 2
        if v * v + 8 * n >= 0:
            guesses.append(n + (v * v - v * (v * v + 8 * n) ** 0.5) / 2)
        found |= {round(g) for g in guesses if abs(g - round(g)) < 1e-6 and 1 <= round(g) <= 4}
    return found


@pytest.mark.slow
def test_suppressed_counts_cannot_be_worked_back_from_partner_outputs(planted, cache, capsys):
    """Differencing attacks on the partner outputs (total minus the rows shown, rank gaps,
    components/shares/trends, the next month's pack, category subsets, tasked places).
    Each attack is first shown to work on the full pack, then to fail on the partner one."""
    import re

    root, store, codes = planted
    full, _ = _pack(root, store, cache, capsys, "2024-08")
    partner, _ = _pack(root, store, cache, capsys, "2024-08", "--partner")
    full_seen, seen = _seen(full), _seen(partner)
    row = {r["place_id"]: r for r in seen["ranked"]}
    assert row[codes["B"]]["n"] == "<5" and row[codes["A"]]["n"] == "15"

    # the rule's columns only, in every table and sheet; no record text anywhere
    allowed = {"rank", *PARTNER_KEYS, *PARTNER_COUNTS, *PARTNER_DERIVED}
    for rows in [seen["ranked"], *seen["sheets"].values()]:
        assert rows and set(rows[0]) <= allowed, set(rows[0]) - allowed
    for word in (STREET, "caller-"):
        assert word not in seen["text"] + seen["csv"], word

    # 1. total minus the rows shown: B = 33 - (15 + 9 + 6)
    def by_total(s):  # (in the full pack, B's own count is set aside)
        shown = sum(int(r["n"]) for r in s["ranked"]
                    if r["n"].isdigit() and r["place_id"] != codes["B"])
        totals = {int(t) for t in re.findall(r"(?<![\d.,])\d+(?![\d.,]*\d)", s["text"])}
        return {t - shown for t in totals} & {1, 2, 3, 4}
    assert 3 in by_total(full_seen) and 3 not in by_total(seen)

    # 2. rank gaps: the rows shown are ranked 1..k, B comes last without a rank
    ranks = [r["rank"] for r in seen["ranked"]]
    assert ranks == [str(i) for i in range(1, len(ranks))] + ["[c]"]
    assert seen["ranked"][-1]["place_id"] == codes["B"]

    # 3. components, shares, trends: C had 2 incidents in July
    c_full = next(r for r in full_seen["ranked"] if r["place_id"] == codes["C"])
    assert 2 in _candidates(c_full, 9) and 2 not in _candidates(row[codes["C"]], 9)

    # 4. the next month's pack: B had 3 in August
    sept_full, _ = _pack(root, store, cache, capsys, "2024-09")
    sept, _ = _pack(root, store, cache, capsys, "2024-09", "--partner")
    b_full = next(r for r in _seen(sept_full)["ranked"] if r["place_id"] == codes["B"])
    b_sept = next(r for r in _seen(sept)["ranked"] if r["place_id"] == codes["B"])
    assert 3 in _candidates(b_full, 3) and not _candidates(b_sept, 3)

    # 5. category subsets: A's 3 NOx sightings = 15 - 12 drug dealing
    drugs, _ = _pack(root, store, cache, capsys, "2024-08", "--categories", "drug_dealing")
    a_drugs = next(r for r in _seen(drugs)["ranked"] if r["place_id"] == codes["A"])
    assert int(row[codes["A"]]["n"]) - int(a_drugs["n"]) == 3  # the full pack allows it
    refused, err = _pack(root, store, cache, capsys, "2024-08", "--partner", "--categories",
                         "drug_dealing")
    assert refused is None and "a partner pack covers every category" in err


@pytest.mark.parametrize(("section", "want"), [
    ('marking = "OFFICIAL"\nbrief_places = 5', ("OFFICIAL", 5)),
    ('marking = ""', r"pack\.marking = ''; give the protective marking"),
    ("brief_places = 40", r"pack\.brief_places = 40; give a whole number from 1 to 12"),
])
def test_pack_marking_and_brief_length_come_from_the_configuration(tmp_path, section, want):
    from importlib import resources

    from hotspots.config import ConfigError, load_config

    text = resources.files("hotspots").joinpath("data", "tower_hamlets.toml").read_text()
    head, rest = text.split("\n[pack]\n")
    path = tmp_path / "area.toml"
    path.write_text(head + "\n[pack]\n" + section + "\n" + rest[rest.index("\n["):],
                    encoding="utf-8")
    if isinstance(want, tuple):
        cfg = load_config(path)
        assert (cfg.pack_marking, cfg.brief_places) == want
    else:
        with pytest.raises(ConfigError, match=want):
            load_config(path)


def test_pack_for_some_wards_from_the_command_line(demo, cache, capsys):
    """`hotspots pack --areas` narrows the pack as the app's area filter does: ward names in
    any case or codes; the places keep their ranks in the whole area; an unknown name is
    refused with the nearest names."""
    root, store = demo
    whole = pd.read_csv(build(root, store, cache, capsys)["files"]["csv"],
                        dtype={"place_id": str})
    wards = geography.read_layers(load_config(), cache=cache)["ward"]
    name = wards.set_index("code").loc[whole["ward_code"].iloc[0], "name"]
    other = whole.loc[whole["ward_code"] != whole["ward_code"].iloc[0], "ward_code"].iloc[0]
    out = build(root, store, cache, capsys, "--areas", f"{name.upper()}, {other}")
    part = pd.read_csv(out["files"]["csv"], dtype={"place_id": str})
    mine = whole.loc[whole["ward_code"].isin([whole["ward_code"].iloc[0], other])]
    assert 1 < len(part) < len(whole)
    assert part[["place_id", "rank"]].values.tolist() == mine[["place_id", "rank"]].values.tolist()
    assert "their ranks are their ranks in the whole area" in Path(
        out["files"]["html"]).read_text("utf-8")
    capsys.readouterr()
    assert main(["--geodata", str(cache), "pack", "--store", store, "--out", str(root / "o"),
                 "--areas", name[:-1] + "x"]) == 1
    err = capsys.readouterr().err
    assert f"{name[:-1] + 'x'!r} is not a ward" in err and repr(name) in err
