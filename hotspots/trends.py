"""Trends: period against previous period and a year before (exact Poisson tests), the
season-adjusted trend label (each place against the rest of the borough), emerging hot spot
classes (Gi* series + Mann-Kendall), and hour-by-weekday profiles with patrol
windows.

A *unit* is whatever the incidents are grouped by (a place id, a grid cell id, an LSOA
code): a column of ``incidents`` named by the ``unit`` keyword. Rows whose unit is missing
or empty belong to no unit and are left out.
"""

from __future__ import annotations

import datetime as dt
import functools

import geopandas as gpd
import numpy as np
import pandas as pd
import scipy.sparse as sp
from numpy.typing import ArrayLike
from scipy.special import ndtr
from scipy.stats import binomtest

from .gistar import benjamini_hochberg, gistar, grid_neighbours
from .grid import cell_index, make_grid, suggest_cell_size
from .ingest import POLICE_UK_SOURCE
from .summary import Period, in_period, month_period

#: Columns of :func:`period_trends` (index: the unit).
TREND_COLUMNS: tuple[str, ...] = (
    "n", "n_previous", "n_last_year", "change_previous", "p_previous", "change_year",
    "p_year", "expected", "p_borough", "p_adjusted", "reference", "trend",
)
#: Values of the ``reference`` column of :func:`period_trends`: what the place's change
#: was judged against.
REFERENCES = ("rest of borough", "period lengths only")
TRENDS = ("rising", "falling", "no clear change")
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
WEEKDAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
NO_TIMES_NOTE = "no times of day (police.uk rows are dated by month)"


# --- period comparison -------------------------------------------------------------------

#: Columns of :func:`coverage` (index: ``source``, ``category``).
COVERAGE_COLUMNS: tuple[str, ...] = ("first", "last", "months", "months_spanned", "n")


def coverage(incidents: pd.DataFrame) -> pd.DataFrame:
    """Which months each stream of records covers: a stream is one source's records of
    one category (police.uk burglary, the council's ASB cases of one type).

    Sources arrive with different histories (a year of police.uk burglary, one month of
    police.uk ASB, two years of council cases): a series that adds them up jumps where a
    stream starts or stops, not where incidents changed. Compare like with like: the
    months every stream in a series covers.

    Parameters
    ----------
    incidents : pandas.DataFrame
        Incidents with ``source``, ``category`` and ``date`` (``YYYY-MM-DD``). Not modified.

    Returns
    -------
    pandas.DataFrame
        One row per (source, category), sorted, columns :data:`COVERAGE_COLUMNS`: ``first``
        and ``last`` month with a record (``YYYY-MM``), ``months`` with a record,
        ``months_spanned`` from first to last inclusive (``months < months_spanned``:
        gaps), ``n`` incidents.
    """
    missing = [c for c in ("source", "category", "date") if c not in incidents.columns]
    if missing:
        raise ValueError(f"incidents has no column {missing[0]!r}; expected "
                         "hotspots.schema.INCIDENT_COLUMNS")
    month = incidents["date"].astype(str).str[:7]
    frame = pd.DataFrame({"source": incidents["source"].astype(str).to_numpy(),
                          "category": incidents["category"].astype(str).to_numpy(),
                          "month": month.to_numpy()})
    out = frame.groupby(["source", "category"], sort=True)["month"].agg(
        first="min", last="max", months="nunique", n="size")
    first = pd.PeriodIndex(out["first"], freq="M")
    last = pd.PeriodIndex(out["last"], freq="M")
    out["months_spanned"] = [(b - a).n + 1 for a, b in zip(first, last, strict=True)]
    return out[list(COVERAGE_COLUMNS)].astype({"months": np.int64, "n": np.int64,
                                               "months_spanned": np.int64})


