"""Hostile content end to end: script and formula payloads in every text field of the
records (location, description, category, caller), in the mapping (source name and
category names), in the configuration (study-area name, category labels) and in the
boundary files (ward and LSOA names). Every HTML output is opened in headless Chromium
with dialogs hooked and a MutationObserver watching for injected elements: nothing runs
and nothing is injected. Every spreadsheet cell is a value (no formula), every CSV text
cell that could start a formula is guarded, and numbers stay numbers."""

from __future__ import annotations

import csv
import json
import os
import re
import shutil
from pathlib import Path

import geopandas as gpd
import openpyxl
import pyogrio
import pytest

from hotspots.cli import main
from hotspots.config import load_config
from hotspots.export import DANGEROUS_STARTS, heading, is_internal, neutralise

from .conftest import (
    CHROMIUM_ARGS,
    FORMULA_PAYLOADS,
    ROOT,
    XSS_PAYLOADS,
    check_page,
    guard_page,
    run_app,
    xss_findings,
)

pytestmark = pytest.mark.slow
PAYLOADS = XSS_PAYLOADS + FORMULA_PAYLOADS
CHROMIUM = shutil.which("chromium")


def _toml(text: str) -> str:
    return json.dumps(text)  # a TOML basic string accepts JSON's escapes


@pytest.fixture(scope="module")
def hostile(tmp_path_factory, cache, config):
    """Boundary files, configuration, mapping and records full of payloads, loaded, with
    every command's outputs written."""
    root = tmp_path_factory.mktemp("hostile")
    geo = root / "geodata"
    shutil.copytree(cache, geo)
    for layer in (config.layers["ward"], config.layers["lsoa"]):
        gdf = gpd.read_file(geo / layer.file)
        gdf[layer.name] = [PAYLOADS[i % len(PAYLOADS)] for i in range(len(gdf))]
        (geo / layer.file).unlink()
        gdf.to_file(geo / layer.file, driver="GeoJSON")
    text = (ROOT / "hotspots" / "data" / "tower_hamlets.toml").read_text(encoding="utf-8")
    text = text.replace('name = "Tower Hamlets"', f"name = {_toml(XSS_PAYLOADS[1])}", 1)
    labels = iter(PAYLOADS * 3)
    text = re.sub(r'label = "[^"]*"', lambda m: f"label = {_toml(next(labels))}", text)
    cfg = root / "hostile.toml"
    cfg.write_text(text, encoding="utf-8")
    # records: eight spots, a payload in every text field
    lsoa = gpd.read_file(geo / config.layers["lsoa"].file).to_crs(27700)
    spots = gpd.GeoSeries(lsoa.geometry.representative_point().iloc[::18].to_numpy()[:8],
                          crs=27700).to_crs(4326)
    data = root / "records.csv"
    with open(data, "w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(["Ref", "When", "Type", "Lat", "Lon", "Where", "Text", "Caller"])
        for month in ("2024-07", "2024-08"):
            for s, p in enumerate(spots):
                for k in range(12):
                    payload = PAYLOADS[(s + k) % len(PAYLOADS)]
                    w.writerow([f"{month}-{s}-{k}", f"{month}-{31 - k:02d} 21:00",
                                PAYLOADS[k % 4], f"{p.y:.6f}", f"{p.x:.6f}",
                                PAYLOADS[s % len(PAYLOADS)], payload, payload])
        w.writerow(["bad-1", "2024-08-05 21:00", "unknown", "51.52", "-0.0739", PAYLOADS[0],
                    "", ""])  # rejected: its rows go to a CSV too
    mapping = root / "hostile.mapping.toml"
    cats = "\n".join(f"{_toml(PAYLOADS[k])} = \"{key}\"" for k, key in
                     enumerate(["drug_dealing", "nox_sighting", "asb_nuisance", "drug_use"]))
    mapping.write_text(
        f"source = {_toml(XSS_PAYLOADS[2])}\n[columns]\nreference = \"Ref\"\n"
        "datetime = \"When\"\ncategory = \"Type\"\nlatitude = \"Lat\"\nlongitude = \"Lon\"\n"
        "location = \"Where\"\ndescription = \"Text\"\ncaller = \"Caller\"\n"
        f"[categories]\n{cats}\n", encoding="utf-8")
    store, out = str(root / "d" / "hotspots.sqlite"), str(root / "out")
    base = ["--config", str(cfg), "--geodata", str(geo)]

    def run(*argv):
        assert main([*base, *argv]) == 0, argv

    run("ingest", str(data), "--mapping", str(mapping), "--store", store, "--json")
    for level in ("ward", "lsoa"):
        run("summarise", "--level", level, "--store", store, "--out", out, "--json")
    run("detect", "--store", store, "--out", out, "--json")
    with open(Path(out) / "places_2024-08.csv", encoding="utf-8-sig") as fh:
        place = next(csv.DictReader(fh))["place_id"]
    run("task", "add", "--store", store, "--place", place, "--owner", "ptf", "--actions",
        XSS_PAYLOADS[1] + FORMULA_PAYLOADS[0], "--review", "2024-09-01", "--meeting",
        "2024-08-10")
    run("pack", "--store", store, "--out", out, "--json")
    run("pack", "--partner", "--store", store, "--out", out, "--json")
    return {"root": root, "geo": geo, "config": cfg, "store": store, "out": Path(out)}


def test_spreadsheets_hold_values_only(hostile):
    config = load_config(hostile["config"])
    labels = {key: config.label(key) for key in config.categories}
    files = sorted(hostile["out"].glob("*.csv")) + sorted(
        (hostile["root"] / "d" / "rejected").glob("*.csv"))
    assert len(files) >= 5  # areas (2), places, ranked (2), rejected rows
    guarded = 0
    for path in files:
        with open(path, encoding="utf-8-sig", newline="") as fh:
            for row in csv.reader(fh):
                for cell in row:
                    if cell.lstrip(" \n").startswith(DANGEROUS_STARTS):
                        assert re.fullmatch(r"[+-]?[0-9.]+(e[+-]?[0-9]+)?", cell, re.I) \
                            or cell.startswith("'"), (path.name, cell)
                    guarded += cell.startswith("'") and cell[1:] in PAYLOADS
    assert guarded  # the payloads did reach the files, guarded
    for path in sorted(hostile["out"].glob("*.xlsx")):
        wb = openpyxl.load_workbook(path)
        for ws in wb.worksheets:
            for row in ws.iter_rows():
                for c in row:
                    assert c.data_type != "f", (path.name, c.coordinate, c.value)
                    assert not (isinstance(c.value, str) and c.value.startswith("=")), c.value
        # numbers unchanged: the first sheet's numbers are the CSV's (the sheet shows
        # readable headings and leaves internal columns out)
        csv_path = path.with_suffix(".csv")
        with open(csv_path, encoding="utf-8-sig", newline="") as fh:
            rows = list(csv.reader(fh))
        ws = wb.worksheets[0]
        column = {c.value: c.column for c in ws[1]}
        found = 0
        for name in rows[0]:
            found += neutralise(heading(name, labels)[0]) in column
            assert neutralise(heading(name, labels)[0]) in column or is_internal(name, rows[0])
        assert found >= 5, path.name
        for r, row in enumerate(rows[1:], start=2):
            for name, text in zip(rows[0], row, strict=True):
                try:
                    number = float(text)
                except ValueError:
                    continue
                if not is_internal(name, rows[0]):
                    c = column[neutralise(heading(name, labels)[0])]
                    assert ws.cell(row=r, column=c).data_type == "n", (path.name, r, c, text)
                    assert ws.cell(row=r, column=c).value == pytest.approx(number, abs=1e-4)
    gis = sorted(hostile["out"].glob("*.geojson")) + sorted(hostile["out"].glob("*.gpkg"))
    assert len(gis) >= 6  # areas (2 x 2), places, ranked (2)
    guarded = 0
    for path in gis:
        for layer in pyogrio.list_layers(path)[:, 0]:
            frame = gpd.read_file(path, layer=layer)
            for name in frame.columns.drop("geometry"):
                for v in frame[name]:
                    assert not (isinstance(v, str) and v.lstrip(" \n").startswith(
                        DANGEROUS_STARTS)) or v.startswith("'"), (path.name, name, v)
                    guarded += isinstance(v, str) and v[1:] in PAYLOADS
    assert guarded


@pytest.mark.skipif(CHROMIUM is None, reason="needs Debian chromium")
def test_html_outputs_run_no_script(hostile):
    from playwright.sync_api import sync_playwright

    out = hostile["out"]
    pages = ["map_ward_2024-08.html", "map_lsoa_2024-08.html", "hotspots_2024-08.html",
             "pack_2024-08.html", "pack_2024-08_map.html", "pack_2024-08_partner.html",
             "pack_2024-08_partner_map.html"]
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            for name in pages:
                page = browser.new_page(viewport={"width": 1200, "height": 900})
                dialogs = guard_page(page)
                page.goto((out / name).as_uri())
                page.wait_for_load_state("load")
                # the packs print a static SVG map; their Leaflet maps are the _map pages
                static = name.startswith("pack_") and not name.endswith("_map.html")
                found = xss_findings(page, open_maps=not static)
                text = " ".join(f.evaluate("document.body.innerText") for f in page.frames)
                assert found == [] and dialogs == [], (name, found[:5], dialogs)
                if "partner" not in name:  # record or boundary text is shown, as text
                    assert any(p.strip() in text for p in XSS_PAYLOADS), name
                page.close()
        finally:
            browser.close()


def _wait_for_a_map(page, timeout_s: float = 30) -> None:
    """Wait until a Leaflet map is drawn in some frame of ``page`` (the Tasking page's map
    sits in a component's frame, itself in a frame)."""
    for _ in range(int(timeout_s * 2)):
        if any(f.locator(".leaflet-container").count() for f in page.frames):
            return
        page.wait_for_timeout(500)
    raise AssertionError(f"no map drawn on {page.url} within {timeout_s} s")


@pytest.mark.skipif(CHROMIUM is None, reason="needs Debian chromium")
@pytest.mark.parametrize("role, pages", [
    ("analyst", {"tasking": "Ranked places", "patrol": "Numbers on the map match",
                 "trends": "Before and after", "data": "Store status"}),
    ("partner", {"partner": "Partner pack"})])
def test_app_pages_run_no_script(hostile, tmp_path, role, pages):
    from playwright.sync_api import sync_playwright

    env = dict(os.environ, HOTSPOTS_STORE=hostile["store"], HOTSPOTS_GEODATA=str(hostile["geo"]),
               HOTSPOTS_CONFIG=str(hostile["config"]), HOTSPOTS_LOCAL="1",
               HOTSPOTS_TEST_ROLE=role)
    with run_app(env, tmp_path / "server.log") as url, sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            for name, key_text in pages.items():
                page = browser.new_page(viewport={"width": 1280, "height": 900})
                page.set_default_timeout(120_000)
                dialogs = guard_page(page)
                page.goto(f"{url}/{name}")
                check_page(page, key_text)
                if name == "tasking":  # the forecast layer joins the map when ready
                    page.get_by_text("The forecast layer is being drawn").wait_for(
                        state="detached", timeout=180_000)
                if name in ("tasking", "patrol"):
                    _wait_for_a_map(page)
                found = xss_findings(page, open_maps=name in ("tasking", "patrol"))
                assert found == [] and dialogs == [], (name, found[:5], dialogs)
                page.close()
        finally:
            browser.close()
