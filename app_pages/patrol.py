"""Patrol map (officer): a period (the last 7, 28 or 90 days, or a month), a shift from the
configuration, and a ward (their home ward by default) or an area drawn on the map; the
places there, busiest on the shift first, with their patrol windows. Laid out for a phone
and printable on A4 with the marking, period, shift and date on every page."""

from __future__ import annotations

import datetime as dt
import html
from zoneinfo import ZoneInfo

import pandas as pd
import shapely
import streamlit as st

from app_pages import common
from app_pages.drawmap import current_area, draw_map
from hotspots.errors import HotspotsError
from hotspots.maps import hotspot_map, map_html
from hotspots.patrol import (
    current_shift,
    in_patrol_area,
    month_only_note,
    on_shift,
    patrol_places,
    period_options,
)
from hotspots.summary import in_period, month_only_left_out
from hotspots.usersettings import read_settings, settings_folder, write_setting

DRAWN = "An area I draw"
DRAW_KEY = "patrol_drawn"
#: The print header and footer repeat on every printed page (position: fixed in print).
PRINT_CSS = """<style>
.hs-print-head{border:2px solid #222;padding:4px 8px;font-weight:600;margin-bottom:4px}
.hs-print-foot{display:none}
@media print {
  section[data-testid="stSidebar"], header, [data-testid="stToolbar"],
  [data-testid="stSidebarCollapsedControl"], [data-testid="stElementToolbar"],
  [data-testid="stSelectbox"], [data-testid="stRadio"], [data-testid="stButton"],
  .st-key-patrol_home_box {display: none !important;}
  @page {size: A4; margin: 16mm 12mm;}
  html, body, .stApp, [data-testid="stAppViewContainer"], [data-testid="stMain"],
  [data-testid="stMainBlockContainer"] {overflow: visible !important;
    height: auto !important;}
  .block-container {padding: 0 !important; max-width: 100% !important;}
  .hs-print-head {position: fixed; top: 0; left: 0; right: 0; background: white;
    z-index: 10; font-size: 10pt;}
  .hs-print-foot {display: block; position: fixed; bottom: 0; left: 0; right: 0;
    text-align: center; font-weight: 700; background: white; font-size: 10pt;
    z-index: 1000;}
  [data-testid="stMainBlockContainer"] {padding-top: 14mm !important;
    padding-bottom: 10mm !important;}
  h1 {font-size: 16pt !important; padding: 0 !important;}
  tr {break-inside: avoid;}
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
cfg = common.config()
shifts = cfg.patrol.shifts
names = common.area_names()
WARD = common.one_area()  # "A ward", "An LSOA": one area of the main layer
wards = sorted(f["wards"] or names, key=lambda c: names.get(c, c))  # alphabetical
user = st.session_state.get("user", "")
folder = settings_folder(common.store_file())
home = read_settings(folder, user).get("home_ward") if user else None
if "patrol_ward" not in st.session_state and home in wards:
    st.session_state["patrol_ward"] = home

options = period_options(common.last_dated_day(version), common.months(version))
c1, c2 = st.columns(2)
label = c1.selectbox("Period", list(options), key="patrol_period")
period = options[label]
now = dt.datetime.now(ZoneInfo("Europe/London")).hour
shift_key = c2.selectbox("Shift", list(shifts), key="patrol_shift",
                         index=list(shifts).index(current_shift(shifts, now)),
                         format_func=lambda k: shifts[k].label)
shift = shifts[shift_key]
c3, c4 = st.columns(2)
how = c3.radio("Area", [WARD, DRAWN], horizontal=True, key="patrol_area")
ward = None
if how == WARD:
    ward = c4.selectbox(common.area_label(), wards, format_func=lambda c: names.get(c, c),
                        key="patrol_ward")
    box = c4.container(key="patrol_home_box")
    if user and ward != home and box.button(f"Make {names.get(ward, ward)} my home "
                                            f"{common.area_noun()}",
                                            key="patrol_home"):
        write_setting(folder, user, "home_ward", ward)
        home = ward
    if ward == home:
        box.caption(f"Your home {common.area_noun()}: it opens first next time.")

key = (period.start.strftime("%Y-%m") if period.is_month
       else f"{period.start.isoformat()}/{period.end.isoformat()}")
try:
    found = common.places(version, key, f["categories"])
except HotspotsError as exc:
    st.warning(str(exc))
    st.stop()
inc = common.incidents(version, period.start.replace(day=1).isoformat(),
                       period.end.isoformat(), f["categories"] or None)
note = month_only_note(month_only_left_out(inc, period), period)
inc = inc.loc[in_period(inc, period)]
inc_area = common.area_codes(inc)
ward_layer = common.layers()[common.main_layer()]
drawn = None
if how == WARD:
    outline = ward_layer.loc[ward_layer["code"] == ward]
    mine = found.loc[common.area_codes(found) == ward] if len(found) else found
    where = names.get(ward, ward)
else:
    outline = ward_layer.loc[ward_layer["code"].isin(wards)]
    drawn = current_area(DRAW_KEY, shapely.union_all(outline.geometry.values))
    mine = found.loc[found.intersects(drawn)] if drawn is not None else found.iloc[:0]
    where = (f"The area drawn ({drawn.area / 1e6:.2f} km²)" if drawn is not None
             else "No area drawn yet")
table = patrol_places(inc, mine, shift=shift)
inside = in_patrol_area(inc_area, inc["x"].to_numpy(), inc["y"].to_numpy(), ward=ward,
                        drawn=drawn, wards=wards)
n_here = int((inside & on_shift(inc["hour"].to_numpy(), shift)).sum())
# police.uk rows give the month only: with no time of day anywhere here, no shift applies
untimed = bool(inside.any()) and not bool((inc["hour"].to_numpy()[inside] >= 0).any())
shift_text = "no shift (no times of day)" if untimed else shift.label
produced = dt.date.today().isoformat()
head = (f"{cfg.patrol.marking} · Patrol map: {where} · {period.label} · "
        f"{shift_text} · produced {produced}")
st.markdown(f"<div class='hs-print-head'>{html.escape(head)}</div>"
            f"<div class='hs-print-foot'>{html.escape(cfg.patrol.marking)}</div>",
            unsafe_allow_html=True)  # escaped: the marking and names come from files
shown = common.md(where) if how == WARD else where  # a ward's name: shown as written
st.caption(f"{shown}, {period.label}, {shift_text}: {len(table)} hotspot "
           f"place{'' if len(table) == 1 else 's'}, busiest "
           + ("first" if untimed else "on the shift first"))
if note:
    st.caption(note)

there = (f"the {common.area_noun()}" if how == WARD else "the drawn area" if drawn is not None
         else f"the {common.area_noun(plural=True)}")
if untimed:
    st.info(f"No incident in {there} has a time of day (police.uk gives the month only), so "
            "no shift applies: the places are in order of all their incidents in the period, "
            "and the table counts those.")
else:
    st.caption(f"{n_here:,} incidents in {there} on this shift in the period (police.uk "
               "rows have no time of day, so none is on a shift).")
shown = mine.set_index("place_id").loc[table["place_id"]].reset_index().assign(
    rank=table["no"].to_numpy()) if len(table) else None
m = hotspot_map(area=outline, config=cfg, places=shown,
                meta={"period": f"{period.label}, {shift_text}",
                      "incidents": int(inside.sum()) if untimed else n_here,
                      "categories": list(f["categories"])})
if how == DRAWN:
    st.caption("Draw the area to patrol with the square or the pentagon (top right of the "
               "map); drawing again replaces it.")
    draw_map(m, key=DRAW_KEY, drawn=drawn, height=420)
if table.empty:
    st.info("No hotspot places in this area for the period and categories chosen."
            if how == WARD or drawn is not None else "Draw an area on the map to list the "
            "hotspot places in it.")
    st.stop()
# a plain HTML table, not st.dataframe's canvas: it wraps on a phone and prints on paper
st.table(pd.DataFrame({"No.": table["no"], "Where": table["where"],
                       **({"Incidents in the period": table["n"]} if untimed else
                          {"On this shift": table["on_shift"],
                           "Patrol windows": table["patrol_windows"]}),
                       "What happens": table["what_happens"]}).set_index("No."))
if how == WARD:
    # map_html inlines Leaflet, so the map works without internet access (st_folium
    # loads Leaflet from a CDN); it returns nothing to the app, so panning never reruns it.
    st.iframe(map_html(m), height=380)
st.caption("Numbers on the map match the table. Print from the browser for an A4 copy.")
