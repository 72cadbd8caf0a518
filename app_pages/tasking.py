"""Tasking (chair): ranked places for the filters, a place's card, the map, charts, last
meeting's tasked places, recording decisions, and the downloads.

The sidebar filters drive everything here: the period and categories choose the analysis,
the areas (wards) narrow the table, the map (zoomed to them), the counts, the charts, the
decision list and the downloads. Selecting a row of the table, a place on the map or a
place in the list opens its card (the pack's renderer).

Nothing is written on a rerun: the ranking is kept in memory, the forecast layer is drawn
when its backtest is ready (a worker thread started once the page is drawn, so as not to
slow it; the map says so meanwhile and carries no forecast figure), and the packs are
built when a download is asked for. On a narrow screen (a phone) the table shows fewer
columns.
"""

from __future__ import annotations

import datetime as dt
import functools
from pathlib import Path

import pandas as pd
import streamlit as st

from app_pages import common, meeting, placemap
from hotspots import export, maps, selection, store
from hotspots.errors import HotspotsError, StoreError
from hotspots.summary import in_period, month_period

common.require(*common.FULL_ROLES)
f = common.filters()
version = common.store_version()
st.title("Tasking")
if not f["month"]:
    st.info("The store has no incidents yet: load exports on the Data page.")
    st.stop()
month, cats, wards = f["month"], f["categories"], f["wards"]
period = month_period(month)
names = common.area_names()
where = ", ".join(names.get(w, w) for w in wards) or "the whole area"

cell = common.grid_cell_size()  # the analyst's setting; None: chosen by rule
try:
    rk = common.ranking(version, month, cats)  # on the cell size set
except HotspotsError as exc:  # e.g. no places: the incidents do not concentrate
    rk = None
    st.info(f"No ranked places: {exc}")
inc = (common.window_incidents(version, month, cats) if rk is not None else
       common.incidents(version, common.window_start(month), period.end.isoformat(),
                        cats or None))
inc = selection.in_areas(inc, wards, common.area_codes(inc))  # the 12 months, in the areas
now = inc.loc[in_period(inc, period)]
ranked = None
if rk is not None:
    ranked = pd.DataFrame(rk.ranked.drop(columns="geometry")).assign(
        area=common.area_codes(rk.ranked))
    ranked = selection.in_areas(ranked, wards, ranked["area"]).reset_index(drop=True)
st.caption(f"{len(now):,} incidents in {period.label} in {common.md(where)}"
           + (f"; {len(ranked)} ranked places there; grid cells of "
              f"{rk.rk.grid.cell_size_m:g} m" if ranked is not None and rk is not None
              else "") + ".")

#: Which ranked table shows: four columns up to 640 px wide (a phone), the full one above.
NARROW_CSS = """<style>
.st-key-ranked_narrow {display: none;}
@media (max-width: 640px) {
  .st-key-ranked_narrow {display: block;}
  .st-key-ranked_wide {display: none;}
}
</style>"""


#: The trend label in the narrow table.
TREND_SHORT = {"rising": "↑", "falling": "↓", "no clear change": "–"}


@st.fragment(run_every=2)
def _forecast_wait(job) -> None:
    """Rerun the page when the forecast layer is ready (checked every 2 s)."""
    if job.done():
        st.rerun()


# the place whose card is open: chosen in the table, on the map or in the list
ids = [] if ranked is None else ranked["place_id"].tolist()
label_of: dict[str, str] = {}
if st.session_state.get("detail_place") not in ["", *ids]:
    st.session_state["detail_place"] = ""


def _row_picked(key: str) -> None:
    rows = st.session_state[key].selection.rows
    if rows:
        st.session_state["detail_place"] = ids[rows[0]]


def _map_picked() -> None:
    place = placemap.clicked("tasking_map")
    if place in ids:
        st.session_state["detail_place"] = place


