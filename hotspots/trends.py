"""Trends: period against previous period and a year before (exact Poisson tests) and the
season-adjusted trend label (each place against the rest of the borough). Which streams
cover which months and the monthly series live in :mod:`hotspots.series`, emerging hot spot
classes in :mod:`hotspots.emerging`, hour-by-weekday profiles and patrol windows in
:mod:`hotspots.timeprofile` (all re-exported here).

A *unit* is whatever the incidents are grouped by (a place id, a grid cell id, an LSOA
code): a column of ``incidents`` named by the ``unit`` keyword. Rows whose unit is missing
or empty belong to no unit and are left out.
"""

from __future__ import annotations

import datetime as dt
import types

import numpy as np
import pandas as pd

# scipy.stats.binom's own kernels (Boost), without importing scipy.stats (1-1.5 s of
# every pack, building its distributions' docstrings)
from scipy.special import _ufuncs as _kernels

# Re-exported: series, emerging hot spot classes and when-profiles used to live here.
from .emerging import (  # noqa: F401
    EMERGING_COLUMNS,
    MIN_PERIODS,
    PATTERNS,
    classify_series,
    emerging_cells,
    emerging_grid,
    emerging_grid_spec,
    emerging_hotspots,
    mann_kendall,
)
from .gistar import benjamini_hochberg
from .series import (  # noqa: F401
    COVERAGE_COLUMNS,
    area_monthly,
    coverage,
    monthly_series,
    stream_label,
    streams_covering,
)
from .summary import Period, in_periods, month_period
from .timeprofile import NO_TIMES_NOTE, WEEKDAYS, patrol_windows, time_profile  # noqa: F401

#: Columns of :func:`period_trends` (index: the unit).
TREND_COLUMNS: tuple[str, ...] = (
    "n", "n_previous", "n_last_year", "change_previous", "p_previous", "change_year",
    "p_year", "expected", "p_borough", "p_adjusted", "reference", "trend",
)
#: Values of the ``reference`` column of :func:`period_trends`: what the place's change
#: was judged against.
REFERENCES = ("rest of borough", "period lengths only")
TRENDS = ("rising", "falling", "no clear change")


# --- period comparison -------------------------------------------------------------------


def _check_counts(**counts: object) -> None:
    for name, value in counts.items():
        if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < 0:
            raise ValueError(f"{name} must be a whole number of incidents >= 0; got {value!r}")


def _check_exposures(**exposures: object) -> None:
    for name, value in exposures.items():
        if not (isinstance(value, int | float | np.number) and np.isfinite(value)
                and value > 0):
            raise ValueError(f"{name} must be a finite length > 0 (e.g. days); got {value!r}")


def poisson_change_test(count: int, previous: int, *, exposure: float = 1.0,
                        previous_exposure: float = 1.0) -> float:
    """Two-sided exact p-value for a change between two Poisson counts.

    The conditional test (Przyborowski and Wilenski 1940): if both counts are Poisson
    with the same rate per unit of exposure, then given their total ``count + previous``,
    ``count ~ Binomial(count + previous, e / (e + e0))`` with ``e = exposure`` and
    ``e0 = previous_exposure``. The p-value is ``scipy.stats.binomtest(count, count +
    previous, e / (e + e0)).pvalue``: two-sided, summing the probabilities of all
    outcomes no more likely than the one observed. With equal exposures 4 against 2 gives
    exactly 0.6875 (not evidence of a rise); 40 against 10 gives about 2e-5.

    Parameters
    ----------
    count : int
        Incidents in this period, >= 0.
    previous : int
        Incidents in the period compared with, >= 0.
    exposure, previous_exposure : float, default 1.0
        Lengths of the two periods (days, or any common unit), > 0.

    Returns
    -------
    float
        Two-sided p-value in [0, 1]; 1.0 when both counts are 0.

    Examples
    --------
    >>> round(poisson_change_test(40, 10), 6)
    2.4e-05
    >>> poisson_change_test(3, 3)
    1.0
    """
    _check_counts(count=count, previous=previous)
    _check_exposures(exposure=exposure, previous_exposure=previous_exposure)
    total = int(count) + int(previous)
    if total == 0:
        return 1.0
    share = float(exposure) / (float(exposure) + float(previous_exposure))
    return _binom_p(int(count), total, share)


