"""LSOA agreement of police.uk rows before and after the edge and boundary rules.

    python bench/bench_lsoa_agreement.py [BOROUGH ...]   (default: Camden Southwark)

For each London borough (name or E09 code), its LSOAs are taken from the geodata cache's
london_lsoa21.gpkg (as `hotspots area init --borough` does) and the London burglary year
(policeuk/*_london_burglary-only.csv) goes through ingest's own row checks and assignment
twice:

  before: the police.uk rules turned off (rows outside the boundary are rejected, a point
          on a shared edge goes to the smallest code): ``own=None`` for the boundary
          check and :func:`hotspots.assign.prefer_own` replaced by "keep the assignment".
          The code has no switch for this; the bench swaps the two for the run.
  after:  as configured (a row within ``nearest_max_m`` outside, whose own LSOA is in the
          area, is accepted into it; a point on an edge goes to its own LSOA).

Figures per borough: rows whose own LSOA code is in the borough (``own_in_area``);
accepted rows; ``agreement_accepted`` (ingest's own figure: accepted rows with a code
whose assigned LSOA is that code) and ``agreement_own`` (of the rows whose own code is in
the borough, the share assigned to that code: the same denominator before and after).
Ends with one JSON line.
"""

from __future__ import annotations

import contextlib
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from hotspots import area, geography
from hotspots import ingest as ingest_pkg
from hotspots.config import load_config, resolve_settings
from hotspots.ingest import points as ingest_points
from hotspots.ingest import read_export, to_incidents


@contextlib.contextmanager
def rules_off():
    """The ingest of before the police.uk rules: no own-LSOA acceptance outside the
    boundary, no own-LSOA preference on edges."""
    coords, prefer = ingest_pkg._coordinates, ingest_points.prefer_own

    def no_own(*args, **kwargs):
        kwargs["own"] = None
        return coords(*args, **kwargs)

    ingest_pkg._coordinates = no_own
    ingest_points.prefer_own = lambda x, y, assigned, *a, **k: np.array(assigned, copy=True)
    try:
        yield
    finally:
        ingest_pkg._coordinates, ingest_points.prefer_own = coords, prefer


def one_borough(borough: str, frames: list, cache: Path) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        name, code, lsoa = area.london_boroughs(borough, cache=cache)
        local = Path(tmp) / "cache"
        done = area.init_area(name, code=code, lsoa=lsoa, out_dir=Path(tmp) / "area",
                              cache=local)
        config = load_config(done["config"])
        layers = geography.read_layers(config, cache=local)
        study = geography.study_area(layers, config)
        mine = set(layers["lsoa"]["code"])
        own_in = sum(int(f["LSOA code"].isin(mine).sum()) for _, f in frames)
        out: dict = {"borough": name, "code": code, "lsoas": len(mine),
                     "rows_read": sum(len(f) for _, f in frames), "own_in_area": own_in}
        for label, switch in (("before", rules_off), ("after", contextlib.nullcontext)):
            t0 = time.perf_counter()
            accepted = agree = agree_own = with_code = 0
            with switch():
                for file, frame in frames:
                    inc = to_incidents(frame, file=file, config=config, layers=layers,
                                       area=study).incidents
                    src = inc["source_lsoa"].astype(str).to_numpy()
                    got = inc["lsoa_code"].astype(str).to_numpy()
                    has = src != ""
                    accepted += len(inc)
                    with_code += int(has.sum())
                    agree += int((has & (src == got)).sum())
                    agree_own += int(((src == got) & np.isin(src, list(mine))).sum())
            out[label] = {"accepted": accepted,
                          "agreement_accepted": round(agree / max(with_code, 1), 4),
                          "agreement_own": round(agree_own / max(own_in, 1), 4),
                          "seconds": round(time.perf_counter() - t0, 2)}
    return out


def main(argv: list[str]) -> int:
    boroughs = argv or ["Camden", "Southwark"]
    cache = resolve_settings().geodata
    files = sorted((cache / "policeuk").glob("*-metropolitan-street_london_burglary-only.csv"))
    if not files:
        print(f"no London burglary files in {cache / 'policeuk'}; run "
              "`hotspots geodata install` (or set HOTSPOTS_GEODATA)", file=sys.stderr)
        return 1
    frames = [(f.name, read_export(f)) for f in files]
    results = []
    for borough in boroughs:
        r = one_borough(borough, frames, cache)
        b, a = r["before"], r["after"]
        print(f"{r['borough']}: {r['own_in_area']:,} rows with an own LSOA in the area; "
              f"accepted {b['accepted']:,} -> {a['accepted']:,}; agreement of accepted rows "
              f"{b['agreement_accepted']:.1%} -> {a['agreement_accepted']:.1%}; of rows with "
              f"an own LSOA in the area {b['agreement_own']:.1%} -> {a['agreement_own']:.1%}",
              file=sys.stderr)
        results.append(r)
    print(json.dumps({"bench": "lsoa_agreement", "files": len(files), "boroughs": results}))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
