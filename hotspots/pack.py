"""The tasking pack job (I/O at the edge), in named steps: read the store, rank the
period's places, build their cards (:mod:`hotspots.placecard`), review last meeting's
tasked places, write the method notes, minimise for partners, write the brief, draw the
maps, and write HTML (:mod:`hotspots.report`), XLSX and CSV.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, replace
from pathlib import Path
from types import SimpleNamespace

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely

from . import geography, meetings, store
from .analysis import GridSpec, analyse, place_names, resolve_spec
from .assign import assign_codes
from .cluster import place_table
from .config import Config
from .errors import HotspotsError
from .export import partner_table, write_table
from .grid import cell_index
from .jobs import forecast_for, forecast_meta, latest_complete_month
from .maps import hotspot_map, map_html
from .meetings import review_tasked as _review_tasked
from .placecard import PlaceEvidence, partner_cards, place_evidence
from .printmap import print_map
from .rank import explain_rank, rank_units, trend_z
from .repeats import community_trigger, concentration, repeat_summary
from .report import (
    RANKED_COLUMNS,
    TASKED_COLUMNS,
    brief_section,
    map_section,
    pack_html,
    table_view,
)
from .summary import Period, in_period, month_period
from .trends import (
    emerging_cells,
    left_out,
    period_trends,
    stream_label,
    year_before,
)

#: Card text for a place with no counts of its own: a small place overlapping a bigger one
#: whose incidents were all assigned to the bigger one (each incident counts in one place).
NOT_COUNTED = "not counted: its incidents are counted in an overlapping place"


def _previous(r) -> str:
    """The card's line on the plain comparisons."""
    if pd.isna(r.n_previous):
        return NOT_COUNTED
    return (f"{int(r.n_previous)} / {int(r.n_last_year)} (p = {r.p_previous:.3f} for the "
            "change on the previous month)")


def _against_borough(r, n_tested: int) -> str:
    """The card's line on the season-adjusted trend test."""
    if pd.isna(r.expected):
        return NOT_COUNTED
    if r.reference != "rest of borough":
        return (f"the rest of the borough had no incidents in one of the two months: judged "
                f"on the change from the previous month alone (p = {r.p_borough:.3f})")
    return (f"{r.expected:.1f} incidents expected had it moved as the rest of the borough "
            f"did since the previous month (p = {r.p_borough:.3f}; {r.p_adjusted:.3f} allowing "
            f"for the {n_tested} places tested)")


#: The partner version's first note: no figure from counts (the month's total less the
#: listed counts would give a small count away).
_PARTNER_NOTE = (
    "{n} places found; listed in order of the tasking score (volume, density, harm, repeat "
    "locations, repeat callers and trend). Counts under the threshold show as <n and what is "
    "computed from them as [c]; such places are listed last, without a rank. Scores, shares, "
    "previous counts and trends are not shown: with the counts they would give small counts "
    "away.")


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


def _emerging(inc: pd.DataFrame, cells, grid: GridSpec, period) -> dict[str, int] | None:
    """Emerging hot spot classes of the grid cells over the last 12 months (None when the
    store holds fewer than the 10 months the classes need)."""
    out = emerging_cells(inc, cells, cell_size_m=grid.cell_size_m, end_month=period.label)
    if out is None:
        return None
    return {k: int(v) for k, v in out["pattern"].value_counts().items() if k != "no pattern"}


@dataclass(frozen=True)
class _Ranked:
    """What the ranking step found, for the steps after it."""

    cur: pd.DataFrame  # the period's incidents
    inc: pd.DataFrame  # every incident read, with the ``unit`` (place) it falls in
    cells: gpd.GeoDataFrame
    grid: GridSpec  # the lattice of ``cells``
    raster: object
    places: gpd.GeoDataFrame
    trends: pd.DataFrame
    n_tested: int
    ranked: gpd.GeoDataFrame  # the top places, rank_units' columns and geometry
    density: float  # the borough's incidents per km²
    area: object


def _read_store(store_file, period: Period | None, categories):
    """Step 1: the period (default the latest complete month), its incidents and those of
    the previous month and the same month a year before, every decision and the
    meetings."""
    with store.connection(store_file) as conn:
        period = period or month_period(latest_complete_month(conn))
        first = min(period.previous().start, _years_before(period.start)).replace(day=1)
        inc = store.read_incidents(conn, start=first.isoformat(),
                                   end=period.end.isoformat(), categories=categories)
        decisions = store.read_decisions(conn)
        meeting_list = meetings.list_meetings(conn)
    return period, inc, decisions, meeting_list


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


