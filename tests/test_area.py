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


def test_area_init_from_a_shapefile_with_a_layer_of_its_own(tmp_path, capsys):
    """`area init` from boundaries in other formats GDAL reads (the City's LSOAs as a
    Shapefile, two PSPO zones as FlatGeobuf with named columns), with a population file:
    it says what it wrote, and the zones are a layer like any other: labelled in the
    output, assigned by their own polygons, with rates shared by area. `synth` plants its
    data inside the area."""
    import geopandas as gpd
    import shapely

    city = gpd.read_file(SHARED / "city_of_london_lsoa21.geojson").to_crs(27700)
    city.to_file(tmp_path / "city.shp")
    x0, y0, x1, y1 = city.total_bounds
    mid = (x0 + x1) / 2
    gpd.GeoDataFrame({"zone_id": ["Z1", "Z2"], "zone_name": ["West zone", "East zone"]},
                     geometry=[shapely.box(x0 - 300, y0 - 300, mid, y1 + 300),
                               shapely.box(mid, y0 - 300, x1 + 300, y1 + 300)],
                     crs=27700).to_file(tmp_path / "zones.fgb")
    cache, out_dir = tmp_path / "cache", tmp_path / "area"
    code, out, _ = run(capsys, "--geodata", str(cache), "area", "init", "--lsoa",
                       str(tmp_path / "city.shp"), "--name", "City of London", "--code",
                       "E09000001", "--layer", f"pspo={tmp_path / 'zones.fgb'}:zone_id:zone_name",
                       "--population", str(SHARED / "population_lsoa21_london.csv"), "--out",
                       str(out_dir))
    cfg = out_dir / "city-of-london.toml"
    assert code == 0 and out.startswith("area City of London (E09000001): 6 lsoa, 2 pspo")
    for wrote in (cfg, out_dir / "manifest.toml", out_dir / "city-of-london_lsoa.gpkg",
                  out_dir / "city-of-london_pspo.gpkg"):
        assert str(wrote) in out and wrote.exists()
    assert f"installed into {cache}" in out and (cache / "city-of-london_pspo.gpkg").exists()
    base = ["--config", str(cfg), "--geodata", str(cache)]
    store = str(tmp_path / "city.sqlite")
    month = SHARED / "policeuk" / "2024-08-city-of-london-street.csv"
    code, out, _ = run(capsys, *base, "ingest", str(month), "--store", store, "--json")
    assert code == 0 and json.loads(out)["files"][0]["unassigned"] == 0
    code, out, _ = run(capsys, *base, "summarise", "--store", store, "--level", "pspo",
                       "--measure", "per_1000_residents", "--out", str(tmp_path / "o"))
    assert code == 0 and out.startswith("PSPO zone summary for 2024-08"), out
    assert "by area" in out
    table = pd.read_csv(tmp_path / "o" / "areas_pspo_2024-08.csv")
    assert sorted(table["code"]) == ["Z1", "Z2"] and table["per_1000_residents"].gt(0).all()
    code, out, _ = run(capsys, *base, "summarise", "--store", store, "--level", "lsoa",
                       "--json", "--out", str(tmp_path / "o"))
    lsoa = pd.read_csv(tmp_path / "o" / "areas_lsoa_2024-08.csv")
    assert code == 0 and json.loads(out)["incidents"] == table["n"].sum() == lsoa["n"].sum()
    code, _, _ = run(capsys, *base, "synth", "--out", str(tmp_path / "s"), "--n", "2000")
    truth = pd.read_csv(tmp_path / "s" / "synthetic-truth-incidents.csv")
    clean = truth.loc[truth["dirty_reason"].isna()]
    union = shapely.union_all(city.geometry.values)
    assert code == 0 and len(clean) > 1000
    assert shapely.contains_xy(union, clean["x"].to_numpy(), clean["y"].to_numpy()).all()


def test_the_readme_s_another_area_commands_and_settings_table():
    """The README's second borough is at most three commands the CLI accepts, each later
    one naming the configuration `area init` writes; its settings table is the rule's."""
    import shlex

    from hotspots.area import slug
    from hotspots.cli import build_parser
    from hotspots.config import DEFAULT_CONFIG, SETTINGS

    text = (ROOT / "README.md").read_text("utf-8")
    section = text.split("## Another area", 1)[1].split("\n## ", 1)[0]
    block = section.split("```bash", 1)[1].split("```", 1)[0].replace("\\\n", " ")
    commands = [shlex.split(line, comments=True) for line in block.splitlines()
                if line.strip()]
    assert 1 <= len(commands) <= 3 and all(c[0] == "hotspots" for c in commands)
    parsed = [build_parser().parse_args(c[1:]) for c in commands]  # exits on a bad flag
    first, *rest = parsed
    assert (first.command, first.area_command) == ("area", "init") and first.borough
    name = slug(first.borough)
    assert {a.config for a in rest} == {f"areas/{name}/{name}.toml"}
    assert rest[-1].command == "pack" and len({a.store for a in rest}) == 1
    rows = [line for line in text.splitlines() if line.startswith("| ") and "`HOTSPOTS_"
            in line]
    for key, (var, default) in SETTINGS.items():
        row = next(r for r in rows if f"`{var}`" in r)
        assert f"`--{key} " in row.split("|")[2], row
        want = DEFAULT_CONFIG if key == "config" else f"`{default}`"
        assert row.split("|")[-2].strip().endswith(want.strip("`") + "`"), row
    given = build_parser().parse_args(["--config", "c.toml", "--geodata", "g", "summarise",
                                       "--store", "s.sqlite"])  # the flags the table names
    assert (given.config, given.geodata, given.store) == ("c.toml", "g", "s.sqlite")


