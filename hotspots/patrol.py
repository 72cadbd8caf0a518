"""Patrol planning: the periods an officer thinks in (the last 7, 28 or 90 days, or a
month), shifts from the configuration, and the places of an area ordered by what happens
on the shift, with their patrol windows.

police.uk rows are dated by month only: like every period that is not whole months
(:mod:`hotspots.summary`), a rolling period counts them only when their whole month lies
inside it, and says how many it left out (:func:`month_only_note`). They have no time of
day either, so they are never on a shift.
"""

from __future__ import annotations

import datetime as dt

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
from numpy.typing import ArrayLike

from .assign import assign_codes
from .config import Shift
from .summary import Period, month_period
from .trends import patrol_windows, time_profile

#: Rolling periods offered, in days.
ROLLING_DAYS = (7, 28, 90)
#: Columns of :func:`patrol_places`.
PATROL_COLUMNS = ("no", "place_id", "where", "on_shift", "n", "patrol_windows",
                  "what_happens")
NO_TIMES = "no timed incidents on this shift"


def rolling_period(last_day: dt.date, days: int) -> Period:
    """The ``days`` days that end on ``last_day`` (inclusive)."""
    if isinstance(days, bool) or not isinstance(days, int) or days < 1:
        raise ValueError(f"days must be a whole number of days >= 1, such as 28; got {days!r}")
    return Period(last_day - dt.timedelta(days=days - 1), last_day)


def period_options(last_day: dt.date | None, months: list[str]) -> dict[str, Period]:
    """Patrol periods by the label a user picks: "Last 28 days (4 to 31 Aug 2024)" for
    each of :data:`ROLLING_DAYS` ending on ``last_day`` (none when it is None), then each
    of ``months`` (``YYYY-MM``, in the order given) as "Month: Aug 2024". Ordered as
    offered: the last 28 days first (officers' usual period)."""
    out: dict[str, Period] = {}
    if last_day is not None:
        for days in sorted(ROLLING_DAYS, key=lambda d: (d != 28, d)):
            p = rolling_period(last_day, days)
            out[f"Last {days} days ({_span(p)})"] = p
    for month in months:
        p = month_period(month)
        out[f"Month: {p.start:%b %Y}"] = p
    return out


def _span(p: Period) -> str:
    end = f"{p.end.day} {p.end:%b %Y}"
    if p.start.year != p.end.year:
        return f"{p.start.day} {p.start:%b %Y} to {end}"
    if p.start.month != p.end.month:
        return f"{p.start.day} {p.start:%b} to {end}"
    return f"{p.start.day} to {end}"


def month_only_note(left_out: int, period: Period) -> str | None:
    """What a period does with police.uk rows (dated by month), given how many it left
    out (:func:`hotspots.summary.month_only_left_out`); None for a month, or when none
    were left out."""
    if period.is_month or left_out == 0:
        return None
    return (f"police.uk rows are dated by month only: {period.label} counts them only when "
            f"their whole month lies inside it, so {left_out:,} are left out. Choose a month "
            "to include them.")


def on_shift(hours: ArrayLike, shift: Shift) -> np.ndarray:
    """Whether each ``hour`` (0-23; -1 for no time of day) falls on ``shift``. A shift
    that crosses midnight (18:00-02:00) takes hours 18 to 23 and 0 to 1."""
    h = np.asarray(hours)
    return np.isin(h, np.asarray(shift.hours))


def in_patrol_area(codes: ArrayLike, x: ArrayLike, y: ArrayLike, *, ward: str | None = None,
                   drawn: shapely.Geometry | None = None,
                   wards: ArrayLike = ()) -> np.ndarray:
    """Whether each incident is in the area patrolled: the ward ``ward`` (by its area
    code in ``codes``), else inside the ``drawn`` polygon (EPSG:27700), else in any of
    ``wards``.

    Examples
    --------
    >>> in_patrol_area(["W1", "W2", ""], [0, 5, 9], [0, 5, 9], ward="W2").tolist()
    [False, True, False]
    >>> in_patrol_area(["W1", "W2", ""], [0, 5, 9], [0, 5, 9],
    ...                drawn=shapely.box(4, 4, 10, 10)).tolist()
    [False, True, True]
    >>> in_patrol_area(["W1", "W2", ""], [0, 5, 9], [0, 5, 9], wards=["W1"]).tolist()
    [True, False, False]
    """
    c = np.asarray(codes, dtype=object)
    if ward is not None:
        return c == ward
    if drawn is not None:
        return shapely.contains_xy(drawn, np.asarray(x, float), np.asarray(y, float))
    return np.isin(c, np.asarray(wards, dtype=object))


def current_shift(shifts: dict[str, Shift], hour: int) -> str:
    """The key of the first shift (in configuration order) on at ``hour``, else the first."""
    for key, s in shifts.items():
        if hour in s.hours:
            return key
    return next(iter(shifts))


def patrol_places(incidents: pd.DataFrame, places: gpd.GeoDataFrame, *, shift: Shift,
                  top: int = 10) -> pd.DataFrame:
    """The places to patrol on a shift, busiest on the shift first.

    Each incident belongs to the place whose polygon holds it (EPSG:27700); a place's
    ``on_shift`` count is its incidents with an ``hour`` on the shift (police.uk rows have
    no time of day, so they never are); its patrol windows
    (:func:`hotspots.trends.patrol_windows`) are read from those incidents only.

    Parameters
    ----------
    incidents : pandas.DataFrame
        The period's incidents (``source``, ``date``, ``hour``, ``x``, ``y``). Not modified.
    places : geopandas.GeoDataFrame
        Places of :func:`hotspots.cluster.find_places` (``place_id``, ``label``, ``n``,
        ``main_categories``, geometry), EPSG:27700.
    shift : Shift
    top : int, default 10
        Most places returned.

    Returns
    -------
    pandas.DataFrame
        Columns :data:`PATROL_COLUMNS`: ``no`` (1, 2, ... in this order), ``place_id``,
        ``where`` (the place's street label), ``on_shift``, ``n`` (every incident of the
        period), ``patrol_windows`` (text; :data:`NO_TIMES` when none), ``what_happens``.
        Sorted by ``on_shift``, then ``n``, descending, then ``place_id``.
    """
    if places.empty:
        return pd.DataFrame(columns=list(PATROL_COLUMNS))
    unit = assign_codes(incidents["x"].to_numpy(float), incidents["y"].to_numpy(float),
                        places[["place_id", "geometry"]].rename(columns={"place_id": "code"}))
    shifted = on_shift(incidents["hour"].to_numpy(), shift)
    rows = []
    for p in places.itertuples():
        here = incidents.loc[(unit == p.place_id) & shifted]
        windows = [w["label"] for w in patrol_windows(time_profile(here))]
        rows.append({"place_id": p.place_id, "where": p.label, "on_shift": len(here),
                     "n": int(p.n), "patrol_windows": ", ".join(windows) or NO_TIMES,
                     "what_happens": p.main_categories})
    out = (pd.DataFrame(rows).sort_values(["on_shift", "n", "place_id"],
                                          ascending=[False, False, True])
           .head(top).reset_index(drop=True))
    out.insert(0, "no", np.arange(1, len(out) + 1))
    return out[list(PATROL_COLUMNS)]
