"""The forecast map chosen by evidence: a rolling-origin search over method x cell size, and
the forecast layer drawn from its winner.

Every forecast here is a *linear* map of monthly cell counts, so incidents are binned
**once**, on the finest grid (50 m by default), and every other cell size is a sum of
those fine cells (the lattices are anchored at multiples of their size, so a 50 m cell
lies in exactly one 100, 150, 200 or 250 m cell). A method is a weight per past month
(which months count and how much) and, for kernel methods, a spatial operator:

* ``naive``: last month's counts;
* ``counts_3m``, ``counts_6m``, ``counts_12m``, ``counts_all``: counts over the last 3, 6,
  12 months or all the history before the forecast month;
* ``decay_3m``, ``decay_6m``, ``decay_12m``: all the history, each month weighted
  ``0.5 ** (age / half-life)`` (age 0 = the month before the forecast month);
* ``decay_6m_kernel`` (and 3 m, 12 m): the decayed counts with ties broken by a quartic
  kernel (bandwidth 100 m) of the same decayed counts, scaled so that it never reorders
  cells whose decayed counts differ (a tie-breaker, not a blend);
* ``kde_100m``, ``kde_200m``, ``kde_400m``: quartic kernel density of the last 12 months,
  evaluated at the centres of the fine cells and averaged over each cell;
* ``prospective``: Bowers, Johnson and Pease (2004) prospective hotspotting with a month
  as the time unit: an incident ``m`` months old (``m < 2``) adds ``1 / (1 + d) / (1 + m)``
  to every cell within 400 m, ``d`` the distance between cell centres in cell sizes.

:func:`search` scores every method at every cell size on each test month from the months
before it (rolling origin) with :func:`hotspots.evaluate.captured` (ties counted
fractionally), and picks the winner by mean PAI at 5% of the area. :func:`forecast_layer`
draws the winner for the next month: the same function computes the scores the search
scored and the cells a map shows.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import scipy.sparse as sp
import shapely
from threadpoolctl import threadpool_limits

from .evaluate import captured, select_cells
from .grid import cell_index, make_grid

#: Cell sizes searched, metres. Each must be a whole multiple of the smallest.
CELL_SIZES_M: tuple[float, ...] = (50.0, 100.0, 150.0, 200.0, 250.0)
#: Coverage the winner is chosen at and the forecast layer is drawn at: 5% of the area.
COVERAGE = 0.05
#: Coverages reported beside it.
COVERAGES: tuple[float, ...] = (0.01, 0.02, 0.05, 0.10)
#: Test months by default: the latest months that have MIN_HISTORY months before them.
TEST_MONTHS = 12
#: A month is tested only with at least this many months of history before it.
MIN_HISTORY = 3
#: Fewer test months than this and the winner is not trusted: the fallback is drawn.
MIN_TEST_MONTHS = 3
#: The fallback map (too little history to choose): counts over the last 12 months on 50 m
#: cells, the best fixed count map on the police.uk months searched (the default
#: area's burglary, City of London all crime and ASB + drugs: 50 m cells won every time).
FALLBACK = MappingProxyType({"method": "counts_12m", "cell_size_m": 50.0})
#: Bandwidth of the tie-breaking kernel, metres.
TIE_KERNEL_M = 100.0
#: Training window of the KDE methods, months.
KDE_MONTHS = 12

#: label -> method specification (kind and options).
METHODS: Mapping[str, Mapping[str, Any]] = MappingProxyType({
    "naive": {"kind": "counts", "months": 1},
    "counts_3m": {"kind": "counts", "months": 3},
    "counts_6m": {"kind": "counts", "months": 6},
    "counts_12m": {"kind": "counts", "months": 12},
    "counts_all": {"kind": "counts", "months": None},
    "decay_3m": {"kind": "decay", "half_life": 3},
    "decay_6m": {"kind": "decay", "half_life": 6},
    "decay_12m": {"kind": "decay", "half_life": 12},
    "decay_3m_kernel": {"kind": "decay", "half_life": 3, "tie_kernel_m": TIE_KERNEL_M},
    "decay_6m_kernel": {"kind": "decay", "half_life": 6, "tie_kernel_m": TIE_KERNEL_M},
    "decay_12m_kernel": {"kind": "decay", "half_life": 12, "tie_kernel_m": TIE_KERNEL_M},
    "kde_100m": {"kind": "kde", "bandwidth_m": 100.0},
    "kde_200m": {"kind": "kde", "bandwidth_m": 200.0},
    "kde_400m": {"kind": "kde", "bandwidth_m": 400.0},
    "prospective": {"kind": "prospective", "distance_m": 400.0, "time_band_months": 2},
})

#: Plain-language description of each method, for legends and tables.
DESCRIPTIONS: Mapping[str, str] = MappingProxyType({
    "naive": "last month's counts",
    **{f"counts_{k}": f"counts over the last {k[:-1]} months" for k in ("3m", "6m", "12m")},
    "counts_all": "counts over all months",
    **{f"decay_{h}": f"counts over all months, halving every {h[:-1]} months"
       for h in ("3m", "6m", "12m")},
    **{f"decay_{h}_kernel": f"counts over all months, halving every {h[:-1]} months, ties "
                            f"broken by a {TIE_KERNEL_M:.0f} m kernel"
       for h in ("3m", "6m", "12m")},
    **{f"kde_{b}": f"kernel density (quartic, {b[:-1]} m) of the last 12 months"
       for b in ("100m", "200m", "400m")},
    "prospective": "prospective hotspotting (Bowers, Johnson and Pease; 400 m, 2 months)",
})


def month_number(text: str) -> int:
    """``YYYY-MM`` as year * 12 + month - 1."""
    return int(text[:4]) * 12 + int(text[5:7]) - 1


def month_text(m: int) -> str:
    """``YYYY-MM`` of a month number (:func:`month_number`)."""
    return f"{m // 12:04d}-{m % 12 + 1:02d}"


def _check_sizes(cell_sizes: Sequence[float]) -> tuple[float, ...]:
    sizes = tuple(sorted(float(s) for s in cell_sizes))
    if not sizes or sizes[0] <= 0 or any(abs(s / sizes[0] - round(s / sizes[0])) > 1e-9
                                         for s in sizes):
        raise ValueError(f"cell_sizes must be positive whole multiples of the smallest (e.g. "
                         f"50, 100, 150); got {list(cell_sizes)}.")
    return sizes


@dataclass(frozen=True)
class Binned:
    """Incidents binned once: monthly counts on the finest grid, and the map from each fine
    cell to its cell at every size.

    ``first`` is the month number of row 0 of ``monthly`` (months ``first .. first + rows -
    1``, continuous); ``grids[s]`` the grid of size ``s`` (EPSG:27700); ``parent[s]`` the
    position in ``grids[s]`` of each fine cell."""

    first: int
    monthly: np.ndarray
    grids: Mapping[float, gpd.GeoDataFrame]
    parent: Mapping[float, np.ndarray]

    @property
    def fine(self) -> gpd.GeoDataFrame:
        return self.grids[min(self.grids)]


def bin_incidents(incidents: pd.DataFrame, area, *, cell_sizes: Sequence[float] = CELL_SIZES_M,
                  last_month: str | None = None,
                  grids: Mapping[float, gpd.GeoDataFrame] | None = None) -> Binned:
    """Bin incidents by month on the finest grid over ``area`` (EPSG:27700 metres).

    Parameters
    ----------
    incidents : columns ``period`` (``YYYY-MM``), ``x``, ``y`` (metres). Not modified.
    area : the study area (shapely geometry in EPSG:27700, or a GeoSeries).
    cell_sizes : metres; whole multiples of the smallest, default 50 to 250 m.
    last_month : the last month held (default the incidents' latest); a later month can
        then be forecast from all of them.
    grids : ``make_grid(area, cell_size_m=s)`` for each size, made already (read back from
        a cache: a 50 m grid of London takes 4 s to make); default: made here.
    """
    sizes = _check_sizes(cell_sizes)
    if grids is None:
        grids = {s: make_grid(area, cell_size_m=s) for s in sizes}
    elif set(grids) != set(sizes):
        raise ValueError(f"grids are of {sorted(grids)} m, not the cell_sizes {list(sizes)}.")
    grids = {s: grids[s] for s in sizes}
    fine = grids[sizes[0]]
    codes, periods = pd.factorize(incidents["period"].astype(str))  # a dozen distinct months
    months = np.array([month_number(p) for p in periods], dtype=int)[codes]
    last = month_number(last_month) if last_month else (int(months.max()) if len(months)
                                                       else month_number("2000-01"))
    keep = months <= last
    months = months[keep]
    first = int(months.min()) if len(months) else last
    idx = cell_index(fine, incidents["x"].to_numpy(float)[keep],
                     incidents["y"].to_numpy(float)[keep], cell_size_m=sizes[0])
    ok = idx >= 0  # cell_id of a grid from make_grid is its position
    rows = last - first + 1
    monthly = np.bincount((months[ok] - first) * len(fine) + idx[ok],
                          minlength=rows * len(fine)).reshape(rows, len(fine)).astype(float)
    parent = {}
    fx, fy = fine["x"].to_numpy(float), fine["y"].to_numpy(float)
    for s, g in grids.items():  # square lattices anchored at (0, 0): see hotspots.grid
        rows, cols = g["row"].to_numpy(), g["col"].to_numpy()
        table = np.full((rows.max() - rows.min() + 1, cols.max() - cols.min() + 1), -1)
        table[rows - rows.min(), cols - cols.min()] = np.arange(len(g))
        pr = np.floor(fy / s).astype(int) - rows.min()
        pc = np.floor(fx / s).astype(int) - cols.min()
        parent[s] = table[pr, pc]
    return Binned(first=first, monthly=monthly, grids=MappingProxyType(grids),
                  parent=MappingProxyType(parent))


# --------------------------------------------------------------------------- operators


def _aggregate(binned: Binned, s: float, *, mean: bool = False) -> sp.csr_matrix:
    """(fine cells x cells of size s): sums (or means) fine values into coarse cells."""
    p = binned.parent[s]
    n = len(binned.grids[s])
    m = sp.csr_matrix((np.ones(len(p)), (np.arange(len(p)), p)), shape=(len(p), n))
    if mean:
        m = m @ sp.diags(1.0 / np.maximum(np.asarray(m.sum(axis=0)).ravel(), 1))
    return m.tocsr()


def _convolve(grid: gpd.GeoDataFrame, s: float, values: np.ndarray, weight, reach_m: float
              ) -> np.ndarray:
    """Sum over the cells within ``reach_m`` (centre to centre) of ``weight(distance) *
    value``, for each row of ``values`` (rows x cells of ``grid``, of cell size ``s``
    metres): a direct convolution on
    the grid's lattice, so equal neighbourhoods give bit-identical results (ties stay
    ties)."""
    from scipy import ndimage

    rows = grid["row"].to_numpy() - grid["row"].min()
    cols = grid["col"].to_numpy() - grid["col"].min()
    k = int(np.floor(reach_m / s + 1e-9))
    off = np.arange(-k, k + 1) * s
    d = np.hypot(*np.meshgrid(off, off))
    ker = np.where(d <= reach_m * (1 + 1e-9), weight(d), 0.0)
    img = np.zeros((len(values), rows.max() + 1, cols.max() + 1))
    img[:, rows, cols] = values
    out = ndimage.convolve(img, ker[None], mode="constant", cval=0.0)
    return out[:, rows, cols]


def _quartic(bandwidth_m: float):
    """The quartic kernel's weight at a distance, per km²."""
    return lambda d: 3 / np.pi * (1 - np.minimum(d / bandwidth_m, 1) ** 2) ** 2 \
        / (bandwidth_m / 1000) ** 2


