"""Gi* on square grids: hotspots.gistar against esda's analytic G_Local, in one process.

    python bench/bench_gistar.py [N ...]        (default: 64000 250000)

For each N, a square grid of N cells (rows of ceil(sqrt(N)) cells, the last row partial)
with Poisson(2) counts and 40 planted hot blocks of 5 x 5 cells at Poisson(8). Times
  hotspots: grid_neighbours (queen, from row/col) + gistar (z, two-sided p, BH FDR,
            classes); median of 7 runs after a warm-up;
  esda:     building a libpysal W from the same neighbours (W.from_sparse on the CSR without
            the diagonal, as libpysal weights come), then, timed apart,
            G_Local(y, w, transform="B", star=True, permutations=0), which adds the
            self-weights itself (fill_diagonal); median of 3 runs each. Also G_Local on a W
            built with the diagonal already in it, esda's fastest path.
Checks max |z_hotspots - z_esda| < 1e-9 and prints one JSON line of figures at the end.
"""

from __future__ import annotations

import json
import resource
import statistics
import sys
import time
import warnings

import numpy as np
import pandas as pd
import scipy.sparse as sp

from hotspots.gistar import gistar, grid_neighbours

TOLERANCE = 1e-9


def make_cells(n: int, rng: np.random.Generator) -> tuple[pd.DataFrame, np.ndarray, np.ndarray]:
    side = int(np.ceil(np.sqrt(n)))
    k = np.arange(n)
    rows, cols = k // side, k % side
    grid = pd.DataFrame({"cell_id": k, "row": rows, "col": cols,
                         "x": 500_000 + 100.0 * cols, "y": 170_000 + 100.0 * rows})
    y = rng.poisson(2.0, n).astype(float)
    centres = rng.integers(3, [max(rows.max() - 2, 4), side - 3], size=(40, 2))
    planted = np.zeros(n, dtype=bool)
    for r, c in centres:
        planted |= (abs(rows - r) <= 2) & (abs(cols - c) <= 2)
    y[planted] = rng.poisson(8.0, planted.sum())
    centre = np.isin(rows * side + cols, centres[:, 0] * side + centres[:, 1])
    return grid, y, centre


def timed(fn, repeats: int):
    times, out = [], None
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return out, statistics.median(times)


def ours(grid: pd.DataFrame, y: np.ndarray) -> tuple[pd.DataFrame, sp.csr_matrix]:
    w = grid_neighbours(grid, contiguity="queen")
    return gistar(y, w), w


def main(sizes: list[int]) -> dict:
    import esda
    from libpysal.weights import W

    figures: dict = {"bench": "gistar", "contiguity": "queen", "sizes": {}}
    for n in sizes:
        grid, y, centre = make_cells(n, np.random.default_rng(n))
        ours(grid, y)  # warm-up
        (res, w), t_ours = timed(lambda: ours(grid, y), 7)  # noqa: B023
        _, t_neigh = timed(lambda: grid_neighbours(grid), 7)  # noqa: B023
        _, t_stat = timed(lambda: gistar(y, w), 7)  # noqa: B023

        print(f"n={n:,}: hotspots {t_ours * 1e3:.1f} ms (neighbours {t_neigh * 1e3:.1f} ms, "
              f"gistar {t_stat * 1e3:.1f} ms); building libpysal W...", file=sys.stderr)
        no_self = (w - sp.diags(w.diagonal())).tocsr()
        no_self.eliminate_zeros()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # a partial last row leaves W disconnected
            lw, t_w = timed(lambda: W.from_sparse(no_self), 3)  # noqa: B023
            g, t_esda = timed(lambda: esda.G_Local(y, lw, transform="B", star=True,  # noqa: B023
                                                   permutations=0), 3)
            # esda's fastest path: the diagonal already in W, so it skips fill_diagonal
            lw_self, t_w_self = timed(lambda: W.from_sparse(w), 3)  # noqa: B023
            g_self, t_esda_self = timed(
                lambda: esda.G_Local(y, lw_self, transform="B", star=True,  # noqa: B023
                                     permutations=0), 3)
        z = res["gistar_z"].to_numpy()
        diff = float(max(np.max(np.abs(z - g.Zs)), np.max(np.abs(z - g_self.Zs))))
        classes = res["gi_class"].value_counts().reindex(range(-3, 4), fill_value=0)
        figures["sizes"][str(n)] = {
            "cells": n, "neighbour_links": int(w.nnz - n),
            "hotspots_s": round(t_ours, 4), "hotspots_neighbours_s": round(t_neigh, 4),
            "hotspots_gistar_s": round(t_stat, 4),
            "esda_w_build_s": round(t_w, 3), "esda_g_local_s": round(t_esda, 3),
            "speedup_vs_esda_call": round(t_esda / t_ours, 1),
            "speedup_vs_esda_with_w": round((t_w + t_esda) / t_ours, 1),
            "esda_g_local_w_with_self_s": round(t_esda_self, 3),
            "speedup_vs_esda_call_w_with_self": round(t_esda_self / t_ours, 1),
            "max_abs_z_diff": diff, "z_equal": diff < TOLERANCE,
            "gi_class_counts": {str(k): int(v) for k, v in classes.items()},
            "planted_centres_hot_3": f"{int((res['gi_class'][centre] == 3).sum())}"
                                     f"/{int(centre.sum())}",
        }
        print(f"n={n:,}: esda W {t_w:.2f} s, G_Local {t_esda:.2f} s "
              f"(x{t_esda / t_ours:.0f} ours); with the diagonal in W {t_esda_self:.2f} s "
              f"(x{t_esda_self / t_ours:.0f}); max |dz| {diff:.1e}", file=sys.stderr)
    figures["max_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
    figures["all_z_equal"] = all(s["z_equal"] for s in figures["sizes"].values())
    return figures


if __name__ == "__main__":
    args = [int(a) for a in sys.argv[1:]] or [64_000, 250_000]
    print(json.dumps(main(args)))
