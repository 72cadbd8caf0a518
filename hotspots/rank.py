"""The tasking score: places ranked by named, weighted components, each shown beside the rank.

A unit is whatever the user ranks: a cluster (place), a grid cell or an LSOA/ward. The
input has one row per unit; each component is a column, scaled to 0-1 by its
**rank percentile** among the units (ties share their average rank), weighted, and summed:

==================== ========================= ============================================
component            column                    meaning
==================== ========================= ============================================
``volume``           ``n``                     incidents in the period
``density``          ``density_per_km2``       incidents per km² of the unit
``harm``             ``harm``                  sum of the incidents' harm weights
``repeat_locations`` ``repeat_location_share`` share of incidents at repeat locations (0-1)
``repeat_callers``   ``repeat_caller_share``   share of incidents from repeat callers (0-1)
``trend``            ``trend``                 signed change against the previous period,
                                               e.g. :func:`trend_z`; NaN counts as 0
==================== ========================= ============================================

Why rank percentiles rather than min-max: incident counts are heavy-tailed (one night-time
economy street can have ten times the next place), and min-max scaling would squash every
other unit towards 0 on that component, so one outlier would decide the ranking. Rank
percentiles are unaffected by the size of an outlier, make every component spread evenly
over 0-1 (so a weight means the same thing for each component), ignore any monotone
re-scaling of a column (a z-score or a raw change rank the same), do not depend on row
order, and a column with no variation (no caller keys in police.uk data) gives every
unit 0.5 and so cannot change the order. The price: only the order of a component's values
counts, not how far apart they are; the raw values stay in the table and in
:func:`explain_rank` for that.
"""

from __future__ import annotations

import math
import numbers

import numpy as np
import pandas as pd

#: component name -> input column.
COMPONENTS: dict[str, str] = {
    "volume": "n",
    "density": "density_per_km2",
    "harm": "harm",
    "repeat_locations": "repeat_location_share",
    "repeat_callers": "repeat_caller_share",
    "trend": "trend",
}

#: Default weights. Volume, density, harm and repeat locations count fully (chairs rank
#: on repeat demand because a problem-solving response pays off there); repeat callers
#: count half, as many sources (police.uk) have no caller keys; trend counts half, as
#: month-on-month changes on small counts are mostly noise. Override any of them with the
#: configuration's ``[ranking]`` table (names as keys) passed as ``weights``.
DEFAULT_WEIGHTS: dict[str, float] = {
    "volume": 1.0,
    "density": 1.0,
    "harm": 1.0,
    "repeat_locations": 1.0,
    "repeat_callers": 0.5,
    "trend": 0.5,
}

#: ``find_places`` and ``area_summary`` call the repeat-location share ``repeat_share``;
#: it is used when ``repeat_location_share`` is absent.
_ALIASES: dict[str, str] = {"repeat_location_share": "repeat_share"}

_OUTPUT_PREFIXES = ("component_", "points_")


def trend_z(n, n_prev) -> np.ndarray:
    """Signed trend signal for two counts: ``(n - n_prev) / sqrt(n + n_prev)``.

    This is the normal approximation to the test that two Poisson counts have the same
    rate: about +2 or more is a rise larger than chance, about -2 or less a fall. It is
    0 when both counts are 0, and NaN where either count is NaN (:func:`rank_units`
    counts NaN as 0, no change).

    Parameters
    ----------
    n, n_prev : array-like of counts for this period and the previous one.

    Returns
    -------
    numpy.ndarray of float.

    Examples
    --------
    >>> trend_z([20, 5, 10], [10, 5, 0]).round(2).tolist()
    [1.83, 0.0, 3.16]
    """
    cur = np.asarray(n, dtype=float)
    prev = np.asarray(n_prev, dtype=float)
    total = cur + prev
    with np.errstate(invalid="ignore", divide="ignore"):
        z = (cur - prev) / np.sqrt(total)
    return np.where(total == 0, 0.0, z)


def _check_weights(weights: dict[str, float] | None) -> dict[str, float]:
    allowed = sorted(COMPONENTS)
    if weights is None:
        return dict(DEFAULT_WEIGHTS)
    if not isinstance(weights, dict):
        raise ValueError(f"weights must be a dict of component name -> number with names "
                         f"from {allowed}; got {weights!r}.")
    unknown = sorted(str(k) for k in weights if k not in COMPONENTS)
    if unknown:
        raise ValueError(f"weights has unknown component name(s) {unknown}; allowed names "
                         f"are {allowed}.")
    merged = dict(DEFAULT_WEIGHTS)
    for name, value in weights.items():
        ok = (isinstance(value, numbers.Real) and not isinstance(value, bool | np.bool_)
              and math.isfinite(value) and value >= 0)
        if not ok:
            raise ValueError(f"weights['{name}'] = {value!r}; give a number of 0 or more.")
        merged[name] = float(value)
    if not any(merged.values()):
        raise ValueError(f"weights are all 0 ({merged}); give at least one of {allowed} "
                         "a weight above 0.")
    return merged


