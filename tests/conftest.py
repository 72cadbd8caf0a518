"""Shared fixtures: the real open data installed once per session into a temporary cache."""

from __future__ import annotations

import contextlib
import os
import re
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


#: Fixtures that read the open data folder (directly or through another fixture).
REALDATA_FIXTURES = {"cache"}


def _shared_names(module) -> set[str]:
    """Module-level names of a test module whose value comes from the data folder."""
    import ast
    import inspect

    try:
        tree = ast.parse(inspect.getsource(module))
    except (OSError, TypeError):
        return set()
    names = {"SHARED"}
    for node in tree.body:
        if isinstance(node, ast.Assign | ast.AnnAssign) and any(
                isinstance(n, ast.Name) and n.id in names for n in ast.walk(node.value or node)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            names |= {n.id for tg in targets for n in ast.walk(tg) if isinstance(n, ast.Name)}
    return names


#: Rough seconds each long test file takes on one CI worker (2 cores, December 2026; only
#: their order matters). Under xdist the files are handed out longest first, so that no
#: long file is left to start last while the other worker has nothing to do: xdist's own
#: order (files with the most tests first) left the long one-test browser files
#: (test_app_oidc, test_app_signin_browser, test_team_server, ...) to the end, one worker
#: running them for a minute or two after the other had finished. A file not listed
#: counts a fifth of a second a test. Each file's tests keep their order and run on one worker.
FILE_SECONDS = {
    "test_app_browser.py": 220, "test_areas.py": 165, "test_hostile.py": 150,
    "test_bench.py": 120, "test_app.py": 100, "test_app_oidc.py": 100, "test_store.py": 90,
    "test_app_signin_browser.py": 90, "test_cluster.py": 90, "test_pack.py": 85,
    "test_notebooks.py": 65, "test_team_server.py": 60, "test_maps.py": 60,
    "test_detect.py": 45, "test_ranking.py": 40, "test_ingest_fuzz.py": 35, "test_cli.py": 35,
    "test_fresh_machine.py": 35, "test_signin.py": 27, "test_fetch.py": 26,
    "test_assign.py": 25, "test_ingest.py": 20, "test_app_data.py": 19, "test_ons.py": 18,
    "test_meeting_page.py": 15, "test_rank.py": 13, "test_synthetic.py": 12,
    "test_area.py": 11,
}


def pytest_configure(config):
    """Under ``--dist loadfile`` the controller hands the files out in the order the
    workers collected them (see :data:`FILE_SECONDS`), not sorted by number of tests."""
    if getattr(config.option, "dist", "no") in ("loadfile", "loadscope"):
        config.option.loadscopereorder = False


def _longest_files_first(items) -> None:
    """Sort ``items`` by their file's :data:`FILE_SECONDS`, longest first (a stable sort:
    a file's tests stay together and in order; files of equal weight keep theirs)."""
    weight: dict[str, float] = {}
    for item in items:
        path = item.nodeid.split("::", 1)[0]
        weight[path] = weight.get(path, 0.0) + 0.2
    for path in weight:
        weight[path] = FILE_SECONDS.get(path.rsplit("/", 1)[-1], weight[path])
    items.sort(key=lambda item: -weight[item.nodeid.split("::", 1)[0]])


def pytest_collection_modifyitems(config, items):
    """Mark ``realdata`` every test that needs the open data folder: through a fixture
    (``cache`` and those built on it: ``layers``, ``area``, the demo stores) or by naming
    a file in it (``SHARED`` and module names made from it). ``-m "not realdata"`` runs
    the core, which builds what it needs in code."""
    import inspect

    # each module parsed and each function read once (dict.setdefault(key, f()) would
    # call f for every test: that was ~30 s of every worker's collection)
    shared: dict[str, set[str]] = {}
    known: dict[object, bool] = {}

    def reads_data(func) -> bool:
        if func in known:
            return known[func]
        module = inspect.getmodule(func)
        if module is None:
            return False
        if module.__name__ not in shared:
            shared[module.__name__] = _shared_names(module)
        try:
            source = inspect.getsource(func)
        except (OSError, TypeError):
            return False
        known[func] = any(n in source for n in shared[module.__name__])
        return known[func]

    for item in items:
        info = getattr(item, "_fixtureinfo", None)
        defs = [d for ds in (info.name2fixturedefs.values() if info else ()) for d in ds]
        needs = REALDATA_FIXTURES & set(getattr(item, "fixturenames", ())) or any(
            reads_data(d.func) for d in defs)
        func = getattr(item, "function", None)
        params = str(getattr(getattr(item, "callspec", None), "params", ""))
        if needs or (func is not None and reads_data(func)) or str(SHARED) in params:
            item.add_marker(pytest.mark.realdata)
    if hasattr(config, "workerinput"):  # an xdist worker: its order is the hand-out order
        _longest_files_first(items)


@pytest.fixture(scope="session")
def cache(tmp_path_factory) -> Path:
    if not SHARED.is_dir():
        pytest.skip(f"the open data folder {SHARED} is missing (set HOTSPOTS_GEODATA_FROM); "
                    "tests marked realdata need it")
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


def _tree_digest(root: Path) -> str:
    import hashlib

    digest = hashlib.sha256()
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        digest.update(str(path.relative_to(root)).encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()


@pytest.fixture(scope="session")
def demo_build(tmp_path_factory, cache) -> Path:
    """``hotspots demo --n 6000`` (the police.uk rows and 6,000 synthetic council
    incidents): its data folder ``d/`` (the store) and outputs ``o/``, built once per
    worker (about 20 s; six test files used to build it each). Never written to: a module
    takes a copy of its own with :func:`copy_demo`, so decisions, loads and packs one
    module writes are never seen by another. The session checks at the end that nothing
    changed it."""
    from hotspots.cli import main

    root = tmp_path_factory.mktemp("demo_build")
    assert main(["--geodata", str(cache), "demo", "--data", str(root / "d"), "--out",
                 str(root / "o"), "--n", "6000", "--json"]) == 0
    before = _tree_digest(root)
    yield root
    assert _tree_digest(root) == before, "a test wrote to the shared demo build"


def copy_demo(demo_build: Path, root: Path) -> Path:
    """A copy of the demo's ``d/`` (store, synthetic exports) and ``o/`` under ``root``:
    the folders a module's own ``hotspots demo --data root/d --out root/o`` would write."""
    import shutil

    for part in ("d", "o"):
        shutil.copytree(demo_build / part, root / part)
    return root


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


# -- a real PostgreSQL + PostGIS server for the store's second backend ------------------


def _pg_bin() -> Path:
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"),
                   key=lambda p: int(p.parts[-3]) if p.parts[-3].isdigit() else 0)
    if not found:
        pytest.fail("PostgreSQL is not installed (no /usr/lib/postgresql/*/bin/initdb); "
                    "run .ci/setup, which installs the Debian packages postgresql and postgis")
    return found[-1].parent


@pytest.fixture(scope="session")
def pg_server():
    """A PostgreSQL server on 127.0.0.1 and a free port, its data in a temporary folder,
    with a template database that has PostGIS; yields the server's base URL. Fails (never
    skips) when the server cannot be started. As root, the server runs as the
    ``postgres`` user (postgres refuses to run as root)."""
    import shutil
    import tempfile

    import psycopg

    bindir = _pg_bin()
    # not under pytest's temporary folder: the postgres user cannot enter root's
    root = Path(tempfile.mkdtemp(prefix="hotspots-pg-"))
    data, sock = root / "data", root / "sock"
    sock.mkdir()
    as_user: list[str] = []
    if os.geteuid() == 0:
        shutil.chown(root, "postgres")
        shutil.chown(sock, "postgres")
        as_user = ["runuser", "-u", "postgres", "--"]
    port = free_port()

    def run(*cmd):
        got = subprocess.run([*as_user, *map(str, cmd)], capture_output=True, text=True,
                             timeout=120)
        if got.returncode:
            pytest.fail(f"PostgreSQL test server: {' '.join(map(str, cmd))} failed:\n"
                        f"{got.stdout[-2000:]}\n{got.stderr[-2000:]}")

    run(bindir / "initdb", "-D", data, "-U", "postgres", "--auth=trust", "-E", "UTF8",
        "--locale=C.UTF-8")
    run(bindir / "pg_ctl", "-D", data, "-l", root / "log", "-w", "-t", "60", "-o",
        f"-p {port} -k {sock} -c listen_addresses=127.0.0.1 -c fsync=off "
        "-c max_connections=50", "start")
    url = f"postgresql://postgres@127.0.0.1:{port}"
    try:
        with psycopg.connect(f"{url}/postgres", autocommit=True) as conn:
            conn.execute("CREATE DATABASE hotspots_template")
        with psycopg.connect(f"{url}/hotspots_template", autocommit=True) as conn:
            conn.execute("CREATE EXTENSION postgis")
        yield url
    finally:
        run(bindir / "pg_ctl", "-D", data, "-m", "fast", "-w", "stop")
        shutil.rmtree(root, ignore_errors=True)


_PG_DBS = iter(range(1, 10**6))


@pytest.fixture
def pg_url(pg_server) -> str:
    """A new, empty database with PostGIS on the test server, as a store URL."""
    import psycopg

    name = f"store_{os.getpid()}_{next(_PG_DBS)}"
    with psycopg.connect(f"{pg_server}/postgres", autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name} TEMPLATE hotspots_template")
    return f"{pg_server}/{name}"


@pytest.fixture(params=["sqlite", "postgresql"])
def store_target(request, tmp_path) -> str:
    """Each store backend in turn: a new SQLite file, then a new PostgreSQL database."""
    if request.param == "sqlite":
        return str(tmp_path / "sub" / "store.sqlite")
    return request.getfixturevalue("pg_url")
#: Script and formula payloads for hostile-content tests. Each script payload, if it ran,
#: would call alert/confirm/prompt or leave an element with an event handler attribute.
XSS_PAYLOADS = ("<script>alert(1)</script>", "<img src=x onerror=alert(2)>",
                "\"><svg onload=alert(3)>", "javascript:alert(4)",
                "<a href=\"javascript:alert(5)\">link</a>",
                "'><iframe src=\"javascript:confirm(6)\"></iframe>",
                "</textarea></title><img src=x onerror=prompt(7)>",
                # with Jinja: branca compiles what map elements write as a template
                "${alert(8)}{{9*9}}{% if %}{#`<details open ontoggle=alert(9)>")
FORMULA_PAYLOADS = ('=HYPERLINK("http://x","click")', "+cmd|' /C calc'!A0", "@SUM(1+1)*cmd",
                    "-2+3", "\t=1+1", "\r=1+1", "\uff1d1+1")

#: Run before any page script in every frame: dialogs are recorded (never shown), and every
#: element added to the document that carries an inline event handler, a javascript: URL
#: (in a URL attribute: a text box may show such text as its value) or a payload's script
#: body is recorded, even when it is removed again.
XSS_HOOK = """(() => {
  window.__xss = [];
  for (const f of ['alert', 'confirm', 'prompt']) {
    window[f] = (...a) => { window.__xss.push(f + '(' + a.join(',') + ')'); };
  }
  const URL_ATTR = /^(href|src|action|formaction|data|xlink:href)$/i;
  const bad = el => el.nodeType === 1 && (
    [...el.attributes].filter(a => /^on/i.test(a.name) || (URL_ATTR.test(a.name)
                                                   && /^\\s*javascript:/i.test(a.value)))
      .map(a => a.name + '=' + a.value).join(' ')
    || (el.tagName === 'SCRIPT' && /^\\s*(alert|confirm|prompt)\\(\\d+\\)\\s*$/.test(el.text)
        && el.text));
  const check = node => {
    if (node.nodeType !== 1) return;
    for (const el of [node, ...node.querySelectorAll('*')]) {
      const what = bad(el);
      if (what) window.__xss.push('element <' + el.tagName + '> ' + what);
    }
  };
  new MutationObserver(ms => ms.forEach(m => {
    m.addedNodes.forEach(check);
    if (m.type === 'attributes') check(m.target);
  })).observe(document, {childList: true, subtree: true, attributes: true});
})();"""

#: Open every tooltip and popup of every Leaflet map in a frame, so that their contents
#: are put into the page (the hook above sees them); returns how many were opened.
OPEN_ALL_JS = """() => {
  if (typeof L === 'undefined') return 0;
  document.querySelectorAll('input.leaflet-control-layers-selector').forEach(box => {
    if (!box.checked) box.click();  // hidden overlays too
  });
  let n = 0;
  for (const m of Object.values(window).filter(v => v instanceof L.Map)) {
    m.eachLayer(layer => {
      const at = layer.getBounds ? layer.getBounds().getCenter()
                                 : layer.getLatLng && layer.getLatLng();
      if (!at || layer.eachLayer) return;
      // as a pointer would: the event reaches the group the tooltip or popup is bound to
      layer.fire('mouseover', {latlng: at}, true);
      layer.fire('click', {latlng: at}, true);
      n++;
    });
  }
  return n;
}"""


def guard_page(page) -> list[str]:
    """Install :data:`XSS_HOOK` on ``page`` (call before ``goto``); returns the list native
    dialogs are recorded in (each is dismissed)."""
    dialogs: list[str] = []

    def on_dialog(d):
        dialogs.append(f"{d.type}: {d.message}")
        d.dismiss()

    page.on("dialog", on_dialog)
    page.add_init_script(XSS_HOOK)
    return dialogs


def xss_findings(page, *, open_maps: bool = True) -> list[str]:
    """What ran or was injected in any frame of ``page``: hooked dialogs, recorded
    elements, and (after opening every map tooltip and popup) any element with an inline
    event handler or a javascript: URL still in the document."""
    from playwright.sync_api import Error

    for attempt in range(3):  # a component that redraws replaces its frames: scan again
        try:
            found = _scan_frames(page, open_maps=open_maps)
        except Error as exc:
            # a frame replaced mid-scan: detached, or its document navigated away
            if not _REPLACED.search(str(exc)) or attempt == 2:
                raise
        else:  # a map being replaced has no marker to open for a moment
            if NOTHING_OPENED not in found or attempt == 2:
                return found
        page.wait_for_timeout(1000)
    raise AssertionError("unreachable")


NOTHING_OPENED = "no map tooltip or popup was opened"
_REPLACED = re.compile(r"detached|Execution context was destroyed")


def _scan_frames(page, *, open_maps: bool) -> list[str]:
    found = []
    opened = sum(frame.evaluate(OPEN_ALL_JS) for frame in page.frames) if open_maps else 0
    if open_maps and not opened:
        found.append(NOTHING_OPENED)
    page.wait_for_timeout(300)
    for frame in page.frames:
        found += frame.evaluate("window.__xss || ['no hook in ' + location.href]")
        found += frame.evaluate("""() => [...document.querySelectorAll('*')].flatMap(el =>
            [...el.attributes].filter(a => /^on/i.test(a.name)
                || (/^(href|src|action|formaction|data|xlink:href)$/i.test(a.name)
                    && /^\\s*javascript:/i.test(a.value)))
            .map(a => 'in document <' + el.tagName + '> ' + a.name + '=' + a.value))""")
    return found
