"""The OIDC sign-in, end to end: Streamlit's ``st.login`` against a real OpenID Connect
provider (``oidc-provider-mock``, a server process on 127.0.0.1), the app served by
``streamlit run`` from a folder whose ``.streamlit/secrets.toml`` has ``[auth]`` and
``[roles]``, and headless Chromium going through the provider's authorize form.

An officer sees the Patrol map only, a chair sees Tasking (the ``[roles]`` key differs in
case from the e-mail), an e-mail not in ``[roles]`` and an e-mail the provider marks as not
verified are refused and see no page. Screenshots go to the test's temporary folder and
are copied to /tmp/app_shots/oidc_*.png."""

from __future__ import annotations

import importlib.util
import json
import os
import re
import secrets
import shutil
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from .conftest import CHROMIUM_ARGS, check_page, copy_demo, free_port, run_app

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = "/usr/bin/chromium"
SHOTS = Path("/tmp/app_shots")
PATROL = "Numbers on the map match"  # key text of the Patrol map page
TASKING = "Ranked places"  # key text of the Tasking page
#: a user the provider knows in advance, whose e-mail it says is not verified
UNVERIFIED = {"sub": "unverified-officer", "email": "officer@example.org",
              "email_verified": False}

pytestmark = pytest.mark.slow


def _wait_http(url: str, proc: subprocess.Popen, log: Path, what: str) -> None:
    deadline = time.monotonic() + 30
    while True:
        try:
            with urllib.request.urlopen(url, timeout=2) as r:
                if r.status == 200:
                    return
        except OSError:
            pass
        if time.monotonic() > deadline or proc.poll() is not None:
            pytest.fail(f"{what} did not start: " + log.read_text(errors="replace")[-2000:])
        time.sleep(0.2)


@pytest.fixture(scope="module")
def provider(tmp_path_factory):
    """The mock OpenID Connect provider on 127.0.0.1; yields its base URL."""
    if importlib.util.find_spec("oidc_provider_mock") is None:  # not imported here: it
        pytest.skip("oidc-provider-mock is not installed")  # warns on import (Authlib)
    root = tmp_path_factory.mktemp("oidc_provider")
    port = free_port()
    log = root / "provider.log"
    with open(log, "wb") as out:
        # a process of its own: Authlib's deprecation warnings stay out of this pytest
        # run (filterwarnings=error) and the provider runs as it would for a deployer
        proc = subprocess.Popen(
            [sys.executable, "-m", "oidc_provider_mock", "--host", "127.0.0.1",
             "--port", str(port), "--user-claims", json.dumps(UNVERIFIED)],
            env=dict(os.environ, NO_COLOR="1"), stdout=out, stderr=subprocess.STDOUT)
        try:
            url = f"http://127.0.0.1:{port}"
            _wait_http(f"{url}/.well-known/openid-configuration", proc, log, "the provider")
            yield url
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


@pytest.fixture(scope="module")
def app(tmp_path_factory, cache, provider, request):
    """The app with OIDC sign-in on a small demo store; yields (URL, folder)."""
    if not Path(CHROMIUM).exists():
        pytest.skip(f"{CHROMIUM} is not installed")
    pytest.importorskip("playwright.sync_api")
    if importlib.util.find_spec("authlib") is None:
        pytest.skip("Authlib (streamlit[auth]) is not installed")
    demo_build = request.getfixturevalue("demo_build")  # once nothing is missing
    root = copy_demo(demo_build, tmp_path_factory.mktemp("oidc_app"))
    port = free_port()
    site = root / "site"
    (site / ".streamlit").mkdir(parents=True)
    shutil.copy(ROOT / ".streamlit" / "config.toml", site / ".streamlit" / "config.toml")
    (site / ".streamlit" / "secrets.toml").write_text(f"""\
[auth]
redirect_uri = "http://127.0.0.1:{port}/oauth2callback"
cookie_secret = "{secrets.token_hex(32)}"
client_id = "hotspots-test"
client_secret = "{secrets.token_hex(16)}"
server_metadata_url = "{provider}/.well-known/openid-configuration"

[roles]
"officer@example.org" = "officer"
"Chair@Example.org" = "chair"
""")
    env = dict(os.environ, HOTSPOTS_STORE=str(root / "d" / "hotspots.sqlite"),
               HOTSPOTS_GEODATA=str(cache))
    env.pop("HOTSPOTS_LOCAL", None)
    env.pop("HOTSPOTS_TEST_ROLE", None)
    with run_app(env, root / "server.log", cwd=site, port=port) as url:
        yield url, root


