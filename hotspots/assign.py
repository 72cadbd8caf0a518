"""Assign points to areas, exactly and fast, in EPSG:27700.

The edge rule (one area per point, deterministic):

1. a point strictly inside one polygon goes to that polygon;
2. a point on a shared edge or vertex (inside no polygon, on the boundary of several)
   goes to the polygon with the smallest code; so does a point inside several
   overlapping polygons (an invalid coverage);
3. a point in no polygon goes to the nearest polygon within ``nearest_max_m``
   (ties: smallest code), else it stays unassigned (-1).

Speed comes from a lookup grid: cells that no boundary passes through take their polygon
from a connected-component labelling of the grid; only points in cells a boundary crosses
are tested exactly, each against the few polygons whose bounding box covers its cell (kept
per cell, in code order, so the first polygon that strictly holds the point is the
answer). The answer is the same as the exact test for every point. The grid and the
per-cell lists of a layer are built once and kept for the next call with the same
polygons and codes (:data:`LOOKUP_CACHE_SIZE` layers). :func:`label_lattice` is the
coarser lattice (a band of cells around each boundary) used by :mod:`hotspots.density`.
"""

from __future__ import annotations

import dataclasses
import threading
from collections import OrderedDict

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
from scipy import ndimage

from .validate import check_projected  # noqa: F401  (re-exported: its old home)

#: Upper bound on lookup-grid cells (memory ~ 4 bytes each).
MAX_GRID_CELLS = 4_000_000
#: Lookups (grid + per-cell candidate lists) kept for layers used again.
LOOKUP_CACHE_SIZE = 8


