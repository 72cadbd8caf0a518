"""What one filtered view shows: the places, incidents and decisions in chosen areas, the
category mix and the monthly series, and a table's readable headings.

The app's sidebar filters (period, categories, areas of the main layer) drive every part
of a page through these functions, so the table, the counts, the charts, the decision list
and the downloads always agree. Plain functions on DataFrames: no I/O, nothing modified.
"""

from __future__ import annotations

import difflib
import functools
from collections.abc import Callable, Iterable, Mapping

import numpy as np
import pandas as pd
import shapely

from . import geography
from .assign import assign_codes
from .cluster import find_places
from .config import Config
from .errors import HotspotsError
from .summary import Period, in_period


def in_areas(frame: pd.DataFrame, codes: Iterable[str], area: Iterable) -> pd.DataFrame:
    """The rows of ``frame`` whose area (``area``, one code per row, in row order) is one
    of ``codes``; every row when ``codes`` is empty."""
    codes = list(codes)
    if not codes:
        return frame
    return frame.loc[np.isin(np.asarray(list(area), dtype=object), codes)]


def choose_areas(layer: pd.DataFrame, wanted: Iterable[str], *, kind: str = "area",
                 option: str = "--areas") -> tuple[list[str], str]:
    """The codes of the areas of ``layer`` (``code``, ``name``) named in ``wanted`` by code
    or name (any case), and the names joined for a heading: what the app's area filter
    chooses, for a command. An unknown one is refused with the nearest names, a name
    that several areas share with their codes."""
    by_key: dict[str, list] = {}
    for c, n in zip(layer["code"], layer["name"], strict=True):
        for k in {str(c).casefold(), str(n).casefold()}:
            by_key.setdefault(k, []).append((c, n))
    codes, names = [], []
    for w in (w.strip() for w in wanted):
        if not w:
            continue
        found = by_key.get(w.casefold(), [])
        if len(found) > 1:  # ward names repeat across London
            raise HotspotsError(f"{option}: {w!r} names {len(found)} {kind}s ("
                                f"{', '.join(str(c) for c, _ in found)}); give the code of "
                                "the one meant.")
        if not found:
            near = difflib.get_close_matches(w, list(layer["name"].astype(str)), n=3)
            hint = f"did you mean {', '.join(repr(n) for n in near)}? " if near else ""
            raise HotspotsError(
                f"{option}: {w!r} is not a {kind} of this area; {hint}give {kind} codes or "
                f"names as `hotspots summarise --level {kind}` lists them.")
        code, name = found[0]
        if code not in codes:
            codes.append(code)
            names.append(str(name))
    return codes, ", ".join(names)


def area_codes(frame: pd.DataFrame, layers: Mapping, config: Config,
               key: str | None = None) -> np.ndarray:
    """The area (code) of each incident or place of ``frame`` in a layer (default: the
    main layer), as the area filter reads it: :func:`hotspots.geography.layer_codes`, with
    places placed by a point on their surface (a table without shapes or coordinates: by
    its LSOA, for layers built from LSOAs)."""
    key = key or config.main_layer
    if key in config.stored_layers and f"{key}_code" in frame.columns:
        return frame[f"{key}_code"].to_numpy(dtype=object)
    if "x" not in frame.columns and "geometry" not in frame.columns:
        frame = frame.assign(x=np.nan, y=np.nan)
    elif "x" not in frame.columns:
        pts = shapely.point_on_surface(np.asarray(frame.geometry.values))
        frame = pd.DataFrame({"x": shapely.get_x(pts), "y": shapely.get_y(pts),
                              "lsoa_code": frame["lsoa_code"].to_numpy(dtype=object)})
    return geography.layer_codes(frame, dict(layers), config, key)


def decision_areas(decisions: pd.DataFrame, layer) -> np.ndarray:
    """The area (code in ``layer``, a GeoDataFrame of ``code`` polygons in EPSG:27700) of
    each decision's place, by a point on the surface of its ``geometry_wkt``; "" when the
    place has no shape or lies outside every area."""
    if decisions.empty:
        return np.array([], dtype=object)
    shapes = shapely.from_wkt(decisions["geometry_wkt"].fillna("").replace("", None)
                              .to_numpy(dtype=object))
    missing = shapely.is_missing(shapes)
    pts = shapely.point_on_surface(np.where(missing, shapely.Point(0, 0), shapes))
    codes = assign_codes(shapely.get_x(pts), shapely.get_y(pts), layer)
    return np.where(missing, "", np.asarray(codes, dtype=object))


