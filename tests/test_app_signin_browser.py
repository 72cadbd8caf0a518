"""The password sign-in in headless Chromium, served by ``streamlit run serve.py`` from a
folder whose secrets file was written by ``hotspots user add``: a refresh keeps the user
signed in (the HttpOnly, SameSite=Strict session cookie), a changed, foreign or expired
cookie does not, "Sign out" deletes it, and wrong passwords get throttled. Screenshots go
to /tmp/app_shots/signin_*.png."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
import tomllib
from pathlib import Path

import pytest

from hotspots import auth

from .conftest import CHROMIUM_ARGS, check_page, run_app

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = "/usr/bin/chromium"
SHOTS = Path("/tmp/app_shots")
SIGNED_IN = "Signed in: pat (officer)"
COOKIE = "hotspots_session"

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def app(tmp_path_factory, cache):
    """The app with one password user (pat, officer) and no store; yields (URL, root,
    the session secret)."""
    if not Path(CHROMIUM).exists():
        pytest.skip(f"{CHROMIUM} is not installed")
    pytest.importorskip("playwright.sync_api")
    root = tmp_path_factory.mktemp("signin_app")
    site = root / "site"
    (site / ".streamlit").mkdir(parents=True)
    shutil.copy(ROOT / ".streamlit" / "config.toml", site / ".streamlit" / "config.toml")
    secrets_file = site / ".streamlit" / "secrets.toml"
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    done = subprocess.run([sys.executable, "-m", "hotspots.cli", "user", "add", "pat", "--role",
                           "officer", "--secrets", str(secrets_file), "--password-stdin"],
                          input="correct horse\n", text=True, capture_output=True, env=env,
                          cwd=root)
    assert done.returncode == 0, done.stderr
    assert "correct horse" not in done.stdout + done.stderr
    with secrets_file.open("a") as f:  # [signin] is the file's last table
        f.write("first_delay_seconds = 30\n")
    secret = tomllib.loads(secrets_file.read_text())["signin"]["secret"]
    env.update(HOTSPOTS_STORE=str(root / "none.sqlite"), HOTSPOTS_GEODATA=str(cache))
    for key in ("HOTSPOTS_LOCAL", "HOTSPOTS_TEST_ROLE"):
        env.pop(key, None)
    with run_app(env, root / "server.log", cwd=site) as url:
        yield url, root, secret


def _session_cookie(ctx) -> dict | None:
    """The session cookie, waiting up to 15 s for the page's request that sets it."""
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        found = [c for c in ctx.cookies() if c["name"] == COOKIE]
        if found:
            return found[0]
        time.sleep(0.2)
    return None


def _sign_in(page, user: str, password: str, expect: str) -> None:
    page.get_by_label("User name").fill(user)
    page.get_by_label("Password", exact=True).fill(password)
    page.get_by_role("button", name="Sign in").click()
    check_page(page, expect)


def test_refresh_keeps_a_password_user_signed_in(app):
    from playwright.sync_api import sync_playwright

    url, root, secret = app
    shots = root / "shots"
    shots.mkdir()
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            def context(width=1280, height=900):
                ctx = browser.new_context(viewport={"width": width, "height": height})
                ctx.set_default_timeout(60_000)
                return ctx, ctx.new_page()

            def cookie_for(ctx, value: str) -> None:
                ctx.add_cookies([{"name": COOKIE, "value": value, "url": url,
                                  "httpOnly": True, "sameSite": "Strict"}])

            ctx, page = context()
            page.goto(url)
            check_page(page, "hotspots: sign in")
            page.screenshot(path=shots / "signin_form.png", full_page=True)
            _sign_in(page, "pat", "correct horse", SIGNED_IN)
            cookie = _session_cookie(ctx)
            assert cookie is not None, (root / "server.log").read_text()[-2000:]
            assert cookie["httpOnly"] and cookie["sameSite"] == "Strict"
            assert abs(cookie["expires"] - (time.time() + 12 * 3600)) < 120
            assert COOKIE not in page.evaluate("document.cookie")  # no script can read it
            assert auth.read_token(cookie["value"], secret)["u"] == "pat"

            page.reload()  # a refresh: a new Streamlit session, signed in by the cookie
            check_page(page, SIGNED_IN)
            assert page.get_by_label("Password", exact=True).count() == 0
            page.screenshot(path=shots / "signin_after_refresh.png", full_page=True)
            other = ctx.new_page()  # another tab of the same browser
            other.goto(url)
            check_page(other, SIGNED_IN)
            other.close()

            # a cookie changed to name another user, one signed with another secret, and
            # an expired one: each ignored; a good one made with the secret works
            body, sig = cookie["value"].split(".")
            changed = auth._b64(auth._unb64(body).replace(b'"pat"', b'"sam"')) + "." + sig
            for value in (changed, auth.make_token("pat", "f" * 64, 12),
                          auth.make_token("pat", secret, -0.01), cookie["value"]):
                c2, p2 = context()
                cookie_for(c2, value)
                p2.goto(url)
                check_page(p2, SIGNED_IN if value == cookie["value"] else "hotspots: sign in")
                if value != cookie["value"]:
                    assert "Signed in" not in p2.inner_text("body")
                c2.close()

            # sign out: the cookie is deleted and the session id revoked
            page.locator('[data-testid="stSidebar"]').get_by_role(
                "button", name="Sign out").click()
            check_page(page, "hotspots: sign in")
            deadline = time.monotonic() + 15
            while any(c["name"] == COOKIE for c in ctx.cookies()):
                assert time.monotonic() < deadline, "the cookie was not deleted"
                time.sleep(0.2)
            page.reload()
            check_page(page, "hotspots: sign in")
            assert "Signed in" not in page.inner_text("body")
            c2, p2 = context()  # the old cookie, kept by someone: its session was revoked
            cookie_for(c2, cookie["value"])
            p2.goto(url)
            check_page(p2, "hotspots: sign in")
            c2.close()
            ctx.close()

            # wrong passwords, on a phone: three "not recognised", then a wait, even for
            # the right password
            ctx, page = context(375, 812)
            page.goto(url)
            check_page(page, "hotspots: sign in")
            for _ in range(3):
                _sign_in(page, "pat", "guess", "not recognised")
            _sign_in(page, "pat", "correct horse", "Too many failed sign-ins")
            body = page.inner_text("body")
            wait = re.search(r"Try again in (\d+) seconds \(at \d\d:\d\d:\d\d\)", body)
            assert wait and 15 <= int(wait[1]) <= 30, body  # 30 s from the third failure
            assert "Signed in" not in body
            page.screenshot(path=shots / "signin_throttled_phone.png", full_page=True)
            ctx.close()
        finally:
            browser.close()
            SHOTS.mkdir(exist_ok=True)
            for f in shots.glob("*.png"):
                shutil.copy(f, SHOTS / f.name)
    log = (root / "server.log").read_text()
    assert "throttled" in log and "correct horse" not in log
