"""Commands that analyse the store: ``summarise``, ``detect``, ``pack`` and ``backtest``,
the period they read from the flags, and their printed summaries."""

from __future__ import annotations

import json
import sys

from .. import geography, jobs
from ..errors import HotspotsError
from ..export import heading
from ..progress import bar
from ..summary import month_period, parse_period


def _print_summary(meta: dict) -> None:
    print(f"{meta['level_label']} summary for {meta['period']} (previous {meta['previous']}): "
          f"{meta['incidents']:,} incidents ({meta['total_in_areas']:,} in areas, "
          f"{meta['unassigned']:,} unassigned); ranked by "
          f"{heading(meta['rank_by'])[0].lower()}")
    if meta["month_only_left_out"]:
        print(f"  {meta['month_only_left_out']:,} month-only police.uk rows left out: their "
              "month is not wholly inside the period")
    if meta.get("population"):
        print(f"  rates per 1,000 residents: {meta['population']}")
    measure = heading(meta["rank_by"])[0]  # "Incidents per km²", not the column's name
    for t in meta["top"]:
        value = t[meta["rank_by"]]
        print(f"  {t['rank']:>3}. {t['name']} ({t['code']}): {t['n']:,} incidents, "
              f"{measure.lower()} {'n/a' if value is None else f'{value:.1f}'}")
    for k, v in meta["files"].items():
        print(f"  {k + ':':<8} {v}")


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
    from ..pack import build_pack
    from ..selection import choose_areas

    cats = [c.strip() for c in args.categories.split(",")] if args.categories else None
    layers = geography.read_layers(config, cache=args.geodata)
    areas, where = choose_areas(layers[config.main_layer], (args.areas or "").split(","),
                                kind=config.main_layer)
    out = build_pack(config=config, store_file=args.store, out_dir=args.out,
                     cache=args.geodata, partner=args.partner, top=args.top, units=args.units,
                     period=month_period(args.month) if args.month else None,
                     categories=cats, cell_size_m=args.cell_size_m, layers=layers,
                     areas=areas, where=where)
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
                            test_months=args.test_months, cell_sizes_m=sizes,
                            progress=bar(args.json))
    print(json.dumps(out)) if args.json else _print_backtest(out)
    return 0
