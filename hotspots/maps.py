"""Folium maps: the one place that converts to EPSG:4326 for the web.

Text from records, boundary files and the configuration is escaped before it reaches
the page: Leaflet puts tooltip and popup contents and layer-control names into the page
as HTML (folium does not escape them), so every tooltip field, popup and layer name is
built from escaped parts only. The title box is escaped; legend captions are drawn as
text by d3.
"""

from __future__ import annotations

import html
import re
from importlib import resources
from pathlib import Path

import branca.colormap as cm
import folium
import folium.plugins
import folium.template
import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
from folium.utilities import JsCode

from . import webgeom
from .cluster import street_name
from .config import Config
from .errors import HotspotsError
from .schema import WEB_CRS, WORKING_CRS

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


#: CDN assets folium and branca link, replaced by the packaged copies (see assets/README.md).
_INLINE = {name: name for name in ("leaflet.js", "leaflet.css", "d3.min.js", "leaflet.draw.js",
                                   "leaflet.draw.css")}
_LINK = re.compile(r'<(script) src="(https?://[^"]+)"></script>|'
                   r'<(link) rel="stylesheet" href="(https?://[^"]+)"/?>')


def _asset(name: str) -> str:
    return resources.files("hotspots").joinpath("assets", name).read_text("utf-8")


def map_html(m: folium.Map) -> str:
    """The map as one HTML page that needs no network apart from map tiles: Leaflet and
    d3 are inlined, folium's unused defaults (jQuery, Bootstrap, icon fonts) dropped."""
    page = m.get_root().render()

    def inline(match: re.Match) -> str:
        url = match.group(2) or match.group(4)
        name = url.rsplit("/", 1)[-1]
        if name not in _INLINE:
            return ""
        body = _asset(_INLINE[name])
        return f"<script>{body}</script>" if match.group(1) else f"<style>{body}</style>"

    return _LINK.sub(inline, page)


def save_map(m: folium.Map, path: str | Path) -> Path:
    """Write :func:`map_html` to ``path``."""
    path = Path(path)
    path.write_text(map_html(m), encoding="utf-8")
    return path


#: Title box; in a narrow frame (a phone, a map inside a page) it moves to the bottom, clear
#: of the colour legend, and the legend shrinks.
_PAGE_CSS = """<style>
.hs-title{position:fixed;top:10px;left:60px;z-index:1000;background:white;padding:6px 10px;
 border:1px solid #999;font:14px sans-serif;max-width:45%}
.hs-title span{font-size:12px}
@media (max-width:900px){.hs-title{top:auto;bottom:52px;left:8px;right:8px;max-width:none;
 font-size:12px}.hs-title span{font-size:11px}
 .legend{transform:scale(.72);transform-origin:top right}}
@media print{.leaflet-control-layers,.leaflet-control-zoom{display:none}}
.hs-notiles-box{display:none;position:fixed;bottom:30px;left:50%;transform:translateX(-50%);
 z-index:1001;max-width:40%;background:#fff3cd;border:1px solid #b58900;padding:6px 10px;
 font:13px sans-serif}
.hs-notiles .hs-notiles-box{display:block}
body:not(:has(.hs-street)) .hs-notiles-streets{display:none}
.hs-street{display:none}
.hs-notiles .hs-street{display:block;position:absolute;left:22px;top:1px;white-space:nowrap;
 background:white;color:#3f007d;border:1px solid #3f007d;padding:0 4px;line-height:16px;
 font:bold 12px sans-serif}
@media (max-width:900px){.hs-notiles-box{top:8px;bottom:auto;left:56px;right:8px;
 transform:none;max-width:none;font-size:12px}
 .hs-notiles .leaflet-top.leaflet-right,.hs-notiles .hs-legend{margin-top:64px}}
.hs-legend{max-width:45%}
@media (max-width:900px){.hs-legend{transform:scale(.8);transform-origin:top right}}
</style>"""


def _tiles(config: Config) -> dict:
    """folium.Map's tile arguments: the configured tile server ([patrol] tile_url)."""
    return {"tiles": config.patrol.tile_url, "attr": _esc(config.patrol.tile_attribution)}


#: Shown when no tile loads: the map says so, and the place labels name the streets.
NO_TILES_NOTE = "No map tiles: the tile server cannot be reached, so streets are not drawn."
#: Added to the note on a map with numbered places.
NO_TILES_STREETS = "The numbered labels name the streets."


class _TileNotice(folium.MacroElement):
    """Marks the page ``hs-notiles`` when the map's tiles fail (an error before any tile
    has loaded, or nothing loaded within 8 s): the notice and the street labels show."""

    _template = folium.template.Template("""
    {% macro script(this, kwargs) %}
    (function (map) {
      var loaded = false;
      function fail() { if (!loaded) { document.body.classList.add("hs-notiles"); } }
      map.eachLayer(function (layer) {
        if (layer instanceof L.TileLayer) {
          layer.on("tileload", function () {
            loaded = true; document.body.classList.remove("hs-notiles");
          });
          layer.on("tileerror", fail);
        }
      });
      setTimeout(fail, 8000);
    })({{ this._parent.get_name() }});
    {% endmacro %}""")


