"""Area maps: the choropleth of a measure per area (:func:`area_map`), its popups
(busiest streets, never an address) and one layer of repeat locations per category.

The areas are drawn by :func:`hotspots.maps.base.shapes_layer`, like the detection layers:
an area's popup and tooltip travel as its values alone (numbers as text, the counts by
type as numbers), and the page holds their lines once and puts the values in as text
nodes. London's 4,994 LSOAs: a page of 1.9 MB, of which the shapes take 0.8 MB, the
values 0.7 MB and the colours (one style per colour) 0.04 MB."""

from __future__ import annotations

from pathlib import Path

import branca.colormap as cm
import folium
import geopandas as gpd
import numpy as np
import pandas as pd

from .. import webgeom
from ..config import Config
from ..schema import WEB_CRS
from ..summary import repeated_codes
from .base import _esc, _fmt, _framed_map, _rate, _title_and_controls, lonlat, shapes_layer

MEASURE_LABELS = {
    "n": "Incidents",
    "harm": "Harm-weighted incidents",
    "density_per_km2": "Incidents per km²",
    "harm_per_km2": "Harm-weighted incidents per km²",
    "repeat_share": "Share of incidents at repeat locations",
    "change": "Change against the previous period (incidents)",
    "per_1000_residents": "Incidents per 1,000 residents",
}
#: At most this many location markers per category layer (the HTML stays bounded).
MAX_MARKERS_PER_CATEGORY = 300


def _popup_lines(meta: dict) -> list[list]:
    """The lines of every area's popup (as :data:`hotspots.maps.base._TEXT_JS` takes them):
    text, and indexes of the values :func:`_popup_values` gives each area."""
    measure = MEASURE_LABELS.get(meta["rank_by"], meta["rank_by"])
    return [[[0, " (", 1, ")"]],
            ["Rank ", 2, f" by {measure}, {meta['period']}"],
            ["Incidents: ", 3, " in ", 4, " km² = ", 5, " per km²"],
            ["Harm-weighted: ", 6],
            ["Per 1,000 residents: ", 7, " (", 8, " residents)"],
            ["Repeat locations: ", 9, ", holding ", 10, "% of incidents"],
            [f"Previous period ({meta['previous']}): ", 11, "; change ", 12],
            ["By type: ", 13],
            ["Busiest streets: ", 14]]


def _popup_values(row: dict, meta: dict, cats: list[str], top: list[tuple[str, int]]) -> list:
    """One area's values for :func:`_popup_lines`, as text; None leaves a line out. The
    counts by type are numbers in the order of ``cats`` (the page names and sorts them)."""
    rate = ("residents" in row and (pd.notna(row["residents"]) or meta.get("population")))
    counts = [int(row.get(f"n_{c}", 0)) for c in cats]
    return [str(row["name"]), str(row["code"]), str(row["rank"]), _fmt(int(row["n"])),
            _fmt(row["area_km2"], 2), _fmt(row["density_per_km2"]), _fmt(row["harm"]),
            _rate(row["per_1000_residents"]) if rate else None,
            _fmt(row["residents"], 0) if rate else None,
            _fmt(int(row["repeat_locations"])), _fmt(100 * row["repeat_share"], 0),
            _fmt(int(row["n_prev"])), f"{int(row['change']):+d}",
            counts if any(counts) else None,
            "; ".join(f"{t} ({c})" for t, c in top) or None]