def _numeric(table: pd.DataFrame, col: str, ids: pd.Series, id_col: str) -> pd.Series:
    values = pd.to_numeric(table[col], errors="coerce")
    bad = values.isna() & table[col].notna()
    if bad.any():
        i = int(np.flatnonzero(bad.to_numpy())[0])
        raise ValueError(f"column '{col}' must be numeric: {int(bad.sum())} value(s) are not, "
                         f"the first {table[col].iloc[i]!r} at {id_col} = {ids.iloc[i]!r}.")
    return values.astype(float).fillna(0.0)


def _percentile(values: pd.Series) -> pd.Series:
    """Rank percentile, 0 = lowest, 1 = highest, ties averaged; 0.5 when there is one unit."""
    if len(values) <= 1:
        return pd.Series(0.5, index=values.index)
    return (values.rank(method="average") - 1.0) / (len(values) - 1)


def rank_units(table: pd.DataFrame, *, weights: dict[str, float] | None = None,
               id_col: str = "unit_id") -> pd.DataFrame:
    """Rank units (places, cells, areas) by a weighted score of named components.

    Each component column (see :data:`COMPONENTS`) is scaled to 0-1 by its rank
    percentile among the units: ``(average rank - 1) / (units - 1)``, 1 for the highest
    value, 0 for the lowest, tied values sharing their average; 0.5 for everyone when
    there is a single unit or no variation. NaN counts as 0 (for ``trend``: no change).
    ``score`` is the weighted sum of the scaled components divided by the sum of the
    weights, so it lies in 0-1 and the ``points_`` columns add up to it.

    Parameters
    ----------
    table : one row per unit with ``id_col``, ``n`` and the column of each component whose
        weight is above 0: ``n``, ``density_per_km2``, ``harm``, ``repeat_location_share``
        (``repeat_share`` is accepted instead), ``repeat_caller_share``, ``trend`` (a signed
        change against the previous period; :func:`trend_z` gives one from ``n`` and
        ``n_prev``). Not modified.
    weights : component name -> weight of 0 or more, over :data:`DEFAULT_WEIGHTS`
        (volume 1, density 1, harm 1, repeat_locations 1, repeat_callers 0.5, trend 0.5);
        components not named keep their default. A weight of 0 takes the component out
        of the score (its column may then be absent). Default None: the defaults.
    id_col : column identifying the unit; values must be unique. Default ``"unit_id"``.

    Returns
    -------
    pandas.DataFrame (a GeoDataFrame stays one): the input columns with ``rank`` first
    (1 = highest score), then ``component_<name>`` (the scaled 0-1 value, NaN when the
    column is absent) and ``points_<name>`` (weight x component / sum of weights) for each
    component in the order of :data:`COMPONENTS`, and ``score``. Sorted by rank; ties
    broken by score (rounded to 12 decimals), then higher ``n``, then ``id_col`` ascending,
    so the result does not depend on row order. Existing ``rank``, ``score``,
    ``component_*`` and ``points_*`` columns (e.g. from ``area_summary``) are replaced.

    Raises
    ------
    ValueError
        for unknown, negative or all-zero weights, a missing ``id_col`` or component column,
        duplicate ids or non-numeric component values; the message names what to fix.

    Examples
    --------
    >>> table = pd.DataFrame({"unit_id": ["A", "B", "C"], "n": [30, 10, 20], "harm": [10, 40,
    ...     20]})
    >>> weights = {k: 0.0 for k in COMPONENTS} | {"volume": 1.0, "harm": 1.0}
    >>> rank_units(table, weights=weights)[["unit_id", "rank", "score"]]
      unit_id  rank  score
    0       A     1    0.5
    1       C     2    0.5
    2       B     3    0.5
    """
    w = _check_weights(weights)
    if id_col not in table.columns:
        raise ValueError(f"id_col = '{id_col}' is not a column of table; columns are "
                         f"{list(map(str, table.columns))}.")
    ids = table[id_col]
    dup = ids.duplicated(keep=False)
    if dup.any():
        first = ids[dup].iloc[0]
        raise ValueError(f"{id_col} must be unique: {int(ids.duplicated().sum())} duplicate(s), "
                         f"the first {first!r} on {int((ids == first).sum())} rows.")
    columns: dict[str, str | None] = {}
    missing = []
    for name, col in COMPONENTS.items():
        found = col if col in table.columns else _ALIASES.get(col)
        if found not in table.columns:
            found = None
        if found is None and (w[name] > 0 or name == "volume"):
            missing.append(col)
        columns[name] = found
    if missing:
        raise ValueError(f"table is missing component column(s) {missing}; add them or give "
                         f"their components weight 0 (n is always needed: it breaks ties). "
                         f"Columns are {list(map(str, table.columns))}.")

    drop = [c for c in table.columns if c in ("rank", "score")
            or str(c).startswith(_OUTPUT_PREFIXES)]
    out = table.drop(columns=drop)
    total = sum(w.values())
    scaled, points = {}, {}
    for name, found_col in columns.items():
        if found_col is None:
            scaled[name] = pd.Series(np.nan, index=table.index)
            points[name] = pd.Series(0.0, index=table.index)
            continue
        comp = _percentile(_numeric(table, found_col, ids, id_col))
        scaled[name] = comp
        points[name] = comp * (w[name] / total) if w[name] > 0 else comp * 0.0
    score = sum(points.values(), pd.Series(0.0, index=table.index)).round(12)
    out = out.assign(**{f"component_{k}": v for k, v in scaled.items()},
                     **{f"points_{k}": v for k, v in points.items()}, score=score)
    keys = pd.DataFrame({"score": score, "n": _numeric(table, "n", ids, id_col), "id": ids})
    order = keys.sort_values(["score", "n", "id"], ascending=[False, False, True],
                             kind="mergesort").index
    out = out.loc[order].reset_index(drop=True)
    out.insert(0, "rank", np.arange(1, len(out) + 1))
    return out


