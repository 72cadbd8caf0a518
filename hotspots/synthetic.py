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

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import geopandas
import numpy as np
import pandas as pd
import shapely
from openpyxl import Workbook
from pyproj import Transformer

from .errors import CRSError

CATEGORIES = ("asb_personal", "asb_nuisance", "asb_environmental", "nox_sighting",
              "drug_dealing", "drug_use")
EXPORTS = ("asb", "nox", "drugs")
DIRTY_REASONS = ("missing_coordinates", "zero_coordinates", "swapped_latlon", "grid_in_latlon",
                 "outside_study_area", "unparseable_date", "future_date", "unknown_category",
                 "duplicate_reference")
_EXPORT_OF_CAT = np.array([0, 0, 0, 1, 2, 2])
_LATLON_ONLY = ("swapped_latlon", "grid_in_latlon", "unknown_category")  # not in the NOx sheet
_RAW_TYPES = (("Neighbour dispute", "Harassment/Intimidation", "Threatening behaviour"),
              ("Rowdy/Nuisance Behaviour", "Noise", "Street drinking", "Begging"),
              ("Fly-tipping", "Abandoned vehicle", "Graffiti", "Littering"),
              ("Nitrous oxide canisters",), ("Drug dealing",), ("Drug use",))
_UNKNOWN_TYPES = {"asb": ("Other (see notes)", "TBC", "Misc enquiry"),
                  "drugs": ("Suspicious activity", "Other")}
_BAD_DATES = {"asb": ("31/02/2023 14:10", "TBC", "2023-13-45 10:00", "00/00/0000 00:00"),
              "nox": ("TBC", "31/02/2023", "n/k"),
              "drugs": ("2023-02-30 21:15:00", "unknown", "2023-13-01 00:00:00")}