def month_weights(spec: Mapping[str, Any], t: int, rows: int) -> np.ndarray:
    """Weight of each month row (0 .. rows - 1) in the forecast of month row ``t``; only
    rows before ``t`` weigh (no peeking)."""
    age = t - 1 - np.arange(rows)  # 0 for the month before t
    past = age >= 0
    kind = spec["kind"]
    if kind == "counts" or kind == "kde":
        k = spec.get("months", KDE_MONTHS if kind == "kde" else None)
        return (past & (age < (k if k is not None else rows + 1))).astype(float)
    if kind == "decay":
        return np.where(past, 0.5 ** (np.maximum(age, 0) / spec["half_life"]), 0.0)
    if kind == "prospective":
        band = spec["time_band_months"]
        return np.where(past & (age < band), 1.0 / (1.0 + np.maximum(age, 0)), 0.0)
    raise ValueError(f"unknown method kind {kind!r}")


def _times(dense: np.ndarray, matrix: sp.csr_matrix) -> np.ndarray:
    """``dense @ matrix`` computed as sparse times dense (fast)."""
    return np.asarray(matrix.T @ dense.T).T


class _Scorer:
    """Scores of every method at one cell size for many forecast months at once. The
    spatial operators and the smoothed fine counts are built once and shared, through
    ``shared``, by the scorers of the other cell sizes of the same binned data."""

    def __init__(self, binned: Binned, s: float, shared: dict | None = None):
        self.b, self.s = binned, s
        self.sum = _aggregate(binned, s)
        self.mean = _aggregate(binned, s, mean=True)
        self.shared = {} if shared is None else shared

    def smoothed(self, spec: Mapping[str, Any], bandwidth_m: float, tests: Sequence[int],
                 fine: np.ndarray) -> np.ndarray:
        """Kernel-smoothed fine counts (tests x fine cells), shared across cell sizes."""
        key = ("smooth", tuple(sorted((k, v) for k, v in spec.items()
                                      if k != "tie_kernel_m")), bandwidth_m, tuple(tests))
        if key not in self.shared:
            self.shared[key] = _convolve(self.b.fine, min(self.b.grids), fine,
                                         _quartic(bandwidth_m), bandwidth_m)
        return self.shared[key]

    def counts(self, rows: Sequence[int]) -> np.ndarray:
        """Counts per cell of the given month rows (one row each)."""
        return _times(self.b.monthly[list(rows)], self.sum)

    def scores(self, spec: Mapping[str, Any], tests: Sequence[int]) -> np.ndarray:
        rows = self.b.monthly.shape[0]
        w = np.stack([month_weights(spec, t, rows) for t in tests])
        fine = w @ self.b.monthly  # (tests x fine cells)
        kind = spec["kind"]
        if kind == "kde":
            return _times(self.smoothed(spec, spec["bandwidth_m"], tests, fine), self.mean)
        out = _times(fine, self.sum)
        if kind == "prospective":
            return _convolve(self.b.grids[self.s], self.s, out,
                             lambda d: 1.0 / (1.0 + d / self.s), spec["distance_m"])
        if spec.get("tie_kernel_m"):
            smooth = _times(self.smoothed(spec, spec["tie_kernel_m"], tests, fine), self.mean)
            out = out + _tie_scale(out, smooth)[:, None] * smooth
        return out


