"""Detection maps: density contours, Gi* hot and cold cells, numbered places and the
forecast layer (:func:`hotspot_map`), and the emerging hot spot classes
(:func:`emerging_map`)."""

from __future__ import annotations

from pathlib import Path
from typing import cast

import branca.colormap as cm
import folium
import geopandas as gpd
import numpy as np
import shapely

from ..config import Config
from ..schema import WEB_CRS
from .base import _esc, _framed_map, _title_and_controls, page_of, shapes_layer

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
#: Above this many forecast cells, the layer draws their merged outline: a London month's
#: top 5% at 50 m was 31,900 cells, as many paths for the browser to draw at every pan.
MAX_FORECAST_CELLS = 3000


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
            # OuterOffset: a list of point arrays and a list of ring offsets
            points, offsets = cast(tuple[list[np.ndarray], list[np.ndarray]],
                                   gen.filled(lo, hi))
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
    m = _framed_map(area, config, outline=area)
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
    page_of(m).html.add_child(folium.Element(
        "<div class='hs-legend' style='position:fixed;top:10px;right:10px;z-index:1000;"
        "background:white;border:1px solid #999;padding:4px 8px;font:12px sans-serif'>"
        f"<b>Cells of {meta['cell_size_m']:g} m</b>{rows}</div>"))
    _title_and_controls(m, f"{config.name}: emerging hot spots, {meta['period']}",
                        "Gi* per month on the grid, Mann-Kendall trend; Esri's classes")
    return m


def _density_layer(m: folium.Map, raster) -> None:
    bands = density_contours(raster)
    if bands.empty:
        return
    web = bands.to_crs(WEB_CRS)
    fg = folium.FeatureGroup(name=_esc(f"Kernel density ({raster.kernel}, bandwidth "
                                       f"{raster.bandwidth_m:.0f} m, "
                                       f"{raster.cell_size_m:g} m cells)"), show=True)
    shapes_layer(fg, web, styles=[{"fillColor": c, "color": c, "weight": 0.5,
                                   "fillOpacity": 0.55} for c in DENSITY_COLOURS],
                 style_of=web["band"].astype(int).tolist(), tooltip=[[0]],
                 values=[[f"{lo:,.0f}–{hi:,.0f} incidents per km²"] for lo, hi in
                         zip(web["lower"], web["upper"], strict=True)])
    fg.add_to(m)
    edges = [float(v) for v in web["lower"]] + [float(web["upper"].iloc[-1])]
    scale = cm.StepColormap(list(DENSITY_COLOURS[: len(web)]), index=edges, vmin=edges[0],
                            vmax=edges[-1], tick_labels=spaced_ticks(edges))
    # the scale's SVG is a fixed width: a long caption was cut off ("... 100 m c"); the
    # kernel, bandwidth and cell size are in the layer's name in the layer control
    scale.caption = "Incidents per km² (kernel density)"
    scale.add_to(m)


def spaced_ticks(edges: list[float], *, min_gap: float = 0.08) -> list[float]:
    """The band edges a colour scale labels: the first and the last, and each between that
    is ``min_gap`` of the scale's span or more from the label before it and from the last
    (London's lowest bands, 34 and 68 of 679, printed as one "34 68")."""
    span = edges[-1] - edges[0]
    kept = [edges[0]]
    for e in edges[1:-1]:
        if e - kept[-1] >= min_gap * span and edges[-1] - e >= min_gap * span:
            kept.append(e)
    return [*kept, edges[-1]] if len(edges) > 1 else kept


def _gistar_layer(m: folium.Map, cells: gpd.GeoDataFrame, meta: dict) -> None:
    sig = cells.loc[cells["gi_class"] != 0]
    name = (f"Where it is concentrated now (not a forecast): Getis-Ord Gi* hot and cold "
            f"spots ({meta['gi_neighbours']} neighbours, {meta['cell_size_m']:g} m cells, "
            f"{'FDR-corrected' if meta['fdr'] else 'uncorrected'})"
            + _now_note(meta, "gistar"))
    fg = folium.FeatureGroup(name=_esc(name), show=False)
    if len(sig) > MAX_GI_CELLS:
        sig = sig.dissolve("gi_class", aggfunc={"n": "sum"}).reset_index()
        lines = [[[0]], ["", 1, " incidents in these cells"]]
        values = [[GI_CLASSES[int(c)][0], f"{int(n):,}"]
                  for c, n in zip(sig["gi_class"], sig["n"], strict=True)]
    else:
        adjusted = "FDR-adjusted" if meta["fdr"] else "raw"
        lines = [[[0]], ["", 1, " incident(s) in the cell"],
                 ["Gi* z = ", 2, ", p = ", 3, f" ({adjusted})"]]
        values = [[GI_CLASSES[int(c)][0], str(int(n)), f"{z:.2f}", f"{p:.4f}"]
                  for c, n, z, p in zip(sig["gi_class"], sig["n"], sig["gistar_z"],
                                        sig["p_adjusted"], strict=True)]
    if not sig.empty:
        classes = list(GI_CLASSES)
        shapes_layer(fg, sig.to_crs(WEB_CRS),
                     styles=[{"fillColor": GI_CLASSES[c][1], "color": "#666", "weight": 0.3,
                              "fillOpacity": 0.7} for c in classes],
                     style_of=[classes.index(int(c)) for c in sig["gi_class"]],
                     values=values, popup={"lines": lines, "width": 300})
    fg.add_to(m)


