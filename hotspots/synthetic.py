"""Seeded, clearly labelled synthetic council exports placed in the real study area.

Council data (ASB case exports, street-cleansing nitrous-oxide canister sightings, 101/999
drug calls) is not public. :func:`make_synthetic` makes a stand-in inside the real LSOAs with
planted truth that detection tests check: hotspots with an hour x weekday profile, seasonal
drift, step changes, repeat addresses, repeat callers and dirty rows with the reason ingest
should give. :func:`write_synthetic` writes the exports the way a council sends them, a
mapping file per export, the truth and a README. Every free-text field starts with
``SYNTHETIC``; file names start with ``synthetic-``.
"""

from __future__ import annotations

import geopandas
import numpy as np
import pandas as pd
import shapely

from .errors import CRSError
from .synthetic_exports import assemble_exports, pick_dirty, write_synthetic  # noqa: F401
from .synthetic_town import (  # noqa: F401
    ADDRESS_MIX,
    ADDRESS_SHARE,
    ADDRESSES,
    BASE_HOURS,
    BG_MIX,
    CALLER_MIX,
    CATEGORIES,
    DIRTY_REASONS,
    EXPORT_OF_CAT,
    EXPORTS,
    HOTSPOT_SHARE,
    LOCATION_PREFIXES,
    MIN_INCIDENTS,
    N_BURST_CALLERS,
    N_CALLERS,
    PLANTED_HOTSPOTS,
    PROFILES,
    RAW_TYPES,
    SEASON_AMPLITUDE,
    STEP_CHANGES,
    STREETS,
    SyntheticData,
)


def _check_args(lsoas, n_incidents, start, end, dirty_fraction):
    if not isinstance(lsoas, geopandas.GeoDataFrame):
        raise TypeError(f"lsoas must be a GeoDataFrame, got {type(lsoas).__name__}.")
    if lsoas.crs is None or lsoas.crs.to_epsg() != 27700:
        got = "no CRS" if lsoas.crs is None else lsoas.crs.to_string()
        raise CRSError(f"lsoas is in {got}, not EPSG:27700 (British National Grid, metres). "
                       "Reproject it first: lsoas.to_crs(27700).")
    missing = [c for c in ("code", "name") if c not in lsoas.columns]
    if missing or len(lsoas) == 0:
        raise ValueError(f"lsoas needs rows and the columns 'code' and 'name' (missing: "
                         f"{missing}); rename them, e.g. rename(columns={{'LSOA21CD': 'code', "
                         "'LSOA21NM': 'name'}).")
    if not isinstance(n_incidents, int | np.integer) or n_incidents < MIN_INCIDENTS:
        raise ValueError(f"n_incidents must be an integer >= {MIN_INCIDENTS}, got "
                         f"{n_incidents!r}.")
    if not 0 <= dirty_fraction <= 0.05:
        raise ValueError(f"dirty_fraction must be between 0 and 0.05, got {dirty_fraction!r}.")
    try:
        d0, d1 = np.datetime64(start, "D"), np.datetime64(end, "D")
    except ValueError as exc:
        raise ValueError(f"start and end must be dates 'YYYY-MM-DD', got {start!r}, {end!r}.") \
            from exc
    if np.isnat(d0) or np.isnat(d1):
        raise ValueError(f"start and end must be dates 'YYYY-MM-DD', got {start!r}, {end!r}.")
    if d1 - d0 < np.timedelta64(180, "D"):
        raise ValueError(f"end ({end}) must be at least 180 days after start ({start}).")
    return d0, d1


