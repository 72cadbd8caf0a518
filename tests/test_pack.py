"""The tasking pack end to end on the demo data: full and partner versions, record text
kept harmless, small counts suppressed, opened and printed in headless Chromium."""

import csv
import json
import shutil
import zipfile
from pathlib import Path

import openpyxl
import pytest

from hotspots.cli import main

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
    assert "<5" in csv_text or all(int(v) >= 5 for v in
                                  [line.split(",")[4] for line in csv_text.splitlines()[1:]])


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
