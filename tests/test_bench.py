"""Every bench script still runs, at tiny sizes, and ends with its one JSON line of
figures (the figures themselves are the scripts' business, never asserted here)."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

#: script -> tiny arguments; bench_london, bench_national and bench_forecast (whole-area CLI
#: runs, minutes each) and bench_lsoa_agreement (a London year) are left out.
TINY = {
    "bench_app.py": ["4000"],
    "bench_cluster.py": ["3000"],
    "bench_export.py": ["169"],
    "bench_fetch.py": ["1", "100"],
    "bench_gistar.py": ["2500"],
    "bench_ingest.py": ["3000"],
    "bench_kde.py": ["3000"],
    "bench_signin.py": ["3", "1"],
    "bench_store.py": ["3000"],
}


def test_every_bench_script_is_listed_or_named_as_left_out():
    left_out = {"bench_london.py", "bench_national.py", "bench_forecast.py",
                "bench_lsoa_agreement.py"}
    assert {p.name for p in (ROOT / "bench").glob("bench_*.py")} == set(TINY) | left_out


@pytest.mark.slow
@pytest.mark.parametrize("script", sorted(TINY))
def test_bench_script_ends_with_one_json_line(script, tmp_path):
    done = subprocess.run([sys.executable, str(ROOT / "bench" / script), *TINY[script]],
                          cwd=ROOT, capture_output=True, text=True, timeout=600,
                          env={**os.environ, "PYTHONPATH": str(ROOT),
                               "TMPDIR": str(tmp_path)})
    assert done.returncode == 0, done.stderr[-2000:]
    figures = json.loads(done.stdout.strip().splitlines()[-1])
    assert isinstance(figures, dict) and figures, done.stdout[-500:]
