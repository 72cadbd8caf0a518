"""The app served by `streamlit run` on 127.0.0.1 and opened in headless Chromium: every
page at desktop (1280 x 900) and phone (375 x 812) size shows its key text and no error
box or traceback; a bad upload gives a message, not a crash. Screenshots go to the test's
temporary folder and are copied to /tmp/app_shots/ for a person to look at."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from hotspots.cli import main

from .conftest import CHROMIUM_ARGS, run_app

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = "/usr/bin/chromium"
PAGES = {"tasking": "Ranked places", "patrol": "Numbers on the map match",
         "trends": "Before and after", "data": "Store status"}
SIZES = {"desktop": (1280, 900), "phone": (375, 812)}
SHOTS = Path("/tmp/app_shots")

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def server(tmp_path_factory, cache):
    if not Path(CHROMIUM).exists():
        pytest.skip(f"{CHROMIUM} is not installed")
    pytest.importorskip("playwright.sync_api")
    root = tmp_path_factory.mktemp("browser")
    assert main(["--geodata", str(cache), "demo", "--data", str(root / "d"), "--out",
                 str(root / "o"), "--n", "6000", "--json"]) == 0
    env = dict(os.environ, HOTSPOTS_STORE=str(root / "d" / "hotspots.sqlite"),
               HOTSPOTS_GEODATA=str(cache), HOTSPOTS_LOCAL="1")
    env.pop("HOTSPOTS_TEST_ROLE", None)
    with run_app(env, root / "server.log") as url:
        yield url, root


def _check(page, text: str) -> None:
    page.get_by_text(text, exact=False).first.wait_for(timeout=120_000)
    # not "networkidle": Streamlit's websocket and the map tiles' failed requests (no
    # network here) keep the network busy; wait until the script has finished instead
    page.wait_for_function(
        "() => !document.querySelector('[data-testid=\"stStatusWidget\"]')", timeout=120_000)
    assert page.locator('[data-testid="stException"]').count() == 0
    assert "Page not found" not in page.inner_text("body")
    assert "Traceback" not in page.inner_text("body")


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
                    page.goto(f"{url}/{'' if name == 'tasking' else name}")  # first page is /
                    _check(page, text)
                    if name == "patrol":  # the folium map is a component: wait for it
                        page.frame_locator("iframe").first.locator(
                            ".leaflet-container").first.wait_for(timeout=30_000)
                    page.screenshot(path=shots / f"{name}_{size}.png", full_page=True)
                page.close()
            # a file that is not an export: a message per file, the app carries on
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            page.goto(f"{url}/data")
            _check(page, "Store status")
            bad = root / "not-an-export.csv"
            bad.write_bytes(b"\x00\x01garbage;;;\n\xff\xfe")
            page.locator('[data-testid="stFileUploaderDropzoneInput"]').first \
                .set_input_files(str(bad))
            page.get_by_text("not-an-export.csv").first.wait_for(timeout=30_000)
            page.get_by_role("button", name="Load into the store").click()
            page.locator('[data-testid="stAlertContentError"]').first.wait_for(timeout=60_000)
            _check(page, "Store status")
            page.screenshot(path=shots / "data_bad_upload.png", full_page=True)
        finally:
            browser.close()
            SHOTS.mkdir(exist_ok=True)
            for f in shots.glob("*.png"):
                shutil.copy(f, SHOTS / f.name)
    assert len(list(shots.glob("*.png"))) == 2 * len(PAGES) + 1
