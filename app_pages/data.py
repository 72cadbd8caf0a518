"""Data: upload exports with their mapping, the validation report with rejected rows and
reasons, the store's status, and synthetic data for demonstrations."""

from __future__ import annotations

import tempfile
from pathlib import Path

import pandas as pd
import streamlit as st

from app_pages import common
from hotspots import jobs, store
from hotspots.errors import HotspotsError
from hotspots.synthetic import make_synthetic, write_synthetic

common.require(*common.FULL_ROLES)
st.title("Data")


def _report(result: dict) -> None:
    """Per-file ingest report: read = accepted + rejected, reasons, rejected rows."""
    files = result["files"]
    table = pd.DataFrame([{k: e[k] for k in ("format", "read", "accepted", "rejected",
                                              "inserted", "replaced", "unchanged", "error")}
                          | {"file": Path(e["path"]).name} for e in files])
    st.dataframe(table[["file"] + [c for c in table.columns if c != "file"]],
                 hide_index=True, key="ingest_report")
    for e in files:
        name = Path(e["path"]).name
        if e["error"]:
            st.error(e["error"])
        elif e["already_loaded"]:
            st.info(f"{name}: this exact file was loaded before with the same mapping "
                    f"(load {e['already_loaded']}).")
        if e["note"]:
            st.warning(f"{name}: {e['note']}")
        if e["reasons"]:
            st.write(f"{name}: rejected rows by reason")
            st.dataframe(pd.Series(e["reasons"], name="rows").rename_axis("reason"))
        if e["rejected_file"]:
            st.write(f"{name}: rejected rows")
            st.dataframe(pd.read_csv(e["rejected_file"], dtype=str), hide_index=True)


def _ingest(paths: list[Path], mapping: Path | None) -> None:
    try:
        bar = st.progress(0.0, text="Reading...")
        result = jobs.ingest_files(paths, config=common.config(),
                                   store_file=common.store_file(), mapping=mapping,
                                   cache=common.geodata_cache(), user=common.user(),
                                   progress=lambda done, total, step: bar.progress(
                                       done / total, text=step))
        bar.empty()
    except (HotspotsError, ValueError) as exc:  # e.g. a mapping file that does not parse
        st.error(str(exc))
        return
    _report(result)


st.subheader("Load exports")
st.caption(f"CSV or XLSX, up to {common.MAX_UPLOAD_MB} MB each. police.uk street-level "
           "CSVs are recognised by their header; a council export needs its mapping file "
           "(TOML, see the README).")
uploads = st.file_uploader("Exports", type=["csv", "txt", "tsv", "xlsx"],  # txt: Unicode text
                           accept_multiple_files=True, key="uploads")
mapping_up = st.file_uploader("Mapping (TOML)", type=["toml"], key="mapping")
if st.button("Load into the store", disabled=not uploads, key="load"):
    too_big = [u.name for u in uploads if u.size > common.MAX_UPLOAD_MB * 1024 * 1024]
    if too_big:
        st.error(f"{', '.join(too_big)}: larger than {common.MAX_UPLOAD_MB} MB; split the "
                 "export by date and load the parts.")
    else:
        # the uploads live on disk only while they load, whatever happens
        with tempfile.TemporaryDirectory(prefix="upload-", dir=common.WORK.parent) as tmp:
            folder = Path(tmp)
            paths = []
            for u in uploads:
                paths.append(folder / Path(u.name).name)
                paths[-1].write_bytes(u.getvalue())
            mapping = None
            if mapping_up is not None:
                mapping = folder / "mapping.toml"
                mapping.write_bytes(mapping_up.getvalue())
            with st.spinner("Checking and loading..."):
                _ingest(paths, mapping)

st.subheader("Synthetic data for demonstrations")
c1, c2 = st.columns(2)
n = int(c1.number_input("Incidents", 500, 50_000, 2_000, step=500, key="synth_n"))
seed = int(c2.number_input("Seed", 0, 10_000, 1, key="synth_seed"))
if st.button("Generate and load SYNTHETIC data", key="synth"):
    with tempfile.TemporaryDirectory(prefix="synth-", dir=common.WORK.parent) as tmp:
        with st.spinner("Generating..."):
            data = make_synthetic(common.layers()["lsoa"], n_incidents=n, rng=seed)
            written = write_synthetic(data, tmp)
        for name in ("asb", "nox", "drugs"):
            if name in written and f"{name}_mapping" in written:
                _ingest([written[name]], written[f"{name}_mapping"])

st.subheader("Store status")
st.caption(f"Store: {store.store_name(common.store_file())}")
if not store.is_server(common.store_file()) and not Path(common.store_file()).is_file():
    st.info("No store yet: load exports above.")
    st.stop()
conn = store.connect(common.store_file())
try:
    loads = store.read_loads(conn)
    first, last = store.date_range(conn)
    by_source = store.counts_by_source(conn)
finally:
    conn.close()
c1, c2, c3 = st.columns(3)
c1.metric("Incidents", f"{int(by_source['incidents'].sum()):,}")
c2.metric("Loads", len(loads))
c3.metric("Dates", f"{first} to {last}" if first else "none")
st.dataframe(by_source, hide_index=True, key="by_source")
st.write("Loads: when, who, file, counts")
st.dataframe(loads[["load_id", "loaded_at", "loaded_by", "file", "format", "exported_at",
                    "n_read", "n_accepted", "n_rejected", "n_inserted", "n_replaced",
                    "n_kept_newer", "n_unassigned"]]
             .rename(columns={"loaded_at": "when (UTC)", "loaded_by": "who"}),
             hide_index=True, key="loads")
