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

Displacement: the Weighted Displacement Quotient of Bowers and Johnson (2003), see
:func:`wdq` and :func:`intervention_effect`.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
import shapely
from numpy.typing import ArrayLike

from .trends import poisson_change_test

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
    order = np.argsort(-scores, kind="stable")
    s = scores[order]
    ends = np.flatnonzero(np.r_[s[1:] != s[:-1], True])  # last cell of each tie group
    cum_a = np.r_[0.0, np.cumsum(area[order])[ends]]
    cum_n = np.r_[0.0, np.cumsum(counts[order])[ends]]
    return np.interp(np.asarray(coverages, dtype=float) * cum_a[-1], cum_a, cum_n)


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


# --------------------------------------------------------------------------- displacement


def _reading(success: float, quotient: float) -> str:
    if success >= 0:
        return ("no success: the target did not fall relative to the control (success "
                "measure >= 0), so the WDQ is not interpreted")
    if quotient > 1:
        return ("diffusion of benefits greater than the direct effect: the buffer fell "
                "relative to the control by more than the target did (WDQ > 1)")
    if quotient > 0:
        return ("diffusion of benefits: the buffer also fell relative to the control "
                "(0 < WDQ <= 1)")
    if quotient == 0:
        return "neither displacement nor diffusion (WDQ = 0)"
    if quotient >= -1:
        return ("displacement smaller than the direct effect: the buffer rose relative to "
                "the control, but less than the target fell (-1 <= WDQ < 0); net benefit")
    return ("displacement greater than the direct effect: the buffer rose more than the "
            "target fell (WDQ < -1); net harm")


def wdq(target_before: float, target_after: float, buffer_before: float, buffer_after: float,
        control_before: float, control_after: float) -> dict[str, Any]:
    """Weighted Displacement Quotient (Bowers and Johnson 2003).

    With ``A``, ``B`` and ``C`` the incidents in the target area, its buffer and a control
    area, before (``b``) and after (``a``) the intervention, over windows of equal length:

    * success measure ``SM = A_a / C_a - A_b / C_b`` (negative: the target fell relative
      to the control, the intervention worked);
    * buffer displacement measure ``BM = B_a / C_a - B_b / C_b`` (positive: crime moved
      into the buffer; negative: the benefits spread there);
    * ``WDQ = BM / SM``, read only when ``SM < 0``: WDQ > 1, diffusion of benefits greater
      than the direct effect; 0 < WDQ <= 1, diffusion of benefits; 0, neither;
      -1 <= WDQ < 0, some displacement but less than the gain in the target (net
      benefit); WDQ < -1, displacement exceeding the gain (net harm);
    * total net effect ``TNE = (A_b * C_a / C_b - A_a) + (B_b * C_a / C_b - B_a)``:
      incidents prevented across target and buffer, after allowing for the control's
      trend (positive = fewer incidents).

    Parameters
    ----------
    target_before, target_after, buffer_before, buffer_after : counts >= 0.
    control_before, control_after : counts > 0.

    Returns
    -------
    dict
        ``success_measure``, ``buffer_measure``, ``wdq`` (NaN when SM = 0),
        ``total_net_effect`` (incidents), ``interpretation`` (text as above).

    Examples
    --------
    >>> out = wdq(100, 60, 80, 70, 1000, 1000)
    >>> round(out["wdq"], 3), out["interpretation"]
    (0.25, 'diffusion of benefits: the buffer also fell relative to the control (0 < WDQ <= 1)')
    """
    vals = {"target_before": target_before, "target_after": target_after,
            "buffer_before": buffer_before, "buffer_after": buffer_after,
            "control_before": control_before, "control_after": control_after}
    for name, v in vals.items():
        least = 0 if name.startswith(("target", "buffer")) else 1
        if (isinstance(v, bool) or not isinstance(v, int | float | np.number)
                or not np.isfinite(v) or v < least or (least == 1 and v <= 0)):
            rule = ">= 0" if least == 0 else "> 0 (the control must have incidents)"
            raise ValueError(f"{name} must be an incident count {rule}; got {v!r}.")
    ab, aa = float(target_before), float(target_after)
    bb, ba = float(buffer_before), float(buffer_after)
    cb, ca = float(control_before), float(control_after)
    sm = aa / ca - ab / cb
    bm = ba / ca - bb / cb
    q = bm / sm if sm != 0 else float("nan")
    tne = (ab * ca / cb - aa) + (bb * ca / cb - ba)
    return {"success_measure": sm, "buffer_measure": bm, "wdq": q, "total_net_effect": tne,
            "interpretation": _reading(sm, q)}


