"""All of London, end to end through the CLI: the real London burglary year plus synthetic
all-crime volume, then `summarise`, `detect` and `pack` of the latest month.

    python bench/bench_london.py [--per-month N] [--months M] [--files GLOB] [--keep DIR]

Sets up a temporary area with `hotspots area init --borough all` (4,994 LSOAs) over a
geodata cache installed from ``../shared/geodata``; writes, for each of the latest ``M``
(default 12) months of the police.uk London burglary files, ``N`` (default 86,000)
synthetic police.uk rows of the other crime types, at the real burglaries' points moved
by a few hundred metres (so a month holds about 90,000 incidents, as London's police.uk
months do); then times, each as its own `hotspots` process (a user's view):

  area_init, ingest (every file), backtest (kept in the store for detect and pack),
  summarise_lsoa / _msoa / _borough (map sizes too), summarise_lsoa_again (the
  derived layers now in the cache), detect, pack (cluster places), pack_lsoa.

Each step prints its wall and CPU seconds as it ends (the machine is shared: CPU seconds
are the steadier figure); one JSON line of figures at the end.
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
from pyproj import Transformer

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("HOTSPOTS_GEODATA_FROM", ROOT.parent / "shared" / "geodata"))
#: London's police.uk crime types other than burglary, with rough shares of a month.
OTHER_TYPES = {
    "Violence and sexual offences": 0.25, "Anti-social behaviour": 0.18,
    "Other theft": 0.13, "Vehicle crime": 0.10, "Theft from the person": 0.06,
    "Public order": 0.06, "Shoplifting": 0.06, "Criminal damage and arson": 0.05,
    "Robbery": 0.03, "Drugs": 0.03, "Bicycle theft": 0.02, "Other crime": 0.02,
    "Possession of weapons": 0.01,
}


def synthetic_month(real: pd.DataFrame, n: int, rng: np.random.Generator) -> pd.DataFrame:
    """``n`` police.uk rows of the other crime types in ``real``'s month, at its points
    moved by a normal step of 250 m (BNG), with 3,000 street names (repeat locations)."""
    to_bng = Transformer.from_crs(4326, 27700, always_xy=True)
    to_ll = Transformer.from_crs(27700, 4326, always_xy=True)
    pts = real.dropna(subset=["Longitude", "Latitude"])
    pick = rng.integers(0, len(pts), n)
    x, y = to_bng.transform(pts["Longitude"].to_numpy()[pick], pts["Latitude"].to_numpy()[pick])
    lon, lat = to_ll.transform(x + rng.normal(0, 250, n), y + rng.normal(0, 250, n))
    types = np.array(list(OTHER_TYPES))
    p = np.array(list(OTHER_TYPES.values()))
    ids = pd.Series(rng.integers(0, 2**63, size=n, dtype=np.int64)).map("{:016x}".format)
    out = pd.DataFrame({c: "" for c in real.columns}, index=range(n))
    out["Crime ID"] = (ids + ids.str[::-1] + ids + ids.str[:16]).to_numpy()
    out["Month"] = real["Month"].iloc[0]
    out["Reported by"] = out["Falls within"] = "Metropolitan Police Service"
    out["Longitude"], out["Latitude"] = np.round(lon, 6), np.round(lat, 6)
    out["Location"] = "On or near " + pd.Series(rng.integers(0, 3000, n)).map(
        "Synthetic Street {}".format)
    out["Crime type"] = types[rng.choice(len(types), size=n, p=p / p.sum())]
    out["Last outcome category"] = "Under investigation"
    return out


def step(name: str, argv: list[str], figures: dict, env: dict) -> dict:
    """Run ``hotspots ARGV --json`` as a process; record its wall and CPU seconds."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t = time.perf_counter()
    got = subprocess.run([sys.executable, "-c", "import sys; from hotspots.cli import main; "
                          "sys.exit(main())", *argv, "--json"], capture_output=True,
                         text=True, env=env, cwd=ROOT)
    wall = time.perf_counter() - t
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if got.returncode:
        sys.exit(f"{name} failed ({got.returncode}):\n{got.stderr[-3000:]}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    figures[f"{name}_s"], figures[f"{name}_cpu_s"] = round(wall, 2), round(cpu, 2)
    print(f"{name}: {wall:.1f} s wall, {cpu:.1f} s CPU", file=sys.stderr, flush=True)
    return json.loads(got.stdout)


def london_area(work: Path, figures: dict, env: dict) -> list[str]:
    """A geodata cache in ``work`` installed from ``SHARED`` and all of London set up by
    `hotspots area init --borough all` (timed as ``area_init``): the CLI's leading
    arguments for that area."""
    from hotspots import geography

    cache = work / "cache"
    geography.install_geodata(ROOT / "geodata" / "manifest.toml", source_dir=SHARED,
                              cache=cache)
    done = step("area_init", ["--geodata", str(cache), "area", "init", "--borough", "all",
                              "--out", str(work / "area")], figures, env)
    return ["--config", done["config"], "--geodata", str(cache)]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--per-month", type=int, default=86_000,
                    help="synthetic rows per month (default 86000)")
    ap.add_argument("--months", type=int, default=12, help="latest months (default 12)")
    ap.add_argument("--files", default=str(
        SHARED / "policeuk" / "*-metropolitan-street_london_burglary-only.csv"))
    ap.add_argument("--keep", help="work in this folder and keep it (default: temporary)")
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()
    files = sorted(glob.glob(args.files))[-args.months:]
    if not files:
        sys.exit(f"no files match {args.files}")
    work = Path(args.keep or tempfile.mkdtemp(prefix="bench-london-"))
    work.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    figures: dict = {"months": len(files), "synthetic_per_month": args.per_month}
    base = london_area(work, figures, env)
    rng = np.random.default_rng(args.seed)
    inputs = []
    for f in files:
        real = pd.read_csv(f, dtype=str)
        synth = work / f"synthetic-{Path(f).name}"
        synthetic_month(real, args.per_month, rng).to_csv(synth, index=False)
        inputs += [f, str(synth)]
    store = str(work / "london.sqlite")
    loaded = step("ingest", [*base, "ingest", *inputs, "--store", store], figures, env)
    figures["rows_read"] = sum(f["read"] or 0 for f in loaded["files"])
    figures["rows_accepted"] = sum(f["accepted"] or 0 for f in loaded["files"])
    step("backtest", [*base, "backtest", "--store", store, "--out", str(work / "o")],
         figures, env)
    for level in ("lsoa", "msoa", "borough"):
        meta = step(f"summarise_{level}", [*base, "summarise", "--store", store, "--level",
                                           level, "--out", str(work / "o")], figures, env)
        figures[f"map_{level}_mb"] = round(Path(meta["files"]["map"]).stat().st_size / 1e6, 2)
        figures["month_incidents"] = meta["incidents"]
    step("summarise_lsoa_again", [*base, "summarise", "--store", store, "--out",
                                  str(work / "o")], figures, env)
    meta = step("detect", [*base, "detect", "--store", store, "--out", str(work / "o")],
                figures, env)
    figures["detect_map_mb"] = round(Path(meta["files"]["map"]).stat().st_size / 1e6, 2)
    for name, units in (("pack", "places"), ("pack_lsoa", "lsoa")):
        meta = step(name, [*base, "pack", "--store", store, "--out", str(work / "o"),
                           "--units", units], figures, env)
        figures[f"{name}_html_mb"] = round(Path(meta["files"]["html"]).stat().st_size / 1e6,
                                           2)
    figures["work"] = str(work) if args.keep else None
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