def _tie_scale(scores: np.ndarray, smooth: np.ndarray) -> np.ndarray:
    """Per row, a factor small enough that ``scores + factor * smooth`` keeps every strict
    order of ``scores`` (a quarter of the smallest gap over the largest smooth value)."""
    out = np.zeros(len(scores))
    for i, (row, sm) in enumerate(zip(scores, smooth, strict=True)):
        u = np.unique(row)
        gap = np.diff(u).min() if len(u) > 1 else 1.0
        top = sm.max()
        out[i] = 0.25 * gap / top if top > 0 else 0.0
    return out


# --------------------------------------------------------------------------- search


def scored_months(binned: Binned, *, n: int = TEST_MONTHS,
                  min_history: int = MIN_HISTORY) -> list[int]:
    """Rows of the latest ``n`` months that have ``min_history`` months before them."""
    rows = binned.monthly.shape[0]
    return list(range(max(min_history, rows - n), rows))


def search(binned: Binned, *, tests: Sequence[int] | None = None,
           methods: Mapping[str, Mapping[str, Any]] = METHODS,
           coverages: Sequence[float] = COVERAGES, progress=None) -> pd.DataFrame:
    """Score every method at every cell size on each test month (rolling origin).

    Parameters
    ----------
    binned : from :func:`bin_incidents`.
    tests : month rows to test (default :func:`scored_months`); each is forecast from the
        rows before it only.
    methods : label -> spec, default :data:`METHODS`.
    coverages : shares of the area, default 1, 2, 5 and 10%.
    progress : ``progress(done, total, step)`` after each method and cell size, if given.

    Returns
    -------
    pandas.DataFrame
        One row per method, cell size, test month and coverage: ``method``,
        ``cell_size_m``, ``period``, ``coverage``, ``n_test`` (expected incidents captured,
        ties fractional), ``total_test``, ``hit_rate``, ``pai``, ``pei``, ``rri`` (PAI over
        the same map's PAI on the 12 months before).
    """
    with threadpool_limits(1):  # small products: BLAS threads cost more than they save
        return _search(binned, tests=tests, methods=methods, coverages=coverages,
                       progress=progress or (lambda done, total, step: None))