def _street_names(locations: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """:func:`hotspots.cluster.street_name` of each location text, worked out once per
    distinct text (a London month repeats a few thousand streets 90,000 times), as
    ``(codes, names)``: each incident's street is ``names[code]``, and ``code`` is -1 where
    no street is recorded. ``names`` are distinct."""
    from ..cluster import street_name  # not at import: cluster brings scikit-learn

    codes, uniq = pd.factorize(locations.astype(str))
    street_of, names = pd.factorize(pd.Series([street_name(t) or None for t in uniq],
                                              dtype=object))
    return street_of[codes], names.to_numpy(dtype=object)


def _top_locations(incidents: pd.DataFrame, streets: tuple[np.ndarray, np.ndarray], col: str,
                   k: int = 3) -> dict[str, list]:
    """Each area's busiest streets with 2 or more incidents: street names only
    (``streets``, of each incident, from :func:`_street_names`), never an address or a
    single incident (these maps are circulated); ties by street name."""
    street, names = streets
    # counted on integer codes: a national year is millions of rows, and pandas' groupby
    # on two text columns took seconds
    area, codes = pd.factorize(incidents[col].to_numpy(dtype=object))
    named = (street >= 0) & (area >= 0)
    pairs, n = np.unique(area[named].astype(np.int64) * max(len(names), 1) + street[named],
                         return_counts=True)
    by_name = np.empty(len(names), dtype=np.int64)
    by_name[np.argsort(names, kind="stable")] = np.arange(len(names))
    busy = pd.DataFrame({"area": pairs // max(len(names), 1),
                         "street": pairs % max(len(names), 1), "n": n}).loc[n >= 2]
    busy = busy.iloc[np.lexsort((by_name[busy["street"]], -busy["n"], busy["area"]))]
    busy = busy.loc[busy.groupby("area").cumcount() < k]
    top: dict[str, list] = {}
    for area_i, street_i, n_i in zip(busy["area"].tolist(), busy["street"].tolist(),
                                     busy["n"].tolist(), strict=True):
        top.setdefault(codes[area_i], []).append((names[street_i], n_i))
    return top


def area_map(table: gpd.GeoDataFrame, meta: dict, *, config: Config,
             incidents: pd.DataFrame | None = None, measure: str = "density_per_km2",
             title: str | None = None, cache: str | Path | None = None) -> folium.Map:
    """Choropleth of ``measure`` per area, with one layer of busiest locations per category.

    Parameters
    ----------
    table, meta : from :func:`hotspots.summary.area_summary`.
    incidents : the period's incidents (EPSG:27700) for location layers and popups.
    cache : the geodata cache folder, where the simplified areas are kept for the next
        map (:func:`hotspots.webgeom.simplified`).
    """
    if measure not in MEASURE_LABELS:
        raise ValueError(f"measure = '{measure}'; use one of {list(MEASURE_LABELS)}.")
    tolerance = webgeom.web_tolerance_m(table)
    web = webgeom.simplified(table, tolerance_m=tolerance, cache=cache).to_crs(WEB_CRS)
    col = f"{meta['level']}_code"
    streets, top = None, {}
    if incidents is not None:
        streets = _street_names(incidents["location"])
        top = _top_locations(incidents, streets, col)
    values = web[measure].astype(float)
    if measure != "per_1000_residents":  # a rate with no residents stays n/a
        values = values.fillna(0)
    vmin, vmax = float(values.min(skipna=True)), float(values.max(skipna=True))
    if np.isnan(vmin):
        vmin = vmax = 0.0
    if measure == "change":
        bound = max(abs(vmin), abs(vmax), 1.0)
        cmap = cm.LinearColormap(["#2166ac", "#f7f7f7", "#b2182b"], vmin=-bound, vmax=bound)
    else:
        cmap = cm.LinearColormap(["#ffffb2", "#fecc5c", "#fd8d3c", "#f03b20", "#bd0026"],
                                 vmin=vmin, vmax=vmax if vmax > vmin else vmin + 1)
    level_name = meta.get("level_label") or config.layer_label(meta["level"])
    cmap.caption = (f"{MEASURE_LABELS[measure]} by {level_name}, {meta['period']} "
                    f"(previous: {meta['previous']})")
    m = _framed_map(web, config)
    # the counts by type in the order of their keys: ties show in that order, as before
    cats = sorted(c[2:] for c in table.columns if c.startswith("n_") and c not in
                  ("n_prev", "n_at_repeat"))
    shown = [_rate(v) if measure == "per_1000_residents" else _fmt(v) for v in values]
    # each area's popup values and, last, its value as the tooltip shows it
    texts = [[*_popup_values(r, meta, cats, top.get(r["code"], [])), v] for r, v in
             zip(table.drop(columns="geometry").to_dict("records"), shown, strict=True)]
    colours, fills = pd.factorize(pd.Series(["#cccccc" if np.isnan(v) else cmap(v)
                                             for v in values.round(4)]))
    layer = folium.FeatureGroup(name=_esc(f"{MEASURE_LABELS[measure]} by {level_name}"))
    shapes_layer(layer, web, values=texts, scale=webgeom.pack_scale(tolerance),
                 styles=[{"fillColor": c, "color": "#555", "weight": 0.8, "fillOpacity": 0.65}
                         for c in fills],
                 style_of=colours.tolist(), highlight={"weight": 3, "color": "#000"},
                 tooltip=[[0, " (", 1, "): ", len(texts[0]) - 1]] if texts else None,
                 popup={"lines": _popup_lines(meta), "width": 360,
                        "names": [config.label(c) for c in cats]})
    layer.add_to(m)
    cmap.add_to(m)
    if incidents is not None and streets is not None and not incidents.empty:
        _category_layers(m, incidents, streets, config)
    heading = title or f"{config.name}: {MEASURE_LABELS[measure].lower()}, {meta['period']}"
    note = (f"{meta['incidents']:,} incidents, categories: "
            + ", ".join(config.label(c) for c in meta["categories"]))
    _title_and_controls(m, heading, note)
    return m


def _category_layers(m: folium.Map, incidents: pd.DataFrame,
                     streets: tuple[np.ndarray, np.ndarray], config: Config) -> None:
    """One layer per category: its repeat locations (2 or more incidents) as circles sized
    by count, labelled by street (``streets``, of each incident, from
    :func:`_street_names`): the first incident's in the order of ``source, ref`` (the
    store's order; the row order when the incidents have no ``source, ref``).

    Record text travels as escaped GeoJSON properties (never inside a JS template)."""
    cat_of, cats = pd.factorize(incidents["category"].to_numpy(dtype=object))
    # a repeat location in a category is a repeat location overall: the pairs are found
    # among the incidents at those (a national year is millions of rows, most keys on one)
    key_of, keys = repeated_codes(incidents["location_key"].to_numpy(dtype=object))
    at = np.flatnonzero((key_of >= 0) & (cat_of >= 0))
    width = len(keys) if len(keys) else 1
    pairs, group, size = np.unique(cat_of[at].astype(np.int64) * width + key_of[at],
                                   return_inverse=True, return_counts=True)
    # repeat locations only (a single incident's point is not circulated), the busiest of
    # each category: chosen on counts, then only their incidents are read for the rest
    shown = pd.DataFrame({"category": cats[pairs // width], "location_key": keys[pairs % width],
                          "n": size})
    shown = (shown.loc[size >= 2]
             .sort_values(["category", "n", "location_key"], ascending=[True, False, True])
             .groupby("category", sort=False).head(MAX_MARKERS_PER_CATEGORY))
    chosen = np.zeros(len(size), dtype=bool)
    chosen[shown.index.to_numpy()] = True
    rows = np.sort(at[chosen[group]])
    street, names = streets
    sub = incidents.iloc[rows].reset_index(drop=True).assign(
        text=np.append(names, "(no street recorded)")[street[rows]])
    if {"source", "ref"} <= set(sub.columns):  # the store's order, whatever the rows' order
        sub = sub.sort_values(["source", "ref"])
    loc = (sub.groupby(["category", "location_key"], sort=False)
           .agg(x=("x", "mean"), y=("y", "mean"), text=("text", "first"))
           .join(shown.set_index(["category", "location_key"]))
           .reset_index()
           .sort_values(["category", "n", "location_key"], ascending=[True, False, True]))
    lon, lat = lonlat(loc["x"].to_numpy(), loc["y"].to_numpy())
    loc = loc.assign(lon=np.round(lon, 6), lat=np.round(lat, 6))
    counts = dict(zip(cats, np.bincount(cat_of, minlength=len(cats)).tolist(), strict=True))
    for cat, grp in loc.groupby("category", sort=True):
        label = config.label(cat)
        feats = gpd.GeoDataFrame(
            {"n": grp["n"].to_numpy(),
             "popup_html": [f"<b>{_esc(label)}</b><br>{_esc(t)}<br>{n} incident(s) in the period"
                            for t, n in zip(grp["text"], grp["n"], strict=True)]},
            geometry=gpd.points_from_xy(grp["lon"], grp["lat"]), crs=WEB_CRS)
        folium.GeoJson(
            feats.to_json(drop_id=True, to_wgs84=False),
            name=_esc(f"{label}: busiest locations ({counts[cat]:,} incidents)"), show=False,
            marker=folium.CircleMarker(radius=5, weight=1, color="#333", fill=True,
                                       fill_color="#6a3d9a", fill_opacity=0.6),
            style_function=lambda f: {"radius": 3 + 2 * float(f["properties"]["n"]) ** 0.5},
            popup=folium.GeoJsonPopup(fields=["popup_html"], labels=False, max_width=300),
        ).add_to(m)
