"""Other areas, end to end, each set up by `hotspots area init`: the City of London (its 6
LSOAs from city_of_london_lsoa21.geojson, LSOA only), Camden (from london_lsoa21.gpkg by
name, with the London burglary year) and all of London (one month of London burglary, to
keep the suite fast: London-scale speed is bench/bench_london.py's). Each goes through
ingest, summarise (every layer, with rates where residents are known), detect, pack and
every app page (AppTest; the City also loads the Data page's synthetic data); Camden
also in a real browser. The default configuration refuses each area's store on every
page and command. And nothing in the package names the
default area outside its configuration."""

from __future__ import annotations

import contextlib
import io
import json
import os
import re
from pathlib import Path

import geopandas as gpd
import pytest
from streamlit.testing.v1 import AppTest

from hotspots.cli import main

from .conftest import ROOT, SHARED, check_page, open_page, run_app

pytestmark = pytest.mark.slow
POLICE = SHARED / "policeuk"
LONDON_YEAR = sorted(POLICE.glob("*-metropolitan-street_london_burglary-only.csv"))
APP = str(ROOT / "streamlit_app.py")
PAGES = ["app_pages/tasking.py", "app_pages/patrol.py", "app_pages/trends.py",
         "app_pages/data.py"]
AREAS = {  # area init arguments, police.uk files, LSOAs, layers
    "city": (["--lsoa", str(SHARED / "city_of_london_lsoa21.geojson"), "--name",
              "City of London", "--code", "E09000001"],
             sorted(POLICE.glob("2024-0[78]-city-of-london-street.csv")), 6, ["lsoa"]),
    "camden": (["--borough", "Camden"], LONDON_YEAR, 130, ["lsoa", "msoa"]),
    "london": (["--borough", "all"], LONDON_YEAR[-1:], 4994, ["lsoa", "msoa", "borough"]),
}


def run(capsys, *argv):
    code = main(list(argv))
    out = capsys.readouterr()
    return code, out.out, out.err


@pytest.fixture(scope="module")
def local_cache(tmp_path_factory, cache):
    """The open data, linked into a cache of the module's own (area init installs its
    files into it)."""
    root = tmp_path_factory.mktemp("areas_cache")
    for f in cache.rglob("*"):
        if f.is_file():
            (root / f.relative_to(cache)).parent.mkdir(parents=True, exist_ok=True)
            (root / f.relative_to(cache)).symlink_to(f)
    return root


@pytest.fixture(scope="module", params=list(AREAS))
def built(request, tmp_path_factory, local_cache):
    """One area set up and taken through ingest, summarise, detect and pack."""
    key = request.param
    init, files, n_lsoa, layer_keys = AREAS[key]
    root = tmp_path_factory.mktemp(key)
    out = {}
    cfg_dir = root / "area"
    said = io.StringIO()
    with contextlib.redirect_stdout(said):
        code = main(["--geodata", str(local_cache), "area", "init", *init, "--out",
                     str(cfg_dir), "--json"])
    done = json.loads(said.getvalue())
    assert code == 0 and done["counts"]["lsoa"] == n_lsoa
    cfg = Path(done["config"])
    store = root / f"{key}.sqlite"
    base = ["--config", str(cfg), "--geodata", str(local_cache)]
    out.update(key=key, cfg=cfg, store=store, base=base, root=root, n_lsoa=n_lsoa,
               layers=layer_keys, files=files, area=f"{done['name']} ({done['code']})")
    return out


def test_area_init_ingest_summarise_detect_pack(built, capsys):
    base, store, root = built["base"], str(built["store"]), built["root"]
    manifest = built["cfg"].parent / "manifest.toml"
    text = manifest.read_text()
    assert all(re.search(r'sha256 = "[0-9a-f]{64}"', block) for block in
               text.split("[[files]]")[1:])
    code, out, _ = run(capsys, *base, "ingest", *map(str, built["files"]), "--store", store,
                       "--json")
    files = json.loads(out)["files"]
    assert code == 0 and all(f["read"] == f["accepted"] + f["rejected"] for f in files)
    assert sum(f["accepted"] for f in files) > 100
    assert all(f["unassigned"] == 0 for f in files)
    for level in built["layers"]:
        code, out, _ = run(capsys, *base, "summarise", "--store", store, "--level", level,
                           "--out", str(root / "o"), "--json")
        meta = json.loads(out)
        assert code == 0 and meta["total_in_areas"] == meta["incidents"] > 0
        table = gpd.pd.read_csv(root / "o" / f"areas_{level}_{meta['period']}.csv")
        if level == "lsoa":
            assert len(table) == built["n_lsoa"]
        if built["key"] != "city":  # residents known: exact, layers built from LSOAs
            assert "exact" in meta["population"] and table["per_1000_residents"].notna().all()
    code, out, _ = run(capsys, *base, "summarise", "--store", store, "--out",
                       str(root / "o"))
    assert "ward" not in out.lower() and out.startswith("LSOA summary")
    code, out, _ = run(capsys, *base, "detect", "--store", store, "--out", str(root / "o"),
                       "--json")
    assert code == 0 and json.loads(out)["cells"] > 0
    code, out, _ = run(capsys, *base, "pack", "--store", store, "--out", str(root / "o"),
                       "--units", "lsoa", "--json")
    assert code == 0 and Path(json.loads(out)["files"]["html"]).exists()
    built["ingested"] = True


def _env(built, **more):
    return {"HOTSPOTS_CONFIG": str(built["cfg"]), "HOTSPOTS_STORE": str(built["store"]),
            "HOTSPOTS_GEODATA": built["base"][3], "HOTSPOTS_LOCAL": "1", **more}


