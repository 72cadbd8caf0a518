"""Writing an area table in each format of hotspots.export.write_table.

    python bench/bench_export.py [N ...]        (default: 169 4994)

For each N, takes the first N of London's 4,994 LSOAs (2021) from the shared open data
folder (``london_lsoa21.gpkg``, or $HOTSPOTS_GEODATA_FROM), in EPSG:27700, with the columns
of ``hotspots summarise``'s table (rank, code, name, area, counts by category, rates,
repeats, change, residents; seeded random values), and times ``write_table`` to XLSX, CSV,
GeoJSON and GeoPackage (one run each after a warm-up on 10 rows), with the file sizes.
169 is Tower Hamlets' LSOA count, 4,994 all London's.
Prints one JSON line of figures at the end.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import time
from pathlib import Path

import geopandas as gpd
import numpy as np

from hotspots.export import FORMATS, write_table

SHARED = Path(os.environ.get("HOTSPOTS_GEODATA_FROM",
                             Path(__file__).resolve().parents[2] / "shared" / "geodata"))
CATEGORIES = ("asb_nuisance", "asb_personal", "burglary", "drug_dealing", "nox_sighting")


def area_table(lsoa: gpd.GeoDataFrame, n: int, rng: np.random.Generator) -> gpd.GeoDataFrame:
    rows = lsoa.iloc[:n]
    counts = {f"n_{c}": rng.poisson(4, n) for c in CATEGORIES}
    total = sum(counts.values())
    area = rows.geometry.area.to_numpy() / 1e6
    residents = rng.integers(1000, 2500, n).astype(float)
    return gpd.GeoDataFrame({
        "rank": np.arange(1, n + 1), "code": rows["code"].to_numpy(),
        "name": rows["name"].to_numpy(), "area_km2": area, "n": total, **counts,
        "harm": total * 1.5, "density_per_km2": total / area,
        "repeat_locations": rng.poisson(1, n), "repeat_share": rng.random(n),
        "n_prev": rng.poisson(20, n), "change_pct": rng.normal(0, 30, n),
        "residents": residents, "per_1000_residents": 1000 * total / residents,
    }, geometry=rows.geometry.to_numpy(), crs=27700)


def main(sizes: list[int]) -> dict:
    raw = gpd.read_file(SHARED / "london_lsoa21.gpkg").to_crs(27700)
    code = next(c for c in raw.columns if c.lower().endswith("cd"))
    name = next(c for c in raw.columns if c.lower().endswith("nm"))
    lsoa = raw.rename(columns={code: "code", name: "name"})
    rng = np.random.default_rng(1)
    out: dict = {"sizes": sizes, "seconds": {}, "megabytes": {}}
    with tempfile.TemporaryDirectory() as tmp:
        for fmt in FORMATS:  # warm-up: imports, drivers
            write_table(area_table(lsoa, 10, rng), Path(tmp) / f"warm.{fmt}")
        for n in sizes:
            table = area_table(lsoa, min(n, len(lsoa)), rng)
            for fmt in FORMATS:
                path = Path(tmp) / f"areas_{n}.{fmt}"
                start = time.perf_counter()
                write_table(table, path)
                took = time.perf_counter() - start
                out["seconds"][f"{fmt}_{n}"] = round(took, 3)
                out["megabytes"][f"{fmt}_{n}"] = round(path.stat().st_size / 1e6, 2)
                print(f"{n:>6} areas  {fmt:<8} {took:6.2f} s  "
                      f"{path.stat().st_size / 1e6:7.2f} MB", file=sys.stderr)
    return out


if __name__ == "__main__":
    args = [int(a) for a in sys.argv[1:]] or [169, 4994]
    print(json.dumps(main(args)))
