"""Partner pack: the minimised version only, as :func:`hotspots.export.partner_table` made
it for the pack's files (areas named by ward, small counts suppressed, no caller or record
text, nothing a small count can be worked out from), under readable headings, with the
pack's aggregated map. The period and area filters apply as on every page, the downloads
included (a pack for chosen areas is built when asked for); categories do not (a partner
pack covers every category)."""

from __future__ import annotations

import functools
from pathlib import Path

import streamlit as st

from app_pages import common
from hotspots import export, maps, report, selection
from hotspots.errors import HotspotsError
from hotspots.pack import RANKED_COLUMNS
from hotspots.summary import month_period

#: What the partner table shows, in order, under the pack's own headings.
HEADINGS = {k: RANKED_COLUMNS[k] for k in ("rank", "place_id", "ward", "n", "density_per_km2")}
HEADINGS |= {"n_at_repeat_locations": ("At repeat locations", 0),
             "repeat_location_share": RANKED_COLUMNS["repeat_location_share"]}

common.require("partner", *common.FULL_ROLES)
st.title("Partner pack")
version = common.store_version()
flt = common.filters()
try:
    # every category: partner packs for two sets of categories would give small counts
    # away by subtraction (hotspots.pack.build_pack refuses a category filter)
    meta = common.build_pack(version, True, flt["month"])
except HotspotsError as exc:
    st.warning(str(exc))
    st.stop()
period = month_period(meta["period"])
names = common.area_names()
where = ", ".join(names.get(w, w) for w in flt["wards"]) or "the whole area"
table = common.read_csv(meta["files"]["csv"])
table = selection.in_areas(table, flt["wards"], common.area_codes(table))
st.caption(
    f"{period.start:%-d %B %Y} to {period.end:%-d %B %Y} ({meta['period']}), places in "
    f"{common.md(where)}, every category" + (" (the category filter does not apply here: partner "
                                   "figures always cover every category)"
                                   if flt["categories"] else "")
    + f". Counts from 1 to {common.config().partner_min_count - 1} show as "
    f"<{common.config().partner_min_count}, and what could give them away as [c].")
st.dataframe(selection.readable(report.percent_cells(table, ["repeat_location_share"]),
                                HEADINGS), hide_index=True)
if table.empty:
    st.info(f"No places in {common.md(where)} for {meta['period']}.")
st.caption("Rank: order of the tasking score among the places shown. Per km²: incidents per "
           "square kilometre of the place. % at repeat locations: share of the place's "
           "incidents at a location with two or more.")
with st.expander("Map (aggregated: where incidents are dense, no places or records)",
                 expanded=True):
    wards = common.layers()[common.main_layer()].set_index("code").geometry
    st.iframe(maps.focus_map_html(Path(meta["files"]["map"]).read_text("utf-8"),
                                  bounds=maps.focus_bounds(
                                      wards.reindex(list(flt["wards"])).dropna().tolist())),
              height=480)
html, xlsx = Path(meta["files"]["html"]), Path(meta["files"]["xlsx"])
if flt["wards"]:  # the pack and its table for the places in the chosen areas, built on click
    built = {"config": common.config(), "store_file": version[0],
             "cache": common.geodata_cache(), "layers": common.layers(), "partner": True,
             "period": period, "areas": flt["wards"], "where": where}
    folder = common.pack_folder(version, True, meta["period"], (), flt["wards"])
    html_data = functools.partial(common.pack_download, folder, "html", **built)
    xlsx_data = functools.partial(common.pack_download, folder, "xlsx", **built)
else:
    html_data, xlsx_data = html.read_bytes(), xlsx.read_bytes()
st.caption(f"The downloads cover the places in {common.md(where)}.")
st.download_button("Partner pack (HTML)", html_data, html.name, "text/html", key="dl_partner")
st.download_button("Partner table (XLSX)", xlsx_data, xlsx.name, export.MIME["xlsx"],
                   key="dl_partner_xlsx")
