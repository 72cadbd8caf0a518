"""Trends (project lead): monthly counts of each series over its own months, for the wards
or LSOAs chosen; emerging hot spot classes on a map; and a before/after view of an
intervention (a ward, a tasked place or a drawn area against the rest of the borough, with
the ring round it), read out in plain words with the tests in a details section."""

from __future__ import annotations

import datetime as dt

import altair as alt
import numpy as np
import pandas as pd
import shapely
import streamlit as st

from app_pages import common
from app_pages.drawmap import current_area, draw_map
from hotspots.errors import HotspotsError
from hotspots.evaluate import intervention_effect
from hotspots.intervention import before_after_series, plain_verdict
from hotspots.maps import emerging_map, hotspot_map, map_html
from hotspots.trends import area_monthly, monthly_series, stream_label, streams_covering

TASKED, DRAWN = "A tasked place", "An area I draw"


def _names(codes, names: dict) -> str:
    shown = sorted(names.get(c, c) for c in codes)
    return ", ".join(shown[:3]) + (f" and {len(shown) - 3} more" if len(shown) > 3 else "")


BY_SERIES, BY_AREA = "One line per series", "One line per area"
AREA_NAMES = {"target": "Target", "buffer": "Ring round it", "control": "Rest of the borough"}

common.require(*common.FULL_ROLES)
st.title("Trends")
f = common.filters()
version = common.store_version()
if not f["month"]:
    st.info("The store has no incidents yet.")
    st.stop()
everything = common.incidents(version, None, None, f["categories"] or None,
                              common.SERIES_COLUMNS)
lay = common.layers()
cfg = common.config()
WARD = common.one_area()  # "A ward", "An LSOA": one area of the main layer
main = common.main_layer()
wnames = common.area_names()
# the sidebar's Wards filter applies to everything below (none = the whole borough)
in_wards = pd.Series(np.isin(common.area_codes(everything), list(f["wards"]))
                     if f["wards"] else True, index=everything.index)
where = _names(f["wards"], wnames) if f["wards"] else f"all of {cfg.name}"

# --- which sources cover which months ----------------------------------------------------
cov = common.coverage(version, f["categories"])
store_months = len(common.months(version))
streams = [stream_label(s, cfg.label(c)) for s, c in cov.index]
label = dict(zip(streams, cov.index, strict=True))
span = {k: (f"{a} only" if a == b else f"{a} to {b}")
        for k, (a, b) in ((k, cov.loc[label[k], ["first", "last"]]) for k in streams)}
st.subheader("Sources and the months they cover")
# a plain table: it wraps on a phone instead of cutting columns off
st.table(pd.DataFrame({"Series": streams, "Months": [span[k] for k in streams],
                       "Months with records": cov["months"].to_numpy(),
                       "Incidents": cov["n"].to_numpy()}).set_index("Series"))
full = [k for k in streams if cov.at[label[k], "months"] * 2 >= store_months]
chosen_streams = st.multiselect(
    "Series", streams, default=full or streams, key="trend_streams",
    format_func=lambda k: f"{k}, {span[k]}",
    help="A source's records of one category. Each series is drawn over its own months. "
         "Records that cover a few months only (a one-off file) are left out by default.")
if not chosen_streams:
    st.info("Choose at least one series.")
    st.stop()
picked = cov.loc[[label[k] for k in chosen_streams]]
keys = pd.MultiIndex.from_arrays([everything["source"], everything["category"]])
inc = everything.loc[keys.isin(picked.index) & in_wards]

st.subheader("Monthly incidents")
levels = [main, *(k for k in cfg.summary_layers if k != main)]
level = st.radio("Areas", levels, horizontal=True, key="trend_level",
                 format_func=lambda k: cfg.layer_label(k, plural=True))
names = common.area_names(level)
col = f"{level}_code"
inc = inc.assign(**{col: common.area_codes(inc, level)})
options = sorted(set(inc[col]) - {""}, key=lambda c: names.get(c, c))
# keyed on the Wards filter: a new filter is a new widget, so its default (the filter's
# wards) always shows; a keyed widget keeps its first value and ignores a new default
chosen = st.multiselect(
    f"{cfg.layer_label(level, plural=True)} (none = all"
    + (f" in {common.md(where)})" if f["wards"] else ")"), options,
    default=[c for c in f["wards"] if c in options] if level == main else [],
    format_func=lambda c: names.get(c, c), key=f"trend_areas_{level}_{'-'.join(f['wards'])}")
