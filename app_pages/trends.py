"""Trends (project lead): monthly counts per area of any layer, emerging hot spot classes,
and a before/after view for an intervention: an area (a ward), a tasked place or a drawn
area against
the rest of the borough, with the displacement quotient for the ring round it."""

from __future__ import annotations

import datetime as dt

import pandas as pd
import shapely
import streamlit as st

from app_pages import common
from app_pages.drawmap import current_area, draw_map
from hotspots.errors import HotspotsError
from hotspots.evaluate import intervention_effect
from hotspots.maps import hotspot_map
from hotspots.trends import stream_label

TASKED, DRAWN = "A tasked place", "An area I draw"

common.require(*common.FULL_ROLES)
st.title("Trends")
f = common.filters()
version = common.store_version()
if not f["month"]:
    st.info("The store has no incidents yet.")
    st.stop()
everything = common.incidents(version, None, None, f["categories"] or None)
lay = common.layers()
cfg = common.config()
WARD = common.one_area()  # "A ward", "An LSOA": one area of the main layer
main = common.main_layer()

# Series compare like with like: only the streams (a source's records of one category)
# chosen here, over the months every one of them covers.
cov = common.coverage(version, f["categories"])
store_months = len(common.months(version))
streams = [stream_label(s, cfg.label(c)) for s, c in cov.index]
label = dict(zip(streams, cov.index, strict=True))
span = {k: (f"{a} only" if a == b else f"{a} to {b}")
        for k, (a, b) in ((k, cov.loc[label[k], ["first", "last"]]) for k in streams)}
full = [k for k in streams if cov.at[label[k], "months"] * 2 >= store_months]
chosen_streams = st.multiselect(
    "Series from", streams, default=full or streams, key="trend_streams",
    format_func=lambda k: f"{k}, {span[k]}",
    help="A source's records of one category. Records that cover a few months only (a "
         "one-off file) are left out by default: added to the others they make a jump "
         "where the file starts or stops, not where incidents changed.")
if not chosen_streams:
    st.info("Choose at least one series.")
    st.stop()
picked = cov.loc[[label[k] for k in chosen_streams]]
lo, hi = picked["first"].max(), picked["last"].min()
left_out = [f"{k}, {span[k]}" for k in streams if k not in chosen_streams]
if lo > hi:
    st.warning(f"The series chosen share no month ({'; '.join(span[k] for k in chosen_streams)}"
               "): choose series that overlap.")
    st.stop()
keys = pd.MultiIndex.from_arrays([everything["source"], everything["category"]])
month = everything["date"].str[:7]
inc = everything.loc[keys.isin(picked.index) & (month >= lo) & (month <= hi)]
window = pd.period_range(lo, hi, freq="M").strftime("%Y-%m")
st.caption(f"{len(inc):,} incidents, {lo} to {hi}: the months every series chosen covers."
           + (f" Left out: {'; '.join(left_out)}." if left_out else ""))

st.subheader("Monthly incidents")
levels = [main, *(k for k in cfg.summary_layers if k != main)]
level = st.radio("Areas", levels, horizontal=True, key="trend_level",
                 format_func=lambda k: cfg.layer_label(k, plural=True))
names = common.area_names(level)
col = f"{level}_code"
inc = inc.assign(**{col: common.area_codes(inc, level)})
monthly = (inc.loc[inc[col] != ""].assign(month=inc["date"].str[:7])
           .pivot_table(index="month", columns=col, values="ref", aggfunc="count",
                        fill_value=0).reindex(window, fill_value=0))
if level == main and f["wards"]:
    default = [c for c in f["wards"] if c in monthly.columns]
else:
    default = monthly.sum().nlargest(5).index.tolist()
chosen = st.multiselect("Show", monthly.columns.tolist(), default=default,
                        format_func=lambda c: names.get(c, c), key=f"trend_areas_{level}")
if chosen:
    st.line_chart(monthly[chosen].rename(columns=names), x_label="month",
                  y_label="incidents")
st.caption("police.uk rows are dated by month; council rows by day.")

st.subheader("Emerging hot spots")
try:
    emerging = common.build_pack(version, False)["emerging"]
except HotspotsError as exc:
    emerging = None
    st.warning(str(exc))
if emerging:
    st.dataframe(pd.DataFrame(sorted(emerging.items(), key=lambda kv: -kv[1]),
                              columns=["class", "grid cells"]), hide_index=True)
else:
    st.write("Emerging hot spot classes need 10 or more months of data.")

st.subheader("Before and after an intervention")
st.caption("Did the target area change more than the rest of the borough, and did the "
           "problem move next door? The target, a ring round it (the buffer) and the rest of "
           "the borough (the control), in equal windows before and after the date.")
