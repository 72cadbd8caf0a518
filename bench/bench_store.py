"""`hotspots ingest` end to end (through the CLI, store included) against pandas reading
the same CSV, in one process.

    python bench/bench_store.py [N ...] [--store URL]     (default: 1000000)

For each N, writes a police.uk street-level CSV of N rows inside Tower Hamlets (each row
with its own LSOA code, as police.uk gives it), then times
  read_csv:  pandas.read_csv of the file (the baseline);
  ingest:    `hotspots ingest FILE --store S --json` into a new store;
  again:     the same command on the same file (already loaded: skipped by its key);
  resaved:   the same rows in a file with other bytes (every row compared, none written);
  read:      store.read_incidents of everything.
Ratios are against read_csv: ``*_ratio`` of wall time, ``*_cpu_ratio`` of processor time
(user and system, all threads), which a machine busy with other work changes less. The
engine is the store's (``--store`` takes a postgresql:// URL of an empty database, one
size only; default: a new SQLite file in a temporary folder per size). Each command runs
in a forked child (the modules already imported, as in one process), so its peak memory
is its own: ``*_peak_rss_mb`` is the child's maximum resident set as the kernel counts
it, the parent's resident memory included (``parent_rss_mb``: modules and boundaries;
the synthetic file is written by a child of its own, so its data is not inherited).
``ingest_peak_rss_mb`` gives the ingest's peak per size: a CSV is streamed in chunks,
so it should not grow with the file. One JSON line of figures at the end.
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

import numpy as np
import pandas as pd
from pyproj import Transformer

from hotspots import geography, store
from hotspots.assign import assign_codes
from hotspots.cli import main as cli
from hotspots.config import load_config
from hotspots.schema import POLICE_UK_HEADER
from hotspots.synthetic import make_synthetic


def write_police_uk(lsoas, n: int, path: Path, config, seed: int = 1) -> None:
    """``n`` police.uk-format rows at synthetic points inside the study area."""
    rng = np.random.default_rng(seed)
    truth = make_synthetic(lsoas, n_incidents=n, dirty_fraction=0.0, rng=seed).incidents
    lon, lat = Transformer.from_crs(27700, 4326, always_xy=True).transform(
        truth["x"].to_numpy(), truth["y"].to_numpy())
    types = np.array(sorted(config.police_uk_types))
    ids = pd.Series(rng.integers(0, 2**63, size=n, dtype=np.int64)).map("{:016x}".format)
    pd.DataFrame(dict(zip(POLICE_UK_HEADER, [
        (ids + ids.str[::-1] + ids + ids.str[:8] + ids.str[8:]).to_numpy(),
        pd.to_datetime(truth["date"]).dt.strftime("%Y-%m").to_numpy(),
        "Metropolitan Police Service", "Metropolitan Police Service",
        np.round(lon, 6), np.round(lat, 6),
        "On or near " + pd.Series(rng.integers(0, 3000, n)).astype(str) + " Street",
        assign_codes(truth["x"].to_numpy(), truth["y"].to_numpy(), lsoas, nearest_max_m=250),
        "Tower Hamlets 001A",
        types[rng.integers(0, len(types), n)], "Under investigation", "",
    ], strict=True))).to_csv(path, index=False)


def timed_cli(*argv: str) -> tuple[dict, float, float, float]:
    """``hotspots ARGV --json`` in a forked child: its report, seconds, processor seconds
    (user and system, every thread) and peak memory (maximum resident set, MB)."""
    read, write = os.pipe()
    t0 = time.perf_counter()
    pid = os.fork()
    if pid == 0:  # the child: run the command, send its output, leave at once
        os.close(read)
        out, code = io.StringIO(), 99
        try:
            with contextlib.redirect_stdout(out):
                code = cli([*argv, "--json"])
        finally:
            with os.fdopen(write, "w") as pipe:
                pipe.write(json.dumps({"code": code, "out": out.getvalue()}))
            os._exit(0)
    os.close(write)
    with os.fdopen(read) as pipe:
        got = json.loads(pipe.read() or '{"code": 99, "out": ""}')
    _, _, usage = os.wait4(pid, 0)
    elapsed = time.perf_counter() - t0
    if got["code"] != 0:
        raise SystemExit(f"hotspots {' '.join(argv)} failed: {got['out'][:500]}")
    return (json.loads(got["out"]), elapsed, usage.ru_utime + usage.ru_stime,
            usage.ru_maxrss / 1024)


def in_child(func, *args) -> None:
    """``func(*args)`` in a forked child (:func:`timed_child`, figures not kept): whatever
    it allocates is gone when it ends, so the children forked later (the timed commands)
    do not inherit it as resident memory."""
    timed_child(func, *args)


def _resave(path: Path, out: Path) -> None:
    out.write_bytes(path.read_bytes() + b"\n")


def timed_child(func, *args) -> tuple[float, float, float]:
    """``func(*args)`` in a forked child: seconds, processor seconds and peak memory (MB)."""
    t0 = time.perf_counter()
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            func(*args)
            code = 0
        finally:
            os._exit(code)
    _, status, usage = os.wait4(pid, 0)
    if status:
        raise SystemExit(f"{func.__name__} failed")
    return (time.perf_counter() - t0, usage.ru_utime + usage.ru_stime,
            usage.ru_maxrss / 1024)


def main(sizes: list[int], url: str | None) -> dict:
    config = load_config()
    lsoas = geography.read_layers(config)["lsoa"]
    figures = {"bench": "store", "sizes": {}}
    with tempfile.TemporaryDirectory() as tmp:
        for n in sizes:
            path = Path(tmp) / f"police_{n}.csv"
            in_child(write_police_uk, lsoas, n, path, config)  # its memory goes with it
            target = url or str(Path(tmp) / f"store_{n}.sqlite")
            conn = store.connect(target)
            figures["engine"] = conn.engine() if hasattr(conn, "engine") else "sqlite (before)"
            if len(store.read_loads(conn)):
                raise SystemExit(f"{store.store_name(target)} is not empty: give a new database")
            conn.close()
            figures["sizes"][str(n)] = one_size(n, path, target, Path(tmp))
    figures["max_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
    # bounded memory: the ingest's peak at each size (a streamed load: about the same)
    figures["ingest_peak_rss_mb"] = {n: f["ingest_peak_rss_mb"] for n, f in
                                     figures["sizes"].items()}
    return figures


def one_size(n: int, path: Path, target: str, tmp: Path) -> dict:
    """Times (wall and processor) of one file's ingest, again, resaved and read back."""
    # pandas reads the file in a child too: the frame's memory is not inherited
    t_pd, c_pd, mb_pd = timed_child(pd.read_csv, path)
    out = {"rows": n, "read_csv_s": round(t_pd, 3), "read_csv_cpu_s": round(c_pd, 3),
           "read_csv_peak_rss_mb": round(mb_pd),
           "parent_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)}
    resaved = tmp / f"police_{n}_resaved.csv"
    in_child(_resave, path, resaved)  # the file's bytes are not kept by the parent
    for step, file in (("ingest", path), ("again", path), ("resaved", resaved)):
        report, t, cpu, mb = timed_cli("ingest", str(file), "--store", target)
        out.update({f"{step}_s": round(t, 3), f"{step}_ratio": round(t / t_pd, 2),
                    f"{step}_cpu_ratio": round(cpu / c_pd, 2),
                    f"{step}_peak_rss_mb": round(mb)})
        out[f"{step}_accepted" if step == "ingest" else f"{step}_unchanged"] = \
            report["files"][0]["accepted" if step == "ingest" else "unchanged"]
    conn = store.connect(target)
    t0 = time.perf_counter()
    out["read_back"] = len(store.read_incidents(conn))
    out["read_incidents_s"] = round(time.perf_counter() - t0, 3)
    conn.close()
    print(f"n={n:,}: read_csv {t_pd:.2f} s; " + "; ".join(
        f"{k} {out[f'{k}_s']:.2f} s (x{out[f'{k}_ratio']}, processor x"
        f"{out[f'{k}_cpu_ratio']}, {out[f'{k}_peak_rss_mb']:,} MB)"
        for k in ("ingest", "again", "resaved")), file=sys.stderr)
    return out


if __name__ == "__main__":
    args = sys.argv[1:]
    url = None
    if "--store" in args:
        i = args.index("--store")
        url = args[i + 1]
        del args[i:i + 2]
    print(json.dumps(main([int(a) for a in args] or [1_000_000], url)))