def _profile(name: str) -> np.ndarray:
    """Weekday (Mon=0) x hour weights; windows past midnight run into the next day."""
    base = np.tile(BASE_HOURS, (7, 1))
    prof = base * (1.0 if name == "background" else 0.3)
    for days, h0, hours, weight in PROFILES[name][1]:
        for d in days:
            for hh in range(h0, h0 + hours):
                prof[(d + hh // 24) % 7, hh % 24] += weight
    return prof


def _times(gen, n, day_weight, profile, weekday):
    """Draw (day index, hour) from day weights x the weekday-hour profile."""
    cdf = np.cumsum((day_weight[:, None] * profile[weekday]).ravel())
    k = np.searchsorted(cdf / cdf[-1], gen.random(n), side="right")
    return k // 24, k % 24


def _gauss_inside(gen, inside, cx, cy, sd):
    """Gaussian points around per-row centres, misses outside the study area redrawn."""
    x, y = cx + gen.standard_normal(cx.size) * sd, cy + gen.standard_normal(cx.size) * sd
    todo = np.flatnonzero(~shapely.contains_xy(inside, x, y))
    for _ in range(10_000):
        if todo.size == 0:
            return x, y
        x[todo] = cx[todo] + gen.standard_normal(todo.size) * sd[todo]
        y[todo] = cy[todo] + gen.standard_normal(todo.size) * sd[todo]
        todo = todo[~shapely.contains_xy(inside, x[todo], y[todo])]
    raise RuntimeError("could not place points inside the study area")


def _lsoa_points(gen, geoms, p, n):
    """Uniform points inside LSOAs drawn with probabilities p (rejection from the bbox)."""
    bounds = shapely.bounds(geoms)
    k = gen.choice(len(geoms), n, p=p)
    x, y = np.empty(n), np.empty(n)
    todo = np.arange(n)
    for _ in range(10_000):
        b = bounds[k[todo]]
        x[todo] = b[:, 0] + gen.random(todo.size) * (b[:, 2] - b[:, 0])
        y[todo] = b[:, 1] + gen.random(todo.size) * (b[:, 3] - b[:, 1])
        todo = todo[~shapely.contains_xy(geoms[k[todo]], x[todo], y[todo])]
        if todo.size == 0:
            return x, y
    raise RuntimeError("could not place points inside the LSOAs")


def _spread_points(gen, inner, n: int) -> tuple[np.ndarray, np.ndarray]:
    """``n`` points inside ``inner``, uniform over its area, kept apart: at least
    0.6 sqrt(area / n) (at most 600 m) from each other, the spacing shrunk only if the
    area is too cramped for it. Hotspot centres: separate places, anywhere."""
    core = inner.buffer(-40.0)
    core = core if core.area > 0.25 * inner.area else inner
    shapely.prepare(core)
    minx, miny, maxx, maxy = core.bounds
    gap = min(600.0, 0.6 * np.sqrt(core.area / n))
    got: list[tuple[float, float]] = []
    for _ in range(200):
        x = minx + gen.random(4096) * (maxx - minx)
        y = miny + gen.random(4096) * (maxy - miny)
        ok = shapely.contains_xy(core, x, y)
        for px, py in zip(x[ok], y[ok], strict=True):
            if all((px - qx) ** 2 + (py - qy) ** 2 >= gap * gap for qx, qy in got):
                got.append((px, py))
                if len(got) == n:
                    return np.array([p[0] for p in got]), np.array([p[1] for p in got])
        gap *= 0.8
    raise ValueError("the study area is too small to place the synthetic hotspots apart.")


def make_synthetic(lsoas: geopandas.GeoDataFrame, *, n_incidents: int = 20_000,
                   start: str = "2022-09-01", end: str = "2024-08-31",
                   rng: int | np.random.Generator | None = 0,
                   dirty_fraction: float = 0.005) -> SyntheticData:
    """Make seeded synthetic council exports (ASB, NOx sightings, drug calls) with truth.

    About 65% of incidents come from 15 planted hotspots with invented names, placed
    apart anywhere in the study area (uniform over its area; Gaussian spread, sd 35-80 m,
    an hour x weekday profile each; three rise x2.5 from 75% of the period, one falls x0.3
    from 50%), 2.5% from 10 repeat addresses (invented blocks on invented streets placed
    in the area, every report at exactly the same point), 8 planted repeat callers make 6-40
    reports each (4 of them all within 120 days), and the rest spread over the LSOAs with
    random LSOA weights. All follow a seasonal sinusoid (+-25%, peak in mid-July). Then
    ``round(n_incidents * dirty_fraction)`` background rows are made dirty, each with its
    expected rejection reason (one of :data:`DIRTY_REASONS`) in the truth; every reason
    occurs once there are 9 or more dirty rows.

    Parameters
    ----------
    lsoas : geopandas.GeoDataFrame
        LSOAs in EPSG:27700 with columns ``code``, ``name``, ``geometry``; the study area
        is their union. Not modified.
    n_incidents : int, default 20000
        Rows over the three exports, dirty rows included; at least 2000.
    start, end : str, default "2022-09-01", "2024-08-31"
        First and last day (inclusive), ``YYYY-MM-DD``, at least 180 days apart.
    rng : int, numpy.random.Generator or None, default 0
        Seed or generator; the same seed gives identical output.
    dirty_fraction : float, default 0.005
        Share of rows made dirty, 0 to 0.05.

    Returns
    -------
    SyntheticData
        ``asb`` columns ``Case Ref, Reported`` (str ``DD/MM/YYYY HH:MM``) ``, Type,
        Latitude, Longitude, Location, Caller ID, Details``; ``nox`` columns ``Sighting
        No, Date`` (datetime.date) ``, Time`` (``HH:MM``) ``, Easting, Northing`` (Int64)
        ``, Street, Category, Canisters, Notes``; ``drugs`` columns ``Call Ref, Call
        Date`` (str ``YYYY-MM-DD HH:MM:SS``) ``, Call Type, Lat, Lon, Address, Caller,
        Summary``; each sorted by time with duplicates at the end; and the truth tables.

    Raises
    ------
    CRSError
        If ``lsoas`` is not in EPSG:27700.
    ValueError
        If an option is out of range or ``lsoas`` lacks ``code`` or ``name``.
    """
    d0, d1 = _check_args(lsoas, n_incidents, start, end, dirty_fraction)
    n = int(n_incidents)
    gen = np.random.default_rng(rng)
    geoms = shapely.make_valid(np.asarray(lsoas.geometry.values, dtype=object))
    union = shapely.union_all(geoms)
    # points stay 10 m inside the edge: rounding to 1 m keeps them in, and so do boundary
    # layers drawn a few metres differently (the 2022 wards differ by up to 8 m)
    inner = union.buffer(-10.0)
    lsoa_geoms = shapely.intersection(geoms, inner)
    shapely.prepare(inner)
    shapely.prepare(lsoa_geoms)
    lsoa_w = gen.lognormal(0.0, 0.7, len(lsoa_geoms)) * ~shapely.is_empty(lsoa_geoms)
    lsoa_w = lsoa_w / lsoa_w.sum()
    days = np.arange(d0, d1 + 1)
    steps = {k: (np.datetime64(d0 + int(f * (days.size - 1)) + 15, "M").astype("datetime64[D]"),
                 fac) for k, (f, fac) in STEP_CHANGES.items()}
    r, plant = _plant(gen, n, inner, lsoa_geoms, lsoa_w, days, steps)
    n_dirty = round(n * dirty_fraction)
    reason = pick_dirty(gen, r, n_dirty)
    params = {"generator": "hotspots.synthetic", "synthetic": True,
              "seed": int(rng) if isinstance(rng, int | np.integer) else None,
              "n_incidents": n, "start": str(d0), "end": str(d1),
              "dirty_fraction": float(dirty_fraction), "n_dirty": n_dirty,
              "hotspot_share": HOTSPOT_SHARE, "repeat_address_share": ADDRESS_SHARE,
              "seasonal_amplitude": SEASON_AMPLITUDE, "seasonal_peak_day_of_year": 196,
              "steps": {k: {"date": str(d), "factor": f} for k, (d, f) in steps.items()}}
    plant["lsoa_weights"] = pd.DataFrame({"code": lsoas["code"].to_numpy(),
                                          "name": lsoas["name"].to_numpy(), "weight": lsoa_w})
    plant["steps"] = steps
    return assemble_exports(gen, r, reason, union, days, plant, params)


def _plant(gen, n, inner, lsoa_geoms, lsoa_p, days, steps):
    """Clean rows (integer codes, BNG points) from hotspots, addresses, callers, background;
    hotspots and streets are placed in the study area's own geometry."""
    weekday = (days.astype(np.int64) + 3) % 7
    doy = (days - days.astype("datetime64[Y]")).astype(np.int64)
    season = 1 + SEASON_AMPLITUDE * np.cos(2 * np.pi * (doy - 196) / 365.25)
    # hotspot centres and streets (repeat addresses lie on these) apart from each other
    px, py = _spread_points(gen, inner, len(PLANTED_HOTSPOTS) + len(STREETS))
    hx, hy = px[:len(PLANTED_HOTSPOTS)], py[:len(PLANTED_HOTSPOTS)]
    sx, sy = px[len(PLANTED_HOTSPOTS):], py[len(PLANTED_HOTSPOTS):]
    hsd = np.array([h[2] for h in PLANTED_HOTSPOTS], dtype=float)
    hw = np.array([h[3] for h in PLANTED_HOTSPOTS])
    keys = ("x", "y", "cat", "day", "hour", "hot", "addr", "pc")
    parts: dict[str, list[np.ndarray]] = {k: [] for k in keys}

    def add(x, y, cat, day, hour, hot=-1, addr=-1, pc=-1):
        for key, val in zip(keys, (x, y, cat, day, hour, hot, addr, pc), strict=True):
            parts[key].append(np.broadcast_to(val, x.shape))

    hot_n = gen.multinomial(round(n * HOTSPOT_SHARE), hw / hw.sum())
    for i, h in enumerate(PLANTED_HOTSPOTS):
        m, step = hot_n[i], h[6]
        day_w = season * (np.where(days >= steps[step][0], steps[step][1], 1.0) if step else 1)
        x, y = _gauss_inside(gen, inner, np.full(m, hx[i]), np.full(m, hy[i]), np.full(m, hsd[i]))
        add(x, y, gen.choice(6, m, p=h[5]), *_times(gen, m, day_w, _profile(h[4]), weekday),
            hot=i)
    addr_n = np.maximum(5, np.rint(n * ADDRESS_SHARE / len(ADDRESSES)
                                   * gen.uniform(0.5, 1.5, len(ADDRESSES)))).astype(np.int64)
    a_street = np.array([a[1] for a in ADDRESSES])
    ax, ay = _gauss_inside(gen, inner, sx[a_street], sy[a_street], np.full(a_street.size, 60.0))
    evening = _profile("evening")
    for i, m in enumerate(addr_n):
        add(np.full(m, ax[i]), np.full(m, ay[i]), gen.choice(6, m, p=ADDRESS_MIX),
            *_times(gen, m, season, evening, weekday), addr=i)
    caller_n = gen.integers(6, 41, N_CALLERS)
    home_x, home_y = _lsoa_points(gen, lsoa_geoms, lsoa_p, N_CALLERS)
    for i, m in enumerate(caller_n):
        day_w = season.copy()
        if i < N_BURST_CALLERS:  # all reports within 120 days
            w0 = gen.integers(0, days.size - 120)
            day_w[:w0], day_w[w0 + 120:] = 0.0, 0.0
        day, hour = _times(gen, m, day_w, evening, weekday)
        home, k = gen.random(m) < 0.75, gen.integers(0, len(PLANTED_HOTSPOTS), m)
        x, y = _gauss_inside(gen, inner, np.where(home, home_x[i], hx[k]),
                             np.where(home, home_y[i], hy[k]), np.where(home, 30.0, hsd[k]))
        add(x, y, gen.choice(6, m, p=CALLER_MIX), day, hour, pc=i)
    n_bg = n - hot_n.sum() - addr_n.sum() - caller_n.sum()
    x, y = _lsoa_points(gen, lsoa_geoms, lsoa_p, n_bg)
    add(x, y, gen.choice(6, n_bg, p=BG_MIX),
        *_times(gen, n_bg, season, _profile("background"), weekday))
    r = {k: np.concatenate(v) for k, v in parts.items()}

    r["minute"], r["second"] = gen.integers(0, 60, n), gen.integers(0, 60, n)
    # street: the hotspot's, the address's, else the nearest of STREETS
    free = np.flatnonzero((r["hot"] < 0) & (r["addr"] < 0))
    dist, near = np.full(free.size, np.inf), np.zeros(free.size, dtype=np.int64)
    for j in range(len(STREETS)):
        dj = (r["x"][free] - sx[j]) ** 2 + (r["y"][free] - sy[j]) ** 2
        near[dj < dist], dist = j, np.minimum(dist, dj)
    r["street"] = np.where(r["hot"] >= 0, len(STREETS) + r["hot"], a_street[r["addr"]])
    r["street"][free] = near
    r["prefix"] = gen.integers(0, len(LOCATION_PREFIXES), n)
    n_types = np.array([len(ts) for ts in RAW_TYPES])
    first_type = np.concatenate([[0], np.cumsum(n_types)[:-1]])
    r["raw"] = first_type[r["cat"]] + (gen.random(n) * n_types[r["cat"]]).astype(np.int64)
    r["det"] = r["cat"] * 3 + gen.integers(0, 3, n)
    r["canisters"] = np.clip(np.rint(np.exp(gen.normal(1.2, 1.0, n))), 1, 200).astype(np.int64)

    # caller numbers (0 = none): planted ones, ordinary ones once (7% of them twice)
    export = EXPORT_OF_CAT[r["cat"]]
    u = gen.random(n)
    has = (r["pc"] < 0) & (((export == 0) & (u < 0.85)) | ((export == 2) & (u < 0.80)))
    k = int(has.sum())
    twice = round(0.07 * k)
    ordinary = gen.permutation(np.concatenate([np.arange(k - twice),
                                               gen.choice(k - twice, twice, replace=False)]))
    ids = gen.permutation(k - twice + N_CALLERS) + 1
    r["caller"] = np.zeros(n, dtype=np.int64)
    r["caller"][has] = ids[N_CALLERS:][ordinary]
    r["caller"][r["pc"] >= 0] = ids[r["pc"][r["pc"] >= 0]]
    plant = {"hx": hx, "hy": hy, "hot_n": hot_n, "addr_n": addr_n, "ax": ax, "ay": ay,
             "a_street": a_street, "caller_n": caller_n, "home_x": home_x, "home_y": home_y,
             "caller_ids": ids[:N_CALLERS]}
    return r, plant
