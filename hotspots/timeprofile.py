"""When: incidents by hour of day and weekday, and the busiest weekday-and-hour windows
of a place for patrol planning.
"""

from __future__ import annotations

import functools

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike

from .schema import POLICE_UK_SOURCE

WEEKDAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
NO_TIMES_NOTE = "no times of day (police.uk rows are dated by month)"


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

    Examples
    --------
    >>> inc = pd.DataFrame({"source": ["asb", "asb", "policeuk"], "date": ["2024-05-03",
    ...     "2024-05-03", "2024-05-01"], "hour": [20, 21, -1]})
    >>> profile = time_profile(inc)
    >>> profile.shape, int(profile.loc["Fri", 20]), int(profile.to_numpy().sum())
    ((7, 24), 1, 2)
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
def _candidate_windows(max_hours: int) -> tuple[np.ndarray, np.ndarray, np.ndarray,
                                                tuple[tuple[int, int, int, int], ...]]:
    """Every run of weekdays x block of hours (the same for every place: built once per
    ``max_hours``, read-only), in the order of preference among windows of equal excess
    (fewer slots, then the earlier day, then the earlier hour): the slots each covers
    (168 x candidates, bool), the same by number (candidates x the most slots, padded with
    168), how many slots each covers and their specs ``(first day, n days, start hour,
    n hours)``.

    A block starting at hour h0 on day d and running past midnight takes its later hours
    from day d + 1: it is day d's night.
    """
    specs: list[tuple[int, int, int, int]] = []  # first day, n days, start hour, n hours
    for n_days in range(1, 8):
        for d0 in range(7 if n_days < 7 else 1):
            for h0 in range(24):
                for n_hours in range(1, max_hours + 1):
                    specs.append((d0, n_days, h0, n_hours))
    specs.sort(key=lambda s: (s[1] * s[3], s[0], s[2]))  # stable: ties keep their order
    masks = np.zeros((len(specs), 7 * 24), dtype=bool)
    for m, (d0, n_days, h0, n_hours) in enumerate(specs):
        for d in range(d0, d0 + n_days):
            for hh in range(h0, h0 + n_hours):
                masks[m, ((d + hh // 24) % 7) * 24 + hh % 24] = True
    size = masks.sum(axis=1)
    # each candidate's slots by number, padded with 168 (a slot that counts nothing)
    index = np.full((len(specs), int(size.max())), 7 * 24, dtype=np.intp)
    for m, row in enumerate(masks):
        slots_of = np.flatnonzero(row)
        index[m, :len(slots_of)] = slots_of
    slots = np.ascontiguousarray(masks.T)
    for a in (slots, index, size):
        a.flags.writeable = False
    return slots, index, size, tuple(specs)


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

    Examples
    --------
    >>> profile = np.zeros((7, 24))
    >>> profile[4, 20:24] = 10
    >>> profile[5, 0] = 5
    >>> [w["label"] for w in patrol_windows(profile)]
    ['Fri 20:00-01:00']
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
    slots, index, size, specs = _candidate_windows(int(max_hours))
    # summed by gathering, not a matrix product: a BLAS call spins up threads that a busy
    # machine makes wait (10 ms to 100 ms a place)
    covered = np.append(flat, 0.0)[index].sum(axis=1)
    excess = covered - total * size / (7 * 24)
    # the candidates are in the order of preference among equal excess already (fewer
    # slots, earlier day, earlier hour): the first of the largest excess is the one
    rounded = np.round(excess, 9)
    free = np.ones(len(specs), dtype=bool)
    windows: list[dict] = []
    while len(windows) < top and free.any():
        best = int(np.argmax(np.where(free, rounded, -np.inf)))
        if excess[best] <= 0 or covered[best] < min_share * total:
            break
        d0, n_days, h0, n_hours = specs[best]
        windows.append({
            "label": _window_label(d0, n_days, h0, n_hours),
            "share": float(covered[best] / total), "n": int(round(covered[best])),
            "weekdays": tuple(WEEKDAYS[(d0 + i) % 7] for i in range(n_days)),
            "start_hour": h0, "hours": n_hours,
        })
        free &= ~slots[slots[:, best]].any(axis=0)  # no overlap with a window taken
    return windows
