"""Positions: lon/lat projected to EPSG:27700 (in chunks, with a worker thread), each
distinct position placed once, points outside the study area explained, and incidents
assigned to the store's areas."""

from __future__ import annotations

import dataclasses
import itertools
import os
import threading
from concurrent.futures import ThreadPoolExecutor

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely

from ..assign import POLICE_UK_EDGE_M, assign_points, nesting, prefer_own
from ..config import Config
from ..schema import WORKING_CRS, transformer
from ..validate import (
    format_distance,
)
from .checks import _Coords
from .text import _constant, _take_text


def _coordinates(c: _Coords, points: _Points, area, boundary: gpd.GeoDataFrame,
                 config: Config, flag, own=None):
    """Flag the coordinate problems, place each point (projected to EPSG:27700:
    ``points``) in the boundary layer (the study area is that layer's union: a point is
    inside iff it has a boundary area), and flag points outside it, except a point whose
    own LSOA (``own``: the source's codes and the LSOA layer; police.uk) is in the area
    within ``nearest_max_m`` of it."""
    for m, col, show, reason in c.checks:
        flag(m, col, show, reason)
    a, b, grid, coord_bad, both, fld = c.a, c.b, c.grid, ~c.good, c.both, c.field
    n = len(a)
    swap_reason = "swapped_easting_northing" if grid else "swapped_latlon"
    x, y = points.rows()
    idx = np.full(n, -1, dtype=np.int64)
    idx[points.where] = assign_points(points.ux, points.uy, boundary)[points.ids]
    out = ~coord_bad & (idx < 0)
    if out.any() and own is not None and own[0] is not None and config.nearest_max_m > 0:
        o = np.flatnonzero(out)
        pos = pd.Index(own[1]["code"]).get_indexer(pd.Index(own[0].to_numpy(dtype=object)[o]))
        o, pos = o[pos >= 0], pos[pos >= 0]
        if len(o):
            geoms = np.asarray(own[1].geometry.values)
            close = shapely.distance(geoms[pos], shapely.points(x[o], y[o])) \
                <= config.nearest_max_m
            out[o[close]] = False
    if out.any():
        o = np.nonzero(out)[0]
        if grid:
            sx, sy = a[o], b[o]
        else:
            sx, sy = np.full(len(o), np.nan), np.full(len(o), np.nan)
            ok = np.abs(b[o]) <= 90
            sx[ok], sy[ok] = transformer("EPSG:4326", WORKING_CRS).transform(a[o][ok], b[o][ok])
        fin = np.isfinite(sx) & np.isfinite(sy)
        swapped = np.zeros(len(o), dtype=bool)
        swapped[fin] = shapely.intersects_xy(area, sx[fin], sy[fin])
        mask = np.zeros(n, dtype=bool)
        mask[o[swapped]] = True
        flag(mask, fld, both, swap_reason, config.name)
        far = o[~swapped]
        if len(far):
            fx, fy = x[far], y[far]
            fin = np.isfinite(fx) & np.isfinite(fy)
            dist = np.full(len(far), np.inf)
            dist[fin] = shapely.distance(area, shapely.points(fx[fin], fy[fin]))
            words = [f"{format_distance(d)} outside {config.name}" if np.isfinite(d)
                     else f"far outside {config.name} (not a valid position)" for d in dist]
            mask = np.zeros(n, dtype=bool)
            mask[far] = True
            flag(mask, fld, both, "outside_study_area", words)
    return x, y, idx, points


#: Files of at least this many rows are projected in chunks shared by a worker thread and
#: the caller (PROJ releases the GIL, so the worker overlaps the other checks and both
#: cores project), on a machine with 2 or more cores; smaller files in one go.
BACKGROUND_MIN_ROWS = 50_000
PROJECT_CHUNK = 100_000
_WORKER: dict = {}  # process id -> executor (a forked child makes its own)
_WORKER_LOCK = threading.Lock()


def _worker() -> ThreadPoolExecutor:
    with _WORKER_LOCK:
        pid = os.getpid()
        if pid not in _WORKER:
            _WORKER.clear()
            _WORKER[pid] = ThreadPoolExecutor(max_workers=1,
                                              thread_name_prefix="hotspots-project")
        return _WORKER[pid]


