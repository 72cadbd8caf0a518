"""A local authority's boundaries and population from ONS and Nomis, against local
stand-ins of the ArcGIS feature services and Nomis serving the shared open data."""

from __future__ import annotations

import csv
import json

import geopandas as gpd
import pytest
import shapely

from hotspots import fetch, geography, ons
from hotspots.config import Layer
from hotspots.errors import FetchError

from .conftest import SHARED
from .fake_services import Fake, serve

TH = "E09000030"


def _features(gdf: gpd.GeoDataFrame, props) -> list[dict]:
    gdf = gdf.to_crs(27700)
    return [{"type": "Feature", "properties": props(r),
             "geometry": json.loads(shapely.to_geojson(r.geometry))}
            for r in gdf.itertuples()]


@pytest.fixture(scope="module")
def services():
    wards = gpd.read_file(SHARED / "tower_hamlets_wards_2022.geojson").to_crs(27700)
    th = gpd.read_file(SHARED / "tower_hamlets_lsoa21.geojson").to_crs(27700)
    city = gpd.read_file(SHARED / "city_of_london_lsoa21.geojson").to_crs(27700)
    london = gpd.read_file(SHARED / "london_lsoa21.gpkg", layer="lsoa21",
                           ignore_geometry=True)
    # best-fit ward of each Tower Hamlets LSOA: the ward holding most of it
    best = {}
    for r in th.itertuples():
        share = wards.geometry.intersection(r.geometry).area
        best[r.LSOA21CD] = wards.iloc[int(share.argmax())]
    lookup = [{"properties": {
        "LSOA21CD": r.lsoa21cd, "LSOA21NM": r.lsoa21nm,
        "WD22CD": best[r.lsoa21cd]["wardcode"] if r.lsoa21cd in best else "",
        "WD22NM": best[r.lsoa21cd]["name"] if r.lsoa21cd in best else "",
        "LAD22CD": r.lad22cd, "LAD22NM": r.lad22nm}} for r in london.itertuples()]
    with open(SHARED / "population_lsoa21_london.csv", newline="") as fh:
        people = {r["lsoa21cd"]: int(r["usual_residents"]) for r in csv.DictReader(fh)}
    return {
        ons.LOOKUP[0]: lookup,
        ons.LSOA_BOUNDARIES[0]: _features(th, lambda r: {"LSOA21CD": r.LSOA21CD,
                                                         "LSOA21NM": r.LSOA21NM})
        + _features(city, lambda r: {"LSOA21CD": r.lsoa21cd, "LSOA21NM": r.lsoa21nm}),
        ons.WARD_BOUNDARIES[0]: _features(wards, lambda r: {
            "WD22CD": r.wardcode, "WD22NM": r.name, "LAD22CD": TH}),
    }, people


@pytest.fixture()
def fake(services):
    features, people = services
    f = Fake(features={k: list(v) for k, v in features.items()}, nomis=dict(people),
             page_size=50)
    with serve(f) as base:
        yield f, f"{base}/arcgis", f"{base}/nomis"


def quick():
    return fetch.Client(rate_per_s=1000, backoff_s=0.001, retries=1)


def run(fake, out, la=TH):
    _, arcgis, nomis = fake
    return ons.fetch_area(la, out, client=quick(), ons_url=arcgis, nomis_url=nomis)


def test_boundaries_and_population_match_the_shared_files(fake, tmp_path, cache, layers,
                                                          config):
    report = run(fake, tmp_path)
    assert report["la_name"] == "Tower Hamlets"
    assert {k: v["name"] for k, v in report["files"].items()} == {
        "lsoa": "tower_hamlets_lsoa21.geojson", "ward": "tower_hamlets_wards_2022.geojson",
        "population": "tower_hamlets_population_lsoa21.csv"}
    # paged: 169 LSOAs at 50 a page
    asked = [p for m, p in fake[0].log if ons.LSOA_BOUNDARIES[0] in p]
    assert len(asked) == 4
    lsoa = geography.read_layer(Layer("lsoa", "tower_hamlets_lsoa21.geojson", "LSOA21CD",
                                      "LSOA21NM"), cache=tmp_path)
    want = layers["lsoa"]
    assert lsoa["code"].tolist() == want["code"].tolist() and len(lsoa) == 169
    assert lsoa["name"].tolist() == want["name"].tolist()
    assert lsoa["area_km2"].to_numpy() == pytest.approx(want["area_km2"].to_numpy(), rel=1e-4)
    ward = geography.read_layer(Layer("ward", "tower_hamlets_wards_2022.geojson", "WD22CD",
                                      "WD22NM"), cache=tmp_path)
    shared = geography.read_layer(config.layers["ward"], cache=cache)
    assert ward[["code", "name"]].equals(shared[["code", "name"]])
    assert ward["area_km2"].sum() == pytest.approx(21.58, abs=0.05)  # into the Thames
    with open(tmp_path / "tower_hamlets_population_lsoa21.csv", newline="") as fh:
        pop = list(csv.DictReader(fh))
    assert [r["lsoa21cd"] for r in pop] == want["code"].tolist()
    assert sum(int(r["usual_residents"]) for r in pop) == 310_323
    assert report["checks"]["usual_residents"] == 310_323
    entries = ons.manifest_entries(report)
    for f in report["files"].values():
        assert f'name = "{f["name"]}"\nsha256 = "{f["sha256"]}"' in entries
        assert geography.sha256_file(tmp_path / f["name"]) == f["sha256"]


