"""Predictive accuracy of hotspot maps, and displacement.

A hotspot map gives a **score per cell** of a grid (from :func:`hotspots.grid.make_grid`,
EPSG:27700 metres). The map at coverage ``c`` covers exactly ``c`` of the study area
``A`` (the grid's total clipped area):

* cells are ranked by score, highest first;
* cells with **equal scores** are one group, taken together: when the coverage ends
  inside a group, every cell of the group is counted for the same fraction of itself.
  That is the expected value over all orders of the tied cells, so no map gains or loses
  by the order of the cells (``cell_id``); a single cell at the edge is counted pro rata
  the same way;
* so the covered area ``a`` is exactly ``c * A`` and PAI = hit rate / c.

Metrics (see :func:`metric_definitions`, which the tables carry in ``attrs``): hit rate
``n / N``; PAI ``(n / N) / (a / A)`` (Chainey, Tompson and Uhlig 2008); PEI, the PAI over
the best PAI possible at the same coverage: cells ranked by their test incidents **per
unit area**, so clipped edge cells are valued by their density and PEI is at most 1;
RRI (Levine 2008), the PAI of the same map in the test period over its PAI in the input
(training) period. ``N`` counts the test incidents that fall in the grid.

:func:`select_cells` gives the whole cells a map draws at a coverage.

Displacement (the Weighted Displacement Quotient of Bowers and Johnson 2003,
:func:`wdq`, and :func:`intervention_effect`) lives in :mod:`hotspots.displacement`,
re-exported here when first asked for: it needs ``scipy.stats`` (a second to import), which
the forecast (:mod:`hotspots.forecast`, on ``detect``'s path) does not.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike

if TYPE_CHECKING:
    from .displacement import intervention_effect, wdq  # noqa: F401  (re-exported)

#: Coverages the metrics are reported at: 1%, 2%, 5% and 10% of the study area.
COVERAGES: tuple[float, ...] = (0.01, 0.02, 0.05, 0.10)

#: Columns of :func:`evaluate_scores`.
SCORE_COLUMNS: tuple[str, ...] = (
    "coverage", "covered_share", "n_test", "total_test", "hit_rate", "pai", "pei",
    "pai_input", "rri",
)

_DEFINITIONS = """\
Coverage c: the top-scoring grid cells covering exactly c of the study area A (the grid's
clipped area); cells with equal scores are taken together, each for the same fraction
(the expected value over their orders), so no map gains from cell order.
N: test-period incidents inside the grid; n: those in the map (fractions included).
Hit rate = n / N.
PAI (Predictive Accuracy Index, Chainey et al. 2008) = (n / N) / c; 1 = no better than
chance, higher is better.
PEI (Predictive Efficiency Index) = PAI / PAI*, where PAI* is the PAI of the best map at
the same coverage (cells ranked by test-period incidents per unit area); 1 = perfect.
RRI (Recapture Rate Index, Levine 2008) = PAI in the test period / PAI of the same map
in the input (training) period; near 1 = the hotspots held up, below 1 = they decayed.
Undefined values (no incidents) are NaN."""


def metric_definitions() -> str:
    """The definitions of coverage, hit rate, PAI, PEI and RRI as printed beside tables.

    Examples
    --------
    >>> metric_definitions().splitlines()[0]
    "Coverage c: the top-scoring grid cells covering exactly c of the study area A (the grid's"
    """
    return _DEFINITIONS


# --------------------------------------------------------------------------- checks


def _vector(name: str, values: ArrayLike, n: int | None = None) -> np.ndarray:
    a = np.asarray(values, dtype=float)
    if a.ndim != 1:
        raise ValueError(f"{name} must be one value per cell (1-D); got shape {a.shape}.")
    if n is not None and len(a) != n:
        raise ValueError(f"{name} must have one value per cell ({n}); got {len(a)}.")
    if not np.isfinite(a).all():
        bad = int(np.argmin(np.isfinite(a)))
        raise ValueError(f"{name} must be finite; {int((~np.isfinite(a)).sum())} are not, the "
                         f"first at position {bad} ({a[bad]}).")
    return a


def _counts(name: str, values: ArrayLike, n: int) -> np.ndarray:
    a = _vector(name, values, n)
    if (a < 0).any():
        bad = int(np.argmax(a < 0))
        raise ValueError(f"{name} must be incident counts >= 0; position {bad} is {a[bad]}.")
    return a


def _areas(cell_area: ArrayLike, n: int) -> np.ndarray:
    a = np.asarray(cell_area, dtype=float)
    if a.ndim == 0:
        a = np.full(n, float(a))
    a = _vector("cell_area", a, n)
    if (a <= 0).any():
        bad = int(np.argmax(a <= 0))
        raise ValueError(f"cell_area must be > 0 for every cell (any unit, e.g. km²); position "
                         f"{bad} is {a[bad]}.")
    return a


def _check_coverage(coverage: float) -> float:
    ok = isinstance(coverage, int | float | np.number) and not isinstance(coverage, bool)
    if not ok or not np.isfinite(coverage) or not 0 < coverage <= 1:
        raise ValueError(f"coverage must be a share of the study area in (0, 1], e.g. 0.05 for "
                         f"5%; got {coverage!r}.")
    return float(coverage)


def _prepare(scores, test_counts, cell_area):
    s = _vector("scores", scores)
    if len(s) == 0:
        raise ValueError("scores must hold at least one cell; got 0.")
    return s, _counts("test_counts", test_counts, len(s)), _areas(cell_area, len(s))


# --------------------------------------------------------------------------- metrics


def captured(scores: np.ndarray, counts: np.ndarray, area: np.ndarray,
             coverages: np.ndarray) -> np.ndarray:
    """Incidents the map captures at each coverage, ties counted fractionally.

    The fast core of the metrics (no checks): ``scores``, ``counts`` and ``area`` are
    float arrays of one value per cell, ``coverages`` an array of shares. Cells are ranked
    by score; a group of equal scores spans one straight piece of the curve of captured
    incidents against covered area, so the capture at ``c * A`` is that curve's value
    there (linear interpolation across the group that the coverage ends in).

    Examples
    --------
    >>> captured(np.array([3.0, 2, 1]), np.array([5.0, 1, 4]), np.array([1.0, 1, 1]),
    ...     np.array([1 / 3, 2 / 3]))
    array([5., 6.])
    """
    coverages = np.asarray(coverages, dtype=float)
    total = area.sum()
    top = _top_cells(scores, area, coverages.max(initial=0.0) * total, total)
    # the top cells in the order a stable sort of them all puts them in (a subset in
    # position order sorts as it would among every cell)
    order = top[np.argsort(-scores[top], kind="stable")]
    s = scores[order]
    ends = np.flatnonzero(np.r_[s[1:] != s[:-1], True])  # last cell of each tie group
    cum_a = np.r_[0.0, np.cumsum(area[order])[ends]]
    cum_n = np.r_[0.0, np.cumsum(counts[order])[ends]]
    return np.interp(coverages * total, cum_a, cum_n)


def _top_cells(scores: np.ndarray, area: np.ndarray, need: float, total: float
               ) -> np.ndarray:
    """Positions of the cells whose scores are at least some value ``v``, chosen so that
    they cover ``need`` (whole tie groups: every cell scoring ``v`` is in). The metrics
    look at 10% of the area at most: sorting that share of a London grid's 641,000 cells
    instead of all of them took the backtest's scoring from 41 s to about a fifth."""
    n = len(scores)
    k = min(n, int(1.25 * need / (total / n)) + 16) if n else 0
    while k < n:
        v = np.partition(scores, n - k)[n - k]  # the k-th highest score
        top = np.flatnonzero(scores >= v)
        if area[top].sum() >= need * (1 + 1e-9):
            return top
        k = min(n, 2 * k)
    return np.arange(n)


