"""Commands that set things up: ``geodata install``, ``area init``, ``user add`` and
``demo`` (geodata, synthetic and police.uk data, every output, in one go)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from .. import auth, geography, jobs
from ..errors import HotspotsError
from .analyse import _print_detect, _print_summary
from .data import _cmd_synth, _print_ingest, _synthetic_exports


def _cmd_geodata(args, config) -> int:
    manifest = args.manifest or config.manifest
    results = geography.install_geodata(manifest, source_dir=args.source_dir,
                                        base_url=args.base_url, cache=args.geodata,
                                        skip_unavailable=args.skip_unavailable)
    if args.json:
        print(json.dumps({"cache": str(geography.cache_dir(args.geodata)), "files": results}))
    else:
        n = {s: sum(r["status"] == s for r in results)
             for s in ("installed", "present", "unavailable")}
        print(f"geodata: {n['installed']} file(s) installed, {n['present']} already present, "
              f"in {geography.cache_dir(args.geodata)}")
        if n["unavailable"]:
            print(f"  {n['unavailable']} file(s) have no published source and were not "
                  "installed (install them --from a folder holding them; a local authority's "
                  "boundaries and population: `hotspots area init --la CODE`): "
                  + ", ".join(r["name"] for r in results if r["status"] == "unavailable"))
    return 0


def _cmd_demo(args, config) -> int:
    """Install geodata, make synthetic council data, load it with the real police.uk rows,
    summarise the latest complete month by every layer but the 2011 LSOAs."""
    out: dict[str, Any] = {"steps": []}
    manifest = config.manifest
    geography.install_geodata(manifest, source_dir=args.source_dir, cache=args.geodata,
                              skip_unavailable=args.source_dir is None)
    cache = geography.cache_dir(args.geodata)
    synth_dir = Path(args.data) / "synthetic"
    args_s = argparse.Namespace(geodata=args.geodata, n=args.n, start="2022-09-01",
                                end="2024-08-31", seed=args.seed, out=synth_dir, json=args.json)
    if args.json:
        _quiet(_cmd_synth, args_s, config)
    else:
        _cmd_synth(args_s, config)
    police = (sorted((cache / "policeuk").glob(f"*{config.demo_police_uk}*.csv"))
              if config.demo_police_uk else [])
    store_file = Path(args.data) / "hotspots.sqlite"
    reports = [jobs.ingest_files(police, config=config, store_file=store_file,
                                 cache=args.geodata)]
    for export, mapping in _synthetic_exports(synth_dir):
        reports.append(jobs.ingest_files([export], config=config, store_file=store_file,
                                         mapping=mapping, cache=args.geodata))
    files = [f for r in reports for f in r["files"]]
    out["ingest"] = {"store": str(store_file), "files": files}
    out["summaries"] = [
        jobs.summarise(config=config, level=level, store_file=store_file, out_dir=args.out,
                       cache=args.geodata) for level in config.summary_layers]
    out["hotspots"] = jobs.detect(config=config, store_file=store_file, out_dir=args.out,
                                  cache=args.geodata)
    from ..pack import build_pack

    out["pack"] = build_pack(config=config, store_file=store_file, out_dir=args.out,
                             cache=args.geodata)
    if args.json:
        print(json.dumps(out))
    else:
        _print_ingest(out["ingest"])
        for meta in out["summaries"]:
            _print_summary(meta)
        _print_detect(out["hotspots"])
        print(f"tasking pack: {out['pack']['files']['html']}")
    return 1 if any(f.get("error") for f in files) else 0


def _read_new_password(args) -> str:
    """The password from stdin (--password-stdin: its first line), or typed twice at the
    terminal without echo."""
    import getpass

    if args.password_stdin:
        return sys.stdin.readline().rstrip("\r\n")
    if not sys.stdin.isatty():
        raise ValueError("no terminal to type the password at: pipe it in with "
                         "--password-stdin")
    first = getpass.getpass(f"Password for {args.name}: ")
    if getpass.getpass("Same password again: ") != first:
        raise ValueError("the two passwords differ; nothing was written")
    return first


def _cmd_user(args, config) -> int:
    new = auth.add_user(args.secrets, args.name, args.role, _read_new_password(args))
    out = {"user": args.name, "role": args.role, "secrets": str(args.secrets), "new": new}
    if args.json:
        print(json.dumps(out))
    else:
        print(f"{'added' if new else 'replaced'} user {args.name} ({args.role}) in "
              f"{args.secrets}; the app reads it on its next sign-in")
    old = auth.legacy_users(args.secrets)
    if old:
        print(f"note: cannot sign in until given a new password (old unsalted SHA-256 "
              f"entry): {', '.join(old)}; run `hotspots user add NAME --role ROLE` for each",
              file=sys.stderr)
    return 0


def _cmd_area(args, config) -> int:
    from .. import area

    if sum(map(bool, (args.borough, args.lsoa, args.la))) != 1:
        raise HotspotsError("give one of --borough CODE|NAME|all (from the London LSOA file), "
                            "--lsoa FILE (your own boundaries) or --la CODE (downloaded from "
                            "ONS and Nomis).")
    layers = {}
    for spec in args.layer or []:
        key, sep, path = spec.partition("=")
        if not sep or not key.isidentifier():
            raise HotspotsError(f"--layer {spec}: write KEY=FILE (e.g. ward=wards.gpkg), "
                                "or KEY=FILE:CODE_COLUMN:NAME_COLUMN.")
        layers[key] = area.read_boundaries(path, key=key)
    nested: dict[str, tuple[str, str, str]] = {}
    population: str | Path | None = None
    downloads = None
    if args.la:
        import tempfile

        from .. import ons

        downloads = tempfile.TemporaryDirectory(prefix="hotspots-ons-")
        got = ons.fetch_area(args.la, downloads.name)
        files = {k: str(Path(downloads.name) / f["name"]) for k, f in got["files"].items()}
        name, code = got["la_name"], got["la_code"]
        lsoa = area.read_boundaries(files["lsoa"] + ":LSOA21CD:LSOA21NM", key="lsoa")
        layers.setdefault("ward", area.read_boundaries(files["ward"] + ":WD22CD:WD22NM",
                                                       key="ward"))
        population = files["population"]
    elif args.borough:
        name, code, lsoa = area.london_boroughs(args.borough, cache=args.geodata)
        nested = {"msoa": ("MSOA", "msoa21cd", "msoa21nm")}
        if lsoa["lad22cd"].nunique() > 1:
            nested["borough"] = ("Borough", "lad22cd", "lad22nm")
        london = geography.cache_dir(args.geodata) / area.LONDON_POPULATION
        population = london if london.exists() else None
    else:
        if not args.name:
            raise HotspotsError("--lsoa needs --name (the area's name, e.g. \"Camden\").")
        name, code, lsoa = args.name, args.code or "", area.read_boundaries(args.lsoa,
                                                                             key="lsoa")
    if args.population:
        population = args.population
    name, code = args.name or name, args.code or code
    out_dir = Path(args.out) if args.out else Path("areas") / area.slug(name)
    try:
        done = area.init_area(name, code=code, lsoa=lsoa, layers=layers, nested=nested,
                              population=population, out_dir=out_dir, cache=args.geodata)
    finally:
        if downloads is not None:
            downloads.cleanup()
    if args.json:
        print(json.dumps(done))
        return 0
    counts = ", ".join(f"{n:,} {k}" for k, n in done["counts"].items())
    print(f"area {name}{f' ({code})' if code else ''}: {counts}")
    print(f"  configuration: {done['config']}")
    print(f"  manifest:      {done['manifest']} (sha256 of every file)")
    for key, path in done["files"].items():
        print(f"  {key + ':':<14} {path}")
    print(f"  installed into {geography.cache_dir(args.geodata)}")
    print(f"next: hotspots --config {done['config']} ingest FILE... --store "
          f"data/{area.slug(name)}.sqlite")
    return 0


def _quiet(fn, *a):
    import contextlib
    import io

    with contextlib.redirect_stdout(io.StringIO()):
        return fn(*a)