_DETAILS = (  # three per category, in CATEGORIES order
    "caller shouted at and threatened by a neighbour", "ongoing dispute, caller feels "
    "intimidated", "group followed the caller and made threats",
    "group gathering, shouting and playing loud music", "street drinking outside shops, "
    "bottles left behind", "youths on mopeds causing a nuisance",
    "bags of rubbish dumped on the pavement", "car left untaxed for weeks, windows broken",
    "fresh graffiti on the wall",
    "silver canisters on the pavement and in the gutter", "canisters and balloons left by a "
    "bench", "large cylinder and small canisters near the bins",
    "hand-to-hand exchanges from a parked car", "people on bikes meeting customers at the "
    "corner", "same car visits several times an evening, short meetings",
    "strong smell of cannabis in the stairwell", "people seen using drugs on the benches",
    "used needles found by the entrance",
)
# Invented names (no real place): each run places them in the study area's own geometry.
# name, street, sd_m, weight, profile, mix (CATEGORIES order), step
_HOTSPOTS = (
    ("Ambergate Market", "Ambergate Road", 60, 1.6, "night",
     (.10, .30, .05, .45, .05, .05), None),
    ("Quillfield Market", "Quillfield Street", 50, 1.4, "market",
     (.10, .25, .15, 0, .35, .15), None),
    ("Marrowgate Parade", "Marrowgate Lane", 35, 0.9, "dealing",
     (0, .20, .15, 0, .45, .20), "rise"),
    ("Thistlebeck Market", "Thistlebeck Road", 40, 1.0, "market",
     (.10, .35, .20, 0, .20, .15), None),
    ("Corvedale Park", "Corvedale Street", 80, 1.0, "park",
     (0, .25, .05, .55, 0, .15), None),
    ("Lanternby station", "Lanternby Road", 40, 1.0, "dealing",
     (.15, .25, 0, 0, .40, .20), None),
    ("Wexbury Halt", "Wexbury Lane", 35, 0.8, "dealing",
     (.10, .20, 0, 0, .45, .25), "rise"),
    ("Pellinore Square", "Pellinore Street", 45, 1.0, "night",
     (.10, .40, .10, .40, 0, 0), None),
    ("Tallowmere Green", "Tallowmere Road", 50, 0.9, "evening",
     (.20, .35, .10, 0, .15, .20), "fall"),
    ("Amberwick Market", "Amberwick Lane", 60, 1.0, "market",
     (.10, .35, .25, 0, .15, .15), None),
    ("Hollowmere Church", "Hollowmere Street", 40, 0.8, "evening",
     (.20, .30, 0, 0, .30, .20), None),
    ("Farrowdale Gardens", "Farrowdale Road", 40, 0.7, "park",
     (0, .30, 0, .50, 0, .20), None),
    ("Kestrelby Fields", "Kestrelby Lane", 45, 0.8, "park",
     (0, .25, 0, .50, .10, .15), None),
    ("Oakhallow Basin", "Oakhallow Street", 55, 0.8, "park",
     (0, .25, 0, .55, .10, .10), "rise"),
    ("Brindlecombe Cross", "Brindlecombe Road", 40, 0.7, "dealing",
     (.15, .20, 0, 0, .40, .25), None),
)
_STREETS = (  # location text for points away from the hotspots: the nearest of these
    "Ivelford Road", "Quenmarsh Street", "Haddowgate Lane", "Sorrelby Road",
    "Pennicott Street", "Warrowfield Road", "Dunmerrow Lane", "Feltingham Street",
    "Gorsewick Road", "Calloway Rise", "Mardenholt Street", "Tinsley Ferrow Road",
    "Ashcombe Vale", "Brackenmoor Street", "Elderwick Lane", "Rookhaven Road",
    "Swallowmere Street", "Kettleby Road", "Lindenhurst Lane", "Copperfold Street",
    "Nettlecombe Road", "Heronsgate Walk",
)
_ADDRESSES = (  # invented blocks on the invented streets (index into _STREETS)
    ("Flat 12, Example House, Ivelford Road", 0),
    ("Flat 3, Tallowmere Court, Haddowgate Lane", 2),
    ("Flat 27, Quillfield House, Quenmarsh Street", 1),
    ("Flat 8, Marrowgate House, Sorrelby Road", 3),
    ("Flat 41, Pellinore Court, Pennicott Street", 4),
    ("Flat 5, Thistlebeck House, Dunmerrow Lane", 6),
    ("Flat 19, Corvedale House, Feltingham Street", 7),
    ("Flat 2, Amberwick Court, Gorsewick Road", 8),
    ("Flat 33, Lanternby House, Calloway Rise", 9),
    ("Flat 14, Wexbury Court, Mardenholt Street", 10),
)
# location text has no house number (ingest keys those by address) except at the addresses
_LOCATION_PREFIXES = ("", "near ", "outside shops, ", "by the bus stop, ")
_ALL = (0, 1, 2, 3, 4, 5, 6)
_PROFILES = {  # peak window text, (weekdays Mon=0, start hour, hours, weight) windows
    "night": ("Fri-Sat 20:00-02:00", (((4, 5), 20, 6, 10.0), ((0, 1, 2, 3, 6), 20, 4, 1.5))),
    "market": ("Mon-Sat 10:00-17:00", (((0, 1, 2, 3, 4, 5), 10, 7, 4.0), (_ALL, 18, 4, 1.0))),
    "dealing": ("daily 14:00-23:00", ((_ALL, 14, 9, 4.0),)),
    "evening": ("daily 17:00-23:00", ((_ALL, 17, 6, 3.0), ((4, 5), 21, 4, 2.0))),
    "park": ("Sat-Sun 13:00-22:00", (((5, 6), 13, 9, 6.0), ((0, 1, 2, 3, 4), 17, 5, 1.5))),
    "background": ("", ()),
}
_BASE_HOURS = np.array([.3, .2, .15, .1, .1, .1, .15, .3, .5, .6, .7, .8, .8, .8, .8, .9, 1,
                        1, 1.1, 1.1, 1, .9, .7, .5])
