"""The ``hotspots`` command. Every command prints a short summary, or with --json one JSON
object (figures and files written). Exit status: 0 ok, 1 a file or input failed, 2 usage.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

from . import auth, geography, jobs, store, taskcli
from .area import check_store_area
from .config import load_config, resolve_settings
from .errors import HotspotsError
from .summary import MEASURES, month_period, parse_period


def _pct(v) -> str:
    return "n/a" if v is None else f"{100 * v:.1f}%"


def _print_ingest(report: dict) -> None:
    for f in report["files"]:
        name = Path(f["path"]).name
        if f.get("error"):
            print(f"{name}: NOT LOADED: {f['error']}")
            continue
        note = (f" (already loaded as load {f['already_loaded']}: nothing changed)"
                if f.get("load_id") is None else "")
        print(f"{name} ({f['format']}): read {f['read']:,} = accepted {f['accepted']:,} + "
              f"rejected {f['rejected']:,}; new {f['inserted']:,}, replaced {f['replaced']:,}, "
              f"unchanged {f['unchanged']:,}; unassigned {f['unassigned']:,}; LSOA agreement "
              f"with the file's own codes {_pct(f['lsoa_agreement'])}{note}")
        if f["reasons"]:
            reasons = ", ".join(f"{k} {v:,}" for k, v in f["reasons"].items())
            where = f"; rows kept in {f['rejected_file']}" if f.get("rejected_file") else ""
            print(f"  rejected rows by reason: {reasons}{where}")
        for w in f.get("warnings") or []:
            print(f"  warning: {w}")
        if f.get("note"):
            print(f"  {f['note']}")
    print(f"store: {report['store']}")


def _print_preview(report: dict) -> None:
    for f in report["files"]:
        name = Path(f["path"]).name
        if f.get("error"):
            print(f"{name}: CANNOT BE LOADED: {f['error']}")
            continue
        if f["already_loaded"]:
            print(f"{name}: already loaded as load {f['already_loaded']}: nothing would change")
            continue
        print(f"{name} ({f['format']}): would add {f['inserted']:,} new, replace "
              f"{f['replaced']:,}, leave {f['unchanged']:,} unchanged, keep {f['kept_newer']:,}"
              f" newer; reject {f['rejected']:,} of {f['read']:,} rows")
        for w in f["warnings"]:
            print(f"  warning: {w}")
        for r in f["explained"]:
            print(f"  {r['rows']:,} row(s): {r['fix']} ({r['example']})")
        for c in f["changes"]:
            print(f"  {c['ref']}: {c['field']} {c['old']!r} -> {c['new']!r}")
    print(f"store: {report['store']} (nothing written: --dry-run)")


def _print_summary(meta: dict) -> None:
    print(f"{meta['level_label']} summary for {meta['period']} (previous {meta['previous']}): "
          f"{meta['incidents']:,} incidents ({meta['total_in_areas']:,} in areas, "
          f"{meta['unassigned']:,} unassigned); ranked by {meta['rank_by']}")
    if meta["month_only_left_out"]:
        print(f"  {meta['month_only_left_out']:,} month-only police.uk rows left out: their "
              "month is not wholly inside the period")
    if meta.get("population"):
        print(f"  rates per 1,000 residents: {meta['population']}")
    for t in meta["top"]:
        value = t[meta["rank_by"]]
        print(f"  {t['rank']:>3}. {t['name']} ({t['code']}): {t['n']:,} incidents, "
              f"{meta['rank_by']} {'n/a' if value is None else f'{value:.1f}'}")
    for k, v in meta["files"].items():
        print(f"  {k + ':':<8} {v}")


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


def _cmd_ingest(args, config) -> int:
    progress = None
    if not args.json and sys.stderr.isatty():
        def progress(done: int, total: int, step: str) -> None:
            bar = "#" * round(30 * done / total)
            end = "\n" if done == total else ""
            print(f"\r[{bar:<30}] {done}/{total} {step[:60]:<60}", end=end, file=sys.stderr,
                  flush=True)
    if args.dry_run:
        report = jobs.preview_files(args.files, config=config, store_file=args.store,
                                    mapping=args.mapping, cache=args.geodata,
                                    force_older=args.force_older)
        print(json.dumps(report)) if args.json else _print_preview(report)
        return 1 if any(f.get("error") for f in report["files"]) else 0
    report = jobs.ingest_files(args.files, config=config, store_file=args.store,
                               mapping=args.mapping, cache=args.geodata,
                               force_older=args.force_older, progress=progress)
    print(json.dumps(report)) if args.json else _print_ingest(report)
    return 1 if any(f.get("error") for f in report["files"]) else 0


def _period(args):
    if args.month and (args.start or args.end):
        raise HotspotsError("give either --month or --start/--end, not both.")
    if args.month:
        return month_period(args.month)
    if args.start or args.end:
        if not (args.start and args.end):
            raise HotspotsError("--start and --end go together (inclusive dates, YYYY-MM-DD).")
        return parse_period(args.start, args.end)
    return None


def _cmd_summarise(args, config) -> int:
    cats = [c.strip() for c in args.categories.split(",")] if args.categories else None
    meta = jobs.summarise(config=config, period=_period(args), level=args.level,
                          measure=args.measure, categories=cats, store_file=args.store,
                          out_dir=args.out, cache=args.geodata,
                          formats=tuple(f.strip() for f in args.formats.split(",")))
    print(json.dumps(meta)) if args.json else _print_summary(meta)
    return 0


def _print_detect(meta: dict) -> None:
    for note in meta["chosen"]:
        print(f"hotspots: {note}", file=sys.stderr)
    print(f"Hotspots for {meta['period']}: {meta['incidents']:,} incidents")
    if meta["month_only_left_out"]:
        print(f"  {meta['month_only_left_out']:,} month-only police.uk rows left out: their "
              "month is not wholly inside the period")
    print(f"  grid: {meta['cell_shape']} cells of {meta['cell_size_m']:.0f} m "
          f"({meta['cells']:,} cells); Gi* ({meta['gi_neighbours']} neighbours, "
          f"{'FDR-corrected' if meta['fdr'] else 'uncorrected'}): hot cells at 99/95/90% "
          f"{'/'.join(map(str, meta['hot_cells'].values()))}, cold "
          f"{'/'.join(map(str, meta['cold_cells'].values()))}")
    print(f"  kernel density: {meta['kernel']}, bandwidth {meta['bandwidth_m']:.0f} m, "
          f"edge loss {meta['kde_edge_loss']:.1f} incidents")
    print(f"  places ({meta['method']}): {meta['places']:,}")
    f = meta["forecast"]
    print(f"  forecast for {f['month']}: {f['description']} on {f['cell_size_m']:.0f} m cells, "
          f"{f['cells']} cells in the top 5% of the area; PAI {f['pai_5pct']:.2f}, hit rate "
          f"{f['hit_rate_5pct']:.0%} on {f['test_months']} test months"
          + (f" ({f['note']})" if f["fallback"] else ""))
    for t in meta["top"]:
        print(f"  {t['rank']:>3}. {t['label']} ({t['place_id']}): {t['n']:,} incidents")
    for k, v in meta["files"].items():
        print(f"  {k}: {v}")


def _cmd_detect(args, config) -> int:
    cats = [c.strip() for c in args.categories.split(",")] if args.categories else None
    meta = jobs.detect(config=config, period=_period(args), categories=cats,
                       store_file=args.store, out_dir=args.out, cache=args.geodata,
                       cell_size_m=args.cell_size_m, shape=args.shape,
                       bandwidth_m=args.bandwidth_m, kernel=args.kernel, method=args.method,
                       fdr=not args.no_fdr)
    print(json.dumps(meta)) if args.json else _print_detect(meta)
    return 0


def _cmd_pack(args, config) -> int:
    from .pack import build_pack

    cats = [c.strip() for c in args.categories.split(",")] if args.categories else None
    out = build_pack(config=config, store_file=args.store, out_dir=args.out,
                     cache=args.geodata, partner=args.partner, top=args.top, units=args.units,
                     period=month_period(args.month) if args.month else None,
                     categories=cats)
    if args.json:
        print(json.dumps(out))
    else:
        kind = "partner pack" if out["partner"] else "tasking pack"
        print(f"{kind} for {out['period']}: {out['places']} ranked places, "
              f"{out['tasked_reviewed']} tasked place(s) from the last meeting reviewed")
        for k, v in out["files"].items():
            print(f"  {k}: {v}")
    return 0


def _print_backtest(out: dict) -> None:
    w = out["winner"]
    print(f"Backtest: {len(out['test_months'])} test month(s) "
          f"({', '.join(out['test_months']) or 'none'}), {out['incidents_tested']:,} "
          f"incidents in them inside the area ({out['incidents']:,} in the selection, "
          f"history included); cells of {', '.join(f'{c:g}' for c in out['cell_sizes_m'])} m; "
          f"windows: {out['windows']}")
    if not out["enough"]:
        print(f"  only {len(out['test_months'])} test month(s): fewer than the "
              f"{out['min_test_months']} needed to choose a map")
    for r in out["summary"][:10]:
        mark = "  <- chosen" if (r["method"], r["cell_size_m"]) == (w["method"],
                                                                  w["cell_size_m"]) else ""
        print(f"  PAI at 5%  {r['method']:<17} {r['cell_size_m']:>4.0f} m  {r['pai']:6.2f}  "
              f"hit rate {r['hit_rate']:.0%}{mark}")
    naive = [r for r in out["summary"] if r["method"] == "naive"]
    if naive:
        print(f"  naive last-month map at its best cell size ({naive[0]['cell_size_m']:.0f} m): "
              f"{naive[0]['pai']:.2f}")
    print(f"  forecast map: {w['method']} on {w['cell_size_m']:.0f} m cells, PAI at 5% "
          f"{w['pai_5pct']:.2f} ({w['note']})")
    honest = out["chosen_before_scored"]
    if honest["months"]:
        print(f"  chosen only on earlier months, the map scored {honest['pai_5pct']:.2f} on "
              f"{honest['months']} month(s)")
    for k, v in out.get("concentrated_now", {}).items():
        if v["months"]:
            print(f"  where it is concentrated now ({k}, not a forecast): next-month PAI "
                  f"{v['pai']:.2f} at {v['coverage']:.2%} of the area ({v['months']} months)")
    print(out["definitions"])
    print(f"  table: {out['files']['table']}")


def _cmd_backtest(args, config) -> int:
    cats = [c.strip() for c in args.categories.split(",")] if args.categories else None
    srcs = [c.strip() for c in args.sources.split(",")] if args.sources else None
    sizes = ([float(c) for c in args.cell_sizes.split(",")] if args.cell_sizes else None)
    out = jobs.run_backtest(config=config, store_file=args.store, out_dir=args.out,
                            cache=args.geodata, categories=cats, sources=srcs,
                            test_months=args.test_months, cell_sizes_m=sizes)
    print(json.dumps(out)) if args.json else _print_backtest(out)
    return 0


def _cmd_export(args, config) -> int:
    cats = [c.strip() for c in args.categories.split(",")] if args.categories else None
    default = {"gpkg": "incidents.gpkg", "geoparquet": "incidents.parquet", "csv": "incidents.csv",
               "geojson": "incidents.geojson"}
    out = jobs.export_incidents(out=args.out or Path("out") / default[args.format],
                                fmt=args.format, store_file=args.store, start=args.start,
                                end=args.end, categories=cats)
    if args.json:
        print(json.dumps(out))
    else:
        print(f"{out['incidents']:,} incidents written to {out['file']} ({out['format']})")
    return 0


def _cmd_synth(args, config) -> int:
    from .synthetic import make_synthetic, write_synthetic

    lsoas = geography.read_layer(config.layers["lsoa"], cache=args.geodata)
    data = make_synthetic(lsoas, n_incidents=args.n, start=args.start, end=args.end,
                          rng=args.seed)
    written = write_synthetic(data, args.out)
    if args.json:
        print(json.dumps({"out": str(args.out), "files": {k: str(v) for k, v in written.items()}}))
    else:
        print(f"SYNTHETIC council-style data ({args.n:,} incidents, seed {args.seed}) in "
              f"{args.out}: " + ", ".join(sorted(Path(v).name for v in written.values())))
    return 0


def _synthetic_exports(folder: Path) -> list[tuple[Path, Path]]:
    pairs = []
    for mapping in sorted(folder.glob("*.mapping.toml")):
        stem = mapping.name[: -len(".mapping.toml")]
        export = next((folder / f"{stem}{ext}" for ext in (".csv", ".xlsx")
                       if (folder / f"{stem}{ext}").exists()), None)
        if export:
            pairs.append((export, mapping))
    return pairs


def _cmd_fetch_policeuk(args, config) -> int:
    from . import fetch

    cats = [c.strip() for c in args.categories.split(",")] if args.categories else None
    progress = None
    if not args.json and sys.stderr.isatty():
        def progress(line: str) -> None:
            print(f"police.uk {line}", file=sys.stderr, flush=True)
    latest = fetch.parse_latest(args.months)
    report = fetch.fetch_policeuk(config=config, latest=latest,
                                  months=None if latest else fetch.parse_months(args.months),
                                  categories=cats, store_file=args.store, cache=args.geodata,
                                  base_url=args.api_url, refresh=args.refresh,
                                  progress=progress)
    if args.json:
        print(json.dumps(report))
    else:
        counts: dict[str, int] = {}
        for m in report["months"]:
            counts[m["status"]] = counts.get(m["status"], 0) + 1
        print(f"police.uk API ({report['api']}), {report['requests']} request(s): "
              + ", ".join(f"{v} month(s) {k.replace('_', ' ')}" for k, v in counts.items()))
        if report["ingest"]["files"]:
            _print_ingest(report["ingest"])
        if report["error"]:
            print(f"hotspots: error: {report['error']}", file=sys.stderr)
    return 1 if report["error"] else 0


def _cmd_demo(args, config) -> int:
    """Install geodata, make synthetic council data, load it with the real police.uk rows,
    summarise the latest complete month by every layer but the 2011 LSOAs."""
    out = {"steps": []}
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
    from .pack import build_pack

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
    from . import area

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
    nested, population = {}, None
    downloads = None
    if args.la:
        import tempfile

        from . import ons

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
        population = geography.cache_dir(args.geodata) / area.LONDON_POPULATION
        population = population if population.exists() else None
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


def build_parser() -> argparse.ArgumentParser:
    """The ``hotspots`` command line: every subcommand and its flags."""
    p = argparse.ArgumentParser(prog="hotspots", description=__doc__)
    p.add_argument("--config", help="study-area configuration TOML (default: "
                                    "$HOTSPOTS_CONFIG or the packaged default)")
    p.add_argument("--geodata", help="geodata cache folder (default: $HOTSPOTS_GEODATA or "
                                     "geodata/cache)")
    p.add_argument("-v", "--verbose", action="store_true")
    sub = p.add_subparsers(dest="command", required=True)

    def common(sp, store=True):
        sp.add_argument("--json", action="store_true", help="print one JSON object")
        if store:
            sp.add_argument("--store", help="store file or postgresql://user@host/db server "
                                            "(default: $HOTSPOTS_STORE or "
                                            "data/hotspots.sqlite)")

    g = sub.add_parser("geodata", help="boundary and open data files")
    gsub = g.add_subparsers(dest="geodata_command", required=True)
    gi = gsub.add_parser("install", help="install into the cache, checked by sha256")
    gi.add_argument("--from", dest="source_dir", help="copy from this folder, not download")
    gi.add_argument("--base-url", help="download NAME from BASE_URL/NAME (a mirror)")
    gi.add_argument("--skip-unavailable", action="store_true",
                    help="downloading, pass over files with no published source")
    gi.add_argument("--manifest", help="geodata manifest (default: the configuration's)")
    common(gi, store=False)
    gi.set_defaults(func=_cmd_geodata)

    i = sub.add_parser("ingest", help="load exports into the store")
    i.add_argument("files", nargs="+", metavar="FILE")
    i.add_argument("--mapping", help="mapping TOML for council exports")
    i.add_argument("--force-older", action="store_true",
                   help="let an export replace records that came from a later-dated export")
    i.add_argument("--dry-run", action="store_true",
                   help="say what would be new, replaced, unchanged and rejected, with the "
                   "replaced records' changes; write nothing")
    common(i)
    i.set_defaults(func=_cmd_ingest)

    s = sub.add_parser("summarise", aliases=["summarize"],
                       help="ranked area table (CSV, XLSX, GeoJSON, GeoPackage) and map "
                            "(HTML) for a period")
    s.add_argument("--month", help="YYYY-MM (default: latest complete month in the store)")
    s.add_argument("--start", help="first day, YYYY-MM-DD (with --end)")
    s.add_argument("--end", help="last day, YYYY-MM-DD, inclusive")
    s.add_argument("--level", default="lsoa",
                   help="any layer of the configuration: lsoa (default), ward, msoa...")
    s.add_argument("--measure", choices=MEASURES, default="density_per_km2",
                   help="shade and rank by (default density_per_km2)")
    s.add_argument("--categories", help="comma-separated taxonomy keys (default: all)")
    s.add_argument("--formats", default="csv,xlsx,geojson,gpkg",
                   help="table files to write, comma-separated (default csv,xlsx,geojson,gpkg; "
                        "the CSV is always written)")
    s.add_argument("--out", default="out", help="output folder (default out/)")
    common(s)
    s.set_defaults(func=_cmd_summarise)

    t = sub.add_parser("detect", help="hotspots in metres: grid, kernel density, Gi*, places")
    t.add_argument("--month", help="YYYY-MM (default: latest complete month in the store)")
    t.add_argument("--start", help="first day, YYYY-MM-DD (with --end)")
    t.add_argument("--end", help="last day, YYYY-MM-DD, inclusive")
    t.add_argument("--categories", help="comma-separated taxonomy keys (default: all)")
    t.add_argument("--cell-size-m", type=float, help="grid cell size (default: chosen by rule)")
    t.add_argument("--shape", choices=("square", "hex"), default="square")
    t.add_argument("--bandwidth-m", type=float, help="KDE bandwidth (default: chosen by rule)")
    t.add_argument("--kernel", choices=("quartic", "gaussian"), default="quartic")
    t.add_argument("--method", choices=("dbscan", "hdbscan"), default="dbscan")
    t.add_argument("--no-fdr", action="store_true", help="Gi* without FDR correction")
    t.add_argument("--out", default="out", help="output folder (default out/)")
    common(t)
    t.set_defaults(func=_cmd_detect)

    pk = sub.add_parser("pack", help="tasking pack (HTML; ranked table as XLSX, CSV, GeoJSON, "
                                     "GeoPackage) for the latest complete month")
    pk.add_argument("--out", default="out", help="output folder (default out/)")
    pk.add_argument("--partner", action="store_true",
                    help="partner version: aggregates only, small counts suppressed")
    pk.add_argument("--top", type=int, default=20, help="places in the pack (default 20)")
    pk.add_argument("--month", help="YYYY-MM (default: latest complete month in the store)")
    pk.add_argument("--categories", help="comma-separated taxonomy keys (default: all)")
    pk.add_argument("--units", choices=("places", "lsoa", "cells"), default="places",
                    help="what to rank: cluster places (default), LSOAs or grid cells")
    common(pk)
    pk.set_defaults(func=_cmd_pack)

    bt = sub.add_parser("backtest", help="PAI of each hotspot method on past months; "
                                         "which one to use by default")
    bt.add_argument("--categories", help="comma-separated taxonomy keys (default: all)")
    bt.add_argument("--sources", help="comma-separated sources, e.g. policeuk (default: all)")
    bt.add_argument("--test-months", type=int, default=12,
                    help="latest months to test, each with 3 months of history before it "
                         "(default 12)")
    bt.add_argument("--cell-sizes", help="comma-separated cell sizes in metres, multiples of "
                                         "the smallest (default 50,100,150,200,250)")
    bt.add_argument("--out", default="out", help="output folder (default out/)")
    common(bt)
    bt.set_defaults(func=_cmd_backtest)

    taskcli.add_parser(sub, common)

    e = sub.add_parser("export", help="the store's incidents for QGIS (GeoPackage, GeoParquet), "
                                      "Power BI (CSV with latitude and longitude) or ArcGIS "
                                      "(GeoJSON)")
    e.add_argument("--format", choices=jobs.EXPORT_FORMATS, default="gpkg")
    e.add_argument("--out", help="file to write (default out/incidents.gpkg, .parquet, .csv "
                                 "or .geojson)")
    e.add_argument("--start", help="first day, YYYY-MM-DD (default: all)")
    e.add_argument("--end", help="last day, YYYY-MM-DD, inclusive")
    e.add_argument("--categories", help="comma-separated taxonomy keys (default: all)")
    common(e)
    e.set_defaults(func=_cmd_export)

    y = sub.add_parser("synth", help="write SYNTHETIC council-style exports with planted truth")
    y.add_argument("--out", type=Path, default=Path("data/synthetic"))
    y.add_argument("--n", type=int, default=20_000, help="incidents (default 20000)")
    y.add_argument("--seed", type=int, default=0)
    y.add_argument("--start", default="2022-09-01")
    y.add_argument("--end", default="2024-08-31")
    common(y, store=False)
    y.set_defaults(func=_cmd_synth)

    u = sub.add_parser("user", help="app users who sign in with a password")
    usub = u.add_subparsers(dest="user_command", required=True)
    ua = usub.add_parser("add", help="add a user, or set a user's password and role, in "
                                     "the app's secrets file (Argon2 hash)")
    ua.add_argument("name", help="user name (letters, digits and . _ @ -)")
    ua.add_argument("--role", required=True, choices=auth.ROLES,
                    help="analyst or chair: every page; officer: patrol map; "
                         "partner: partner pack")
    ua.add_argument("--secrets", type=Path, default=auth.DEFAULT_SECRETS,
                    help="secrets file (default .streamlit/secrets.toml; created if absent)")
    ua.add_argument("--password-stdin", action="store_true",
                    help="read the password from the first line of stdin, not the terminal")
    common(ua, store=False)
    ua.set_defaults(func=_cmd_user)

    a = sub.add_parser("area", help="set up another area")
    asub = a.add_subparsers(dest="area_command", required=True)
    ai = asub.add_parser("init", help="write a configuration and a geodata manifest for an "
                                      "area, from boundary files or the London LSOAs")
    ai.add_argument("--borough", help="a London borough's code or name, or 'all' (from "
                                      "london_lsoa21.gpkg in the geodata cache)")
    ai.add_argument("--lsoa", help="LSOA boundaries, any format GDAL reads "
                                   "(FILE or FILE:CODE_COLUMN:NAME_COLUMN)")
    ai.add_argument("--la", help="a local authority's GSS code (e.g. E09000007): its LSOAs, "
                                 "wards and population downloaded from ONS and Nomis "
                                 "($HOTSPOTS_ONS_ARCGIS, $HOTSPOTS_NOMIS name other "
                                 "addresses)")
    ai.add_argument("--layer", action="append", metavar="KEY=FILE",
                    help="another layer (ward, snt, pspo, estate...); repeatable")
    ai.add_argument("--name", help="the area's name (default: the borough's)")
    ai.add_argument("--code", help="the area's code (default: the borough's)")
    ai.add_argument("--population", help="residents by LSOA, CSV (default in London: "
                                         "population_lsoa21_london.csv)")
    ai.add_argument("--out", help="folder to write to (default areas/<name>)")
    ai.add_argument("--json", action="store_true", help="print one JSON object")
    ai.set_defaults(func=_cmd_area)

    f = sub.add_parser("fetch", help="data from its official sources online")
    fsub = f.add_subparsers(dest="fetch_command", required=True)
    fp = fsub.add_parser("policeuk", help="police.uk crimes for the study area, by API, "
                                          "into the store (one load per month)")
    fp.add_argument("--months", required=True,
                    help="YYYY-MM, YYYY-MM..YYYY-MM (inclusive), a comma-separated list, or "
                         "latest[:N] (the newest N months police.uk holds; N=1)")
    fp.add_argument("--categories", help="comma-separated taxonomy keys (default: all)")
    fp.add_argument("--api-url", help="police.uk API base (default: $HOTSPOTS_POLICEUK_API "
                                      "or the public API)")
    fp.add_argument("--refresh", action="store_true",
                    help="ask again for months already loaded (police.uk revises them)")
    common(fp)
    fp.set_defaults(func=_cmd_fetch_policeuk)

    d = sub.add_parser("demo", help="install geodata, load police.uk + synthetic data, "
                                    "summarise the latest month")
    d.add_argument("--from", dest="source_dir", help="install geodata from this folder")
    d.add_argument("--data", default="data", help="store and synthetic data folder (data/)")
    d.add_argument("--out", default="out", help="tables and maps (out/)")
    d.add_argument("--n", type=int, default=20_000, help="synthetic incidents (20000)")
    d.add_argument("--seed", type=int, default=0)
    d.add_argument("--json", action="store_true")
    d.set_defaults(func=_cmd_demo)
    return p


def main(argv: list[str] | None = None) -> int:
    """Run the command line; the exit status (0 on success)."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")
    try:
        settings = resolve_settings(config=args.config, store=getattr(args, "store", None),
                                    geodata=args.geodata)
        args.geodata = str(settings.geodata)
        config = load_config(settings.config)
        if hasattr(args, "store"):
            args.store = settings.store
            if args.command not in ("ingest",) and store.exists(settings.store):
                conn = store.connect(settings.store)
                try:
                    check_store_area(conn, config, store_file=settings.store,
                                     cache=settings.geodata)
                finally:
                    conn.close()
        return args.func(args, config)
    except (HotspotsError, ValueError) as exc:
        print(f"hotspots: error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
