"""Patrol map (officer): an area (a ward) or one drawn on the map, and a shift; numbered
places with their patrol windows and what happens there. Laid out for a phone and printable on
A4."""

from __future__ import annotations

import numpy as np
import pandas as pd
import shapely
import streamlit as st

from app_pages import common
from app_pages.drawmap import current_area, draw_map
from hotspots.assign import assign_codes
from hotspots.errors import HotspotsError
from hotspots.maps import hotspot_map, map_html
from hotspots.summary import in_period, month_period
from hotspots.trends import patrol_windows, time_profile

SHIFTS = {"Early 07:00-15:00": range(7, 15), "Late 15:00-23:00": range(15, 23),
          "Night 23:00-07:00": (23, 0, 1, 2, 3, 4, 5, 6)}
DRAWN = "An area I draw"
DRAW_KEY = "patrol_drawn"
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
names = common.area_names()
WARD = common.one_area()  # "A ward", "An LSOA": one area of the main layer
wards = list(f["wards"]) or sorted(names, key=names.get)
try:
    found = common.places(version, f["month"], f["categories"])
except HotspotsError as exc:
    st.warning(str(exc))
    st.stop()
found_area = common.area_codes(found) if len(found) else np.array([], dtype=object)
busiest = pd.Series(found_area).value_counts() if len(found) else {}
wards.sort(key=lambda c: -busiest.get(c, 0))  # areas with most places first
c1, c2, c3 = st.columns([1, 1, 1])
how = c1.radio("Area", [WARD, DRAWN], horizontal=True, key="patrol_area")
shift = c3.selectbox("Shift", list(SHIFTS), key="patrol_shift")
ward_layer = common.layers()[common.main_layer()]
drawn = None
if how == WARD:
    ward = c2.selectbox(common.area_label(), wards, format_func=lambda c: names.get(c, c),
                        key="patrol_ward")
    outline = ward_layer.loc[ward_layer["code"] == ward]
    mine = found.loc[found_area == ward]
    where = names.get(ward, ward)
else:
    outline = ward_layer.loc[ward_layer["code"].isin(wards)]
    drawn = current_area(DRAW_KEY, shapely.union_all(outline.geometry.values))
    mine = found.loc[found.intersects(drawn)] if drawn is not None else found.iloc[:0]
    where = (f"The area drawn ({drawn.area / 1e6:.2f} km²)" if drawn is not None
             else "No area drawn yet")
mine = mine.head(10).reset_index(drop=True)
st.caption(f"{where}, {f['month']}, {shift}: {len(mine)} hotspot places")

period = month_period(f["month"])
inc = common.incidents(version, period.start.isoformat(), period.end.isoformat(),
                       f["categories"] or None)
inc = inc.loc[in_period(inc, period)]
inc_area = common.area_codes(inc)
on_shift = inc["hour"].isin(list(SHIFTS[shift])).to_numpy()
xy = inc["x"].to_numpy(), inc["y"].to_numpy()
if how == WARD:
    inside = inc_area == ward
elif drawn is not None:
    inside = shapely.contains_xy(drawn, *xy)
else:
    inside = np.isin(inc_area, wards)
n_here = int((inside & on_shift).sum())
if drawn is not None:  # what the officer patrols is the drawn area, places or not
    st.caption(f"{n_here:,} incidents in the drawn area on this shift this month.")
shown = mine if how == WARD or drawn is not None else found.head(20)  # where to draw
m = hotspot_map(area=outline, config=common.config(), places=shown,
                meta={"period": f"{f['month']}, {shift.split()[0].lower()} shift",
                      "incidents": n_here,
                      "categories": list(f["categories"])})
if how == DRAWN:
    st.caption("Draw the area to patrol with the square or the pentagon (top right of the "
               "map); drawing again replaces it.")
    draw_map(m, key=DRAW_KEY, drawn=drawn, height=420)
if mine.empty:
    st.info("No hotspot places in this area for the period and categories chosen."
            if how == WARD or drawn is not None else "Draw an area on the map to list the "
            "hotspot places in it.")
    st.stop()

unit = assign_codes(*xy, mine[["place_id", "geometry"]].rename(columns={"place_id": "code"}))
rows = []
for i, p in enumerate(mine.itertuples(), start=1):
    here = inc.loc[(unit == p.place_id) & on_shift]
    windows = [w["label"] for w in patrol_windows(time_profile(here))]
    rows.append({"No.": i, "Where": p.label, "On this shift": len(here),
                 "Patrol windows": ", ".join(windows) or "no timed incidents on this shift",
                 "What happens": p.main_categories})
# a plain HTML table, not st.dataframe's canvas: it wraps on a phone and prints on paper
st.table(pd.DataFrame(rows).set_index("No."))
if how == WARD:
    # map_html inlines Leaflet, so the map works without internet access (st_folium
    # loads Leaflet from a CDN); it returns nothing to the app, so panning never reruns it.
    st.iframe(map_html(m), height=380)
st.caption("Numbers on the map match the table. Print from the browser for an A4 copy.")