_STEPS = {"rise": (0.75, 2.5), "fall": (0.5, 0.3)}  # fraction of the period, rate factor
_HOTSPOT_SHARE, _ADDRESS_SHARE, _SEASON_AMPLITUDE = 0.65, 0.025, 0.25
_BG_MIX = (.12, .25, .18, .15, .15, .15)
_ADDRESS_MIX = (.35, .35, 0, 0, .10, .20)
_CALLER_MIX = (.35, .35, 0, 0, .20, .10)
_N_CALLERS, _N_BURST_CALLERS = 8, 4
_MIN_INCIDENTS = 2000
_COLUMNS = {
    "asb": {"reference": "Case Ref", "datetime": "Reported", "category": "Type",
            "latitude": "Latitude", "longitude": "Longitude", "location": "Location",
            "caller": "Caller ID", "description": "Details"},
    "nox": {"reference": "Sighting No", "date": "Date", "time": "Time", "easting": "Easting",
            "northing": "Northing", "location": "Street", "category": "Category",
            "count": "Canisters", "description": "Notes"},
    "drugs": {"reference": "Call Ref", "datetime": "Call Date", "category": "Call Type",
              "latitude": "Lat", "longitude": "Lon", "location": "Address", "caller": "Caller",
              "description": "Summary"},
}
_DATE_FORMATS = {"asb": "%d/%m/%Y %H:%M", "drugs": "%Y-%m-%d %H:%M:%S"}
_FILES = {"asb": "synthetic-asb.csv", "nox": "synthetic-nox.xlsx", "drugs": "synthetic-drugs.csv"}


@dataclass(frozen=True)
class SyntheticData:
    """Synthetic exports and their planted truth, as made by :func:`make_synthetic`.

    Attributes
    ----------
    asb, nox, drugs : pandas.DataFrame
        The exports, one row per record, columns as written (see :func:`make_synthetic`).
    incidents : pandas.DataFrame
        Truth per export row: ``export, reference, row`` (spreadsheet row, header = 1),
        ``hotspot, repeat_address, caller, dirty_reason`` (empty when none), ``category``
        (taxonomy key), ``date`` (true ``YYYY-MM-DD``), ``hour`` and ``x, y`` (true BNG, m).
    hotspots : pandas.DataFrame
        ``name, street, x, y, lat, lon, sd_m, profile, peak_window, step_date, step_factor,
        n_planted, categories`` (dict of planted counts per taxonomy key).
    callers : pandas.DataFrame
        Planted repeat callers: ``caller, n_reports, home_x, home_y, first_date, last_date,
        max_in_182_days``.
    addresses : pandas.DataFrame
        Repeat addresses: ``address, street, x, y, n_reports`` (all at exactly ``x, y``).
    lsoa_weights : pandas.DataFrame
        ``code, name, weight``: relative weight of each LSOA for background incidents.
    params : dict
        Parameters used (seed, counts, dates, shares, step dates and factors).
    """

    asb: pd.DataFrame
    nox: pd.DataFrame
    drugs: pd.DataFrame
    incidents: pd.DataFrame
    hotspots: pd.DataFrame
    callers: pd.DataFrame
    addresses: pd.DataFrame
    lsoa_weights: pd.DataFrame
    params: dict[str, Any]


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
    if not isinstance(n_incidents, int | np.integer) or n_incidents < _MIN_INCIDENTS:
        raise ValueError(f"n_incidents must be an integer >= {_MIN_INCIDENTS}, got "
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
    base = np.tile(_BASE_HOURS, (7, 1))
    prof = base * (1.0 if name == "background" else 0.3)
    for days, h0, hours, weight in _PROFILES[name][1]:
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


def _max_in_window(days: np.ndarray, window: int = 182) -> int:
    d = np.sort(days)
    return int((np.searchsorted(d, d + window, side="left") - np.arange(d.size)).max())


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
                 fac) for k, (f, fac) in _STEPS.items()}
    r, plant = _plant(gen, n, inner, lsoa_geoms, lsoa_w, days, steps)
    n_dirty = round(n * dirty_fraction)
    reason = _dirty(gen, r, n_dirty)
    params = {"generator": "hotspots.synthetic", "synthetic": True,
              "seed": int(rng) if isinstance(rng, int | np.integer) else None,
              "n_incidents": n, "start": str(d0), "end": str(d1),
              "dirty_fraction": float(dirty_fraction), "n_dirty": n_dirty,
              "hotspot_share": _HOTSPOT_SHARE, "repeat_address_share": _ADDRESS_SHARE,
              "seasonal_amplitude": _SEASON_AMPLITUDE, "seasonal_peak_day_of_year": 196,
              "steps": {k: {"date": str(d), "factor": f} for k, (d, f) in steps.items()}}
    plant["lsoa_weights"] = pd.DataFrame({"code": lsoas["code"].to_numpy(),
                                          "name": lsoas["name"].to_numpy(), "weight": lsoa_w})
    plant["steps"] = steps
    return _assemble(gen, r, reason, union, days, plant, params)