def select_cells(scores: ArrayLike, cell_area: ArrayLike, *, coverage: float) -> np.ndarray:
    """The whole cells a map draws at a coverage: top scores first.

    Parameters
    ----------
    scores : array-like of float, one per cell, finite; higher = hotter.
    cell_area : array-like of float (or one number for equal cells), > 0, any unit.
    coverage : share of the study area in (0, 1], e.g. 0.05.

    Returns
    -------
    numpy.ndarray of bool
        True for selected cells. Cells are ranked by score descending, ties by position;
        a cell is selected while the area selected before it is below ``coverage`` times
        the total, so the selected area is at least that and less than that plus one cell.
        (The metrics count ties fractionally instead: see the module's notes.)

    Examples
    --------
    >>> select_cells([0.9, 0.5, 0.1, 0.7], [1, 1, 1, 1], coverage=0.5).tolist()
    [True, False, False, True]
    """
    s = _vector("scores", scores)
    area = _areas(cell_area, len(s))
    c = _check_coverage(coverage)
    order = np.lexsort((np.arange(len(s)), -s))
    before = np.cumsum(area[order]) - area[order]
    take = before < c * area.sum() * (1 - 1e-12)
    out = np.zeros(len(s), dtype=bool)
    out[order[take]] = True
    return out


