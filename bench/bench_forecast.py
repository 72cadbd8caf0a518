"""The forecast a meeting sees against the backtest that chose it and the fixed count maps.

    python bench/bench_forecast.py --files GLOB [--lsoa GEOJSON --name NAME --code CODE]
        [--categories a,b] [--test-months 12] [--sizes 50,100,150,200,250]
        [--geodata-from DIR]

Everything goes through the ``hotspots`` command (``hotspots.cli.main``) in a temporary
folder: the open data installed into a temporary cache (``geodata install --from``, the
shared data folder by default); with ``--lsoa`` the area is set up by ``area init`` (the
City of London: ``--lsoa city_of_london_lsoa21.geojson --name "City of London" --code
E09000001``), else the packaged Tower Hamlets configuration. The months are loaded one by
one as a partnership would load them: the months before the first test month (the latest
``test-months`` months with 3 months of history, as ``hotspots backtest`` tests), then for
each test month t:

  shown:   ``hotspots detect --month <month before t>`` on the months loaded so far (its
           forecast is chosen by a backtest of those months only), its GeoPackage layer
           ``forecast`` read back and scored on t's incidents once t is loaded, at exactly
           5% of the area: the layer's cells by rank, and if they cover less, the rest of
           the area taken with no preference (the expected value, as the backtest counts
           ties); beside it ``pai_whole_cells``, (n / N) / (a / A) of its whole cells.
           N counts the incidents inside the area;
  fixed:   every fixed count map (last month, counts over 3, 6, 12 months and all history,
           on each cell size) drawn as a whole-cell layer by the same function
           (``forecast.forecast_layer``) from the same months and scored the same way:
           like with like.

Then, with every month loaded, ``hotspots backtest --json`` (timed): the winner's mean PAI
at 5% over its test months (chosen on those months), ``honest`` (each month scored with
the map chosen on the months before it only), 12-month counts at 100 m and the naive map
at 100 m, and the best fixed count map at any one cell size (the backtest's fractional
figures).

``goal``: the shown layer against the best fixed count layer (the best in hindsight, so
favoured) on the months where the shown layer was chosen by backtest (not the fallback).
Prints one JSON line of figures at the end.
"""

from __future__ import annotations

import argparse
import contextlib
import glob
import io
import json
import os
import tempfile
import time
from pathlib import Path

import numpy as np
import shapely

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("HOTSPOTS_GEODATA_FROM", ROOT.parent / "shared" / "geodata"))
FIXED = ("naive", "counts_3m", "counts_6m", "counts_12m", "counts_all")


def _cli(*argv: str) -> dict:
    """``hotspots ARGV --json``, in this process; the JSON it printed."""
    from hotspots.cli import main

    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = main([*argv, "--json"])
    if code != 0:
        raise SystemExit(f"hotspots {' '.join(argv)} failed ({code}): {out.getvalue()[-500:]}")
    return json.loads(out.getvalue())


def _score(layer, grid, cell_size_m: float, x, y, coverage: float = 0.05
           ) -> tuple[float, float]:
    """PAI of a layer on points inside the area: at exactly ``coverage`` of the area (the
    layer's cells by rank, then, if it covers less, the rest of the area with no
    preference: the expected value, as the backtest counts ties), and of its whole cells
    at the share they cover, (n / N) / (a / A). ``grid`` is the layer's grid, of cells of
    ``cell_size_m``."""
    from hotspots.evaluate import captured
    from hotspots.grid import cell_index

    pts = layer.geometry.representative_point()
    idx = cell_index(grid, pts.x.to_numpy(), pts.y.to_numpy(), cell_size_m=cell_size_m)
    assert (idx >= 0).all() and len(set(idx)) == len(idx), "layer cells off its grid"
    scores = np.zeros(len(grid))
    scores[idx] = len(layer) + 1 - layer["rank"].to_numpy()
    cells = cell_index(grid, x, y, cell_size_m=cell_size_m)
    counts = np.bincount(cells[cells >= 0], minlength=len(grid)).astype(float)
    area = grid["area_km2"].to_numpy(float)
    exact = captured(scores, counts, area, np.array([coverage]))[0] / counts.sum() / coverage
    whole = counts[idx].sum() / counts.sum() / (area[idx].sum() / area.sum())
    return float(exact), float(whole)


def _args():
    ap = argparse.ArgumentParser()
    ap.add_argument("--files", required=True, help="glob of monthly police.uk files")
    ap.add_argument("--lsoa", help="the area's LSOAs (GeoJSON): set up by `area init`")
    ap.add_argument("--name", default="Area", help="the area's name (with --lsoa)")
    ap.add_argument("--code", default="", help="the area's code (with --lsoa)")
    ap.add_argument("--categories", help="comma-separated taxonomy keys (default all)")
    ap.add_argument("--test-months", type=int, default=12)
    ap.add_argument("--sizes", default="50,100,150,200,250",
                    help="cell sizes of the fixed count layers, metres")
    ap.add_argument("--geodata-from", default=str(SHARED), help="the open data folder")
    return ap.parse_args()


def _setup(args, tmp: Path) -> list[str]:
    """Install the open data into a temporary cache and set the area up; the global
    arguments of every later command."""
    cache = tmp / "cache"
    base = ["--geodata", str(cache)]
    _cli(*base, "geodata", "install", "--from", args.geodata_from,
         "--manifest", str(ROOT / "geodata" / "manifest.toml"))
    if args.lsoa:
        done = _cli(*base, "area", "init", "--lsoa", args.lsoa, "--name", args.name,
                    "--code", args.code, "--out", str(tmp / "area"))
        base = ["--config", done["config"], *base]
    return base