def test_same_answer_in_another_order_gives_the_same_bytes(fake, tmp_path):
    first = run(fake, tmp_path / "a")
    for feats in fake[0].features.values():
        feats.reverse()
    fake[0].page_size = 1000
    second = run(fake, tmp_path / "b")
    assert {k: v["sha256"] for k, v in first["files"].items()} == \
        {k: v["sha256"] for k, v in second["files"].items()}


def test_unknown_or_malformed_code(fake, tmp_path):
    with pytest.raises(FetchError, match="no LSOAs for local authority E09999999"):
        run(fake, tmp_path, la="E09999999")
    with pytest.raises(FetchError, match="'Tower Hamlets' is not a local authority code"):
        run(fake, tmp_path, la="Tower Hamlets")
    assert not list(tmp_path.iterdir())


def test_missing_population_or_boundary_writes_nothing(fake, tmp_path):
    f = fake[0]
    first = sorted(f.nomis)[0]
    th_lsoa = next(c for c in sorted(f.nomis) if c >= "E01004198" and c in
                   {x["properties"]["LSOA21CD"] for x in f.features[ons.LSOA_BOUNDARIES[0]]})
    del f.nomis[th_lsoa]
    with pytest.raises(FetchError, match=rf"no positive population for 1 LSOA\(s\) \(first "
                                         rf"\['{th_lsoa}'\]\)\. Nothing was written"):
        run(fake, tmp_path)
    assert first and not list(tmp_path.iterdir())
    f.features[ons.WARD_BOUNDARIES[0]].pop()
    with pytest.raises(FetchError, match=r"no boundary for 1 of 20 codes"):
        run(fake, tmp_path)
    assert not list(tmp_path.iterdir())


def test_service_renamed_or_down_is_named(fake, tmp_path, monkeypatch):
    monkeypatch.setattr(ons, "LOOKUP", ("No_Such_Service",) + ons.LOOKUP[1:])
    with pytest.raises(FetchError, match=r"ONS No_Such_Service: the service refused the query "
                                         r"\(400 Invalid URL\); the service may have been "
                                         r"renamed"):
        run(fake, tmp_path)


def test_cli_fetch_area_writes_files_and_manifest_entries(fake, tmp_path, capsys,
                                                          monkeypatch):
    from hotspots.cli import main

    _, arcgis, nomis = fake
    monkeypatch.setenv(ons.ONS_ENV, arcgis)
    monkeypatch.setenv(ons.NOMIS_ENV, nomis)
    assert main(["fetch", "area", "--la", TH, "--out", str(tmp_path / "geo")]) == 0
    out = capsys.readouterr().out
    assert "Tower Hamlets (E09000030): 169 LSOAs, 20 wards, 310,323 usual residents" in out
    manifest = (tmp_path / "geo" / "manifest.toml").read_text()
    entries = geography.read_manifest(tmp_path / "geo" / "manifest.toml")
    assert [e.name for e in entries] == ["tower_hamlets_lsoa21.geojson",
                                         "tower_hamlets_wards_2022.geojson",
                                         "tower_hamlets_population_lsoa21.csv"]
    assert "ONS Open Geography Portal" in manifest
    # the folder installs like any other: every checksum holds
    res = geography.install_geodata(tmp_path / "geo" / "manifest.toml",
                                    source_dir=tmp_path / "geo", cache=tmp_path / "c")
    assert [r["status"] for r in res] == ["installed"] * 3
