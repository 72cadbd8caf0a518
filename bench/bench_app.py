"""The Tasking page through streamlit.testing's AppTest: opening it cold, and a new filter.

    python bench/bench_app.py [N ...]        (default: 6000 200000)

For each N, a demo store (the police.uk rows + N synthetic council incidents, as
``hotspots demo --n N``) in a temporary folder, then, in this process (the package and
its libraries imported first, as ``serve.py`` does when the server starts):
  cold_open:        the first open of Tasking on the new store (nothing cached for it):
                    the ranked table, the counts, the charts and the map; the forecast
                    layer is drawn on a worker thread and added by a rerun when ready:
  *_forecast:       after a step, the time until that layer is on the map (waiting for
                    the worker, then the rerun the page makes);
  cold_open_kept:   a new session after the in-memory caches are dropped (a restarted
                    server): the pack's results are read back from disk;
  new_wards:        choosing a ward (a filter new to the session: table, map, counts,
                    charts and decisions narrowed);
  new_category:     choosing categories never chosen before (a new analysis and pack);
  seen_category:    going back to categories seen before;
  place_card:       opening a place's card.
Wall-clock seconds; ``*_cpu_s`` is the CPU time of the process over the same step (the
machine may be shared). Prints one JSON line of figures at the end.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import resource
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MONTH = "2024-08"
CATEGORIES = [["nox_sighting"], ["asb_nuisance", "drug_dealing"]]


def _timed(step) -> tuple[float, float]:
    t0, c0 = time.perf_counter(), time.process_time()
    step()
    return round(time.perf_counter() - t0, 3), round(time.process_time() - c0, 3)


def _run(at) -> None:
    at.run()
    assert not at.exception, [e.value for e in at.exception]


def _forecast_drawn(at) -> None:
    from app_pages import common

    common.wait_for_forecasts()
    _run(at)
    assert not any("forecast layer is being drawn" in c.value for c in at.caption)


def _tasking_figures(AppTest, store: str) -> dict:
    import streamlit as st

    os.environ.update(HOTSPOTS_STORE=store, HOTSPOTS_LOCAL="1")
    fig: dict = {}
    at = AppTest.from_file(str(ROOT / "streamlit_app.py"), default_timeout=1800)
    fig["cold_open_s"], fig["cold_open_cpu_s"] = _timed(lambda: _run(at))
    fig["cold_open_forecast_s"], _ = _timed(lambda: _forecast_drawn(at))
    table = next(d.value for d in at.dataframe if "main_categories" in d.value.columns)
    ward = table["area"].iloc[0]
    code = next(k for k, v in _names(at).items() if v == ward)
    at.sidebar.multiselect(key="f_wards").set_value([code])
    fig["new_wards_s"], fig["new_wards_cpu_s"] = _timed(lambda: _run(at))
    at.selectbox(key="detail_place").set_value(table["place_id"].iloc[0])
    fig["place_card_s"], fig["place_card_cpu_s"] = _timed(lambda: _run(at))
    at.sidebar.multiselect(key="f_wards").set_value([])
    new = []
    for cats in CATEGORIES:
        at.sidebar.multiselect(key="f_categories").set_value(cats)
        new.append((*_timed(lambda: _run(at)), _timed(lambda: _forecast_drawn(at))[0]))
    fig["new_category_s"] = max(w for w, _, _ in new)
    fig["new_category_cpu_s"] = max(c for _, c, _ in new)
    fig["new_category_forecast_s"] = max(f for _, _, f in new)
    at.sidebar.multiselect(key="f_categories").set_value(CATEGORIES[0])
    fig["seen_category_s"], _ = _timed(lambda: _run(at))
    st.cache_data.clear()  # a restarted server: what is kept on disk only
    st.cache_resource.clear()  # the ranking and the forecast jobs live in memory only
    again = AppTest.from_file(str(ROOT / "streamlit_app.py"), default_timeout=1800)
    fig["cold_open_kept_s"], fig["cold_open_kept_cpu_s"] = _timed(lambda: _run(again))
    fig["cold_open_kept_forecast_s"], _ = _timed(lambda: _forecast_drawn(again))
    fig["ranked_places"] = int(len(table))
    return fig


def _names(at) -> dict:
    from app_pages import common  # noqa: F401  (imported by the app already)
    from hotspots import geography
    from hotspots.config import load_config

    cfg = load_config()
    lay = geography.read_layers(cfg, cache=os.environ.get("HOTSPOTS_GEODATA"))
    return dict(zip(lay[cfg.main_layer]["code"], lay[cfg.main_layer]["name"], strict=True))


def main(sizes: list[int]) -> dict:
    os.chdir(ROOT)
    sys.path.insert(0, str(ROOT))
    t0 = time.perf_counter()
    import altair  # noqa: F401  (serve.py imports it and common when the server starts)
    from streamlit.testing.v1 import AppTest

    import app_pages.common  # noqa: F401
    from hotspots.cli import main as cli

    figures: dict = {"bench": "app_tasking", "month": MONTH,
                     "imports_s": round(time.perf_counter() - t0, 3), "sizes": {}}
    for n in sizes:
        with tempfile.TemporaryDirectory() as tmp:
            data = Path(tmp) / "d"
            t0 = time.perf_counter()
            with contextlib.redirect_stdout(io.StringIO()):
                args = ["demo", "--data", str(data), "--out", str(Path(tmp) / "o"),
                        "--n", str(n), "--json"]
                if os.environ.get("HOTSPOTS_GEODATA_FROM"):
                    args[1:1] = ["--from", os.environ["HOTSPOTS_GEODATA_FROM"]]
                assert cli(args) == 0
            build = time.perf_counter() - t0
            from hotspots import store as hs_store
            conn = hs_store.connect(str(data / "hotspots.sqlite"))
            total = int(hs_store.counts_by_source(conn)["incidents"].sum())
            conn.close()
            fig = _tasking_figures(AppTest, str(data / "hotspots.sqlite"))
            figures["sizes"][str(n)] = {"incidents_synthetic": n, "incidents_in_store": total,
                                        "store_build_s": round(build, 1), **fig}
            print(f"n={n:,} ({total:,} in the store): cold open {fig['cold_open_s']:.2f} s "
                  f"(kept on disk {fig['cold_open_kept_s']:.2f} s), new wards "
                  f"{fig['new_wards_s']:.2f} s, new categories {fig['new_category_s']:.2f} s "
                  f"(forecast layer {fig['new_category_forecast_s']:.2f} s later), "
                  f"card {fig['place_card_s']:.2f} s", file=sys.stderr)
    figures["max_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
    return figures


if __name__ == "__main__":
    print(json.dumps(main([int(a) for a in sys.argv[1:]] or [6000, 200000])))