def monthly_series(incidents: pd.DataFrame, spans: pd.DataFrame) -> pd.DataFrame:
    """Incidents per month of each stream (a source's records of one category), each over
    its own span: 0 in a month of the span with no record, NaN outside it, so a stream's
    line starts where its records start instead of rising from 0.

    Parameters
    ----------
    incidents : pandas.DataFrame
        The incidents to count (already filtered to the areas wanted), with ``source``,
        ``category`` and ``date``. Not modified.
    spans : pandas.DataFrame
        The streams, as rows of :func:`coverage` (``first``, ``last``; index ``source``,
        ``category``) of the whole store, so that an area with no record in a stream's
        first months still starts there.

    Returns
    -------
    pandas.DataFrame
        Index ``month`` (``YYYY-MM``, every month from the earliest first to the latest
        last), one float column per row of ``spans``, in its order (MultiIndex ``source``,
        ``category``).
    """
    cols = pd.MultiIndex.from_tuples(list(spans.index), names=["source", "category"])
    if not len(cols):
        return pd.DataFrame(index=pd.Index([], name="month"), columns=cols, dtype=float)
    months = pd.period_range(spans["first"].min(), spans["last"].max(),
                             freq="M").strftime("%Y-%m")
    counts = (pd.DataFrame({"source": incidents["source"].astype(str).to_numpy(),
                            "category": incidents["category"].astype(str).to_numpy(),
                            "month": incidents["date"].astype(str).str[:7].to_numpy()})
              .groupby(["month", "source", "category"]).size()
              .unstack(["source", "category"]))
    out = counts.reindex(index=months, columns=cols).fillna(0.0).astype(float)
    for key, first, last in zip(cols, spans["first"], spans["last"], strict=True):
        out.loc[(out.index < first) | (out.index > last), key] = np.nan
    out.index.name = "month"
    return out


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
    """
    _check_counts(count=count, previous=previous)
    _check_exposures(exposure=exposure, previous_exposure=previous_exposure)
    total = int(count) + int(previous)
    if total == 0:
        return 1.0
    share = float(exposure) / (float(exposure) + float(previous_exposure))
    return float(binomtest(int(count), total, share).pvalue)


def relative_change_test(count: int, previous: int, reference: int,
                         reference_previous: int, *, exposure: float = 1.0,
                         previous_exposure: float = 1.0) -> tuple[float, float]:
    """Did a place change more than a reference area (the rest of the borough) did?

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
    p = 1.0 if total == 0 else float(binomtest(int(count), total, share).pvalue)
    return total * share, p


def stream_label(source: str, category_label: str) -> str:
    """How a stream is named to users: "Burglary (police.uk)", "ASB - nuisance (lbth-asb)";
    a label that already names its source is left as it is."""
    source = "police.uk" if source == POLICE_UK_SOURCE else source
    return category_label if source in category_label else f"{category_label} ({source})"


def like_with_like(incidents: pd.DataFrame, periods: list[Period]
                   ) -> tuple[np.ndarray, list[tuple[str, str]]]:
    """Rows of the streams (a source's records of one category) that have records, across
    the whole of ``incidents``, in every one of ``periods``; and the streams left out
    (``(source, category)``, sorted): those with records in some of the periods only.

    A comparison of two periods counts only these rows on both sides: a stream that starts
    or stops between them (a new export, a file for one month) is a change in the data,
    not in incidents.
    """
    streams = pd.MultiIndex.from_arrays([incidents["source"].astype(str),
                                         incidents["category"].astype(str)])
    present = [set(streams[np.asarray(in_period(incidents, p))]) for p in periods]
    every = set.intersection(*present)
    return np.asarray(streams.isin(list(every))), sorted(set.union(*present) - every)


