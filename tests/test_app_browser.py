"""The app served by `streamlit run` on 127.0.0.1 and opened in headless Chromium: every
page at desktop (1280 x 900) and phone (375 x 812) size shows its key text and no error
box or traceback; a bad upload gives a message, not a crash. Screenshots go to the test's
temporary folder and are copied to /tmp/app_shots/ for a person to look at."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from .conftest import CHROMIUM_ARGS, check_page, copy_demo, run_app

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = "/usr/bin/chromium"
PAGES = {"tasking": "Ranked places", "patrol": "Numbers on the map match",
         "trends": "Before and after", "data": "Store status"}
SIZES = {"desktop": (1280, 900), "phone": (375, 812)}
SHOTS = Path("/tmp/app_shots")

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def server(tmp_path_factory, cache, request):
    if not Path(CHROMIUM).exists():
        pytest.skip(f"{CHROMIUM} is not installed")
    pytest.importorskip("playwright.sync_api")
    demo_build = request.getfixturevalue("demo_build")  # once nothing is missing
    root = copy_demo(demo_build, tmp_path_factory.mktemp("browser"))  # written to: a copy
    env = dict(os.environ, HOTSPOTS_STORE=str(root / "d" / "hotspots.sqlite"),
               HOTSPOTS_GEODATA=str(cache), HOTSPOTS_LOCAL="1")
    env.pop("HOTSPOTS_TEST_ROLE", None)
    with run_app(env, root / "server.log") as url:
        yield url, root


def _check_patrol(page) -> None:
    """The map is there; no tile server answers here, so it says so and its numbered
    labels carry the street names of the places in the table."""
    from hotspots.maps import NO_TILES_NOTE, NO_TILES_STREETS

    check_page(page, "OFFICIAL-SENSITIVE · Patrol map")
    frame = page.frame_locator("iframe").first
    frame.locator(".leaflet-container").first.wait_for(timeout=30_000)
    frame.locator(".hs-notiles-box").wait_for(state="visible", timeout=30_000)
    assert frame.locator(".hs-notiles-box").inner_text() == f"{NO_TILES_NOTE} {NO_TILES_STREETS}"
    rows = page.locator('[data-testid="stTable"] tr:has(td)')
    streets = frame.locator(".hs-street")
    assert streets.count() == rows.count() > 0
    assert streets.first.is_visible()
    assert streets.first.inner_text() == rows.first.locator("td").nth(0).inner_text()
    # no street label shown covers another label or another place's number (on a phone,
    # nearby places' labels overlapped): those that would are hidden, the first never
    clashes = frame.locator("body").evaluate("""() => {
      const labels = [...document.querySelectorAll('.hs-street')];
      const shown = labels.filter(e => getComputedStyle(e).visibility === 'visible');
      const box = e => e.getBoundingClientRect();
      const hit = (a, b) => a.left < b.right && b.left < a.right && a.top < b.bottom
                            && b.top < a.bottom;
      const out = [];
      shown.forEach((e, i) => {
        shown.slice(i + 1).forEach(f => { if (hit(box(e), box(f))) out.push(e.textContent); });
        labels.forEach(f => { if (f !== e && hit(box(e), box(f.parentNode)))
                                out.push(e.textContent + ' over a number'); });
      });
      return [out, shown.length, labels.length];
    }""")
    assert clashes[0] == [] and 0 < clashes[1] <= clashes[2], clashes


def _check_trends(page) -> None:
    """No metric is cut off; the verdict reads in words; the emerging classes are on a
    map with their legend; the charts are drawn."""
    from playwright.sync_api import expect

    from hotspots.maps import NO_TILES_NOTE

    page.get_by_text("The target ").first.wait_for()
    values = page.locator('[data-testid="stMetricValue"]')
    expect(values).to_have_count(3)
    for i in range(3):
        cut = values.nth(i).evaluate("e => [...e.querySelectorAll('*')].concat([e]).some("
                                     "n => n.scrollWidth > n.clientWidth + 1)")
        assert not cut, values.nth(i).inner_text()
    legend = page.frame_locator("iframe").first.locator(".hs-legend")
    legend.wait_for(state="visible", timeout=30_000)
    assert "persistent hot spot" in legend.inner_text()
    notice = page.frame_locator("iframe").first.locator(".hs-notiles-box")
    notice.wait_for(state="visible", timeout=30_000)
    assert notice.inner_text() == NO_TILES_NOTE  # no numbered places on this map
    expect(page.locator('[data-testid="stVegaLiteChart"]')).to_have_count(2)
    page.get_by_text("Details: the tests").first.click()
    page.get_by_text("Weighted displacement quotient").first.wait_for()


def test_pages_in_chromium(server):
    from playwright.sync_api import sync_playwright

    url, root = server
    shots = root / "shots"
    shots.mkdir()
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            for size, (w, h) in SIZES.items():
                page = browser.new_page(viewport={"width": w, "height": h})
                page.set_default_timeout(120_000)  # the first request computes the analysis
                for name, text in PAGES.items():
                    page.goto(f"{url}/{name}")  # each page's own link works
                    check_page(page, text)
                    if name == "patrol":
                        _check_patrol(page)
                    if name == "trends":
                        _check_trends(page)
                    page.screenshot(path=shots / f"{name}_{size}.png", full_page=True)
                page.close()
            # a file that is not an export: a message per file, the app carries on
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            page.goto(f"{url}/data")
            check_page(page, "Store status")
            bad = root / "not-an-export.csv"
            bad.write_bytes(b"\x00\x01garbage;;;\n\xff\xfe")
            page.locator('[data-testid="stFileUploaderDropzoneInput"]').first \
                .set_input_files(str(bad))
            page.get_by_text("not-an-export.csv").first.wait_for(timeout=30_000)
            page.get_by_role("button", name="Check the files (nothing is written)").click()
            page.locator('[data-testid="stAlertContentError"]').first.wait_for(timeout=60_000)
            check_page(page, "Store status")
            page.screenshot(path=shots / "data_bad_upload.png", full_page=True)
        finally:
            browser.close()
            SHOTS.mkdir(exist_ok=True)
            for f in shots.glob("*.png"):
                shutil.copy(f, SHOTS / f.name)
    assert len(list(shots.glob("*.png"))) == 2 * len(PAGES) + 1


def test_patrol_area_drawn_on_the_map_and_printed_on_a4(server):
    """An officer draws a rectangle on the patrol map (Leaflet.draw in the app's map
    component): the page lists the places inside it. The page then prints on A4 with
    the table as text and without the sidebar."""
    from playwright.sync_api import Error, expect, sync_playwright
    from pypdf import PdfReader

    from hotspots.maps.components import FIT_OPTIONS

    url, root = server
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 1000})
            page.set_default_timeout(120_000)
            page.goto(f"{url}/patrol")
            check_page(page, "Numbers on the map match")
            page.get_by_label("Period", exact=True).click()
            page.get_by_role("option", name="Month: Aug 2024").click()
            check_page(page, "· 2024-08 ·")
            page.get_by_text("An area I draw").click()
            check_page(page, "Draw an area on the map")
            frame = page.locator('iframe[title$="hotspots_drawmap"]')
            inner = page.frame_locator('iframe[title$="hotspots_drawmap"]').frame_locator("#map")
            zoom = "() => Object.values(window).find(v => v instanceof L.Map).getZoom()"
            inner.locator(".leaflet-container").wait_for()
            before = page.frame_locator('iframe[title$="hotspots_drawmap"]').frame_locator(
                "#map").locator("body").evaluate(zoom)
            inner.locator(".leaflet-draw-draw-rectangle").click()
            box = frame.bounding_box()
            cx, cy = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
            page.mouse.move(cx - 120, cy - 80)
            page.mouse.down()
            page.mouse.move(cx + 120, cy + 80, steps=8)
            page.mouse.up()
            check_page(page, "The area drawn (")
            caption = page.locator('[data-testid="stCaptionContainer"]').filter(
                has_text="The area drawn (").first.inner_text()
            n_places = int(caption.rsplit(": ", 1)[1].split()[0])
            assert n_places > 0, caption
            # the table streams in after the caption: wait for its rows
            expect(page.locator('[data-testid="stTable"] tr:has(td)')).to_have_count(n_places)
            # busiest on the shift first
            on = [int(t) for t in page.locator('[data-testid="stTable"] tr:has(td)')
                  .locator("td:nth-child(3)").all_inner_texts()]
            assert on == sorted(on, reverse=True), on
            # the drawn rectangle is back on the rebuilt map, editable, and the map zooms
            # to it: its view holds the drawn area at the zoom that fits it best (in a narrow
            # frame that can be the zoom it had before, so the zoom alone does not tell).
            # The map drawn on stays until the rebuilt one replaces it (seconds, under load):
            # wait for the rebuilt page, which carries the area as GeoJSON (a layer drawn by
            # hand has no .feature).
            page.frame_locator('iframe[title$="hotspots_drawmap"]').locator(
                "#map[srcdoc*='var drawn = {']").wait_for(state="attached")
            inner.locator("path.leaflet-interactive").first.wait_for()
            (left, top), (right, bottom) = (FIT_OPTIONS["paddingTopLeft"],
                                            FIT_OPTIONS["paddingBottomRight"])
            fitted = """() => {
              const m = Object.values(window).find(v => v instanceof L.Map);
              const k = Object.keys(window).find(n => n.startsWith('drawnItems_'));
              if (!k || !window[k].getLayers().length || !window[k].getLayers()[0].feature) {
                return null;
              }
              const b = window[k].getBounds();
              // the zoom that fits it clear of the title box (FIT_OPTIONS' padding)
              const best = m.getBoundsZoom(b, false, L.point(PAD_X, PAD_Y));
              return [m.getZoom(), Math.min(best, 17), m.getBounds().contains(b),
                      // why, when it fails: the map's size, whether its centre is the area's
                      // (fitted at another size) and how long ago this document loaded
                      m.getSize().x, m.getSize().y, m.getCenter().distanceTo(b.getCenter()),
                      Math.round(performance.now())];
            }""".replace("PAD_X", str(left + right)).replace("PAD_Y", str(top + bottom))
            for _ in range(60):  # the rebuilt map zooms once it has drawn
                try:
                    got = inner.locator("body").evaluate(fitted)
                except Error as exc:  # the map drawn on was replaced while asked
                    if "Execution context was destroyed" not in str(exc):
                        raise
                    got = None
                if got and got[0] == got[1] and got[2]:
                    break
                page.wait_for_timeout(500)
            assert got and got[0] == got[1] >= before and got[2], (got, before)
            page.screenshot(path=root / "shots_patrol_drawn.png", full_page=True)

            page.get_by_text("A ward").first.click()
            # the drawn-area run's elements go when the ward run has finished
            expect(page.locator('iframe[title$="hotspots_drawmap"]')).to_have_count(0)
            check_page(page, "Numbers on the map match")
            expect(page.locator('[data-testid="stTable"]')).to_have_count(1)
            page.frame_locator("iframe").first.locator(".leaflet-container").first.wait_for()
            first_place = page.locator('[data-testid="stTable"] tr:has(td)').first \
                .locator("td").first.inner_text()
            page.emulate_media(media="print")
            pdf = root / "patrol.pdf"
            page.pdf(path=str(pdf), format="A4", print_background=True)
        finally:
            browser.close()
    SHOTS.mkdir(exist_ok=True)
    shutil.copy(root / "shots_patrol_drawn.png", SHOTS / "patrol_drawn.png")
    shutil.copy(pdf, SHOTS / "patrol.pdf")
    reader = PdfReader(pdf)
    assert len(reader.pages) == 1  # one sheet of paper
    w, h = float(reader.pages[0].mediabox.width), float(reader.pages[0].mediabox.height)
    assert abs(w - 595) < 2 and abs(h - 842) < 2  # A4 in points
    text = reader.pages[0].extract_text()
    assert "Patrol windows" in text and "Signed in" not in text and "Page not found" not in text
    assert first_place in text
    for page_ in reader.pages:  # the marking, period, shift and date on every page
        text = " ".join(page_.extract_text().split())
        assert text.count("OFFICIAL-SENSITIVE") >= 2  # header and footer
        assert "· 2024-08 ·" in text and ":00-" in text and "produced 20" in text


def test_data_page_checks_an_upload_before_loading_it(server):
    """Week 2 of the demo's ASB export corrects five records: at both sizes the Data page
    shows the check (counts, the changes, the fix first) and the load waits for the tick;
    on the desktop the tick and the load then replace exactly those five records."""
    import pandas as pd
    from playwright.sync_api import expect, sync_playwright

    from hotspots import store

    url, root = server
    synth = root / "d" / "synthetic"
    week2, mapping = root / "asb-week2.csv", root / "asb.toml"  # short: shown whole
    shutil.copy(synth / "synthetic-asb.mapping.toml", mapping)
    frame = pd.read_csv(synth / "synthetic-asb.csv", dtype=str, keep_default_na=False)
    frame.loc[:4, "Details"] = "SYNTHETIC - corrected in week 2"
    frame.to_csv(week2, index=False)
    db = root / "d" / "hotspots.sqlite"
    conn = store.connect(db)
    loads = len(store.read_loads(conn))
    conn.close()
    shots = root / "data_shots"
    shots.mkdir()
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            for size in ("phone", "desktop"):  # the phone only checks; the desktop loads
                w, h = SIZES[size]
                page = browser.new_page(viewport={"width": w, "height": h})
                page.set_default_timeout(120_000)
                page.goto(f"{url}/data")
                check_page(page, "Store status")
                drop = page.locator('[data-testid="stFileUploaderDropzoneInput"]')
                drop.first.set_input_files(str(week2))
                page.get_by_text(week2.name).first.wait_for(timeout=30_000)
                page.get_by_test_id("stSelectbox").filter(has_text="Mapping").first.click()
                page.get_by_role("option", name="Upload a mapping file (TOML)").click()
                expect(drop).to_have_count(2)
                drop.nth(1).set_input_files(str(mapping))
                page.get_by_text(mapping.name).first.wait_for(timeout=30_000)
                page.get_by_role("button", name="Check the files (nothing is written)").click()
                check_page(page, "What loading would do")
                box = page.get_by_text("Replace 5 records already in the store")
                box.wait_for()
                load = page.get_by_role("button", name="Load into the store")
                expect(load).to_be_disabled()
                page.get_by_text("what changes in 5 of the 5 records").first.wait_for()
                box.scroll_into_view_if_needed()
                page.screenshot(path=shots / f"data_check_{size}.png", full_page=True)
                if size == "desktop":
                    box.click()
                    expect(load).to_be_enabled()
                    load.click()
                    page.locator('[data-testid="stDataFrame"]').nth(1).wait_for()
                    check_page(page, "Loads: when, who, file, counts")
                    page.screenshot(path=shots / "data_loaded_desktop.png", full_page=True)
                page.close()
        finally:
            browser.close()
            SHOTS.mkdir(exist_ok=True)
            for f in shots.glob("*.png"):
                shutil.copy(f, SHOTS / f.name)
    conn = store.connect(db)
    try:
        after = store.read_loads(conn)
        inc = store.read_incidents(conn)
    finally:
        conn.close()
    assert len(after) == loads + 1  # the phone's check wrote nothing; the desktop loaded once
    assert after.iloc[-1][["file", "n_replaced", "n_inserted"]].tolist() == [week2.name, 5, 0]
    assert (inc["description"] == "SYNTHETIC - corrected in week 2").sum() == 5


#: The ranked table's sideways overflow (px): glide-data-grid scrolls in .dvn-scroller.
_TABLE_OVERFLOW_JS = """e => { const s = e.querySelector('.dvn-scroller');
  return s ? s.scrollWidth - s.clientWidth : -1; }"""


def test_tasking_table_fits_and_a_row_or_a_marker_opens_the_card(server):
    """At 1280 x 900 the ranked table needs no sideways scrolling; selecting a row opens
    that place's card, and clicking a numbered place on the map opens its card. At 375 x 812
    the page shows the narrow table instead (four columns), which needs no sideways
    scrolling either. Screenshots go to /tmp/app_shots/ for a person to look at."""
    import re

    from playwright.sync_api import expect, sync_playwright

    url, root = server
    shots = root / "tasking_shots"
    shots.mkdir()
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            page.set_default_timeout(120_000)
            page.goto(f"{url}/tasking")
            check_page(page, "Ranked places")
            table = page.locator('.st-key-ranked_wide [data-testid="stDataFrame"]')
            table.locator(".dvn-scroller").wait_for()
            assert not page.locator(".st-key-ranked_narrow").is_visible()
            page.screenshot(path=shots / "tasking_desktop.png", full_page=True)
            assert table.evaluate(_TABLE_OVERFLOW_JS) == 0  # -1: no grid found
            # select the second row by its selection box (the grid is a canvas)
            box = table.bounding_box()
            page.mouse.click(box["x"] + 18, box["y"] + 35 + 35 + 17)
            frame = page.locator('iframe[srcdoc*="hs-card"]')
            card = page.frame_locator('iframe[srcdoc*="hs-card"]').locator(".hs-card")
            card.wait_for(timeout=60_000)
            check_page(page, "Place card")
            assert "<svg" in frame.get_attribute("srcdoc")  # the hour grid, the sparkline
            assert card.locator("h3").inner_text().startswith("2. ")
            second = card.get_attribute("data-place")
            frame.scroll_into_view_if_needed()
            frame.screenshot(path=shots / "tasking_card_desktop.png")
            # click the place numbered 1 on the map: its card opens instead
            inner = page.frame_locator('iframe[title$="hotspots_placemap"]').frame_locator(
                "#map")
            marker = inner.locator(".leaflet-marker-icon").filter(has_text=re.compile(r"^1(?!\d)"))
            marker.wait_for(state="attached")
            marker.dispatch_event("click")  # the map is zoomed to place 2: 1 is off screen
            expect(card.locator("h3")).to_contain_text(re.compile(r"^1\. "), timeout=60_000)
            check_page(page, "Place card")
            assert card.get_attribute("data-place") != second
            themap = page.locator('iframe[title$="hotspots_placemap"]')
            themap.scroll_into_view_if_needed()
            page.wait_for_timeout(1000)
            themap.screenshot(path=shots / "tasking_map_desktop.png")
            charts = page.locator('[data-testid="stVegaLiteChart"]')
            expect(charts).to_have_count(2)
            charts.first.scroll_into_view_if_needed()
            page.screenshot(path=shots / "tasking_charts_desktop.png")
            page.close()
            page = browser.new_page(viewport={"width": 375, "height": 812})
            page.set_default_timeout(120_000)
            page.goto(f"{url}/tasking")
            check_page(page, "Ranked places")
            narrow = page.locator('.st-key-ranked_narrow [data-testid="stDataFrame"]')
            narrow.locator(".dvn-scroller").wait_for()
            assert not page.locator(".st-key-ranked_wide").is_visible()
            page.screenshot(path=shots / "tasking_phone.png", full_page=True)
            assert narrow.evaluate(_TABLE_OVERFLOW_JS) == 0
        finally:
            browser.close()
            SHOTS.mkdir(exist_ok=True)
            for f in shots.glob("*.png"):
                shutil.copy(f, SHOTS / f.name)
