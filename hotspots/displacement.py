"""Displacement and diffusion of benefits around an intervention: before/after counts in a
target, the ring round it and a control area, the exact tests, and the weighted
displacement quotient (Bowers and Johnson 2003).
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import numpy as np
import pandas as pd
import shapely

from .trends import poisson_change_test


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