def _rank(inc: pd.DataFrame, period: Period, *, config: Config, layers, units: str,
          cache, top: int, cell_size_m: float | None = None) -> _Ranked:
    """Step 2: find the units of the period (on grid cells of ``cell_size_m``, default
    chosen by :func:`hotspots.analysis.resolve_spec`'s rule), compare each with the
    previous month and the year before (against the rest of the borough), count repeats,
    and rank them."""
    cur = inc.loc[in_period(inc, period)].reset_index(drop=True)
    if len(cur) < 3:
        raise HotspotsError(f"{len(cur)} incident(s) in {period.label}: too few for a pack.")
    area = geography.land_area(layers, config, cache=cache)
    spec = resolve_spec(cur["x"].to_numpy(), cur["y"].to_numpy(), area,
                        cell_size_m=cell_size_m)
    found = analyse(cur, area, config=config, spec=spec, names=place_names(layers))
    cells, raster, places = found.cells, found.raster, found.places
    places = _with_rates(_units(units, cur, places, cells, spec.grid, layers, config), units,
                         config, layers, cache)
    if places.empty:
        raise HotspotsError(f"no places in {period.label}: the incidents do not concentrate "
                            "anywhere; see the area tables from `hotspots summarise`.")
    shapes = places[["place_id", "geometry"]].rename(columns={"place_id": "code"})
    inc = inc.assign(unit=assign_codes(inc["x"].to_numpy(), inc["y"].to_numpy(), shapes))
    placed = inc.loc[inc["unit"] != ""]
    # every incident of the chosen categories, placed or not, makes the borough reference
    # that the trend label is judged against (rows in no place count there only)
    trends = period_trends(inc, period=period, unit="unit")
    n_tested = int((trends["n"] + trends["n_previous"] > 0).sum())
    reps = repeat_summary(placed.loc[in_period(placed, period)], unit="unit")
    table = (places
             .join(trends[["n_previous", "n_last_year", "change_previous", "p_previous",
                           "expected", "p_borough", "p_adjusted", "reference", "trend"]]
                   .rename(columns={"trend": "trend_label"}), on="place_id")
             .join(reps.drop(columns=["n", "repeat_locations"]), on="place_id"))
    # like with like: this month's count of the streams the previous month also has
    previous = table["n_previous"].fillna(0).to_numpy()
    table["trend"] = trend_z(previous + table["change_previous"].fillna(0).to_numpy(), previous)
    ranked = rank_units(table, weights=config.ranking, id_col="place_id").head(top)
    return _Ranked(cur=cur, inc=inc, cells=cells, grid=spec.grid, raster=raster,
                   places=places,
                   trends=trends, n_tested=n_tested, ranked=ranked,
                   density=len(cur) / (area.area / 1e6), area=area)


def _trigger_flags(rk: _Ranked, period: Period, config: Config) -> dict[str, list[str]]:
    """Callers at the ASB Case Review threshold, by place (the full pack only)."""
    placed = rk.inc.loc[rk.inc["unit"] != ""]
    # the Community Trigger looks back one window from the end of the period
    recent = placed.loc[pd.to_datetime(placed["date"]).dt.date
                        > period.end - dt.timedelta(days=config.trigger_window_days)]
    triggers = community_trigger(recent, threshold=config.trigger_reports,
                                 window_days=config.trigger_window_days, key="caller_key")
    flags: dict[str, list[str]] = {}
    for t in triggers.itertuples():
        for unit in str(t.units).split("; "):
            flags.setdefault(unit.strip(), []).append(
                f"Caller {t.key}: {t.n_in_window} reports within {config.trigger_window_days} "
                f"days ({t.window_start} to {t.window_end}): ASB Case Review threshold reached")
    return flags