def _places_layer(m: folium.Map, places: gpd.GeoDataFrame, *, numbered: int = 20,
                  note: str = "") -> None:
    if places.empty:
        return
    web = places.to_crs(WEB_CRS)
    # a ranked table's own numbers (the pack), else the order given (biggest first)
    by, numbers = (("rank", web["rank"].astype(int).tolist()) if "rank" in web.columns
                   else ("incidents", list(range(1, len(web) + 1))))
    values = [
        [f"{i}. {r.label}", str(r.place_id), f"{r.n:,}", f"{r.area_km2:.3f}",
         f"{r.density_per_km2:,.0f}", f"{r.harm:,.1f}", str(r.repeat_locations),
         f"{100 * r.repeat_share:.0f}", str(r.main_categories),
         (f"{r.busiest_weekday} " if r.busiest_weekday else "")
         + (f"{r.busiest_hour:02d}:00" if r.busiest_hour >= 0 else "(no times of day)"),
         str(r.first_seen), str(r.last_seen)]
        for i, r in zip(numbers, web.itertuples(index=False), strict=True)]
    fg = folium.FeatureGroup(name=f"Places (clusters), numbered by {by}: top "
                                  f"{min(numbered, len(web))}; "
                                  f"where it is concentrated now, not a forecast{note}",
                             show=True)
    shapes_layer(fg, web, styles=[{"fillColor": "#6a3d9a", "color": "#3f007d", "weight": 2,
                                   "fillOpacity": 0.15}], values=values,
                 properties=[{"place_id": str(p)} for p in web["place_id"]],
                 popup={"width": 320, "lines": [
                     [[0], " (", 1, ")"], ["", 2, " incidents in ", 3, " km² = ", 4, " per km²"],
                     ["Harm-weighted ", 5, "; repeat locations ", 6, " holding ", 7, "%"],
                     ["", 8], ["Busiest: ", 9], ["Seen ", 10, " to ", 11]]})
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


def forecast_legend(info: dict) -> str:
    """The forecast layer's legend: the month, the method, the cell size and its mean PAI
    and hit rate at 5% on the test months (which ones), or that it was not tested; and
    whether it is the fallback."""
    fallback = " (fallback: too little history to choose)" if info["fallback"] else ""
    tested = info.get("months_tested") or []
    if info["test_months"] and np.isfinite(info["pai_5pct"]):
        span = f" ({tested[0]} to {tested[-1]})" if tested else ""
        figures = (f"PAI {info['pai_5pct']:.2f}, hit rate {info['hit_rate_5pct']:.0%} on "
                   f"{info['test_months']} test months{span}")
    else:
        figures = "no month to test it on yet"
    return (f"Forecast for {info['month']}: top 5% of the area, {info['description']}, "
            f"{info['cell_size_m']:.0f} m cells; {figures}{fallback}")


def _forecast_layer(m: folium.Map, forecast: gpd.GeoDataFrame, info: dict) -> None:
    fg = folium.FeatureGroup(name=_esc(forecast_legend(info)), show=True)
    style = [{"fill": False, "color": "#006d2c", "weight": 2}]
    if len(forecast) > MAX_FORECAST_CELLS:  # their outline, one shape: the cells side by
        # side are a coverage, merged without overlay (London's 31,900: under a second)
        merged = gpd.GeoDataFrame(geometry=[shapely.coverage_union_all(
            forecast.geometry.values)], crs=forecast.crs).to_crs(WEB_CRS)
        shapes_layer(fg, merged, styles=style, tooltip=[["", 0]], values=[[
            f"The forecast's {len(forecast):,} cells, merged into one outline: too many to "
            "draw one by one"]])
    elif not forecast.empty:
        web = forecast.to_crs(WEB_CRS)
        shapes_layer(fg, web, styles=style,
                     tooltip=[["Rank ", 0, f" of {len(web)}; score ", 1]],
                     values=[[int(r), f"{s:.2f}"] for r, s in  # Python numbers: 10x faster
                             zip(web["rank"].tolist(), web["score"].tolist(), strict=True)])
    fg.add_to(m)


def hotspot_map(*, area: gpd.GeoDataFrame, meta: dict, config: Config, raster=None,
                cells: gpd.GeoDataFrame | None = None,
                places: gpd.GeoDataFrame | None = None,
                forecast: gpd.GeoDataFrame | None = None,
                cache: str | Path | None = None) -> folium.Map:
    """Detection map: density contours, Gi* hot and cold cells, numbered places (these
    three say where incidents are concentrated now), and the forecast layer (cells from
    :func:`hotspots.forecast.forecast_layer`, described by ``meta["forecast"]``).

    The HTML size does not grow with the number of incidents: every layer is an
    aggregate (contours, significant cells, place polygons). ``cache``: the geodata cache
    folder, where the study area's simplified polygons (its outline) are kept between runs
    (:func:`hotspots.webgeom.simplified`; London's LSOAs take a second to simplify).
    """
    m = _framed_map(area, config, outline=area, cache=cache)
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
