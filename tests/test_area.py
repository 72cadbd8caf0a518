"""Settings resolution and the store's area: a store built for one area is refused, with
both areas named, when it is opened with another area's configuration."""

import json
import re
import shutil
from pathlib import Path

import pandas as pd
import pytest

from hotspots.cli import main
from hotspots.config import resolve_settings

from .conftest import ROOT, SHARED

BURGLARY = sorted((SHARED / "policeuk").glob(
    "2024-0[78]-metropolitan-street_tower-hamlets_burglary-only.csv"))


def run(capsys, *argv):
    code = main(list(argv))
    out = capsys.readouterr()
    return code, out.out, out.err


def test_settings_flag_then_environment_then_default():
    env = {"HOTSPOTS_CONFIG": "env.toml", "HOTSPOTS_STORE": "env.sqlite"}
    s = resolve_settings(store="flag.sqlite", environ=env)
    assert (s.config, s.store, s.geodata) == ("env.toml", "flag.sqlite",
                                              Path("geodata/cache"))
    assert s.chosen_by == {"config": "HOTSPOTS_CONFIG", "store": "flag", "geodata": "default"}
    s = resolve_settings(environ={"HOTSPOTS_STORE": ""})  # empty counts as not given
    assert s.config is None and s.store == "data/hotspots.sqlite"
    assert set(s.chosen_by.values()) == {"default"}


def other_area(tmp_path: Path, name: str = "Elsewhere", code: str = "E09000999") -> Path:
    """The packaged configuration under another area's name and code."""
    text = (ROOT / "hotspots" / "data" / "tower_hamlets.toml").read_text()
    text = re.sub(r'(?m)^name = .*$', f'name = "{name}"', text, count=1)
    text = re.sub(r'(?m)^code = .*$', f'code = "{code}"', text, count=1)
    text = re.sub(r'(?m)^manifest = .*$',
                  f'manifest = "{ROOT / "geodata" / "manifest.toml"}"', text, count=1)
    cfg = tmp_path / f"{code}.toml"
    cfg.write_text(text)
    return cfg


def test_a_store_of_another_area_is_refused(tmp_path, capsys, cache, monkeypatch):
    store = str(tmp_path / "s.sqlite")
    code, _, _ = run(capsys, "--geodata", str(cache), "ingest", *map(str, BURGLARY),
                     "--store", store)
    assert code == 0
    cfg = other_area(tmp_path)
    for cmd in ("summarise", "detect", "pack"):
        code, out, err = run(capsys, "--config", str(cfg), "--geodata", str(cache), cmd,
                             "--store", store, "--out", str(tmp_path / "o"))
        assert code == 1 and out == "", cmd
        assert "was built for Tower Hamlets (E09000030)" in err
        assert "configuration in use is Elsewhere (E09000999)" in err
        assert "--config FILE (or HOTSPOTS_CONFIG)" in err
    # HOTSPOTS_CONFIG is read by the CLI as --config is; loading into it is refused too
    monkeypatch.setenv("HOTSPOTS_CONFIG", str(cfg))
    code, _, err = run(capsys, "--geodata", str(cache), "ingest", str(BURGLARY[0]),
                       "--store", store)
    assert code == 1 and "was built for Tower Hamlets" in err
    monkeypatch.delenv("HOTSPOTS_CONFIG")
    code, out, _ = run(capsys, "--geodata", str(cache), "summarise", "--store", store,
                       "--out", str(tmp_path / "o"), "--json")
    assert code == 0 and json.loads(out)["incidents"] > 0


def test_a_store_built_with_other_boundary_files_is_refused(tmp_path, capsys, cache):
    store = str(tmp_path / "s.sqlite")
    assert run(capsys, "--geodata", str(cache), "ingest", str(BURGLARY[0]), "--store",
               store)[0] == 0
    moved = tmp_path / "cache"
    shutil.copytree(cache, moved, ignore=shutil.ignore_patterns("policeuk", "*.gpkg"))
    lsoa = moved / "tower_hamlets_lsoa21.geojson"
    lsoa.write_bytes(lsoa.read_bytes() + b"\n")
    code, _, err = run(capsys, "--geodata", str(moved), "summarise", "--store", store)
    assert code == 1
    assert "was built with other boundary files: layer 'lsoa' was " \
        "tower_hamlets_lsoa21.geojson" in err and "new store" in err


@pytest.mark.parametrize("variable", ["HOTSPOTS_STORE", "HOTSPOTS_GEODATA"])
def test_cli_reads_the_environment(variable, tmp_path, capsys, cache, monkeypatch):
    store = tmp_path / "env.sqlite"
    monkeypatch.setenv("HOTSPOTS_STORE", str(store))
    monkeypatch.setenv("HOTSPOTS_GEODATA", str(cache))
    argv = ["ingest", str(BURGLARY[0]), "--json"]
    if variable == "HOTSPOTS_STORE":
        argv = ["--geodata", str(cache), *argv]
    code, out, _ = run(capsys, *argv)
    assert code == 0 and json.loads(out)["store"] == str(store)