def test_every_app_page_on_the_area(built, monkeypatch):
    if not built.get("ingested"):
        pytest.skip("the area's store was not built")
    for k, v in _env(built).items():
        monkeypatch.setenv(k, v)
    at = AppTest.from_file(APP, default_timeout=180)
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    label = "LSOAs" if built["key"] == "city" else ("MSOAs" if built["key"] == "camden"
                                                     else "Boroughs")
    assert any(m.label == f"{label} (none = all)" for m in at.sidebar.multiselect)
    for page in PAGES:
        at.switch_page(page).run()
        assert not at.exception, (page, [e.value for e in at.exception])
        # no area here is a ward: the page names its layer's areas (the patrol page said
        # "my home ward" and "in the ward" for a borough)
        said = [str(getattr(e, attr, "")) for kind in ("radio", "button", "caption", "info",
                                                         "markdown", "selectbox")
                for e in getattr(at, kind) for attr in ("label", "value")]
        assert not [t for t in said if re.search(r"\bwards?\b", t, re.I)], page
        if page.endswith("patrol.py"):  # police.uk rows only: no time of day, no shift
            assert any("no shift applies" in i.value for i in at.info), [
                i.value for i in at.info]
            # nor does the printed header or the caption name one
            assert any("· no shift (no times of day) ·" in m.value for m in at.markdown)
            assert not [c.value for c in at.caption if "on the shift first" in c.value]
        if page.endswith("data.py") and built["key"] == "city":  # synthetic data here too
            def count():
                return int(next(m for m in at.metric if m.label == "Incidents").value
                           .replace(",", ""))
            before = count()
            low = at.number_input(key="synth_n")
            low.set_value(low.min).run()  # the smallest the page offers is generated
            at.button(key="synth").click().run()
            assert not at.exception, [e.value for e in at.exception]
            assert count() > before + low.min // 2
        if page.endswith("trends.py"):  # rates where residents are known, else n/a
            rates = [d.value for d in at.dataframe if "per_1000_residents" in d.value.columns]
            assert bool(rates) == (built["key"] != "city")
            if rates:
                r = rates[0]
                assert (r.loc[~(r["residents"] > 0), "per_1000_residents"] == "n/a").all()
                assert not r["per_1000_residents"].str.contains("inf").any()


def test_the_app_refuses_a_store_of_another_area(built, monkeypatch, tmp_path):
    if not built.get("ingested"):
        pytest.skip("the area's store was not built")
    other = ROOT / "hotspots" / "data" / "tower_hamlets.toml"
    for k, v in _env(built, HOTSPOTS_CONFIG=str(other)).items():
        monkeypatch.setenv(k, v)
    at = AppTest.from_file(APP, default_timeout=120)
    at.run()
    assert not at.exception
    refused = f"was built for {built['area']}"
    assert any(refused in e.value and "Give the store's configuration" in e.value
               for e in at.error)
    for page in PAGES:  # every page, not only the first
        at.switch_page(page).run()
        assert not at.exception and any(refused in e.value for e in at.error), page
    for cmd in (["summarise", "--out", str(tmp_path)], ["detect", "--out", str(tmp_path)],
                ["export", "--out", str(tmp_path / "x.gpkg")], ["task", "list"]):
        code = main(["--config", str(other), "--geodata", built["base"][3], *cmd,
                     "--store", str(built["store"])])
        assert code == 1, cmd


def test_camden_in_a_real_browser(built, tmp_path):
    if built["key"] != "camden" or not built.get("ingested"):
        pytest.skip("one area in the browser: Camden")
    pytest.importorskip("playwright.sync_api")
    from playwright.sync_api import sync_playwright

    env = dict(os.environ, **_env(built))
    env.pop("HOTSPOTS_TEST_ROLE", None)
    with run_app(env, tmp_path / "server.log") as url, sync_playwright() as p:
        browser, page, errors = open_page(p, width=1280, height=900)
        try:
            page.set_default_timeout(180_000)
            page.goto(f"{url}/trends")
            check_page(page, "Before and after")
            assert "Camden" in page.inner_text("body")
            page.goto(f"{url}/patrol")
            check_page(page, "Patrol map")
            assert not errors, errors
        finally:
            browser.close()


#: The default area's name (any spelling), code, and its wards' and LSOAs' names and codes.
def _default_area_words(cache: Path) -> list[str]:
    words = {"Tower Hamlets", "E09000030"}
    for name, cols in (("tower_hamlets_wards_2022.geojson", ("wardcode", "name")),
                       ("tower_hamlets_lsoa21.geojson", ("LSOA21CD",))):
        frame = gpd.read_file(cache / name, ignore_geometry=True)
        for c in cols:
            words.update(frame[c].astype(str))
    return sorted(words)


def test_no_default_area_name_or_code_outside_its_configuration(cache):
    words = _default_area_words(cache)
    pattern = re.compile("|".join(re.escape(w).replace(r"\ ", r"[\s_-]?") for w in words),
                         re.IGNORECASE)
    allowed = {ROOT / "hotspots" / "data" / "tower_hamlets.toml"}
    found = []
    files = [p for p in [*(ROOT / "hotspots").rglob("*"), *(ROOT / "app_pages").rglob("*"),
                         ROOT / "streamlit_app.py", ROOT / "serve.py"]
             if p.is_file() and "__pycache__" not in p.parts and p not in allowed]
    assert len(files) > 60  # every file of the package: code, assets, anything left over
    for path in files:
        for i, line in enumerate(path.read_text("utf-8").splitlines(), start=1):
            # the default configuration is named by its file: that is the one reference
            line = line.replace('"tower_hamlets.toml"', "")
            if pattern.search(line):
                found.append(f"{path.relative_to(ROOT)}:{i}: {line.strip()}")
    assert not found, "\n".join(found)