lines = st.radio("Lines", [BY_SERIES, BY_AREA], horizontal=True, key="trend_lines")
here = inc.loc[inc[col].isin(chosen)] if chosen else inc
if lines == BY_SERIES:
    series = monthly_series(here, picked)
    series.columns = [stream_label(s, cfg.label(c)) for s, c in series.columns]
    long = series.reset_index().melt("month", var_name="series", value_name="incidents")
    # the legend (one series a row) sits inside the chart's height: leave 300 px to the plot
    tall = 400 + 28 * len(series.columns)
    st.altair_chart(alt.Chart(long.dropna(), height=tall).mark_line(point=True).encode(
        x=alt.X("yearmonth(month):T", title="month"),
        y=alt.Y("incidents:Q", title="incidents"),
        # past ten series the default palette repeats its colours: twenty distinct ones
        color=alt.Color("series:N", title=None, sort=list(series.columns),
                        scale=alt.Scale(scheme="tableau20" if len(series.columns) > 10
                                        else "tableau10"),
                        legend=alt.Legend(orient="bottom", columns=1, labelLimit=0)),
        tooltip=["series:N", alt.Tooltip("yearmonth(month):T", title="month"),
                 "incidents:Q"]), width="stretch")
    st.caption(f"{len(here):,} incidents in {_names(chosen, names) if chosen else where}. "
               "Each series runs over its own months (see the table above): a line starts "
               "where its source's records start.")
else:
    lo, hi = picked["first"].max(), picked["last"].min()
    if lo > hi:
        st.warning("The series chosen share no month: one line per area adds them up, so "
                   "choose series that overlap, or one line per series.")
        st.stop()
    monthly = area_monthly(here, col, lo, hi)
    top = chosen or monthly.sum().nlargest(5).index.tolist()
    st.line_chart(monthly.reindex(columns=top, fill_value=0).rename(columns=names),
                  x_label="month", y_label="incidents")
    st.caption(f"{int(monthly.to_numpy().sum()):,} incidents, {lo} to {hi}: the months "
               "every series chosen covers (added up, a series that starts or stops makes a "
               "jump that is not a change in incidents)."
               + ("" if chosen else " The five busiest areas."))
st.caption("police.uk rows are dated by month; council rows by day.")

if cfg.population is not None:
    table, ameta = common.area_table(version, f["month"], level, f["categories"])
    st.subheader(f"Per 1,000 residents, {ameta['period']}")
    st.caption(f"{cfg.layer_label(level, plural=True)}: {ameta['population']}. An area with "
               "no residents counted shows n/a.")
    rates = table[["name", "n", "residents", "per_1000_residents"]].assign(
        per_1000_residents=table["per_1000_residents"].map(
            lambda v: "n/a" if pd.isna(v) else f"{v:,.1f}"))
    st.dataframe(rates.sort_values("n", ascending=False), hide_index=True, key="rates",
                 column_config={"name": cfg.layer_label(level), "n": "Incidents",
                                "residents": st.column_config.NumberColumn(
                                    "Residents", format="%.0f"),
                                "per_1000_residents": "Per 1,000 residents"})

# --- emerging hot spots ------------------------------------------------------------------
st.subheader("Emerging hot spots")
try:
    cells, grid = common.emerging(version, f["month"], f["categories"])
except HotspotsError as exc:
    cells, grid = None, None
    st.warning(str(exc))
if cells is None:
    st.write("Emerging hot spot classes need 10 or more months of data.")
else:
    months = f"{(pd.Period(f['month'], 'M') - 11)} to {f['month']}"
    st.iframe(map_html(emerging_map(cells, area=lay[cfg.boundary_layer], config=cfg, meta={
        "period": months, "cell_size_m": grid.cell_size_m})), height=420)
    counts = cells["pattern"].value_counts().drop("no pattern", errors="ignore")
    st.caption(f"{months}, grid cells of {grid.cell_size_m:g} m: "
               + (", ".join(f"{v} {k}" for k, v in counts.items()) or "no cell has a class")
               + ". A hot spot is a cell busier than its neighbours by more than chance in "
               "a month; new: only in the last month; persistent: in 90% of the months; "
               "intensifying: persistent and getting stronger; sporadic: on and off.")

# --- before and after --------------------------------------------------------------------
st.subheader("Before and after an intervention")
st.caption("Did the target area change more than the rest of the borough, and did the "
           "problem move next door? The target, a ring round it (the buffer) and the rest of "
           "the borough (the control), in equal windows before and after the date. Counts "
           "use the series chosen above, over the whole borough.")
ba = everything.loc[keys.isin(picked.index)]
lo, hi = picked["first"].min(), picked["last"].max()
study = shapely.union_all(lay[cfg.boundary_layer].geometry.values)
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
months_each = int(c3.number_input("Months each side", 1, 12, 3, key="ba_months"))
buffer_m = float(c3.number_input("Buffer ring (m)", 50, 1000, 250, step=50, key="ba_buffer"))
if kind == DRAWN:
    m = hotspot_map(area=lay[cfg.boundary_layer], config=cfg,
                    meta={"period": f"target for the before/after, {when}", "incidents": 0})
    draw_map(m, key="ba_drawn", drawn=target, height=380)
if target is None:
    if kind == DRAWN:
        st.info("Draw the target area on the map.")
    st.stop()

