"""The forecast a meeting sees against the backtest that chose it, and the backtest's cost.

    python bench/bench_forecast.py --files GLOB [--config TOML] [--categories a,b]
                                   [--test-months 12] [--geodata DIR]

In a temporary store, month by month as a partnership would load them: the months before
the first test month are ingested, then for each test month t (the latest ``test-months``
months with 3 months of history, as ``hotspots backtest`` tests):

  shown:    ``hotspots detect`` for the month before t (``jobs.detect``, which keeps or
            runs the backtest for the data loaded so far), its GeoPackage layer
            ``forecast`` read back and scored on t's incidents once t is loaded:
            PAI = (n / N) / (a / A), the layer's whole cells;
then, with every month loaded, ``hotspots backtest`` (``jobs.run_backtest``, timed):

  winner:   the winner's mean PAI at 5% over the test months (chosen on those months);
  honest:   each month scored with the map chosen on the months before it only;
  counts_12m_100m, naive_100m, best_fixed_counts (best counts_* map at any single size).

Like with like, ``fixed_layers``: the fixed count maps on 50 m cells (counts over 3, 6, 12
months) drawn as whole-cell layers by the same function and scored on the same months
exactly as the shown layer is (the backtest's figures count tied cells fractionally).

Prints one JSON line of figures at the end.
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import tempfile
import time
from pathlib import Path

import numpy as np
import shapely

ROOT = Path(__file__).resolve().parents[1]


FIXED = ("counts_3m", "counts_6m", "counts_12m")


def _score(layer, land, x, y) -> float:
    """PAI of a layer's whole cells on points inside the land: (n / N) / (a / A)."""
    cover = shapely.union_all(layer.geometry.values)
    return float(shapely.intersects_xy(cover, x, y).mean()
                 / (shapely.area(cover) / shapely.area(land)))


def main() -> dict:
    ap = argparse.ArgumentParser()
    ap.add_argument("--files", required=True, help="glob of monthly police.uk files")
    ap.add_argument("--config", help="configuration TOML (default Tower Hamlets)")
    ap.add_argument("--categories", help="comma-separated taxonomy keys")
    ap.add_argument("--test-months", type=int, default=12)
    ap.add_argument("--geodata", help="geodata cache")
    args = ap.parse_args()
    os.chdir(ROOT)
    import geopandas as gpd

    from hotspots import forecast as fc
    from hotspots import geography, jobs, store
    from hotspots.config import load_config
    from hotspots.summary import month_period

    config = load_config(args.config) if args.config else load_config()
    cats = args.categories.split(",") if args.categories else None
    layers = geography.read_layers(config, cache=args.geodata)
    land = geography.land_area(layers, config)
    files = sorted(glob.glob(args.files))
    months = [Path(f).name[:7] for f in files]
    first = max(3, len(months) - args.test_months)
    shown, fixed = [], {m: [] for m in FIXED}
    with tempfile.TemporaryDirectory() as tmp:
        db = Path(tmp) / "s.sqlite"

        def load(paths):
            jobs.ingest_files(paths, config=config, store_file=db, cache=args.geodata)

        load(files[:first])
        detect_s = []
        for i in range(first, len(months)):
            t0 = time.perf_counter()
            meta = jobs.detect(config=config, period=month_period(months[i - 1]),
                               categories=cats, store_file=db, out_dir=Path(tmp) / "o",
                               cache=args.geodata, layers=layers)
            detect_s.append(time.perf_counter() - t0)
            layer = gpd.read_file(meta["files"]["gpkg"], layer="forecast")
            load([files[i]])
            conn = store.connect(db)
            inc = store.read_incidents(conn, categories=cats)
            conn.close()
            test = inc.loc[inc["period"] == months[i]]
            x, y = test["x"].to_numpy(float), test["y"].to_numpy(float)
            inside = shapely.intersects_xy(land, x, y)
            share = shapely.area(shapely.union_all(layer.geometry.values)) / shapely.area(land)
            f = meta["forecast"]
            upto = inc.loc[inc["period"] < months[i]]
            binned = fc.bin_incidents(upto, land, cell_sizes=(50.0,))
            for m in FIXED:
                fixed[m].append(_score(fc.forecast_layer(binned, {
                    "method": m, "cell_size_m": 50.0, "pai_5pct": 0.0, "test_months": 0}),
                    land, x[inside], y[inside]))
            shown.append({"month": months[i], "pai": _score(layer, land, x[inside], y[inside]),
                          "method": f["method"], "cell_size_m": f["cell_size_m"],
                          "fallback": f["fallback"], "area_share": round(float(share), 4)})
        t0 = time.perf_counter()
        res = jobs.run_backtest(config=config, store_file=db, out_dir=Path(tmp) / "o",
                                cache=args.geodata, categories=cats,
                                test_months=args.test_months)
        backtest_s = time.perf_counter() - t0
    summary = {(r["method"], r["cell_size_m"]): r["pai"] for r in res["summary"]}
    counts = [v for (m, _), v in summary.items() if m.startswith("counts")]
    chosen = [s["pai"] for s in shown if not s["fallback"]]
    return {
        "files": args.files, "categories": cats, "test_months": res["test_months"],
        "incidents_tested": res["incidents_tested"],
        "shown_pai_5pct": round(float(np.mean([s["pai"] for s in shown])), 2),
        "shown_pai_5pct_chosen_months": round(float(np.mean(chosen)), 2) if chosen else None,
        "shown_months_fallback": sum(s["fallback"] for s in shown),
        "winner": f"{res['winner']['method']} {res['winner']['cell_size_m']:g} m",
        "winner_pai_5pct": round(res["winner"]["pai_5pct"], 2),
        "honest_pai_5pct": round(res["chosen_before_scored"]["pai_5pct"], 2),
        "counts_12m_100m": round(summary[("counts_12m", 100.0)], 2),
        "naive_100m": round(summary[("naive", 100.0)], 2),
        "best_fixed_counts": round(max(counts), 2),
        "fixed_layers": {f"{m}_50m": round(float(np.mean(v)), 2) for m, v in fixed.items()},
        "backtest_s": round(backtest_s, 2),
        "detect_s_median": round(float(np.median(detect_s)), 2),
        "shown": shown,
    }


if __name__ == "__main__":
    print(json.dumps(main()))
