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
from .fake_services import Fake, ons_services, serve

TH = "E09000030"


@pytest.fixture(scope="module")
def services():
    return ons_services(SHARED)


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
    for f in report["files"].values():
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


def test_area_init_la_downloads_and_sets_up_the_area(fake, tmp_path, capsys, monkeypatch):
    from hotspots import jobs
    from hotspots.cli import main
    from hotspots.config import load_config

    _, arcgis, nomis = fake
    monkeypatch.setenv(ons.ONS_ENV, arcgis)
    monkeypatch.setenv(ons.NOMIS_ENV, nomis)
    cache = tmp_path / "cache"
    assert main(["--geodata", str(cache), "area", "init", "--la", TH, "--out",
                 str(tmp_path / "th"), "--json"]) == 0
    done = json.loads(capsys.readouterr().out)
    assert (done["name"], done["code"]) == ("Tower Hamlets", TH)
    assert done["counts"] == {"lsoa": 169, "ward": 20} and done["main_layer"] == "ward"
    config = load_config(done["config"])
    assert sorted(config.layers) == ["lsoa", "ward"]
    pop = (tmp_path / "th" / "tower_hamlets_population_lsoa21.csv").read_text()
    assert pop.startswith("lsoa21cd,lsoa21nm,usual_residents\nE01004198,")
    # the area loads police.uk rows: every one assigned to an LSOA and a ward
    month = SHARED / "policeuk" / "2024-01-metropolitan-street_tower-hamlets_burglary-only.csv"
    (f,) = jobs.ingest_files([month], config=config, store_file=tmp_path / "s.sqlite",
                             cache=cache)["files"]
    assert f["error"] is None and f["accepted"] > 230 and f["unassigned"] == 0


def test_area_init_takes_one_source(capsys):
    from hotspots.cli import main

    assert main(["area", "init", "--la", TH, "--borough", "Camden"]) == 1
    assert "give one of --borough CODE|NAME|all" in capsys.readouterr().err


def test_nomis_answering_a_web_page_is_named(fake, tmp_path, monkeypatch):
    monkeypatch.setattr(ons, "NOMIS_TS001", "NM_9999_1")
    with pytest.raises(FetchError, match=r"Nomis TS001: http://127.*NM_9999_1\.data\.csv\?.* "
                                         r"answered HTTP 404 Not Found\. Check the service "
                                         r"address"):
        run(fake, tmp_path)
    assert not list(tmp_path.iterdir())


def test_boundaries_answered_in_degrees_are_projected(fake, tmp_path):
    first = run(fake, tmp_path / "a")
    ward_service = ons.WARD_BOUNDARIES[0]
    wards = gpd.read_file(SHARED / "tower_hamlets_wards_2022.geojson")  # lon/lat
    fake[0].features[ward_service] = [
        {"type": "Feature", "properties": {"WD22CD": r.wardcode, "WD22NM": r.name},
         "geometry": json.loads(shapely.to_geojson(r.geometry))} for r in wards.itertuples()]
    second = run(fake, tmp_path / "b")
    a = gpd.read_file(tmp_path / "a" / first["files"]["ward"]["name"])
    b = gpd.read_file(tmp_path / "b" / second["files"]["ward"]["name"])
    assert b.crs.to_epsg() == 27700 and a["WD22CD"].tolist() == b["WD22CD"].tolist()
    assert b.area.to_numpy() == pytest.approx(a.area.to_numpy(), rel=1e-3)