def year_before(period: Period) -> Period:
    """The same dates a year earlier (the same month for a month; 29 February becomes 28
    February)."""
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
    the two periods is left out of both sides of it, and named in
    ``attrs["left_out"]`` (``{"previous": [...], "year": [...]}``); ``n`` counts every row.

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
    units = incidents[unit]
    keep = (units.notna() & (units.astype(str).str.strip() != "")).to_numpy()
    periods = {"n": period, "n_previous": period.previous(), "n_last_year": year_before(period)}
    inside = {name: np.asarray(in_period(incidents, p)) for name, p in periods.items()}
    like_prev, left_prev = like_with_like(incidents, [period, periods["n_previous"]])
    like_year, left_year = like_with_like(incidents, [period, periods["n_last_year"]])
    masks = {"n": inside["n"], "n_previous": inside["n_previous"] & like_prev,
             "n_last_year": inside["n_last_year"] & like_year,
             "n_vs_previous": inside["n"] & like_prev, "n_vs_year": inside["n"] & like_year}
    borough = {name: int(mask.sum()) for name, mask in masks.items()}
    counts = pd.DataFrame({name: incidents.loc[keep & mask, unit].value_counts()
                           for name, mask in masks.items()},
                          columns=list(masks)).fillna(0).astype(np.int64).sort_index()
    counts.index.name = unit
    days = {name: p.days for name, p in periods.items()}
    out = counts[["n", "n_previous", "n_last_year"]].copy()
    now_p, now_y = counts["n_vs_previous"], counts["n_vs_year"]
    out["change_previous"] = now_p - out["n_previous"]
    out["p_previous"] = [poisson_change_test(int(a), int(b), exposure=days["n"],
                                             previous_exposure=days["n_previous"])
                         for a, b in zip(now_p, out["n_previous"], strict=True)]
    out["change_year"] = now_y - out["n_last_year"]
    out["p_year"] = [poisson_change_test(int(a), int(b), exposure=days["n"],
                                         previous_exposure=days["n_last_year"])
                     for a, b in zip(now_y, out["n_last_year"], strict=True)]
    rest = borough["n_vs_previous"] - now_p
    rest_previous = borough["n_previous"] - out["n_previous"]
    tests = [relative_change_test(int(a), int(b), int(ra), int(rb), exposure=days["n"],
                                  previous_exposure=days["n_previous"])
             for a, b, ra, rb in zip(now_p, out["n_previous"], rest, rest_previous,
                                     strict=True)]
    out["expected"] = [e for e, _ in tests]
    out["p_borough"] = [p for _, p in tests]
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
    out = out[list(TREND_COLUMNS)]
    out.attrs["left_out"] = {"previous": left_prev, "year": left_year}
    return out


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


def emerging_cells(incidents: pd.DataFrame, cells: gpd.GeoDataFrame, *, end_month: str,
                   months: int = 12, alpha: float = 0.10) -> gpd.GeoDataFrame | None:
    """Emerging hot spot class of every grid cell over the ``months`` months to
    ``end_month`` (:func:`emerging_hotspots` on the monthly cell counts, queen neighbours).

    Parameters
    ----------
    incidents : pandas.DataFrame
        Incidents with ``period`` (``YYYY-MM``) and ``x, y`` (EPSG:27700). Not modified.
    cells : geopandas.GeoDataFrame
        A square grid from :func:`hotspots.grid.make_grid` (its lattice attrs kept).
    end_month : str
        The last month, ``YYYY-MM``.

    Returns
    -------
    geopandas.GeoDataFrame or None
        ``cells`` with :data:`EMERGING_COLUMNS` added; None when fewer than
        :data:`MIN_PERIODS` of the months have an incident.
    """
    span = pd.period_range(end=pd.Period(end_month, "M"), periods=months, freq="M")
    month = pd.PeriodIndex(incidents["period"], freq="M")
    idx = cell_index(cells, incidents["x"].to_numpy(), incidents["y"].to_numpy())
    keep = (idx >= 0) & month.isin(span)
    if month[keep].nunique() < MIN_PERIODS:
        return None
    counts = (pd.crosstab(idx[keep], month[keep]).reindex(index=cells["cell_id"],
                                                           columns=span, fill_value=0))
    out = emerging_hotspots(counts.set_axis(range(len(span)), axis=1),
                            grid_neighbours(cells, cell_shape="square"), alpha=alpha)
    return cells.join(out.set_axis(cells.index))


