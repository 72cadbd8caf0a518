"""Tasking (chair): ranked places for the filters, the map, last meeting's tasked places,
recording decisions, and the pack downloads."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import streamlit as st

from app_pages import common
from hotspots import store
from hotspots.errors import HotspotsError, StoreError

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
places = common.read_csv(meta["files"]["places"])
if f["wards"]:
    places = places.loc[places["ward_code"].isin(f["wards"])]
places = places.reset_index(drop=True)
places.insert(0, "rank", range(1, len(places) + 1))

st.caption(f"{meta['incidents']:,} incidents in {meta['period']}; {meta['places']} places "
           "found; " + "; ".join(meta["chosen"]))
st.subheader(f"Ranked places, {meta['period']}")
names = common.ward_names()
shown = places.assign(ward=places["ward_code"].map(names))[
    ["rank", "place_id", "label", "ward", "n", "harm", "density_per_km2", "repeat_locations",
     "repeat_share", "main_categories", "busiest_weekday", "busiest_hour"]]
st.dataframe(shown, hide_index=True, key="ranked", column_config={
    "n": "Incidents", "harm": st.column_config.NumberColumn("Harm", format="%.0f"),
    "density_per_km2": st.column_config.NumberColumn("Per km²", format="%.0f"),
    "repeat_share": st.column_config.NumberColumn("% at repeat locations", format="percent"),
})
if places.empty:
    st.info("No places in the chosen wards for these filters.")

with st.expander("Map of hotspots and places", expanded=True):
    st.iframe(Path(meta["files"]["map"]), height=520)  # the package's own map, text escaped

pack_meta = common.build_pack(version, False, f["month"], f["categories"])
cat_note = ", ".join(f["categories"]) or "all categories"
with st.expander(f"Tasking pack score and components ({pack_meta['period']}, {cat_note})"):
    ranked = common.read_csv(pack_meta["files"]["csv"])
    cols = ["rank", "place_id", "label", "score"] + [c for c in ranked.columns
                                                     if c.startswith("component_")]
    st.dataframe(ranked[cols + ["trend_label", "patrol_windows"]], hide_index=True)

st.subheader("Last meeting's tasked places")
decisions = common.decisions()
if decisions.empty:
    st.write("No decisions recorded yet.")
else:
    last = decisions["meeting_date"].max()
    st.caption(f"Meeting of {last}")
    st.dataframe(decisions.loc[decisions["meeting_date"] == last,
                               ["place_id", "label", "owner", "actions", "review_date"]]
                 .assign(owner=lambda d: d["owner"].map(store.OWNERS)), hide_index=True)

st.subheader("Record a decision")
latest = common.latest_places()
with st.form("decision", clear_on_submit=True):
    place = st.selectbox("Place (latest detection run, "
                         f"{latest['period'].iloc[0] if len(latest) else 'none'})",
                         latest["place_id"].tolist(),
                         format_func=lambda p: f"{p}: " + latest.set_index("place_id")
                         .at[p, "label"])
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
                                        run_id=meta.get("run_id"))
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
partner_meta = common.build_pack(version, True, f["month"], f["categories"])
files = pack_meta["files"]
c1, c2, c3, c4 = st.columns(4)
c1.download_button("Full pack (HTML)", Path(files["html"]).read_bytes(),
                   Path(files["html"]).name, "text/html", key="dl_pack_html")
c2.download_button("Ranked table (XLSX)", Path(files["xlsx"]).read_bytes(),
                   Path(files["xlsx"]).name, key="dl_pack_xlsx")
c3.download_button("Partner pack (HTML)", Path(partner_meta["files"]["html"]).read_bytes(),
                   Path(partner_meta["files"]["html"]).name, "text/html", key="dl_partner")
c4.download_button("Places (GeoPackage)", Path(meta["files"]["gpkg"]).read_bytes(),
                   Path(meta["files"]["gpkg"]).name, key="dl_gpkg")