def _metrics(s: np.ndarray, counts: np.ndarray, area: np.ndarray, covs: np.ndarray):
    """(n, hit rate, PAI, PEI) per coverage."""
    total = counts.sum()
    n = captured(s, counts, area, covs)
    if total == 0:
        nan = np.full(len(covs), np.nan)
        return n, nan, nan, nan
    best = captured(counts / area, counts, area, covs)
    hit = n / total
    return n, hit, hit / covs, np.where(best > 0, n / np.where(best > 0, best, 1), np.nan)


def hit_rate(scores: ArrayLike, test_counts: ArrayLike, cell_area: ArrayLike, *,
             coverage: float) -> float:
    """Share of the test incidents in the map at a coverage, ``n / N`` (ties fractional).

    Parameters
    ----------
    scores : array-like of float, one per cell; higher = hotter.
    test_counts : array-like, test-period incidents per cell (>= 0).
    cell_area : array-like or number, area of each cell (> 0, any unit).
    coverage : share of the study area in (0, 1].

    Returns
    -------
    float in [0, 1]; NaN when there is no test incident.

    Examples
    --------
    >>> hit_rate([0.9, 0.5, 0.1, 0.7], [6, 1, 1, 2], [1, 1, 1, 1], coverage=0.25)
    0.6
    """
    s, counts, area = _prepare(scores, test_counts, cell_area)
    return float(_metrics(s, counts, area, np.array([_check_coverage(coverage)]))[1][0])


def pai(scores: ArrayLike, test_counts: ArrayLike, cell_area: ArrayLike, *,
        coverage: float) -> float:
    """Predictive Accuracy Index ``(n / N) / (a / A)`` at a coverage, ``a / A`` being the
    coverage exactly (ties fractional). Parameters as :func:`hit_rate`.

    Returns
    -------
    float >= 0; 1 is what a random map scores on average; NaN when there is no test
    incident.

    Examples
    --------
    >>> pai([0.9, 0.5, 0.1, 0.7], [6, 1, 1, 2], [1, 1, 1, 1], coverage=0.25)
    2.4
    """
    s, counts, area = _prepare(scores, test_counts, cell_area)
    return float(_metrics(s, counts, area, np.array([_check_coverage(coverage)]))[2][0])


def pei(scores: ArrayLike, test_counts: ArrayLike, cell_area: ArrayLike, *,
        coverage: float) -> float:
    """Predictive Efficiency Index: PAI over the best PAI possible at the same coverage.

    The best map ranks cells by their test incidents per unit area (so a small clipped
    edge cell counts by its density). Parameters as :func:`hit_rate`.

    Returns
    -------
    float in [0, 1]; 1 for a perfect forecast (e.g. ``scores = test_counts / cell_area``),
    0 when no test incident falls in the map; NaN when there is no test incident.

    Examples
    --------
    >>> pei([0.9, 0.5, 0.1, 0.7], [2, 1, 1, 6], [1, 1, 1, 1], coverage=0.25)
    0.3333333333333333
    """
    s, counts, area = _prepare(scores, test_counts, cell_area)
    return float(_metrics(s, counts, area, np.array([_check_coverage(coverage)]))[3][0])