def emerging_grid(incidents: pd.DataFrame, area, *, period: Period
                  ) -> gpd.GeoDataFrame | None:
    """:func:`emerging_cells` over the 12 months to ``period`` on the grid the tasking
    pack uses for it: square cells over ``area`` (the land area, EPSG:27700) sized by
    :func:`hotspots.grid.suggest_cell_size` from the period's incidents. The grid's cell
    size is in ``attrs["cell_size_m"]``. None as :func:`emerging_cells`, or when the
    period has fewer than 3 incidents."""
    cur = incidents.loc[in_period(incidents, period)]
    if len(cur) < 3:
        return None
    cell = suggest_cell_size(cur["x"].to_numpy(), cur["y"].to_numpy(), area)
    out = emerging_cells(incidents, make_grid(area, cell_size_m=cell), end_month=period.label)
    if out is not None:
        out.attrs["cell_size_m"] = float(cell)
    return out


# --- when: hour x weekday ----------------------------------------------------------------

def time_profile(incidents: pd.DataFrame) -> pd.DataFrame:
    """Incidents by weekday and hour of day, counting only those with a real time of day.

    Rows with ``hour`` -1 (no time) and all police.uk rows (dated by month: neither day
    nor time is real) are left out; when nothing is left the profile is all zeros and
    callers should say :data:`NO_TIMES_NOTE` rather than show it.

    Parameters
    ----------
    incidents : pandas.DataFrame
        One place's incidents, with ``source``, ``date`` (``YYYY-MM-DD``) and ``hour``.
        Not modified.

    Returns
    -------
    pandas.DataFrame
        7 x 24 int64 counts: index ``weekday`` ``Mon`` .. ``Sun`` (:data:`WEEKDAYS`),
        columns ``hour`` 0 .. 23.
    """
    missing = [c for c in ("source", "date", "hour") if c not in incidents.columns]
    if missing:
        raise ValueError(f"incidents has no column {missing[0]!r}; expected "
                         "hotspots.schema.INCIDENT_COLUMNS")
    hour = pd.to_numeric(incidents["hour"], errors="coerce").to_numpy(dtype=float)
    timed = ((hour >= 0) & (hour <= 23)
             & (incidents["source"].to_numpy() != POLICE_UK_SOURCE))
    weekday = pd.to_datetime(incidents["date"].to_numpy()[timed]).weekday.to_numpy()
    flat = np.bincount(weekday * 24 + hour[timed].astype(np.int64), minlength=7 * 24)
    return pd.DataFrame(flat.reshape(7, 24).astype(np.int64),
                        index=pd.Index(WEEKDAYS, name="weekday"),
                        columns=pd.RangeIndex(24, name="hour"))