def _evidence(rk: _Ranked, period: Period, *, config: Config, decisions: pd.DataFrame
              ) -> list[PlaceEvidence]:
    """Step 3: each ranked place's card (:func:`hotspots.placecard.place_evidence`)."""
    flags = _trigger_flags(rk, period, config)
    cards = []
    for _, row in rk.ranked.iterrows():
        r = SimpleNamespace(**row.to_dict())
        facts = [("Per km²", f"{r.density_per_km2:,.0f} ({r.density_per_km2 / rk.density:.1f}x "
                             "the borough)"),
                 ("Previous month / same month last year", _previous(r)),
                 ("Against the borough", _against_borough(r, rk.n_tested)),
                 ("Seen", f"{r.first_seen} to {r.last_seen}")]
        cards.append(place_evidence(
            row, rk.inc.loc[rk.inc["unit"] == r.place_id], period=period,
            decisions=decisions, geometry=r.geometry, label_of=config.label,
            owner_names=store.OWNERS, outcome_names=store.OUTCOMES, facts=facts,
            flags=flags.get(r.place_id, ()),
            explanation=explain_rank(row, borough_density_per_km2=rk.density,
                                     previous="previous month")))
    return cards


def _last_meeting(decisions: pd.DataFrame, meeting_list, rk: _Ranked, period: Period
                  ) -> pd.DataFrame | None:
    """Step 4: the review of the places tasked at the previous meeting (the last one
    before the meeting being prepared, and earlier decisions still open), not the latest
    date on record (:mod:`hotspots.meetings`)."""
    reviewed = meetings.review_decisions(
        decisions, meeting_list, meetings.meeting_being_prepared(meeting_list, dt.date.today()))
    if not len(reviewed):
        return None
    tasked = _review_tasked(reviewed, rk.inc, rk.ranked, period.end)
    tasked["owner"] = tasked["owner"].map(store.OWNERS)
    return tasked


TASKED_NOTE = (
    "Last meeting's tasked places: incidents since the meeting against the same number "
    "of days before it, judged against the change in the rest of the borough (exact "
    "test, p < 0.05); police.uk rows count only when their whole month is in a window.")


def _emerging_note(emerging: dict[str, int] | None) -> str:
    if emerging is None:
        return "Emerging hot spot classes need 10 or more months of data; the store has fewer."
    return ("Emerging hot spots over the last 12 months (Gi* per month on the grid, "
            "Mann-Kendall trend; Esri's classes): "
            + (", ".join(f"{v} {k}" for k, v in sorted(emerging.items())) or "none"))


def _method_notes(rk: _Ranked, period: Period, config: Config, emerging) -> list[str]:
    """Step 5: the appendix: how places are found, ranked and compared."""
    gini = concentration(rk.cells["n"].to_numpy())
    notes = [
        f"{len(rk.cur):,} incidents in {period.label}; {len(rk.places)} places found; ranked "
        "by volume, density, harm, repeat locations, repeat callers and trend (each scaled "
        "to its rank among the places; weights "
        + ", ".join(f"{k} {v:g}" for k, v in config.ranking.items()) + ").",
        f"Concentration across {len(rk.cells):,} grid cells of "
        f"{rk.grid.cell_size_m:g} m: Gini {gini['gini']:.2f}; the top 5% of cells "
        f"hold {gini['top5_share']:.0%} of incidents.",
        "Trends: a place is called rising or falling only when it changed more than the "
        "rest of the borough did (incidents of the same categories), which takes out the "
        "season and borough-wide swings: an exact conditional test of this month against "
        "the previous one with the expected split taken from the rest of the borough, "
        f"p at most 0.05 after a Benjamini-Hochberg adjustment for the {rk.n_tested} places "
        "tested, and the count moved the same way. The previous-month and same-month-last-"
        "year counts and p-values on the cards are the plain comparisons, season included. "
        "Every comparison is like with like: a source's category with records in only one "
        "of the two months is left out of both.",
        TASKED_NOTE,
        "police.uk rows are dated by month and have no time of day: patrol windows and the "
        "hour-by-weekday grids use timed council records only.",
        _emerging_note(emerging),
    ]
    for key, other in (("previous", period.previous()), ("year", year_before(period))):
        gap = [stream_label(src, config.label(cat))
               for src, cat in left_out(rk.inc, period)[key]]
        if gap:
            notes.append(f"Not compared with {other.label}: {', '.join(gap)} (records in "
                         f"only one of {other.label} and {period.label}).")
    if rk.cur["source"].str.startswith("synthetic").any():
        notes.append(SYNTHETIC_NOTE)
    return notes


SYNTHETIC_NOTE = "Council records in this store are SYNTHETIC demonstration data."


