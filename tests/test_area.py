"""Settings resolution and the store's area: a store built for one area is refused, with
both areas named, when it is opened with another area's configuration."""

import json
import re
import shutil
from pathlib import Path

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
    assert (s.config, s.store, s.geodata) == ("env.toml", Path("flag.sqlite"),
                                              Path("geodata/cache"))
    assert s.chosen_by == {"config": "HOTSPOTS_CONFIG", "store": "flag", "geodata": "default"}
    s = resolve_settings(environ={"HOTSPOTS_STORE": ""})  # empty counts as not given
    assert s.config is None and s.store == Path("data/hotspots.sqlite")
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
