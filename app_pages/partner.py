"""Partner pack: the minimised version only (areas named by ward, small counts suppressed,
no caller or record text)."""

from __future__ import annotations

from pathlib import Path

import streamlit as st

from app_pages import common
from hotspots.errors import HotspotsError

common.require("partner", *common.FULL_ROLES)
st.title("Partner pack")
version = common.store_version()
try:
    flt = common.filters()
    meta = common.build_pack(version, True, flt["month"], flt["categories"])
except HotspotsError as exc:
    st.warning(str(exc))
    st.stop()
st.caption(f"Period {meta['period']} (latest complete month). Counts below "
           f"{common.config().partner_min_count} are suppressed.")
table = common.read_csv(meta["files"]["csv"])
st.dataframe(table, hide_index=True)
html = Path(meta["files"]["html"])
st.download_button("Partner pack (HTML)", html.read_bytes(), html.name, "text/html",
                   key="dl_partner")
xlsx = Path(meta["files"]["xlsx"])
st.download_button("Partner table (XLSX)", xlsx.read_bytes(), xlsx.name, key="dl_partner_xlsx")
