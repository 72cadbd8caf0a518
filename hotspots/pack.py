"""The tasking pack job (I/O at the edge): rank the latest complete month's places, build
their evidence cards, review last meeting's tasked places, write HTML, XLSX and CSV.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
import pandas as pd
import shapely

from . import geography, store
from .assign import assign_codes
from .cluster import place_table
from .config import Config
from .errors import HotspotsError
from .export import partner_table, write_csv, write_xlsx
from .gistar import grid_neighbours
from .grid import cell_index
from .jobs import _analyse, latest_complete_month
from .maps import hotspot_map, map_html
from .rank import explain_rank, rank_units, trend_z
from .repeats import community_trigger, concentration, repeat_summary
from .report import pack_html
from .summary import Period, in_period, month_period
from .trends import (
    emerging_hotspots,
    patrol_windows,
    period_trends,
    poisson_change_test,
    time_profile,
)

RANKED_COLUMNS = {
    "rank": ("Rank", 0), "place_id": ("Place", None), "label": ("Where", None),
    "score": ("Score", 2), "n": ("Incidents", 0), "density_per_km2": ("Per km²", 0),
    "harm": ("Harm", 1), "repeat_location_share": ("% at repeat locations", 0),
    "repeat_caller_share": ("% from repeat callers", 0), "n_previous": ("Previous month", 0),
    "n_last_year": ("Same month last year", 0), "trend_label": ("Trend", None),
    "patrol_windows": ("Patrol windows", None),
}
TASKED_COLUMNS = {
    "meeting_date": ("Meeting", None), "place_id": ("Place", None), "label": ("Where", None),
    "owner": ("Owner", None), "actions": ("Actions", None), "review_date": ("Review", None),
    "n_before": ("Before", 0), "n_after": ("Since", 0), "days": ("Days each", 0),
    "p_value": ("p (exact)", 3), "verdict": ("What happened", None),
    "rank_now": ("Rank now", None),
}


def _years_before(day: dt.date, years: int = 1) -> dt.date:
    return day.replace(year=day.year - years, day=min(day.day, 28))


def _review_tasked(decisions: pd.DataFrame, inc: pd.DataFrame, ranked: pd.DataFrame,
                   data_end: dt.date) -> pd.DataFrame:
    """Counts inside each tasked place before and since its meeting (equal windows), with
    the exact Poisson test, and the rank of the place that covers it now."""
    rows = []
    dates = pd.to_datetime(inc["date"]).dt.date
    for d in decisions.itertuples():
        meeting = dt.date.fromisoformat(d.meeting_date)
        days = (data_end - meeting).days + 1
        geom = shapely.from_wkt(d.geometry_wkt)
        inside = shapely.contains_xy(geom, inc["x"].to_numpy(), inc["y"].to_numpy())
        inside |= shapely.intersects_xy(geom, inc["x"].to_numpy(), inc["y"].to_numpy())
        if days <= 0:
            after = before = 0
            p, verdict = 1.0, "no data since the meeting yet"
        else:
            after = int((inside & (dates >= meeting) & (dates <= data_end)).sum())
            start = meeting - dt.timedelta(days=days)
            before = int((inside & (dates >= start) & (dates < meeting)).sum())
            p = poisson_change_test(after, before)
            change = "fewer" if after < before else "more" if after > before else "the same"
            verdict = (f"{change} incidents ({after} against {before}); "
                       + ("more than chance" if p < 0.05 else "within chance"))
        hit = ranked.loc[ranked.geometry.intersects(geom)]
        rows.append({**d._asdict(), "n_before": before, "n_after": after,
                     "days": max(days, 0), "p_value": p, "verdict": verdict,
                     "rank_now": (", ".join(str(r) for r in hit["rank"].head(3))
                                  if len(hit) else "not ranked")})
    return pd.DataFrame(rows)


UNIT_KINDS = ("places", "lsoa", "cells")


def _units(kind: str, cur: pd.DataFrame, places, cells, layers, config: Config):
    """The units to rank, in the columns of :func:`hotspots.cluster.find_places`."""
    if kind == "places":
        return places
    names = {c: n for key in ("ward", "lsoa")
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
    months = pd.period_range(end=pd.Period(period.label, "M"), periods=12, freq="M")
    month = pd.PeriodIndex(inc["period"], freq="M")
    idx = cell_index(cells, inc["x"].to_numpy(), inc["y"].to_numpy())
    keep = (idx >= 0) & month.isin(months)
    if month[keep].nunique() < 10:
        return None
    counts = (pd.crosstab(idx[keep], month[keep]).reindex(index=cells["cell_id"],
                                                           columns=months, fill_value=0))
    out = emerging_hotspots(counts.set_axis(range(len(months)), axis=1),
                            grid_neighbours(cells, cell_shape="square"))
    return {k: int(v) for k, v in out["pattern"].value_counts().items() if k != "no pattern"}


def build_pack(*, config: Config, store_file: str | Path | None = None,
               out_dir: str | Path = "out", cache: str | Path | None = None,
               partner: bool = False, top: int = 20, units: str = "places",
               period: Period | None = None, categories: list[str] | None = None) -> dict:
    """Write the tasking pack for ``period`` (default: the latest complete month in the
    store), for some ``categories`` or all.

    ``units`` chooses what is ranked: cluster ``places`` (default), ``lsoa`` or grid
    ``cells``.

    Files: ``pack_<period>.html`` (or ``pack_<period>_partner.html``), and the ranked
    table as ``ranked_<period>[_partner].xlsx`` and ``.csv``.
    """
    if units not in UNIT_KINDS:
        raise ValueError(f"units = '{units}'; use one of {UNIT_KINDS}.")
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
    layers = geography.read_layers(config, cache=cache)
    area = geography.land_area(layers, config)
    cells, raster, places, _ = _analyse(cur, layers, area, config)
    places = _units(units, cur, places, cells, layers, config)
    if places.empty:
        raise HotspotsError(f"no places in {period.label}: the incidents do not concentrate "
                            "anywhere; see the area tables from `hotspots summarise`.")
    shapes = places[["place_id", "geometry"]].rename(columns={"place_id": "code"})
    inc = inc.assign(unit=assign_codes(inc["x"].to_numpy(), inc["y"].to_numpy(), shapes))
    placed = inc.loc[inc["unit"] != ""]
    trends = period_trends(placed, period=period, unit="unit")
    reps = repeat_summary(placed.loc[in_period(placed, period)], unit="unit")
    table = (places
             .join(trends[["n_previous", "n_last_year", "change_previous", "p_previous",
                           "trend"]].rename(columns={"trend": "trend_label"}), on="place_id")
             .join(reps.drop(columns=["n", "repeat_locations"]), on="place_id"))
    table["trend"] = trend_z(table["n"].to_numpy(), table["n_previous"].fillna(0).to_numpy())
    ranked = rank_units(table, weights=config.ranking, id_col="place_id").head(top)
    density = len(cur) / (area.area / 1e6)
    # the Community Trigger looks back one window from the end of the period
    recent = placed.loc[pd.to_datetime(placed["date"]).dt.date
                        > period.end - dt.timedelta(days=config.trigger_window_days)]
    triggers = community_trigger(recent, threshold=config.trigger_reports,
                                 window_days=config.trigger_window_days, key="caller_key")
    cards, windows = [], []
    ward_names = dict(zip(layers["ward"]["code"], layers["ward"]["name"], strict=True))
    cur_units = inc.loc[cur_mask, "unit"].to_numpy()
    for r in ranked.itertuples(index=False):
        profile = time_profile(cur.loc[cur_units == r.place_id])
        win = [w["label"] for w in patrol_windows(profile)]
        windows.append(", ".join(win) or "no times of day")
        label = (f"{ward_names.get(r.ward_code, r.ward_code)} ({r.place_id})" if partner
                 else r.label)
        facts = [("Incidents", f"{r.n:,} ({r.main_categories})"),
                 ("Per km²", f"{r.density_per_km2:,.0f} ({r.density_per_km2 / density:.1f}x "
                             "the borough)"),
                 ("Previous month / same month last year",
                  f"{int(r.n_previous or 0)} / {int(r.n_last_year or 0)} (p = "
                  f"{r.p_previous:.3f} for the change on the previous month)"),
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
        if partner:  # totals at or above the threshold only; no small counts anywhere
            small = r.n < config.partner_min_count
            facts = [("Incidents", f"<{config.partner_min_count}" if small else f"{r.n:,}"),
                     ("Per km² against the borough",
                      "[c]" if small else f"{r.density_per_km2 / density:.1f}x")]
            explanation = f"Rank {r.rank} by the tasking score ({r.score:.2f})."
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
    notes = [
        f"{len(cur):,} incidents in {period.label}; {len(places)} places found; ranked by "
        "volume, density, harm, repeat locations, repeat callers and trend (each scaled to "
        "its rank among the places; weights "
        + ", ".join(f"{k} {v:g}" for k, v in config.ranking.items()) + ").",
        f"Concentration across {len(cells):,} grid cells of {cells.attrs['cell_size_m']:g} m: "
        f"Gini {gini['gini']:.2f}; the top 5% of cells hold {gini['top5_share']:.0%} of "
        "incidents.",
        "Trends: exact test for the difference of two Poisson counts; a change is called "
        "rising or falling only when p < 0.05 against the previous month.",
        "police.uk rows are dated by month and have no time of day: patrol windows use "
        "timed council records only.",
        ("Emerging hot spots over the last 12 months (Gi* per month on the grid, "
         "Mann-Kendall trend; Esri's classes): "
         + (", ".join(f"{v} {k}" for k, v in sorted(emerging.items())) or "none")
         if emerging is not None else
         "Emerging hot spot classes need 10 or more months of data; the store has fewer."),
    ]
    if (cur["source"].str.startswith("synthetic")).any():
        notes.append("Council records in this store are SYNTHETIC demonstration data.")
    if partner:
        # category shares and busiest times of a small place can imply counts under the
        # threshold: the partner table keeps totals, rates and components only
        ranked_out = partner_table(ranked.drop(columns=[
            "geometry", "main_categories", "busiest_hour", "busiest_weekday", "first_seen",
            "last_seen"]).assign(label=[c["label"] for c in cards]),
            min_count=config.partner_min_count)
        tasked_out = (partner_table(tasked.drop(columns=["geometry_wkt", "actions"]),
                                    min_count=config.partner_min_count)
                      if tasked is not None else None)
    else:
        ranked_out = ranked.drop(columns="geometry")
        tasked_out = tasked.drop(columns="geometry_wkt") if tasked is not None else None
    meta = {"period": period.label, "incidents": len(cur), "categories": []}
    map_places = ranked.assign(label=[c["label"] for c in cards]) if partner else ranked
    page_map = map_html(hotspot_map(area=layers[config.boundary_layer], meta=meta,
                                    config=config, raster=raster,
                                    cells=None if partner else cells,
                                    places=None if partner else map_places))
    suffix = ("" if units == "places" else f"_{units}") + ("_partner" if partner else "")
    title = f"{config.name} tasking pack: {period.label}" + (" (partner version)"
                                                              if partner else "")
    shares = [c for c in ("repeat_location_share", "repeat_caller_share")
              if c in ranked_out.columns]
    shown = ranked_out.assign(**{c: pd.to_numeric(ranked_out[c], errors="coerce") * 100
                                 if ranked_out[c].map(lambda v: not isinstance(v, str)).all()
                                 else ranked_out[c] for c in shares})
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
    sheets = {"Ranked places": ranked_out}
    if tasked_out is not None:
        sheets["Tasked last meeting"] = tasked_out
    xlsx_path = write_xlsx(sheets, out / f"ranked_{period.label}{suffix}.xlsx")
    csv_path = write_csv(ranked_out, out / f"ranked_{period.label}{suffix}.csv")
    return {"period": period.label, "partner": partner, "units": units,
            "places": len(ranked), "emerging": emerging,
            "tasked_reviewed": 0 if tasked is None else len(tasked),
            "files": {"html": str(html_path), "xlsx": str(xlsx_path), "csv": str(csv_path)}}