def _search(binned, *, tests, methods, coverages, progress) -> pd.DataFrame:
    tests = list(scored_months(binned) if tests is None else tests)
    if not tests:
        return pd.DataFrame(columns=["method", "cell_size_m", "period", "coverage", "n_test",
                                     "total_test", "hit_rate", "pai", "pei", "rri"])
    covs = np.asarray(coverages, dtype=float)
    rows = binned.monthly.shape[0]
    frames: list[pd.DataFrame] = []
    shared: dict = {}
    for s in binned.grids:
        scorer = _Scorer(binned, s, shared)
        area = binned.grids[s]["area_km2"].to_numpy(float)
        test = scorer.counts(tests)
        window = _times(np.stack([month_weights({"kind": "counts", "months": 12}, t, rows)
                                  for t in tests]) @ binned.monthly, scorer.sum)
        total = test.sum(axis=1)
        best = np.stack([captured(c / area, c, area, covs) for c in test])
        for label, spec in methods.items():
            sc = scorer.scores(spec, tests)
            got = np.stack([captured(r, c, area, covs) for r, c in zip(sc, test, strict=True)])
            inp = np.stack([captured(r, c, area, covs)
                            for r, c in zip(sc, np.asarray(window), strict=True)])
            wt = np.asarray(window).sum(axis=1)
            with np.errstate(invalid="ignore", divide="ignore"):
                hit = got / total[:, None]
                pai_in = (inp / wt[:, None]) / covs
                frame = pd.DataFrame({
                    "method": label, "cell_size_m": s,
                    "period": np.repeat([month_text(binned.first + t) for t in tests],
                                        len(covs)),
                    "coverage": np.tile(covs, len(tests)),
                    "n_test": got.ravel(), "total_test": np.repeat(total, len(covs)),
                    "hit_rate": hit.ravel(), "pai": (hit / covs).ravel(),
                    "pei": (got / best).ravel(),
                    "rri": ((hit / covs) / pai_in).ravel()})
            frames.append(frame)
            progress(len(frames), len(binned.grids) * len(methods), f"{label}, {s:g} m cells")
    out = pd.concat(frames, ignore_index=True)
    out.loc[out["total_test"] == 0, ["hit_rate", "pai", "pei", "rri"]] = np.nan
    out["rri"] = out["rri"].where(np.isfinite(out["rri"]))
    return out


