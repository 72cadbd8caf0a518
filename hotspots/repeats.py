"""Repeat demand and concentration: repeat locations and callers per unit, the ASB Case
Review (Community Trigger) threshold, Gini, Lorenz curve and top-5% share.

A *unit* is whatever the incidents are grouped by (a place id, a grid cell id, an LSOA
code): a column of ``incidents`` named by the ``unit`` keyword. Rows whose unit is missing
or empty belong to no unit and are left out of per-unit tables.

Caller keys are personal data: tables that carry them (:func:`community_trigger` with
``key="caller_key"``) are for analysts and must not be circulated.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike

from .schema import POLICE_UK_SOURCE, RepeatKey
from .validate import check_option

#: Columns of :func:`repeat_summary` (index: the unit).
REPEAT_COLUMNS: tuple[str, ...] = (
    "n", "repeat_locations", "n_at_repeat_locations", "repeat_location_share",
    "repeat_callers", "n_from_repeat_callers", "repeat_caller_share",
)
#: Columns of :func:`community_trigger`.
TRIGGER_COLUMNS: tuple[str, ...] = (
    "key", "n_in_window", "window_start", "window_end", "total", "units",
)
_TRIGGER_KEYS = ("caller_key", "location_key")
_UNIT_SEPARATOR = "; "


def _require_columns(incidents: pd.DataFrame, columns: tuple[str, ...]) -> None:
    missing = [c for c in columns if c not in incidents.columns]
    if missing:
        raise ValueError(f"incidents has no column {missing[0]!r} (missing: {missing}); "
                         "expected hotspots.schema.INCIDENT_COLUMNS plus the unit column")


def _present(values: pd.Series) -> np.ndarray:
    """True where a key or unit is given: not missing and not the empty string."""
    return (values.notna() & (values.astype(str).str.strip() != "")).to_numpy()


def repeat_summary(incidents: pd.DataFrame, *, unit: str = "unit") -> pd.DataFrame:
    """Repeat locations and repeat callers per unit.

    A repeat location is a ``location_key`` with 2 or more incidents; a repeat caller a
    non-empty ``caller_key`` with 2 or more. Both are counted over *all* of ``incidents``
    (pass the period's incidents), so a caller with one report in each of two units is a
    repeat caller in both, as in :func:`hotspots.summary.area_summary`. Empty keys are
    never repeats.

    Parameters
    ----------
    incidents : pandas.DataFrame
        Incidents with ``location_key``, ``caller_key`` and the unit column. Not modified.
    unit : str, default "unit"
        Column naming each incident's unit; rows where it is missing or empty are left out.

    Returns
    -------
    pandas.DataFrame
        One row per unit (index named after ``unit``, sorted), columns
        :data:`REPEAT_COLUMNS`:

        ====================== ===== ================================================
        n                      int   incidents in the unit
        repeat_locations       int   distinct repeat location keys among them
        n_at_repeat_locations  int   the unit's incidents at those keys
        repeat_location_share  float n_at_repeat_locations / n
        repeat_callers         int   distinct repeat caller keys among them
        n_from_repeat_callers  int   the unit's incidents from those callers
        repeat_caller_share    float n_from_repeat_callers / n
        ====================== ===== ================================================

    Examples
    --------
    >>> inc = pd.DataFrame({"unit": ["P1"] * 4 + ["P2"], "source": "asb", "location_key": ["a",
    ...     "a", "a", "b", "c"], "caller_key": ["k1", "k1", "", "", "k2"]})
    >>> repeat_summary(inc, unit="unit")[["n", "repeat_locations", "repeat_caller_share"]]
          n  repeat_locations  repeat_caller_share
    unit
    P1    4                 1                  0.5
    P2    1                 0                  0.0
    """
    _require_columns(incidents, ("location_key", "caller_key", unit))
    loc = incidents["location_key"]
    caller = incidents["caller_key"]
    loc_ok, caller_ok = _present(loc), _present(caller)
    loc_n = loc.where(loc_ok).map(loc[loc_ok].value_counts()).fillna(0).to_numpy()
    caller_n = caller.where(caller_ok).map(caller[caller_ok].value_counts()).fillna(0).to_numpy()
    at_loc = loc_ok & (loc_n >= 2)
    from_caller = caller_ok & (caller_n >= 2)

    keep = _present(incidents[unit])
    frame = pd.DataFrame({
        "unit": incidents[unit].to_numpy()[keep],
        "loc": loc.where(at_loc).to_numpy()[keep],
        "caller": caller.where(from_caller).to_numpy()[keep],
        "at_loc": at_loc[keep], "from_caller": from_caller[keep],
    })
    g = frame.groupby("unit", sort=True)
    out = pd.DataFrame({
        "n": g.size(),
        "repeat_locations": g["loc"].nunique(),
        "n_at_repeat_locations": g["at_loc"].sum(),
        "repeat_callers": g["caller"].nunique(),
        "n_from_repeat_callers": g["from_caller"].sum(),
    }).astype(np.int64)
    out["repeat_location_share"] = out["n_at_repeat_locations"] / out["n"]
    out["repeat_caller_share"] = out["n_from_repeat_callers"] / out["n"]
    out.index.name = unit
    return out[list(REPEAT_COLUMNS)]


def community_trigger(incidents: pd.DataFrame, *, threshold: int = 3, window_days: int = 182,
                      key: RepeatKey = "caller_key", unit: str | None = "unit"
                      ) -> pd.DataFrame:
    """Callers or locations that reach the ASB Case Review (Community Trigger) threshold.

    A key reaches it when ``threshold`` or more of its reports fall within ``window_days``
    consecutive days, i.e. the first and last of them are at most ``window_days - 1``
    days apart (default: 3 reports within 182 days, about 6 months). The search is exact
    over every window: each key's dates are sorted and, for each report, the reports up
    to ``window_days`` later are counted by binary search.

    Rows from police.uk (source ``"policeuk"``) are excluded: they are dated by month
    only (the 1st of the month), too coarse to place in a rolling window, and carry no
    caller. Rows with an empty or missing key are ignored.

    Parameters
    ----------
    incidents : pandas.DataFrame
        Incidents with ``source``, ``date`` (``YYYY-MM-DD``) and the ``key`` column (and
        the ``unit`` column unless ``unit`` is None). Pass the whole history to check,
        not only the current period. Not modified.
    threshold : int, default 3
        Reports needed within the window; at least 2.
    window_days : int, default 182
        Window length in days; at least 1.
    key : {"caller_key", "location_key"}, default "caller_key"
        Repeat callers (caller or victim identifiers) or repeat locations.
    unit : str or None, default "unit"
        Column naming each incident's unit, reported per key; None leaves ``units`` empty.

    Returns
    -------
    pandas.DataFrame
        One row per key that reaches the threshold, most reports in a window first (ties
        by key), columns :data:`TRIGGER_COLUMNS`:

        ============ ===== ========================================================
        key          str   the caller or location key (personal data for callers)
        n_in_window  int   most reports within any window of ``window_days``
        window_start str   date of the first report of that window (the earliest
                           such window when several hold the same number)
        window_end   str   date of the last report of that window
        total        int   all the key's reports (police.uk rows excluded)
        units        str   the units of the window's reports, sorted, joined by
                           ``"; "``; empty when ``unit`` is None or none is given
        ============ ===== ========================================================

    Examples
    --------
    >>> inc = pd.DataFrame({"source": "asb", "caller_key": ["k1"] * 3 + ["k2"],
    ...     "date": ["2024-01-05", "2024-02-01", "2024-05-20", "2024-01-09"], "unit": ["P1",
    ...     "P1", "P2", "P1"]})
    >>> community_trigger(inc, threshold=3)
      key  n_in_window window_start  window_end  total   units
    0  k1            3   2024-01-05  2024-05-20      3  P1; P2
    """
    check_option("key", key, _TRIGGER_KEYS)
    if isinstance(threshold, bool) or not isinstance(threshold, int | np.integer) \
            or threshold < 2:
        raise ValueError(f"threshold must be a whole number of reports >= 2 (default 3); "
                         f"got {threshold!r}")
    if isinstance(window_days, bool) or not isinstance(window_days, int | np.integer) \
            or window_days < 1:
        raise ValueError(f"window_days must be a whole number of days >= 1 (default 182); "
                         f"got {window_days!r}")
    _require_columns(incidents, ("source", "date", key) + ((unit,) if unit else ()))

    keep = _present(incidents[key]) & (incidents["source"].to_numpy() != POLICE_UK_SOURCE)
    keys = incidents[key].to_numpy()[keep].astype(str)
    day = pd.to_datetime(incidents["date"].to_numpy()[keep]).to_numpy().astype(
        "datetime64[D]").astype(np.int64)
    units = (incidents[unit].to_numpy()[keep] if unit else np.full(keys.size, None))
    empty = pd.DataFrame({c: pd.Series(dtype=t) for c, t in zip(
        TRIGGER_COLUMNS, (object, np.int64, object, object, np.int64, object), strict=True)})
    if keys.size == 0:
        return empty

    names, code = np.unique(keys, return_inverse=True)
    # one sortable number per report: keys far enough apart that no window spans two
    span = int(day.max() - day.min()) + window_days + 1
    stamp = code.astype(np.int64) * span + (day - day.min())
    order = np.lexsort((stamp,))
    stamp, code, day, units = stamp[order], code[order], day[order], units[order]
    end = np.searchsorted(stamp, stamp + window_days, side="left")  # exclusive
    in_window = end - np.arange(stamp.size)

    total = np.bincount(code, minlength=names.size)
    # best window per key: most reports, then the earliest start (stable sort keeps order)
    rank = np.lexsort((np.arange(stamp.size), -in_window, code))
    first = rank[np.r_[True, code[rank][1:] != code[rank][:-1]]]
    hit = first[in_window[first] >= threshold]
    if hit.size == 0:
        return empty

    def unit_list(start: int) -> str:
        got = {str(u) for u in units[start:end[start]]
               if u is not None and not pd.isna(u) and str(u).strip()}
        return _UNIT_SEPARATOR.join(sorted(got))

    as_date = np.datetime_as_string(day.astype("datetime64[D]"))
    out = pd.DataFrame({
        "key": names[code[hit]],
        "n_in_window": in_window[hit].astype(np.int64),
        "window_start": as_date[hit],
        "window_end": as_date[end[hit] - 1],
        "total": total[code[hit]].astype(np.int64),
        "units": [unit_list(int(i)) for i in hit] if unit else "",
    })
    out["window_start"] = out["window_start"].astype(object)
    out["window_end"] = out["window_end"].astype(object)
    out = out.sort_values(["n_in_window", "key"], ascending=[False, True], kind="stable")
    return out.reset_index(drop=True)


def _check_counts(counts: ArrayLike) -> np.ndarray:
    x = np.asarray(counts, dtype=float).ravel()
    if x.size == 0:
        raise ValueError("counts must hold one count per unit; got none")
    bad = ~np.isfinite(x) | (x < 0)
    if bad.any():
        first = int(np.flatnonzero(bad)[0])
        raise ValueError(f"counts must be finite and >= 0; {int(bad.sum())} are not, the "
                         f"first at position {first} ({float(x[first])!r})")
    if x.sum() == 0:
        raise ValueError(f"counts are all 0 over {x.size} units: with no incidents, "
                         "concentration is undefined")
    return x


def concentration(counts: ArrayLike) -> dict[str, float | int]:
    """Gini coefficient and top-5% share of incidents across units.

    Include the units with no incidents as zeros (every cell of the grid, every LSOA):
    leaving them out understates the concentration.

    Parameters
    ----------
    counts : array-like of float
        One incident count (or harm-weighted count) per unit, finite, >= 0, not all 0.

    Returns
    -------
    dict
        ``gini`` (float): ``sum_i (2 i - n - 1) x_(i) / (n sum x)`` over the counts sorted
        ascending (i = 1..n): 0 when all units have the same count, (n - 1) / n when one
        unit holds every incident. ``top5_share`` (float): share of all incidents in the
        ``top_units`` busiest units. ``top_units`` (int): ``ceil(0.05 n)``, at least 1,
        so the top group is never less than 5% of the units. ``n_units`` (int) and
        ``total`` (float).

    Examples
    --------
    >>> out = concentration([10, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 5])
    >>> {k: round(v, 3) for k, v in out.items()}
    {'gini': 0.917, 'top5_share': 0.667, 'top_units': 1, 'n_units': 20, 'total': 15.0}
    """
    x = np.sort(_check_counts(counts))
    n, total = x.size, float(x.sum())
    i = np.arange(1, n + 1)
    gini = float(np.sum((2 * i - n - 1) * x) / (n * total))
    top = max(1, math.ceil(0.05 * n - 1e-9))
    return {"gini": gini, "top5_share": float(x[n - top:].sum() / total), "top_units": top,
            "n_units": n, "total": total}


def lorenz(counts: ArrayLike) -> pd.DataFrame:
    """Lorenz curve of incidents across units.

    Parameters
    ----------
    counts : array-like of float
        One count per unit, as for :func:`concentration` (zeros included).

    Returns
    -------
    pandas.DataFrame
        n + 1 rows, from (0, 0) to (1, 1): ``share_units`` (cumulative share of units,
        quietest first) and ``share_incidents`` (cumulative share of incidents in them).
        The area between the curve and the diagonal is half the Gini coefficient.

    Examples
    --------
    >>> lorenz([3, 1, 0, 0])
       share_units  share_incidents
    0         0.00             0.00
    1         0.25             0.00
    2         0.50             0.00
    3         0.75             0.25
    4         1.00             1.00
    """
    x = np.sort(_check_counts(counts))
    return pd.DataFrame({
        "share_units": np.arange(x.size + 1) / x.size,
        "share_incidents": np.concatenate([[0.0], np.cumsum(x) / x.sum()]),
    })