@functools.lru_cache(maxsize=4)
def _candidate_windows(max_hours: int) -> tuple[np.ndarray, tuple[tuple[int, int, int, int], ...]]:
    """Slot masks (candidates x 168) of every run of weekdays x block of hours (the same
    for every place: built once per ``max_hours``, read-only).

    A block starting at hour h0 on day d and running past midnight takes its later hours
    from day d + 1: it is day d's night.
    """
    specs: list[tuple[int, int, int, int]] = []  # first day, n days, start hour, n hours
    for n_days in range(1, 8):
        for d0 in range(7 if n_days < 7 else 1):
            for h0 in range(24):
                for n_hours in range(1, max_hours + 1):
                    specs.append((d0, n_days, h0, n_hours))
    masks = np.zeros((len(specs), 7 * 24), dtype=bool)
    for m, (d0, n_days, h0, n_hours) in enumerate(specs):
        for d in range(d0, d0 + n_days):
            for hh in range(h0, h0 + n_hours):
                masks[m, ((d + hh // 24) % 7) * 24 + hh % 24] = True
    masks.flags.writeable = False
    return masks, tuple(specs)


def _window_label(d0: int, n_days: int, h0: int, n_hours: int) -> str:
    if n_days == 7:
        days = "daily"
    elif n_days == 1:
        days = WEEKDAYS[d0]
    else:
        days = f"{WEEKDAYS[d0]}-{WEEKDAYS[(d0 + n_days - 1) % 7]}"
    return f"{days} {h0:02d}:00-{(h0 + n_hours) % 24:02d}:00"


def patrol_windows(profile: pd.DataFrame | ArrayLike, *, top: int = 2, max_hours: int = 6,
                   min_share: float = 0.05) -> list[dict]:
    """The busiest weekday-and-hour windows of a place, for patrol planning.

    A window is one block of 1 to ``max_hours`` consecutive hours on one weekday or on
    each of a run of consecutive weekdays ("Fri-Sat 20:00-01:00": Friday and Saturday
    from 20:00 to 01:00 the next morning; a block past midnight belongs to the night of
    its starting day; seven days read "daily"). Windows are chosen greedily, without
    overlap: each time the window with the most incidents *above an even spread*
    (covered incidents minus ``total x slots / 168``, so that adding an hour only helps
    when that hour is busier than average) is taken, ties to the smaller window, then to
    the earlier day and hour. Choosing stops after ``top`` windows, or when the next
    would cover less than ``min_share`` of the incidents or no more than an even spread.

    Parameters
    ----------
    profile : pandas.DataFrame or array-like
        7 x 24 counts, Monday first, hour 0 first, as :func:`time_profile` returns.
    top : int, default 2
        Most windows returned, >= 1.
    max_hours : int, default 6
        Longest block of hours, 1 to 24.
    min_share : float, default 0.05
        Smallest share of the timed incidents a window must cover, in [0, 1).

    Returns
    -------
    list of dict
        Busiest first, each ``{"label": "Fri-Sat 20:00-01:00", "share": float, "n": int,
        "weekdays": ("Fri", "Sat"), "start_hour": 20, "hours": 5}``; ``share`` is ``n``
        over all timed incidents. Empty when the place has no timed incidents: say
        :data:`NO_TIMES_NOTE` then.
    """
    x = np.asarray(profile, dtype=float)
    if x.shape != (7, 24):
        raise ValueError(f"profile must be 7 x 24 (weekdays x hours, as time_profile "
                         f"returns); got shape {x.shape}")
    bad = ~np.isfinite(x) | (x < 0)
    if bad.any():
        raise ValueError(f"profile must hold counts >= 0; {int(bad.sum())} are not")
    if isinstance(top, bool) or not isinstance(top, int | np.integer) or top < 1:
        raise ValueError(f"top must be a whole number of windows >= 1 (default 2); got {top!r}")
    if isinstance(max_hours, bool) or not isinstance(max_hours, int | np.integer) \
            or not 1 <= max_hours <= 24:
        raise ValueError(f"max_hours must be a whole number of hours from 1 to 24 (default 6); "
                         f"got {max_hours!r}")
    if not (isinstance(min_share, int | float) and 0 <= min_share < 1):
        raise ValueError(f"min_share must be a share in [0, 1) (default 0.05); got "
                         f"{min_share!r}")
    flat = x.ravel()
    total = flat.sum()
    if total == 0:
        return []
    masks, specs = _candidate_windows(int(max_hours))
    covered = masks @ flat
    size = masks.sum(axis=1)
    excess = covered - total * size / (7 * 24)
    free = np.ones(len(specs), dtype=bool)
    # deterministic order of preference among equal excess: fewer slots, earlier day, hour
    order = np.lexsort((np.array([s[2] for s in specs]), np.array([s[0] for s in specs]),
                        size, -np.round(excess, 9)))
    windows: list[dict] = []
    used = np.zeros(7 * 24, dtype=bool)
    while len(windows) < top:
        ok = order[free[order]]
        if ok.size == 0:
            break
        best = int(ok[0])
        if excess[best] <= 0 or covered[best] < min_share * total:
            break
        d0, n_days, h0, n_hours = specs[best]
        windows.append({
            "label": _window_label(d0, n_days, h0, n_hours),
            "share": float(covered[best] / total), "n": int(round(covered[best])),
            "weekdays": tuple(WEEKDAYS[(d0 + i) % 7] for i in range(n_days)),
            "start_hour": h0, "hours": n_hours,
        })
        used |= masks[best]
        free &= ~(masks & used).any(axis=1)
    return windows
