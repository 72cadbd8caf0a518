"""Getis-Ord Gi* hot and cold spots: neighbours, z-scores, FDR-corrected p-values, classes.

Neighbours are binary scipy.sparse CSR matrices (n x n) that *include each cell itself*
(``w_ii = 1``), as Gi* requires: build them from a grid's lattice indices
(:func:`grid_neighbours`), from a distance band between centres
(:func:`distance_band_neighbours`) or from polygon contiguity (:func:`polygon_neighbours`).
:func:`gistar` then computes the analytic Gi* for every cell, fully vectorised:

    z_i = (sum_j w_ij x_j - xbar sum_j w_ij)
          / (S sqrt((n sum_j w_ij^2 - (sum_j w_ij)^2) / (n - 1)))

with ``xbar`` and ``S`` (population standard deviation) over all n cells (Getis and Ord
1992; Ord and Getis 1995). It equals ``esda.G_Local(y, w, transform="B", star=True).Zs``.
"""

from __future__ import annotations

from collections.abc import Sequence

import geopandas as gpd
import numpy as np
import pandas as pd
import scipy.sparse as sp
import shapely
from numpy.typing import ArrayLike
from scipy.spatial import cKDTree
from scipy.special import ndtr

from .schema import CellShape, Contiguity
from .validate import check_option, check_xy

#: Columns of the table :func:`gistar` returns (one row per cell, in the input order).
GISTAR_COLUMNS: tuple[str, ...] = (
    "gistar_z", "p_value", "p_adjusted", "gi_class", "n_neighbours", "island",
)

#: Fewest cells :func:`gistar` accepts. Below 3 there is no cell whose neighbourhood is
#: neither itself alone (an island) nor the whole study area (variance 0/0), so no z
#: can be computed at all. This is a mathematical floor, not a recommendation: the normal
#: approximation wants far more cells (ArcGIS advises at least 30 features).
MIN_CELLS = 3

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


def benjamini_hochberg(p: ArrayLike) -> np.ndarray:
    """Benjamini-Hochberg (1995) adjusted p-values, step-up and monotone.

    For p-values sorted ascending, p_(i) is adjusted to ``min over k >= i of
    p_(k) m / k`` and capped at 1, where m is the number of p-values. A test is significant
    at false discovery rate q exactly when its adjusted p-value is <= q. Same result as
    ``scipy.stats.false_discovery_control(p, method="bh")``.

    Parameters
    ----------
    p : array-like of float
        P-values in [0, 1], any shape (adjusted together, returned in the same shape).

    Returns
    -------
    numpy.ndarray
        Adjusted p-values, float64, same shape and order as ``p``.

    Examples
    --------
    >>> benjamini_hochberg([0.01, 0.04, 0.03, 0.20]).round(3).tolist()
    [0.04, 0.053, 0.053, 0.2]
    """
    arr = np.asarray(p, dtype=float)
    flat = arr.ravel()
    bad = ~(np.isfinite(flat) & (flat >= 0) & (flat <= 1))
    if bad.any():
        first = int(np.flatnonzero(bad)[0])
        raise ValueError(f"p must hold p-values in [0, 1]; {int(bad.sum())} do not, the first "
                         f"at position {first} ({float(flat[first])!r})")
    m = flat.size
    if m == 0:
        return arr.copy()
    order = np.argsort(flat, kind="stable")
    scaled = flat[order] * m / np.arange(1, m + 1)
    adjusted = np.minimum.accumulate(scaled[::-1])[::-1]
    out = np.empty(m)
    out[order] = np.minimum(adjusted, 1.0)
    return out.reshape(arr.shape)


def _check_alpha_levels(alpha_levels: ArrayLike) -> np.ndarray:
    levels = np.asarray(alpha_levels, dtype=float).ravel()
    if (levels.size != 3 or len(np.unique(levels)) != 3
            or not np.all((levels > 0) & (levels < 1))):
        raise ValueError("alpha_levels must be three different significance levels in (0, 1), "
                         f"such as (0.10, 0.05, 0.01); got {tuple(levels.tolist())!r}")
    return np.sort(levels)[::-1]