def main() -> dict:
    args = _args()
    os.chdir(ROOT)  # the packaged configuration names its manifest from the root
    import geopandas as gpd

    from hotspots import forecast as fc
    from hotspots import geography, store
    from hotspots.config import load_config
    from hotspots.grid import make_grid

    sizes = tuple(float(s) for s in args.sizes.split(","))
    cats = ["--categories", args.categories] if args.categories else []
    files = sorted(glob.glob(args.files))
    months = [Path(f).name[:7] for f in files]
    first = max(fc.MIN_HISTORY, len(months) - args.test_months)
    shown: list[dict] = []
    fixed: dict[tuple[str, float], list[float]] = {(m, s): [] for m in FIXED for s in sizes}
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        base = _setup(args, tmp)
        db = ["--store", str(tmp / "s.sqlite")]
        config = load_config(base[1]) if base[0] == "--config" else load_config()
        layers = geography.read_layers(config, cache=base[-1])
        land = geography.land_area(layers, config, cache=base[-1])
        _cli(*base, "ingest", *files[:first], *db)
        detect_s = []
        for i in range(first, len(months)):
            t0 = time.perf_counter()
            meta = _cli(*base, "detect", "--month", months[i - 1], *cats, *db,
                        "--out", str(tmp / "o"))
            detect_s.append(time.perf_counter() - t0)
            layer = gpd.read_file(meta["files"]["gpkg"], layer="forecast")
            _cli(*base, "ingest", files[i], *db)
            with store.connection(db[1]) as conn:
                inc = store.read_incidents(conn, categories=args.categories.split(",")
                                           if args.categories else None)
            test = inc.loc[inc["period"] == months[i]]
            x, y = test["x"].to_numpy(float), test["y"].to_numpy(float)
            inside = shapely.intersects_xy(land, x, y)
            x, y = x[inside], y[inside]
            binned = fc.bin_incidents(inc.loc[inc["period"] < months[i]], land,
                                      cell_sizes=sizes)
            for m, s in fixed:
                fixed[(m, s)].append(_score(fc.forecast_layer(binned, {
                    "method": m, "cell_size_m": s, "pai_5pct": 0.0, "test_months": 0}),
                    binned.grids[s], s, x, y)[0])
            f = meta["forecast"]
            grid = (binned.grids[f["cell_size_m"]] if f["cell_size_m"] in binned.grids
                    else make_grid(land, cell_size_m=f["cell_size_m"]))
            pai, whole = _score(layer, grid, f["cell_size_m"], x, y)
            shown.append({"month": months[i], "pai": pai, "pai_whole_cells": whole,
                          "method": f["method"], "cell_size_m": f["cell_size_m"],
                          "fallback": f["fallback"], "test_months": f["test_months"],
                          "area_share": round(float(layer.area.sum()) / land.area, 4)})
        t0 = time.perf_counter()
        res = _cli(*base, "backtest", *cats, *db, "--test-months", str(args.test_months),
                   "--out", str(tmp / "o"))
        backtest_s = time.perf_counter() - t0
    return _figures(args, res, shown, fixed, backtest_s, detect_s)


def _figures(args, res: dict, shown: list[dict], fixed: dict, backtest_s: float,
             detect_s: list[float]) -> dict:
    summary = {(r["method"], r["cell_size_m"]): r["pai"] for r in res["summary"]}
    counts = {k: v for k, v in summary.items() if k[0] in FIXED}
    best_counts = max(counts, key=counts.get)
    chosen = [i for i, s in enumerate(shown) if not s["fallback"]]

    def mean(values) -> float | None:
        return round(float(np.mean(values)), 2) if len(values) else None

    layer_means = {k: mean([v[i] for i in chosen]) for k, v in fixed.items()}
    best_layer = max(layer_means, key=lambda k: layer_means[k] or 0.0) if chosen else None
    shown_chosen = mean([shown[i]["pai"] for i in chosen])
    return {
        "files": args.files, "area": args.name if args.lsoa else "Tower Hamlets",
        "categories": args.categories, "test_months": res["test_months"],
        "incidents_tested": res["incidents_tested"],
        "shown_pai_5pct": mean([s["pai"] for s in shown]),
        "shown_pai_whole_cells": mean([s["pai_whole_cells"] for s in shown]),
        "shown_months": len(shown), "shown_months_fallback": len(shown) - len(chosen),
        "shown_pai_5pct_chosen_months": shown_chosen,
        "winner": f"{res['winner']['method']} {res['winner']['cell_size_m']:g} m",
        "winner_pai_5pct": round(res["winner"]["pai_5pct"], 2),
        "honest_pai_5pct": round(res["chosen_before_scored"]["pai_5pct"], 2),
        "counts_12m_100m": round(summary[("counts_12m", 100.0)], 2),
        "naive_100m": round(summary[("naive", 100.0)], 2),
        "best_fixed_counts": f"{best_counts[0]} {best_counts[1]:g} m",
        "best_fixed_counts_pai_5pct": round(counts[best_counts], 2),
        "fixed_layers_chosen_months": {f"{m} {s:g} m": v for (m, s), v in layer_means.items()},
        "goal": None if best_layer is None else {
            "shown": shown_chosen, "best_fixed_layer": f"{best_layer[0]} {best_layer[1]:g} m",
            "best_fixed_layer_pai": layer_means[best_layer],
            "met": bool(shown_chosen >= layer_means[best_layer])},
        "backtest_s": round(backtest_s, 2),
        "detect_s_median": round(float(np.median(detect_s)), 2) if detect_s else None,
        "shown": shown,
    }


if __name__ == "__main__":
    print(json.dumps(main()))
