"""Ingest + assignment against the plain geopandas way, in one process.

    python bench/bench_ingest.py [N ...]        (default: 100000 1000000)

For each N, writes a council-style CSV of N synthetic incidents (lat/lon), then times
  baseline: pandas.read_csv, geopandas.points_from_xy, to_crs(27700), sjoin(within) to
            wards and to LSOAs;
  hotspots: read_export + to_incidents (every row check, projection, ward and LSOA
            assignment, location keys), as configured (projection shared with a worker
            thread on 2+ cores; area lookups kept from the warm-up run);
    _1thread: the same with the projection on the calling thread only;
    _cold:    the same with the area lookups built again (as in a fresh process);
  core:     the baseline's own work done the hotspots way, on one thread (read_export,
            Arrow's text-to-number cast, one pyproj transform of the coordinate arrays,
            assign_points to wards and LSOAs).
Checks that both give the same ward and LSOA for every point the baseline assigns to
exactly one area, and prints one JSON line of figures at the end.
"""

from __future__ import annotations

import json
import resource
import sys
import tempfile
import time
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
from pyproj import Transformer

from hotspots import assign, geography
from hotspots.assign import assign_points
from hotspots.config import load_config
from hotspots.ingest import Mapping, read_export, to_incidents
from hotspots.ingest import points as ingest_points
from hotspots.synthetic import make_synthetic

MAPPING = Mapping(source="bench", columns={
    "reference": "Ref", "datetime": "When", "category": "Type", "latitude": "Lat",
    "longitude": "Lon", "location": "Where", "caller": "Caller"})


def write_rows(lsoas: gpd.GeoDataFrame, n: int, path: Path) -> None:
    truth = make_synthetic(lsoas, n_incidents=n, dirty_fraction=0.0, rng=1).incidents
    lon, lat = Transformer.from_crs(27700, 4326, always_xy=True).transform(
        truth["x"].to_numpy(), truth["y"].to_numpy())
    when = pd.to_datetime(truth["date"]) + pd.to_timedelta(truth["hour"], unit="h")
    pd.DataFrame({
        "Ref": np.char.add("B", np.arange(n).astype(str)),
        "When": when.dt.strftime("%Y-%m-%d %H:%M"),
        "Type": truth["category"].to_numpy(),
        "Lat": np.round(lat, 6), "Lon": np.round(lon, 6),
        "Where": "near Brick Lane", "Caller": "",
    }).to_csv(path, index=False)


def baseline(path: Path, layers) -> tuple[pd.DataFrame, float]:
    t0 = time.perf_counter()
    df = pd.read_csv(path)
    pts = gpd.GeoDataFrame(df, geometry=gpd.points_from_xy(df["Lon"], df["Lat"]), crs=4326)
    pts = pts.to_crs(27700)
    out = {}
    for key in ("ward", "lsoa"):
        j = gpd.sjoin(pts[["geometry"]], layers[key][["code", "geometry"]], predicate="within")
        out[key] = j["code"]
    elapsed = time.perf_counter() - t0
    res = pd.DataFrame(index=df.index)
    for key, codes in out.items():
        counts = codes.groupby(level=0).size()
        single = counts.index[counts == 1]
        res[key] = pd.Series(codes.loc[single], index=single).reindex(df.index)
    res["Ref"] = df["Ref"].astype(str)
    return res, elapsed


def ours(path: Path, config, layers, area, *, threads: bool = True, cold: bool = False
         ) -> tuple[pd.DataFrame, float]:
    keep = ingest_points.BACKGROUND_MIN_ROWS
    if not threads:
        ingest_points.BACKGROUND_MIN_ROWS = sys.maxsize
    if cold:
        assign._CACHE.clear()
    try:
        t0 = time.perf_counter()
        frame = read_export(path)
        res = to_incidents(frame, file=path.name, config=config, layers=layers, area=area,
                           mapping=MAPPING)
        return res.incidents, time.perf_counter() - t0
    finally:
        ingest_points.BACKGROUND_MIN_ROWS = keep


def core(path: Path, layers) -> float:
    """The baseline's work only (read, project, assign to wards and LSOAs), the hotspots way."""
    t0 = time.perf_counter()
    frame = read_export(path)
    lon, lat = (pc.cast(pa.array(frame[c].array), pa.float64()).to_numpy(zero_copy_only=False)
                for c in ("Lon", "Lat"))
    x, y = Transformer.from_crs(4326, 27700, always_xy=True).transform(lon, lat)
    for key in ("ward", "lsoa"):
        assign_points(x, y, layers[key])
    return time.perf_counter() - t0


def fingerprint(frame: pd.DataFrame) -> tuple:
    """Columns, dtypes and a hash of every row: equal for equal frames."""
    return (tuple(frame.columns), tuple(map(str, frame.dtypes)),
            pd.util.hash_pandas_object(frame, index=False).to_numpy().tobytes())


def main(sizes: list[int]) -> dict:
    config = load_config()
    layers = geography.read_layers(config)
    area = geography.study_area(layers, config)
    figures = {"bench": "ingest_assign", "sizes": {}}
    with tempfile.TemporaryDirectory() as tmp:
        for n in sizes:
            path = Path(tmp) / f"rows_{n}.csv"
            write_rows(layers["lsoa"], n, path)
            ours(path, config, layers, area)  # warm-up: imports, code paths, area lookups
            base, t_base = baseline(path, layers)
            inc, t_ours = ours(path, config, layers, area)
            merged = base.merge(inc[["ref", "ward_code", "lsoa_code"]], left_on="Ref",
                                right_on="ref", how="left")
            diffs = {}
            for key, col in (("ward", "ward_code"), ("lsoa", "lsoa_code")):
                known = merged[key].notna()
                diffs[key] = int((merged.loc[known, key] != merged.loc[known, col]).sum())
            unassigned = {k: int(merged[k].isna().sum()) for k in diffs}
            accepted, want = len(inc), fingerprint(inc)
            # each timed run starts with no earlier result held (held results slow the
            # allocator down, and with it whatever runs next)
            del base, inc, merged
            inc, t_one = ours(path, config, layers, area, threads=False)
            same = fingerprint(inc) == want
            del inc
            inc, t_cold = ours(path, config, layers, area, cold=True)
            same = same and fingerprint(inc) == want
            del inc
            t_core = core(path, layers)
            figures["sizes"][str(n)] = {
                "rows": n, "accepted": accepted, "baseline_s": round(t_base, 3),
                "hotspots_s": round(t_ours, 3), "speedup": round(t_base / t_ours, 2),
                "hotspots_1thread_s": round(t_one, 3),
                "speedup_1thread": round(t_base / t_one, 2),
                "hotspots_cold_s": round(t_cold, 3), "speedup_cold": round(t_base / t_cold, 2),
                "runs_identical": same,
                "hotspots_core_s": round(t_core, 3),
                "speedup_core": round(t_base / t_core, 2),
                "assignment_differences": diffs,
                "baseline_unassigned": unassigned,
            }
            print(f"n={n:,}: baseline {t_base:.2f} s, hotspots ingest {t_ours:.2f} s "
                  f"(x{t_base / t_ours:.1f}; one thread {t_one:.2f} s, cold lookups "
                  f"{t_cold:.2f} s), same work as baseline {t_core:.2f} s "
                  f"(x{t_base / t_core:.1f}), differences {diffs}", file=sys.stderr)
    figures["max_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
    return figures


if __name__ == "__main__":
    args = [int(a) for a in sys.argv[1:]] or [100_000, 1_000_000]
    print(json.dumps(main(args)))
