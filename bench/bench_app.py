"""The Tasking page's answer to a filter change, through streamlit.testing's AppTest.

    python bench/bench_app.py [N ...]        (default: 6000 20000)

For each N, a demo store (the police.uk rows + N synthetic council incidents, as
``hotspots demo --n N``) in a temporary folder, then, in this process:
  baseline: the analysis a filter change needs done the plain way, once per filter:
            jobs.detect + pack.build_pack + the partner pack, each reading its own layers
            (what the page did before its caches and shared layers);
  app:      the Tasking page rerun after the sidebar's categories change to each filter
            (new to the caches), and once more after going back to a filter seen before.
Filters: nitrous oxide; ASB nuisance + drug dealing; drug use; all categories for the
previous month. Prints one JSON line of figures at the end (seconds, medians).
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FILTERS = [("2024-08", ["nox_sighting"]), ("2024-08", ["asb_nuisance", "drug_dealing"]),
           ("2024-08", ["drug_use"]), ("2024-07", [])]


def main(sizes: list[int]) -> dict:
    os.chdir(ROOT)
    from streamlit.testing.v1 import AppTest

    from hotspots import jobs, pack
    from hotspots.cli import main as cli
    from hotspots.config import load_config
    from hotspots.summary import month_period

    config = load_config()
    figures: dict = {"bench": "app_filter_change", "sizes": {}}
    for n in sizes:
        with tempfile.TemporaryDirectory() as tmp:
            store = str(Path(tmp) / "d" / "hotspots.sqlite")
            with contextlib.redirect_stdout(io.StringIO()):
                assert cli(["demo", "--data", str(Path(tmp) / "d"), "--out",
                            str(Path(tmp) / "o"), "--n", str(n), "--json"]) == 0
            base = []
            for i, (month, cats) in enumerate(FILTERS):
                t0 = time.perf_counter()
                for partner in (None, False, True):
                    out = Path(tmp) / f"base{i}{partner}"
                    if partner is None:
                        jobs.detect(config=config, period=month_period(month),
                                    categories=cats or None, store_file=store, out_dir=out)
                    else:
                        pack.build_pack(config=config, store_file=store, out_dir=out,
                                        partner=partner, period=month_period(month),
                                        categories=cats or None)
                base.append(time.perf_counter() - t0)
            os.environ.update(HOTSPOTS_STORE=store, HOTSPOTS_LOCAL="1")
            at = AppTest.from_file(str(ROOT / "streamlit_app.py"), default_timeout=600)
            t0 = time.perf_counter()
            at.run()
            first = time.perf_counter() - t0
            app = []
            for month, cats in FILTERS:
                at.sidebar.selectbox(key="f_month").set_value(month)
                at.sidebar.multiselect(key="f_categories").set_value(cats)
                t0 = time.perf_counter()
                at.run()
                app.append(time.perf_counter() - t0)
                assert not at.exception, [e.value for e in at.exception]
            month, cats = FILTERS[0]
            at.sidebar.selectbox(key="f_month").set_value(month)
            at.sidebar.multiselect(key="f_categories").set_value(cats)
            t0 = time.perf_counter()
            at.run()
            seen = time.perf_counter() - t0
            figures["sizes"][str(n)] = {
                "incidents_synthetic": n, "first_page_s": round(first, 3),
                "baseline_per_filter_s": round(statistics.median(base), 3),
                "app_new_filter_s": round(statistics.median(app), 3),
                "app_new_filter_max_s": round(max(app), 3),
                "speedup_new_filter": round(statistics.median(base) / statistics.median(app), 2),
                "app_seen_filter_s": round(seen, 3),
            }
            print(f"n={n:,}: baseline {statistics.median(base):.2f} s per filter, page "
                  f"{statistics.median(app):.2f} s (max {max(app):.2f} s), seen filter "
                  f"{seen:.2f} s", file=sys.stderr)
    figures["max_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
    return figures


if __name__ == "__main__":
    print(json.dumps(main([int(a) for a in sys.argv[1:]] or [6000, 20000])))