def gi_classes(
    z: ArrayLike, p: ArrayLike, *, alpha_levels: ArrayLike = (0.10, 0.05, 0.01)
) -> np.ndarray:
    """Hot/cold classes -3..+3 as ArcGIS's Gi_Bin.

    +3/-3: p <= 0.01 (99% confidence), +2/-2: p <= 0.05 (95%), +1/-1: p <= 0.10 (90%),
    sign from z (+ hot, - cold); 0 otherwise, and wherever z is 0.

    Parameters
    ----------
    z : array-like of float
        Gi* z-scores.
    p : array-like of float
        Two-sided p-values to judge them by (FDR-adjusted ones if correcting), same shape.
    alpha_levels : sequence of three floats, default (0.10, 0.05, 0.01)
        Levels of classes 1, 2 and 3 (any order: the largest is class 1).

    Returns
    -------
    numpy.ndarray
        int64 classes, same shape as ``z``.

    Examples
    --------
    >>> gi_classes([3.1, 2.0, -2.0, 0.5], [0.001, 0.04, 0.08, 0.6]).tolist()
    [3, 2, -1, 0]
    """
    levels = _check_alpha_levels(alpha_levels)
    z = np.asarray(z, dtype=float)
    p = np.asarray(p, dtype=float)
    if z.shape != p.shape:
        raise ValueError(f"z and p must have the same shape; got {z.shape} and {p.shape}")
    strength = (p[..., None] <= levels).sum(axis=-1)
    return (np.sign(z) * strength).astype(np.int64)


def _check_values(values: ArrayLike) -> np.ndarray:
    x = np.asarray(values, dtype=float)
    if x.ndim != 1:
        raise ValueError(f"values must be one-dimensional, one value per cell; got shape "
                         f"{x.shape}")
    bad = ~np.isfinite(x) | (x < 0)
    if bad.any():
        first = int(np.flatnonzero(bad)[0])
        raise ValueError(
            f"values must be finite and >= 0 (counts or harm-weighted counts); {int(bad.sum())} "
            f"are not, the first at position {first} ({float(x[first])!r})"
        )
    if len(x) < MIN_CELLS:
        raise ValueError(f"values must cover at least {MIN_CELLS} cells for Gi*; got {len(x)}")
    if np.all(x == x[0]):
        raise ValueError(
            f"values: every cell has the same value ({float(x[0])!r}), so no cell can stand "
            "out and Gi* is undefined (zero variance); widen the period or the area"
        )
    return x


def _check_weights(weights: sp.spmatrix | sp.sparray, n: int) -> sp.csr_matrix:
    if not sp.issparse(weights):
        raise ValueError("weights must be a scipy.sparse matrix (from grid_neighbours, "
                         f"distance_band_neighbours or polygon_neighbours); got "
                         f"{type(weights).__name__}")
    if weights.shape != (n, n):
        raise ValueError(f"weights must be {n} x {n} to match the {n} values; got "
                         f"{weights.shape[0]} x {weights.shape[1]}")
    w = sp.csr_matrix(weights)  # no copy when it is already a float csr_matrix
    if not w.has_canonical_format:
        w = w.copy()
        w.sum_duplicates()
    if w.dtype != np.float64:
        w = w.astype(np.float64)
    if not np.all(w.data == 1.0):
        raise ValueError("weights must be binary (every stored entry 1); got values "
                         f"{np.unique(w.data[w.data != 1.0])[:5].tolist()}")
    diag = w.diagonal()
    if not np.all(diag == 1.0):
        first = int(np.flatnonzero(diag != 1.0)[0])
        raise ValueError(
            f"weights must include each cell in its own neighbourhood (Gi*: diagonal 1); "
            f"{int((diag != 1.0).sum())} cells lack it, the first at position {first}; add "
            "scipy.sparse.identity(n) or build weights with the *_neighbours functions"
        )
    return w