CITY_TOML = """
[study_area]
name = "City of London"
code = "E09000001"
manifest = "{manifest}"
[layers.lsoa]
file = "city_of_london_lsoa21.geojson"
code = "lsoa21cd"
name = "lsoa21nm"
[categories]
asb = {{ label = "ASB", weight = 1 }}
theft = {{ label = "Theft", weight = 2 }}
[police_uk_types]
"Anti-social behaviour" = "asb"
"Other theft" = "theft"
"""


def test_an_lsoa_only_area_says_lsoa_everywhere(tmp_path, capsys, cache):
    """City of London with its 6 LSOAs and nothing else: no ward layer is needed, and no
    output speaks of wards."""
    cfg = tmp_path / "city.toml"
    cfg.write_text(CITY_TOML.format(manifest=ROOT / "geodata" / "manifest.toml"))
    store = str(tmp_path / "city.sqlite")
    base = ["--config", str(cfg), "--geodata", str(cache)]
    months = sorted((SHARED / "policeuk").glob("2024-0[78]-city-of-london-street.csv"))
    code, out, _ = run(capsys, *base, "ingest", *map(str, months), "--store", store, "--json")
    files = json.loads(out)["files"]
    assert code == 0 and all(f["unassigned"] == 0 and f["accepted"] > 100 for f in files)
    code, out, _ = run(capsys, *base, "summarise", "--store", store, "--out",
                       str(tmp_path / "o"))
    assert code == 0 and out.startswith("LSOA summary for 2024-08") and "ward" not in \
        out.lower()
    code, _, err = run(capsys, *base, "summarise", "--store", store, "--level", "ward")
    assert code == 1 and "--level ward is not a layer of City of London's configuration; " \
        "use one of lsoa" in err
    html = (tmp_path / "o" / "map_lsoa_2024-08.html").read_text()
    assert "by LSOA" in html and "ward" not in html.lower()


def nested_config(tmp_path: Path, built_from: bool, msoa_file: str) -> Path:
    """The packaged configuration with MSOAs, built from LSOAs or not."""
    text = (ROOT / "hotspots" / "data" / "tower_hamlets.toml").read_text()
    text = re.sub(r'(?m)^manifest = .*$',
                  f'manifest = "{ROOT / "geodata" / "manifest.toml"}"', text, count=1)
    extra = 'built_from = "lsoa"\n' if built_from else ""
    text = text.replace("[assign]", f'[layers.msoa]\nfile = "{msoa_file}"\n'
                        f'code = "MSOA21CD"\nname = "MSOA21NM"\n{extra}\n[assign]')
    cfg = tmp_path / f"nested_{built_from}.toml"
    cfg.write_text(text)
    return cfg


def test_a_layer_built_from_lsoas_follows_them_so_totals_add_up(tmp_path, cache):
    """MSOAs drawn generalised (30 m), as published boundary sets often are: assigned by
    their own points, some incidents fall in an MSOA that does not hold their LSOA;
    declared built from LSOAs, none does, and MSOA totals are sums of LSOA totals."""
    import geopandas as gpd
    import shapely

    from hotspots import geography
    from hotspots.config import load_config
    from hotspots.ingest import read_export, to_incidents

    local = tmp_path / "cache"
    local.mkdir()
    for f in cache.glob("tower_hamlets_*.geojson"):
        (local / f.name).symlink_to(f)
    msoa = gpd.read_file(cache / "tower_hamlets_msoa21.geojson").to_crs(27700)
    msoa.geometry = shapely.coverage_simplify(msoa.geometry.values, 30.0)
    msoa.to_file(local / "msoa_generalised.geojson")
    frame = read_export(BURGLARY[1])
    got = {}
    for built in (False, True):
        config = load_config(nested_config(tmp_path, built, "msoa_generalised.geojson"))
        assert config.layers["msoa"].label == "MSOA"
        layers = geography.read_layers(config, cache=local)
        inc = to_incidents(frame, file="x.csv", config=config, layers=layers,
                           area=geography.study_area(layers, config)).incidents
        codes = geography.layer_codes(inc, layers, config, "msoa")
        holds = geography.nesting(layers["lsoa"], layers["msoa"])
        got[built] = int((holds.reindex(inc["lsoa_code"]).to_numpy() != codes).sum())
        if built:
            by_lsoa = inc.groupby(inc["lsoa_code"].map(holds)).size()
            assert by_lsoa.equals(pd.Series(codes).value_counts().reindex(by_lsoa.index))
    assert got[False] > 0 and got[True] == 0
