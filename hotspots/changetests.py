"""Exact tests of a change in counts: a period against an earlier one of some length
(:func:`poisson_change_test`) and against the change of the rest of the area
(:func:`relative_change_test`), both binomial tests conditional on the total, and
:func:`change_p_values`, the same for many units at once (:mod:`hotspots.trends` uses it
for every unit of a period)."""

from __future__ import annotations

import types

import numpy as np

# scipy.stats.binom's own kernels (Boost), without importing scipy.stats (1-1.5 s of
# every pack, building its distributions' docstrings)
from scipy.special import _ufuncs as _kernels


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


def change_p_values(count, previous, share) -> np.ndarray:
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
