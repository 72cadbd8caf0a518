"""Before and after an intervention, for people: the monthly counts around the date in
the target, the ring round it and the rest of the borough (the areas of
:func:`hotspots.evaluate.intervention_effect`), and its result in plain words.
"""

from __future__ import annotations

import datetime as dt
import math

import numpy as np
import pandas as pd
import shapely

#: Columns of :func:`before_after_series`.
SERIES_COLUMNS = ("area", "start", "side", "n", "index")
AREAS = ("target", "buffer", "control")


def before_after_series(incidents: pd.DataFrame, *, target, date: str | dt.date, control,
                        buffer_m: float = 250.0, months: int = 6) -> pd.DataFrame:
    """Incidents per month-long step before and after ``date`` in the target, the ring of
    ``buffer_m`` round it and the rest of ``control``, as
    :func:`hotspots.evaluate.intervention_effect` counts them (a point in the target
    first, else the ring, else the rest); the steps of each side add up to its counts.

    Steps run from the date: ``[date - k months, date - k + 1 months)``, so step starts
    are the date's day of the month (police.uk rows, dated the 1st, fall in a step
    whole only when the date is the 1st).

    Returns
    -------
    pandas.DataFrame
        ``2 * months`` rows per area, columns :data:`SERIES_COLUMNS`: ``area`` (one of
        :data:`AREAS`), ``start`` (the step's first day, ``datetime.date``), ``side``
        (``before``/``after``), ``n``, and ``index``: ``n`` as a percentage of the area's
        average step before the date (NaN when it had none), so that areas of very
        different sizes share one scale.
    """
    if isinstance(months, bool) or not isinstance(months, int | np.integer) or months < 1:
        raise ValueError(f"months must be a whole number of months >= 1; got {months!r}.")
    start = pd.Timestamp(date)
    edges = [start + pd.DateOffset(months=k) for k in range(-months, months + 1)]
    x, y = incidents["x"].to_numpy(float), incidents["y"].to_numpy(float)
    ring = shapely.difference(shapely.buffer(target, buffer_m), target)
    rest = shapely.difference(control, shapely.buffer(target, buffer_m))
    in_a = shapely.intersects_xy(target, x, y)
    in_b = shapely.intersects_xy(ring, x, y) & ~in_a
    in_c = shapely.intersects_xy(rest, x, y) & ~in_a & ~in_b
    when = pd.to_datetime(incidents["date"], format="%Y-%m-%d").to_numpy()
    step = np.searchsorted(np.array(edges, dtype="datetime64[ns]"), when, side="right") - 1
    rows = []
    for area, inside in zip(AREAS, (in_a, in_b, in_c), strict=True):
        n = np.bincount(step[inside & (step >= 0) & (step < 2 * months)],
                        minlength=2 * months)
        base = n[:months].mean()
        for k in range(2 * months):
            rows.append({"area": area, "start": edges[k].date(),
                         "side": "before" if k < months else "after", "n": int(n[k]),
                         "index": 100 * n[k] / base if base > 0 else float("nan")})
    return pd.DataFrame(rows, columns=list(SERIES_COLUMNS))


def _moved(change: float) -> str:
    if math.isnan(change):
        return "had no incidents before"
    if round(100 * change) == 0:
        return "stayed level"
    return f"{'fell' if change < 0 else 'rose'} {abs(change):.0%}"


def plain_verdict(effect: dict, *, alpha: float = 0.05, buffer_m: float | None = None) -> str:
    """What :func:`hotspots.evaluate.intervention_effect` found, in plain words: "The
    target fell 30%, more than the rest of the borough (fell 5%); unlikely to be chance."
    and, when the target fell by more than chance against the rest, what happened in the
    ring round it (read from the WDQ's sign). No p-value or quotient: show those beside
    it for those who want them."""
    tb, ta = effect["target_before"], effect["target_after"]
    cb, ca = effect["control_before"], effect["control_after"]
    t = ta / tb - 1 if tb else float("nan")
    c = ca / cb - 1 if cb else float("nan")
    rest = "the rest of the borough"
    text = f"The target {_moved(t)}"
    if not (math.isnan(t) or math.isnan(c)):
        if (t < 0) == (c < 0) and round(100 * c) != 0 and round(100 * t) != 0:
            text += f", {'more' if abs(t) > abs(c) else 'less'} than {rest} ({_moved(c)})"
        else:
            text += f", while {rest} {_moved(c)}"
    clear = bool(effect.get("clear", effect["p_value_vs_control"] <= alpha))
    text += ("; unlikely to be chance." if clear else
             "; the difference could well be chance.")
    if clear and ta < tb * ca / cb:  # fell against the rest: read the ring
        ring = f"The {buffer_m:.0f} m ring round it" if buffer_m else "The ring round it"
        bb, ba = effect["buffer_before"], effect["buffer_after"]
        moved = _moved(ba / bb - 1 if bb else float("nan"))
        q = effect.get("wdq", float("nan"))
        if q != q or q == 0:
            text += f" {ring} {moved}, as the rest of the borough did."
        elif q > 0:
            text += f" {ring} {moved}: the benefit spread to the streets round it."
        else:
            text += f" {ring} {moved}: some of the problem may have moved there."
    return text
