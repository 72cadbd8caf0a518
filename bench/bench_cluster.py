"""Clustering: hotspots.cluster against the plain ways, in one process.

    python bench/bench_cluster.py [N ...]        (default: 100000 1000000)

For each N, makes N synthetic incidents in the real Tower Hamlets LSOAs (15 planted
hotspots, 10 repeat addresses, background; hotspots.synthetic, seed 1) and times
  ours_dbscan:    cluster_points(method="dbscan"): suggested eps/min_samples, 10 m bins
                  with sample_weight;
  ours_hdbscan:   cluster_points(method="hdbscan"): sklearn HDBSCAN on a 20,000-point
                  subsample, labels extended to the rest;
  sklearn_dbscan: sklearn DBSCAN on the raw points with the same eps/min_samples, only up
                  to 200,000 points (its neighbourhood lists grow with N x density; above
                  that it risks the machine's memory, so it is skipped and the JSON says so);
  hdbscan_pkg:    the hdbscan package on the raw points (min_cluster_size as ours, 0.5% of
                  N; min_samples 10, since a min_samples of 0.5% of N is out of reach at 1M),
                  up to --hdbscan-max points (default 1,000,000).
Reports the adjusted Rand index of ours against exact raw DBSCAN where it ran, the
number of clusters, and recovery of the planted hotspots (share with a top-20 cluster
whose hull, buffered 25 m, lies within 100 m of the planted centre) and precision (share
of the top-20 clusters within 100 m of a planted hotspot or repeat address). Progress on
stderr, one JSON line on stdout at the end. ``*_peak_rss_mb`` is the process's peak resident
memory during that step (Linux VmHWM, reset before it; it includes the data already held).
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import time

import numpy as np
import shapely
from sklearn.cluster import DBSCAN
from sklearn.metrics import adjusted_rand_score

from hotspots import geography
from hotspots.cluster import cluster_points, suggest_dbscan_params, suggest_hdbscan_params
from hotspots.config import load_config
from hotspots.synthetic import make_synthetic

RAW_DBSCAN_MAX = 200_000
HDBSCAN_PKG_MIN_SAMPLES = 10


def rss_mb() -> int:
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)


def quality(x, y, labels, data) -> dict:
    """Clusters, recovery of planted hotspots and precision of the 20 largest clusters."""
    k = int(labels.max()) + 1
    if k == 0:
        return {"clusters": 0, "recovery": 0.0, "precision_top20": None}
    sizes = np.bincount(labels[labels >= 0], minlength=k)
    top = np.argsort(-sizes, kind="stable")[:20]
    order = np.argsort(labels, kind="stable")
    bounds = np.r_[0, np.cumsum(np.bincount(labels + 1, minlength=k + 1))]
    hulls = []
    for c in top:
        idx = order[bounds[c + 1]:bounds[c + 2]]
        hulls.append(shapely.convex_hull(shapely.multipoints(np.c_[x[idx], y[idx]])).buffer(25))
    hulls = np.array(hulls, dtype=object)
    hot, addr = data.hotspots, data.addresses
    near = shapely.distance(hulls[:, None], shapely.points(hot["x"], hot["y"])[None, :]) <= 100
    targets = shapely.points(np.r_[hot["x"], addr["x"]], np.r_[hot["y"], addr["y"]])
    good = (shapely.distance(hulls[:, None], targets[None, :]) <= 100).any(axis=1)
    return {"clusters": k, "recovery": round(float(near.any(axis=0).mean()), 3),
            "precision_top20": round(float(good.mean()), 3),
            "clustered_share": round(float((labels >= 0).mean()), 3)}


def timed(fn, res: dict, key: str):
    """Run ``fn``; store its seconds in ``res[key + "_s"]`` and the process's peak resident
    memory during the run in ``res[key + "_peak_rss_mb"]`` (Linux: VmHWM, reset first)."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
    except OSError:
        pass
    t0 = time.perf_counter()
    out = fn()
    res[key + "_s"] = round(time.perf_counter() - t0, 3)
    try:
        with open("/proc/self/status") as f:
            hwm = next(line for line in f if line.startswith("VmHWM:"))
        res[key + "_peak_rss_mb"] = round(int(hwm.split()[1]) / 1024)
    except (OSError, StopIteration):
        res[key + "_peak_rss_mb"] = None
    return out