def gistar(
    values: ArrayLike,
    weights: sp.csr_matrix,
    *,
    fdr: bool = True,
    alpha_levels: Sequence[float] = (0.10, 0.05, 0.01),
) -> pd.DataFrame:
    """Analytic Getis-Ord Gi* per cell with Benjamini-Hochberg FDR and ArcGIS-style classes.

    Parameters
    ----------
    values : array-like of float
        One value per cell, finite and >= 0 (incident counts, harm-weighted counts), at
        least 3 cells and not all equal. A pandas Series keeps its index in the result.
    weights : scipy.sparse matrix
        Binary n x n neighbours with each cell on the diagonal, as the ``*_neighbours``
        functions build them. Only row i is used for cell i.
    fdr : bool, default True
        Adjust the p-values with Benjamini-Hochberg across all cells that are not islands,
        and judge classes on the adjusted values. ArcGIS's FDR option applies BH at each
        confidence level; classing adjusted p-values at 0.10/0.05/0.01 gives exactly the
        same decisions (BH rejects p_(i) at level q iff its step-up adjusted value <= q).
        False: ``p_adjusted`` equals ``p_value``.
    alpha_levels : sequence of three floats, default (0.10, 0.05, 0.01)
        Significance levels of classes ±1, ±2 and ±3 (90%, 95% and 99% confidence).

    Returns
    -------
    pandas.DataFrame
        One row per cell, in the input order, with the columns of ``GISTAR_COLUMNS``:

        ============ ======= =====================================================
        gistar_z     float   Gi* z-score (+ hot, - cold); 0.0 for islands
        p_value      float   two-sided p-value from the standard normal
                             distribution, 2 * (1 - Phi(|z|)); 1.0 for islands
        p_adjusted   float   Benjamini-Hochberg adjusted p_value (fdr=True), else
                             p_value; 1.0 for islands
        gi_class     int64   -3..+3: ±3 at p_adjusted <= 0.01, ±2 <= 0.05,
                             ±1 <= 0.10, else 0 (ArcGIS's Gi_Bin)
        n_neighbours int64   neighbours other than the cell itself (the Gi*
                             neighbourhood holds n_neighbours + 1 cells)
        island       bool    no neighbour but itself: Gi* would reduce to the
                             cell's own standardised value, which says nothing
                             about clustering, so it is not tested: z 0, p 1,
                             class 0, and left out of the FDR family
        ============ ======= =====================================================

    Raises
    ------
    ValueError
        Bad values (non-finite, negative, fewer than 3, all equal), weights that are not
        binary, miss the diagonal or do not match the values in size, bad alpha_levels,
        or a neighbourhood that covers every cell (its variance is zero).

    Notes
    -----
    ``z_i = (sum_j w_ij x_j - xbar W_i) / (S sqrt((n W_i - W_i^2) / (n - 1)))`` with
    ``W_i = sum_j w_ij`` (binary, so ``sum_j w_ij^2 = W_i``), ``xbar`` the mean and ``S``
    the population standard deviation of all n values, islands included. Equal to
    ``esda.G_Local(values, w, transform="B", star=True).Zs`` for non-islands.

    Examples
    --------
    >>> cells = pd.DataFrame({"row": np.repeat(range(5), 5), "col": np.tile(range(5), 5)})
    >>> w = grid_neighbours(cells, cell_shape="square")
    >>> counts = np.zeros(25)
    >>> counts[[0, 1, 5, 6]] = [9, 8, 7, 9]
    >>> out = gistar(counts, w, fdr=False)
    >>> list(out.columns)
    ['gistar_z', 'p_value', 'p_adjusted', 'gi_class', 'n_neighbours', 'island']
    >>> int(out["gistar_z"].idxmax()), int(out["gi_class"].max())
    (0, 3)
    """
    x = _check_values(values)
    n = len(x)
    w = _check_weights(weights, n)
    levels = _check_alpha_levels(alpha_levels)

    size = np.diff(w.indptr).astype(np.float64)  # W_i, self included (binary, canonical)
    full = np.flatnonzero(size == n)
    if full.size:
        raise ValueError(
            f"weights: the neighbourhood of {full.size} cells covers all {n} cells (the first "
            f"at position {int(full[0])}), so their Gi* has zero variance; use a smaller "
            "neighbourhood (distance_m) or a larger area"
        )
    mean = x.mean()
    sd = np.sqrt(np.mean((x - mean) ** 2))
    z = (w @ x - mean * size) / (sd * np.sqrt((n * size - size**2) / (n - 1)))
    island = size == 1.0
    z[island] = 0.0
    p = np.minimum(2.0 * ndtr(-np.abs(z)), 1.0)
    p_adj = p.copy()
    if fdr:
        tested = ~island
        p_adj[tested] = benjamini_hochberg(p[tested])

    index = values.index if isinstance(values, pd.Series) else None
    return pd.DataFrame(
        {
            "gistar_z": z,
            "p_value": p,
            "p_adjusted": p_adj,
            "gi_class": gi_classes(z, p_adj, alpha_levels=levels),
            "n_neighbours": size.astype(np.int64) - 1,
            "island": island,
        },
        index=index,
    )
