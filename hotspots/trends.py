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

import numpy as np
import pandas as pd

# Re-exported: the exact tests of a change used to live here.
from .changetests import binom, change_p_values, poisson_change_test, relative_change_test  # noqa: F401

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
    out["p_previous"] = change_p_values(now_p, out["n_previous"], by_days)
    out["change_year"] = now_y - out["n_last_year"]
    out["p_year"] = change_p_values(now_y, out["n_last_year"],
                              days["n"] / (days["n"] + days["n_last_year"]))
    rest = borough["n_vs_previous"] - now_p
    rest_previous = borough["n_previous"] - out["n_previous"]
    ra, rb = rest.to_numpy(), rest_previous.to_numpy()
    judged = (ra > 0) & (rb > 0)  # else on the period lengths alone
    share = np.where(judged, ra / np.where(judged, ra + rb, 1), by_days)
    out["expected"] = (now_p + out["n_previous"]).to_numpy() * share
    out["p_borough"] = change_p_values(now_p, out["n_previous"], share)
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