def summarise(table: pd.DataFrame, *, coverage: float = COVERAGE) -> pd.DataFrame:
    """Mean hit rate, PAI, PEI and RRI per method and cell size at a coverage over the test
    months, best first (ties: smaller cells, then the label)."""
    rows = table.loc[np.isclose(table["coverage"], coverage)]
    g = rows.groupby(["method", "cell_size_m"])
    out = g[["hit_rate", "pai", "pei", "rri"]].mean().reset_index()
    out.insert(2, "months", g["pai"].count().to_numpy())
    return out.sort_values(["pai", "cell_size_m", "method"], ascending=[False, True, True],
                           ignore_index=True)


def chosen_before_scored(table: pd.DataFrame, *, coverage: float = COVERAGE) -> pd.DataFrame:
    """For each test month after the first, the method and cell size with the best mean PAI
    on the test months before it, and its PAI on that month: an honest figure for a map
    chosen by this search (never chosen on the month it is scored on)."""
    rows = table.loc[np.isclose(table["coverage"], coverage)]
    wide = rows.pivot_table(index="period", columns=["method", "cell_size_m"], values="pai")
    picks = []
    for i in range(1, len(wide)):
        means = wide.iloc[:i].mean()
        top = means.max()
        pick = sorted(means.index[means == top], key=lambda k: (k[1], k[0]))[0]
        picks.append({"period": wide.index[i], "method": pick[0], "cell_size_m": pick[1],
                      "pai": float(wide.iloc[i][pick])})
    return pd.DataFrame(picks, columns=["period", "method", "cell_size_m", "pai"])


