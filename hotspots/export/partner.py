"""The partner version of a table: the one partner minimisation rule."""

from __future__ import annotations

import numbers

import numpy as np
import pandas as pd

#: The partner minimisation rule (:func:`partner_table`), column by column. A partner
#: table keeps these columns only; every other column is dropped.
#: Identifiers and facts that hold no count (``ward`` is the ward's name).
PARTNER_KEYS: tuple[str, ...] = ("place_id", "code", "name", "ward", "ward_code",
                                 "lsoa_code", "area_km2", "meeting_date", "owner",
                                 "review_date", "days")
#: Counts: 0 or ``min_count`` and more are shown, 1 to ``min_count - 1`` show ``"<5"``.
PARTNER_COUNTS: tuple[str, ...] = ("n", "n_before", "n_after", "n_at_repeat_locations")
#: Counts that are part of another (part -> whole): the part shows ``"[c]"`` when the whole
#: is suppressed or the rest (whole - part) is from 1 to ``min_count - 1``, since the rest
#: would be worked out.
PARTNER_PARTS: dict[str, str] = {"n_at_repeat_locations": "n"}
#: Values computed from counts: shown only when every count they come from is shown.
PARTNER_DERIVED: dict[str, tuple[str, ...]] = {
    "density_per_km2": ("n",), "per_1000_residents": ("n",), "verdict": ("n_before", "n_after"),
    "repeat_location_share": ("n", "n_at_repeat_locations")}

#: What a cell suppressed because it is derived from a suppressed count shows (the GSS
#: symbol for confidential).
DERIVED_SUPPRESSED = "[c]"


def partner_table(table: pd.DataFrame, *, min_count: int = 5) -> pd.DataFrame:
    """The version of an aggregate table that may circulate to partners: the one partner
    minimisation rule, which every partner output (the partner pack's HTML, CSV and XLSX,
    and the app's Partner page) is made from.

    No value from which a count under ``min_count`` can be worked out is kept:

    * Only the columns of :data:`PARTNER_KEYS`, :data:`PARTNER_COUNTS`,
      :data:`PARTNER_DERIVED` and ``rank`` are kept. Everything else is dropped: text from
      records (street labels, locations, callers, descriptions), ranking components,
      points and scores (percentiles among all units: a tie or a gap pins a neighbour's
      count), harm (weights are published, so harm and ``n`` give the category mix),
      shares (but the share at repeat locations, a derived value), previous counts,
      changes, trends, p-values, expected counts, category
      counts (they subtract from ``n``), busiest times and dates seen.
    * Counts from 1 to ``min_count - 1`` become the text ``"<5"`` (``f"<{min_count}"``);
      0 stays 0 and counts of ``min_count`` or more stay as they are.
    * A count that is part of another (:data:`PARTNER_PARTS`) shows
      :data:`DERIVED_SUPPRESSED` when the whole is suppressed or the rest of the whole is
      from 1 to ``min_count - 1``.
    * A value of :data:`PARTNER_DERIVED` is dropped when a count it comes from is not in
      the table (it cannot be checked), and shows :data:`DERIVED_SUPPRESSED` (``"[c]"``)
      when a count it comes from is suppressed.
    * A row whose ``n`` is suppressed has no rank (``"[c]"``) and comes after the ranked
      rows, in order of ``place_id`` (or ``code``); the other rows keep their order by
      ``rank`` and are numbered 1, 2, ... again, so neither a rank nor a row's position
      shows where a suppressed row stood.

    Parameters
    ----------
    table : an aggregate table, one row per area, cell or place (``rank_units`` output,
        tasked places); not modified. Incident records (a ``ref`` column) are refused.
    min_count : smallest count shown; a whole number of 1 or more. Default 5.

    Returns
    -------
    A new DataFrame (never a GeoDataFrame: shapes are left out) with the kept columns in
    their order; suppressed columns have object dtype.

    Raises
    ------
    ValueError
        for a bad ``min_count`` or a table of incident records.
    """
    if isinstance(min_count, bool) or not isinstance(min_count, numbers.Integral) \
            or min_count < 1:
        raise ValueError(f"min_count must be a whole number of 1 or more; got {min_count!r}.")
    if "ref" in table.columns:
        raise ValueError("table has a 'ref' column, so it holds incident records; a partner "
                         "table holds aggregates only: summarise first (area_summary, "
                         "find_places) and pass that table.")
    kept = set(PARTNER_KEYS) | set(PARTNER_COUNTS) | set(PARTNER_DERIVED) | {"rank"}
    out = pd.DataFrame(table[[c for c in table.columns if c in kept]])
    marker = f"<{min_count}"
    none = pd.Series(False, index=out.index)
    small = {}
    for col in PARTNER_COUNTS:
        if col in out.columns:
            v = pd.to_numeric(out[col], errors="coerce")
            small[col] = (v > 0) & (v < min_count)
            if small[col].any():
                out[col] = pd.Series(np.where(small[col], marker, out[col].astype(object)),
                                     index=out.index, dtype=object)
    for part, whole in PARTNER_PARTS.items():
        if part in out.columns and whole in table.columns:
            rest = pd.to_numeric(table[whole], errors="coerce") - pd.to_numeric(
                table[part], errors="coerce")
            gives = (((rest > 0) & (rest < min_count)) | small.get(whole, none)) \
                & ~small.get(part, none)
            if gives.any():
                out[part] = pd.Series(np.where(gives, DERIVED_SUPPRESSED,
                                               out[part].astype(object)),
                                      index=out.index, dtype=object)
                small[part] = small.get(part, none) | gives
    for col, sources in PARTNER_DERIVED.items():
        if col in out.columns and not set(sources) <= set(table.columns):
            out = out.drop(columns=col)  # a count it comes from cannot be checked
        elif col in out.columns:
            hide = none.copy()
            for src in sources:
                hide |= small.get(src, none)
            if hide.any():
                out[col] = pd.Series(np.where(hide, DERIVED_SUPPRESSED,
                                              out[col].astype(object)),
                                     index=out.index, dtype=object)
    if "rank" in out.columns or "n" in small:
        hidden = small.get("n", none)
        key = next((c for c in ("place_id", "code") if c in out.columns), None)
        ranked = out.loc[~hidden]
        if "rank" in out.columns:
            ranked = ranked.sort_values("rank", kind="stable")
        rest = out.loc[hidden]
        rest = rest.sort_values(key, kind="stable") if key else rest
        if "rank" in out.columns:
            ranked = ranked.assign(rank=np.arange(1, len(ranked) + 1))
            rest = rest.assign(rank=DERIVED_SUPPRESSED)
            out = pd.concat([ranked.astype({"rank": object}), rest])
        else:
            out = pd.concat([ranked, rest])
    return out.reset_index(drop=True)
