"""The invented town behind :mod:`hotspots.synthetic`: taxonomy, export layouts, planted
hotspots, streets, repeat addresses, hour x weekday profiles and mixes, and
:class:`SyntheticData`, the exports with their planted truth.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

CATEGORIES = ("asb_personal", "asb_nuisance", "asb_environmental", "nox_sighting",
              "drug_dealing", "drug_use")
EXPORTS = ("asb", "nox", "drugs")
DIRTY_REASONS = ("missing_coordinates", "zero_coordinates", "swapped_latlon", "grid_in_latlon",
                 "outside_study_area", "unparseable_date", "future_date", "unknown_category",
                 "duplicate_reference")
EXPORT_OF_CAT = np.array([0, 0, 0, 1, 2, 2])
LATLON_ONLY = ("swapped_latlon", "grid_in_latlon", "unknown_category")  # not in the NOx sheet
RAW_TYPES = (("Neighbour dispute", "Harassment/Intimidation", "Threatening behaviour"),
              ("Rowdy/Nuisance Behaviour", "Noise", "Street drinking", "Begging"),
              ("Fly-tipping", "Abandoned vehicle", "Graffiti", "Littering"),
              ("Nitrous oxide canisters",), ("Drug dealing",), ("Drug use",))
UNKNOWN_TYPES = {"asb": ("Other (see notes)", "TBC", "Misc enquiry"),
                  "drugs": ("Suspicious activity", "Other")}
BAD_DATES = {"asb": ("31/02/2023 14:10", "TBC", "2023-13-45 10:00", "00/00/0000 00:00"),
              "nox": ("TBC", "31/02/2023", "n/k"),
              "drugs": ("2023-02-30 21:15:00", "unknown", "2023-13-01 00:00:00")}
DETAILS = (  # three per category, in CATEGORIES order
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
PLANTED_HOTSPOTS = (
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
STREETS = (  # location text for points away from the hotspots: the nearest of these
    "Ivelford Road", "Quenmarsh Street", "Haddowgate Lane", "Sorrelby Road",
    "Pennicott Street", "Warrowfield Road", "Dunmerrow Lane", "Feltingham Street",
    "Gorsewick Road", "Calloway Rise", "Mardenholt Street", "Tinsley Ferrow Road",
    "Ashcombe Vale", "Brackenmoor Street", "Elderwick Lane", "Rookhaven Road",
    "Swallowmere Street", "Kettleby Road", "Lindenhurst Lane", "Copperfold Street",
    "Nettlecombe Road", "Heronsgate Walk",
)
ADDRESSES = (  # invented blocks on the invented streets (index into STREETS)
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
LOCATION_PREFIXES = ("", "near ", "outside shops, ", "by the bus stop, ")
_ALL = (0, 1, 2, 3, 4, 5, 6)
PROFILES = {  # peak window text, (weekdays Mon=0, start hour, hours, weight) windows
    "night": ("Fri-Sat 20:00-02:00", (((4, 5), 20, 6, 10.0), ((0, 1, 2, 3, 6), 20, 4, 1.5))),
    "market": ("Mon-Sat 10:00-17:00", (((0, 1, 2, 3, 4, 5), 10, 7, 4.0), (_ALL, 18, 4, 1.0))),
    "dealing": ("daily 14:00-23:00", ((_ALL, 14, 9, 4.0),)),
    "evening": ("daily 17:00-23:00", ((_ALL, 17, 6, 3.0), ((4, 5), 21, 4, 2.0))),
    "park": ("Sat-Sun 13:00-22:00", (((5, 6), 13, 9, 6.0), ((0, 1, 2, 3, 4), 17, 5, 1.5))),
    "background": ("", ()),
}
BASE_HOURS = np.array([.3, .2, .15, .1, .1, .1, .15, .3, .5, .6, .7, .8, .8, .8, .8, .9, 1,
                        1, 1.1, 1.1, 1, .9, .7, .5])
STEP_CHANGES = {"rise": (0.75, 2.5), "fall": (0.5, 0.3)}  # fraction of the period, rate factor
HOTSPOT_SHARE, ADDRESS_SHARE, SEASON_AMPLITUDE = 0.65, 0.025, 0.25
BG_MIX = (.12, .25, .18, .15, .15, .15)
ADDRESS_MIX = (.35, .35, 0, 0, .10, .20)
CALLER_MIX = (.35, .35, 0, 0, .20, .10)
N_CALLERS, N_BURST_CALLERS = 8, 4
MIN_INCIDENTS = 2000
EXPORT_COLUMNS = {
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
DATE_FORMATS = {"asb": "%d/%m/%Y %H:%M", "drugs": "%Y-%m-%d %H:%M:%S"}
EXPORT_FILES = {"asb": "synthetic-asb.csv", "nox": "synthetic-nox.xlsx",
                "drugs": "synthetic-drugs.csv"}


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
