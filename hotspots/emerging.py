"""Emerging hot spot classes: the Gi* z series of each grid cell, its Mann-Kendall trend,
and ArcGIS Pro's emerging hot spot patterns (new, consecutive, intensifying, ...).
"""

from __future__ import annotations

from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import scipy.sparse as sp
from numpy.typing import ArrayLike
from scipy.special import ndtr

from .analysis import GridSpec
from .gistar import gistar, grid_neighbours
from .grid import cell_index, make_grid, suggest_cell_size
from .summary import Period, in_period

#: Columns of :func:`emerging_hotspots` (index: the cells).
EMERGING_COLUMNS: tuple[str, ...] = (
    "pattern", "mk_z", "mk_p", "n_periods_hot", "n_periods_cold", "final_z",
)
#: Every label :func:`classify_series` gives.
PATTERNS: tuple[str, ...] = tuple(
    f"{kind} {side} spot"
    for side in ("hot", "cold")
    for kind in ("new", "consecutive", "intensifying", "persistent", "diminishing",
                 "sporadic", "oscillating", "historical")
) + ("no pattern",)
#: Fewest periods for emerging hot spot classes (as ArcGIS's Emerging Hot Spot Analysis).
MIN_PERIODS = 10


# --- Mann-Kendall and emerging hot spots -------------------------------------------------

