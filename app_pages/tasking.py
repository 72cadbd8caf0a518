"""Tasking (chair): ranked places for the filters, the map, last meeting's tasked places,
recording decisions, and the pack downloads."""

from __future__ import annotations

import datetime as dt
import functools
from pathlib import Path

import streamlit as st

from app_pages import common, meeting
from hotspots import export, pack, store
from hotspots.errors import HotspotsError, StoreError
from hotspots.summary import month_period

common.require(*common.FULL_ROLES)
f = common.filters()
version = common.store_version()
st.title("Tasking")
if not f["month"]:
    st.info("The store has no incidents yet: load exports on the Data page.")
    st.stop()

try:
    meta = common.detect(version, f["month"], f["categories"])
except HotspotsError as exc:
    st.warning(str(exc))
    st.stop()
st.caption(f"{meta['incidents']:,} incidents in {meta['period']}; {meta['places']} places "
           "found; " + "; ".join(meta["chosen"]))
fc = meta["forecast"]
st.caption(f"Forecast for {fc['month']} (green outlines on the map, the same cells as "
           f"`hotspots detect` writes): {fc['description']} on {fc['cell_size_m']:.0f} m cells, "
           f"top 5% of the area; PAI {fc['pai_5pct']:.2f}, hit rate {fc['hit_rate_5pct']:.0%} "
           f"on {fc['test_months']} test months" + (f" ({fc['note']})" if fc["fallback"] else
                                                     "") + ". Density, Gi* cells and places "
           "show where incidents are concentrated now; they are not forecasts.")
names = common.area_names()
try:
    pack_meta = common.build_pack(version, False, f["month"], f["categories"])
except HotspotsError as exc:  # e.g. no places: the incidents do not concentrate
    pack_meta = None
    st.info(f"No ranked places: {exc}")
if pack_meta is not None:
    ranked = common.read_csv(pack_meta["files"]["csv"])
    ranked = ranked.assign(area=common.area_codes(ranked))
    if f["wards"]:
        ranked = ranked.loc[ranked["area"].isin(f["wards"])]
    components = [c for c in ranked.columns if c.startswith("component_")]
    shown = ranked.assign(area=ranked["area"].map(names))[
        ["rank", "place_id", "label", "area", "score", "n", "main_categories",
         "density_per_km2", "harm", "repeat_location_share", "repeat_caller_share",
         "n_previous", "trend_label", "patrol_windows", *components]]
    st.subheader(f"Ranked places, {pack_meta['period']}")
    st.caption("Ranked by a score of named components, each the place's rank percentile "
               "among the places (1 = highest), weighted "
               + ", ".join(f"{k} {v:g}" for k, v in common.config().ranking.items())
               + ". The trend label compares each place with the rest of the borough.")
    st.dataframe(shown, hide_index=True, key="ranked", column_config={
        "rank": "Rank", "place_id": "Place", "label": "Where", "area": common.area_label(),
        "score": st.column_config.NumberColumn("Score", format="%.2f"),
        "n": "Incidents", "main_categories": "What happens",
        "density_per_km2": st.column_config.NumberColumn("Per km²", format="%.0f"),
        "harm": st.column_config.NumberColumn("Harm", format="%.0f"),
        "repeat_location_share": st.column_config.NumberColumn("At repeat locations",
                                                               format="percent"),
        "repeat_caller_share": st.column_config.NumberColumn("From repeat callers",
                                                             format="percent"),
        "n_previous": "Previous month", "trend_label": "Trend",
        "patrol_windows": "Patrol windows",
        **{c: st.column_config.NumberColumn(c.removeprefix("component_").replace("_", " "),
                                            format="%.2f") for c in components},
    })
    if ranked.empty:
        st.info(f"No ranked places in the chosen {common.area_label(plural=True).lower()} "
                "for these filters.")

with st.expander("Map of hotspots and places", expanded=True):
    # the package's own map, text escaped; numbered by the ranking above when there is one
    st.iframe(Path((pack_meta or meta)["files"]["map"]), height=520)

meeting.show(version, f)  # the previous meeting's review; edit and close decisions

st.subheader("Record a decision")
run = common.run_places(meta.get("run_id")).set_index("place_id")  # the places on screen
order = [p for p in (ranked["place_id"] if pack_meta is not None else []) if p in run.index]
order += [p for p in run.index if p not in order]
rank_of = dict(zip(ranked["place_id"], ranked["rank"], strict=True)) if pack_meta else {}
with st.form("decision", clear_on_submit=True):
    place = st.selectbox(f"Place ({meta['period']}, as ranked above)", order,
                         format_func=lambda p: (f"{rank_of[p]}. " if p in rank_of else "")
                         + f"{run.at[p, 'label']} ({p})")
    owner = st.selectbox("Owner", list(store.OWNERS), format_func=store.OWNERS.get)
    actions = st.text_area("Actions")
    meeting = st.date_input("Meeting date", dt.date.today())
    review = st.date_input("Review date", dt.date.today() + dt.timedelta(days=28))
    if st.form_submit_button("Record decision"):
        conn = store.connect(common.store_file())
        try:
            did = store.record_decision(conn, place_id=place or "", owner=owner,
                                        actions=actions, review_date=review.isoformat(),
                                        meeting_date=meeting.isoformat(),
                                        run_id=meta.get("run_id"), user=common.user())
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


def _partner_pack(cfg, lay, cache, out) -> bytes:
    """Built when the button is pressed, on Streamlit's download thread (so no st.* call
    in here: what it needs is bound when the page runs)."""
    meta = pack.build_pack(config=cfg, store_file=version[0], out_dir=out, cache=cache,
                           partner=True, period=month_period(f["month"]),
                           categories=list(f["categories"]) or None, layers=lay)
    return Path(meta["files"]["html"]).read_bytes()


c1, c2, c3, c4 = st.columns(4)
if pack_meta is not None:
    files = pack_meta["files"]
    c1.download_button("Full pack (HTML)", Path(files["html"]).read_bytes(),
                       Path(files["html"]).name, "text/html", key="dl_pack_html")
    c2.download_button("Ranked table (XLSX)", Path(files["xlsx"]).read_bytes(),
                       Path(files["xlsx"]).name, export.MIME["xlsx"], key="dl_pack_xlsx")
    c2.download_button("Ranked places (GeoJSON, for ArcGIS)",
                       Path(files["geojson"]).read_bytes(), Path(files["geojson"]).name,
                       export.MIME["geojson"], key="dl_pack_geojson")
    partner = functools.partial(_partner_pack, common.config(), common.layers(),
                                common.geodata_cache(),
                                common.work_folder("partner", version, f["month"],
                                                   f["categories"]))
    c3.download_button("Partner pack (HTML)", partner,
                       Path(files["html"]).name.replace(".html", "_partner.html"),
                       "text/html", key="dl_partner")
c4.download_button("Places (GeoPackage)", Path(meta["files"]["gpkg"]).read_bytes(),
                   Path(meta["files"]["gpkg"]).name, export.MIME["gpkg"], key="dl_gpkg")