def _sign_in(page, url: str, provider: str, *, sub: str | None = None,
             predefined: str | None = None) -> None:
    """From the app's sign-in page through the provider's authorize form and back: type
    ``sub`` (the mock gives that user ``email = sub``) or click a ``predefined`` user."""
    page.goto(url)
    check_page(page, "hotspots: sign in")
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(re.compile(re.escape(provider) + r"/oauth2/authorize"))
    if sub is not None:
        page.locator('input[name="sub"]').fill(sub)
        page.get_by_role("button", name="Authorize").click()
    else:
        page.get_by_role("button", name=predefined, exact=True).click()
    page.wait_for_url(lambda u: u.startswith(url) and "oauth2callback" not in u)


def _nav(page) -> list[str]:
    """The page links in the sidebar (the app draws its own: st.page_link)."""
    return [t.strip() for t in page.locator('[data-testid="stPageLink"]').all_inner_texts()]


def test_oidc_sign_in_and_roles(app, provider):
    from playwright.sync_api import sync_playwright

    url, root = app
    shots = root / "shots"
    shots.mkdir()
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            def context():
                ctx = browser.new_context(viewport={"width": 1280, "height": 900})
                ctx.set_default_timeout(60_000)
                return ctx, ctx.new_page()

            # before sign-in: the sign-in page and nothing else
            ctx, page = context()
            page.goto(url)
            check_page(page, "hotspots: sign in")
            body = page.inner_text("body")
            assert PATROL not in body and TASKING not in body and "Signed in" not in body
            assert not _nav(page)
            page.screenshot(path=shots / "oidc_sign_in.png", full_page=True)

            # an officer: the Patrol map only, even when asking for /tasking
            _sign_in(page, url, provider, sub="officer@example.org")
            check_page(page, PATROL)
            page.frame_locator("iframe").first.locator(".leaflet-container").first \
                .wait_for(timeout=30_000)
            sidebar = page.locator('[data-testid="stSidebar"]').inner_text()
            assert "Signed in: officer@example.org (officer)" in sidebar
            assert "Tasking" not in _nav(page) and "Tasking" not in sidebar
            assert page.locator('[data-testid="stSidebar"]').get_by_role(
                "button", name="Sign out").count() == 1
            page.screenshot(path=shots / "oidc_officer.png", full_page=True)
            page.goto(f"{url}/tasking")  # Streamlit: "Page not found", then the main page
            check_page(page, PATROL, not_found_ok=True)
            assert TASKING not in page.inner_text("body")
            page.screenshot(path=shots / "oidc_officer_tasking_url.png", full_page=True)
            ctx.close()

            # an e-mail not in [roles]: refused, no page
            ctx, page = context()
            _sign_in(page, url, provider, sub="stranger@example.org")
            check_page(page, "has no role")
            body = page.inner_text("body")
            assert "stranger@example.org has no role in this app" in body
            assert PATROL not in body and TASKING not in body and not _nav(page)
            assert page.get_by_role("button", name="Sign out").count() == 1
            page.screenshot(path=shots / "oidc_no_role.png", full_page=True)
            ctx.close()

            # the provider says the e-mail is not verified: refused, although it is listed
            ctx, page = context()
            _sign_in(page, url, provider, predefined=UNVERIFIED["sub"])
            check_page(page, "not verified")
            body = page.inner_text("body")
            assert PATROL not in body and TASKING not in body and not _nav(page)
            page.screenshot(path=shots / "oidc_unverified.png", full_page=True)
            ctx.close()

            # a chair (the [roles] key is Chair@Example.org): every page; then signs out
            ctx, page = context()
            _sign_in(page, url, provider, sub="chair@example.org")
            check_page(page, TASKING)
            assert {"Tasking", "Patrol map", "Trends", "Data"} <= set(_nav(page))
            sidebar = page.locator('[data-testid="stSidebar"]').inner_text()
            assert "Signed in: chair@example.org (chair)" in sidebar
            page.screenshot(path=shots / "oidc_chair.png", full_page=True)
            page.locator('[data-testid="stSidebar"]').get_by_role(
                "button", name="Sign out").click()
            # Streamlit sends the browser to the provider's end-session page, then back
            page.wait_for_url(re.compile(re.escape(provider) + r"/oauth2/end_session"))
            page.get_by_role("button", name="End session").click()
            page.wait_for_url(lambda u: u.startswith(url) and "oauth2callback" not in u)
            check_page(page, "hotspots: sign in")
            page.reload()  # the identity cookie is gone, not only this session
            check_page(page, "hotspots: sign in")
            assert TASKING not in page.inner_text("body") and not _nav(page)
            page.screenshot(path=shots / "oidc_signed_out.png", full_page=True)
            ctx.close()
        finally:
            browser.close()
            SHOTS.mkdir(exist_ok=True)
            for f in shots.glob("*.png"):
                shutil.copy(f, SHOTS / f.name)