class _Projection:
    """lon/lat -> EPSG:27700 in chunks: a worker thread starts at once; :meth:`result`
    has the caller take the chunks left, then wait for the worker's last one (or call it
    off if the worker never got to it: busy with another file). Each point is projected
    once by whichever thread takes its chunk (the same numbers either way)."""

    def __init__(self, lon: np.ndarray, lat: np.ndarray) -> None:
        self.lon, self.lat = lon, lat
        self.x, self.y = np.empty(len(lon)), np.empty(len(lon))
        self.n_chunks = -(-len(lon) // PROJECT_CHUNK)
        self._next = itertools.count()  # next() is atomic under the GIL
        self._future = None
        if len(lon) >= BACKGROUND_MIN_ROWS and _cores() > 1:
            self._future = _worker().submit(self._work)

    def _work(self) -> None:
        for i in self._next:
            if i >= self.n_chunks:
                return
            sl = slice(i * PROJECT_CHUNK, (i + 1) * PROJECT_CHUNK)
            self.x[sl], self.y[sl] = transformer("EPSG:4326", WORKING_CRS).transform(
                self.lon[sl], self.lat[sl])

    def result(self) -> tuple[np.ndarray, np.ndarray]:
        self._work()
        if self._future is not None and not self._future.cancel():
            self._future.result()  # the worker is on its last chunk
        return self.x, self.y


def _cores() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else \
        os.cpu_count() or 1


#: Positions are grouped (projected and placed once each) when at least
#: :data:`DISTINCT_MIN_ROWS` rows have one and a sample of :data:`DISTINCT_SAMPLE` of them
#: has at most :data:`DISTINCT_MAX_SHARE` distinct positions; otherwise row by row.
DISTINCT_MIN_ROWS = 4_000
DISTINCT_SAMPLE = 20_000
DISTINCT_MAX_SHARE = 0.5


@dataclasses.dataclass(frozen=True)
class _Points:
    """Points of the rows in ``where``: row ``where[i]`` is at ``(ux, uy)[ids[i]]``, in
    EPSG:27700. ``ids`` is the identity when positions are not grouped."""

    where: np.ndarray  # row numbers (positions) that have a point
    ids: np.ndarray
    ux: np.ndarray
    uy: np.ndarray
    n: int

    @classmethod
    def start(cls, e: np.ndarray, n_: np.ndarray, good: np.ndarray, *, project: bool):
        """Easting/northing (or longitude/latitude, ``project``) of the ``good`` rows;
        call the returned function for the _Points (projection may run meanwhile).

        police.uk snaps every crime to one of a fixed list of map points and council
        exports repeat addresses, so a file holds far fewer positions than rows: those
        repeat, each distinct position is projected and assigned once. A position is the
        pair of float64 bit patterns (the same numbers give the same point, exactly)."""
        where = np.flatnonzero(good)
        e, n_ = e[where], n_[where]
        ids, rep = _distinct_pairs(e, n_)
        if rep is not None:
            e, n_ = e[rep], n_[rep]
        if not project:
            return lambda: cls(where, ids, np.asarray(e, dtype=float),
                               np.asarray(n_, dtype=float), len(good))
        job = _Projection(np.ascontiguousarray(e, dtype=float),
                          np.ascontiguousarray(n_, dtype=float))
        return lambda: cls(where, ids, *job.result(), len(good))

    def rows(self) -> tuple[np.ndarray, np.ndarray]:
        """x, y of every row (NaN where the row has no point)."""
        x, y = np.full(self.n, np.nan), np.full(self.n, np.nan)
        x[self.where], y[self.where] = self.ux[self.ids], self.uy[self.ids]
        return x, y

    def subset(self, keep: np.ndarray) -> _Points:
        """The points of the rows in ``keep`` (each of which has a point), renumbered."""
        pos = np.full(self.n, -1, dtype=np.int64)
        pos[self.where] = self.ids
        ids = pos[keep]
        used = np.zeros(len(self.ux), dtype=bool)
        used[ids] = True
        new = np.cumsum(used) - 1
        return _Points(np.arange(len(ids)), new[ids], self.ux[used], self.uy[used], len(ids))


def _distinct_pairs(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
    """``(ids, rep)``: ``a[rep][ids] == a`` and ``b[rep][ids] == b`` bit for bit, ``rep``
    a row of each distinct (a, b) pair; ``(arange, None)`` when pairs repeat too little to pay
    for the grouping (judged on a sample) or on a hash collision."""
    n = len(a)
    plain = np.arange(n), None
    if n < max(DISTINCT_MIN_ROWS, 1):
        return plain
    bits_a = np.ascontiguousarray(a, dtype=np.float64).view(np.uint64)
    bits_b = np.ascontiguousarray(b, dtype=np.float64).view(np.uint64)
    with np.errstate(over="ignore"):
        key = bits_a * np.uint64(0x9E3779B97F4A7C15) ^ bits_b
    sample = key[::max(1, n // DISTINCT_SAMPLE)]
    if len(pd.unique(sample)) > DISTINCT_MAX_SHARE * len(sample):
        return plain
    ids, uniq = pd.factorize(key.view(np.int64))
    rep = np.empty(len(uniq), dtype=np.int64)
    rep[ids] = np.arange(n)  # a row of each pair
    if not (np.array_equal(bits_a[rep][ids], bits_a) and np.array_equal(bits_b[rep][ids], bits_b)):
        return plain  # two pairs share a hash: group nothing
    return ids.astype(np.int64), rep


def _assign(cols: dict, src: np.ndarray, has: np.ndarray, layers: dict[str, gpd.GeoDataFrame],
            config: Config, known: dict[str, np.ndarray], points: _Points
            ) -> tuple[int, int] | None:
    """Add lsoa_code, ward_code ('' without a ward layer) and source_lsoa to ``cols``;
    return how many rows agree with the source's own LSOA codes (2011 codes checked
    against the 2011 layer) and how many have one, or None.
    ``has`` marks the rows with a source LSOA code."""
    x, y = cols["x"], cols["y"]
    src = np.asarray(src, dtype=object)
    for key in ("lsoa", "ward"):  # the layers the store keeps (the finest first)
        col = f"{key}_code"
        if key not in layers:
            cols[col] = _constant("", len(x))
            continue
        codes = np.append(layers[key]["code"].to_numpy(dtype=object), "")
        built_from = config.layers[key].built_from
        if built_from in ("lsoa", "ward") and built_from != key:  # follows the finer area
            finer = pd.Series(np.asarray(cols[f"{built_from}_code"], dtype=object))
            cols[col] = finer.map(nesting(layers[built_from], layers[key])).fillna(
                "").to_numpy(dtype=object)
            continue
        idx = known.get(key)
        if idx is None:
            idx = assign_points(points.ux, points.uy, layers[key],
                                nearest_max_m=config.nearest_max_m)[points.ids]
        elif (idx < 0).any():  # accepted outside the boundary (own LSOA): the nearest rule
            idx, miss = idx.copy(), idx < 0
            idx[miss] = assign_points(x[miss], y[miss], layers[key],
                                      nearest_max_m=config.nearest_max_m)
        if key == "lsoa" and has.any():  # police.uk's own LSOA on edges and just outside
            own = pd.Index(layers[key]["code"]).get_indexer(pd.Index(src))
            idx = prefer_own(x, y, idx, own, layers[key], edge_m=POLICE_UK_EDGE_M,
                             nearest_max_m=config.nearest_max_m)
        cols[col] = _take_text(codes, np.where(idx < 0, len(codes) - 1, idx))
    cols["source_lsoa"] = src
    if not has.any():
        return None
    agree = has & (src == cols["lsoa_code"].to_numpy(dtype=object))
    if "lsoa11" in layers:
        maybe = np.flatnonzero(has & ~agree)  # a hash lookup of these only (np.isin sorts)
        old = np.zeros(len(src), dtype=bool)
        old[maybe] = pd.Index(src[maybe]).isin(layers["lsoa11"]["code"].to_numpy(dtype=object))
        if old.any():
            codes = np.append(layers["lsoa11"]["code"].to_numpy(dtype=object), "")
            got = codes[assign_points(x[old], y[old], layers["lsoa11"],
                                      nearest_max_m=config.nearest_max_m)]
            agree[np.nonzero(old)[0][got == src[old]]] = True
    return int(agree.sum()), int(has.sum())
