"""The tasking pack job (I/O at the edge), in named steps: read the store and rank the
period's places (:mod:`hotspots.ranking`: what the app shows before any file is written),
build their cards (:mod:`hotspots.placecard`), review last meeting's tasked places, write
the method notes, minimise for partners, write the brief, draw the maps, and write HTML
(:mod:`hotspots.report`), XLSX and CSV.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely

from . import geography, meetings, store
from .analysis import GridSpec
from .assign import assign_codes
from .config import Config
from .errors import HotspotsError
from .export import partner_table, write_table
from .meetings import review_tasked as _review_tasked
from .placecard import PlaceEvidence, partner_cards, place_evidence
from .printmap import print_map
from .rank import explain_rank
from .ranking import Ranked, Ranking, forecast_of, interactive_map, rank_period
from .repeats import community_trigger, concentration
from .report import (
    RANKED_COLUMNS,
    TASKED_COLUMNS,
    brief_section,
    map_section,
    pack_html,
    table_view,
)
from .schema import POLICE_UK_SOURCE
from .selection import area_codes, decision_areas
from .summary import Period
from .trends import (
    emerging_cells,
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


def _emerging(inc: pd.DataFrame, cells, grid: GridSpec, period) -> dict[str, int] | None:
    """Emerging hot spot classes of the grid cells over the last 12 months (None when the
    store holds fewer than the 10 months the classes need)."""
    out = emerging_cells(inc, cells, cell_size_m=grid.cell_size_m, end_month=period.label)
    if out is None:
        return None
    return {k: int(v) for k, v in out["pattern"].value_counts().items() if k != "no pattern"}


def _trigger_flags(rk: Ranked, period: Period, config: Config) -> dict[str, list[str]]:
    """Callers at the ASB Case Review threshold, by place (the full pack only)."""
    # police.uk rows name no caller (community_trigger leaves them out): a year of
    # London's is a million rows
    placed = rk.inc.loc[((rk.inc["unit"] != "") & (rk.inc["source"] != POLICE_UK_SOURCE))
                        .to_numpy()]
    # the Community Trigger looks back one window from the end of the period
    recent = placed.loc[pd.to_datetime(placed["date"])
                        > pd.Timestamp(period.end - dt.timedelta(days=config.trigger_window_days))]
    triggers = community_trigger(recent, threshold=config.trigger_reports,
                                 window_days=config.trigger_window_days, key="caller_key")
    flags: dict[str, list[str]] = {}
    for t in triggers.itertuples():
        for unit in str(t.units).split("; "):
            flags.setdefault(unit.strip(), []).append(
                f"Caller {t.key}: {t.n_in_window} reports within {config.trigger_window_days} "
                f"days ({t.window_start} to {t.window_end}): ASB Case Review threshold reached")
    return flags


def _evidence(rk: Ranked, period: Period, *, config: Config, decisions: pd.DataFrame
              ) -> list[PlaceEvidence]:
    """Step 3: each ranked place's card (:func:`hotspots.placecard.place_evidence`)."""
    flags = _trigger_flags(rk, period, config)
    # the ranked places' rows picked out once (a year of London is a million rows), in
    # the order of source and ref (the store's key) whatever order the store gave them in
    own = rk.inc.loc[rk.inc["unit"].isin(rk.ranked["place_id"])].sort_values(
        ["source", "ref"], kind="stable")
    cards = []
    for _, row in rk.ranked.iterrows():
        r = SimpleNamespace(**row.to_dict())
        facts = [("Per km²", f"{r.density_per_km2:,.0f} ({r.density_per_km2 / rk.density:.1f}x "
                             "the borough)"),
                 ("Previous month / same month last year", _previous(r)),
                 ("Against the borough", _against_borough(r, rk.n_tested)),
                 ("Seen", f"{r.first_seen} to {r.last_seen}")]
        cards.append(place_evidence(
            row, own.loc[own["unit"] == r.place_id], period=period,
            decisions=decisions, geometry=r.geometry, label_of=config.label,
            owner_names=store.OWNERS, outcome_names=store.OUTCOMES, facts=facts,
            flags=flags.get(r.place_id, ()),
            explanation=explain_rank(row, borough_density_per_km2=rk.density,
                                     previous="previous month")))
    return cards