def category_mix(incidents: pd.DataFrame, label_of: Callable[[str], str]) -> pd.DataFrame:
    """Incidents by category, biggest first: columns ``category`` (the label) and ``n``."""
    counts = incidents["category"].value_counts()
    return pd.DataFrame({"category": [label_of(c) for c in counts.index],
                         "n": counts.to_numpy(dtype=int)})


def monthly_series(incidents: pd.DataFrame, end_month: str, months: int = 12) -> pd.DataFrame:
    """Incidents per month for the ``months`` months to ``end_month`` (``YYYY-MM``), months
    without incidents as 0, oldest first: columns ``month`` (``YYYY-MM``) and ``n``. Counts
    by each record's ``period`` (police.uk rows are dated by month)."""
    end = pd.Period(end_month, "M")
    index = [str(end - k) for k in range(months - 1, -1, -1)]
    counts = incidents["period"].astype(str).value_counts()
    return pd.DataFrame({"month": index,
                         "n": counts.reindex(index).fillna(0).to_numpy(dtype=int)})


def _rounded(v, *, digits: int):
    if isinstance(v, str):  # a number read back from a CSV as text beside a "[c]"
        try:
            v = float(v)
        except ValueError:
            return v
    if pd.isna(v):
        return v
    return round(float(v), digits) if digits else int(round(v))


def readable(frame: pd.DataFrame, columns: Mapping[str, tuple[str, int | None]]) -> pd.DataFrame:
    """``frame``'s ``columns`` (name -> (heading, digits or None for text)) under their
    headings, numbers (also numbers written as text) rounded to their digits; other text
    (a suppressed ``"<5"`` or ``"[c]"``) stays as it is, and makes its column text (the
    rounded numbers written out). A column of numbers only stays numeric."""
    out = {}
    for col, (heading, digits) in columns.items():
        if col not in frame.columns:
            continue
        values = frame[col]
        if digits is not None:
            rounded = values.map(functools.partial(_rounded, digits=digits))
            # a column with "<5" or "[c]" is text throughout (as a table shows it)
            values = (rounded.map(lambda v: "" if pd.isna(v) else str(v))
                      if rounded.map(lambda v: isinstance(v, str)).any()
                      else pd.to_numeric(rounded))
        out[heading] = values.to_numpy()
    return pd.DataFrame(out, index=frame.index)


def period_places(incidents: pd.DataFrame, *, period: Period, layers: Mapping, area,
                  config: Config):
    """The places of ``period``: :func:`hotspots.cluster.find_places` called as
    :func:`hotspots.pack.build_pack` and :func:`hotspots.jobs.detect` call it (the period's
    incidents, DBSCAN, the land area, ward and LSOA names), so the place ids and shapes are
    the ones the pack ranks. ``incidents`` may run over a longer window; ``area`` is the
    land area (a shapely geometry in EPSG:27700). A GeoDataFrame in EPSG:27700."""
    cur = incidents.loc[in_period(incidents, period)].reset_index(drop=True)
    names = {c: n for key in ("ward", "lsoa") if key in layers
             for c, n in zip(layers[key]["code"], layers[key]["name"], strict=True)}
    return find_places(cur, config=config, method="dbscan", area_km2=area.area / 1e6,
                       names=names)


def place_of_incidents(incidents: pd.DataFrame, places) -> np.ndarray:
    """The place (``place_id``) each incident lies in, "" for none: the pack's rule (one
    place each where places overlap, :func:`hotspots.assign.assign_codes`)."""
    if len(places) == 0 or len(incidents) == 0:
        return np.full(len(incidents), "", dtype=object)
    shapes = places[["place_id", "geometry"]].rename(columns={"place_id": "code"})
    return np.asarray(assign_codes(incidents["x"].to_numpy(), incidents["y"].to_numpy(),
                                   shapes), dtype=object)
