"""The tasking pack job (I/O at the edge): rank the latest complete month's places, build
their evidence cards, review last meeting's tasked places, write HTML, XLSX and CSV.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely

from . import geography, store
from .assign import assign_codes
from .cluster import place_table
from .config import Config
from .errors import HotspotsError
from .export import DERIVED_SUPPRESSED, partner_table, write_csv, write_xlsx
from .grid import cell_index
from .jobs import _analyse, forecast_for, forecast_meta, latest_complete_month
from .maps import hotspot_map, map_html
from .rank import explain_rank, rank_units, trend_z
from .repeats import community_trigger, concentration, repeat_summary
from .report import pack_html
from .summary import Period, in_period, month_period
from .trends import (
    emerging_cells,
    patrol_windows,
    period_trends,
    poisson_change_test,
    relative_change_test,
    stream_label,
    time_profile,
    year_before,
)

RANKED_COLUMNS = {
    "rank": ("Rank", 0), "place_id": ("Place", None), "label": ("Where", None),
    "ward": ("Ward", None),
    "score": ("Score", 2), "n": ("Incidents", 0), "density_per_km2": ("Per km²", 0),
    "per_1000_residents": ("Per 1,000 residents", 1),
    "harm": ("Harm", 1), "repeat_location_share": ("% at repeat locations", 0),
    "repeat_caller_share": ("% from repeat callers", 0), "n_previous": ("Previous month", 0),
    "n_last_year": ("Same month last year", 0),
    "expected": ("Expected from the borough's change", 0), "trend_label": ("Trend", None),
    "patrol_windows": ("Patrol windows", None),
}
TASKED_COLUMNS = {
    "meeting_date": ("Meeting", None), "place_id": ("Place", None), "label": ("Where", None),
    "ward": ("Ward", None),
    "owner": ("Owner", None), "actions": ("Actions", None), "review_date": ("Review", None),
    "n_before": ("Before", 0), "n_after": ("Since", 0), "days": ("Days each", 0),
    "p_value": ("p (exact)", 3), "expected": ("Expected from the borough's change", 0),
    "p_borough": ("p against the borough", 3), "verdict": ("What happened", None),
    "rank_now": ("Rank now", None),
}


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


def _partner_card(r) -> dict:
    """A card of the partner version, from a row of its minimised table only."""
    def shown(v, fmt):
        return v if isinstance(v, str) else format(v, fmt)
    return {"rank": r.rank, "label": r.ward, "place_id": r.place_id,
            "explanation": "", "partner": True, "trend": None,
            "facts": [("Incidents", shown(r.n, ",")),
                      ("Per km²", shown(r.density_per_km2, ",.0f"))],
            "windows": [], "profile": None, "flags": []}


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


def _review_tasked(decisions: pd.DataFrame, inc: pd.DataFrame, ranked: pd.DataFrame,
                   data_end: dt.date) -> pd.DataFrame:
    """Counts inside each tasked place before and since its meeting (equal windows), with
    the exact Poisson test (``p_value``), the same against the rest of the borough
    (``expected``, ``p_borough``: :func:`hotspots.trends.relative_change_test`, so that the
    season and borough-wide swings do not pass for the effect of the tasking), and the rank
    of the place that covers it now. As everywhere, police.uk rows (dated by month) count in
    a window only when their whole month lies inside it (:func:`hotspots.summary.in_period`):
    dated the 1st, they would otherwise all fall before a mid-month meeting.

    The verdict is judged against the borough. The few places tasked at one meeting were
    chosen beforehand, each with its own question, so no multiple-testing adjustment."""
    rows = []
    for d in decisions.itertuples():
        meeting = dt.date.fromisoformat(d.meeting_date)
        days = (data_end - meeting).days + 1
        geom = shapely.from_wkt(d.geometry_wkt)
        inside = shapely.contains_xy(geom, inc["x"].to_numpy(), inc["y"].to_numpy())
        inside |= shapely.intersects_xy(geom, inc["x"].to_numpy(), inc["y"].to_numpy())
        if days <= 0:
            after = before = 0
            p, expected, p_borough = 1.0, 0.0, 1.0
            verdict = brief = "no data since the meeting yet"
        else:
            since = in_period(inc, Period(meeting, data_end))
            earlier = in_period(inc, Period(meeting - dt.timedelta(days=days),
                                            meeting - dt.timedelta(days=1)))
            after, before = int((inside & since).sum()), int((inside & earlier).sum())
            p = poisson_change_test(after, before)
            rest_after = int((~inside & since).sum())
            rest_before = int((~inside & earlier).sum())
            expected, p_borough = relative_change_test(after, before, rest_after, rest_before)
            change = "fewer" if after < before else "more" if after > before else "the same"
            if rest_after == 0 or rest_before == 0:
                judged = ("more than chance" if p_borough < 0.05 else "within chance") + (
                    " (the rest of the borough had no incidents in one window)")
            elif p_borough >= 0.05:
                judged = "in line with the change in the rest of the borough"
            else:
                judged = ("more than" if after > expected else "fewer than") + (
                    " the change in the rest of the borough would give")
            verdict = f"{change} incidents ({after} against {before}); {judged}"
            if rest_after and rest_before and p_borough < 0.05:
                verdict += f" ({expected:.0f})"
            brief = f"{change} incidents; {judged}"  # no counts, for the partner version
        hit = ranked.loc[ranked.geometry.intersects(geom)]
        rows.append({**d._asdict(), "n_before": before, "n_after": after,
                     "days": max(days, 0), "p_value": p, "expected": expected,
                     "p_borough": p_borough, "verdict": verdict, "verdict_brief": brief,
                     "rank_now": (", ".join(str(r) for r in hit["rank"].head(3))
                                  if len(hit) else "not ranked")})
    return pd.DataFrame(rows)


UNIT_KINDS = ("places", "lsoa", "cells")


def _units(kind: str, cur: pd.DataFrame, places, cells, layers, config: Config):
    """The units to rank, in the columns of :func:`hotspots.cluster.find_places`."""
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
    lab = cell_index(cells, cur["x"].to_numpy(), cur["y"].to_numpy())
    pos = pd.Series(np.arange(len(cells)), index=cells["cell_id"])
    lab = np.where(lab >= 0, pos.reindex(lab).fillna(-1).to_numpy(), -1).astype(np.int64)
    return place_table(cur, lab, config=config, names=names, polygons=cells.geometry.values,
                       ids=[f"C{c}" for c in cells["cell_id"]])


def _emerging(inc: pd.DataFrame, cells, period) -> dict[str, int] | None:
    """Emerging hot spot classes of the grid cells over the last 12 months (None when the
    store holds fewer than the 10 months the classes need)."""
    out = emerging_cells(inc, cells, end_month=period.label)
    if out is None:
        return None
    return {k: int(v) for k, v in out["pattern"].value_counts().items() if k != "no pattern"}


def build_pack(*, config: Config, store_file: str | Path | None = None,
               out_dir: str | Path = "out", cache: str | Path | None = None,
               partner: bool = False, top: int = 20, units: str = "places",
               period: Period | None = None, categories: list[str] | None = None,
               layers: dict[str, gpd.GeoDataFrame] | None = None) -> dict:
    """Write the tasking pack for ``period`` (default: the latest complete month in the
    store), for some ``categories`` or all. ``layers`` (from
    :func:`hotspots.geography.read_layers`) saves reading them again.

    ``units`` chooses what is ranked: cluster ``places`` (default), ``lsoa`` or grid
    ``cells``.

    Files: ``pack_<period>.html`` (or ``pack_<period>_partner.html``), and the ranked
    table as ``ranked_<period>[_partner].xlsx`` and ``.csv``.

    The ``partner`` version is made from :func:`hotspots.export.partner_table` alone (its
    tables, cards and files), covers every category (packs for two sets of categories
    would give the small counts of the others away by subtraction) and states no total.
    """
    if units not in UNIT_KINDS:
        raise ValueError(f"units = '{units}'; use one of {UNIT_KINDS}.")
    if partner and categories:
        raise HotspotsError(
            "a partner pack covers every category: partner packs for two sets of categories "
            "would give away, by subtraction, counts under the threshold; leave out "
            "--categories (the full pack can be filtered).")
    conn = store.connect(store_file)
    try:
        period = period or month_period(latest_complete_month(conn))
        first = min(period.previous().start, _years_before(period.start)).replace(day=1)
        inc = store.read_incidents(conn, start=first.isoformat(),
                                   end=period.end.isoformat(), categories=categories)
        decisions = store.read_decisions(conn)
    finally:
        conn.close()
    cur_mask = in_period(inc, period)
    cur = inc.loc[cur_mask].reset_index(drop=True)
    if len(cur) < 3:
        raise HotspotsError(f"{len(cur)} incident(s) in {period.label}: too few for a pack.")
    layers = layers or geography.read_layers(config, cache=cache)
    area = geography.land_area(layers, config, cache=cache)
    cells, raster, places, _ = _analyse(cur, layers, area, config)
    places = _units(units, cur, places, cells, layers, config)
    if units == "lsoa":  # rates need residents: areas, not clusters or cells
        residents, _ = geography.read_population(config, layers, "lsoa", cache=cache)
        if residents is not None:  # no residents counted: n/a, never 0 or infinite
            res = places["place_id"].map(residents).to_numpy(dtype=float)
            places = places.assign(per_1000_residents=np.where(
                res > 0, 1000 * places["n"].to_numpy() / np.where(res > 0, res, 1), np.nan))
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
    density = len(cur) / (area.area / 1e6)
    # the Community Trigger looks back one window from the end of the period
    recent = placed.loc[pd.to_datetime(placed["date"]).dt.date
                        > period.end - dt.timedelta(days=config.trigger_window_days)]
    triggers = community_trigger(recent, threshold=config.trigger_reports,
                                 window_days=config.trigger_window_days, key="caller_key")
    cards, windows = [], []
    main = config.main_layer if config.main_layer in ("ward", "lsoa") else "lsoa"
    area_names = dict(zip(layers[main]["code"], layers[main]["name"], strict=True))
    cur_units = inc.loc[cur_mask, "unit"].to_numpy()
    for r in ranked.itertuples(index=False):
        profile = time_profile(cur.loc[cur_units == r.place_id])
        win = [w["label"] for w in patrol_windows(profile)]
        windows.append(", ".join(win) or "no times of day")
        in_area = getattr(r, f"{main}_code")
        label = (f"{area_names.get(in_area, in_area)} ({r.place_id})" if partner
                 else r.label)
        facts = [("Incidents", f"{r.n:,} ({r.main_categories})"),
                 ("Per km²", f"{r.density_per_km2:,.0f} ({r.density_per_km2 / density:.1f}x "
                             "the borough)"),
                 ("Previous month / same month last year", _previous(r)),
                 ("Against the borough", _against_borough(r, n_tested)),
                 ("Repeat locations", f"{r.repeat_location_share:.0%} of incidents"),
                 ("Repeat callers", f"{r.repeat_callers} callers, {r.repeat_caller_share:.0%} "
                                    "of incidents"),
                 ("Seen", f"{r.first_seen} to {r.last_seen}")]
        flags = []
        if not partner and len(triggers):
            mine_t = triggers.loc[triggers["units"].astype(str).str.contains(r.place_id,
                                                                             regex=False)]
            flags = [f"Caller {t.key}: {t.n_in_window} reports within "
                     f"{config.trigger_window_days} days ({t.window_start} to "
                     f"{t.window_end}): ASB Case Review threshold reached"
                     for t in mine_t.itertuples()]
        explanation = explain_rank(pd.Series(r._asdict()), borough_density_per_km2=density,
                                   previous="previous month")
        cards.append({
            "rank": r.rank, "label": label, "place_id": r.place_id,
            "explanation": explanation, "partner": partner,
            "facts": facts,
            "trend": r.trend_label if isinstance(r.trend_label, str) else "no clear change",
            "windows": win, "profile": profile, "flags": flags})
    ranked = ranked.assign(patrol_windows=windows)
    last_meeting = decisions["meeting_date"].max() if len(decisions) else None
    tasked = (_review_tasked(decisions.loc[decisions["meeting_date"] == last_meeting], inc,
                             ranked, period.end) if last_meeting else None)
    if tasked is not None:
        tasked["owner"] = tasked["owner"].map(store.OWNERS)
    gini = concentration(cells["n"].to_numpy())
    emerging = _emerging(inc, cells, period)
    tasked_note = (
        "Last meeting's tasked places: incidents since the meeting against the same number "
        "of days before it, judged against the change in the rest of the borough (exact "
        "test, p < 0.05); police.uk rows count only when their whole month is in a window.")
    emerging_note = (
        "Emerging hot spots over the last 12 months (Gi* per month on the grid, "
        "Mann-Kendall trend; Esri's classes): "
        + (", ".join(f"{v} {k}" for k, v in sorted(emerging.items())) or "none")
        if emerging is not None else
        "Emerging hot spot classes need 10 or more months of data; the store has fewer.")
    synthetic_note = ("Council records in this store are SYNTHETIC demonstration data."
                      if cur["source"].str.startswith("synthetic").any() else None)
    notes = [
        f"{len(cur):,} incidents in {period.label}; {len(places)} places found; ranked by "
        "volume, density, harm, repeat locations, repeat callers and trend (each scaled to "
        "its rank among the places; weights "
        + ", ".join(f"{k} {v:g}" for k, v in config.ranking.items()) + ").",
        f"Concentration across {len(cells):,} grid cells of {cells.attrs['cell_size_m']:g} m: "
        f"Gini {gini['gini']:.2f}; the top 5% of cells hold {gini['top5_share']:.0%} of "
        "incidents.",
        "Trends: a place is called rising or falling only when it changed more than the "
        "rest of the borough did (incidents of the same categories), which takes out the "
        "season and borough-wide swings: an exact conditional test of this month against "
        "the previous one with the expected split taken from the rest of the borough, "
        f"p at most 0.05 after a Benjamini-Hochberg adjustment for the {n_tested} places "
        "tested, and the count moved the same way. The previous-month and same-month-last-"
        "year counts and p-values on the cards are the plain comparisons, season included. "
        "Every comparison is like with like: a source's category with records in only one "
        "of the two months is left out of both.",
        tasked_note,
        "police.uk rows are dated by month and have no time of day: patrol windows use "
        "timed council records only.",
        emerging_note,
    ]
    for key, other in (("previous", period.previous()), ("year", year_before(period))):
        gap = [stream_label(src, config.label(cat)) for src, cat in trends.attrs["left_out"][key]]
        if gap:
            notes.append(f"Not compared with {other.label}: {', '.join(gap)} (records in "
                         f"only one of {other.label} and {period.label}).")
    if synthetic_note:
        notes.append(synthetic_note)
    if partner:  # everything partners see comes out of the one minimisation rule
        ranked_out = partner_table(ranked.assign(ward=ranked[f"{main}_code"].map(area_names)),
                                   min_count=config.partner_min_count)
        tasked_out = None
        if tasked is not None:
            at = shapely.from_wkt(tasked["geometry_wkt"]).tolist()
            at = shapely.point_on_surface(at)
            wards = assign_codes(shapely.get_x(at), shapely.get_y(at), layers[main])
            tasked_out = partner_table(
                tasked.drop(columns="verdict").rename(columns={"verdict_brief": "verdict"})
                .assign(ward=pd.Series(wards).map(area_names).to_numpy()),
                min_count=config.partner_min_count)
        cards = [_partner_card(r) for r in ranked_out.itertuples(index=False)
                 if r.rank != DERIVED_SUPPRESSED]  # a card of "<5" and "[c]" says nothing
        notes = [_PARTNER_NOTE.format(n=len(places)), tasked_note, emerging_note,
                 *([synthetic_note] if synthetic_note else [])]
    else:
        ranked_out = ranked.drop(columns="geometry")
        tasked_out = (tasked.drop(columns=["geometry_wkt", "verdict_brief"])
                      if tasked is not None else None)
    # the partner map states no total (with the listed counts it gives a small one away)
    meta = {"period": period.label, "incidents": None if partner else len(cur),
            "categories": []}
    forecast = None
    if not partner:  # the same forecast cells as `hotspots detect` draws and the app shows
        forecast, backtest = forecast_for(config=config, period=period, area=area,
                                          store_file=store_file, categories=categories)
        meta.update(forecast=forecast_meta(forecast, backtest, period),
                    concentrated_now=backtest.get("concentrated_now", {}))
    page_map = map_html(hotspot_map(area=layers[config.boundary_layer], meta=meta,
                                    config=config, raster=raster,
                                    cells=None if partner else cells,
                                    places=None if partner else ranked,
                                    forecast=forecast))
    suffix = ("" if units == "places" else f"_{units}") + ("_partner" if partner else "")
    title = f"{config.name} tasking pack: {period.label}" + (" (partner version)"
                                                              if partner else "")
    shares = [c for c in ("repeat_location_share", "repeat_caller_share")
              if c in ranked_out.columns]
    shown = ranked_out.assign(**{c: pd.to_numeric(ranked_out[c], errors="coerce") * 100
                                 if ranked_out[c].map(lambda v: not isinstance(v, str)).all()
                                 else ranked_out[c] for c in shares})
    if "per_1000_residents" in shown.columns:  # an area with no residents counted
        shown = shown.assign(per_1000_residents=shown["per_1000_residents"].astype(object)
                             .where(shown["per_1000_residents"].notna(), "n/a"))
    page = pack_html(
        title=title, subtitle=f"Prepared {dt.date.today().isoformat()} for the tasking "
                              f"meeting; data to {period.end.isoformat()}.",
        notes=notes, ranked=shown,
        ranked_columns={k: v for k, v in RANKED_COLUMNS.items() if k in ranked_out.columns},
        cards=cards, tasked=tasked_out,
        tasked_columns={k: v for k, v in TASKED_COLUMNS.items()
                        if tasked_out is not None and k in tasked_out.columns},
        map_page=page_map, partner=partner)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    html_path = out / f"pack_{period.label}{suffix}.html"
    html_path.write_text(page, encoding="utf-8")
    map_path = out / f"pack_{period.label}{suffix}_map.html"  # the pack's map on its own
    map_path.write_text(page_map, encoding="utf-8")
    sheets = {"Ranked places": ranked_out}
    if tasked_out is not None:
        sheets["Tasked last meeting"] = tasked_out
    xlsx_path = write_xlsx(sheets, out / f"ranked_{period.label}{suffix}.xlsx")
    csv_path = write_csv(ranked_out, out / f"ranked_{period.label}{suffix}.csv")
    return {"period": period.label, "partner": partner, "units": units,
            "places": len(ranked), "emerging": emerging,
            "tasked_reviewed": 0 if tasked is None else len(tasked),
            "files": {"html": str(html_path), "map": str(map_path), "xlsx": str(xlsx_path),
                      "csv": str(csv_path)}}