study = shapely.union_all(lay[cfg.boundary_layer].geometry.values)
wnames = common.area_names()
first = dt.date.fromisoformat(f"{lo}-01")
last = (pd.Period(hi, freq="M").end_time).date()
kind = st.radio("Target", [WARD, TASKED, DRAWN], horizontal=True, key="ba_kind")
c1, c2, c3 = st.columns(3)
target, start = None, None
if kind == WARD:
    ward = c1.selectbox(common.area_label(), sorted(wnames, key=wnames.get),
                        format_func=wnames.get, key="ba_ward")
    target = lay[main].loc[lay[main]["code"] == ward].geometry.iloc[0]
elif kind == TASKED:
    tasked = common.decisions()
    if tasked.empty:
        st.info("No decisions are recorded yet: record them on the Tasking page.")
    else:
        pick = c1.selectbox("Tasked place", tasked.index.tolist(), key="ba_tasked",
                            format_func=lambda i: f"{tasked.at[i, 'label']}, tasked "
                                                  f"{tasked.at[i, 'meeting_date']}")
        target = shapely.from_wkt(tasked.at[pick, "geometry_wkt"])
        start = dt.date.fromisoformat(tasked.at[pick, "meeting_date"])
else:
    target = current_area("ba_drawn", study)
default = start or (pd.Timestamp(last.replace(day=1)) - pd.DateOffset(months=3)).date()
when = c2.date_input("Intervention date", min(max(default, first), last), min_value=first,
                     max_value=last, key=f"ba_date_{kind}")
months = int(c3.number_input("Months each side", 1, 12, 3, key="ba_months"))
buffer_m = float(c3.number_input("Buffer ring (m)", 50, 1000, 250, step=50, key="ba_buffer"))
if kind == DRAWN:
    m = hotspot_map(area=lay[cfg.boundary_layer], config=common.config(),
                    meta={"period": f"target for the before/after, {when}", "incidents": 0})
    draw_map(m, key="ba_drawn", drawn=target, height=380)
if target is None:
    if kind == DRAWN:
        st.info("Draw the target area on the map.")
    st.stop()

# police.uk rows are dated by month: they can only be split at the 1st of a month
use = inc if when.day == 1 else inc.loc[inc["source"] != "policeuk"]
if when.day != 1:
    st.caption("police.uk rows are dated by month, so they are left out unless the "
               "intervention date is the 1st of a month.")
try:
    eff = intervention_effect(use, target=target, date=when, control=study,
                              buffer_m=buffer_m, months=months)
except ValueError as exc:
    st.warning(str(exc))
    st.stop()
if eff["before"][0] < first.isoformat() or eff["after"][1] > last.isoformat():
    st.warning(f"The windows ({eff['before'][0]} to {eff['after'][1]}) run beyond the months "
               f"the series cover ({first} to {last}); counts there are incomplete. Choose "
               "fewer months or another date.")
rows = []
for key, name in (("target", "Target"), ("buffer", f"Buffer ({buffer_m:.0f} m ring)"),
                  ("control", "Rest of the borough")):
    b, a = eff[f"{key}_before"], eff[f"{key}_after"]
    rows.append({"area": name, f"before ({eff['before'][0]} to {eff['before'][1]})": b,
                 f"after ({eff['after'][0]} to {eff['after'][1]})": a,
                 "change": f"{a / b - 1:+.0%}" if b else "n/a"})
st.dataframe(pd.DataFrame(rows), hide_index=True, key="before_after")
k1, k2, k3 = st.columns(3)
k1.metric("Target against the rest of the borough", f"p = {eff['p_value_vs_control']:.3f}",
          help="Exact test: did the target change more than the rest of the borough did? "
               "Under 0.05: more than chance.")
wdq = "n/a" if eff["wdq"] != eff["wdq"] else f"{eff['wdq']:.2f}"
k2.metric("Weighted displacement quotient", wdq if eff["clear"] else f"{wdq} (not read)",
          help="Bowers and Johnson (2003): read only when the target fell relative to the "
               "control by more than chance. Above 0: benefits spread to the buffer; below "
               "0: displacement.")
k3.metric("Incidents prevented (net)",
          f"{eff['total_net_effect']:.0f}" if eff["clear"] else "n/a (no clear effect)",
          help="Target and buffer, after allowing for the rest of the borough's change; "
               "negative: more incidents than expected.")
st.write(f"Reading: {eff['interpretation']}.")
st.caption(f"Target alone, after against before: p = {eff['p_value']:.3f} (this includes any "
           "borough-wide or seasonal change).")