def _ordinal(k: int) -> str:
    suffix = "th" if 10 <= k % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(k % 10, "th")
    return f"{k}{suffix}"


def _shown(row: pd.Series, name: str) -> bool:
    """A component is explained when present and weighted (points above 0 or value 0)."""
    comp = row.get(f"component_{name}")
    if comp is None or pd.isna(comp):
        return False
    return bool(row.get(f"points_{name}", 0) > 0 or comp == 0)


def explain_rank(row: pd.Series, *, borough_density_per_km2: float | None = None,
                 previous: str = "previous period") -> str:
    """One line a chair can read, from a row of :func:`rank_units`.

    For example ``"3rd (score 0.78): 41 incidents (volume 0.92); 3.1x borough density
    (density 0.80); harm 96 (0.75); 60% at repeat locations (0.67); 25% from repeat callers
    (0.40); up, +18 vs previous month (trend 0.90)"``. The numbers in brackets are the
    scaled components (0-1). Components with weight 0 are left out. Plain text only:
    escape it before putting it in HTML.

    Parameters
    ----------
    row : one row of :func:`rank_units` output.
    borough_density_per_km2 : the study area's incidents per km²; when given, density is
        shown as a multiple of it, otherwise per km². Default None.
    previous : how to name the previous period. Default ``"previous period"``.

    Returns
    -------
    str

    Examples
    --------
    >>> table = pd.DataFrame({"unit_id": ["A", "B", "C"], "n": [30, 10, 20], "harm": [10, 40,
    ...     20]})
    >>> weights = {k: 0.0 for k in COMPONENTS} | {"volume": 1.0, "harm": 1.0}
    >>> explain_rank(rank_units(table, weights=weights).iloc[0])
    '1st (score 0.50): 30 incidents (volume 1.00); harm 10 (0.00)'
    """
    parts = []
    if _shown(row, "volume"):
        parts.append(f"{row['n']:,.0f} incidents (volume {row['component_volume']:.2f})")
    else:
        parts.append(f"{row['n']:,.0f} incidents")
    density = row.get("density_per_km2")
    if _shown(row, "density") and density is not None:
        if borough_density_per_km2:
            text = f"{density / borough_density_per_km2:.1f}x borough density"
        else:
            text = f"{density:,.0f} per km²"
        parts.append(f"{text} (density {row['component_density']:.2f})")
    if _shown(row, "harm"):
        parts.append(f"harm {row['harm']:,.0f} ({row['component_harm']:.2f})")
    share = row.get("repeat_location_share", row.get("repeat_share"))
    if _shown(row, "repeat_locations") and share is not None:
        parts.append(f"{share:.0%} at repeat locations ({row['component_repeat_locations']:.2f})")
    if _shown(row, "repeat_callers"):
        parts.append(f"{row['repeat_caller_share']:.0%} from repeat callers "
                     f"({row['component_repeat_callers']:.2f})")
    if _shown(row, "trend"):
        n_prev = row.get("n_prev", row.get("n_previous"))
        if n_prev is not None and not pd.isna(n_prev):
            change = row["n"] - n_prev
            signal = change
            detail = f"{change:+,.0f} vs {previous}" if change else f"no change vs {previous}"
        else:
            signal = 0.0 if pd.isna(row["trend"]) else row["trend"]
            detail = f"trend {signal:+.1f}"
        # "up"/"down", not "rising": whether a change is more than chance is the trend
        # test's call (hotspots.trends), not this sentence's
        word = "up" if signal > 0 else "down" if signal < 0 else "level"
        parts.append(f"{word}, {detail} (trend {row['component_trend']:.2f})")
    return f"{_ordinal(int(row['rank']))} (score {row['score']:.2f}): " + "; ".join(parts)