def _binom_p(count: int, total: int, share: float) -> float:
    """``binomtest(count, total, share).pvalue`` (:func:`_binom_p_values`)."""
    return float(_binom_p_values(np.array([count]), np.array([total]), np.array([share]))[0])


def _binom_p_values(count: np.ndarray, total: np.ndarray, share: np.ndarray) -> np.ndarray:
    """``scipy.stats.binomtest(count, total, share).pvalue`` (two-sided) of each element
    (``total >= 1``), by scipy's own steps (scipy 1.17's ``binomtest`` and its binary
    search for the term on the other side of the mode) on whole arrays: the same numbers,
    without scipy's per-call overhead (London's 4,994 LSOAs took 4 s one test at a
    time)."""
    k = np.asarray(count, dtype=np.int64)
    n = np.asarray(total, dtype=np.int64)
    p = np.asarray(share, dtype=float)
    d = binom.pmf(k, n, p)
    rerr = 1 + 1e-7
    pn = p * n
    out = np.ones(k.shape)  # k == p n: 1.0
    low = np.flatnonzero(k < pn)
    if low.size:  # the term above the mode where -pmf(x) <= -d rerr
        kl, nl, pl, dl = k[low], n[low], p[low], d[low]
        ix = _search(lambda x, i: -binom.pmf(x, nl[i], pl[i]), -dl * rerr,
                     np.ceil(pn[low]), nl.astype(float))
        y = nl - ix + (dl * rerr == binom.pmf(ix, nl, pl)).astype(np.int64)
        out[low] = binom.cdf(kl, nl, pl) + binom.sf(nl - y, nl, pl)
    high = np.flatnonzero(k > pn)
    if high.size:
        kh, nh, ph, dh = k[high], n[high], p[high], d[high]
        ix = _search(lambda x, i: binom.pmf(x, nh[i], ph[i]), dh * rerr,
                     np.zeros(high.size), np.floor(pn[high]))
        out[high] = binom.cdf(ix, nh, ph) + binom.sf(kh - 1, nh, ph)
    return np.minimum(out, 1.0)


def _binom_args(k, n, p) -> tuple[np.ndarray, ...]:
    """``k``, ``n``, ``p`` broadcast, and where ``n`` and ``p`` are a binomial's."""
    k, n, p = np.broadcast_arrays(np.asarray(k), np.asarray(n), np.asarray(p))
    return k, n, p, (n >= 0) & (n == np.round(n)) & (p >= 0) & (p <= 1)


def _binom_pmf(k, n, p) -> np.ndarray:
    """``scipy.stats.binom.pmf(k, n, p)``, value for value (its support and argument
    rules, then its kernel)."""
    k, n, p, ok = _binom_args(k, n, p)
    out = np.zeros(k.shape)
    out[~ok | np.isnan(k)] = np.nan
    at = ok & (k >= 0) & (k <= n) & (np.floor(k) == k)
    out[at] = np.clip(_kernels._binom_pmf(k[at], n[at], p[at]), 0, 1)
    return out


def _binom_cdf(k, n, p) -> np.ndarray:
    """``scipy.stats.binom.cdf(k, n, p)``, value for value."""
    k, n, p, ok = _binom_args(k, n, p)
    out = np.zeros(k.shape)
    out[k >= n] = 1.0
    out[~ok | np.isnan(k)] = np.nan
    at = ok & (k >= 0) & (k < n) & np.isfinite(k)
    out[at] = np.clip(_kernels._binom_cdf(np.floor(k[at]), n[at], p[at]), 0, 1)
    return out


