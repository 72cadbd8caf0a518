"""The period's ranked places, as the tasking pack and the app's Tasking page show them
(steps 1 and 2 of :func:`hotspots.pack.build_pack`): read the store, find the period's
places, compare each with the previous month and the year before against the rest of the
area, count repeats, rank them; and the pack's interactive map of them with the forecast
layer. Nothing is written here but the backtest the forecast keeps in the store.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, replace
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd

from . import geography, meetings, store
from .analysis import (
    AnalysisSpec,
    GridSpec,
    analyse,
    gistar_meta,
    place_names,
    resolve_spec,
)
from .assign import assign_codes
from .cluster import place_table
from .config import Config
from .errors import HotspotsError
from .grid import cell_index
from .jobs import analysis_grid, forecast_for, forecast_meta, latest_complete_month
from .maps import hotspot_map, map_html
from .rank import rank_units, trend_z
from .repeats import repeat_summary
from .summary import Period, in_period, month_period
from .trends import compare_periods, patrol_windows, time_profile


def _years_before(day: dt.date, years: int = 1) -> dt.date:
    return day.replace(year=day.year - years, day=min(day.day, 28))


UNIT_KINDS = ("places", "lsoa", "cells")


def _units(kind: str, cur: pd.DataFrame, places, cells, grid: GridSpec, layers,
           config: Config):
    """The units to rank, in the columns of :func:`hotspots.cluster.find_places`; ``cells``
    are on the lattice of ``grid``."""
    if kind == "places":
        return places
    names = {c: n for key in ("ward", "lsoa") if key in layers
             for c, n in zip(layers[key]["code"], layers[key]["name"], strict=True)}
    if kind == "lsoa":
        lsoa = layers["lsoa"]
        pos = pd.Series(np.arange(len(lsoa)), index=lsoa["code"])
        lab = cur["lsoa_code"].map(pos).fillna(-1).to_numpy(dtype=np.int64)
        return place_table(cur, lab, config=config, names=names,
                           polygons=lsoa.geometry.values, ids=list(lsoa["code"]))
    lab = cell_index(cells, cur["x"].to_numpy(), cur["y"].to_numpy(),
                     cell_size_m=grid.cell_size_m, shape=grid.shape)
    pos = pd.Series(np.arange(len(cells)), index=cells["cell_id"])
    lab = np.where(lab >= 0, pos.reindex(lab).fillna(-1).to_numpy(), -1).astype(np.int64)
    return place_table(cur, lab, config=config, names=names, polygons=cells.geometry.values,
                       ids=[f"C{c}" for c in cells["cell_id"]])


def _unit_of(inc: pd.DataFrame, places, units: str) -> np.ndarray:
    """The place (``place_id``, "" for none) of each incident, by the rule the units are
    counted by (:func:`_units`): an LSOA's incidents are those the store assigned to it
    (a police.uk point on an edge goes to police.uk's own LSOA: see
    :func:`hotspots.assign.prefer_own`), a cluster's or a cell's those its polygon holds."""
    if units == "lsoa":
        code = inc["lsoa_code"].to_numpy(dtype=object)
        return np.where(pd.Index(places["place_id"]).get_indexer(code) >= 0, code, "")
    return assign_codes(inc["x"].to_numpy(), inc["y"].to_numpy(),
                        places[["place_id", "geometry"]].rename(columns={"place_id": "code"}))


#: The columns of the incidents of the months the ranking reads (:attr:`Ranked.inc`): what
#: the trends, the cards, the Community Trigger flags, the emerging classes, the review of
#: tasked places and the app's Tasking page (its area filter: the stored codes) read of
#: them. A year of London's rows with every column took four times as long to read; the
#: period's own rows (:attr:`Ranked.cur`) keep every column.
WINDOW_COLUMNS: tuple[str, ...] = ("source", "ref", "category", "period", "date", "hour", "x",
                                   "y", "caller_key", "ward_code", "lsoa_code")


@dataclass(frozen=True)
class Ranked:
    """What the ranking step found, for the steps after it."""

    cur: pd.DataFrame  # the period's incidents, every column, in order of source and ref
    # every incident read (the period, the previous month and the year before), with
    # WINDOW_COLUMNS in the store's own row order and the ``unit`` (place) it falls in
    inc: pd.DataFrame
    cells: gpd.GeoDataFrame
    spec: AnalysisSpec  # what the cells, the raster and the places were found with
    raster: object
    places: gpd.GeoDataFrame
    trends: pd.DataFrame
    # the streams (source, category) each comparison ("previous", "year") leaves out
    # (:func:`hotspots.trends.left_out`)
    left_out: dict[str, list[tuple[str, str]]]
    n_tested: int
    ranked: gpd.GeoDataFrame  # the top places, rank_units' columns and geometry
    density: float  # the borough's incidents per km²
    area: object

    @property
    def grid(self) -> GridSpec:
        """The lattice of ``cells``."""
        return self.spec.grid


def _read_store(store_file, period: Period | None, categories):
    """Step 1: the period (default the latest complete month), the incidents from the
    same month a year before to its end (:data:`WINDOW_COLUMNS`), the period's own with
    every column, every decision and the meetings; and whether the store holds no
    incident older than that window (then the window is every incident up to the period's
    end: the forecast's history)."""
    with store.connection(store_file) as conn:
        period = period or month_period(latest_complete_month(conn))
        first = min(period.previous().start, _years_before(period.start)).replace(day=1)
        inc = store.read_incidents(conn, start=first.isoformat(), end=period.end.isoformat(),
                                   categories=categories, columns=WINDOW_COLUMNS)
        oldest, _ = store.date_range(conn)
        # no row dated before the period can be in it (a police.uk month must lie wholly
        # inside), nor one after it: the rows in_period takes of the window, in key order
        cur = store.read_incidents(conn, start=period.start.isoformat(),
                                   end=period.end.isoformat(), categories=categories)
        decisions = store.read_decisions(conn)
        meeting_list = meetings.list_meetings(conn)
    now = in_period(cur, period)
    if not now.all():
        cur = cur.loc[now].reset_index(drop=True)
    whole = oldest is None or oldest >= first.isoformat()
    return period, inc, cur, decisions, meeting_list, whole


def _with_rates(places, units: str, config: Config, layers, cache):
    """Rates per 1,000 residents for LSOAs (clusters and cells have no residents)."""
    if units != "lsoa":
        return places
    residents, _ = geography.read_population(config, layers, "lsoa", cache=cache)
    if residents is None:
        return places
    res = places["place_id"].map(residents).to_numpy(dtype=float)  # none counted: n/a
    return places.assign(per_1000_residents=np.where(
        res > 0, 1000 * places["n"].to_numpy() / np.where(res > 0, res, 1), np.nan))


def _rank(inc: pd.DataFrame, cur: pd.DataFrame, period: Period, *, config: Config, layers,
          units: str, cache, top: int, cell_size_m: float | None = None) -> Ranked:
    """Step 2: find the units of the period (its incidents ``cur``; on grid cells of
    ``cell_size_m``, default chosen by :func:`hotspots.analysis.resolve_spec`'s rule),
    compare each with the previous month and the year before (the incidents ``inc``,
    against the rest of the borough), count repeats, and rank them."""
    if len(cur) < 3:
        raise HotspotsError(f"{len(cur)} incident(s) in {period.label}: too few for a pack.")
    area = geography.land_area(layers, config, cache=cache)
    spec = resolve_spec(cur["x"].to_numpy(), cur["y"].to_numpy(), area,
                        cell_size_m=cell_size_m)
    found = analyse(cur, area, config=config, spec=spec, names=place_names(layers),
                    grid=analysis_grid(area, spec, cache=cache))
    cells, raster, places = found.cells, found.raster, found.places
    places = _with_rates(_units(units, cur, places, cells, spec.grid, layers, config), units,
                         config, layers, cache)
    if places.empty:
        raise HotspotsError(f"no places in {period.label}: the incidents do not concentrate "
                            "anywhere; see the area tables from `hotspots summarise`.")
    inc = inc.copy(deep=False)  # the rows are not copied: only a column is added
    inc["unit"] = _unit_of(inc, places, units)
    # every incident of the chosen categories, placed or not, makes the borough reference
    # that the trend label is judged against (rows in no place count there only)
    trends, left_out = compare_periods(inc, period=period, unit="unit")
    n_tested = int((trends["n"] + trends["n_previous"] > 0).sum())
    # repeats count the period's rows (their keys: every column), placed by the same rule
    unit = _unit_of(cur, places, units)
    reps = repeat_summary(cur.assign(unit=unit).loc[unit != ""], unit="unit")
    table = (places
             .join(trends[["n_previous", "n_last_year", "change_previous", "p_previous",
                           "expected", "p_borough", "p_adjusted", "reference", "trend"]]
                   .rename(columns={"trend": "trend_label"}), on="place_id")
             .join(reps.drop(columns=["n", "repeat_locations"]), on="place_id"))
    # like with like: this month's count of the streams the previous month also has
    previous = table["n_previous"].fillna(0).to_numpy()
    table["trend"] = trend_z(previous + table["change_previous"].fillna(0).to_numpy(), previous)
    ranked = rank_units(table, weights=config.ranking, id_col="place_id").head(top)
    return Ranked(cur=cur, inc=inc, cells=cells, spec=spec, raster=raster,
                  places=places, trends=trends, left_out=left_out, n_tested=n_tested,
                  ranked=ranked, density=len(cur) / (area.area / 1e6), area=area)


def _patrol_windows(rk: Ranked, period: Period) -> list[str]:
    """Each ranked place's patrol windows, as its card finds them (the period's timed
    incidents in the place, :func:`hotspots.trends.patrol_windows`)."""
    ids = rk.ranked["place_id"].tolist()
    inc = rk.inc.loc[rk.inc["unit"].isin(ids).to_numpy(), ["source", "date", "hour", "unit"]]
    now = inc.loc[in_period(inc, period)] if len(inc) else inc
    by_place = dict(tuple(now.groupby("unit", sort=False)))
    out = []
    for pid in ids:
        profile = time_profile(by_place.get(pid, now.iloc[:0])).to_numpy()
        labels = [w["label"] for w in patrol_windows(profile)] if profile.sum() else []
        out.append(", ".join(labels) or "no times of day")
    return out


@dataclass(frozen=True)
class Ranking:
    """Steps 1 and 2 (read the store, rank the period's places): what the app shows before
    any file is written, and what :func:`build_pack` writes the pack from. ``ranked`` is
    the top places (rank_units' columns, ``patrol_windows`` and shapes in EPSG:27700),
    ``places`` every place found (the pack's rule for the place of an incident)."""

    period: Period
    categories: list[str] | None
    units: str
    decisions: pd.DataFrame
    meetings: list
    rk: Ranked
    #: the store held no incident older than the months read (``rk.inc``): they are every
    #: incident up to the period's end, the forecast's history (:func:`forecast_of`)
    whole_history: bool = False

    @property
    def ranked(self) -> gpd.GeoDataFrame:
        return self.rk.ranked

    @property
    def places(self) -> gpd.GeoDataFrame:
        return self.rk.places


def _read_within(within: Ranking, period: Period | None, categories):
    """Step 1 from a ranking of every category of the period (``within``) instead of the
    store: its period, the incidents of ``categories`` (all: None) among those it read,
    with the columns and order a read of the store gives (a subset keeps the store's row
    order, and :func:`hotspots.store.read_incidents`'s order by source and ref of the
    period's rows), its decisions and meetings."""
    if within.categories is not None or (period or within.period) != within.period:
        raise ValueError(f"within must rank every category of {(period or within.period).label}"
                         f": it ranks {within.categories or 'every category'} of "
                         f"{within.period.label}.")
    inc, cur = within.rk.inc, within.rk.cur
    inc = inc.take(np.arange(len(inc)) if categories is None else
                   np.flatnonzero(inc["category"].isin(list(categories)).to_numpy()))
    del inc["unit"]  # a copy's own column (a third of the time of selecting the others)
    inc.reset_index(drop=True, inplace=True)
    cur = cur.take(np.arange(len(cur)) if categories is None else
                   np.flatnonzero(cur["category"].isin(list(categories)).to_numpy()))
    cur.reset_index(drop=True, inplace=True)
    return within.period, inc, cur, within.decisions, within.meetings, within.whole_history


def rank_period(*, config: Config, store_file: str | Path | None = None,
                cache: str | Path | None = None, top: int = 20, units: str = "places",
                period: Period | None = None, categories: list[str] | None = None,
                layers: dict[str, gpd.GeoDataFrame] | None = None,
                cell_size_m: float | None = None, within: Ranking | None = None) -> Ranking:
    """The ranked places of ``period`` (default: the latest complete month) for some
    ``categories`` or all, as :func:`build_pack` ranks them, on grid cells of
    ``cell_size_m`` (default chosen by rule); nothing is written. ``within``, a ranking of
    every category of the period (any units and cells), gives the incidents, decisions
    and meetings instead of the store (the same rows: a new set of categories is ranked
    without reading the store again)."""
    if units not in UNIT_KINDS:
        raise ValueError(f"units = '{units}'; use one of {UNIT_KINDS}.")
    period, inc, cur, decisions, meeting_list, whole = (
        _read_store(store_file, period, categories) if within is None
        else _read_within(within, period, categories))
    layers = layers or geography.read_layers(config, cache=cache)
    rk = _rank(inc, cur, period, config=config, layers=layers, units=units, cache=cache, top=top,
               cell_size_m=cell_size_m)
    rk = replace(rk, ranked=rk.ranked.assign(patrol_windows=_patrol_windows(rk, period)))
    return Ranking(period=period, categories=categories, units=units, decisions=decisions,
                   meetings=meeting_list, rk=rk, whole_history=whole)


def forecast_of(ranking: Ranking, *, config: Config, store_file=None,
                cache: str | Path | None = None) -> tuple[gpd.GeoDataFrame, dict]:
    """The forecast layer the full pack's map draws (:func:`hotspots.jobs.forecast_for`:
    the backtest kept in the store, run once if missing; its grids kept in the geodata
    ``cache``) and what its legend says. When the ranking read every incident up to the
    period's end (``whole_history``), the forecast draws on those rows: the store is not
    read again."""
    forecast, backtest = forecast_for(config=config, period=ranking.period,
                                      area=ranking.rk.area, store_file=store_file,
                                      categories=ranking.categories, cache=cache,
                                      incidents=ranking.rk.inc if ranking.whole_history
                                      else None)
    return forecast, {"forecast": forecast_meta(forecast, backtest, ranking.period),
                      "concentrated_now": backtest.get("concentrated_now", {})}


def interactive_map(ranking: Ranking, *, config: Config, layers, partner: bool = False,
                    forecast: tuple[gpd.GeoDataFrame, dict] | None = None,
                    cache: str | Path | None = None) -> str:
    """The pack's interactive map page: the density raster, and for the full pack the
    cells, the ranked places and ``forecast`` (from :func:`forecast_of`; None: no
    forecast layer). The partner map states no total and draws neither. ``cache``: the
    geodata cache, whose simplified polygons of the area the map's outline is (as
    ``hotspots detect`` draws it)."""
    rk = ranking.rk
    meta: dict[str, object] = {"period": ranking.period.label,
                               "incidents": None if partner else len(rk.cur),
                               "categories": [], **gistar_meta(rk.spec)}
    if forecast is not None and not partner:
        meta.update(forecast[1])
    return map_html(hotspot_map(area=layers[config.boundary_layer], meta=meta, config=config,
                                raster=rk.raster, cells=None if partner else rk.cells,
                                places=None if partner else rk.ranked,
                                forecast=None if partner or forecast is None else forecast[0],
                                cache=geography.cache_dir(cache)))