def _title_and_controls(m: folium.Map, heading: str, note: str) -> None:
    m.get_root().header.add_child(folium.Element(_PAGE_CSS))
    m.get_root().html.add_child(folium.Element(
        f"<div class='hs-title'><b>{_esc(heading)}</b><br><span>{_esc(note)}</span></div>"))
    m.get_root().html.add_child(folium.Element(
        f"<div class='hs-notiles-box' role='status'>{_esc(NO_TILES_NOTE)}"
        f"<span class='hs-notiles-streets'> {_esc(NO_TILES_STREETS)}</span></div>"))
    _TileNotice().add_to(m)
    folium.LayerControl(collapsed=True, position="topleft").add_to(m)


def _esc(value) -> str:
    return html.escape(str(value), quote=True)


def _rate(v) -> str:
    return "n/a" if pd.isna(v) else f"{v:,.1f}"


def _fmt(v, digits=1) -> str:
    if isinstance(v, float | np.floating):
        return "–" if np.isnan(v) else f"{v:,.{digits}f}"
    return f"{v:,}"


def _area_popup(row: dict, meta: dict, config: Config, top: list[tuple[str, int]]) -> str:
    cats = [(c[2:], int(row[c])) for c in row if c.startswith("n_") and c not in
            ("n_prev", "n_at_repeat") and row[c] > 0]
    cats.sort(key=lambda kv: (-kv[1], kv[0]))
    lines = [
        f"<b>{_esc(row['name'])}</b> ({_esc(row['code'])})",
        f"Rank {_esc(row['rank'])} by {_esc(MEASURE_LABELS.get(meta['rank_by'], meta['rank_by']))}"
        f", {_esc(meta['period'])}",
        f"Incidents: {_fmt(int(row['n']))} in {_fmt(row['area_km2'], 2)} km² = "
        f"{_fmt(row['density_per_km2'])} per km²",
        f"Harm-weighted: {_fmt(row['harm'])}",
        *([f"Per 1,000 residents: {_rate(row['per_1000_residents'])} ("
           f"{_fmt(row['residents'], 0)} residents)"] if "residents" in row
          and (pd.notna(row["residents"]) or meta.get("population")) else []),
        f"Repeat locations: {_fmt(int(row['repeat_locations']))}, holding "
        f"{_fmt(100 * row['repeat_share'], 0)}% of incidents",
        f"Previous period ({_esc(meta['previous'])}): {_fmt(int(row['n_prev']))}; change "
        f"{int(row['change']):+d}",
    ]
    if cats:
        lines.append("By type: " + "; ".join(f"{_esc(config.label(k))} {v}" for k, v in cats))
    if top:
        lines.append("Busiest streets: " + "; ".join(f"{_esc(t)} ({c})" for t, c in top))
    return "<br>".join(lines)


def _street_names(locations: pd.Series) -> pd.Series:
    """:func:`hotspots.cluster.street_name` of each location text, worked out once per
    distinct text (a London month repeats a few thousand streets 90,000 times)."""
    codes, uniq = pd.factorize(locations.astype(str))
    names = np.array([street_name(t) for t in uniq] + [""], dtype=object)
    return pd.Series(names[codes], index=locations.index)


def _top_locations(incidents: pd.DataFrame, col: str, k: int = 3) -> dict[str, list]:
    """Each area's busiest streets with 2 or more incidents: street names only, never an
    address or a single incident (these maps are circulated)."""
    if incidents.empty:
        return {}
    streets = _street_names(incidents["location"])
    g = (incidents.assign(street=streets).loc[streets != ""]
         .groupby([col, "street"]).size().rename("n").reset_index())
    g = g.loc[g["n"] >= 2].sort_values([col, "n", "street"], ascending=[True, False, True])
    return {code: list(zip(grp["street"].head(k), grp["n"].head(k), strict=True))
            for code, grp in g.groupby(col)}


def _framed_map(web: gpd.GeoDataFrame, config: Config, *,
                outline: gpd.GeoDataFrame | None = None) -> folium.Map:
    """A map framed on ``web`` (EPSG:4326) with the configured tiles; with ``outline``
    (the study area's polygons, EPSG:27700), its outline (:func:`hotspots.webgeom.outline`)
    as a fixed, unlisted layer."""
    minx, miny, maxx, maxy = web.total_bounds
    m = folium.Map(location=[(miny + maxy) / 2, (minx + maxx) / 2], zoom_start=13,
                   **_tiles(config), control_scale=True)
    m.fit_bounds([[miny, minx], [maxy, maxx]])
    if outline is not None:
        shape = gpd.GeoSeries([webgeom.outline(outline)], crs=outline.crs).to_crs(WEB_CRS)
        folium.GeoJson(shape.set_precision(1e-6).to_json(), name="Study area",
                       style_function=lambda f: {"fill": False, "color": "#333", "weight": 2},
                       control=False).add_to(m)
    return m