def run_size(n: int, lsoas, hdbscan_max: int) -> dict:
    data = make_synthetic(lsoas, n_incidents=n, rng=1, dirty_fraction=0.0)
    x, y = data.incidents["x"].to_numpy(), data.incidents["y"].to_numpy()
    eps, ms = suggest_dbscan_params(x, y)
    mcs = suggest_hdbscan_params(x, y)
    res: dict = {"n": n, "eps_m": eps, "min_samples": ms, "hdbscan_min_cluster_size": mcs}

    ours = timed(lambda: cluster_points(x, y), res, "ours_dbscan")
    res["ours_dbscan"] = quality(x, y, ours, data)
    print(f"n={n:,}: ours DBSCAN {res['ours_dbscan_s']:.2f} s, "
          f"{res['ours_dbscan']['clusters']} clusters", file=sys.stderr)
    ours_h = timed(lambda: cluster_points(x, y, method="hdbscan"), res, "ours_hdbscan")
    res["ours_hdbscan"] = quality(x, y, ours_h, data)
    print(f"n={n:,}: ours HDBSCAN {res['ours_hdbscan_s']:.2f} s, "
          f"{res['ours_hdbscan']['clusters']} clusters", file=sys.stderr)

    if n <= RAW_DBSCAN_MAX:
        try:
            raw = timed(lambda: DBSCAN(eps=eps, min_samples=ms).fit(np.c_[x, y]).labels_,
                        res, "sklearn_dbscan")
            res["sklearn_dbscan"] = quality(x, y, raw, data)
            res["ari_ours_vs_exact_dbscan"] = round(float(adjusted_rand_score(raw, ours)), 4)
            res["speedup_dbscan"] = round(res["sklearn_dbscan_s"] / res["ours_dbscan_s"], 1)
        except MemoryError:
            res["sklearn_dbscan"] = "MemoryError"
        print(f"n={n:,}: sklearn DBSCAN raw {res.get('sklearn_dbscan_s')} s, ARI "
              f"{res.get('ari_ours_vs_exact_dbscan')}", file=sys.stderr)
    else:
        res["sklearn_dbscan"] = (f"skipped: above {RAW_DBSCAN_MAX:,} points its neighbourhood "
                                 "lists risk running this 24 GiB machine out of memory")
    try:
        import hdbscan
    except ImportError:
        res["hdbscan_pkg"] = "skipped: the hdbscan package is not installed"
        return res
    if n <= hdbscan_max:
        pkg_model = hdbscan.HDBSCAN(min_cluster_size=mcs, min_samples=HDBSCAN_PKG_MIN_SAMPLES)
        pkg = timed(lambda: pkg_model.fit(np.c_[x, y]).labels_, res, "hdbscan_pkg")
        res["hdbscan_pkg"] = quality(x, y, pkg, data)
        res["hdbscan_pkg_min_samples"] = HDBSCAN_PKG_MIN_SAMPLES
        res["ari_ours_hdbscan_vs_pkg"] = round(float(adjusted_rand_score(pkg, ours_h)), 4)
        res["speedup_hdbscan"] = round(res["hdbscan_pkg_s"] / res["ours_hdbscan_s"], 1)
        print(f"n={n:,}: hdbscan package raw {res['hdbscan_pkg_s']:.2f} s "
              f"(x{res['speedup_hdbscan']} ours)", file=sys.stderr)
    else:
        res["hdbscan_pkg"] = f"skipped: above --hdbscan-max {hdbscan_max:,}"
    return res


def main(sizes: list[int], hdbscan_max: int) -> dict:
    config = load_config()
    layers = geography.read_layers(config)
    figures = {"bench": "cluster", "sizes": {}}
    warm = make_synthetic(layers["lsoa"], n_incidents=2_000, rng=0, dirty_fraction=0.0)
    cluster_points(warm.incidents["x"], warm.incidents["y"])  # imports, first-call costs
    cluster_points(warm.incidents["x"], warm.incidents["y"], method="hdbscan")
    try:
        import hdbscan
        hdbscan.HDBSCAN(min_cluster_size=10).fit(np.c_[warm.incidents["x"], warm.incidents["y"]])
    except ImportError:
        pass
    for n in sizes:
        figures["sizes"][str(n)] = run_size(n, layers["lsoa"], hdbscan_max)
    figures["max_rss_mb"] = rss_mb()
    return figures


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("sizes", nargs="*", type=int, default=[100_000, 1_000_000])
    parser.add_argument("--hdbscan-max", type=int, default=1_000_000,
                        help="largest N for the hdbscan package on raw points (85 s at 1M)")
    args = parser.parse_args()
    print(json.dumps(main(args.sizes, args.hdbscan_max)))