if ranked is not None:
    components = [c for c in ranked.columns if c.startswith("component_")]
    shown = ranked.assign(
        area=ranked["area"].map(names),
        where=ranked["label"] + " (" + ranked["area"].map(names).fillna("") + ")",
        components=ranked[components].round(2).values.tolist(),
        trend_short=ranked["trend_label"].map(TREND_SHORT).fillna(ranked["trend_label"]))
    names_of = [export.component_name(c.removeprefix("component_")) for c in components]
    st.subheader(f"Ranked places, {rk.period.label}")
    st.caption("Ranked by a score of named components, each the place's rank percentile "
               "among the places (1 = highest), weighted "
               + ", ".join(f"{export.component_name(k)} {v:g}"
                           for k, v in common.config().ranking.items())
               + ". Bars: " + ", ".join(names_of)
               + ". The trend label compares each place with the rest of the borough. "
               "Select a row for the place's card.")
    st.html(NARROW_CSS)  # fixed CSS only: which of the two tables shows at this width
    with st.container(key="ranked_narrow"):  # a phone: four columns, no sideways scroll
        st.dataframe(
            shown, hide_index=True, key="ranked_small",
            on_select=functools.partial(_row_picked, "ranked_small"),
            selection_mode="single-row", width="stretch",
            column_order=["rank", "where", "n", "trend_short"],
            column_config={
                "rank": st.column_config.NumberColumn("#", width=30),
                "where": st.column_config.TextColumn("Where", width=170),
                "n": st.column_config.NumberColumn("Incid.", width=50, help="Incidents"),
                "trend_short": st.column_config.TextColumn(
                    "Trend", width=50, help="↑ rising, ↓ falling, – no clear change "
                                            "(against the rest of the borough)")})
    st.container(key="ranked_wide").dataframe(
        shown, hide_index=True, key="ranked",
        on_select=functools.partial(_row_picked, "ranked"),
        selection_mode="single-row", width="stretch",
        column_order=["rank", "where", "n", "score", "components", "main_categories",
                      "trend_label"],
        column_config={
            "rank": st.column_config.NumberColumn("Rank", width=45),
            "where": st.column_config.TextColumn("Where", width=170),
            "n": st.column_config.NumberColumn("Incidents", width=70),
            "score": st.column_config.ProgressColumn("Score", min_value=0, max_value=1,
                                                     format="%.2f", width=90),
            "components": st.column_config.BarChartColumn(
                "Components", y_min=0, y_max=1, width=110,
                help="Each component 0-1: " + ", ".join(names_of)),
            "main_categories": st.column_config.TextColumn("What happens", width=170),
            "trend_label": st.column_config.TextColumn("Trend", width=100),
        })
    if ranked.empty:
        st.info(f"No ranked places in the chosen {common.area_noun(plural=True)} "
                "for these filters.")
    label_of = dict(zip(ranked["place_id"], ranked["rank"].astype(str) + ". "
                        + ranked["label"], strict=True))
    detail = st.selectbox("Place card", ["", *ids], key="detail_place",
                          format_func=lambda p: label_of.get(p, "(none: select a row or a "
                                                                "place on the map)"))
    if detail:
        row = ranked.loc[ranked["place_id"] == detail].iloc[0]
        # in a frame of its own: st.html's sanitiser drops the card's SVG (grid, sparkline)
        st.iframe(common.place_card(version, month, cats, detail,
                                    row.drop(labels="area").to_dict()), height="content")

with st.expander("Map of hotspots and places", expanded=True):
    # the package's own map, text escaped; numbered by the ranking; only the places in the
    # chosen areas are drawn, and it zooms to the place open or the areas chosen
    detail = st.session_state.get("detail_place") or None
    if rk is not None:
        # started at the end of the page (the table and map first), drawn when ready
        job = common.forecast(version, month, cats, start=False)
        failed = job is not None and job.done() and job.exception() is not None
        ready = job is not None and job.done() and not failed
        # the place open, else the areas chosen, else the whole area
        bounds = (maps.focus_bounds([rk.places.set_index("place_id").geometry[detail]])
                  if detail else common.areas_bounds(wards))
        page = maps.focus_map_html(common.tasking_map(version, month, cats, ready, cell),
                                   keep=ids if wards else None, selected=detail,
                                   bounds=bounds)
        placemap.place_map(page, key="tasking_map", on_change=_map_picked)
        if failed:
            st.warning(f"No forecast layer: {job.exception()}")
            common.forget_forecast(version, month, cats)  # the next visit tries again
        elif not ready:
            st.caption("The forecast layer is being drawn" + (
                "" if common.forecast_kept(version, month, cats) else
                " (first a backtest scores the methods on these categories, once per set "
                "of categories)") + ": it is added to the map when ready. Meanwhile the "
                "map carries no forecast.")
    else:
        meta = common.detect(version, month, cats, cell)
        st.iframe(Path(meta["files"]["map"]), height=520)