def rri(pai_test: float, pai_input: float) -> float:
    """Recapture Rate Index (Levine 2008): PAI in the test period over PAI in the input.

    Parameters
    ----------
    pai_test : PAI of the map's cells on the test period's incidents, >= 0.
    pai_input : PAI of the same cells on the input (training) period's incidents, > 0.

    Returns
    -------
    float; 1 = the hotspots captured the same concentration in both periods, < 1 = they
    decayed, > 1 = they intensified.

    Examples
    --------
    >>> rri(3.0, 5.0)
    0.6
    """
    for name, value in (("pai_test", pai_test), ("pai_input", pai_input)):
        if not isinstance(value, int | float | np.number) or not np.isfinite(value):
            raise ValueError(f"{name} must be a finite PAI >= 0; got {value!r}.")
    if pai_test < 0:
        raise ValueError(f"pai_test must be a finite PAI >= 0; got {pai_test!r}.")
    if pai_input <= 0:
        raise ValueError(f"pai_input must be a PAI > 0 (the input period had incidents in the "
                         f"map); got {pai_input!r}.")
    return float(pai_test) / float(pai_input)


def evaluate_scores(scores: ArrayLike, train_counts: ArrayLike, test_counts: ArrayLike,
                    cell_area: ArrayLike, *,
                    coverages: Sequence[float] = COVERAGES) -> pd.DataFrame:
    """Hit rate, PAI, PEI and RRI of one map at several coverages.

    Parameters
    ----------
    scores : array-like of float, one per cell; higher = hotter.
    train_counts : incidents per cell in the input (training) period, for the RRI.
    test_counts : incidents per cell in the test period.
    cell_area : area of each cell (> 0, any unit) or one number for equal cells.
    coverages : shares of the study area, default (0.01, 0.02, 0.05, 0.10).

    Returns
    -------
    pandas.DataFrame
        One row per coverage, columns :data:`SCORE_COLUMNS`: ``coverage``,
        ``covered_share`` (a / A, equal to the coverage), ``n_test`` (n, expected over
        tie orders), ``total_test`` (N), ``hit_rate``, ``pai``, ``pei``, ``pai_input``
        (PAI of the same map on the training counts) and ``rri`` (NaN when ``pai_input``
        is 0 or NaN). :func:`metric_definitions` says what each means.

    Examples
    --------
    >>> table = evaluate_scores([0.9, 0.5, 0.1, 0.7], [5, 2, 1, 2], [6, 1, 1, 2], [1, 1, 1, 1],
    ...     coverages=[0.25])
    >>> table[["coverage", "hit_rate", "pai", "pai_input", "rri"]].round(3)
       coverage  hit_rate  pai  pai_input  rri
    0      0.25       0.6  2.4        2.0  1.2
    """
    s, test, area = _prepare(scores, test_counts, cell_area)
    train = _counts("train_counts", train_counts, len(s))
    covs = np.array([_check_coverage(c) for c in coverages])
    n, hit, p, e = _metrics(s, test, area, covs)
    p_in = _metrics(s, train, area, covs)[2]
    with np.errstate(invalid="ignore", divide="ignore"):
        r = np.where((p_in > 0) & np.isfinite(p), p / p_in, np.nan)
    out = pd.DataFrame({"coverage": covs, "covered_share": covs, "n_test": n,
                        "total_test": int(test.sum()), "hit_rate": hit, "pai": p, "pei": e,
                        "pai_input": p_in, "rri": r}, columns=list(SCORE_COLUMNS))
    return out


def __getattr__(name: str):
    """:func:`wdq` and :func:`intervention_effect`, from :mod:`hotspots.displacement`."""
    if name in ("intervention_effect", "wdq"):
        from . import displacement

        return getattr(displacement, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
