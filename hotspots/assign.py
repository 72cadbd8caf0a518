"""Assign points to areas, exactly and fast, in EPSG:27700.

The edge rule (one area per point, deterministic):

1. a point strictly inside one polygon goes to that polygon;
2. a point on a shared edge or vertex (inside no polygon, on the boundary of several)
   goes to the polygon with the smallest code; so does a point inside several
   overlapping polygons (an invalid coverage);
3. a point in no polygon goes to the nearest polygon within ``nearest_max_m``
   (ties: smallest code), else it stays unassigned (-1).

Speed comes from a lookup grid: cells that no boundary passes near take their polygon
from a connected-component labelling of the grid; only points in cells near a boundary
are tested exactly. The answer is the same as the exact test for every point.
"""

from __future__ import annotations

import geopandas as gpd
import numpy as np
import shapely
from scipy import ndimage

from .errors import CRSError

#: Upper bound on lookup-grid cells (memory ~ 4 bytes each).
MAX_GRID_CELLS = 4_000_000


def check_projected(gdf: gpd.GeoDataFrame, what: str) -> None:
    """Raise CRSError unless ``gdf`` is in a projected CRS in metres (EPSG:27700 here)."""
    if gdf.crs is None or not gdf.crs.is_projected:
        raise CRSError(f"{what} is in {gdf.crs or 'no CRS'}, not a projected CRS in metres. "
                       "Convert it with .to_crs(27700) first.")


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
    geoms = np.asarray(areas.geometry.values)
    shapely.prepare(geoms)
    rank = np.argsort(np.argsort(areas["code"].to_numpy(dtype=str), kind="stable"))
    bounds = shapely.total_bounds(geoms)
    span = (bounds[2] - bounds[0]) * (bounds[3] - bounds[1])
    cell = cell_size_m or max(5.0, float(np.sqrt(span / MAX_GRID_CELLS)))
    if cell <= 0:
        raise ValueError(f"cell_size_m must be positive, got {cell_size_m}.")
    grid, (minx, miny, cell, nx, ny) = label_lattice(geoms, rank, cell, bounds)
    out = np.full(len(x), -1, dtype=np.int64)
    finite = np.isfinite(x) & np.isfinite(y)
    ix = np.zeros(len(x), dtype=np.int64)
    iy = np.zeros(len(x), dtype=np.int64)
    ix[finite] = ((x[finite] - minx) // cell).astype(np.int64)
    iy[finite] = ((y[finite] - miny) // cell).astype(np.int64)
    ingrid = finite & (ix >= 0) & (ix < nx) & (iy >= 0) & (iy < ny)
    lab = np.full(len(x), -2, dtype=np.int64)
    lab[ingrid] = grid[iy[ingrid], ix[ingrid]]
    out[lab >= 0] = lab[lab >= 0]
    # near a boundary: exact test; outside every polygon: only the nearest rule can apply
    todo = np.nonzero((lab == -1) | ((lab == -2) & finite & (nearest_max_m > 0)))[0]
    out[todo] = _exact(geoms, x[todo], y[todo], rank, nearest_max_m=nearest_max_m,
                       tree=shapely.STRtree(geoms))
    return out


def assign_codes(x: np.ndarray, y: np.ndarray, areas: gpd.GeoDataFrame, *,
                 nearest_max_m: float = 0.0) -> np.ndarray:
    """Like :func:`assign_points` but returns area codes ('' when unassigned)."""
    idx = assign_points(x, y, areas, nearest_max_m=nearest_max_m)
    codes = np.append(areas["code"].to_numpy(dtype=object), "")
    return codes[idx]
