"""Tasking (chair): ranked places for the filters, a place's card, the map, charts, last
meeting's tasked places, recording decisions, and the downloads.

The sidebar filters drive everything here: the period and categories choose the analysis,
the areas (wards) narrow the table, the map (zoomed to them), the counts, the charts, the
decision list and the downloads. Selecting a row of the table, a place on the map or a
place in the list opens its card (the pack's renderer).
"""

from __future__ import annotations

import datetime as dt
import functools
from pathlib import Path

import streamlit as st

from app_pages import common, meeting, placemap
from hotspots import export, maps, pack, selection, store
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

inc = common.incidents(version, common.window_start(month), period.end.isoformat(),
                       cats or None)
inc = selection.in_areas(inc, wards, common.area_codes(inc))  # the 12 months, in the areas
now = inc.loc[in_period(inc, period)]
cell = common.grid_cell_size()  # the analyst's setting; None: chosen by rule
try:
    pack_meta = common.build_pack(version, False, month, cats, cell)
except HotspotsError as exc:  # e.g. no places: the incidents do not concentrate
    pack_meta = None
    st.info(f"No ranked places: {exc}")
ranked = None
if pack_meta is not None:
    ranked = common.read_csv(pack_meta["files"]["csv"])
    ranked = ranked.assign(area=common.area_codes(ranked))
    ranked = selection.in_areas(ranked, wards, ranked["area"]).reset_index(drop=True)
st.caption(f"{len(now):,} incidents in {period.label} in {where}"
           + (f"; {len(ranked)} ranked places there; grid cells of "
              f"{pack_meta['cell_size_m']:g} m" if ranked is not None else "") + ".")

# the place whose card is open: chosen in the table, on the map or in the list
ids = [] if ranked is None else ranked["place_id"].tolist()
label_of: dict[str, str] = {}
if st.session_state.get("detail_place") not in ["", *ids]:
    st.session_state["detail_place"] = ""


def _row_picked() -> None:
    rows = st.session_state["ranked"].selection.rows
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
        components=ranked[components].round(2).values.tolist())
    st.subheader(f"Ranked places, {pack_meta['period']}")
    st.caption("Ranked by a score of named components, each the place's rank percentile "
               "among the places (1 = highest), weighted "
               + ", ".join(f"{k} {v:g}" for k, v in common.config().ranking.items())
               + ". Bars: " + ", ".join(c.removeprefix("component_").replace("_", " ")
                                        for c in components)
               + ". The trend label compares each place with the rest of the borough. "
               "Select a row for the place's card.")
    st.dataframe(
        shown, hide_index=True, key="ranked", on_select=_row_picked,
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
                help="Each component 0-1: " + ", ".join(
                    c.removeprefix("component_").replace("_", " ") for c in components)),
            "main_categories": st.column_config.TextColumn("What happens", width=170),
            "trend_label": st.column_config.TextColumn("Trend", width=100),
        })
    if ranked.empty:
        st.info(f"No ranked places in the chosen {common.area_label(plural=True).lower()} "
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
    if ranked is not None:
        focus = ([common.period_places(version, month, cats).set_index("place_id")
                  .geometry[detail]] if detail else
                 common.layers()[common.main_layer()].set_index("code").geometry
                 .reindex(list(wards)).dropna().tolist())
        page = maps.focus_map_html(Path(pack_meta["files"]["map"]).read_text("utf-8"),
                                   keep=ids if wards else None, selected=detail,
                                   bounds=maps.focus_bounds(focus))
        placemap.place_map(page, key="tasking_map", on_change=_map_picked)
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
st.caption(f"The ranked table and the places follow the filters ({where}); the packs cover "
           "the whole area for the period and categories.")


def _partner_pack(cfg, lay, cache, out) -> bytes:
    """Built when the button is pressed, on Streamlit's download thread (so no st.* call
    in here: what it needs is bound when the page runs)."""
    meta = pack.build_pack(config=cfg, store_file=version[0], out_dir=out, cache=cache,
                           partner=True, period=month_period(f["month"]),
                           categories=list(f["categories"]) or None, layers=lay,
                           cell_size_m=cell)
    return Path(meta["files"]["html"]).read_bytes()


c1, c2, c3, c4 = st.columns(4)
if pack_meta is not None:
    files = pack_meta["files"]
    c1.download_button("Full pack (HTML)", Path(files["html"]).read_bytes(),
                       Path(files["html"]).name, "text/html", key="dl_pack_html")
    c2.download_button("Ranked table (XLSX)",  # written when asked for, not on every rerun
                       functools.partial(export.table_bytes,
                                         {"Ranked places": ranked.drop(columns="area")}, "xlsx"),
                       Path(files["xlsx"]).name, export.MIME["xlsx"], key="dl_pack_xlsx")
    c2.download_button("Ranked places (GeoJSON, for ArcGIS)",
                       functools.partial(common.geojson_bytes, files["geojson"], tuple(ids)),
                       Path(files["geojson"]).name, export.MIME["geojson"],
                       key="dl_pack_geojson")
    partner = functools.partial(_partner_pack, common.config(), common.layers(),
                                common.geodata_cache(),
                                common.work_folder("partner", version, f["month"],
                                                   f["categories"], cell))
    c3.download_button("Partner pack (HTML)", partner,
                       Path(files["html"]).name.replace(".html", "_partner.html"),
                       "text/html", key="dl_partner")
    gpkg = functools.partial(common.places_gpkg, common.place_inputs(version, month, cats),
                             tuple(ids))
    c4.download_button("Places (GeoPackage)", gpkg, f"places_{period.label}.gpkg",
                       export.MIME["gpkg"], key="dl_gpkg")
else:
    c4.download_button("Places (GeoPackage)", Path(meta["files"]["gpkg"]).read_bytes(),
                       Path(meta["files"]["gpkg"]).name, export.MIME["gpkg"], key="dl_gpkg")
