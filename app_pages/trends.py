"""Trends (project lead): monthly counts per ward or LSOA, emerging hot spot classes, and
a before/after view for an area and a date."""

from __future__ import annotations

import datetime as dt

import pandas as pd
import streamlit as st

from app_pages import common
from hotspots.errors import HotspotsError
from hotspots.trends import poisson_change_test

common.require(*common.FULL_ROLES)
st.title("Trends")
f = common.filters()
version = common.store_version()
if not f["month"]:
    st.info("The store has no incidents yet.")
    st.stop()
inc = common.incidents(version, None, None, f["categories"] or None)
lay = common.layers()

st.subheader("Monthly incidents")
level = st.radio("Areas", ["ward", "lsoa"], horizontal=True, key="trend_level",
                 format_func={"ward": "Wards", "lsoa": "LSOAs"}.get)
names = dict(zip(lay[level]["code"], lay[level]["name"], strict=True))
col = f"{level}_code"
monthly = (inc.loc[inc[col] != ""].assign(month=inc["date"].str[:7])
           .pivot_table(index="month", columns=col, values="ref", aggfunc="count",
                        fill_value=0))
if level == "ward" and f["wards"]:
    default = [c for c in f["wards"] if c in monthly.columns]
else:
    default = monthly.sum().nlargest(5).index.tolist()
chosen = st.multiselect("Show", monthly.columns.tolist(), default=default,
                        format_func=lambda c: names.get(c, c), key=f"trend_areas_{level}")
if chosen:
    st.line_chart(monthly[chosen].rename(columns=names))
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

st.subheader("Before and after")
wnames = dict(zip(lay["ward"]["code"], lay["ward"]["name"], strict=True))
first, last = (dt.date.fromisoformat(d) for d in (inc["date"].min(), inc["date"].max()))
c1, c2, c3 = st.columns(3)
ward = c1.selectbox("Area (ward)", sorted(wnames, key=wnames.get),
                    format_func=wnames.get, key="ba_ward")
when = c2.date_input("Intervention date", last - dt.timedelta(days=90), min_value=first,
                     max_value=last, key="ba_date")
days = int(c3.number_input("Days each side", 7, 365, 90, key="ba_days"))
days = min(days, (when - first).days, (last - when).days + 1)
if days < 7:
    st.info("Choose a date with at least 7 days of data on each side.")
else:
    before = (when - dt.timedelta(days=days)).isoformat(), when.isoformat()
    after = when.isoformat(), (when + dt.timedelta(days=days)).isoformat()
    timed = inc.loc[inc["source"] != "policeuk"]  # month-dated rows cannot be split by day

    def _count(frame: pd.DataFrame, span: tuple[str, str]) -> int:
        return int(((frame["date"] >= span[0]) & (frame["date"] < span[1])).sum())

    rows = []
    for name, part in (("the ward", timed.loc[timed["ward_code"] == ward]),
                       ("elsewhere in the borough", timed.loc[timed["ward_code"] != ward])):
        n0, n1 = _count(part, before), _count(part, after)
        rows.append({"area": name, f"{days} days before": n0, f"{days} days after": n1,
                     "change": f"{(n1 - n0) / n0:+.0%}" if n0 else "n/a",
                     "p (exact Poisson)": round(poisson_change_test(n1, n0), 4)})
    st.dataframe(pd.DataFrame(rows), hide_index=True, key="before_after")
    st.caption("Counts of day-dated records only; p is two-sided, for the change between "
               "two Poisson counts of equal length.")