# like with like: only the series that cover both windows whole are counted
b0 = (pd.Timestamp(when) - pd.DateOffset(months=months_each)).strftime("%Y-%m")
a1 = (pd.Timestamp(when) + pd.DateOffset(months=months_each) - pd.Timedelta(days=1)
      ).strftime("%Y-%m")
covering = streams_covering(picked, b0, a1)
missed = [k for k in chosen_streams if label[k] not in covering.index]
if covering.empty:
    st.warning(f"No series chosen covers both windows ({b0} to {a1}): choose fewer months "
               "each side or another date.")
    st.stop()
if missed:
    st.caption(f"Left out: {'; '.join(f'{k}, {span[k]}' for k in missed)}: they do not "
               f"cover both windows ({b0} to {a1}), and counting them on one side only "
               "would make a change that is not in incidents.")
use = ba.loc[pd.MultiIndex.from_arrays([ba["source"], ba["category"]]).isin(covering.index)]
# police.uk rows are dated by month: they can only be split at the 1st of a month
if when.day != 1 and (use["source"] == "policeuk").any():
    use = use.loc[use["source"] != "policeuk"]
    st.caption("police.uk rows are dated by month, so they are left out unless the "
               "intervention date is the 1st of a month.")
try:
    eff = intervention_effect(use, target=target, date=when, control=study,
                              buffer_m=buffer_m, months=months_each)
except ValueError as exc:
    st.warning(str(exc))
    st.stop()
st.markdown(f"**{plain_verdict(eff, buffer_m=buffer_m)}**")


def _change(b: int, a: int) -> str:
    return f"{a / b - 1:+.0%}".replace("-", "−") if b else "n/a"


k1, k2, k3 = st.columns(3)
for box, area in zip((k1, k2, k3), ("target", "buffer", "control"), strict=True):
    b, a = eff[f"{area}_before"], eff[f"{area}_after"]
    box.metric(AREA_NAMES[area], _change(b, a), help=f"{b:,} before, {a:,} after")

steps = before_after_series(use, target=target, date=when, control=study,
                            buffer_m=buffer_m, months=months_each)
steps = steps.assign(area=steps["area"].map(AREA_NAMES),
                     start=pd.to_datetime(steps["start"]))
lines_ba = alt.Chart(steps, height=420).mark_line(point=True).encode(
    x=alt.X("start:T", title="month from the date"),
    y=alt.Y("index:Q", title="% of the average month before"),
    color=alt.Color("area:N", title=None, sort=list(AREA_NAMES.values()),
                    legend=alt.Legend(orient="bottom", columns=1)),
    tooltip=[alt.Tooltip("area:N"), alt.Tooltip("start:T", title="from"),
             alt.Tooltip("n:Q", title="incidents"),
             alt.Tooltip("index:Q", format=".0f", title="% of before")])
mark = pd.DataFrame({"start": [pd.Timestamp(when)], "text": [f"{when}"]})
rule = alt.Chart(mark).mark_rule(color="black", strokeDash=[4, 3], size=2).encode(x="start:T")
text = alt.Chart(mark).mark_text(align="right", dx=-4, dy=-6, fontWeight="bold").encode(
    x="start:T", y=alt.value(8), text="text:N")
st.altair_chart(lines_ba + rule + text, width="stretch")
st.caption("Each area's incidents per month-long step, as a percentage of its own average "
           "step before the date (100 = as before), so the small target and the large rest "
           "of the borough share one scale; the dashed line is the intervention date.")

rows = []
for area in ("target", "buffer", "control"):
    name = f"Buffer ({buffer_m:.0f} m ring)" if area == "buffer" else AREA_NAMES[area]
    b, a = eff[f"{area}_before"], eff[f"{area}_after"]
    rows.append({"area": name, f"before ({eff['before'][0]} to {eff['before'][1]})": b,
                 f"after ({eff['after'][0]} to {eff['after'][1]})": a,
                 "change": _change(b, a)})
st.table(pd.DataFrame(rows).set_index("area"))  # wraps on a phone
with st.expander("Details: the tests and the displacement quotient"):
    wdq = "n/a" if eff["wdq"] != eff["wdq"] else f"{eff['wdq']:.2f}"
    st.markdown(
        f"- Target against the rest of the borough: p = {eff['p_value_vs_control']:.3f} "
        "(exact test; under 0.05: a change more than chance).\n"
        f"- Target alone, after against before: p = {eff['p_value']:.3f} (includes any "
        "borough-wide or seasonal change).\n"
        f"- Weighted displacement quotient (Bowers and Johnson 2003): {wdq}"
        + ("" if eff["clear"] else " (not read: the target did not change by more than "
           "chance against the rest)") + ". Above 0: benefits spread to the ring; below 0: "
        "displacement.\n"
        "- Incidents prevented (net, target and ring, allowing for the rest's change): "
        + (f"{eff['total_net_effect']:.0f}" if eff["clear"] else "not read") + ".\n"
        f"- Reading: {eff['interpretation']}.")
