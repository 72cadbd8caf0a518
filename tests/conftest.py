"""Shared fixtures: the real open data installed once per session into a temporary cache."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from hotspots import geography
from hotspots.config import load_config

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("HOTSPOTS_GEODATA_FROM", ROOT.parent / "shared" / "geodata"))
MANIFEST = ROOT / "geodata" / "manifest.toml"


@pytest.fixture(scope="session")
def cache(tmp_path_factory) -> Path:
    if not SHARED.is_dir():
        pytest.fail(f"the open data folder {SHARED} is missing; set HOTSPOTS_GEODATA_FROM")
    dest = tmp_path_factory.mktemp("geodata")
    geography.install_geodata(MANIFEST, source_dir=SHARED, cache=dest)
    return dest


@pytest.fixture(scope="session")
def config():
    return load_config()


@pytest.fixture(scope="session")
def layers(cache, config):
    return geography.read_layers(config, cache=cache)


@pytest.fixture(scope="session")
def area(layers, config):
    return geography.study_area(layers, config)


@pytest.fixture(autouse=True)
def _run_from_root(monkeypatch):
    """The default configuration names its manifest relative to the repository root."""
    monkeypatch.chdir(ROOT)


#: Headless Chromium on this machine: no sandbox as root, no background network calls.
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic",
                 "--disable-background-networking", "--disable-component-update",
                 "--disable-sync"]


def open_page(pw, *, width: int, height: int):
    """Debian chromium, one page, and the list its script and console errors go to
    (failed resource loads are left out: they are map tiles, and there is no network)."""
    import shutil

    browser = pw.chromium.launch(executable_path=shutil.which("chromium"), args=CHROMIUM_ARGS)
    page = browser.new_page(viewport={"width": width, "height": height})
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.on("console", lambda m: errors.append(m.text) if m.type == "error"
            and "Failed to load resource" not in m.text else None)
    return browser, page, errors


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def run_app(env: dict, log_path: Path, *, cwd: Path = ROOT, port: int | None = None):
    """``streamlit run serve.py`` (the app, with the session cookie's route) on 127.0.0.1
    with ``env``; yields its URL once its health check answers, and stops it afterwards.
    ``cwd`` decides which ``.streamlit/`` folder (config and secrets) Streamlit reads."""
    port = port or free_port()
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "streamlit", "run", str(ROOT / "serve.py"),
             "--server.port", str(port), "--server.address", "127.0.0.1",
             "--server.headless", "true", "--browser.gatherUsageStats", "false",
             "--server.fileWatcherType", "none"],
            cwd=cwd, env=env, stdout=log, stderr=subprocess.STDOUT)
        try:
            url = f"http://127.0.0.1:{port}"
            deadline = time.monotonic() + 60
            while True:
                try:
                    with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as r:
                        if r.status == 200:
                            break
                except OSError:
                    pass
                if time.monotonic() > deadline or proc.poll() is not None:
                    pytest.fail("the app did not start: "
                                + log_path.read_text(errors="replace")[-2000:])
                time.sleep(0.3)
            yield url
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


#: True once Streamlit's "Running..." widget has been absent for a full second: the
#: widget comes and goes between the reruns of one sign-in or page switch (st.switch_page,
#: st.rerun), so its first absence does not mean the script has finished.
_SETTLED_JS = """() => {
  const now = performance.now();
  if (document.querySelector('[data-testid="stStatusWidget"]')) { window.__busyAt = now; }
  if (window.__busyAt === undefined) { window.__busyAt = now; }
  return now - window.__busyAt > 1000;
}"""


def check_page(page, text: str, *, not_found_ok: bool = False) -> None:
    """Wait for ``text``, then for the app's script to finish (not "networkidle":
    Streamlit's websocket and the map tiles' failed requests keep the network busy); then
    no error box, traceback or (unless ``not_found_ok``: a link to a page the role may not
    open) "Page not found" is on the page."""
    page.get_by_text(text, exact=False).first.wait_for(timeout=120_000)
    page.evaluate("() => { window.__busyAt = undefined; }")
    page.wait_for_function(_SETTLED_JS, timeout=120_000)
    assert page.locator('[data-testid="stException"]').count() == 0
    body = page.inner_text("body")
    assert "Traceback" not in body and (not_found_ok or "Page not found" not in body)
