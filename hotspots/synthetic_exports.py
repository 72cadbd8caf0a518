"""The council exports of :mod:`hotspots.synthetic` as a council sends them: dirty rows
with the reason ingest should give, each export's columns and formats, the truth tables,
and :func:`write_synthetic` (the files, mapping files, truth and README).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import shapely
from openpyxl import Workbook

from .schema import WORKING_CRS, transformer
from .synthetic_town import (
    ADDRESSES,
    BAD_DATES,
    CATEGORIES,
    DATE_FORMATS,
    DETAILS,
    DIRTY_REASONS,
    EXPORT_COLUMNS,
    EXPORT_FILES,
    EXPORT_OF_CAT,
    EXPORTS,
    LATLON_ONLY,
    LOCATION_PREFIXES,
    PLANTED_HOTSPOTS,
    PROFILES,
    RAW_TYPES,
    STREETS,
    UNKNOWN_TYPES,
    SyntheticData,
)


def _max_in_window(days: np.ndarray, window: int = 182) -> int:
    d = np.sort(days)
    return int((np.searchsorted(d, d + window, side="left") - np.arange(d.size)).max())


def pick_dirty(gen, r, n_dirty):
    """Pick background rows to make dirty; duplicates copy an original. Returns reason codes."""
    n = r["x"].size
    export = EXPORT_OF_CAT[r["cat"]]
    background = (r["hot"] < 0) & (r["addr"] < 0) & (r["pc"] < 0)
    kinds = gen.permutation(np.resize(np.arange(len(DIRTY_REASONS)), n_dirty))
    pools = [np.flatnonzero(background & (export == e)) for e in range(3)]
    allowed = np.array([[True, k not in LATLON_ONLY, True] for k in DIRTY_REASONS])
    p = allowed * np.array([len(q) for q in pools])
    cum = np.cumsum(p / p.sum(axis=1, keepdims=True), axis=1)[kinds]
    slot_export = np.minimum((gen.random(n_dirty)[:, None] > cum).sum(axis=1), 2)
    reason = np.full(n, -1, dtype=np.int64)
    src = np.arange(n)
    dup_code = DIRTY_REASONS.index("duplicate_reference")
    for e in range(3):
        slot_kind = kinds[slot_export == e]
        n_dup = int((slot_kind == dup_code).sum())
        if slot_kind.size + n_dup > pools[e].size:
            raise ValueError("dirty_fraction is too high for n_incidents; lower it.")
        chosen = gen.choice(pools[e], slot_kind.size + n_dup, replace=False)
        rows = chosen[:slot_kind.size]
        reason[rows] = slot_kind
        src[rows[slot_kind == dup_code]] = chosen[slot_kind.size:]
    for key in ("x", "y", "cat", "day", "hour", "minute", "second", "street", "prefix", "raw",
                "det", "canisters", "caller"):
        r[key] = r[key][src]
    r["src"] = src
    return reason


def assemble_exports(gen, r, reason, union, days, plant, params) -> SyntheticData:
    """Corrupt the dirty rows, sort and number each export, and build the truth tables."""
    n = r["x"].size
    export = EXPORT_OF_CAT[r["cat"]]
    code = {k: i for i, k in enumerate(DIRTY_REASONS)}
    dup = reason == code["duplicate_reference"]
    x, y = r["x"].copy(), r["y"].copy()
    todo = np.flatnonzero(reason == code["outside_study_area"])  # 1 km or more outside
    c = shapely.centroid(union)
    minx, miny, maxx, maxy = union.bounds
    reach = max(7000.0, float(np.hypot(maxx - minx, maxy - miny)) / 2 + 1000)
    while todo.size:
        ang = gen.uniform(0, 2 * np.pi, todo.size)
        rad = gen.uniform(reach, reach + 2000, todo.size)
        x[todo], y[todo] = c.x + rad * np.cos(ang), c.y + rad * np.sin(ang)
        todo = todo[shapely.distance(union, shapely.points(x[todo], y[todo])) < 1000]
    lat, lon = np.full(n, np.nan), np.full(n, np.nan)
    ll = export != 1
    lon[ll], lat[ll] = transformer(WORKING_CRS, "EPSG:4326").transform(x[ll], y[ll])
    lat, lon, east, north = np.round(lat, 6), np.round(lon, 6), np.rint(x), np.rint(y)
    for key, v in (("missing_coordinates", np.nan), ("zero_coordinates", 0.0)):
        m = reason == code[key]
        lat[m], lon[m], east[m], north[m] = v, v, v, v
    m = reason == code["swapped_latlon"]
    lat[m], lon[m] = lon[m], lat[m]
    m = reason == code["grid_in_latlon"]
    lat[m], lon[m] = north[m], east[m]

    # dates: a lookup per day (future dates shifted 8-12 years), time of day, bad values
    shift = gen.integers(8, 13, n)
    day = r["day"] + np.where(reason == code["future_date"], shift * 365 + shift // 4, 0)
    cal = pd.DatetimeIndex(days[0] + np.arange(days.size + 13 * 366))
    dmy, iso = (np.array(cal.strftime(f), dtype=object) for f in ("%d/%m/%Y", "%Y-%m-%d"))
    hm = np.array([f"{h:02d}:{m_:02d}" for h in range(24) for m_ in range(60)], dtype=object)
    sec = (r["hour"] * 60 + r["minute"]) * 60 + r["second"]
    hms = np.array([f" {t}:{s:02d}" for t in hm for s in range(60)], dtype=object)
    dates = np.asarray(cal.date, dtype=object)
    stamp = {"asb": lambda i: dmy[day[i]] + " " + hm[sec[i] // 60],
             "drugs": lambda i: iso[day[i]] + hms[sec[i]], "nox": lambda i: dates[day[i]]}
    raw = np.array([t for ts in RAW_TYPES for t in ts], dtype=object)[r["raw"]]
    for ex in ("asb", "drugs"):
        m = np.flatnonzero((reason == code["unknown_category"]) & (export == EXPORTS.index(ex)))
        raw[m] = np.array(UNKNOWN_TYPES[ex], dtype=object)[gen.integers(0, 9, m.size)
                                                            % len(UNKNOWN_TYPES[ex])]

    # order by true time, duplicates appended as if from a later, overlapping export
    order = np.argsort(((export * 2 + dup) * days.size + r["day"]) * 86400 + sec, kind="stable")
    ref, row = np.empty(n, dtype=object), np.zeros(n, dtype=np.int64)
    year = days[r["day"]].astype("datetime64[Y]").astype(np.int64) + 1970
    pad = np.array([f"{i:06d}" for i in range(np.bincount(year - year.min()).max() + 1)],
                   dtype=object)
    rows: dict[str, np.ndarray] = {}
    for e, (name, prefix) in enumerate(zip(EXPORTS, ("ASB", "NOX", "CAD"), strict=True)):
        idx = order[export[order] == e]
        row[idx] = np.arange(idx.size) + 2
        fresh = idx[~dup[idx]]  # sorted by time, so years ascend
        first = np.searchsorted(year[fresh], year[fresh], side="left")
        ref[fresh] = (np.array([f"{prefix}-{y}-" for y in range(year.min(), year.max() + 1)],
                               dtype=object)[year[fresh] - year.min()]
                      + pad[np.arange(fresh.size) - first + 1])
        rows[name] = idx
    ref[dup] = ref[r["src"][dup]]  # a duplicate repeats its original's reference
    names = np.array(list(STREETS) + [h[1] for h in PLANTED_HOTSPOTS], dtype=object)
    places = np.array([p + s for p in LOCATION_PREFIXES for s in names]
                      + [a[0] for a in ADDRESSES], dtype=object)
    location = places[np.where(r["addr"] >= 0, len(LOCATION_PREFIXES) * names.size + r["addr"],
                               r["prefix"] * names.size + r["street"])]
    width = max(5, len(str(r["caller"].max())))
    callers = np.array([""] + [f"C{i:0{width}d}" for i in range(1, r["caller"].max() + 1)],
                       dtype=object)[r["caller"]]
    details = np.array([f"SYNTHETIC - {d}" for d in DETAILS], dtype=object)[r["det"]]
    frames = {}
    for name, cols in EXPORT_COLUMNS.items():
        i = rows[name]
        when = stamp[name](i)
        bad = np.flatnonzero(reason[i] == code["unparseable_date"])
        when[bad] = np.array(BAD_DATES[name], dtype=object)[gen.integers(0, 12, bad.size)
                                                             % len(BAD_DATES[name])]
        values = {"reference": ref[i], "datetime": when, "date": when, "time": hm[sec[i] // 60],
                  "category": raw[i], "latitude": lat[i], "longitude": lon[i],
                  "easting": _int_array(east[i]), "northing": _int_array(north[i]),
                  "location": location[i] if name != "nox" else names[r["street"][i]],
                  "caller": callers[i], "description": details[i],
                  "count": r["canisters"][i]}
        frames[name] = pd.DataFrame({c: values[f] for f, c in cols.items()}, copy=False)

    all_i = np.concatenate([rows[e] for e in EXPORTS])
    incidents = pd.DataFrame({
        "export": np.array(EXPORTS, dtype=object)[export[all_i]], "reference": ref[all_i],
        "row": row[all_i],
        "hotspot": np.array([h[0] for h in PLANTED_HOTSPOTS] + [""], dtype=object)[r["hot"][all_i]],
        "repeat_address": np.array([a[0] for a in ADDRESSES] + [""],
                                   dtype=object)[r["addr"][all_i]],
        "caller": callers[all_i],
        "dirty_reason": np.array(DIRTY_REASONS + ("",), dtype=object)[reason[all_i]],
        "category": np.array(CATEGORIES, dtype=object)[r["cat"][all_i]],
        "date": iso[r["day"][all_i]], "hour": r["hour"][all_i], "x": r["x"][all_i],
        "y": r["y"][all_i]}, copy=False)
    return SyntheticData(**frames, incidents=incidents, **_truth_tables(r, days, plant, names),
                         lsoa_weights=plant["lsoa_weights"], params=params)


def _int_array(values: np.ndarray) -> pd.arrays.IntegerArray:
    missing = np.isnan(values)
    return pd.arrays.IntegerArray(np.where(missing, 0, values).astype(np.int64), missing)


def _truth_tables(r, days, plant, names) -> dict[str, pd.DataFrame]:
    """Planted hotspots, repeat callers and repeat addresses."""
    steps = plant["steps"]
    hlon, hlat = transformer(WORKING_CRS, "EPSG:4326").transform(plant["hx"], plant["hy"])
    hotspots = pd.DataFrame({
        "name": [h[0] for h in PLANTED_HOTSPOTS],
        "street": [h[1] for h in PLANTED_HOTSPOTS],
        "x": plant["hx"], "y": plant["hy"], "lat": np.round(hlat, 6), "lon": np.round(hlon, 6),
        "sd_m": [float(h[2]) for h in PLANTED_HOTSPOTS],
        "profile": [h[4] for h in PLANTED_HOTSPOTS],
        "peak_window": [PROFILES[h[4]][0] for h in PLANTED_HOTSPOTS],
        "step_date": [str(steps[h[6]][0]) if h[6] else "" for h in PLANTED_HOTSPOTS],
        "step_factor": [steps[h[6]][1] if h[6] else 1.0 for h in PLANTED_HOTSPOTS],
        "n_planted": plant["hot_n"],
        "categories": [{CATEGORIES[c]: int(m) for c, m in enumerate(
            np.bincount(r["cat"][r["hot"] == i], minlength=6)) if m}
            for i in range(len(PLANTED_HOTSPOTS))]})
    width = max(5, len(str(r["caller"].max())))
    callers = []
    for i, num in enumerate(plant["caller_ids"]):
        d = r["day"][r["pc"] == i]
        callers.append({"caller": f"C{num:0{width}d}", "n_reports": int(plant["caller_n"][i]),
                        "home_x": float(plant["home_x"][i]), "home_y": float(plant["home_y"][i]),
                        "first_date": str(days[d.min()]), "last_date": str(days[d.max()]),
                        "max_in_182_days": _max_in_window(d)})
    addresses = pd.DataFrame({"address": [a[0] for a in ADDRESSES],
                              "street": names[plant["a_street"]], "x": plant["ax"],
                              "y": plant["ay"], "n_reports": plant["addr_n"]})
    return {"hotspots": hotspots, "callers": pd.DataFrame(callers), "addresses": addresses}


def _mapping_toml(name: str) -> str:
    q = json.dumps
    lines = [f"# SYNTHETIC data: mapping of {EXPORT_FILES[name]} to hotspots fields.",
             f"source = {q('synthetic-' + name)}"]
    if name == "nox":
        lines.append('sheet = "Sightings"')
    else:
        lines.append(f"date_format = {q(DATE_FORMATS[name])}")
    lines += ["", "[columns]"] + [f"{k} = {q(c)}" for k, c in EXPORT_COLUMNS[name].items()]
    lines += ["", "[categories]"]
    for cat, types in zip(CATEGORIES, RAW_TYPES, strict=True):
        if EXPORTS[EXPORT_OF_CAT[CATEGORIES.index(cat)]] == name:
            lines += [f"{q(t)} = {q(cat)}" for t in types]
    return "\n".join(lines) + "\n"


def _json_ready(obj):
    if isinstance(obj, dict):
        return {str(k): _json_ready(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_json_ready(v) for v in obj]
    if isinstance(obj, np.generic):
        return obj.item()
    return obj


def write_synthetic(data: SyntheticData, out_dir: str | Path) -> dict[str, Path]:
    """Write the exports, their mapping files, the truth and a README to a folder.

    Parameters
    ----------
    data : SyntheticData
        From :func:`make_synthetic`.
    out_dir : str or Path
        Folder, created if missing; files of the same names are overwritten.

    Returns
    -------
    dict of str to Path
        ``asb``, ``nox``, ``drugs`` (``synthetic-asb.csv``, ``synthetic-nox.xlsx``, sheet
        ``Sightings``, ``synthetic-drugs.csv``), ``<export>_mapping``
        (``synthetic-<export>.mapping.toml``), ``truth`` (``synthetic-truth.json``),
        ``truth_incidents`` (``synthetic-truth-incidents.csv``) and ``readme``
        (``README.txt``).
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = {name: out / f for name, f in EXPORT_FILES.items()}
    for name in ("asb", "drugs"):
        getattr(data, name).to_csv(paths[name], index=False, float_format="%.6f")
    wb = Workbook(write_only=True)
    ws = wb.create_sheet("Sightings")
    ws.append(list(data.nox.columns))
    cols = [data.nox[c].astype(object).where(data.nox[c].notna(), None).tolist()
            for c in data.nox.columns]
    for values in zip(*cols, strict=True):
        ws.append(values)
    wb.save(paths["nox"])
    for name in EXPORTS:
        paths[f"{name}_mapping"] = out / f"synthetic-{name}.mapping.toml"
        paths[f"{name}_mapping"].write_text(_mapping_toml(name), encoding="utf-8")
    hot = data.hotspots.to_dict(orient="records")
    truth = {"synthetic": True, "note": "SYNTHETIC data made by hotspots.synthetic; not real.",
             "params": data.params, "seed": data.params["seed"],
             "files": {**{k: p.name for k, p in paths.items()}, "truth": "synthetic-truth.json",
                       "truth_incidents": "synthetic-truth-incidents.csv",
                       "readme": "README.txt"},
             "rows": {name: len(getattr(data, name)) for name in EXPORTS},
             "dirty_reasons": data.incidents["dirty_reason"][
                 data.incidents["dirty_reason"] != ""].value_counts().sort_index().to_dict(),
             "hotspots": hot, "repeat_callers": data.callers.to_dict(orient="records"),
             "repeat_addresses": data.addresses.to_dict(orient="records")}
    paths["truth"] = out / "synthetic-truth.json"
    paths["truth"].write_text(json.dumps(_json_ready(truth), indent=2), encoding="utf-8")
    paths["truth_incidents"] = out / "synthetic-truth-incidents.csv"
    data.incidents.to_csv(paths["truth_incidents"], index=False, float_format="%.2f")
    paths["readme"] = out / "README.txt"
    p = data.params
    paths["readme"].write_text(
        "SYNTHETIC DATA - NOT REAL INCIDENTS\n\n"
        "These files were made by hotspots.synthetic.make_synthetic, seeded ("
        + (f"seed {p['seed']}" if p["seed"] is not None else "from a Generator; seed not recorded")
        + "), for testing and demonstrating hotspots. No record describes a real "
        "event, person, caller, place or address: street, place and block names are "
        "invented, caller ids are random, and every description starts with 'SYNTHETIC'. "
        "Do not mix with real data.\n\n"
        f"{p['n_incidents']} rows from {p['start']} to {p['end']} in the study area's "
        "real LSOAs: about 65% from 15 planted hotspots placed at random (invented names; "
        "Gaussian spread, an hour x weekday profile each, three rising x2.5 and one falling "
        "x0.3 from a planted date), 2.5% at "
        "10 repeat addresses, 8 planted repeat callers, the rest spread over the LSOAs with "
        "random LSOA weights; a seasonal sinusoid peaking in July; "
        f"{p['n_dirty']} dirty rows with the rejection reason ingest should give.\n\n"
        "Files: synthetic-asb.csv, synthetic-nox.xlsx, synthetic-drugs.csv (exports), "
        "synthetic-*.mapping.toml (column and category mappings), synthetic-truth.json "
        "(parameters, hotspots, repeat callers and addresses), synthetic-truth-incidents.csv "
        "(truth per export row; row = spreadsheet row, header = 1).\n", encoding="utf-8")
    return paths