def label_lattice(geoms: np.ndarray, rank: np.ndarray, cell: float, bounds
                  ) -> tuple[np.ndarray, tuple]:
    """Label lattice cells (``cell`` metres, from the lower-left of ``bounds``) with the
    polygon wholly holding them; -1 near a boundary, -2 outside all polygons.

    Returns the (ny, nx) labels and ``(minx, miny, cell, nx, ny)``.
    """
    minx, miny, maxx, maxy = bounds
    nx = int(np.ceil((maxx - minx) / cell)) + 1
    ny = int(np.ceil((maxy - miny) / cell)) + 1
    near = np.zeros((ny, nx), dtype=bool)
    edges = shapely.segmentize(shapely.boundary(geoms), cell / 2)
    ex, ey = shapely.get_coordinates(edges).T
    near[((ey - miny) // cell).astype(np.int64), ((ex - minx) // cell).astype(np.int64)] = True
    near = ndimage.binary_dilation(near, structure=np.ones((3, 3), bool))
    comp, n_comp = ndimage.label(~near)  # 4-connected regions that no boundary crosses
    labels = np.full(n_comp + 1, -2, dtype=np.int64)
    if n_comp:
        # one representative cell per region, tested exactly at its centre
        flat = comp.ravel()
        first = np.full(n_comp + 1, -1, dtype=np.int64)
        order = np.nonzero(flat)[0]
        first[flat[order[::-1]]] = order[::-1]
        rep = first[1:]
        cx = minx + (rep % nx + 0.5) * cell
        cy = miny + (rep // nx + 0.5) * cell
        labels[1:] = _exact(geoms, cx, cy, rank, nearest_max_m=0.0, tree=None)
        labels[1:][labels[1:] < 0] = -2
    grid = labels[comp]
    grid[near] = -1
    return grid, (minx, miny, cell, nx, ny)


def _exact(geoms, x, y, rank, *, nearest_max_m: float, tree) -> np.ndarray:
    """Exact edge rule for a few points; returns polygon indices or -1."""
    tree = tree if tree is not None else shapely.STRtree(geoms)
    out = np.full(len(x), -1, dtype=np.int64)
    if len(x) == 0:
        return out
    pts = shapely.points(x, y)
    pi, gi = tree.query(pts)  # bounding-box candidates; predicates below use prepared polygons
    inside = shapely.contains_xy(geoms[gi], x[pi], y[pi])
    touch = inside | shapely.intersects_xy(geoms[gi], x[pi], y[pi])
    pi, gi, inside = pi[touch], gi[touch], inside[touch]
    if len(pi):
        order = np.lexsort((rank[gi], ~inside, pi))
        pi, gi = pi[order], gi[order]
        keep = np.r_[True, pi[1:] != pi[:-1]]
        out[pi[keep]] = gi[keep]
    if nearest_max_m > 0:
        miss = np.nonzero(out < 0)[0]
        if len(miss):
            mi, mg = tree.query_nearest(pts[miss], max_distance=nearest_max_m, all_matches=True)
            order = np.lexsort((rank[mg], mi))
            mi, mg = mi[order], mg[order]
            keep = np.r_[True, mi[1:] != mi[:-1]] if len(mi) else np.zeros(0, bool)
            out[miss[mi[keep]]] = mg[keep]
    return out


def _index(v: np.ndarray, lo: float, inv: float, n: int) -> np.ndarray:
    """Lattice column (or row) of each coordinate, -1 below the lattice and n above it
    (NaN: -1). Monotone in ``v``: the cells of a box are a rectangle of the lattice."""
    return np.floor(np.fmin(np.fmax((v - lo) * inv, -1.0), n)).astype(np.intp)


@dataclasses.dataclass(frozen=True)
class _Lookup:
    """A layer's lookup grid, padded by one cell of "outside" all round.

    ``table`` (flat, row-major over ``(ny + 2, nx + 2)``): a polygon index (>= 0) for
    cells wholly inside it, -1 for cells outside every polygon (and the padding, where
    points off the grid or NaN land), ``-2 - k`` for near-boundary cell k, whose
    candidate polygons are ``cand[start[k]:start[k + 1]]`` in code order: every polygon
    whose bounding box reaches the cell.
    """

    geoms: np.ndarray
    rank: np.ndarray
    minx: float
    miny: float
    inv: float
    nx: int
    ny: int
    table: np.ndarray
    start: np.ndarray
    cand: np.ndarray
    tree: shapely.STRtree

    def cells(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        """Flat ``table`` index of each point; NaN and off-grid points land in the padding."""
        return ((_index(y, self.miny, self.inv, self.ny) + 1) * (self.nx + 2)
                + _index(x, self.minx, self.inv, self.nx) + 1)


_CACHE: OrderedDict = OrderedDict()
_CACHE_LOCK = threading.Lock()


def _near_cells(geoms: np.ndarray, cell: float, minx: float, miny: float, nx: int, ny: int
                ) -> np.ndarray:
    """(ny, nx) mask of the lattice cells a polygon boundary passes through.

    Each boundary segment is cut into pieces of at most half a cell; a piece lies in its
    bounding box, whose cells (by :func:`_index`, as the points' cells are found) are
    marked, the box widened by a hair for the rounding of the cut points. So every cell
    left unmarked holds no boundary: all of it lies in the same polygons. (The cuts are
    computed here, not by GEOS, which would snap them to a geometry's precision grid.)"""
    rings = shapely.get_parts(shapely.boundary(geoms[~shapely.is_empty(geoms)]))
    xy, ring = shapely.get_coordinates(rings, return_index=True)
    seg = np.flatnonzero(ring[1:] == ring[:-1])
    p, q = xy[seg], xy[seg + 1]
    d = q - p
    cuts = np.maximum(np.ceil(np.hypot(d[:, 0], d[:, 1]) / (cell / 2)), 1).astype(np.intp)
    which = np.repeat(np.arange(len(seg)), cuts)
    k = np.arange(len(which)) - np.repeat(np.cumsum(cuts) - cuts, cuts)
    a = p[which] + d[which] * (k / cuts[which])[:, None]
    b = p[which] + d[which] * ((k + 1) / cuts[which])[:, None]
    last = k + 1 == cuts[which]
    b[last] = q[which[last]]  # segment ends exactly
    scale = max(1.0, *np.abs([minx, miny, minx + nx * cell, miny + ny * cell]))
    eps, inv = cell * 1e-6 + scale * 1e-12, 1.0 / cell
    c0 = np.clip(_index(np.minimum(a[:, 0], b[:, 0]) - eps, minx, inv, nx), 0, nx - 1)
    c1 = np.clip(_index(np.maximum(a[:, 0], b[:, 0]) + eps, minx, inv, nx), 0, nx - 1)
    r0 = np.clip(_index(np.minimum(a[:, 1], b[:, 1]) - eps, miny, inv, ny), 0, ny - 1)
    r1 = np.clip(_index(np.maximum(a[:, 1], b[:, 1]) + eps, miny, inv, ny), 0, ny - 1)
    near = np.zeros((ny, nx), dtype=bool)
    for dr in range(int((r1 - r0).max(initial=0)) + 1):
        for dc in range(int((c1 - c0).max(initial=0)) + 1):
            m = (r0 + dr <= r1) & (c0 + dc <= c1)
            near[r0[m] + dr, c0[m] + dc] = True
    return near


def _lookup(areas: gpd.GeoDataFrame, cell_size_m: float | None) -> _Lookup:
    """The layer's lookup, from the cache when the same polygons and codes were seen."""
    geoms = np.asarray(areas.geometry.values)
    codes = areas["code"].to_numpy(dtype=str)
    bounds = shapely.total_bounds(geoms)
    span = (bounds[2] - bounds[0]) * (bounds[3] - bounds[1])
    cell = cell_size_m or max(5.0, float(np.sqrt(span / MAX_GRID_CELLS)))
    if cell <= 0:
        raise ValueError(f"cell_size_m must be positive, got {cell_size_m}.")
    # geometries are immutable and the entry holds them, so their ids cannot be reused
    key = (tuple(map(id, geoms)), tuple(codes), float(cell))
    with _CACHE_LOCK:
        hit = _CACHE.get(key)
        if hit is not None:
            _CACHE.move_to_end(key)
            return hit
    shapely.prepare(geoms)
    rank = np.argsort(np.argsort(codes, kind="stable"))
    minx, miny, maxx, maxy = bounds
    nx = int(np.ceil((maxx - minx) / cell)) + 1
    ny = int(np.ceil((maxy - miny) / cell)) + 1
    near = _near_cells(geoms, cell, minx, miny, nx, ny)
    # regions no boundary crosses (4-connected): any one cell centre each, tested exactly
    comp, n_comp = ndimage.label(~near)
    rep = np.zeros(n_comp + 1, dtype=np.int64)
    rep[comp.ravel()] = np.arange(comp.size)
    labels = np.full(n_comp + 1, -1, dtype=np.int64)
    labels[1:] = _exact(geoms, minx + (rep[1:] % nx + 0.5) * cell,
                        miny + (rep[1:] // nx + 0.5) * cell, rank, nearest_max_m=0.0, tree=None)
    table = np.full((ny + 2, nx + 2), -1, dtype=np.int32)  # grids stay under 2**31 cells
    inner = table[1:-1, 1:-1]
    inner[...] = labels[comp]
    n_near = int(near.sum())
    inner[near] = np.arange(-2, -2 - n_near, -1)
    # near cells -> polygons whose bounding box reaches them (the points' cell arithmetic:
    # a point in or on a polygon lies in its box, so in a cell of the box's range)
    box = shapely.bounds(geoms)
    ok = np.flatnonzero(np.isfinite(box).all(axis=1))
    inv = 1.0 / cell
    c0, c1 = (np.clip(_index(box[ok, i], minx, inv, nx), 0, nx) for i in (0, 2))
    r0, r1 = (np.clip(_index(box[ok, i], miny, inv, ny), 0, ny) for i in (1, 3))
    cells = []
    for a0, a1, b0, b1 in zip(r0, r1, c0, c1, strict=True):  # per polygon, not per point
        t = inner[a0:a1 + 1, b0:b1 + 1]
        cells.append(-2 - t[t <= -2].astype(np.int64))
    counts = np.array([len(c) for c in cells], dtype=np.int64)
    cells = np.concatenate(cells) if cells else np.zeros(0, dtype=np.int64)  # type: ignore[assignment]
    polys = np.repeat(ok, counts)
    start = np.zeros(n_near + 1, dtype=np.int64)
    np.cumsum(np.bincount(cells, minlength=n_near), out=start[1:])
    look = _Lookup(geoms=geoms, rank=rank, minx=float(minx), miny=float(miny), inv=inv,
                   nx=nx, ny=ny, table=table.ravel(), start=start,
                   cand=polys[np.lexsort((rank[polys], cells))], tree=shapely.STRtree(geoms))
    with _CACHE_LOCK:
        _CACHE[key] = look
        while len(_CACHE) > LOOKUP_CACHE_SIZE:
            _CACHE.popitem(last=False)
    return look


def assign_points(x: np.ndarray, y: np.ndarray, areas: gpd.GeoDataFrame, *,
                  nearest_max_m: float = 0.0, cell_size_m: float | None = None) -> np.ndarray:
    """Index (row position in ``areas``) of the area of each point, -1 when unassigned.

    Parameters
    ----------
    x, y : eastings and northings in the CRS of ``areas`` (metres).
    areas : polygons with a ``code`` column, projected (EPSG:27700).
    nearest_max_m : points in no polygon go to the nearest within this distance (metres);
        0 (the default) leaves them unassigned.
    cell_size_m : lookup-grid cell; default chosen from the extent (5 m or more, at most
        4 million cells). It changes speed only, never the answer.

    Returns
    -------
    numpy int64 array, one entry per point.
    """
    check_projected(areas, "areas")
    x = np.asarray(x, dtype=float)
    y = np.asarray(y, dtype=float)
    look = _lookup(areas, cell_size_m)
    lab = look.table[look.cells(x, y)].astype(np.int64)
    out = np.where(lab >= 0, lab, -1)
    # near a boundary: the exact test against the cell's candidates, in code order
    pts = np.nonzero(lab <= -2)[0]
    first = look.start[-2 - lab[pts]]
    count = look.start[-1 - lab[pts]] - first
    some = count > 0
    todo, first, count, j = pts[some], first[some], count[some], 0
    while len(todo):
        g = look.cand[first + j]
        inside = shapely.contains_xy(look.geoms[g], x[todo], y[todo])
        out[todo[inside]] = g[inside]
        j += 1
        more = ~inside & (count > j)
        todo, first, count = todo[more], first[more], count[more]
    # on a boundary (inside no polygon): the smallest code among those it touches
    miss = pts[out[pts] < 0]
    if len(miss):
        first = look.start[-2 - lab[miss]]
        count = look.start[-1 - lab[miss]] - first
        pi = np.repeat(np.arange(len(miss)), count)
        gi = look.cand[np.repeat(first - np.cumsum(count) + count, count) + np.arange(len(pi))]
        touch = shapely.intersects_xy(look.geoms[gi], x[miss[pi]], y[miss[pi]])
        pi, gi = pi[touch], gi[touch]  # still in code order within each point
        keep = np.r_[True, pi[1:] != pi[:-1]] if len(pi) else np.zeros(0, dtype=bool)
        out[miss[pi[keep]]] = gi[keep]
    if nearest_max_m > 0:  # in no polygon: the nearest within the limit, ties by code
        miss = np.nonzero((out < 0) & np.isfinite(x) & np.isfinite(y))[0]
        if len(miss):
            mi, mg = look.tree.query_nearest(shapely.points(x[miss], y[miss]),
                                             max_distance=nearest_max_m, all_matches=True)
            order = np.lexsort((look.rank[mg], mi))
            mi, mg = mi[order], mg[order]
            keep = np.r_[True, mi[1:] != mi[:-1]] if len(mi) else np.zeros(0, dtype=bool)
            out[miss[mi[keep]]] = mg[keep]
    return out


def assign_codes(x: np.ndarray, y: np.ndarray, areas: gpd.GeoDataFrame, *,
                 nearest_max_m: float = 0.0) -> np.ndarray:
    """Like :func:`assign_points` but returns area codes ('' when unassigned)."""
    idx = assign_points(x, y, areas, nearest_max_m=nearest_max_m)
    codes = np.append(areas["code"].to_numpy(dtype=object), "")
    return codes[idx]


_NEST_CACHE: dict = {}


def nesting(finer: gpd.GeoDataFrame, coarser: gpd.GeoDataFrame) -> pd.Series:
    """The coarser area each finer area lies in (by code): the one holding most of its
    area (areas built from the finer layer hold all of it)."""
    key = (tuple(finer["code"]), tuple(coarser["code"]))
    if key in _NEST_CACHE:
        return _NEST_CACHE[key]
    fg, cg = np.asarray(finer.geometry.values), np.asarray(coarser.geometry.values)
    fi, ci = shapely.STRtree(cg).query(fg, predicate="intersects")
    # a finer area wholly inside a coarser one overlaps it by its own area, the most any
    # area can: its other pairs (neighbours along an edge) need no intersection; only
    # finer areas split between coarser ones are intersected
    shapely.prepare(cg)
    inside = shapely.covers(cg[ci], fg[fi])
    overlap = np.where(inside, shapely.area(fg[fi]), 0.0)
    held = np.zeros(len(fg), dtype=bool)
    held[fi[inside]] = True
    part = np.flatnonzero(~inside & ~held[fi])
    overlap[part] = shapely.area(shapely.intersection(fg[fi[part]], cg[ci[part]]))
    best = pd.DataFrame({"f": fi, "c": ci, "a": overlap}).sort_values(
        ["f", "a"], ascending=[True, False]).drop_duplicates("f")
    out = pd.Series(coarser["code"].to_numpy()[best["c"]],
                    index=finer["code"].to_numpy()[best["f"]])
    _NEST_CACHE[key] = out
    return out


#: police.uk positions are latitude and longitude to 6 decimals (at most 0.11 m apart in
#: London): a point this close to an edge may lie on it.
POLICE_UK_EDGE_M = 0.15


def prefer_own(x: np.ndarray, y: np.ndarray, assigned: np.ndarray, own: np.ndarray,
               areas: gpd.GeoDataFrame, *, edge_m: float = 0.0,
               nearest_max_m: float = 0.0) -> np.ndarray:
    """Apply the police.uk rules to rows that carry their own area.

    ``own`` is the row's index in ``areas``, -1 when the row has none or it is not in the
    layer:

    * a point on a shared edge (within ``edge_m``, the source's coordinate precision) goes
      to its own area when that area is one of those it touches; the smallest-code rule
      stays for rows without an own area;
    * a point in no polygon goes to its own area when that lies within ``nearest_max_m``,
      not to the nearest area.

    Returns the new indices (a copy); only rows whose own area differs from ``assigned``
    are tested.
    """
    out = np.array(assigned, dtype=np.int64, copy=True)
    todo = np.flatnonzero((own >= 0) & (own != out) & np.isfinite(x) & np.isfinite(y))
    if not len(todo):
        return out
    geoms = np.asarray(areas.geometry.values)
    px, py, o, a = x[todo], y[todo], own[todo], out[todo]
    dist = shapely.distance(geoms[o], shapely.points(px, py))
    in_any = np.zeros(len(todo), dtype=bool)
    has = a >= 0
    in_any[has] = shapely.intersects_xy(geoms[a[has]], px[has], py[has])
    take = (dist <= edge_m) | (~in_any & (dist <= nearest_max_m))
    out[todo[take]] = o[take]
    return out
