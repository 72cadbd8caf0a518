"""Commands that move data: ``ingest`` (and its --dry-run preview), ``fetch policeuk``,
``export`` and ``synth``, with their printed summaries."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from .. import geography, jobs
from ..progress import bar


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


def _cmd_ingest(args, config) -> int:
    progress = bar(args.json)
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
    from ..synthetic import make_synthetic, write_synthetic

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
    from .. import fetch

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
