"""police.uk by API against loading the CSVs, through a local stand-in of the API that
serves every London burglary (the shared London months, 53,000 rows).

    python bench/bench_fetch.py [MONTHS] [SPLIT_AT]      (default: 12 100)

In this process, for the first MONTHS months of 2023-09..2024-08:
  baseline: `ingest_files` of the Tower Hamlets burglary CSVs (the borough's rows, by
            their LSOA name) into a new store;
  api:      `fetch_policeuk --categories burglary` for the configured area (polite client:
            15 requests a second) into a new store, then the same with the stand-in
            answering 503 above SPLIT_AT crimes (a forced split into tiles).
Prints one JSON line: seconds, requests, tiles, incidents of each, and how many incidents
the API store and the CSV store have in common and alone.
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from hotspots import fetch, geography, jobs, store  # noqa: E402
from hotspots.config import load_config  # noqa: E402
from tests.fake_services import Fake, crimes_from_csvs, serve  # noqa: E402

SHARED = ROOT.parent / "shared" / "geodata"


def refs(db: Path) -> set[str]:
    conn = store.connect(db)
    try:
        return set(store.read_incidents(conn, categories=["burglary"])["ref"])
    finally:
        conn.close()


def main(n_months: int = 12, split_at: int = 100) -> dict:
    with tempfile.TemporaryDirectory(prefix="bench-fetch-") as tmp:
        return run(n_months, split_at, Path(tmp))


def run(n_months: int, split_at: int, tmp: Path) -> dict:
    months = fetch.parse_months("2023-09..2024-08")[:n_months]
    config = load_config()
    cache = tmp / "cache"
    geography.install_geodata(ROOT / "geodata" / "manifest.toml", source_dir=SHARED,
                              cache=cache)
    london = [cache / "policeuk" / f"{m}-metropolitan-street_london_burglary-only.csv"
              for m in months]
    borough = [cache / "policeuk" / f"{m}-metropolitan-street_tower-hamlets_burglary-only.csv"
               for m in months]
    t0 = time.perf_counter()
    jobs.ingest_files(borough, config=config, store_file=tmp / "csv.sqlite", cache=cache)
    t_csv = time.perf_counter() - t0
    fake = Fake(crimes=crimes_from_csvs(london))
    out = {"months": len(months), "london_crimes": sum(map(len, fake.crimes.values())),
           "csv_s": round(t_csv, 2)}
    with serve(fake) as base:
        for label, limit in (("api", 10_000), ("split", split_at)):
            fake.max_crimes = limit
            t0 = time.perf_counter()
            rep = fetch.fetch_policeuk(config=config, months=months, categories=["burglary"],
                                       store_file=tmp / f"{label}.sqlite", cache=cache,
                                       base_url=f"{base}/police")
            assert rep["error"] is None, rep["error"]
            out[f"{label}_s"] = round(time.perf_counter() - t0, 2)
            out[f"{label}_requests"] = rep["requests"]
            out[f"{label}_tiles"] = sum(m["tiles"] for m in rep["months"])
            out[f"{label}_edge_duplicates"] = sum(m["duplicates"] for m in rep["months"])
            out[f"{label}_margin_left_out"] = sum(m["outside"] for m in rep["months"])
    a, s, c = refs(tmp / "api.sqlite"), refs(tmp / "split.sqlite"), refs(tmp / "csv.sqlite")
    out.update(csv_incidents=len(c), api_incidents=len(a), split_incidents=len(s),
               common=len(a & c), api_only=len(a - c), csv_only=len(c - a),
               split_same_as_api=s == a, ratio_api_to_csv=round(out["api_s"] / t_csv, 2))
    return out


if __name__ == "__main__":
    args = [int(a) for a in sys.argv[1:]]
    print(json.dumps(main(*args)))