def area_map(table: gpd.GeoDataFrame, meta: dict, *, config: Config,
             incidents: pd.DataFrame | None = None, measure: str = "density_per_km2",
             title: str | None = None) -> folium.Map:
    """Choropleth of ``measure`` per area, with one layer of busiest locations per category.

    Parameters
    ----------
    table, meta : from :func:`hotspots.summary.area_summary`.
    incidents : the period's incidents (EPSG:27700) for location layers and popups.
    """
    if measure not in MEASURE_LABELS:
        raise ValueError(f"measure = '{measure}'; use one of {list(MEASURE_LABELS)}.")
    tolerance = webgeom.web_tolerance_m(table)
    web = webgeom.simplified(table, tolerance_m=tolerance).to_crs(WEB_CRS)  # edges shared
    col = f"{meta['level']}_code"
    top = _top_locations(incidents, col) if incidents is not None else {}
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
    web = web.assign(
        value=values,
        popup_html=[_area_popup(r, meta, config, top.get(r["code"], []))
                    for r in table.drop(columns="geometry").to_dict("records")],
        label=[_esc(f"{n} ({c}): {_rate(v) if measure == 'per_1000_residents' else _fmt(v)}")
               for n, c, v in zip(web["name"], web["code"], values, strict=True)])
    layer = folium.GeoJson(
        webgeom.packed_features(web.assign(value=values.round(4)),
                                ["code", "label", "popup_html", "value"],
                                scale=webgeom.pack_scale(tolerance)),
        coordsToLatLng=JsCode(webgeom.unpack_js(webgeom.pack_scale(tolerance))),
        name=_esc(f"{MEASURE_LABELS[measure]} by {level_name}"),
        style_function=lambda f: {"fillColor": "#cccccc" if f["properties"]["value"] is None
                                  else cmap(f["properties"]["value"]),
                                  "color": "#555", "weight": 0.8, "fillOpacity": 0.65},
        highlight_function=lambda f: {"weight": 3, "color": "#000"},
        tooltip=folium.GeoJsonTooltip(fields=["label"], labels=False),
        popup=folium.GeoJsonPopup(fields=["popup_html"], labels=False, max_width=360),
    )
    layer.add_to(m)
    cmap.add_to(m)
    if incidents is not None and not incidents.empty:
        _category_layers(m, incidents, config)
    heading = title or f"{config.name}: {MEASURE_LABELS[measure].lower()}, {meta['period']}"
    note = (f"{meta['incidents']:,} incidents, categories: "
            + ", ".join(config.label(c) for c in meta["categories"]))
    _title_and_controls(m, heading, note)
    return m


def _category_layers(m: folium.Map, incidents: pd.DataFrame, config: Config) -> None:
    """One layer per category: its repeat locations (2 or more incidents) as circles sized
    by count, labelled by street.

    Record text travels as escaped GeoJSON properties (never inside a JS template)."""
    pts = gpd.GeoDataFrame(
        incidents, geometry=gpd.points_from_xy(incidents["x"], incidents["y"]),
        crs="EPSG:27700").to_crs(WEB_CRS)
    pts["lon"], pts["lat"] = pts.geometry.x, pts.geometry.y
    streets = _street_names(pts["location"])
    pts["text"] = streets.where(streets != "", "(no street recorded)")
    for cat, grp in pts.groupby("category", sort=True):
        loc = (grp.groupby("location_key")
               .agg(lat=("lat", "mean"), lon=("lon", "mean"), n=("ref", "size"),
                    text=("text", "first"))
               .reset_index().sort_values(["n", "location_key"], ascending=[False, True]))
        # repeat locations only: a single incident's point is not circulated
        loc = loc.loc[loc["n"] >= 2].head(MAX_MARKERS_PER_CATEGORY)
        if loc.empty:
            continue
        label = config.label(cat)
        feats = gpd.GeoDataFrame(
            {"n": loc["n"].to_numpy(),
             "popup_html": [f"<b>{_esc(label)}</b><br>{_esc(t)}<br>{n} incident(s) in the period"
                            for t, n in zip(loc["text"], loc["n"], strict=True)]},
            geometry=gpd.points_from_xy(loc["lon"].round(6), loc["lat"].round(6)), crs=WEB_CRS)
        folium.GeoJson(
            feats.to_json(drop_id=True, to_wgs84=False),
            name=_esc(f"{label}: busiest locations ({len(grp):,} incidents)"), show=False,
            marker=folium.CircleMarker(radius=5, weight=1, color="#333", fill=True,
                                       fill_color="#6a3d9a", fill_opacity=0.6),
            style_function=lambda f: {"radius": 3 + 2 * float(f["properties"]["n"]) ** 0.5},
            popup=folium.GeoJsonPopup(fields=["popup_html"], labels=False, max_width=300),
        ).add_to(m)


