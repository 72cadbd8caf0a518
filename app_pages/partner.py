"""Partner pack: the minimised version only, as :func:`hotspots.export.partner_table` made
it for the pack's files (areas named by ward, small counts suppressed, no caller or record
text, nothing a small count can be worked out from)."""

from __future__ import annotations

from pathlib import Path

import streamlit as st

from app_pages import common
from hotspots import export
from hotspots.errors import HotspotsError

common.require("partner", *common.FULL_ROLES)
st.title("Partner pack")
version = common.store_version()
try:
    flt = common.filters()
    # every category: partner packs for two sets of categories would give small counts
    # away by subtraction (hotspots.pack.build_pack refuses a category filter)
    meta = common.build_pack(version, True, flt["month"])
except HotspotsError as exc:
    st.warning(str(exc))
    st.stop()
st.caption(f"Period {meta['period']}, every category (the category filter does not apply "
           f"here). Counts below {common.config().partner_min_count} are suppressed.")
table = common.read_csv(meta["files"]["csv"])
st.dataframe(table, hide_index=True)
html = Path(meta["files"]["html"])
st.download_button("Partner pack (HTML)", html.read_bytes(), html.name, "text/html",
                   key="dl_partner")
xlsx = Path(meta["files"]["xlsx"])
st.download_button("Partner table (XLSX)", xlsx.read_bytes(), xlsx.name, export.MIME["xlsx"],
                   key="dl_partner_xlsx")