def _plant(gen, n, inner, lsoa_geoms, lsoa_p, days, steps):
    """Clean rows (integer codes, BNG points) from hotspots, addresses, callers, background;
    hotspots and streets are placed in the study area's own geometry."""
    weekday = (days.astype(np.int64) + 3) % 7
    doy = (days - days.astype("datetime64[Y]")).astype(np.int64)
    season = 1 + _SEASON_AMPLITUDE * np.cos(2 * np.pi * (doy - 196) / 365.25)
    # hotspot centres and streets (repeat addresses lie on these) apart from each other
    px, py = _spread_points(gen, inner, len(_HOTSPOTS) + len(_STREETS))
    hx, hy = px[:len(_HOTSPOTS)], py[:len(_HOTSPOTS)]
    sx, sy = px[len(_HOTSPOTS):], py[len(_HOTSPOTS):]
    hsd = np.array([h[2] for h in _HOTSPOTS], dtype=float)
    hw = np.array([h[3] for h in _HOTSPOTS])
    keys = ("x", "y", "cat", "day", "hour", "hot", "addr", "pc")
    parts: dict[str, list[np.ndarray]] = {k: [] for k in keys}

    def add(x, y, cat, day, hour, hot=-1, addr=-1, pc=-1):
        for key, val in zip(keys, (x, y, cat, day, hour, hot, addr, pc), strict=True):
            parts[key].append(np.broadcast_to(val, x.shape))

    hot_n = gen.multinomial(round(n * _HOTSPOT_SHARE), hw / hw.sum())
    for i, h in enumerate(_HOTSPOTS):
        m, step = hot_n[i], h[6]
        day_w = season * (np.where(days >= steps[step][0], steps[step][1], 1.0) if step else 1)
        x, y = _gauss_inside(gen, inner, np.full(m, hx[i]), np.full(m, hy[i]), np.full(m, hsd[i]))
        add(x, y, gen.choice(6, m, p=h[5]), *_times(gen, m, day_w, _profile(h[4]), weekday),
            hot=i)
    addr_n = np.maximum(5, np.rint(n * _ADDRESS_SHARE / len(_ADDRESSES)
                                   * gen.uniform(0.5, 1.5, len(_ADDRESSES)))).astype(np.int64)
    a_street = np.array([a[1] for a in _ADDRESSES])
    ax, ay = _gauss_inside(gen, inner, sx[a_street], sy[a_street], np.full(a_street.size, 60.0))
    evening = _profile("evening")
    for i, m in enumerate(addr_n):
        add(np.full(m, ax[i]), np.full(m, ay[i]), gen.choice(6, m, p=_ADDRESS_MIX),
            *_times(gen, m, season, evening, weekday), addr=i)
    caller_n = gen.integers(6, 41, _N_CALLERS)
    home_x, home_y = _lsoa_points(gen, lsoa_geoms, lsoa_p, _N_CALLERS)
    for i, m in enumerate(caller_n):
        day_w = season.copy()
        if i < _N_BURST_CALLERS:  # all reports within 120 days
            w0 = gen.integers(0, days.size - 120)
            day_w[:w0], day_w[w0 + 120:] = 0.0, 0.0
        day, hour = _times(gen, m, day_w, evening, weekday)
        home, k = gen.random(m) < 0.75, gen.integers(0, len(_HOTSPOTS), m)
        x, y = _gauss_inside(gen, inner, np.where(home, home_x[i], hx[k]),
                             np.where(home, home_y[i], hy[k]), np.where(home, 30.0, hsd[k]))
        add(x, y, gen.choice(6, m, p=_CALLER_MIX), day, hour, pc=i)
    n_bg = n - hot_n.sum() - addr_n.sum() - caller_n.sum()
    x, y = _lsoa_points(gen, lsoa_geoms, lsoa_p, n_bg)
    add(x, y, gen.choice(6, n_bg, p=_BG_MIX),
        *_times(gen, n_bg, season, _profile("background"), weekday))
    r = {k: np.concatenate(v) for k, v in parts.items()}

    r["minute"], r["second"] = gen.integers(0, 60, n), gen.integers(0, 60, n)
    # street: the hotspot's, the address's, else the nearest of _STREETS
    free = np.flatnonzero((r["hot"] < 0) & (r["addr"] < 0))
    dist, near = np.full(free.size, np.inf), np.zeros(free.size, dtype=np.int64)
    for j in range(len(_STREETS)):
        dj = (r["x"][free] - sx[j]) ** 2 + (r["y"][free] - sy[j]) ** 2
        near[dj < dist], dist = j, np.minimum(dist, dj)
    r["street"] = np.where(r["hot"] >= 0, len(_STREETS) + r["hot"], a_street[r["addr"]])
    r["street"][free] = near
    r["prefix"] = gen.integers(0, len(_LOCATION_PREFIXES), n)
    n_types = np.array([len(ts) for ts in _RAW_TYPES])
    first_type = np.concatenate([[0], np.cumsum(n_types)[:-1]])
    r["raw"] = first_type[r["cat"]] + (gen.random(n) * n_types[r["cat"]]).astype(np.int64)
    r["det"] = r["cat"] * 3 + gen.integers(0, 3, n)
    r["canisters"] = np.clip(np.rint(np.exp(gen.normal(1.2, 1.0, n))), 1, 200).astype(np.int64)

    # caller numbers (0 = none): planted ones, ordinary ones once (7% of them twice)
    export = _EXPORT_OF_CAT[r["cat"]]
    u = gen.random(n)
    has = (r["pc"] < 0) & (((export == 0) & (u < 0.85)) | ((export == 2) & (u < 0.80)))
    k = int(has.sum())
    twice = round(0.07 * k)
    ordinary = gen.permutation(np.concatenate([np.arange(k - twice),
                                               gen.choice(k - twice, twice, replace=False)]))
    ids = gen.permutation(k - twice + _N_CALLERS) + 1
    r["caller"] = np.zeros(n, dtype=np.int64)
    r["caller"][has] = ids[_N_CALLERS:][ordinary]
    r["caller"][r["pc"] >= 0] = ids[r["pc"][r["pc"] >= 0]]
    plant = {"hx": hx, "hy": hy, "hot_n": hot_n, "addr_n": addr_n, "ax": ax, "ay": ay,
             "a_street": a_street, "caller_n": caller_n, "home_x": home_x, "home_y": home_y,
             "caller_ids": ids[:_N_CALLERS]}
    return r, plant


