"""Getis-Ord Gi* hot and cold spots: neighbours, z-scores, FDR-corrected p-values, classes.

Neighbours are binary scipy.sparse CSR matrices (n x n) that *include each cell itself*
(``w_ii = 1``), as Gi* requires: build them (in :mod:`hotspots.neighbours`, re-exported
here) from a grid's lattice indices (:func:`grid_neighbours`), from a distance band
between centres (:func:`distance_band_neighbours`) or from polygon contiguity
(:func:`polygon_neighbours`).
:func:`gistar` then computes the analytic Gi* for every cell, fully vectorised:

    z_i = (sum_j w_ij x_j - xbar sum_j w_ij)
          / (S sqrt((n sum_j w_ij^2 - (sum_j w_ij)^2) / (n - 1)))

with ``xbar`` and ``S`` (population standard deviation) over all n cells (Getis and Ord
1992; Ord and Getis 1995). It equals ``esda.G_Local(y, w, transform="B", star=True).Zs``.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
import scipy.sparse as sp
from numpy.typing import ArrayLike
from scipy.special import ndtr

from .neighbours import distance_band_neighbours, grid_neighbours, polygon_neighbours

__all__ = ["GISTAR_COLUMNS", "MIN_CELLS", "benjamini_hochberg", "distance_band_neighbours",
           "gi_classes", "gistar", "grid_neighbours", "polygon_neighbours"]

#: Columns of the table :func:`gistar` returns (one row per cell, in the input order).
GISTAR_COLUMNS: tuple[str, ...] = (
    "gistar_z", "p_value", "p_adjusted", "gi_class", "n_neighbours", "island",
)

#: Fewest cells :func:`gistar` accepts. Below 3 there is no cell whose neighbourhood is
#: neither itself alone (an island) nor the whole study area (variance 0/0), so no z
#: can be computed at all. This is a mathematical floor, not a recommendation: the normal
#: approximation wants far more cells (ArcGIS advises at least 30 features).
MIN_CELLS = 3

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
