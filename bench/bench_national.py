"""The moonshot of issue 14: a national-sized year of rows to LSOA counts and a Gi* map,
through the CLI as a user runs it.

    python bench/bench_national.py [ROWS] [--months M] [--keep DIR]   (default 6000000, 12)

England and Wales record about 6M crimes a year; the geodata here covers London only, so
the year is synthetic: ``ROWS`` police.uk rows over all of London's 4,994 LSOAs (six
times London's real volume), ``ROWS / M`` in each of the latest ``M`` months of the real
London burglary files, at those burglaries' points moved by a few hundred metres
(:func:`bench_london.synthetic_month`). The files are written first (untimed); then each
step runs as its own `hotspots` process:

  ingest:     every file, streamed into a new SQLite store (the store is what users wait
              for, so it is in the figure);
  counts:     `summarise --level lsoa` over the whole year (incidents per LSOA, rates,
              the area map);
  backtest:   run once and kept in the store (as a month's routine does; not part of the
              goal: `detect` reads it back);
  gistar:     `detect` over the whole year: grid counts, Gi* with FDR, density and places
              (the Gi* map).

``goal_s`` is ingest + counts + gistar, against the issue's 60 s on this 2-core machine.
Wall and CPU seconds per step; one JSON line of figures at the end.
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_london import ROOT, SHARED, london_area, step, synthetic_month  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("rows", nargs="?", type=int, default=6_000_000,
                    help="rows in the year (default 6,000,000)")
    ap.add_argument("--months", type=int, default=12, help="months (default 12)")
    ap.add_argument("--keep", help="work in this folder and keep it (default: temporary)")
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()
    files = sorted(glob.glob(str(SHARED / "policeuk" / "*_london_burglary-only.csv")))
    files = files[-args.months:]
    if not files:
        sys.exit(f"no London burglary files in {SHARED / 'policeuk'}")
    work = Path(args.keep or tempfile.mkdtemp(prefix="bench-national-"))
    work.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    figures: dict = {"rows": args.rows, "months": len(files)}
    base = london_area(work, figures, env)
    rng = np.random.default_rng(args.seed)
    t = time.perf_counter()
    inputs = []
    for f in files:
        real = pd.read_csv(f, dtype=str)
        path = work / f"national-{Path(f).name}"
        synthetic_month(real, args.rows // len(files), rng).to_csv(path, index=False)
        inputs.append(str(path))
    figures["write_files_s"] = round(time.perf_counter() - t, 2)
    figures["csv_mb"] = round(sum(Path(p).stat().st_size for p in inputs) / 1e6, 1)
    store = str(work / "national.sqlite")
    loaded = step("ingest", [*base, "ingest", *inputs, "--store", store], figures, env)
    figures["rows_accepted"] = sum(f["accepted"] or 0 for f in loaded["files"])
    first = pd.Period(Path(files[0]).name[:7], "M")
    last = pd.Period(Path(files[-1]).name[:7], "M")
    year = ["--start", first.start_time.date().isoformat(),
            "--end", last.end_time.date().isoformat()]
    meta = step("counts", [*base, "summarise", "--store", store, "--level", "lsoa", *year,
                           "--out", str(work / "o")], figures, env)
    figures["incidents_counted"] = meta["incidents"]
    figures["lsoa_map_mb"] = round(Path(meta["files"]["map"]).stat().st_size / 1e6, 2)
    step("backtest", [*base, "backtest", "--store", store, "--out", str(work / "o")],
         figures, env)
    meta = step("gistar", [*base, "detect", "--store", store, *year, "--out",
                           str(work / "o")], figures, env)
    figures["gistar_cells"] = meta["cells"]
    figures["gistar_cell_size_m"] = meta["cell_size_m"]
    figures["hot_cells_99"] = meta["hot_cells"]["3"]
    figures["gistar_map_mb"] = round(Path(meta["files"]["map"]).stat().st_size / 1e6, 2)
    figures["goal_s"] = round(figures["ingest_s"] + figures["counts_s"]
                              + figures["gistar_s"], 2)
    figures["goal_cpu_s"] = round(figures["ingest_cpu_s"] + figures["counts_cpu_s"]
                                  + figures["gistar_cpu_s"], 2)
    figures["work"] = str(work) if args.keep else None
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