if len(now):
    c1, c2 = st.columns(2)
    c1.markdown(f"**What: incidents by category, {period.label}**")
    c1.bar_chart(selection.category_mix(now, common.config().label), x="category", y="n",
                 horizontal=True, sort="-n", x_label="", y_label="incidents", height=280)
    c2.markdown(f"**When: incidents by month, the 12 months to {period.label}**")
    c2.bar_chart(selection.monthly_series(inc, month), x="month", y="n", x_label="",
                 y_label="incidents", height=280)

meeting.show(version, f)  # the previous meeting's review; edit and close decisions

st.subheader("Record a decision")
with st.form("decision", clear_on_submit=True):
    place = st.selectbox(f"Place ({period.label}, as ranked above)", ids,
                         format_func=lambda p: label_of.get(p, p))
    owner = st.selectbox("Owner", list(store.OWNERS), format_func=store.OWNERS.get)
    actions = st.text_area("Actions")
    meeting = st.date_input("Meeting date", dt.date.today())
    review = st.date_input("Review date", dt.date.today() + dt.timedelta(days=28))
    if st.form_submit_button("Record decision"):
        conn = store.connect(common.store_file())
        try:
            did = store.record_decision(
                conn, place_id=place or "", owner=owner, actions=actions,
                review_date=review.isoformat(), meeting_date=meeting.isoformat(),
                run_id=common.record_run(version, month, cats) if place else None,
                user=common.user())
        except StoreError as exc:
            st.error(str(exc))
        else:
            st.session_state["decision_msg"] = f"Decision {did} recorded."
        finally:
            conn.close()
        if "decision_msg" in st.session_state:
            st.rerun()  # show the decision above with last meeting's
if "decision_msg" in st.session_state:
    st.success(st.session_state.pop("decision_msg"))

st.subheader("Downloads")
st.caption("Every download follows the filters: the places in "
           + (f"{common.md(where)}, with their ranks in the whole area" if wards
              else "the whole area")
           + ". The packs are built when asked for (a few seconds); the partner pack covers "
           "every category.")
c1, c2, c3, c4 = st.columns(4)
if rk is not None:
    kept = ranked["place_id"].tolist()
    geo = rk.ranked.set_index("place_id").loc[kept].reset_index()
    built = {"config": common.config(), "store_file": version[0],
             "cache": common.geodata_cache(), "layers": common.layers(), "areas": wards,
             "where": where if wards else "", "cell_size_m": cell}
    full = functools.partial(  # draws the page's forecast job's layer, waiting for it
        common.pack_download, common.pack_folder(version, False, month, cats, wards, cell),
        "html", forecast_job=common.forecast(version, month, cats), ranking=rk, **built)
    c1.download_button("Full pack (HTML)", full, f"pack_{period.label}.html", "text/html",
                       key="dl_pack_html")
    c2.download_button("Ranked table (XLSX)",  # written when asked for, not on every rerun
                       functools.partial(export.table_bytes,
                                         {"Ranked places": ranked.drop(columns="area")}, "xlsx"),
                       f"ranked_{period.label}.xlsx", export.MIME["xlsx"], key="dl_pack_xlsx")
    c2.download_button("Ranked places (GeoJSON, for ArcGIS)",
                       functools.partial(export.table_bytes, geo, "geojson"),
                       f"ranked_{period.label}.geojson", export.MIME["geojson"],
                       key="dl_pack_geojson")
    partner = functools.partial(
        common.pack_download, common.pack_folder(version, True, month, (), wards, cell), "html",
        partner=True, period=period, **built)
    c3.download_button("Partner pack (HTML)", partner, f"pack_{period.label}_partner.html",
                       "text/html", key="dl_partner")
    c4.download_button("Places (GeoPackage)",
                       functools.partial(common.places_gpkg, rk.places, tuple(ids)),
                       f"places_{period.label}.gpkg", export.MIME["gpkg"], key="dl_gpkg")
else:
    c4.download_button("Places (GeoPackage)", Path(meta["files"]["gpkg"]).read_bytes(),
                       Path(meta["files"]["gpkg"]).name, export.MIME["gpkg"], key="dl_gpkg")
if rk is not None and not ready and not failed:  # started by now (the page is drawn)
    _forecast_wait(common.forecast(version, month, cats))