# --- detection layers: density contours, Gi* cells, places ---------------------------

GI_CLASSES = {
    3: ("Hot spot, 99% confidence", "#b2182b"), 2: ("Hot spot, 95% confidence", "#ef8a62"),
    1: ("Hot spot, 90% confidence", "#fddbc7"), -1: ("Cold spot, 90% confidence", "#d1e5f0"),
    -2: ("Cold spot, 95% confidence", "#67a9cf"), -3: ("Cold spot, 99% confidence", "#2166ac"),
}
#: Density bands as fractions of the peak (the lowest band starts at 5% of the peak).
DENSITY_BANDS = (0.05, 0.1, 0.2, 0.4, 0.6, 0.8)
DENSITY_COLOURS = ("#ffffb2", "#fed976", "#feb24c", "#fd8d3c", "#f03b20", "#bd0026")
#: Above this many significant cells, Gi* cells are merged per class (HTML stays small).
MAX_GI_CELLS = 3000


def density_contours(raster) -> gpd.GeoDataFrame:
    """Filled contour polygons of a kernel-density raster, computed in metres (EPSG:27700).

    Bands start at :data:`DENSITY_BANDS` times the peak; columns ``lower``, ``upper``
    (incidents per km²), ``band`` and geometry.
    """
    import contourpy

    values = np.where(raster.mask, raster.values, 0.0)
    peak = float(np.nanmax(values)) if values.size else 0.0
    ny, nx = values.shape
    xs = raster.x0 + (np.arange(nx) + 0.5) * raster.cell_size_m
    ys = raster.y0 + (np.arange(ny) + 0.5) * raster.cell_size_m
    rows = []
    if peak > 0:
        gen = contourpy.contour_generator(xs, ys, values, fill_type="OuterOffset")
        edges = [f * peak for f in DENSITY_BANDS] + [peak * 1.0001]
        for band, (lo, hi) in enumerate(zip(edges[:-1], edges[1:], strict=True)):
            points, offsets = gen.filled(lo, hi)
            polys = []
            for pts, offs in zip(points, offsets, strict=True):
                rings = [pts[a:b] for a, b in zip(offs[:-1], offs[1:], strict=True)]
                polys.append(shapely.Polygon(rings[0], rings[1:]))
            if polys:
                rows.append({"band": band, "lower": lo, "upper": hi,
                             "geometry": shapely.make_valid(shapely.union_all(polys))})
    return gpd.GeoDataFrame(rows, columns=["band", "lower", "upper", "geometry"],
                            geometry="geometry", crs=raster.crs)


#: Colours of the emerging hot spot classes (reds: hot, blues: cold; darker: stronger).
EMERGING_COLOURS = {
    "intensifying hot spot": "#99000d", "persistent hot spot": "#cb181d",
    "new hot spot": "#ef3b2c", "consecutive hot spot": "#fb6a4a",
    "sporadic hot spot": "#fc9272", "oscillating hot spot": "#fcbba1",
    "diminishing hot spot": "#e7a1b0", "historical hot spot": "#bdbdbd",
    "intensifying cold spot": "#08306b", "persistent cold spot": "#2171b5",
    "new cold spot": "#4292c6", "consecutive cold spot": "#6baed6",
    "sporadic cold spot": "#9ecae1", "oscillating cold spot": "#c6dbef",
    "diminishing cold spot": "#a6bddb", "historical cold spot": "#d9d9d9",
}


