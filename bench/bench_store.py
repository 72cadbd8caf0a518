"""`hotspots ingest` end to end (through the CLI, store included) against pandas reading
the same CSV, in one process.

    python bench/bench_store.py [N ...] [--store URL]     (default: 1000000)

For each N, writes a police.uk street-level CSV of N rows inside Tower Hamlets, then times
  read_csv:  pandas.read_csv of the file (the baseline);
  ingest:    `hotspots ingest FILE --store S --json` into a new store;
  again:     the same command on the same file (already loaded: skipped by its key);
  resaved:   the same rows in a file with other bytes (every row compared, none written);
  read:      store.read_incidents of everything.
Ratios are against read_csv. The engine is the store's (``--store`` takes a
postgresql:// URL of an empty database, one size only; default: a new SQLite file in a
temporary folder per size). Peak memory is
the process's maximum resident set. One JSON line of figures at the end.
"""

from __future__ import annotations

import contextlib
import io
import json
import resource
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
from pyproj import Transformer

from hotspots import geography, store
from hotspots.cli import main as cli
from hotspots.config import load_config
from hotspots.schema import POLICE_UK_HEADER
from hotspots.synthetic import make_synthetic


def write_police_uk(lsoas, n: int, path: Path, config, seed: int = 1) -> None:
    """``n`` police.uk-format rows at synthetic points inside the study area."""
    rng = np.random.default_rng(seed)
    truth = make_synthetic(lsoas, n_incidents=n, dirty_fraction=0.0, rng=seed).incidents
    lon, lat = Transformer.from_crs(27700, 4326, always_xy=True).transform(
        truth["x"].to_numpy(), truth["y"].to_numpy())
    types = np.array(sorted(config.police_uk_types))
    ids = pd.Series(rng.integers(0, 2**63, size=n, dtype=np.int64)).map("{:016x}".format)
    pd.DataFrame(dict(zip(POLICE_UK_HEADER, [
        (ids + ids.str[::-1] + ids + ids.str[:8] + ids.str[8:]).to_numpy(),
        pd.to_datetime(truth["date"]).dt.strftime("%Y-%m").to_numpy(),
        "Metropolitan Police Service", "Metropolitan Police Service",
        np.round(lon, 6), np.round(lat, 6),
        "On or near " + pd.Series(rng.integers(0, 3000, n)).astype(str) + " Street",
        lsoas["code"].iloc[0], "Tower Hamlets 001A",
        types[rng.integers(0, len(types), n)], "Under investigation", "",
    ], strict=True))).to_csv(path, index=False)


def timed_cli(*argv: str) -> tuple[dict, float]:
    out = io.StringIO()
    t0 = time.perf_counter()
    with contextlib.redirect_stdout(out):
        code = cli([*argv, "--json"])
    elapsed = time.perf_counter() - t0
    if code != 0:
        raise SystemExit(f"hotspots {' '.join(argv)} failed: {out.getvalue()[:500]}")
    return json.loads(out.getvalue()), elapsed


def main(sizes: list[int], url: str | None) -> dict:
    config = load_config()
    lsoas = geography.read_layers(config)["lsoa"]
    figures = {"bench": "store", "sizes": {}}
    with tempfile.TemporaryDirectory() as tmp:
        for n in sizes:
            path = Path(tmp) / f"police_{n}.csv"
            write_police_uk(lsoas, n, path, config)
            target = url or str(Path(tmp) / f"store_{n}.sqlite")
            conn = store.connect(target)
            figures["engine"] = conn.engine() if hasattr(conn, "engine") else "sqlite (before)"
            if len(store.read_loads(conn)):
                raise SystemExit(f"{store.store_name(target)} is not empty: give a new database")
            conn.close()
            t0 = time.perf_counter()
            pd.read_csv(path)
            t_pd = time.perf_counter() - t0
            report, t_ingest = timed_cli("ingest", str(path), "--store", target)
            first = report["files"][0]
            _, t_again = timed_cli("ingest", str(path), "--store", target)
            resaved = Path(tmp) / f"police_{n}_resaved.csv"
            resaved.write_bytes(path.read_bytes() + b"\n")
            report2, t_resaved = timed_cli("ingest", str(resaved), "--store", target)
            conn = store.connect(target)
            t0 = time.perf_counter()
            n_read = len(store.read_incidents(conn))
            t_read = time.perf_counter() - t0
            conn.close()
            figures["sizes"][str(n)] = {
                "rows": n, "accepted": first["accepted"], "read_back": n_read,
                "read_csv_s": round(t_pd, 3), "ingest_s": round(t_ingest, 3),
                "ingest_ratio": round(t_ingest / t_pd, 2),
                "again_s": round(t_again, 3), "again_ratio": round(t_again / t_pd, 2),
                "resaved_s": round(t_resaved, 3),
                "resaved_ratio": round(t_resaved / t_pd, 2),
                "resaved_unchanged": report2["files"][0]["unchanged"],
                "read_incidents_s": round(t_read, 3),
            }
            print(f"n={n:,} ({figures['engine']}): read_csv {t_pd:.2f} s; ingest "
                  f"{t_ingest:.2f} s (x{t_ingest / t_pd:.1f}); again {t_again:.2f} s "
                  f"(x{t_again / t_pd:.1f}); same rows, new bytes {t_resaved:.2f} s "
                  f"(x{t_resaved / t_pd:.1f}); read back {t_read:.2f} s", file=sys.stderr)
    figures["max_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
    return figures


if __name__ == "__main__":
    args = sys.argv[1:]
    url = None
    if "--store" in args:
        i = args.index("--store")
        url = args[i + 1]
        del args[i:i + 2]
    print(json.dumps(main([int(a) for a in args] or [1_000_000], url)))