def _binom_sf(k, n, p) -> np.ndarray:
    """``scipy.stats.binom.sf(k, n, p)``, value for value."""
    k, n, p, ok = _binom_args(k, n, p)
    out = np.zeros(k.shape)
    out[~ok | np.isnan(k)] = np.nan
    out[ok & ((k < 0) | np.isneginf(k))] = 1.0
    at = ok & (k >= 0) & (k < n) & np.isfinite(k)
    out[at] = np.clip(_kernels._binom_sf(np.floor(k[at]), n[at], p[at]), 0, 1)
    return out


#: The binomial distribution's pmf, cdf and sf, as ``scipy.stats.binom`` gives them
#: (``tests/test_trends.py`` checks them against it, edges included).
binom = types.SimpleNamespace(pmf=_binom_pmf, cdf=_binom_cdf, sf=_binom_sf)


def _search(a, d: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """The binary search of scipy's ``binomtest`` for each element at once: the ``i``
    between ``lo`` and ``hi`` with ``a(i) <= d < a(i + 1)``; ``a(x, rows)`` is evaluated
    at ``x`` for the elements ``rows``."""
    lo, hi = lo.astype(float), hi.astype(float)
    found = np.full(lo.shape, np.nan)
    active = np.flatnonzero(lo < hi)
    while active.size:
        mid = lo[active] + (hi[active] - lo[active]) // 2
        value = a(mid, active)
        less, more = value < d[active], value > d[active]
        lo[active[less]] = mid[less] + 1
        hi[active[more]] = mid[more] - 1
        hit = ~less & ~more
        found[active[hit]] = mid[hit]
        active = active[~hit]
        active = active[lo[active] < hi[active]]
    rest = np.flatnonzero(np.isnan(found))
    if rest.size:
        found[rest] = np.where(a(lo[rest], rest) <= d[rest], lo[rest], lo[rest] - 1)
    return found


def _change_p(count, previous, share) -> np.ndarray:
    """The exact two-sided p-value of each ``count`` out of ``count + previous`` with the
    ``share`` expected in it (1.0 where both counts are 0): :func:`poisson_change_test`
    and :func:`relative_change_test`'s p-values of whole columns."""
    k = np.asarray(count, dtype=np.int64)
    total = k + np.asarray(previous, dtype=np.int64)
    share = np.broadcast_to(np.asarray(share, dtype=float), k.shape)
    out = np.ones(k.shape)
    some = np.flatnonzero(total > 0)
    out[some] = _binom_p_values(k[some], total[some], share[some])
    return out


def relative_change_test(count: int, previous: int, reference: int,
                         reference_previous: int, *, exposure: float = 1.0,
                         previous_exposure: float = 1.0) -> tuple[float, float]:
    """Test whether a place changed more than a reference area (the rest of the borough).

    Exact two-sided conditional test with the expected ratio taken from the reference.
    Derivation: if the place's counts are Poisson with means ``theta * m`` now and
    ``theta * m0`` before, where ``m / m0 = r`` is the change shared by the whole area
    (season, borough-wide swings, period lengths), then given ``count + previous``,
    ``count ~ Binomial(count + previous, r / (1 + r))``, whatever ``theta`` is. ``r`` is
    estimated by ``reference / reference_previous``; the reference must exclude the place
    itself, so that the place's own change does not dilute it. The p-value is
    ``scipy.stats.binomtest(count, count + previous, r / (1 + r)).pvalue`` and the
    expected count is ``(count + previous) r / (1 + r)``.

    The reference counts cover the same two periods, so they already carry any
    difference in the periods' lengths: ``exposure`` and ``previous_exposure`` are not
    used then. When the reference had no incidents in either period, ``r`` is 0 or
    undefined; the test then falls back to :func:`poisson_change_test` with the
    exposures (``r = exposure / previous_exposure``), which is not season-adjusted.

    ``r`` is treated as known, which is close to exact when the reference holds many
    more incidents than the place (a borough against one hotspot); with a small
    reference the p-values come out somewhat too small. The reference moves with every
    place in it: when a few big places grow, the borough grows with them and a steady
    place falls short of its expected count.

    Parameters
    ----------
    count, previous : int
        The place's incidents in this period and the one compared with, >= 0.
    reference, reference_previous : int
        The reference area's incidents (the borough less the place) in the same two
        periods, >= 0.
    exposure, previous_exposure : float, default 1.0
        Lengths of the two periods, > 0; used only for the fallback.

    Returns
    -------
    (expected, p) : (float, float)
        The count expected this period had the place moved as the reference did (given
        ``count + previous``), and the two-sided p-value (1.0 when both counts are 0).

    Examples
    --------
    >>> expected, p = relative_change_test(40, 10, 200, 200)
    >>> expected, round(p, 6)
    (25.0, 2.4e-05)
    """
    _check_counts(count=count, previous=previous, reference=reference,
                  reference_previous=reference_previous)
    _check_exposures(exposure=exposure, previous_exposure=previous_exposure)
    total = int(count) + int(previous)
    if reference == 0 or reference_previous == 0:
        share = float(exposure) / (float(exposure) + float(previous_exposure))
        return total * share, poisson_change_test(count, previous, exposure=exposure,
                                                  previous_exposure=previous_exposure)
    share = int(reference) / (int(reference) + int(reference_previous))  # r / (1 + r)
    p = 1.0 if total == 0 else _binom_p(int(count), total, share)
    return total * share, p


def like_with_like(incidents: pd.DataFrame, periods: list[Period]
                   ) -> tuple[np.ndarray, list[tuple[str, str]]]:
    """Rows of the streams (a source's records of one category) that have records, across
    the whole of ``incidents``, in every one of ``periods``; and the streams left out
    (``(source, category)``, sorted): those with records in some of the periods only.

    A comparison of two periods counts only these rows on both sides: a stream that starts
    or stops between them (a new export, a file for one month) is a change in the data,
    not in incidents.

    Examples
    --------
    >>> from hotspots.summary import month_period
    >>> inc = pd.DataFrame({"source": ["asb", "asb", "policeuk"], "category": ["asb_nuisance",
    ...     "asb_nuisance", "burglary"], "date": ["2024-04-03", "2024-05-03", "2024-05-01"]})
    >>> rows, left = like_with_like(inc, [month_period("2024-05"), month_period("2024-04")])
    >>> rows.tolist(), left
    ([True, True, False], [('policeuk', 'burglary')])
    """
    return _like(_streams(incidents), in_periods(incidents, periods))


def _streams(incidents: pd.DataFrame) -> tuple[np.ndarray, list[tuple[str, str]]]:
    """Each row's stream as a number, and the streams ``(source, category)`` by number."""
    source, sources = pd.factorize(incidents["source"].astype(str))
    category, categories = pd.factorize(incidents["category"].astype(str))
    return (source * len(categories) + category,
            [(s, c) for s in sources for c in categories])


def _like(streams: tuple[np.ndarray, list[tuple[str, str]]], inside: list[np.ndarray]
          ) -> tuple[np.ndarray, list[tuple[str, str]]]:
    """:func:`like_with_like` of the rows of :func:`_streams` inside each period."""
    code, names = streams
    present = [set(np.unique(code[mask]).tolist()) for mask in inside]
    every = set.intersection(*present)
    return (np.isin(code, list(every)),
            sorted(names[c] for c in set.union(*present) - every))


def left_out(incidents: pd.DataFrame, period: Period) -> dict[str, list[tuple[str, str]]]:
    """The streams (``(source, category)``, sorted) that :func:`period_trends` leaves out of
    each comparison, having records in only one of its two periods (:func:`like_with_like`):
    ``{"previous": [...], "year": [...]}``.

    Examples
    --------
    >>> from hotspots.summary import month_period
    >>> rows = pd.DataFrame({"source": ["policeuk", "asb", "asb"],
    ...                      "category": ["burglary", "asb_nuisance", "asb_nuisance"],
    ...                      "date": ["2024-05-01", "2024-05-03", "2024-04-09"]})
    >>> gaps = left_out(rows, month_period("2024-05"))
    >>> gaps["previous"]
    [('policeuk', 'burglary')]
    >>> gaps["year"]
    [('asb', 'asb_nuisance'), ('policeuk', 'burglary')]
    """
    return {key: left for key, (_, left) in _compared(incidents, period)[2].items()}


def _compared(incidents: pd.DataFrame, period: Period) -> tuple[
        dict[str, Period], dict[str, np.ndarray],
        dict[str, tuple[np.ndarray, list[tuple[str, str]]]]]:
    """The three periods of :func:`period_trends` (``n``, ``n_previous``,
    ``n_last_year``), the rows inside each, and each comparison's (``previous``, ``year``)
    :func:`like_with_like` rows and streams left out: the dates parsed and the streams
    numbered once."""
    periods = {"n": period, "n_previous": period.previous(), "n_last_year": year_before(period)}
    inside = dict(zip(periods, in_periods(incidents, list(periods.values())), strict=True))
    streams = _streams(incidents)
    return periods, inside, {
        "previous": _like(streams, [inside["n"], inside["n_previous"]]),
        "year": _like(streams, [inside["n"], inside["n_last_year"]])}


def year_before(period: Period) -> Period:
    """The same dates a year earlier (the same month for a month; 29 February becomes 28
    February).

    Examples
    --------
    >>> from hotspots.summary import month_period
    >>> year_before(month_period("2024-02")).label
    '2023-02'
    """
    if period.is_month:
        return month_period(f"{period.start.year - 1}-{period.start.month:02d}")

    def shift(d: dt.date) -> dt.date:
        try:
            return d.replace(year=d.year - 1)
        except ValueError:  # 29 February
            return d.replace(year=d.year - 1, day=28)

    return Period(shift(period.start), shift(period.end))


def period_trends(incidents: pd.DataFrame, *, period: Period, unit: str = "unit",
                  alpha: float = 0.05, fdr: bool = True) -> pd.DataFrame:
    """Counts per unit in a period against the previous period and the same dates a year
    before, with exact two-sided tests, and a trend label that says whether the unit
    changed more than the rest of the borough did.

    The previous period is ``period.previous()`` (the previous month for a month, else
    the equal number of days just before); a year before is the same dates one year
    earlier (the same month for a month; 29 February becomes 28 February). police.uk
    rows, dated by month, count in a period only when their whole month lies inside it
    (:func:`hotspots.summary.in_period`). Each comparison is like with like
    (:func:`like_with_like`): a stream (source and category) with records in only one of
    the two periods is left out of both sides of it (:func:`left_out` names them);
    ``n`` counts every row.

    The plain comparisons (``p_previous``, ``p_year``) use :func:`poisson_change_test`
    with the periods' lengths in days as exposures: they say whether the count changed,
    for whatever reason, the season included. The ``trend`` label does not use them: it
    comes from :func:`relative_change_test` of ``n`` against ``n_previous`` with the
    expected ratio taken from the rest of the borough (every row of ``incidents`` in the
    two periods that is not in the unit), so a seasonal rise or a borough-wide swing that
    moves every place alike is not a "rising" place. When the rest of the borough had no
    incidents in one of the two periods the unit is judged on the period lengths alone
    (``reference`` says so). With ``fdr`` the p-values are adjusted for the many units
    tested at once (Benjamini-Hochberg, :func:`hotspots.gistar.benjamini_hochberg`, over
    the units with an incident in either period), so that at ``alpha = 0.05`` at most
    about 1 in 20 of the units labelled rising or falling is expected to be a false alarm
    on average, however many units there are.

    Parameters
    ----------
    incidents : pandas.DataFrame
        Incidents with ``source``, ``date`` and the unit column, covering the period, the
        previous one and the year before. Pass the whole borough, filtered to the same
        categories as the units are meant for: rows whose unit is missing or empty get no
        row of their own but count in the borough reference. Not modified.
    period : Period
        The period reported on.
    unit : str, default "unit"
        Column naming each incident's unit.
    alpha : float, default 0.05
        Significance level of the trend label (on ``p_adjusted``).
    fdr : bool, default True
        Adjust the trend p-values for the number of units (Benjamini-Hochberg); False:
        ``p_adjusted`` equals ``p_borough``.

    Returns
    -------
    pandas.DataFrame
        One row per unit with an incident in any of the three periods (index named after
        ``unit``, sorted), columns :data:`TREND_COLUMNS`:

        =============== ===== =================================================
        n               int   incidents in ``period``
        n_previous      int   in the previous period
        n_last_year     int   in the same dates a year before
        change_previous int   n - n_previous (n of the streams compared)
        p_previous      float two-sided exact p-value, n against n_previous
                              (plain: not season-adjusted)
        change_year     int   n - n_last_year (n of the streams compared)
        p_year          float two-sided exact p-value, n against n_last_year
        expected        float n expected had the unit moved as the rest of
                              the borough did: (n + n_previous) r / (1 + r),
                              r = rest now / rest in the previous period
        p_borough       float two-sided exact p-value, n against expected
                              (:func:`relative_change_test`)
        p_adjusted      float p_borough adjusted for the number of units
                              (Benjamini-Hochberg; 1.0 when n = n_previous = 0)
        reference       str   ``"rest of borough"``, or ``"period lengths
                              only"`` when the rest of the borough had no
                              incidents in one of the two periods
        trend           str   ``"rising"`` when p_adjusted <= alpha, n >
                              expected and the daily rate went up on the
                              previous period; ``"falling"`` when p_adjusted
                              <= alpha, n < expected and the daily rate went
                              down; else ``"no clear change"``
        =============== ===== =================================================

    The direction condition keeps the label from contradicting the counts beside it: in
    a season when the whole borough rises by a third, a place that rose by 5% is below
    its expected count, but it is not called falling (and, in a season when the borough
    falls, a place that fell less than the rest is not called rising).

    Examples
    --------
    >>> from hotspots.summary import month_period
    >>> units = ["A"] * 30 + ["B"] * 100 + ["C"] * 100
    >>> dates = (["2024-05-04"] * 25 + ["2024-04-04"] * 5
    ...     + (["2024-05-04"] * 50 + ["2024-04-04"] * 50) * 2)
    >>> inc = pd.DataFrame({"unit": units, "source": "asb", "category": "asb_nuisance",
    ...     "date": dates})
    >>> out = period_trends(inc, period=month_period("2024-05"))
    >>> out[["n", "n_previous", "trend"]]
           n  n_previous            trend
    unit
    A     25           5           rising
    B     50          50  no clear change
    C     50          50  no clear change
    """
    return compare_periods(incidents, period=period, unit=unit, alpha=alpha, fdr=fdr)[0]


def compare_periods(incidents: pd.DataFrame, *, period: Period, unit: str = "unit",
                    alpha: float = 0.05, fdr: bool = True
                    ) -> tuple[pd.DataFrame, dict[str, list[tuple[str, str]]]]:
    """:func:`period_trends` and :func:`left_out` of the same rows together: the dates
    parsed and the streams numbered once (a year of London is a million rows).

    Examples
    --------
    >>> from hotspots.summary import month_period
    >>> inc = pd.DataFrame({"unit": ["A", "A", "B"], "source": ["asb", "asb", "policeuk"],
    ...     "category": ["asb_nuisance", "asb_nuisance", "burglary"],
    ...     "date": ["2024-05-03", "2024-04-09", "2024-05-01"]})
    >>> trends, gaps = compare_periods(inc, period=month_period("2024-05"))
    >>> trends[["n", "n_previous"]].to_dict("index")
    {'A': {'n': 1, 'n_previous': 1}, 'B': {'n': 1, 'n_previous': 0}}
    >>> gaps["previous"]
    [('policeuk', 'burglary')]
    """
    if not isinstance(period, Period):
        raise ValueError(f"period must be a hotspots.summary.Period (see month_period, "
                         f"parse_period); got {type(period).__name__}")
    if not (isinstance(alpha, int | float) and 0 < alpha < 1):
        raise ValueError(f"alpha must be a significance level in (0, 1), such as 0.05; got "
                         f"{alpha!r}")
    if not isinstance(fdr, bool | np.bool_):
        raise ValueError(f"fdr must be True or False; got {fdr!r}")
    missing = [c for c in ("source", "category", "date", unit) if c not in incidents.columns]
    if missing:
        raise ValueError(f"incidents has no column {missing[0]!r}; expected "
                         "hotspots.schema.INCIDENT_COLUMNS plus the unit column")
    # each unit numbered once and its name checked once; counted by number below
    code, names = pd.factorize(incidents[unit])  # no unit: -1
    keep = np.append([str(u).strip() != "" for u in names], False).astype(bool)[code]
    periods, inside, like = _compared(incidents, period)
    like_prev, like_year = like["previous"][0], like["year"][0]
    masks = {"n": inside["n"], "n_previous": inside["n_previous"] & like_prev,
             "n_last_year": inside["n_last_year"] & like_year,
             "n_vs_previous": inside["n"] & like_prev, "n_vs_year": inside["n"] & like_year}
    borough = {name: int(mask.sum()) for name, mask in masks.items()}
    counts = pd.DataFrame({name: np.bincount(code[keep & mask], minlength=len(names))
                           for name, mask in masks.items()},
                          index=pd.Index(names, name=unit), columns=list(masks), dtype=np.int64)
    counts = counts.loc[counts.to_numpy().any(axis=1)].sort_index()
    days = {name: p.days for name, p in periods.items()}
    out = counts[["n", "n_previous", "n_last_year"]].copy()
    now_p, now_y = counts["n_vs_previous"], counts["n_vs_year"]
    out["change_previous"] = now_p - out["n_previous"]
    # poisson_change_test and relative_change_test of every unit at once
    by_days = days["n"] / (days["n"] + days["n_previous"])
    out["p_previous"] = _change_p(now_p, out["n_previous"], by_days)
    out["change_year"] = now_y - out["n_last_year"]
    out["p_year"] = _change_p(now_y, out["n_last_year"],
                              days["n"] / (days["n"] + days["n_last_year"]))
    rest = borough["n_vs_previous"] - now_p
    rest_previous = borough["n_previous"] - out["n_previous"]
    ra, rb = rest.to_numpy(), rest_previous.to_numpy()
    judged = (ra > 0) & (rb > 0)  # else on the period lengths alone
    share = np.where(judged, ra / np.where(judged, ra + rb, 1), by_days)
    out["expected"] = (now_p + out["n_previous"]).to_numpy() * share
    out["p_borough"] = _change_p(now_p, out["n_previous"], share)
    tested = (now_p + out["n_previous"] > 0).to_numpy()
    adjusted = out["p_borough"].to_numpy(dtype=float).copy()
    if fdr:
        adjusted[tested] = benjamini_hochberg(adjusted[tested])
    out["p_adjusted"] = adjusted
    out["reference"] = np.where((rest > 0) & (rest_previous > 0), REFERENCES[0], REFERENCES[1])
    significant = out["p_adjusted"] <= alpha
    # the label must not contradict the counts beside it: a place that went up less than
    # a booming borough is not "falling", one that fell less than a quiet one not "rising"
    rate_up = now_p * days["n_previous"] > out["n_previous"] * days["n"]
    rate_down = now_p * days["n_previous"] < out["n_previous"] * days["n"]
    out["trend"] = np.select([significant & (now_p > out["expected"]) & rate_up,
                              significant & (now_p < out["expected"]) & rate_down],
                             ["rising", "falling"], "no clear change")
    return out[list(TREND_COLUMNS)], {key: left for key, (_, left) in like.items()}