def _last_meeting(decisions: pd.DataFrame, meeting_list, rk: Ranked, period: Period
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


def _method_notes(rk: Ranked, period: Period, config: Config, emerging) -> list[str]:
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
               for src, cat in rk.left_out[key]]
        if gap:
            notes.append(f"Not compared with {other.label}: {', '.join(gap)} (records in "
                         f"only one of {other.label} and {period.label}).")
    if rk.cur["source"].str.startswith("synthetic").any():
        notes.append(SYNTHETIC_NOTE)
    return notes


SYNTHETIC_NOTE = "Council records in this store are SYNTHETIC demonstration data."


def _partner_view(rk: Ranked, tasked, *, config: Config, layers, main: str,
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


#: What a ranked unit is called in the printed map's legend, by the pack's units.
PLACE_LABELS = {"places": "place (cluster of incidents)", "lsoa": "ranked LSOA",
                "cells": "ranked grid cell"}


def _where(label: str, area: str) -> str:
    """A ranked place's "where": its label and the area it lies in, unless the label names
    that area already (an LSOA is labelled with its ward; in an area without wards, with
    its own name) or the area is not known."""
    return label if not area or area in label.split(", ") else f"{label} ({area})"


def _maps(ranking: Ranking, *, config: Config, layers, partner: bool, store_file, cache,
          map_name: str, forecast, n_incidents: int, where: str) -> tuple[str, str]:
    """Step 8: the printed map (static, with insets) and the interactive map page."""
    rk, period = ranking.rk, ranking.period
    if not partner and forecast is None:
        # the same forecast cells as `hotspots detect` draws and the app shows
        forecast = forecast_of(ranking, config=config, store_file=store_file, cache=cache)
    interactive = interactive_map(ranking, config=config, layers=layers, partner=partner,
                                  forecast=forecast, cache=cache)
    places = None if partner else rk.ranked
    outline = gpd.GeoDataFrame(geometry=[geography.study_area(layers, config)],
                               crs=layers[config.boundary_layer].crs)
    pm = print_map(area=outline, wards=layers.get("ward"),
                   raster=rk.raster, places=places, place_label=PLACE_LABELS[ranking.units])
    heading = (f"Where: {where or config.name}, {period.label}"
               + ("" if partner else f" ({n_incidents:,} incidents)"))
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


def _in_areas(ranking: Ranking, tasked, areas, *, config: Config, layers
              ) -> tuple[Ranking, pd.DataFrame | None, int]:
    """The ranked places, the tasked places and the period's incident count in ``areas``
    (codes of the main layer, as the app's area filter; all when empty). Ranks stay the
    borough's ranks."""
    rk = ranking.rk
    if not areas:
        return ranking, tasked, len(rk.cur)
    lay = layers[config.main_layer]
    codes = list(areas)
    ranked = rk.ranked.loc[np.isin(area_codes(rk.ranked, layers, config), codes)]
    if tasked is not None:
        tasked = tasked.loc[np.isin(decision_areas(tasked, lay), codes)]
        tasked = tasked if len(tasked) else None
    n = int(np.isin(area_codes(rk.cur, layers, config), codes).sum())
    return replace(ranking, rk=replace(rk, ranked=ranked)), tasked, n


def build_pack(*, config: Config, store_file: str | Path | None = None,
               out_dir: str | Path = "out", cache: str | Path | None = None,
               partner: bool = False, top: int = 20, units: str = "places",
               period: Period | None = None, categories: list[str] | None = None,
               layers: dict[str, gpd.GeoDataFrame] | None = None,
               ranking: Ranking | None = None, forecast=None, areas=(), where: str = "",
               cell_size_m: float | None = None) -> dict:
    """Write the tasking pack for ``period`` (default: the latest complete month in the
    store), for some ``categories`` or all. ``layers`` (from
    :func:`hotspots.geography.read_layers`) saves reading them again; so does ``ranking``
    (from :func:`rank_period`) the ranking: it then decides the period, categories, units,
    ``top`` and grid (a ``cell_size_m`` that differs from its grid is refused),
    and ``forecast`` (from :func:`forecast_of`) the forecast layer. ``cell_size_m`` is the
    grid's (Gi*, emerging classes, ``units="cells"``), as ``hotspots detect
    --cell-size-m``: default chosen by :func:`hotspots.analysis.resolve_spec`'s rule.

    ``units`` chooses what is ranked: cluster ``places`` (default), ``lsoa`` or grid
    ``cells``. ``areas`` (codes of the main layer; ``where`` names them) narrows the pack
    to the places and tasked places in those areas, as the app's area filter does; the
    places keep their ranks in the whole area.

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
    if partner and (categories or (ranking is not None and ranking.categories)):
        raise HotspotsError(
            "a partner pack covers every category: partner packs for two sets of categories "
            "would give away, by subtraction, counts under the threshold; leave out "
            "--categories (the full pack can be filtered).")
    layers = layers or geography.read_layers(config, cache=cache)
    if (ranking is not None and cell_size_m is not None
            and ranking.rk.grid.cell_size_m != cell_size_m):
        raise ValueError(f"the ranking given is on grid cells of "
                         f"{ranking.rk.grid.cell_size_m:g} m, not the {cell_size_m:g} m asked "
                         "for: rank again with that cell size, or leave it out.")
    ranking = ranking or rank_period(config=config, store_file=store_file, cache=cache,
                                     top=top, units=units, period=period,
                                     categories=categories, layers=layers,
                                     cell_size_m=cell_size_m)
    period, units, decisions = ranking.period, ranking.units, ranking.decisions
    tasked = _last_meeting(decisions, ranking.meetings, ranking.rk, period)
    ranking, tasked, n_incidents = _in_areas(ranking, tasked, areas, config=config,
                                             layers=layers)
    rk = ranking.rk
    ranked = rk.ranked
    main = config.main_layer if config.main_layer in ("ward", "lsoa") else "lsoa"
    area_names = dict(zip(layers[main]["code"], layers[main]["name"], strict=True))
    cards = _evidence(rk, period, config=config, decisions=decisions)
    emerging = _emerging(rk.inc, rk.cells, rk.grid, period)
    notes = _method_notes(rk, period, config, emerging)
    if areas:
        notes.insert(0, f"This pack lists the ranked places in {where or 'the chosen areas'} "
                        f"only ({n_incidents:,} incidents there in {period.label}); their ranks "
                        "are their ranks in the whole area.")
    where_of = {r.place_id: _where(r.label, area_names.get(getattr(r, f"{main}_code"), ""))
                for r in ranked.itertuples()}
    if partner:
        ranked_out, tasked_out = _partner_view(rk, tasked, config=config, layers=layers,
                                               main=main, area_names=area_names)
        cards = partner_cards(ranked_out)
        notes = [_PARTNER_NOTE.format(n=len(rk.places)), TASKED_NOTE, _emerging_note(emerging),
                 *([f"This pack lists the ranked places in {where or 'the chosen areas'} "
                    "only; their ranks are their ranks in the whole area."] if areas else []),
                 *([SYNTHETIC_NOTE] if SYNTHETIC_NOTE in notes else [])]
    else:
        ranked_out = ranked.drop(columns="geometry")
        tasked_out = (tasked.drop(columns=["geometry_wkt", "verdict_brief"])
                      if tasked is not None else None)
    brief = brief_section(cards, n_incidents=n_incidents, period=period.label, where=where_of,
                          tasked=tasked_out, n=config.brief_places, partner=partner,
                          caveats=[SYNTHETIC_NOTE] if SYNTHETIC_NOTE in notes else [])
    stem = period.label + ("" if units == "places" else f"_{units}") + (
        "_partner" if partner else "")
    map_part, page_map = _maps(ranking, config=config, layers=layers, partner=partner,
                               store_file=store_file, cache=cache,
                               map_name=f"pack_{stem}_map.html",
                               forecast=forecast, n_incidents=n_incidents, where=where)
    title = f"{config.name} tasking pack: {period.label}" + (
        f", {where}" if where else "") + (" (partner version)" if partner else "")
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