def _mann_kendall_rows(x: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Mann-Kendall S, z, p for each row of a 2-D array (columns in time order)."""
    rows, n = x.shape
    i, j = np.triu_indices(n, k=1)
    s = np.sign(x[:, j] - x[:, i]).sum(axis=1)
    # tie correction: sum over groups of equal values of t (t - 1) (2 t + 5)
    xs = np.sort(x, axis=1)
    start = np.ones((rows, n), dtype=bool)
    start[:, 1:] = xs[:, 1:] != xs[:, :-1]
    group = np.cumsum(start, axis=1) - 1 + (np.arange(rows) * n)[:, None]
    t = np.bincount(group.ravel(), minlength=rows * n).reshape(rows, n).astype(float)
    ties = (t * (t - 1) * (2 * t + 5)).sum(axis=1)
    var = (n * (n - 1) * (2 * n + 5) - ties) / 18.0
    sd = np.sqrt(np.where(var > 0, var, 1.0))
    z = np.where(var > 0, (s - np.sign(s)) / sd, 0.0)
    p = np.minimum(2.0 * ndtr(-np.abs(z)), 1.0)
    return s.astype(np.int64), z, p


def mann_kendall(series: ArrayLike) -> tuple[int, float, float]:
    """Mann-Kendall test for a monotonic trend in a series.

    ``S = sum_{i<j} sign(x_j - x_i)``; ``Var(S) = (n (n-1) (2n+5) - sum_g t_g (t_g-1)
    (2 t_g+5)) / 18`` with ``t_g`` the size of each group of tied values; ``z = (S - 1) /
    sqrt(Var S)`` for S > 0, ``(S + 1) / sqrt(Var S)`` for S < 0 (continuity correction)
    and 0 for S = 0; ``p = 2 (1 - Phi(|z|))``, two-sided (Mann 1945; Kendall 1975).

    Parameters
    ----------
    series : array-like of float
        Values in time order, oldest first; at least 3, all finite.

    Returns
    -------
    (s, z, p) : (int, float, float)
        The statistic S (> 0: increasing), its z-score and the two-sided p-value. When
        every value is tied, z = 0 and p = 1.

    Examples
    --------
    >>> mann_kendall([1, 2, 3, 4, 5])[0]
    10
    >>> s, z, p = mann_kendall([5, 4, 4, 2, 1, 0])
    >>> s, round(z, 3), round(p, 4)
    (-14, -2.487, 0.0129)
    """
    x = np.asarray(series, dtype=float)
    if x.ndim != 1 or x.size < 3:
        raise ValueError(f"series must be one-dimensional with at least 3 values; got shape "
                         f"{x.shape}")
    bad = ~np.isfinite(x)
    if bad.any():
        first = int(np.flatnonzero(bad)[0])
        raise ValueError(f"series must be finite; {int(bad.sum())} values are not, the first "
                         f"at position {first} ({float(x[first])!r})")
    s, z, p = _mann_kendall_rows(x[None, :])
    return int(s[0]), float(z[0]), float(p[0])


def _bool_rows(name: str, values: ArrayLike) -> np.ndarray:
    arr = np.asarray(values)
    if arr.dtype != bool:
        raise ValueError(f"{name} must be boolean (one flag per period); got dtype {arr.dtype}")
    if arr.ndim not in (1, 2):
        raise ValueError(f"{name} must be 1-D (one series) or 2-D (cells x periods); got "
                         f"shape {arr.shape}")
    return np.atleast_2d(arr)


def classify_series(hot: ArrayLike, cold: ArrayLike, mk_z: ArrayLike, mk_p: ArrayLike, *,
                    alpha: float = 0.10) -> str | np.ndarray:
    """Emerging hot spot pattern of one cell (or of each row) from its significance series.

    Follows the definitions of ArcGIS Pro's Emerging Hot Spot Analysis ("How Emerging Hot
    Spot Analysis works", pro.arcgis.com, learnmoreemerging.htm), quoted, with the
    choices needed to make the classes exclusive in brackets. "90%" means at least 90%
    of all periods (``10 n_hot >= 9 n``). "Significant trend" means a Mann-Kendall
    p-value <= ``alpha`` on the cell's Gi* z series.

    - **new hot spot**: "a statistically significant hot spot for the final time step and
      has never been a statistically significant hot spot before" [nor a cold spot:
      else oscillating].
    - **consecutive hot spot**: "a single uninterrupted run of at least two statistically
      significant hot spot bins in the final time-step intervals. The location has never
      been a statistically significant hot spot prior to the final hot spot run and less
      than 90 percent of all bins are statistically significant hot spots" [never cold].
    - **intensifying hot spot**: "a statistically significant hot spot for 90 percent of
      the time-step intervals, including the final time step. In addition, the intensity
      of clustering of high counts in each time step is increasing overall and that
      increase is statistically significant" [Mann-Kendall z > 0].
    - **persistent hot spot**: "a statistically significant hot spot for 90 percent of
      the time-step intervals with no discernible trend" [and hot in the final period:
      else historical].
    - **diminishing hot spot**: as intensifying, but "the intensity of clustering in each
      time step is decreasing overall and that decrease is statistically significant".
    - **sporadic hot spot**: "a statistically significant hot spot for the final
      time-step interval with a history of also being an on-again and off-again hot spot.
      Less than 90 percent of the time-step intervals have been statistically significant
      hot spots and none of the time-step intervals have been statistically significant
      cold spots" [and hot before the final run: else new or consecutive].
    - **oscillating hot spot**: "a statistically significant hot spot for the final
      time-step interval that has a history of also being a statistically significant
      cold spot during a prior time step. Less than 90 percent of the time-step intervals
      have been statistically significant hot spots".
    - **historical hot spot**: "the most recent time period is not hot, but at least 90
      percent of the time-step intervals have been statistically significant hot spots"
      [and the final period is not a cold spot: else oscillating cold].
    - the cold classes mirror these with hot and cold swapped; an *intensifying* cold spot
      has a significant *decreasing* z trend (ever colder), a diminishing one an
      increasing trend.
    - **no pattern**: none of the above (e.g. hot in some earlier periods, fewer than
      90%, but not in the final one).

    The wording is ArcGIS Pro's current one (also in ArcGIS AllSource); ArcGIS Pro 2.8 and
    ArcMap say neither "at least two" for consecutive nor "for the final time-step
    interval" for sporadic: there a cell hot on and off but not in the final period is a
    sporadic hot spot; here it has no pattern.

    The final period decides the side: hot in it gives a hot class, cold a cold class,
    neither a historical class or no pattern, so every series has exactly one label.

    Parameters
    ----------
    hot, cold : array-like of bool
        Significant hot / cold spot flags per period, oldest first: shape (n_periods,) for
        one cell or (n_cells, n_periods). A period cannot be both.
    mk_z, mk_p : float or array-like of float
        Mann-Kendall z and two-sided p-value of each cell's Gi* z series.
    alpha : float, default 0.10
        Significance level of the trend.

    Returns
    -------
    str or numpy.ndarray of str
        One of :data:`PATTERNS`; an array (one per row) when ``hot`` is 2-D.

    Examples
    --------
    >>> hot = [False] * 9 + [True]
    >>> classify_series(hot, [False] * 10, 0.0, 1.0)
    'new hot spot'
    >>> classify_series([True] * 10, [False] * 10, 3.0, 0.001)
    'intensifying hot spot'
    """
    h, c = _bool_rows("hot", hot), _bool_rows("cold", cold)
    if h.shape != c.shape:
        raise ValueError(f"hot and cold must have the same shape; got {np.shape(hot)} and "
                         f"{np.shape(cold)}")
    if (h & c).any():
        raise ValueError("hot and cold: a period cannot be both a hot and a cold spot; "
                         f"{int((h & c).sum())} are")
    if not (0 < alpha < 1):
        raise ValueError(f"alpha must be a significance level in (0, 1), such as 0.10; got "
                         f"{alpha!r}")
    rows, n = h.shape
    trend = []
    for name, value in (("mk_z", mk_z), ("mk_p", mk_p)):
        arr = np.asarray(value, dtype=float).ravel()
        if arr.size not in (1, rows):
            raise ValueError(f"{name} must hold one value per series ({rows}); got {arr.size}")
        trend.append(np.broadcast_to(arr, (rows,)))
    z, p = trend
    up, down = (p <= alpha) & (z > 0), (p <= alpha) & (z < 0)

    label = np.full(rows, "no pattern", dtype=object)
    for side, same, other, more, less in (("hot", h, c, up, down), ("cold", c, h, down, up)):
        n_same = same.sum(axis=1)
        many = 10 * n_same >= 9 * n
        final = same[:, -1]
        run = np.cumprod(same[:, ::-1], axis=1).sum(axis=1)  # final uninterrupted run
        before = n_same > run
        ever_other = other.any(axis=1)
        choices = [
            (final & many & more, "intensifying"),
            (final & many & less, "diminishing"),
            (final & many, "persistent"),
            (final & ever_other, "oscillating"),
            (final & ~before & (run == 1), "new"),
            (final & ~before, "consecutive"),
            (final, "sporadic"),
            (~final & many & ~other[:, -1], "historical"),
        ]
        taken = np.zeros(rows, dtype=bool)
        for mask, kind in choices:
            pick = mask & ~taken
            label[pick] = f"{kind} {side} spot"
            taken |= pick
    one = np.asarray(hot).ndim == 1
    return str(label[0]) if one else label.astype(str)


def emerging_hotspots(counts: pd.DataFrame, weights: sp.spmatrix, *,
                      alpha: float = 0.10) -> pd.DataFrame:
    """Emerging hot spot pattern of each cell over 10 or more consecutive periods.

    For each period (column) the Gi* z-scores of the cells are computed with
    :func:`hotspots.gistar.gistar` (Benjamini-Hochberg FDR across cells); a cell is a hot
    (cold) spot in a period when its adjusted p-value is <= ``alpha`` and z > 0 (< 0).
    The Mann-Kendall test of each cell's z series gives the trend, and
    :func:`classify_series` the pattern (ArcGIS Pro's definitions, quoted there).
    Unlike ArcGIS, the neighbourhood is spatial only (no neighbouring time steps). A
    period in which every cell has the same count (e.g. all 0) has no hot or cold spot
    (z = 0 for every cell).

    Parameters
    ----------
    counts : pandas.DataFrame
        Rows = cells, columns = consecutive periods of equal length, oldest first;
        counts >= 0. At least 10 periods (as ArcGIS requires).
    weights : scipy.sparse matrix
        Binary neighbours with each cell on the diagonal, rows in the order of
        ``counts`` (:func:`hotspots.gistar.grid_neighbours` and friends).
    alpha : float, default 0.10
        Level for both the hot/cold flags (90% confidence, FDR-adjusted) and the trend.

    Returns
    -------
    pandas.DataFrame
        Indexed like ``counts``, columns :data:`EMERGING_COLUMNS`: ``pattern`` (one of
        :data:`PATTERNS`), ``mk_z`` and ``mk_p`` (Mann-Kendall z and two-sided p of the
        Gi* z series), ``n_periods_hot``, ``n_periods_cold`` (int) and ``final_z`` (the
        Gi* z of the final period).

    Examples
    --------
    >>> from hotspots.gistar import grid_neighbours
    >>> cells = pd.DataFrame({"row": np.repeat(range(5), 5), "col": np.tile(range(5), 5)})
    >>> counts = pd.DataFrame(np.ones((25, 10), dtype=int))
    >>> counts.iloc[[0, 1, 5, 6]] = np.arange(10) * 3
    >>> out = emerging_hotspots(counts, grid_neighbours(cells, cell_shape="square"))
    >>> out.loc[0, "pattern"], int(out.loc[0, "n_periods_hot"])
    ('persistent hot spot', 9)
    >>> out.loc[24, "pattern"]
    'no pattern'
    """
    if not isinstance(counts, pd.DataFrame):
        raise ValueError(f"counts must be a pandas DataFrame (rows = cells, columns = "
                         f"periods); got {type(counts).__name__}")
    k = counts.shape[1]
    if k < MIN_PERIODS:
        raise ValueError(f"counts has {k} periods (columns); emerging hot spot classes need "
                         f"at least {MIN_PERIODS}")
    if not (0 < alpha < 1):
        raise ValueError(f"alpha must be a significance level in (0, 1), such as 0.10; got "
                         f"{alpha!r}")
    values = counts.to_numpy(dtype=float)
    z = np.zeros(values.shape)
    p = np.ones(values.shape)
    for t in range(k):
        col = values[:, t]
        if col.size and np.all(col == col[0]) and np.isfinite(col[0]) and col[0] >= 0:
            continue  # nothing stands out: no hot or cold spot this period
        try:
            res = gistar(col, weights, fdr=True)
        except ValueError as exc:
            raise ValueError(f"counts column {counts.columns[t]!r}: {exc}") from exc
        z[:, t] = res["gistar_z"].to_numpy()
        p[:, t] = res["p_adjusted"].to_numpy()
    hot = (p <= alpha) & (z > 0)
    cold = (p <= alpha) & (z < 0)
    _, mk_z, mk_p = _mann_kendall_rows(z)
    pattern = classify_series(hot, cold, mk_z, mk_p, alpha=alpha)
    return pd.DataFrame({
        "pattern": pattern, "mk_z": mk_z, "mk_p": mk_p,
        "n_periods_hot": hot.sum(axis=1).astype(np.int64),
        "n_periods_cold": cold.sum(axis=1).astype(np.int64),
        "final_z": z[:, -1],
    }, index=counts.index)


def emerging_cells(incidents: pd.DataFrame, cells: gpd.GeoDataFrame, *, cell_size_m: float,
                   end_month: str, months: int = 12, alpha: float = 0.10
                   ) -> gpd.GeoDataFrame | None:
    """Emerging hot spot class of every grid cell over the ``months`` months to
    ``end_month`` (:func:`emerging_hotspots` on the monthly cell counts, queen neighbours).

    Parameters
    ----------
    incidents : pandas.DataFrame
        Incidents with ``period`` (``YYYY-MM``) and ``x, y`` (EPSG:27700). Not modified.
    cells : geopandas.GeoDataFrame
        A square grid from :func:`hotspots.grid.make_grid`, or its rows with more columns.
    cell_size_m : float
        The grid's cell size, metres (what ``make_grid`` was given; checked).
    end_month : str
        The last month, ``YYYY-MM``.

    Returns
    -------
    geopandas.GeoDataFrame or None
        ``cells`` with :data:`EMERGING_COLUMNS` added; None when fewer than
        :data:`MIN_PERIODS` of the months have an incident.

    Examples
    --------
    >>> import shapely
    >>> from hotspots.grid import make_grid
    >>> grid = make_grid(shapely.box(0, 0, 500, 500), cell_size_m=100)
    >>> months = [f"2024-{m:02d}" for m in range(1, 13) for _ in range(m)]
    >>> inc = pd.DataFrame({"period": months, "x": 50.0, "y": 50.0})
    >>> out = emerging_cells(inc, grid, cell_size_m=100, end_month="2024-12")
    >>> len(out), "pattern" in out.columns
    (25, True)
    >>> emerging_cells(inc.iloc[:6], grid, cell_size_m=100, end_month="2024-12") is None
    True
    """
    span = pd.period_range(end=pd.Period(end_month, "M"), periods=months, freq="M")
    # each distinct month parsed once (a PeriodIndex of 200,000 strings takes seconds),
    # numbered by its place in the span (-1: outside it)
    codes, uniques = pd.factorize(incidents["period"].astype(str))
    month = np.append(span.get_indexer(pd.PeriodIndex(uniques, freq="M")), -1)[codes]
    idx = cell_index(cells, incidents["x"].to_numpy(), incidents["y"].to_numpy(),
                     cell_size_m=cell_size_m, shape="square")
    keep = (idx >= 0) & (month >= 0)
    if np.unique(month[keep]).size < MIN_PERIODS:
        return None
    # counted by cell and month (pandas' crosstab took 2 s over London's 6,672 cells)
    row = pd.Index(cells["cell_id"]).get_indexer(idx[keep])
    at = row >= 0
    counts = np.bincount(row[at] * len(span) + month[keep][at],
                         minlength=len(cells) * len(span)).reshape(len(cells), len(span))
    out = emerging_hotspots(pd.DataFrame(counts.astype(np.int64)),
                            grid_neighbours(cells, cell_shape="square"), alpha=alpha)
    return cells.join(out.set_axis(cells.index))


def emerging_grid_spec(incidents: pd.DataFrame, area: Any, *, period: Period
                       ) -> GridSpec | None:
    """The grid the tasking pack counts emerging classes on: square cells over ``area``
    (the land area, EPSG:27700) sized by :func:`hotspots.grid.suggest_cell_size` from the
    period's incidents; None when the period has fewer than 3 incidents.

    Examples
    --------
    >>> import shapely
    >>> from hotspots.summary import month_period
    >>> inc = pd.DataFrame({"source": "asb", "date": "2024-12-05", "period": "2024-12",
    ...     "x": [100.0, 400, 900, 950], "y": [100.0, 300, 400, 450]})
    >>> emerging_grid_spec(inc, shapely.box(0, 0, 1000, 500), period=month_period("2024-12"))
    GridSpec(cell_size_m=250.0, shape='square')
    """
    cur = incidents.loc[in_period(incidents, period)]
    if len(cur) < 3:
        return None
    return GridSpec(suggest_cell_size(cur["x"].to_numpy(), cur["y"].to_numpy(), area))


def emerging_grid(incidents: pd.DataFrame, area: Any, *, period: Period,
                  grid: GridSpec | None = None) -> gpd.GeoDataFrame | None:
    """:func:`emerging_cells` over the 12 months to ``period`` on square cells of
    ``grid`` (default: :func:`emerging_grid_spec`, the grid the tasking pack uses) over
    ``area``. None as :func:`emerging_cells`, or when the period has fewer than 3
    incidents.

    Examples
    --------
    >>> import shapely
    >>> from hotspots.summary import month_period
    >>> inc = pd.DataFrame({"source": "asb", "date": "2024-12-05", "period": "2024-12",
    ...     "x": [100.0, 400, 900], "y": [100.0, 300, 400]})
    >>> emerging_grid(inc, shapely.box(0, 0, 1000, 500), period=month_period("2024-12")) is None
    True
    """
    grid = grid or emerging_grid_spec(incidents, area, period=period)
    if grid is None:
        return None
    return emerging_cells(incidents, make_grid(area, cell_size_m=grid.cell_size_m),
                          cell_size_m=grid.cell_size_m, end_month=period.label)
