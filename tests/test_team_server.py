"""A team on one server store: two real app instances (two `streamlit run serve.py`
processes) pointed at one PostgreSQL database (HOTSPOTS_STORE) each see the decisions
recorded in the other, in a real browser."""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

import pytest

from hotspots.cli import _synthetic_exports, main

from .conftest import SHARED, check_page, open_page, run_app

pytestmark = pytest.mark.slow
POLICE = sorted((SHARED / "policeuk").glob("*metropolitan-street_tower-hamlets_burglary-only.csv"))


def _record(page, url: str, actions: str) -> None:
    """Open the Tasking page of the instance at ``url`` and record a decision."""
    page.goto(f"{url}/tasking")
    check_page(page, "Record a decision")
    page.get_by_label("Actions").fill(actions)
    page.get_by_role("button", name="Record decision").click()
    # the success message itself ("Decision 3 recorded."), not the meeting's caption
    # ("... 1 decision(s) recorded."), which is there before the click has been handled
    said = re.compile(r"^Decision \d+ recorded\.$")
    done = page.get_by_text(said).or_(page.locator('[data-testid="stAlertContentError"]'))
    done.first.wait_for(timeout=120_000)
    body = page.inner_text("body")
    assert re.search(r"^Decision \d+ recorded\.$", body, re.M), body[-3000:]


def _decisions_seen(page, url: str, *expected: str) -> str:
    """The text of the tables on the Tasking page of the instance at ``url`` (a data
    grid draws on a canvas; its cells are also in the page for screen readers), once the
    ``expected`` texts are there or 30 s have passed."""
    page.goto(f"{url}/tasking")
    check_page(page, "Record a decision")
    # the meeting's decisions: the caption comes before its table is drawn
    page.get_by_text(re.compile(r"Meeting of .*: [1-9]\d* decision")).first.wait_for()
    tables = page.locator('[data-testid="stDataFrame"]')
    for _ in range(60):
        text = " ".join(t.text_content() or "" for t in tables.all())
        if all(e in text for e in expected):
            break
        page.wait_for_timeout(500)
    return text


def test_two_app_instances_on_one_server_see_each_others_decisions(pg_url, cache,
                                                                   tmp_path):
    if shutil.which("chromium") is None:
        pytest.skip("needs Debian chromium (installed by .ci/setup)")
    pytest.importorskip("playwright.sync_api")
    from playwright.sync_api import sync_playwright

    # police.uk burglary and the synthetic council exports (their hotspots make places)
    assert main(["--geodata", str(cache), "synth", "--out", str(tmp_path / "synth"), "--n",
                 "6000", "--json"]) == 0
    assert main(["--geodata", str(cache), "ingest", *map(str, POLICE[-4:]), "--store",
                 pg_url, "--json"]) == 0
    for export, mapping in _synthetic_exports(tmp_path / "synth"):
        assert main(["--geodata", str(cache), "ingest", str(export), "--mapping",
                     str(mapping), "--store", pg_url, "--json"]) == 0
    env = dict(os.environ, HOTSPOTS_STORE=pg_url, HOTSPOTS_GEODATA=str(cache),
               HOTSPOTS_LOCAL="1")
    env.pop("HOTSPOTS_TEST_ROLE", None)
    with run_app(env, tmp_path / "a.log") as url_a, run_app(env, tmp_path / "b.log") as url_b, \
            sync_playwright() as pw:
        assert url_a != url_b
        browser, page, errors = open_page(pw, width=1280, height=900)
        try:
            page.set_default_timeout(180_000)
            _record(page, url_a, "Instance A: patrol the estate")
            assert "Instance A: patrol the estate" in _decisions_seen(
                page, url_b, "Instance A: patrol the estate")
            _record(page, url_b, "Instance B: letters to residents")
            seen = _decisions_seen(page, url_a, "Instance A: patrol the estate",
                                   "Instance B: letters to residents")
            assert "Instance A: patrol the estate" in seen
            assert "Instance B: letters to residents" in seen
            assert not errors, errors
        finally:
            browser.close()
    assert Path(tmp_path / "a.log").exists()
