"""Per-area, per-period tables: counts by category, harm, density, repeat locations, change.

police.uk rows are dated by month only; a period that is not whole months includes such
rows only when their whole month lies inside it, and says how many it left out.
"""

from __future__ import annotations

import calendar
import datetime as dt
from dataclasses import dataclass

import geopandas as gpd
import numpy as np
import pandas as pd

from .config import Config
from .schema import POLICE_UK_SOURCE

MEASURES = ("n", "harm", "density_per_km2", "harm_per_km2", "repeat_share", "change",
            "per_1000_residents")


@dataclass(frozen=True)
class Period:
    """Inclusive date range."""

    start: dt.date
    end: dt.date

    @property
    def days(self) -> int:
        return (self.end - self.start).days + 1

    @property
    def is_month(self) -> bool:
        last = calendar.monthrange(self.start.year, self.start.month)[1]
        return self.start.day == 1 and self.end == self.start.replace(day=last)

    @property
    def label(self) -> str:
        if self.is_month:
            return self.start.strftime("%Y-%m")
        return f"{self.start.isoformat()} to {self.end.isoformat()}"

    def previous(self) -> Period:
        """The period of equal length just before (the previous month for a month)."""
        if self.is_month:
            return month_period((self.start - dt.timedelta(days=1)).strftime("%Y-%m"))
        end = self.start - dt.timedelta(days=1)
        return Period(end - dt.timedelta(days=self.days - 1), end)


def month_period(month: str) -> Period:
    """``'2024-08'`` -> 1 to 31 August 2024."""
    try:
        start = dt.datetime.strptime(month, "%Y-%m").date()
    except ValueError as exc:
        raise ValueError(f"month '{month}' is not YYYY-MM (for example 2024-08).") from exc
    last = calendar.monthrange(start.year, start.month)[1]
    return Period(start, start.replace(day=last))


def parse_period(start: str, end: str) -> Period:
    """Inclusive ISO dates -> Period; raises ValueError naming the bad value."""
    try:
        p = Period(dt.date.fromisoformat(start), dt.date.fromisoformat(end))
    except ValueError as exc:
        raise ValueError(f"period {start} to {end}: dates must be YYYY-MM-DD.") from exc
    if p.end < p.start:
        raise ValueError(f"period {start} to {end}: the end is before the start.")
    return p


def in_period(incidents: pd.DataFrame, period: Period) -> np.ndarray:
    """Rows inside the period; month-only (police.uk) rows need their whole month inside."""
    return in_periods(incidents, [period])[0]


def _distinct_dates(incidents: pd.DataFrame) -> tuple[np.ndarray, pd.DatetimeIndex]:
    """Each row's index into its distinct dates (-1: none) and those dates, naive: each
    distinct date parsed once and compared as a datetime (a national year is millions of
    rows and a few hundred dates; days as python dates took seconds at 200k)."""
    codes, days = pd.factorize(incidents["date"])
    date = pd.DatetimeIndex(pd.to_datetime(days))
    return codes, date.tz_localize(None) if date.tz is not None else date


def in_periods(incidents: pd.DataFrame, periods: list[Period]) -> list[np.ndarray]:
    """:func:`in_period` of each of ``periods``, the dates parsed once for all of them."""
    # a row with no date is in no period
    codes, date = _distinct_dates(incidents)
    month_end = date + pd.offsets.MonthEnd(0)
    day_rows = incidents["source"].to_numpy() != POLICE_UK_SOURCE
    out = []
    for period in periods:
        start = pd.Timestamp(period.start)
        after = pd.Timestamp(period.end + dt.timedelta(days=1))
        inside = np.append((date >= start) & (date < after), False)
        whole = inside & np.append(month_end < after, False)
        out.append(inside[codes] if day_rows.all() else
                   np.where(day_rows, inside[codes], whole[codes]))
    return out


