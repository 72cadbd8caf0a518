"""Spatial neighbours for Gi*: binary scipy.sparse CSR matrices (n x n) that *include
each cell itself* (``w_ii = 1``), from a grid's lattice indices (:func:`grid_neighbours`),
a distance band between centres (:func:`distance_band_neighbours`) or polygon contiguity
(:func:`polygon_neighbours`). :mod:`hotspots.gistar` re-exports them.
"""

from __future__ import annotations

import geopandas as gpd
import numpy as np
import pandas as pd
import scipy.sparse as sp
import shapely
from numpy.typing import ArrayLike

from .schema import CellShape, Contiguity
from .validate import check_option, check_xy

_CONTIGUITY = ("queen", "rook")
_CELL_SHAPES = ("square", "hex")
# (d_row, d_col) lattice offsets of each cell's neighbours, the cell itself excluded.
_OFFSETS = {
    ("square", "rook"): ((1, 0), (-1, 0), (0, 1), (0, -1)),
    ("square", "queen"): ((1, 0), (-1, 0), (0, 1), (0, -1), (1, 1), (1, -1), (-1, 1), (-1, -1)),
    # axial (col = q, row = r): (q±1, r), (q, r±1), (q+1, r-1), (q-1, r+1)
    ("hex", "rook"): ((0, 1), (0, -1), (1, 0), (-1, 0), (-1, 1), (1, -1)),
    ("hex", "queen"): ((0, 1), (0, -1), (1, 0), (-1, 0), (-1, 1), (1, -1)),
}


def _from_pairs(i: np.ndarray, j: np.ndarray, n: int) -> sp.csr_matrix:
    """Binary CSR from (i, j) pairs plus the diagonal; duplicates collapse to 1."""
    ii = np.concatenate([i, np.arange(n)])
    jj = np.concatenate([j, np.arange(n)])
    m = sp.csr_matrix((np.ones(len(ii)), (ii, jj)), shape=(n, n))
    m.sum_duplicates()
    m.data[:] = 1.0
    return m


def _integer_column(grid: pd.DataFrame, name: str) -> np.ndarray:
    values = np.asarray(grid[name], dtype=float)
    bad = ~np.isfinite(values) | (values != np.round(values))
    if bad.any():
        first = int(np.flatnonzero(bad)[0])
        raise ValueError(
            f"grid column {name!r} must hold whole lattice indices; {int(bad.sum())} rows do "
            f"not, the first at position {first} ({float(values[first])!r})"
        )
    return values.astype(np.int64)


def _infer_cell_shape(row: np.ndarray, col: np.ndarray, grid: pd.DataFrame) -> str:
    """Square or hex from how the centres' y follow row and col.

    On a square lattice y = y0 + s row; on flat-topped axial hexes y = y0 + sqrt(3) R
    (row + col / 2), so y also grows with col at half the rate.
    """
    if np.ptp(row) == 0 or np.ptp(col) == 0:
        return "square"  # one line of cells: squares and hexes give the same neighbours
    missing = [c for c in ("x", "y") if c not in grid.columns]
    if missing:
        raise ValueError(
            f"grid has no column {missing[0]!r} to tell squares from hexes; "
            "pass cell_shape='square' or 'hex'"
        )
    design = np.column_stack([np.ones(len(row)), row, col]).astype(float)
    coef, _, rank, _ = np.linalg.lstsq(design, np.asarray(grid["y"], dtype=float), rcond=None)
    if rank < 3:
        raise ValueError(
            "cannot tell squares from hexes: the cells lie on one diagonal of the lattice; "
            "pass cell_shape='square' or 'hex'"
        )
    return "hex" if abs(coef[2]) > 0.25 * abs(coef[1]) else "square"