def _partner_view(rk: _Ranked, tasked, *, config: Config, layers, main: str,
                  area_names: dict) -> tuple[pd.DataFrame, pd.DataFrame | None]:
    """Step 6 (partner version): everything partners see comes out of the one
    minimisation rule, :func:`hotspots.export.partner_table`."""
    ranked = rk.ranked
    ranked_out = partner_table(ranked.assign(ward=ranked[f"{main}_code"].map(area_names)),
                               min_count=config.partner_min_count)
    tasked_out = None
    if tasked is not None:
        at = shapely.point_on_surface(shapely.from_wkt(tasked["geometry_wkt"]).tolist())
        wards = assign_codes(shapely.get_x(at), shapely.get_y(at), layers[main])
        tasked_out = partner_table(
            tasked.drop(columns="verdict").rename(columns={"verdict_brief": "verdict"})
            .assign(ward=pd.Series(wards).map(area_names).to_numpy()),
            min_count=config.partner_min_count)
    return ranked_out, tasked_out


def _maps(rk: _Ranked, *, config: Config, layers, period: Period, partner: bool,
          store_file, categories, map_name: str) -> tuple[str, str]:
    """Step 8: the printed map (static, with insets) and the interactive map page."""
    meta: dict[str, object] = {"period": period.label,
                               "incidents": None if partner else len(rk.cur),
                               "categories": []}  # the partner map states no total
    forecast = None
    if not partner:  # the same forecast cells as `hotspots detect` draws and the app shows
        forecast, backtest = forecast_for(config=config, period=period, area=rk.area,
                                          store_file=store_file, categories=categories)
        meta.update(forecast=forecast_meta(forecast, backtest, period),
                    concentrated_now=backtest.get("concentrated_now", {}))
    places = None if partner else rk.ranked
    interactive = map_html(hotspot_map(area=layers[config.boundary_layer], meta=meta,
                                       config=config, raster=rk.raster,
                                       cells=None if partner else rk.cells,
                                       places=places, forecast=forecast))
    outline = gpd.GeoDataFrame(geometry=[geography.study_area(layers, config)],
                               crs=layers[config.boundary_layer].crs)
    pm = print_map(area=outline, wards=layers.get("ward"),
                   raster=rk.raster, places=places)
    heading = (f"Where: {config.name}, {period.label}"
               + ("" if partner else f" ({len(rk.cur):,} incidents)"))
    return map_section(pm, heading=heading, interactive=map_name), interactive


