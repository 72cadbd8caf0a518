"""Data: check uploaded exports (a preview of what would be new, replaced, unchanged or
rejected, nothing written), load them once confirmed, make and keep a mapping per source
with a form, the store's status, and synthetic data for demonstrations. UI only: the
checks, the preview and the mapping's TOML come from ``hotspots``."""

from __future__ import annotations

import contextlib
import re
import tempfile
from pathlib import Path

import pandas as pd
import streamlit as st

from app_pages import common
from hotspots import jobs, mappingform, store
from hotspots.errors import HotspotsError
from hotspots.ingest import read_export
from hotspots.schema import MAPPING_FIELDS, OPTIONAL_MAPPING_FIELDS
from hotspots.synthetic import MIN_INCIDENTS, make_synthetic, write_synthetic

common.require(*common.FULL_ROLES)
st.title("Data")

FORCE = "Replace newer records"
FORCE_HINT = f"tick '{FORCE}' above and check the files again to replace them"
NONE, UPLOAD = "(none: police.uk street-level files)", "Upload a mapping file (TOML)"
SAVED = mappingform.mapping_dir(common.store_file())
if "pending_mapping" in st.session_state:  # a mapping just saved by the form: chosen
    st.session_state["mapping_choice"] = st.session_state.pop("pending_mapping")


@contextlib.contextmanager
def _on_disk(uploads, mapping_up):
    """The uploads (and an uploaded mapping) as files under their own names, in a folder
    of their own that is removed afterwards, whatever happens."""
    with tempfile.TemporaryDirectory(prefix="upload-", dir=common.WORK.parent) as tmp:
        folder = Path(tmp)
        paths = []
        for u in uploads:
            paths.append(folder / Path(u.name).name)
            paths[-1].write_bytes(u.getvalue())
        mapping = None
        if mapping_up is not None:
            (folder / "mapping").mkdir()  # its own name, apart from the exports'
            mapping = folder / "mapping" / Path(mapping_up.name).name
            mapping.write_bytes(mapping_up.getvalue())
        yield paths, mapping


def _reasons(entry: dict) -> None:
    """Rejected rows by reason, the fix first; the codes only as a detail."""
    if entry["explained"]:
        st.write(f"{Path(entry['path']).name}: {entry['rejected']:,} rejected rows, and how to "
                 "fix them")
        st.table(pd.DataFrame(entry["explained"]).rename(columns={
            "fix": "Fix", "rows": "Rows", "example": "First row with it", "reason": "Code"}))


def _messages(entry: dict) -> None:
    name = Path(entry["path"]).name
    if entry["error"]:
        st.error(entry["error"])
    elif entry["already_loaded"]:
        st.info(f"{name}: this exact file was loaded before with the same mapping "
                f"(load {entry['already_loaded']}): nothing would change.")
    for w in entry["warnings"] or []:
        st.warning(w)
    if entry["note"]:
        st.warning(f"{name}: {entry['note']}")


def _preview(report: dict) -> int:
    """Show what a load would do; return how many records it would replace."""
    files = report["files"]
    read = [e for e in files if not e["error"]]  # a file that cannot be read: its message
    if read:
        st.dataframe(pd.DataFrame([{
            "file": Path(e["path"]).name, "rows read": e["read"], "new": e["inserted"],
            "replaced": e["replaced"], "unchanged": e["unchanged"],
            "kept (newer in store)": e["kept_newer"], "rejected": e["rejected"]}
            for e in read]), hide_index=True, key="preview_counts")
    for e in files:
        _messages(e)
        _reasons(e)
        if e["changes"]:
            shown = len({c["ref"] for c in e["changes"]})
            st.write(f"{Path(e['path']).name}: what changes in {shown} of the "
                     f"{e['replaced']:,} records that would be replaced")
            st.table(pd.DataFrame(e["changes"]).rename(columns={
                "ref": "Reference", "field": "Field", "old": "Now in the store",
                "new": "In this export"}))
    return sum(e["replaced"] or 0 for e in files)


def _report(result: dict) -> None:
    """Per-file load report: read = accepted + rejected, reasons, rejected rows."""
    files = result["files"]
    table = pd.DataFrame([{k: e[k] for k in ("format", "read", "accepted", "rejected",
                                              "inserted", "replaced", "unchanged")}
                          | {"file": Path(e["path"]).name} for e in files])
    st.dataframe(table[["file"] + [c for c in table.columns if c != "file"]],
                 hide_index=True, key="ingest_report")
    for e in files:
        if e["error"]:
            st.error(e["error"])
        for w in e["warnings"] or []:
            st.warning(w)
        if e["note"]:
            st.warning(f"{Path(e['path']).name}: {e['note']}")
        _reasons(e)
        if e["rejected_file"]:
            st.write(f"{Path(e['path']).name}: rejected rows")
            st.dataframe(pd.read_csv(e["rejected_file"], dtype=str), hide_index=True)