def grid_neighbours(
    grid: pd.DataFrame, *, contiguity: Contiguity = "queen", cell_shape: CellShape | None = None
) -> sp.csr_matrix:
    """Binary contiguity of grid cells from their lattice indices, each cell included.

    Parameters
    ----------
    grid : pandas.DataFrame or geopandas.GeoDataFrame
        Cells with the integer lattice columns ``row`` and ``col`` (see
        ``hotspots.schema.GRID_COLUMNS``: squares count rows north and columns east;
        flat-topped hexes use axial coordinates, col = q and row = r). Cells may be missing
        anywhere (holes, irregular outlines): a neighbour exists only if its cell is present.
    contiguity : {"queen", "rook"}, default "queen"
        Squares: "queen" links the 8 cells sharing an edge or a corner, "rook" the 4
        sharing an edge. Hexes have only edge neighbours, so both give the 6 axial
        neighbours (q±1, r), (q, r±1), (q+1, r-1), (q-1, r+1).
    cell_shape : {"square", "hex"} or None, default None
        None infers it from the centres ``x``/``y``: y grows with col on hexes, not on
        squares.

    Returns
    -------
    scipy.sparse.csr_matrix
        n x n float64 matrix in the grid's row order, 1.0 where cells are neighbours and
        on the whole diagonal (Gi* counts each cell in its own neighbourhood).

    Examples
    --------
    >>> cells = pd.DataFrame({"row": [0, 0, 1, 1], "col": [0, 1, 0, 1]})
    >>> grid_neighbours(cells, cell_shape="square").toarray().astype(int)
    array([[1, 1, 1, 1],
           [1, 1, 1, 1],
           [1, 1, 1, 1],
           [1, 1, 1, 1]])
    """
    check_option("contiguity", contiguity, _CONTIGUITY)
    check_option("cell_shape", cell_shape, (*_CELL_SHAPES, None))
    missing = [c for c in ("row", "col") if c not in grid.columns]
    if missing:
        raise ValueError(f"grid has no column {missing[0]!r}; expected the columns of "
                         "hotspots.schema.GRID_COLUMNS")
    n = len(grid)
    if n == 0:
        return sp.csr_matrix((0, 0))
    row = _integer_column(grid, "row")
    col = _integer_column(grid, "col")
    shape = cell_shape or _infer_cell_shape(row, col, grid)

    # one int64 key per cell, padded by one so that offsets of ±1 never wrap around
    r = row - row.min() + 1
    c = col - col.min() + 1
    stride = int(c.max()) + 2
    box = (int(r.max()) + 2) * stride
    if box >= 2**62:
        raise ValueError("grid lattice indices span too wide a range to index")
    key = r * stride + c
    offsets = [d_row * stride + d_col for d_row, d_col in _OFFSETS[(shape, contiguity)]]

    # table[i] = positions of cell i and of its neighbours, -1 where a cell is missing
    cells = np.arange(n)
    table = np.full((n, len(offsets) + 1), -1, dtype=np.int64)
    table[:, 0] = cells
    if box <= 8 * n + 4096:  # compact lattice (any real grid): a dense lookup array
        lookup = np.full(box, -1, dtype=np.int64)
        lookup[key] = cells
        if not np.array_equal(lookup[key], cells):
            _raise_duplicates(key, row, col)
        for m, off in enumerate(offsets, start=1):
            table[:, m] = lookup[key + off]
    else:  # sparse lattice: binary search in the sorted keys
        order = np.argsort(key, kind="stable")
        sorted_key = key[order]
        if np.any(sorted_key[1:] == sorted_key[:-1]):
            _raise_duplicates(key, row, col)
        for m, off in enumerate(offsets, start=1):
            target = sorted_key + off  # sorted queries: a cache-friendly search
            pos = np.minimum(np.searchsorted(sorted_key, target), n - 1)
            table[order, m] = np.where(sorted_key[pos] == target, order[pos], -1)

    # CSR straight from the table: sorting each row leaves the -1s first, the rest ascending
    table.sort(axis=1)
    present = table >= 0
    indptr = np.concatenate([[0], np.cumsum(present.sum(axis=1))])
    indices = table[present]
    return sp.csr_matrix((np.ones(len(indices)), indices, indptr), shape=(n, n))