def emerging_map(cells: gpd.GeoDataFrame, *, area: gpd.GeoDataFrame, config: Config,
                 meta: dict) -> folium.Map:
    """The emerging hot spot class of each grid cell on a map, with a legend of the
    classes present and their cell counts.

    Parameters
    ----------
    cells : geopandas.GeoDataFrame
        Grid cells (EPSG:27700) with a ``pattern`` column
        (:func:`hotspots.trends.emerging_cells`); cells with "no pattern" are not drawn.
    area : the study area's polygons, for the outline and the initial view.
    meta : ``period`` (the months, e.g. "2023-09 to 2024-08") and ``cell_size_m``.
    """
    web_area = area.to_crs(WEB_CRS)
    m = _framed_map(web_area, config, outline=area)
    shown = cells.loc[cells["pattern"].isin(list(EMERGING_COLOURS)), ["pattern", "geometry"]]
    counts = shown["pattern"].value_counts()
    if not shown.empty:  # one feature per class: the HTML does not grow with the cells
        merged = shown.dissolve("pattern").reset_index()
        merged["label"] = [f"{p} ({counts[p]} cells)" for p in merged["pattern"]]
        folium.GeoJson(
            merged[["pattern", "label", "geometry"]].to_crs(WEB_CRS).to_json(drop_id=True),
            name="Emerging hot spot classes",
            style_function=lambda f: {"fillColor": EMERGING_COLOURS[f["properties"]["pattern"]],
                                      "color": "#555", "weight": 0.3, "fillOpacity": 0.75},
            tooltip=folium.GeoJsonTooltip(fields=["label"], labels=False),
        ).add_to(m)
    rows = "".join(
        f"<div><span style='display:inline-block;width:12px;height:12px;margin-right:4px;"
        f"background:{EMERGING_COLOURS[p]}'></span>{_esc(p)}: {int(counts[p])}</div>"
        for p in EMERGING_COLOURS if p in counts.index) or "<div>No cell has a class.</div>"
    m.get_root().html.add_child(folium.Element(
        "<div class='hs-legend' style='position:fixed;top:10px;right:10px;z-index:1000;"
        "background:white;border:1px solid #999;padding:4px 8px;font:12px sans-serif'>"
        f"<b>Cells of {meta.get('cell_size_m', 0):g} m</b>{rows}</div>"))
    _title_and_controls(m, f"{config.name}: emerging hot spots, {meta['period']}",
                        "Gi* per month on the grid, Mann-Kendall trend; Esri's classes")
    return m


def _density_layer(m: folium.Map, raster) -> None:
    bands = density_contours(raster)
    if bands.empty:
        return
    web = bands.to_crs(WEB_CRS)
    web["label"] = [f"{lo:,.0f}–{hi:,.0f} incidents per km²" for lo, hi in
                    zip(web["lower"], web["upper"], strict=True)]
    fg = folium.FeatureGroup(name=_esc(f"Kernel density ({raster.kernel}, bandwidth "
                                       f"{raster.bandwidth_m:.0f} m, "
                                       f"{raster.cell_size_m:g} m cells)"), show=True)
    folium.GeoJson(
        web[["band", "label", "geometry"]].to_json(drop_id=True),
        style_function=lambda f: {"fillColor": DENSITY_COLOURS[f["properties"]["band"]],
                                  "color": DENSITY_COLOURS[f["properties"]["band"]],
                                  "weight": 0.5, "fillOpacity": 0.55},
        tooltip=folium.GeoJsonTooltip(fields=["label"], labels=False),
    ).add_to(fg)
    fg.add_to(m)
    edges = [float(v) for v in web["lower"]] + [float(web["upper"].iloc[-1])]
    scale = cm.StepColormap(list(DENSITY_COLOURS[: len(web)]), index=edges, vmin=edges[0],
                            vmax=edges[-1])
    # the scale's SVG is a fixed width: a long caption was cut off ("... 100 m c"); the
    # kernel, bandwidth and cell size are in the layer's name in the layer control
    scale.caption = "Incidents per km² (kernel density)"
    scale.add_to(m)


def _gistar_layer(m: folium.Map, cells: gpd.GeoDataFrame, meta: dict) -> None:
    sig = cells.loc[cells["gi_class"] != 0]
    name = (f"Where it is concentrated now (not a forecast): Getis-Ord Gi* hot and cold "
            f"spots ({meta.get('gi_neighbours', 'queen')} neighbours, "
            f"{meta.get('cell_size_m', 0):.0f} m cells, "
            f"{'FDR-corrected' if meta.get('fdr', True) else 'uncorrected'})"
            + _now_note(meta, "gistar"))
    fg = folium.FeatureGroup(name=_esc(name), show=False)
    if len(sig) > MAX_GI_CELLS:
        sig = sig.dissolve("gi_class", aggfunc={"n": "sum"}).reset_index()
        sig["popup_html"] = [f"<b>{_esc(GI_CLASSES[c][0])}</b><br>{n:,} incidents in these "
                             "cells" for c, n in zip(sig["gi_class"], sig["n"], strict=True)]
    else:
        adjusted = "FDR-adjusted" if meta.get("fdr", True) else "raw"
        sig = sig.assign(popup_html=[
            f"<b>{_esc(GI_CLASSES[int(c)][0])}</b><br>{int(n)} incident(s) in the cell"
            f"<br>Gi* z = {z:.2f}, p = {p:.4f} ({adjusted})"
            for c, n, z, p in zip(sig["gi_class"], sig["n"], sig["gistar_z"],
                                  sig["p_adjusted"], strict=True)])
    if not sig.empty:
        web = sig[["gi_class", "popup_html", "geometry"]].to_crs(WEB_CRS)
        web["gi_class"] = web["gi_class"].astype(int)
        folium.GeoJson(
            web.to_json(drop_id=True),
            style_function=lambda f: {"fillColor": GI_CLASSES[f["properties"]["gi_class"]][1],
                                      "color": "#666", "weight": 0.3, "fillOpacity": 0.7},
            popup=folium.GeoJsonPopup(fields=["popup_html"], labels=False, max_width=300),
        ).add_to(fg)
    fg.add_to(m)


