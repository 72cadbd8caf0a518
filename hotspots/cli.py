"""The ``hotspots`` command. Every command prints a short summary, or with --json one JSON
object (figures and files written). Exit status: 0 ok, 1 a file or input failed, 2 usage.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

from . import geography, jobs, store
from .config import load_config
from .errors import HotspotsError
from .summary import MEASURES, month_period, parse_period

DEMO_POLICE_UK = "metropolitan-street_tower-hamlets"


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
    print(f"store: {report['store']}")


def _print_summary(meta: dict) -> None:
    print(f"{meta['level'].upper()} summary for {meta['period']} (previous {meta['previous']}): "
          f"{meta['incidents']:,} incidents ({meta['total_in_areas']:,} in areas, "
          f"{meta['unassigned']:,} unassigned); ranked by {meta['rank_by']}")
    if meta["month_only_left_out"]:
        print(f"  {meta['month_only_left_out']:,} month-only police.uk rows left out: their "
              "month is not wholly inside the period")
    for t in meta["top"]:
        print(f"  {t['rank']:>3}. {t['name']} ({t['code']}): {t['n']:,} incidents, "
              f"{meta['rank_by']} {t[meta['rank_by']]:.1f}")
    print(f"  table: {meta['files']['table']}\n  map:   {meta['files']['map']}")


def _cmd_geodata(args, config) -> int:
    manifest = args.manifest or config.manifest
    results = geography.install_geodata(manifest, source_dir=args.source_dir,
                                        base_url=args.base_url, cache=args.geodata)
    if args.json:
        print(json.dumps({"cache": str(geography.cache_dir(args.geodata)), "files": results}))
    else:
        n_new = sum(r["status"] == "installed" for r in results)
        print(f"geodata: {n_new} file(s) installed, {len(results) - n_new} already present, in "
              f"{geography.cache_dir(args.geodata)}")
    return 0


def _cmd_ingest(args, config) -> int:
    report = jobs.ingest_files(args.files, config=config, store_file=args.store,
                               mapping=args.mapping, cache=args.geodata)
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
                          out_dir=args.out, cache=args.geodata)
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


def _cmd_task(args, config) -> int:
    conn = store.connect(args.store)
    try:
        if args.task_command == "add":
            decision = store.record_decision(
                conn, place_id=args.place, owner=args.owner, actions=args.actions,
                review_date=args.review, meeting_date=args.meeting)
            out = {"decision_id": decision, "store": str(store.store_path(args.store))}
            text = f"decision {decision} recorded for place {args.place}"
        else:
            table = store.read_decisions(conn, meeting_date=args.meeting)
            out = {"decisions": table.drop(columns="geometry_wkt").to_dict("records")}
            text = "\n".join(
                f"{r.meeting_date} #{r.decision_id} {r.place_id} {r.label}: "
                f"{store.OWNERS[r.owner]}; {r.actions}; review {r.review_date}"
                for r in table.itertuples()) or "no decisions recorded"
    finally:
        conn.close()
    print(json.dumps(out)) if args.json else print(text)
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


def _cmd_demo(args, config) -> int:
    """Install geodata, make synthetic council data, load it with the real police.uk rows,
    summarise the latest complete month by LSOA and ward."""
    out = {"steps": []}
    manifest = config.manifest
    geography.install_geodata(manifest, source_dir=args.source_dir, cache=args.geodata)
    cache = geography.cache_dir(args.geodata)
    synth_dir = Path(args.data) / "synthetic"
    args_s = argparse.Namespace(geodata=args.geodata, n=args.n, start="2022-09-01",
                                end="2024-08-31", seed=args.seed, out=synth_dir, json=args.json)
    if args.json:
        _quiet(_cmd_synth, args_s, config)
    else:
        _cmd_synth(args_s, config)
    police = sorted((cache / "policeuk").glob(f"*{DEMO_POLICE_UK}*.csv"))
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
                       cache=args.geodata) for level in ("lsoa", "ward")]
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


def _quiet(fn, *a):
    import contextlib
    import io

    with contextlib.redirect_stdout(io.StringIO()):
        return fn(*a)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="hotspots", description=__doc__)
    p.add_argument("--config", help="study-area configuration TOML (default: Tower Hamlets)")
    p.add_argument("--geodata", help="geodata cache folder (default: $HOTSPOTS_GEODATA or "
                                     "geodata/cache)")
    p.add_argument("-v", "--verbose", action="store_true")
    sub = p.add_subparsers(dest="command", required=True)

    def common(sp, store=True):
        sp.add_argument("--json", action="store_true", help="print one JSON object")
        if store:
            sp.add_argument("--store", help="store file (default: $HOTSPOTS_STORE or "
                                            "data/hotspots.sqlite)")

    g = sub.add_parser("geodata", help="boundary and open data files")
    gsub = g.add_subparsers(dest="geodata_command", required=True)
    gi = gsub.add_parser("install", help="install into the cache, checked by sha256")
    gi.add_argument("--from", dest="source_dir", help="copy from this folder, not download")
    gi.add_argument("--base-url", help="download NAME from BASE_URL/NAME (a mirror)")
    gi.add_argument("--manifest", help="geodata manifest (default: the configuration's)")
    common(gi, store=False)
    gi.set_defaults(func=_cmd_geodata)

    i = sub.add_parser("ingest", help="load exports into the store")
    i.add_argument("files", nargs="+", metavar="FILE")
    i.add_argument("--mapping", help="mapping TOML for council exports")
    common(i)
    i.set_defaults(func=_cmd_ingest)

    s = sub.add_parser("summarise", aliases=["summarize"],
                       help="ranked area table (CSV) and map (HTML) for a period")
    s.add_argument("--month", help="YYYY-MM (default: latest complete month in the store)")
    s.add_argument("--start", help="first day, YYYY-MM-DD (with --end)")
    s.add_argument("--end", help="last day, YYYY-MM-DD, inclusive")
    s.add_argument("--level", choices=("lsoa", "ward"), default="lsoa")
    s.add_argument("--measure", choices=MEASURES, default="density_per_km2",
                   help="shade and rank by (default density_per_km2)")
    s.add_argument("--categories", help="comma-separated taxonomy keys (default: all)")
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

    pk = sub.add_parser("pack", help="tasking pack (HTML, XLSX, CSV) for the latest "
                                     "complete month")
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

    k = sub.add_parser("task", help="the tasking log: decisions on places")
    ksub = k.add_subparsers(dest="task_command", required=True)
    ka = ksub.add_parser("add", help="record a decision on a place of the latest detect run")
    ka.add_argument("--place", required=True, help="place id, e.g. P5339-1819")
    ka.add_argument("--owner", required=True, choices=sorted(store.OWNERS))
    ka.add_argument("--actions", required=True, help="what will be done")
    ka.add_argument("--review", required=True, help="review date, YYYY-MM-DD")
    ka.add_argument("--meeting", help="meeting date, YYYY-MM-DD (default today)")
    common(ka)
    kl = ksub.add_parser("list", help="decisions recorded")
    kl.add_argument("--meeting", help="only this meeting, YYYY-MM-DD")
    common(kl)
    k.set_defaults(func=_cmd_task)

    y = sub.add_parser("synth", help="write SYNTHETIC council-style exports with planted truth")
    y.add_argument("--out", type=Path, default=Path("data/synthetic"))
    y.add_argument("--n", type=int, default=20_000, help="incidents (default 20000)")
    y.add_argument("--seed", type=int, default=0)
    y.add_argument("--start", default="2022-09-01")
    y.add_argument("--end", default="2024-08-31")
    common(y, store=False)
    y.set_defaults(func=_cmd_synth)

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
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")
    try:
        config = load_config(args.config)
        return args.func(args, config)
    except (HotspotsError, ValueError) as exc:
        print(f"hotspots: error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