def _raise_duplicates(key: np.ndarray, row: np.ndarray, col: np.ndarray) -> None:
    order = np.argsort(key, kind="stable")
    sorted_key = key[order]
    dup = np.flatnonzero(sorted_key[1:] == sorted_key[:-1])
    first = int(np.min(order[dup + 1]))
    raise ValueError(
        f"grid has {dup.size} cells whose (row, col) repeats an earlier one; the first at "
        f"position {first} (row {row[first]}, col {col[first]})"
    )


def distance_band_neighbours(x: ArrayLike, y: ArrayLike, *, distance_m: float) -> sp.csr_matrix:
    """Binary distance-band neighbours of points (cell centres, area centroids), self included.

    Parameters
    ----------
    x, y : array-like of float
        Coordinates in metres (EPSG:27700), one pair per cell.
    distance_m : float
        Band in metres: points at most this far apart (``<=``) are neighbours. Must be > 0.

    Returns
    -------
    scipy.sparse.csr_matrix
        n x n float64 binary matrix, symmetric, with 1.0 on the diagonal.

    Examples
    --------
    >>> distance_band_neighbours([0, 50, 500], [0, 0, 0], distance_m=100).toarray()
    array([[1., 1., 0.],
           [1., 1., 0.],
           [0., 0., 1.]])
    """
    xs, ys = check_xy(x, y, finite=True)
    if not (np.isfinite(distance_m) and distance_m > 0):
        raise ValueError(f"distance_m must be a finite distance in metres > 0; got {distance_m!r}")
    from scipy.spatial import cKDTree  # not at import: a grid's Gi* does not need it

    pairs = cKDTree(np.column_stack([xs, ys])).query_pairs(distance_m, output_type="ndarray")
    i, j = pairs[:, 0], pairs[:, 1]
    return _from_pairs(np.concatenate([i, j]), np.concatenate([j, i]), len(xs))


def polygon_neighbours(gdf: gpd.GeoDataFrame, *, contiguity: Contiguity = "queen"
                       ) -> sp.csr_matrix:
    """Binary contiguity of polygons (LSOAs, wards, clipped cells), each polygon included.

    Parameters
    ----------
    gdf : geopandas.GeoDataFrame
        Polygons in metres; none may be missing or empty.
    contiguity : {"queen", "rook"}, default "queen"
        "queen": polygons that share any boundary point (or overlap) are neighbours.
        "rook": only those sharing a stretch of boundary of positive length (or
        overlapping); a shared corner point is not enough. Shared boundaries must
        coincide exactly: polygons separated by a gap, however thin, are not neighbours.

    Returns
    -------
    scipy.sparse.csr_matrix
        n x n float64 binary matrix in the frame's row order, symmetric, 1.0 on the
        diagonal.

    Examples
    --------
    >>> import geopandas as gpd, shapely
    >>> boxes = [shapely.box(0, 0, 1, 1), shapely.box(1, 0, 2, 1), shapely.box(5, 5, 6, 6)]
    >>> squares = gpd.GeoDataFrame(geometry=boxes, crs=27700)
    >>> polygon_neighbours(squares).toarray()
    array([[1., 1., 0.],
           [1., 1., 0.],
           [0., 0., 1.]])
    """
    check_option("contiguity", contiguity, _CONTIGUITY)
    geoms = np.asarray(gdf.geometry.array, dtype=object)
    bad = shapely.is_missing(geoms) | shapely.is_empty(geoms)
    if bad.any():
        first = int(np.flatnonzero(bad)[0])
        raise ValueError(f"gdf has {int(bad.sum())} missing or empty geometries; the first at "
                         f"position {first}")
    tree = shapely.STRtree(geoms)
    i, j = tree.query(geoms, predicate="intersects")
    off = i != j
    i, j = i[off], j[off]
    if contiguity == "rook":
        # DE-9IM: boundaries meet along a line (position 4 is 1), or interiors overlap
        rel = shapely.relate(geoms[i], geoms[j]).astype("U9").view("U1").reshape(-1, 9)
        keep = (rel[:, 0] == "2") | (rel[:, 4] == "1")
        i, j = i[keep], j[keep]
    return _from_pairs(i, j, len(geoms))