def _dirty(gen, r, n_dirty):
    """Pick background rows to make dirty; duplicates copy an original. Returns reason codes."""
    n = r["x"].size
    export = _EXPORT_OF_CAT[r["cat"]]
    background = (r["hot"] < 0) & (r["addr"] < 0) & (r["pc"] < 0)
    kinds = gen.permutation(np.resize(np.arange(len(DIRTY_REASONS)), n_dirty))
    pools = [np.flatnonzero(background & (export == e)) for e in range(3)]
    allowed = np.array([[True, k not in _LATLON_ONLY, True] for k in DIRTY_REASONS])
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


def _assemble(gen, r, reason, union, days, plant, params) -> SyntheticData:
    """Corrupt the dirty rows, sort and number each export, and build the truth tables."""
    n = r["x"].size
    export = _EXPORT_OF_CAT[r["cat"]]
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
    lon[ll], lat[ll] = Transformer.from_crs(27700, 4326, always_xy=True).transform(x[ll], y[ll])
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
    raw = np.array([t for ts in _RAW_TYPES for t in ts], dtype=object)[r["raw"]]
    for e in ("asb", "drugs"):
        m = np.flatnonzero((reason == code["unknown_category"]) & (export == EXPORTS.index(e)))
        raw[m] = np.array(_UNKNOWN_TYPES[e], dtype=object)[gen.integers(0, 9, m.size)
                                                           % len(_UNKNOWN_TYPES[e])]

    # order by true time, duplicates appended as if from a later, overlapping export
    order = np.argsort(((export * 2 + dup) * days.size + r["day"]) * 86400 + sec, kind="stable")
    ref, row = np.empty(n, dtype=object), np.zeros(n, dtype=np.int64)
    year = days[r["day"]].astype("datetime64[Y]").astype(np.int64) + 1970
    pad = np.array([f"{i:06d}" for i in range(np.bincount(year - year.min()).max() + 1)],
                   dtype=object)
    rows = {}
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
    names = np.array(list(_STREETS) + [h[1] for h in _HOTSPOTS], dtype=object)
    places = np.array([p + s for p in _LOCATION_PREFIXES for s in names]
                      + [a[0] for a in _ADDRESSES], dtype=object)
    location = places[np.where(r["addr"] >= 0, len(_LOCATION_PREFIXES) * names.size + r["addr"],
                               r["prefix"] * names.size + r["street"])]
    width = max(5, len(str(r["caller"].max())))
    callers = np.array([""] + [f"C{i:0{width}d}" for i in range(1, r["caller"].max() + 1)],
                       dtype=object)[r["caller"]]
    details = np.array([f"SYNTHETIC - {d}" for d in _DETAILS], dtype=object)[r["det"]]
    frames = {}
    for name, cols in _COLUMNS.items():
        i = rows[name]
        when = stamp[name](i)
        bad = np.flatnonzero(reason[i] == code["unparseable_date"])
        when[bad] = np.array(_BAD_DATES[name], dtype=object)[gen.integers(0, 12, bad.size)
                                                             % len(_BAD_DATES[name])]
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
        "hotspot": np.array([h[0] for h in _HOTSPOTS] + [""], dtype=object)[r["hot"][all_i]],
        "repeat_address": np.array([a[0] for a in _ADDRESSES] + [""],
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
    hlon, hlat = Transformer.from_crs(27700, 4326, always_xy=True).transform(plant["hx"],
                                                                             plant["hy"])
    hotspots = pd.DataFrame({
        "name": [h[0] for h in _HOTSPOTS], "street": [h[1] for h in _HOTSPOTS],
        "x": plant["hx"], "y": plant["hy"], "lat": np.round(hlat, 6), "lon": np.round(hlon, 6),
        "sd_m": [float(h[2]) for h in _HOTSPOTS], "profile": [h[4] for h in _HOTSPOTS],
        "peak_window": [_PROFILES[h[4]][0] for h in _HOTSPOTS],
        "step_date": [str(steps[h[6]][0]) if h[6] else "" for h in _HOTSPOTS],
        "step_factor": [steps[h[6]][1] if h[6] else 1.0 for h in _HOTSPOTS],
        "n_planted": plant["hot_n"],
        "categories": [{CATEGORIES[c]: int(m) for c, m in enumerate(
            np.bincount(r["cat"][r["hot"] == i], minlength=6)) if m}
            for i in range(len(_HOTSPOTS))]})
    width = max(5, len(str(r["caller"].max())))
    callers = []
    for i, num in enumerate(plant["caller_ids"]):
        d = r["day"][r["pc"] == i]
        callers.append({"caller": f"C{num:0{width}d}", "n_reports": int(plant["caller_n"][i]),
                        "home_x": float(plant["home_x"][i]), "home_y": float(plant["home_y"][i]),
                        "first_date": str(days[d.min()]), "last_date": str(days[d.max()]),
                        "max_in_182_days": _max_in_window(d)})
    addresses = pd.DataFrame({"address": [a[0] for a in _ADDRESSES],
                              "street": names[plant["a_street"]], "x": plant["ax"],
                              "y": plant["ay"], "n_reports": plant["addr_n"]})
    return {"hotspots": hotspots, "callers": pd.DataFrame(callers), "addresses": addresses}


def _mapping_toml(name: str) -> str:
    q = json.dumps
    lines = [f"# SYNTHETIC data: mapping of {_FILES[name]} to hotspots fields.",
             f"source = {q('synthetic-' + name)}"]
    if name == "nox":
        lines.append('sheet = "Sightings"')
    else:
        lines.append(f"date_format = {q(_DATE_FORMATS[name])}")
    lines += ["", "[columns]"] + [f"{k} = {q(c)}" for k, c in _COLUMNS[name].items()]
    lines += ["", "[categories]"]
    for cat, types in zip(CATEGORIES, _RAW_TYPES, strict=True):
        if EXPORTS[_EXPORT_OF_CAT[CATEGORIES.index(cat)]] == name:
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
    paths = {name: out / f for name, f in _FILES.items()}
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