def _run(job, paths: list[Path], mapping: Path | None, **kw) -> dict | None:
    try:
        return job(paths, config=common.config(), store_file=common.store_file(),
                   mapping=mapping, cache=common.geodata_cache(), **kw)
    except (HotspotsError, ValueError) as exc:  # e.g. a mapping file that does not parse
        st.error(jobs.plain_error(exc, mapping.name if mapping else "the mapping"))
        return None


def _ingest(paths: list[Path], mapping: Path | None, force: bool = False) -> None:
    bar = st.progress(0.0, text="Reading...")
    result = _run(jobs.ingest_files, paths, mapping, user=common.user(), force_older=force,
                  force_hint=FORCE_HINT,
                  progress=lambda done, total, step: bar.progress(done / total, text=step))
    bar.empty()
    if result is not None:
        _report(result)


# -- load exports ---------------------------------------------------------------------

st.subheader("Load exports")
st.caption(f"CSV or XLSX, up to {common.MAX_UPLOAD_MB} MB each. police.uk street-level "
           "CSVs are recognised by their header; a council export needs a mapping: a saved "
           "one, a TOML file, or one made with the form below. The files are checked first "
           "and nothing is written until you load them.")
uploads = st.file_uploader("Exports", type=["csv", "txt", "tsv", "xlsx"],  # txt: Unicode text
                           accept_multiple_files=True, key="uploads")
saved = mappingform.saved_mappings(SAVED)
choice = st.selectbox("Mapping", [NONE, *saved, UPLOAD], key="mapping_choice",
                      format_func=lambda c: c if c in (NONE, UPLOAD) else f"Saved: {c}")
mapping_up = (st.file_uploader("Mapping (TOML)", type=["toml"], key="mapping")
              if choice == UPLOAD else None)
too_big = [u.name for u in uploads or [] if u.size > common.MAX_UPLOAD_MB * 1024 * 1024]
if too_big:
    st.error(f"{', '.join(too_big)}: larger than {common.MAX_UPLOAD_MB} MB; split the "
             "export by date and load the parts.")
force = st.checkbox(f"{FORCE}: an export dated before the records' versions in the store "
                    "replaces them (without this, the newer versions are kept)",
                    key="force_older")
saved_path = saved.get(choice)
token = (tuple((u.file_id, u.name, u.size) for u in uploads or []), choice,
         mapping_up.file_id if mapping_up else None,
         saved_path.stat().st_mtime_ns if saved_path else None, force)
ready = bool(uploads) and not too_big and (choice != UPLOAD or mapping_up is not None)

if st.button("Check the files (nothing is written)", disabled=not ready, key="check"):
    with _on_disk(uploads, mapping_up) as (paths, mapping), st.spinner("Checking..."):
        report = _run(jobs.preview_files, paths, mapping or saved_path, force_older=force,
                      force_hint=FORCE_HINT)
    st.session_state["preview"] = {"token": token, "report": report,
                                   "store": common.store_version()}
    st.session_state.pop("confirm_replace", None)

preview = st.session_state.get("preview")
if st.session_state.pop("do_load", False) and preview and preview["token"] == token:
    st.session_state.pop("preview")  # confirmed: load what was checked, then report
    if preview["store"] != common.store_version():  # the confirmation was for another state
        st.warning("The store has changed since the files were checked (another load): "
                   "nothing was written; check them again.")
    else:
        with _on_disk(uploads, mapping_up) as (paths, mapping), \
                st.spinner("Checking and loading..."):
            _ingest(paths, mapping or saved_path, force)
elif preview and preview["report"] is not None and uploads:
    if preview["token"] != token:
        st.info("The files or the mapping changed since they were checked: check them again.")
    else:
        st.write("**What loading would do** (nothing has been written yet)")
        n_replaced = _preview(preview["report"])
        confirmed = True
        if n_replaced:
            confirmed = st.checkbox(f"Replace {n_replaced:,} records already in the store with "
                                    "this export's versions", key="confirm_replace")
        loadable = any(not e["error"] for e in preview["report"]["files"])
        st.button("Load into the store", key="load", type="primary",
                  disabled=not (confirmed and loadable),
                  on_click=lambda: st.session_state.update(do_load=True))


# -- the mapping form ------------------------------------------------------------------

@st.cache_data(show_spinner=False, max_entries=2)
def _export(name: str, data: bytes, sheet: str | None) -> pd.DataFrame | str:
    """An uploaded export as text, or the message saying why it cannot be read."""
    with tempfile.TemporaryDirectory(prefix="upload-", dir=common.WORK.parent) as tmp:
        path = Path(tmp) / Path(name).name
        path.write_bytes(data)
        try:
            return read_export(path, sheet=sheet)
        except Exception as exc:  # noqa: BLE001 - any unreadable file: a message
            return jobs.plain_error(exc, path.name)


def _md(text: str) -> str:
    """Text from a file as a widget label: its Markdown characters shown as themselves."""
    return re.sub(r"([\\`*_{}\[\]()#+\-.!|<>~$:])", r"\\\1", text)


