"""README command 1 on a fresh machine with internet and nothing beside the clone.

The internet is a local stand-in (tests/fake_services.py): the manifest's published files
at their own addresses' paths (files without a ``url`` are not served, as on the
internet), the ONS feature services and Nomis serving the shared boundaries and
population, and the police.uk API serving every London burglary of the shared months.
The clone is a folder holding only the manifest (its ``https://`` addresses moved to
the stand-in); the package, the geodata cache, the area, the store and the outputs are
the README's, step by step, from that folder. The app's start is left out.
"""

from __future__ import annotations

import json
import tomllib

import pytest

from hotspots import store
from hotspots.cli import main

from .conftest import MANIFEST, SHARED
from .fake_services import Fake, crimes_from_csvs, ons_services, published_copies, serve

TH = "E09000030"


def cli(capsys, *args: str) -> dict:
    assert main([*args, "--json"]) == 0, capsys.readouterr().err
    return json.loads(capsys.readouterr().out)


def refs(db, months: list[str]) -> set[str]:
    with store.connection(db) as conn:
        inc = store.read_incidents(conn, categories=["burglary"])
    return set(inc.loc[inc["period"].isin(months), "ref"])


@pytest.mark.slow
def test_readme_command_1_from_the_published_sources(tmp_path, monkeypatch, capsys):
    features, people = ons_services(SHARED)
    london = sorted((SHARED / "policeuk").glob("*_london_burglary-only.csv"))
    fake = Fake(crimes=crimes_from_csvs(london), features=features, nomis=people)
    entries = tomllib.loads(MANIFEST.read_text("utf-8"))["files"]
    with serve(fake) as base:
        fake.files, manifest = published_copies(SHARED, MANIFEST, base)
        clone = tmp_path / "clone"
        (clone / "geodata").mkdir(parents=True)
        (clone / "geodata" / "manifest.toml").write_text(manifest, "utf-8")
        monkeypatch.chdir(clone)
        for var in ("HOTSPOTS_GEODATA", "HOTSPOTS_CONFIG", "HOTSPOTS_STORE"):
            monkeypatch.delenv(var, raising=False)
        monkeypatch.setenv("HOTSPOTS_ONS_ARCGIS", f"{base}/arcgis")
        monkeypatch.setenv("HOTSPOTS_NOMIS", f"{base}/nomis")
        monkeypatch.setenv("HOTSPOTS_POLICEUK_API", f"{base}/police")

        # .ci/setup with HOTSPOTS_GEODATA_FROM=download
        done = cli(capsys, "geodata", "install", "--skip-unavailable")
        status = {f["name"]: f["status"] for f in done["files"]}
        assert {n for n, s in status.items() if s == "unavailable"} == {
            e["name"] for e in entries if not e.get("url") and not e.get("derived_from")}
        derived = [e["name"] for e in entries if e.get("derived_from")]
        assert len(derived) == 12 and all(status[n] == "installed" for n in derived)
        for name in derived:  # derived in code, byte for byte the borough's extracts
            assert (clone / "geodata" / "cache" / name).read_bytes() == \
                (SHARED / name).read_bytes()
        downloads = [p for _, p in fake.log if p.startswith("/files/")]
        assert len(downloads) == sum(bool(e.get("url")) for e in entries)

        area = cli(capsys, "area", "init", "--la", TH)
        assert area["config"] == "areas/tower-hamlets/tower-hamlets.toml"
        assert area["counts"] == {"lsoa": 169, "ward": 20}
        monkeypatch.setenv("HOTSPOTS_CONFIG", area["config"])

        months = sorted((clone / "geodata" / "cache" / "policeuk").glob(
            "*tower-hamlets_burglary-only.csv"))
        loaded = cli(capsys, "ingest", *map(str, months))
        assert len(loaded["files"]) == 12
        assert all(f["error"] is None and f["read"] == f["accepted"] + f["rejected"]
                   and f["unassigned"] == 0 for f in loaded["files"])
        assert sum(f["accepted"] for f in loaded["files"]) > 2000

        demo = cli(capsys, "demo", "--n", "4000")
        assert all(f.get("error") is None for f in demo["ingest"]["files"])
        assert len(demo["ingest"]["files"]) == 3  # the synthetic council exports
        assert [s["level"] for s in demo["summaries"]] == ["lsoa", "ward"]
        pack = clone / demo["pack"]["files"]["html"]
        assert pack.name == "pack_2024-08.html" and pack.stat().st_size > 10_000
        assert (clone / "out" / "hotspots_2024-08.html").is_file()

        # the months police.uk holds now, by the API instead of the derived extracts
        got = cli(capsys, "fetch", "policeuk", "--months", "2024-07..2024-08",
                  "--categories", "burglary", "--store", "data/api.sqlite")
        assert [m["status"] for m in got["months"]] == ["loaded", "loaded"]
        assert got["requests"] == 3  # the months listed, then one polygon a month
        both = ["2024-07", "2024-08"]
        assert refs(clone / "data" / "api.sqlite", both) == \
            refs(clone / "data" / "hotspots.sqlite", both) != set()