def _count_in(geom, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    shapely.prepare(geom)
    return shapely.intersects_xy(geom, x, y)


def intervention_effect(incidents: pd.DataFrame, *, target, date: str | dt.date,
                        control, buffer_m: float = 250.0, months: int = 6,
                        alpha: float = 0.05) -> dict[str, Any]:
    """Before/after counts in a target, its buffer and a control area, a test, and the WDQ.

    Parameters
    ----------
    incidents : pandas.DataFrame
        Incidents with ``date`` (``YYYY-MM-DD``) and ``x, y`` (EPSG:27700 metres). Not
        modified. police.uk rows are dated the 1st of their month: give a ``date`` on the
        1st of a month so each month falls wholly on one side.
    target : shapely polygon, EPSG:27700, the intervention area (its boundary included).
    date : the intervention's first day (``YYYY-MM-DD`` or a date).
    control : shapely polygon, EPSG:27700, the comparison area. The target and buffer are
        removed from it, so a whole borough can be given.
    buffer_m : width of the ring around the target, metres, default 250.
    months : length of each window, default 6: before is ``[date - months, date)``, after
        ``[date, date + months)``.
    alpha : significance level, default 0.05: when the target's change against the
        control's (``p_value_vs_control``) is above it, the change is within chance and
        the ``interpretation`` says so instead of reading the WDQ.

    Returns
    -------
    dict
        ``before`` and ``after`` (``(first, last)`` day of each window), ``target_before``,
        ``target_after``, ``buffer_before``, ``buffer_after``, ``control_before``,
        ``control_after`` (counts; a point is in the target first, else the buffer, else
        the control), ``change`` (target after / before - 1, NaN when before is 0),
        ``p_value`` (two-sided exact Poisson test of target after against before,
        :func:`hotspots.trends.poisson_change_test`), ``p_value_vs_control`` (the same
        test with the control's counts as exposures: did the target change more than the
        control?), ``clear`` (``p_value_vs_control <= alpha``), and the keys of
        :func:`wdq` (``interpretation`` reads the WDQ only when ``clear``).

    Examples
    --------
    >>> import shapely
    >>> dates = ["2024-02-10"] * 30 + ["2024-05-10"] * 10 + ["2024-02-10", "2024-05-10"] * 50
    >>> x = y = [50.0] * 40 + [800.0] * 100
    >>> inc = pd.DataFrame({"source": "asb", "date": dates, "x": x, "y": y})
    >>> eff = intervention_effect(inc, target=shapely.box(0, 0, 100, 100), date="2024-04-01",
    ...     control=shapely.box(0, 0, 1000, 1000), buffer_m=100, months=3)
    >>> eff["target_before"], eff["target_after"], eff["clear"]
    (30, 10, True)
    """
    for name, geom in (("target", target), ("control", control)):
        if not isinstance(geom, shapely.Geometry) or shapely.area(geom) <= 0:
            raise ValueError(f"{name} must be a shapely polygon in EPSG:27700 metres with an "
                             f"area; got {type(geom).__name__}.")
    if not isinstance(buffer_m, int | float | np.number) or not buffer_m > 0:
        raise ValueError(f"buffer_m must be a distance in metres > 0; got {buffer_m!r}.")
    if isinstance(months, bool) or not isinstance(months, int | np.integer) or months < 1:
        raise ValueError(f"months must be a whole number of months >= 1; got {months!r}.")
    if not (isinstance(alpha, int | float) and 0 < alpha < 1):
        raise ValueError(f"alpha must be a significance level in (0, 1), such as 0.05; got "
                         f"{alpha!r}.")
    try:
        start = pd.Timestamp(date)
    except (ValueError, TypeError):
        raise ValueError(f"date must be a day 'YYYY-MM-DD'; got {date!r}.") from None
    first = start - pd.DateOffset(months=months)
    end = start + pd.DateOffset(months=months)
    when = pd.to_datetime(incidents["date"], format="%Y-%m-%d")
    x, y = incidents["x"].to_numpy(float), incidents["y"].to_numpy(float)
    ring = shapely.difference(shapely.buffer(target, buffer_m), target)
    rest = shapely.difference(control, shapely.buffer(target, buffer_m))
    if shapely.area(rest) <= 0:
        raise ValueError("control must extend beyond the target and its buffer; nothing is "
                         f"left of it once they are removed (buffer_m={buffer_m}).")
    in_a = _count_in(target, x, y)
    in_b = _count_in(ring, x, y) & ~in_a
    in_c = _count_in(rest, x, y) & ~in_a & ~in_b
    before = ((when >= first) & (when < start)).to_numpy()
    after = ((when >= start) & (when < end)).to_numpy()
    counts = {f"{k}_{w}": int((m & win).sum())
              for k, m in (("target", in_a), ("buffer", in_b), ("control", in_c))
              for w, win in (("before", before), ("after", after))}
    if counts["control_before"] == 0 or counts["control_after"] == 0:
        raise ValueError(f"control has no incidents in a window (before "
                         f"{counts['control_before']}, after {counts['control_after']}); use a "
                         "larger control area or longer windows (months).")
    out: dict[str, Any] = {
        "before": (first.date().isoformat(), (start - pd.Timedelta(days=1)).date().isoformat()),
        "after": (start.date().isoformat(), (end - pd.Timedelta(days=1)).date().isoformat()),
        **counts,
    }
    ab, aa = counts["target_before"], counts["target_after"]
    out["change"] = aa / ab - 1 if ab > 0 else float("nan")
    out["p_value"] = poisson_change_test(aa, ab)
    out["p_value_vs_control"] = poisson_change_test(
        aa, ab, exposure=counts["control_after"], previous_exposure=counts["control_before"])
    out.update(wdq(ab, aa, counts["buffer_before"], counts["buffer_after"],
                   counts["control_before"], counts["control_after"]))
    out["clear"] = bool(out["p_value_vs_control"] <= alpha)
    if not out["clear"]:  # a WDQ read off a chance change is noise dressed as a finding
        out["interpretation"] = (
            f"no clear effect: the target changed no more than chance allows against the "
            f"control (p = {out['p_value_vs_control']:.3f} > {alpha}), so neither success "
            "nor displacement can be read from these counts; the WDQ is not interpreted")
    return out