def _field_label(field: str) -> str:
    return field.replace("_", " ").capitalize() + (
        " (optional)" if field in OPTIONAL_MAPPING_FIELDS else "")


def _mapping_form(uploads) -> None:
    names = [u.name for u in uploads]
    which = st.selectbox("Export to map", names, key="mf_file") if len(names) > 1 else names[0]
    upload = uploads[names.index(which)]
    sheet = (st.text_input("Sheet (XLSX; empty = the first)", key="mf_sheet")
             if which.lower().endswith(".xlsx") else "")
    frame = _export(upload.name, upload.getvalue(), sheet or None)
    if isinstance(frame, str):
        st.error(frame)
        return
    columns = list(frame.columns)
    guess = mappingform.suggest_columns(columns)
    source = st.text_input("Source system (references are unique within it)",
                           value=Path(which).stem, key="mf_source")
    grid = st.radio("Coordinates", ["Latitude and longitude", "Easting and northing"],
                    index=int("easting" in guess), horizontal=True, key="mf_coords")
    split = st.radio("Date and time", ["One column", "A date column and a time column"],
                     index=int("datetime" not in guess and "date" in guess), horizontal=True,
                     key="mf_split")
    skip = {"latitude", "longitude"} if grid.startswith("Easting") else {"easting", "northing"}
    skip |= {"date", "time"} if split == "One column" else {"datetime"}
    chosen = {}
    fields = [f for f in MAPPING_FIELDS if f not in skip]
    for i, field in enumerate(fields):
        if i % 2 == 0:  # a row of two: on a phone they stack in reading order
            cols = st.columns(2)
        options = ["(none)", *columns]
        chosen[field] = cols[i % 2].selectbox(
            _field_label(field), options, key=f"mf_{upload.file_id}_{field}",
            index=options.index(guess[field]) if field in guess else 0)
    date_format = st.text_input("Date format (empty: ISO 8601 or day-first dates)",
                                key="mf_date_format", placeholder="%d/%m/%Y %H:%M")
    categories = {}
    cfg = common.config()
    if chosen.get("category") not in (None, "(none)"):
        keys = ["(not mapped: rows rejected)", *cfg.categories]
        values = mappingform.category_values(frame[chosen["category"]])
        st.write(f"Categories: what each of the {len(values)} commonest values of "
                 f"'{chosen['category']}' means")
        for i, value in enumerate(values):
            if i % 2 == 0:
                vcols = st.columns(2)
            known = mappingform.suggest_category(value, cfg)
            categories[value] = vcols[i % 2].selectbox(
                _md(value), keys, index=keys.index(known) if known else 0,
                key=f"mf_cat_{upload.file_id}_{chosen['category']}_{i}",
                format_func=lambda k: cfg.categories[k].label if k in cfg.categories else k)
    if st.button("Save the mapping", key="mf_save"):
        try:
            made = mappingform.make_mapping(
                source=source, config=cfg, date_format=date_format, sheet=sheet,
                columns={f: c for f, c in chosen.items() if c != "(none)"},
                categories={v: k for v, k in categories.items() if k in cfg.categories})
        except HotspotsError as exc:
            st.error(str(exc))
            return
        mappingform.save_mapping(made, SAVED)
        st.session_state["pending_mapping"] = made.source
        st.session_state["saved_toml"] = mappingform.mapping_toml(made)
        st.rerun()


st.subheader("Make a mapping")
if "saved_toml" in st.session_state:
    st.success("Mapping saved; it is chosen above for this export and listed for next time.")
    st.code(st.session_state.pop("saved_toml"), language="toml")
with st.expander("Map an export's columns and categories", expanded=False):
    if uploads:
        _mapping_form(uploads)
    else:
        st.info("Choose an export above first: the form lists its columns and values.")
if saved:
    st.caption("Saved mappings: " + ", ".join(f"{s} ({p.name})" for s, p in saved.items()))

# -- synthetic data and the store's status -----------------------------------------------

st.subheader("Synthetic data for demonstrations")
c1, c2 = st.columns(2)
n = int(c1.number_input("Incidents", MIN_INCIDENTS, 50_000, max(MIN_INCIDENTS, 2_000),
                        step=500, key="synth_n"))  # fewer are refused by make_synthetic
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
    decisions = store.read_decisions(conn)
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
if len(decisions):
    st.write("Tasking decisions: who recorded each and when, and its last change")
    st.dataframe(decisions[["decision_id", "meeting_date", "place_id", "owner", "recorded_at",
                            "recorded_by", "edited_at", "edited_by", "revision", "outcome"]]
                 .rename(columns={"decision_id": "decision", "meeting_date": "meeting",
                                  "place_id": "place", "recorded_at": "recorded (UTC)",
                                  "recorded_by": "recorded by",
                                  "edited_at": "last changed (UTC)", "edited_by": "changed by",
                                  "revision": "changes"}),
                 hide_index=True, key="decisions")