def _write(out_dir, stem: str, page: str, page_map: str, table, tasked_out, *,
           config: Config, partner: bool) -> dict:
    """Step 9: the pack, its map on its own, and the ranked table by
    :func:`hotspots.export.write_table` as XLSX and CSV (the full pack also as GeoJSON and
    GeoPackage: ``table`` keeps its shapes; a partner table has none)."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    html_path, map_path = out / f"pack_{stem}.html", out / f"pack_{stem}_map.html"
    html_path.write_text(page, encoding="utf-8")
    map_path.write_text(page_map, encoding="utf-8")
    files: dict[str, object] = {"html": html_path, "map": map_path}
    sheets = {"Ranked places": table}
    if tasked_out is not None:
        sheets["Tasked last meeting"] = tasked_out
    base = out / f"ranked_{stem}"
    labels = {key: config.label(key) for key in config.categories}
    files["xlsx"] = write_table(sheets, f"{base}.xlsx", labels=labels)
    files["csv"] = write_table(table, f"{base}.csv")
    if not partner:
        files["geojson"] = write_table(table, f"{base}.geojson")
        files["gpkg"] = write_table(table, f"{base}.gpkg", name="ranked")
    return {k: str(v) for k, v in files.items()}


def build_pack(*, config: Config, store_file: str | Path | None = None,
               out_dir: str | Path = "out", cache: str | Path | None = None,
               partner: bool = False, top: int = 20, units: str = "places",
               period: Period | None = None, categories: list[str] | None = None,
               layers: dict[str, gpd.GeoDataFrame] | None = None,
               cell_size_m: float | None = None) -> dict:
    """Write the tasking pack for ``period`` (default: the latest complete month in the
    store), for some ``categories`` or all. ``layers`` (from
    :func:`hotspots.geography.read_layers`) saves reading them again. ``cell_size_m`` is
    the grid's (Gi*, emerging classes, ``units="cells"``), as ``hotspots detect
    --cell-size-m``: default chosen by :func:`hotspots.analysis.resolve_spec`'s rule.

    ``units`` chooses what is ranked: cluster ``places`` (default), ``lsoa`` or grid
    ``cells``.

    Files: ``pack_<period>.html`` (or ``pack_<period>_partner.html``: see
    :mod:`hotspots.report` for its pages), its interactive map ``..._map.html``, and the
    ranked table by :func:`hotspots.export.write_table` as
    ``ranked_<period>[_partner].xlsx`` (readable headings) and ``.csv``; the full pack
    also as ``.geojson`` (WGS84) and ``.gpkg`` (EPSG:27700), and its CSV has each place's
    latitude and longitude.

    The ``partner`` version is made from :func:`hotspots.export.partner_table` alone (its
    tables, brief, cards and files), covers every category (packs for two sets of
    categories would give the small counts of the others away by subtraction) and states
    no total.
    """
    if units not in UNIT_KINDS:
        raise ValueError(f"units = '{units}'; use one of {UNIT_KINDS}.")
    if partner and categories:
        raise HotspotsError(
            "a partner pack covers every category: partner packs for two sets of categories "
            "would give away, by subtraction, counts under the threshold; leave out "
            "--categories (the full pack can be filtered).")
    period, inc, decisions, meeting_list = _read_store(store_file, period, categories)
    layers = layers or geography.read_layers(config, cache=cache)
    rk = _rank(inc, period, config=config, layers=layers, units=units, cache=cache, top=top,
               cell_size_m=cell_size_m)
    main = config.main_layer if config.main_layer in ("ward", "lsoa") else "lsoa"
    area_names = dict(zip(layers[main]["code"], layers[main]["name"], strict=True))
    cards = _evidence(rk, period, config=config, decisions=decisions)
    ranked = rk.ranked.assign(patrol_windows=[", ".join(c.windows) or "no times of day"
                                              for c in cards])
    rk = replace(rk, ranked=ranked)
    tasked = _last_meeting(decisions, meeting_list, rk, period)
    emerging = _emerging(rk.inc, rk.cells, rk.grid, period)
    notes = _method_notes(rk, period, config, emerging)
    where = {r.place_id: f"{r.label} ({area_names.get(getattr(r, f'{main}_code'), '')})"
             for r in ranked.itertuples()}
    if partner:
        ranked_out, tasked_out = _partner_view(rk, tasked, config=config, layers=layers,
                                               main=main, area_names=area_names)
        cards = partner_cards(ranked_out)
        notes = [_PARTNER_NOTE.format(n=len(rk.places)), TASKED_NOTE, _emerging_note(emerging),
                 *([SYNTHETIC_NOTE] if SYNTHETIC_NOTE in notes else [])]
    else:
        ranked_out = ranked.drop(columns="geometry")
        tasked_out = (tasked.drop(columns=["geometry_wkt", "verdict_brief"])
                      if tasked is not None else None)
    brief = brief_section(cards, n_incidents=len(rk.cur), period=period.label, where=where,
                          tasked=tasked_out, n=config.brief_places, partner=partner,
                          caveats=[SYNTHETIC_NOTE] if SYNTHETIC_NOTE in notes else [])
    stem = period.label + ("" if units == "places" else f"_{units}") + (
        "_partner" if partner else "")
    map_part, page_map = _maps(rk, config=config, layers=layers, period=period,
                               partner=partner, store_file=store_file, categories=categories,
                               map_name=f"pack_{stem}_map.html")
    title = f"{config.name} tasking pack: {period.label}" + (" (partner version)"
                                                              if partner else "")
    page = pack_html(
        title=title, marking=config.pack_marking, period=period.label,
        produced=dt.date.today().isoformat(), brief=brief, notes=notes,
        ranked=table_view(ranked_out),
        ranked_columns={k: v for k, v in RANKED_COLUMNS.items() if k in ranked_out.columns},
        cards=[] if partner else cards,  # a partner card would repeat its table row
        tasked=tasked_out,
        tasked_columns={k: v for k, v in TASKED_COLUMNS.items()
                        if tasked_out is not None and k in tasked_out.columns},
        map_html=map_part, partner=partner)
    files = _write(out_dir, stem, page, page_map, ranked_out if partner else ranked,
                   tasked_out, config=config, partner=partner)
    return {"period": period.label, "partner": partner, "units": units,
            "places": len(ranked), "emerging": emerging, "cell_size_m": rk.grid.cell_size_m,
            "tasked_reviewed": 0 if tasked is None else len(tasked), "files": files}