def month_only_left_out(incidents: pd.DataFrame, period: Period,
                        inside: np.ndarray | None = None) -> int:
    """police.uk rows whose month overlaps the period without lying wholly inside it
    (``inside``: :func:`in_period` of the rows, when it is already known)."""
    if period.start.day == 1 and period.end == month_period(period.end.strftime("%Y-%m")).end:
        return 0  # whole months: a month that overlaps them lies inside them
    month_rows = incidents["source"].to_numpy() == POLICE_UK_SOURCE
    codes, date = _distinct_dates(incidents)
    overlaps = np.append((date >= pd.Timestamp(period.start.replace(day=1)))
                         & (date < pd.Timestamp(period.end + dt.timedelta(days=1))), False)
    if inside is None:
        inside = in_period(incidents, period)
    return int((month_rows & overlaps[codes] & ~inside).sum())


def repeated_codes(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The values held by 2 or more rows (location keys: repeat locations), as ``(codes,
    repeated)``: each row's index into ``repeated``, or -1 for a value on one row only or
    missing (None, NaN); ``repeated`` in order of first appearance.

    :func:`pandas.factorize` keeping the codes of values that repeat, found on the values'
    hashes first: a national year holds millions of location keys, most on one row, and
    comparing them all as text took seconds; only rows whose hash repeats are compared.
    """
    values = np.asarray(values, dtype=object)
    hashes = np.fromiter(map(hash, values), dtype=np.int64, count=len(values))
    ordered = np.sort(hashes)
    twice = np.unique(ordered[1:][ordered[1:] == ordered[:-1]])
    maybe = np.flatnonzero(pd.Index(twice).get_indexer(hashes) >= 0)
    codes, uniques = pd.factorize(values[maybe])
    keep = np.bincount(codes[codes >= 0], minlength=len(uniques)) >= 2
    out = np.full(len(values), -1, dtype=np.int64)
    held = codes >= 0
    held[held] = keep[codes[held]]
    out[maybe[held]] = (np.cumsum(keep) - 1)[codes[held]]
    return out, np.asarray(uniques, dtype=object)[keep]


def area_summary(incidents: pd.DataFrame, areas: gpd.GeoDataFrame, *, level: str,
                 period: Period, config: Config, rank_by: str = "density_per_km2",
                 residents: pd.Series | None = None) -> tuple[gpd.GeoDataFrame, dict]:
    """Summarise incidents per area for a period, against the previous equal period.

    Parameters
    ----------
    incidents : incidents covering at least ``period`` and ``period.previous()``.
    areas : the layer (``code, name, area_km2, geometry``), EPSG:27700.
    level : a layer key (``"lsoa"``, ``"ward"``, ``"msoa"``...): incidents are grouped by
        their ``<level>_code`` column (:func:`hotspots.geography.layer_codes`).
    rank_by : one of :data:`MEASURES`; rank 1 is the highest, ties broken by code; areas
        whose measure is n/a (no residents) come last.
    residents : usual residents by area code (:func:`hotspots.geography.read_population`);
        ``per_1000_residents`` is NaN (n/a) where it is missing or 0, never 0 or
        infinite.

    Returns
    -------
    (table, meta). The table has one row per area: ``rank, code, name, area_km2, n``,
    ``n_<category>`` per category present, ``harm`` (sum of harm weights),
    ``density_per_km2``, ``harm_per_km2``, ``repeat_locations`` (location keys with 2 or
    more incidents in the period), ``repeat_share`` (share of the area's incidents at
    those keys), ``n_prev``, ``change``, ``change_pct`` (NaN when ``n_prev`` is 0) and
    geometry. ``meta`` has the period labels, totals and what was left out.
    """
    if rank_by not in MEASURES:
        raise ValueError(f"rank_by = '{rank_by}' is not a measure; use one of {MEASURES}.")
    col = f"{level}_code"
    if col not in incidents.columns:
        raise ValueError(f"level = '{level}': the incidents have no '{col}' column; add it "
                         "with hotspots.geography.layer_codes.")
    prev = period.previous()
    now_mask, prev_mask = in_periods(incidents, [period, prev])
    # counted on integer codes (factorize + bincount): a national year is millions of rows,
    # and pandas' groupby sorted and copied every one of them several times
    area_codes = pd.Index(areas["code"])
    # each distinct code looked up once; -1 for a code not in the layer ('': unassigned)
    code_of, codes = pd.factorize(incidents[col].to_numpy(dtype=object))
    area_of = np.append(area_codes.get_indexer(codes), -1)[code_of]
    n_areas = len(area_codes)
    cur_area = area_of[now_mask]
    in_area = cur_area >= 0
    cats = incidents["category"].to_numpy(dtype=object)[now_mask]
    cat_code, cat_names = pd.factorize(cats, sort=True)
    weights = {k: c.weight for k, c in config.categories.items()}
    harm = pd.Series(cat_names, dtype=object).map(weights).fillna(1.0).to_numpy(dtype=float)
    # a key with 2 or more incidents in the period; a row with no key is at none
    key_code, _ = repeated_codes(incidents["location_key"].to_numpy(dtype=object)[now_mask])
    at_repeat = key_code >= 0

    def per_area(values=None) -> np.ndarray:
        return np.bincount(cur_area[in_area], minlength=n_areas,
                           weights=None if values is None else values[in_area])

    pairs = np.unique(cur_area[in_area & at_repeat].astype(np.int64) * (len(key_code) + 1)
                      + key_code[in_area & at_repeat])
    stats = pd.DataFrame({
        "n": per_area(),
        "harm": per_area(harm[cat_code]),
        "repeat_locations": np.bincount(pairs // (len(key_code) + 1), minlength=n_areas),
        "n_at_repeat": per_area(at_repeat.astype(float)),
        "n_prev": np.bincount(area_of[prev_mask][area_of[prev_mask] >= 0],
                              minlength=n_areas),
    }, index=area_codes)
    by_cat = pd.DataFrame(
        np.bincount(cur_area[in_area] * len(cat_names) + cat_code[in_area],
                    minlength=n_areas * len(cat_names)).reshape(n_areas, len(cat_names)),
        index=area_codes, columns=[f"n_{c}" for c in cat_names])
    table = areas.copy()
    table = table.merge(stats, left_on="code", right_index=True, how="left")
    table = table.merge(by_cat, left_on="code", right_index=True, how="left")
    count_cols = ["n", "harm", "repeat_locations", "n_at_repeat", "n_prev", *by_cat.columns]
    table[count_cols] = table[count_cols].fillna(0)
    int_cols = [c for c in count_cols if c != "harm"]
    table[int_cols] = table[int_cols].astype(int)
    table["density_per_km2"] = table["n"] / table["area_km2"]
    table["harm_per_km2"] = table["harm"] / table["area_km2"]
    table["repeat_share"] = np.where(table["n"] > 0, table["n_at_repeat"] / table["n"].clip(1), 0)
    table["change"] = table["n"] - table["n_prev"]
    table["change_pct"] = np.where(table["n_prev"] > 0,
                                   100 * table["change"] / table["n_prev"].clip(1), np.nan)
    res = (residents if residents is not None else pd.Series(dtype=float)).reindex(
        table["code"]).to_numpy(dtype=float)
    table["residents"] = res
    with np.errstate(divide="ignore", invalid="ignore"):
        table["per_1000_residents"] = np.where(res > 0, 1000 * table["n"] / res, np.nan)
    if rank_by == "per_1000_residents" and residents is None:
        raise ValueError("rank_by = 'per_1000_residents' needs residents: configure "
                         "[population] (residents by LSOA).")
    table = table.sort_values([rank_by, "code"], ascending=[False, True], kind="stable",
                              na_position="last")
    table.insert(0, "rank", np.arange(1, len(table) + 1))
    cols = ["rank", "code", "name", "area_km2", "n", *sorted(by_cat.columns), "harm",
            "density_per_km2", "harm_per_km2", "repeat_locations", "n_at_repeat",
            "repeat_share", "n_prev", "change", "change_pct", "residents",
            "per_1000_residents", "geometry"]
    table = gpd.GeoDataFrame(table[cols].reset_index(drop=True), geometry="geometry",
                             crs=areas.crs)
    meta = {
        "period": period.label, "start": period.start.isoformat(),
        "end": period.end.isoformat(), "previous": prev.label, "level": level,
        "rank_by": rank_by, "incidents": int(now_mask.sum()),
        "unassigned": int(np.append(codes == "", False)[code_of[now_mask]].sum()),
        "incidents_previous": int(prev_mask.sum()),
        "month_only_left_out": month_only_left_out(incidents, period, now_mask),
        "categories": [str(c) for c in cat_names],
    }
    return table, meta