def _places_layer(m: folium.Map, places: gpd.GeoDataFrame, *, numbered: int = 20,
                  note: str = "") -> None:
    if places.empty:
        return
    web = places.to_crs(WEB_CRS)
    # a ranked table's own numbers (the pack), else the order given (biggest first)
    by, numbers = (("rank", web["rank"].astype(int).tolist()) if "rank" in web.columns
                   else ("incidents", list(range(1, len(web) + 1))))
    web["popup_html"] = [
        f"<b>{i}. {_esc(r.label)}</b> ({_esc(r.place_id)})<br>{r.n:,} incidents in "
        f"{r.area_km2:.3f} km² = {r.density_per_km2:,.0f} per km²<br>Harm-weighted "
        f"{r.harm:,.1f}; repeat locations {r.repeat_locations} holding "
        f"{100 * r.repeat_share:.0f}%<br>{_esc(r.main_categories)}<br>Busiest: "
        + (_esc(f"{r.busiest_weekday} " if r.busiest_weekday else "")
           + (f"{r.busiest_hour:02d}:00" if r.busiest_hour >= 0 else "(no times of day)"))
        + f"<br>Seen {_esc(r.first_seen)} to {_esc(r.last_seen)}"
        for i, r in zip(numbers, web.itertuples(index=False), strict=True)]
    fg = folium.FeatureGroup(name=f"Places (clusters), numbered by {by}: top {numbered}; "
                                  f"where it is concentrated now, not a forecast{note}",
                             show=True)
    folium.GeoJson(
        web[["place_id", "popup_html", "geometry"]].to_json(drop_id=True),
        style_function=lambda f: {"fillColor": "#6a3d9a", "color": "#3f007d", "weight": 2,
                                  "fillOpacity": 0.15},
        popup=folium.GeoJsonPopup(fields=["popup_html"], labels=False, max_width=320),
    ).add_to(fg)
    centres = web.geometry.representative_point()
    for i, p, street in zip(numbers[:numbered], centres.iloc[:numbered],
                            web["label"].iloc[:numbered], strict=True):
        folium.Marker([p.y, p.x], icon=folium.DivIcon(
            html=f"<div style='font:bold 12px sans-serif;background:#3f007d;color:white;"
                 f"border-radius:10px;width:20px;height:20px;line-height:20px;"
                 f"text-align:center'>{i}<span class='hs-street'>{_esc(street)}</span></div>",
            icon_size=(20, 20), icon_anchor=(10, 10))).add_to(fg)
    fg.add_to(m)


def _now_note(meta: dict, key: str) -> str:
    """", next-month PAI x at y% of the area" for a "where it is concentrated now" layer."""
    v = (meta.get("concentrated_now") or {}).get(key) or {}
    if not v.get("months"):
        return ""
    return (f"; next month it held {v['hit_rate']:.0%} of incidents in {v['coverage']:.2%} of "
            f"the area: PAI {v['pai']:.2f} over {v['months']} months")


def _forecast_layer(m: folium.Map, forecast: gpd.GeoDataFrame, info: dict) -> None:
    web = forecast.to_crs(WEB_CRS)
    web["label"] = [f"Rank {r} of {len(web)}; score {s:.2f}" for r, s in
                    zip(web["rank"], web["score"], strict=True)]
    fallback = " (fallback: too little history to choose)" if info["fallback"] else ""
    fg = folium.FeatureGroup(
        name=_esc(f"Forecast for {info['month']}: top 5% of the area, {info['description']}, "
                  f"{info['cell_size_m']:.0f} m cells; PAI {info['pai_5pct']:.2f}, hit rate "
                  f"{info['hit_rate_5pct']:.0%} on {info['test_months']} test months"
                  + fallback), show=True)
    if not web.empty:
        # tens of thousands of cells at London scale: compact coordinates (~1 m)
        folium.GeoJson(webgeom.packed_features(web, ["label"]),
                       coordsToLatLng=JsCode(webgeom.unpack_js()),
                       style_function=lambda f: {"fill": False, "color": "#006d2c",
                                                 "weight": 2},
                       tooltip=folium.GeoJsonTooltip(fields=["label"], labels=False)).add_to(fg)
    fg.add_to(m)


