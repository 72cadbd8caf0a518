"""Series: which sources (streams: a source's records of one category) cover which
months, the monthly count of each over its own months, and monthly counts by area.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from .schema import POLICE_UK_SOURCE

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

    Examples
    --------
    >>> inc = pd.DataFrame({"source": ["policeuk", "policeuk", "asb"], "category": ["burglary",
    ...     "burglary", "asb_nuisance"], "period": ["2024-01", "2024-03", "2024-03"],
    ...     "date": ["2024-01-01", "2024-03-01", "2024-03-09"]})
    >>> coverage(inc)
                             first     last  months  months_spanned  n
    source   category
    asb      asb_nuisance  2024-03  2024-03       1               1  1
    policeuk burglary      2024-01  2024-03       2               3  2
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

    Examples
    --------
    >>> inc = pd.DataFrame({"source": ["policeuk", "policeuk", "asb"], "category": ["burglary",
    ...     "burglary", "asb_nuisance"], "period": ["2024-01", "2024-03", "2024-03"],
    ...     "date": ["2024-01-01", "2024-03-01", "2024-03-09"]})
    >>> monthly_series(inc, coverage(inc))
    source            asb policeuk
    category asb_nuisance burglary
    month
    2024-01           NaN      1.0
    2024-02           NaN      0.0
    2024-03           1.0      1.0
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


def area_monthly(incidents: pd.DataFrame, unit: str, first: str, last: str) -> pd.DataFrame:
    """Incidents a month in each unit, over every month from ``first`` to ``last``
    (``YYYY-MM``, inclusive; months without incidents count 0). Rows outside the months
    or with no unit (empty) are left out.

    Returns
    -------
    pandas.DataFrame
        Index ``month`` (``YYYY-MM``, every month of the span), one int column per unit.

    Examples
    --------
    >>> rows = pd.DataFrame({"date": ["2024-01-05", "2024-03-02", "2024-03-09", "2024-04-01"],
    ...                      "ward": ["A", "A", "B", "A"]})
    >>> area_monthly(rows, "ward", "2024-01", "2024-03")
    ward     A  B
    month
    2024-01  1  0
    2024-02  0  0
    2024-03  1  1
    """
    window = pd.period_range(first, last, freq="M").strftime("%Y-%m")
    month = incidents["date"].astype(str).str[:7]
    keep = (month >= first) & (month <= last) & (incidents[unit].astype(str) != "")
    counts = pd.crosstab(month[keep].rename("month"), incidents.loc[keep, unit])
    return counts.reindex(window, fill_value=0).rename_axis("month")


def streams_covering(coverage_table: pd.DataFrame, first: str, last: str) -> pd.DataFrame:
    """The rows of :func:`coverage` whose streams have records from ``first`` or before to
    ``last`` or after (months ``YYYY-MM``): the streams a comparison over those months can
    count on both sides.

    Examples
    --------
    >>> cov = pd.DataFrame({"first": ["2023-01", "2024-02"], "last": ["2024-08", "2024-08"]},
    ...                    index=["council", "one-off"])
    >>> streams_covering(cov, "2024-01", "2024-06").index.tolist()
    ['council']
    """
    return coverage_table.loc[(coverage_table["first"] <= first)
                              & (coverage_table["last"] >= last)]


def stream_label(source: str, category_label: str) -> str:
    """How a stream is named to users: "Burglary (police.uk)", "ASB - nuisance (lbth-asb)";
    a label that already names its source is left as it is.

    Examples
    --------
    >>> stream_label("policeuk", "Burglary")
    'Burglary (police.uk)'
    """
    source = "police.uk" if source == POLICE_UK_SOURCE else source
    return category_label if source in category_label else f"{category_label} ({source})"
