"""Patrol map (officer): a ward and a shift; numbered places with their patrol windows
and what happens there. Laid out for a phone and printable on A4."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from app_pages import common
from hotspots.assign import assign_codes
from hotspots.errors import HotspotsError
from hotspots.maps import hotspot_map, map_html
from hotspots.summary import in_period, month_period
from hotspots.trends import patrol_windows, time_profile

SHIFTS = {"Early 07:00-15:00": range(7, 15), "Late 15:00-23:00": range(15, 23),
          "Night 23:00-07:00": (23, 0, 1, 2, 3, 4, 5, 6)}
PRINT_CSS = """<style>
@media print {
  section[data-testid="stSidebar"], header, [data-testid="stToolbar"],
  [data-testid="stSidebarCollapsedControl"] {display: none !important;}
  @page {size: A4; margin: 12mm;}
  .block-container {padding: 0 !important; max-width: 100% !important;}
}
</style>"""

common.require("officer", *common.FULL_ROLES)
st.markdown(PRINT_CSS, unsafe_allow_html=True)  # fixed CSS only; no record text
st.title("Patrol map")
f = common.filters()
version = common.store_version()
if not f["month"]:
    st.info("The store has no incidents yet.")
    st.stop()
names = common.ward_names()
wards = list(f["wards"]) or sorted(names, key=names.get)
c1, c2 = st.columns(2)
try:
    found = common.places(version, f["month"], f["categories"])
except HotspotsError as exc:
    st.warning(str(exc))
    st.stop()
busiest = found["ward_code"].value_counts() if len(found) else {}
wards.sort(key=lambda c: -busiest.get(c, 0))  # wards with most places first
ward = c1.selectbox("Ward", wards, format_func=lambda c: names.get(c, c), key="patrol_ward")
shift = c2.selectbox("Shift", list(SHIFTS), key="patrol_shift")
mine = found.loc[found["ward_code"] == ward].head(10).reset_index(drop=True)
st.caption(f"{names.get(ward, ward)}, {f['month']}, {shift}: {len(mine)} hotspot places")
if mine.empty:
    st.info("No hotspot places in this ward for the period and categories chosen.")
    st.stop()

period = month_period(f["month"])
inc = common.incidents(version, period.start.isoformat(), period.end.isoformat(),
                       f["categories"] or None)
inc = inc.loc[in_period(inc, period)]
shapes = mine[["place_id", "geometry"]].rename(columns={"place_id": "code"})
unit = assign_codes(inc["x"].to_numpy(), inc["y"].to_numpy(), shapes)
on_shift = inc["hour"].isin(list(SHIFTS[shift])).to_numpy()
rows = []
for i, p in enumerate(mine.itertuples(), start=1):
    here = inc.loc[(unit == p.place_id) & on_shift]
    windows = [w["label"] for w in patrol_windows(time_profile(here))]
    rows.append({"No.": i, "Where": p.label, "On this shift": len(here),
                 "Patrol windows": ", ".join(windows) or "no timed incidents on this shift",
                 "What happens": p.main_categories})
st.dataframe(pd.DataFrame(rows), hide_index=True, key="patrol_table")

area = common.layers()["ward"]
m = hotspot_map(area=area.loc[area["code"] == ward], config=common.config(), places=mine,
                meta={"period": f["month"], "incidents": int(on_shift.sum()),
                      "categories": list(f["categories"])})
# map_html inlines Leaflet, so the map works without internet access (st_folium loads
# Leaflet from a CDN); it returns nothing to the app, so panning never reruns it.
st.iframe(map_html(m), height=380)
st.caption("Numbers on the map match the table. Print from the browser for an A4 copy.")