def hotspot_map(*, area: gpd.GeoDataFrame, meta: dict, config: Config, raster=None,
                cells: gpd.GeoDataFrame | None = None,
                places: gpd.GeoDataFrame | None = None,
                forecast: gpd.GeoDataFrame | None = None) -> folium.Map:
    """Detection map: density contours, Gi* hot and cold cells, numbered places (these
    three say where incidents are concentrated now), and the forecast layer (cells from
    :func:`hotspots.forecast.forecast_layer`, described by ``meta["forecast"]``).

    The HTML size does not grow with the number of incidents: every layer is an
    aggregate (contours, significant cells, place polygons).
    """
    web = area.to_crs(WEB_CRS)
    m = _framed_map(web, config, outline=area)
    if raster is not None:
        _density_layer(m, raster)
    if cells is not None:
        _gistar_layer(m, cells, meta)
    if forecast is not None:
        _forecast_layer(m, forecast, meta["forecast"])
    if places is not None:
        _places_layer(m, places, note=_now_note(meta, "places"))
    heading = f"{config.name}: hotspots, {meta['period']}"
    # no total when meta["incidents"] is None (the partner pack's map)
    note = ("" if meta.get("incidents") is None else f"{meta['incidents']:,} incidents") + (
        ", categories: " + ", ".join(config.label(c) for c in meta["categories"])
        if meta.get("categories") else "")
    _title_and_controls(m, heading, note)
    return m


#: ``type`` of the message a map with a draw control posts to its parent window.
DRAWN_AREA_MESSAGE = "hotspots:drawn-area"
#: A drawn area smaller than this (m²) is taken for a slip of the finger.
MIN_DRAWN_M2 = 100.0


class _DrawBridge(folium.MacroElement):
    """Keeps one drawn area and posts it to the parent window whenever it is drawn,
    edited or deleted, never on panning or zooming."""

    _template = folium.template.Template("""
    {% macro script(this, kwargs) %}
    (function (map, items) {
      var drawn = {{ this.drawn|tojson }};
      if (drawn) {
        L.geoJSON(drawn).eachLayer(function (layer) { items.addLayer(layer); });
        var fit = function () {
          map.invalidateSize(); map.fitBounds(items.getBounds(), {maxZoom: 17});
        };
        fit();
        // the frame may get its final size after the map is built: zoom again then
        map.once("resize", fit);
        setTimeout(fit, 300);
      }
      function post() {
        window.parent.postMessage({type: {{ this.message|tojson }},
                                   geojson: items.toGeoJSON()}, "*");
      }
      map.on("draw:drawstart", function () { items.clearLayers(); });
      map.on("draw:created draw:edited draw:deleted", post);
    })({{ this._parent.get_name() }}, drawnItems_{{ this.draw.get_name() }});
    {% endmacro %}""")

    def __init__(self, draw: folium.plugins.Draw, drawn: dict | None):
        super().__init__()
        self.draw, self.drawn, self.message = draw, drawn, DRAWN_AREA_MESSAGE


def add_draw_control(m: folium.Map, drawn=None) -> folium.Map:
    """Add a control to draw one area (a polygon or a rectangle) on ``m``.

    Whenever the area is drawn, edited or deleted the page posts
    ``{"type": DRAWN_AREA_MESSAGE, "geojson": <FeatureCollection in EPSG:4326>}`` to
    ``window.parent`` (the app's map component); a new drawing replaces the old one.
    ``drawn`` (a shapely geometry in EPSG:27700, or None) is shown as the current area,
    editable, and the map zooms to it. Leaflet.draw is inlined by :func:`map_html`.
    """
    draw = folium.plugins.Draw(
        position="topright", show_geometry_on_click=False,
        # showArea is off: Leaflet.draw 1.0.4's area label throws on rectangles
        draw_options={"polyline": False, "circle": False, "marker": False,
                      "circlemarker": False, "rectangle": {"showArea": False},
                      "polygon": {"allowIntersection": False, "showArea": False}})
    draw.add_to(m)
    shape = None
    if drawn is not None:
        shape = shapely.geometry.mapping(
            gpd.GeoSeries([drawn], crs=WORKING_CRS).to_crs(WEB_CRS).iloc[0])
    _DrawBridge(draw, shape).add_to(m)
    return m


def drawn_area(geojson: dict | None, study_area) -> shapely.Geometry | None:
    """The area a user drew, from the GeoJSON a draw control posts, in EPSG:27700;
    None when nothing is drawn. ``study_area`` is a shapely geometry in EPSG:27700.

    Raises HotspotsError, saying what to do, when the shape has no area, crosses itself
    beyond repair, or lies outside the study area.
    """
    try:
        feats = (geojson or {}).get("features") or []
        shapes = [shapely.geometry.shape(f["geometry"]) for f in feats if f.get("geometry")]
    except (AttributeError, KeyError, TypeError, ValueError, shapely.errors.GEOSException) \
            as exc:
        raise HotspotsError(f"The drawn area could not be read ({exc}); delete it and "
                            "draw it again.") from exc
    shapes = [g for g in shapes if g.geom_type in ("Polygon", "MultiPolygon")]
    if not shapes:
        return None
    web = shapely.make_valid(shapely.union_all(shapes))
    area = gpd.GeoSeries([web], crs=WEB_CRS).to_crs(WORKING_CRS).iloc[0]
    area = shapely.union_all([g for g in getattr(area, "geoms", [area])
                              if g.geom_type in ("Polygon", "MultiPolygon")])
    if area.is_empty or area.area < MIN_DRAWN_M2:
        raise HotspotsError(f"The drawn area is under {MIN_DRAWN_M2:.0f} m²; draw it again "
                            "round the streets you want.")
    if not area.intersects(study_area):
        raise HotspotsError("The drawn area lies outside the study area; draw it over the "
                            "borough.")
    return area