def test_police_uk_rows_keep_their_own_lsoa_on_edges_and_just_outside(tmp_path, cache):
    """A police.uk month in Camden and in the City (each set up from the London LSOA
    file): every row whose own LSOA is the area's and which lies on that LSOA's edge
    (0.15 m) or outside the boundary within nearest_max_m of it is accepted into it (on
    edges the smallest-code rule would have put some elsewhere); no such row is refused."""
    import shapely
    from pyproj import Transformer

    from hotspots import area, geography
    from hotspots.assign import assign_points
    from hotspots.config import load_config
    from hotspots.ingest import read_export, to_incidents

    seen = {"edge": 0, "outside": 0, "other_on_edge": 0}
    police = SHARED / "policeuk"
    for borough, path in (("Camden", police / "2024-03-metropolitan-street_london_burglary"
                                              "-only.csv"),
                          ("City of London", police / "2024-08-city-of-london-street.csv")):
        name, code, lsoa = area.london_boroughs(borough, cache=cache)
        done = area.init_area(name, code=code, lsoa=lsoa, out_dir=tmp_path / code,
                              cache=tmp_path / "c")
        config = load_config(done["config"])
        layers = geography.read_layers(config, cache=tmp_path / "c")
        union = geography.study_area(layers, config)
        frame = read_export(path)
        res = to_incidents(frame, file=path.name, config=config, layers=layers, area=union)
        polys = layers["lsoa"].set_index("code").geometry
        inc = res.incidents.loc[res.incidents["source_lsoa"].isin(polys.index)]
        x, y = inc["x"].to_numpy(), inc["y"].to_numpy()
        edge = shapely.distance(shapely.boundary(polys.reindex(inc["source_lsoa"]).values),
                                shapely.points(x, y)) <= 0.15
        outside = ~shapely.intersects_xy(union, x, y)
        assert (inc["lsoa_code"] == inc["source_lsoa"]).to_numpy()[edge | outside].all()
        plain = layers["lsoa"]["code"].to_numpy()[assign_points(
            x, y, layers["lsoa"], nearest_max_m=config.nearest_max_m)]
        seen["edge"] += int(edge.sum())
        seen["outside"] += int(outside.sum())
        seen["other_on_edge"] += int((plain != inc["source_lsoa"].to_numpy())[edge].sum())
        gone = res.problems.loc[res.problems["reason"] == "outside_study_area", "row"]
        rows = frame.iloc[gone.unique() - 2]  # row 2 is the first after the header
        rows = rows.loc[rows["LSOA code"].isin(polys.index)]
        bx, by = Transformer.from_crs(4326, 27700, always_xy=True).transform(
            rows["Longitude"].astype(float), rows["Latitude"].astype(float))
        far = shapely.distance(polys.reindex(rows["LSOA code"]).values,
                               shapely.points(bx, by))
        assert (far > config.nearest_max_m).all(), borough
    assert seen["edge"] > 10 and seen["outside"] > 0 and seen["other_on_edge"] > 5, seen


def test_a_server_store_of_another_area_is_refused_by_the_cli_and_the_app(
        pg_url, tmp_path, capsys, cache, monkeypatch):
    """A PostgreSQL store records its area as a file does, and both the CLI and the app
    refuse it under another area's configuration."""
    from streamlit.testing.v1 import AppTest

    base = ["--geodata", str(cache)]
    assert run(capsys, *base, "ingest", str(BURGLARY[0]), "--store", pg_url)[0] == 0
    cfg = other_area(tmp_path)
    code, _, err = run(capsys, "--config", str(cfg), *base, "summarise", "--store", pg_url,
                       "--out", str(tmp_path / "o"))
    assert code == 1 and "was built for Tower Hamlets (E09000030)" in err
    for k, v in {"HOTSPOTS_CONFIG": str(cfg), "HOTSPOTS_STORE": pg_url,
                 "HOTSPOTS_GEODATA": str(cache), "HOTSPOTS_LOCAL": "1"}.items():
        monkeypatch.setenv(k, v)
    at = AppTest.from_file(str(ROOT / "streamlit_app.py"), default_timeout=120).run()
    assert not at.exception and any(
        "was built for Tower Hamlets (E09000030)" in e.value and "Elsewhere (E09000999)"
        in e.value for e in at.error)