def choose(table: pd.DataFrame, *, min_test_months: int = MIN_TEST_MONTHS) -> dict:
    """The winner of a search (best mean PAI at 5%), or the fallback when fewer than
    ``min_test_months`` months were tested. Returns ``method``, ``cell_size_m``,
    ``pai_5pct``, ``hit_rate_5pct``, ``test_months`` (count), ``fallback`` and ``note``."""
    summary = summarise(table) if len(table) else pd.DataFrame()
    months = int(table["period"].nunique()) if len(table) else 0
    if months < min_test_months or summary.empty:
        fb: dict = dict(FALLBACK)
        row = (summary.loc[(summary["method"] == fb["method"])
                           & (summary["cell_size_m"] == fb["cell_size_m"])]
               if len(summary) else summary)
        pai = float(row["pai"].iloc[0]) if len(row) else float("nan")
        hit = float(row["hit_rate"].iloc[0]) if len(row) else float("nan")
        return {**fb, "pai_5pct": pai, "hit_rate_5pct": hit, "test_months": months,
                "fallback": True,
                "note": f"too little history to choose a forecast: {months} test month(s), "
                        f"fewer than the {min_test_months} needed; showing the fallback, "
                        f"{DESCRIPTIONS[fb['method']]} on {fb['cell_size_m']:.0f} m cells"}
    top = summary.iloc[0]
    return {"method": str(top["method"]), "cell_size_m": float(top["cell_size_m"]),
            "pai_5pct": float(top["pai"]), "hit_rate_5pct": float(top["hit_rate"]),
            "test_months": months, "fallback": False,
            "note": f"chosen by backtest on {months} test months"}


# --------------------------------------------------------------------------- the layer

#: Columns of :func:`forecast_layer` (besides geometry).
LAYER_COLUMNS: tuple[str, ...] = ("rank", "score", "method", "cell_size_m", "pai_5pct",
                                  "test_months")


#: The dtype of each of :data:`LAYER_COLUMNS` (what :func:`forecast_layer` gives).
_LAYER_DTYPES = {"rank": "int64", "score": "float64", "method": "object",
                 "cell_size_m": "float64", "pai_5pct": "float64", "test_months": "int64"}


def layer_record(layer: gpd.GeoDataFrame) -> dict:
    """A :func:`forecast_layer` as a JSON-able dict (each column a list, the cells as WKB
    in hex, the CRS), which :func:`layer_from_record` turns back into the same frame to
    the bit (floats go through ``repr``, which JSON keeps exactly)."""
    return {"columns": {c: layer[c].tolist() for c in LAYER_COLUMNS},
            "wkb": [g.hex() for g in shapely.to_wkb(layer.geometry.to_numpy())],
            "crs": layer.crs.to_wkt() if layer.crs is not None else None}


def layer_from_record(record: Mapping[str, Any]) -> gpd.GeoDataFrame:
    """The frame :func:`layer_record` was made from."""
    cols = {c: pd.Series(record["columns"][c], dtype=_LAYER_DTYPES[c]) for c in LAYER_COLUMNS}
    geometry = shapely.from_wkb([bytes.fromhex(h) for h in record["wkb"]])
    return gpd.GeoDataFrame(cols, geometry=np.asarray(geometry, dtype=object),
                            crs=record["crs"])


def forecast_layer(binned: Binned, choice: Mapping[str, Any], *,
                   coverage: float = COVERAGE) -> gpd.GeoDataFrame:
    """The forecast map for the month after ``binned``'s last month: the cells of the
    winner's grid in the top ``coverage`` of the area by the winner's scores.

    Cells are taken whole, highest score first (equal scores by ``cell_id``), while the
    area taken before them is under ``coverage`` of the study area; cells scoring 0 are
    left out. Columns :data:`LAYER_COLUMNS` and geometry (EPSG:27700), by rank.
    """
    s = float(choice["cell_size_m"])
    grid = binned.grids[s]
    spec = METHODS[choice["method"]]
    scores = _Scorer(binned, s).scores(spec, [binned.monthly.shape[0]])[0]
    area = grid["area_km2"].to_numpy(float)
    sel = select_cells(scores, area, coverage=coverage) & (scores > 0)
    idx = np.flatnonzero(sel)
    idx = idx[np.lexsort((idx, -scores[idx]))]
    return gpd.GeoDataFrame({
        "rank": np.arange(1, len(idx) + 1), "score": scores[idx],
        "method": choice["method"], "cell_size_m": s,
        "pai_5pct": float(choice["pai_5pct"]), "test_months": int(choice["test_months"]),
    }, geometry=grid.geometry.to_numpy()[idx], crs=grid.crs)