def lonlat(x, y) -> tuple[np.ndarray, np.ndarray]:
    """British National Grid metres as longitude and latitude (WGS84 degrees), for tables
    that a web map or Power BI plots (CSV exports)."""
    from pyproj import Transformer

    lon, lat = Transformer.from_crs(WORKING_CRS, WEB_CRS, always_xy=True).transform(
        np.asarray(x, dtype=float), np.asarray(y, dtype=float))
    return lon, lat


#: ``type`` of the message a focused map (:func:`focus_map_html`) posts when a place is
#: clicked: ``{"type": PLACE_MESSAGE, "place_id": "..."}``.
PLACE_MESSAGE = "hotspots:place"

_FOCUS_JS = """<script>
(function (cfg) {
  function findMap() {
    for (var k in window) {
      try { if (/^map_/.test(k) && window[k] instanceof L.Map) { return window[k]; } }
      catch (e) { /* a window property that cannot be read */ }
    }
    return null;
  }
  function run() {
    var map = findMap(), groups = [], polys = [];
    if (!map) { return; }
    map.eachLayer(function (l) {
      var p = l.feature && l.feature.properties;
      if (p && p.place_id !== undefined && l.getBounds) { polys.push(l); }
      if (l instanceof L.LayerGroup) { groups.push(l); }
    });
    function placeOf(layer) {
      var p = layer.feature && layer.feature.properties;
      if (p && p.place_id !== undefined) { return p.place_id; }
      if (!(layer instanceof L.Marker)) { return null; }
      var at = layer.getLatLng(), best = null, size = Infinity;
      polys.forEach(function (q) {
        var b = q.getBounds();
        if (b.contains(at)) {
          var s = (b.getNorth() - b.getSouth()) * (b.getEast() - b.getWest());
          if (s < size) { size = s; best = q.feature.properties.place_id; }
        }
      });
      return best;
    }
    var drop = [];
    groups.forEach(function (g) {
      g.eachLayer(function (l) {
        var id = placeOf(l);
        if (id === null) { return; }
        if (cfg.keep && cfg.keep.indexOf(id) < 0) { drop.push([g, l]); return; }
        if (id === cfg.selected && l.setStyle) {
          l.setStyle({color: "#d7301f", weight: 4, fillOpacity: 0.3});
        }
        l.on("click", function () {
          window.parent.postMessage({type: cfg.message, place_id: id}, "*");
        });
      });
    });
    drop.forEach(function (d) { d[0].removeLayer(d[1]); });
    if (cfg.bounds) {
      var fit = function () { map.invalidateSize(); map.fitBounds(cfg.bounds, {maxZoom: 17}); };
      fit();
      map.once("resize", fit);
      setTimeout(fit, 300);
    }
  }
  if (document.readyState === "complete") { run(); } else { window.addEventListener("load", run); }
})(__CFG__);
</script>"""


def focus_bounds(geoms, *, margin_m: float = 60.0) -> list[list[float]] | None:
    """``[[south, west], [north, east]]`` (degrees) round shapely geometries in EPSG:27700,
    with a margin: what :func:`focus_map_html` zooms to. None for no geometry."""
    geoms = [g for g in geoms if g is not None and not shapely.is_empty(g)]
    if not geoms:
        return None
    x0, y0, x1, y1 = shapely.total_bounds(np.asarray(geoms, dtype=object))
    lon, lat = lonlat([x0 - margin_m, x1 + margin_m], [y0 - margin_m, y1 + margin_m])
    return [[float(lat[0]), float(lon[0])], [float(lat[1]), float(lon[1])]]


def focus_map_html(page: str, *, keep: list[str] | None = None, selected: str | None = None,
                   bounds: list[list[float]] | None = None) -> str:
    """A map page of :func:`map_html` (with numbered places) focused on a selection: only
    the places ``keep`` (place ids; None keeps all) stay drawn, ``selected`` is outlined
    in red, the map zooms to ``bounds`` (:func:`focus_bounds`), and clicking a place's
    polygon or numbered marker posts ``{"type": PLACE_MESSAGE, "place_id": id}`` to
    ``window.parent``. The ids travel as JSON with ``<`` escaped, never as markup."""
    import json

    cfg = json.dumps({"keep": keep, "selected": selected, "bounds": bounds,
                      "message": PLACE_MESSAGE}).replace("<", "\\u003c")
    script = _FOCUS_JS.replace("__CFG__", cfg)
    at = page.rfind("</html>")
    return page[:at] + script + page[at:] if at >= 0 else page + script
