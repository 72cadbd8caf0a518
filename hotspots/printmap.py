"""The pack's printed map: a static SVG drawn in metres (EPSG:27700), so that it prints
sharp on A4 with no tiles and no script, with a legend in HTML (it wraps; it is never
cut off) and insets for crowded places.

Numbered markers that would overlap at the main map's scale are grouped; each group is
drawn as a lettered frame on the main map and again, enlarged, in an inset panel below
it, where markers that still touch are pushed apart and tied to their place by a line.
Every text is escaped; place labels are not drawn on the map (the numbers are the ranks
of the ranked table and the brief).
"""

from __future__ import annotations

import html
from dataclasses import dataclass

import geopandas as gpd
import numpy as np
import shapely

from .maps import DENSITY_COLOURS, density_contours

#: Marker diameter in SVG px (1 px = 1/96 inch when printed at width).
MARKER_PX = 18
#: Markers closer than this (px) at the main scale go to an inset.
CROWDED_PX = 22
#: Main map box and inset box, in px.
MAP_W, MAP_H, INSET_PX = 700, 640, 216
#: An inset shows at most this many metres per px (no closer than a street block).
MIN_M_PER_PX = 0.6
LETTERS = "ABCDEFGHJKLMNPQRSTUVWXYZ"


@dataclass(frozen=True)
class PrintMap:
    """``svg``: the main map; ``insets``: (letter, svg) panels; ``legend``: HTML."""

    svg: str
    insets: tuple[tuple[str, str], ...]
    legend: str


class _Frame:
    """Projects EPSG:27700 metres into an SVG box (y down), keeping the aspect ratio."""

    def __init__(self, bounds, width: int, height: int, pad: int = 8):
        x0, y0, x1, y1 = bounds
        span = max(x1 - x0, 1.0), max(y1 - y0, 1.0)
        self.scale = min((width - 2 * pad) / span[0], (height - 2 * pad) / span[1])
        self.w = int(round(span[0] * self.scale + 2 * pad))
        self.h = int(round(span[1] * self.scale + 2 * pad))
        self.x0, self.y1, self.pad = x0, y1, pad

    def xy(self, x, y):
        return (self.pad + (np.asarray(x) - self.x0) * self.scale,
                self.pad + (self.y1 - np.asarray(y)) * self.scale)

    def path(self, geom) -> str:
        """SVG path data of a (multi)polygon or line, rounded to 0.1 px."""
        out = []
        for part in getattr(geom, "geoms", [geom]):
            rings = ([part.exterior, *part.interiors] if part.geom_type == "Polygon"
                     else [part])
            for ring in rings:
                xs, ys = self.xy(*np.asarray(ring.coords)[:, :2].T)
                pts = " ".join(f"{a:.1f},{b:.1f}" for a, b in zip(xs, ys, strict=True))
                out.append(f"M{pts}" + ("Z" if part.geom_type == "Polygon" else ""))
        return "".join(out)


def _e(v) -> str:
    return html.escape(str(v), quote=True)


def _groups(px: np.ndarray, limit: float) -> list[list[int]]:
    """Single-linkage groups of points closer than ``limit`` (px); singletons left out."""
    n = len(px)
    parent = list(range(n))

    def find(i):
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i
    for i in range(n):
        for j in range(i + 1, n):
            if np.hypot(*(px[i] - px[j])) < limit:
                parent[find(i)] = find(j)
    groups: dict[int, list[int]] = {}
    for i in range(n):
        groups.setdefault(find(i), []).append(i)
    return sorted((g for g in groups.values() if len(g) > 1), key=min)


def _repel(pts: np.ndarray, limit: float, box: tuple[float, float]) -> np.ndarray:
    """Push markers apart until none is closer than ``limit`` (a few passes)."""
    out = pts.astype(float).copy()
    for _ in range(60):
        moved = False
        for i in range(len(out)):
            for j in range(i + 1, len(out)):
                d = out[j] - out[i]
                dist = np.hypot(*d)
                if dist < limit:
                    step = (d / dist if dist > 1e-6 else np.array([1.0, 0.3])) * (
                        (limit - dist) / 2 + 0.5)
                    out[i] -= step
                    out[j] += step
                    moved = True
        out[:, 0] = out[:, 0].clip(MARKER_PX / 2, box[0] - MARKER_PX / 2)
        out[:, 1] = out[:, 1].clip(MARKER_PX / 2, box[1] - MARKER_PX / 2)
        if not moved:
            break
    return out


def _marker(x: float, y: float, label, *, colour: str = "#3f007d", square: bool = False
            ) -> str:
    r = MARKER_PX / 2
    shape = (f"<rect x='{x - r:.1f}' y='{y - r:.1f}' width='{2 * r}' height='{2 * r}' "
             f"fill='{colour}' stroke='#fff'/>" if square else
             f"<circle cx='{x:.1f}' cy='{y:.1f}' r='{r}' fill='{colour}' stroke='#fff'/>")
    return (f"<g class='hs-marker' data-label='{_e(label)}'>{shape}<text x='{x:.1f}' "
            f"y='{y + 4:.1f}' text-anchor='middle' fill='#fff' font-weight='bold' "
            f"font-size='11'>{_e(label)}</text></g>")


def _base(frame: _Frame, area, wards, bands, places, *, ward_names: bool) -> list[str]:
    """Boundary, wards, density bands and place outlines, in drawing order."""
    parts = [f"<svg xmlns='http://www.w3.org/2000/svg' viewBox='0 0 {frame.w} {frame.h}' "
             f"width='{frame.w}' height='{frame.h}' font-family='sans-serif'>",
             f"<rect width='{frame.w}' height='{frame.h}' fill='#fafafa'/>"]
    parts += [f"<path d='{frame.path(g)}' fill='#fff' stroke='none'/>" for g in area.geometry]
    for band, g in zip(bands["band"], bands.geometry, strict=True) if bands is not None else ():
        parts.append(f"<path d='{frame.path(g)}' fill='{DENSITY_COLOURS[int(band)]}' "
                     "fill-opacity='0.75' stroke='none' fill-rule='evenodd'/>")
    if wards is not None:
        parts += [f"<path d='{frame.path(g.boundary)}' fill='none' stroke='#888' "
                  "stroke-width='0.6' stroke-dasharray='3 2'/>" for g in wards.geometry]
    parts += [f"<path d='{frame.path(g.boundary)}' fill='none' stroke='#222' "
              "stroke-width='1.6'/>" for g in area.geometry]
    if places is not None:
        parts += [f"<path d='{frame.path(g)}' fill='#6a3d9a' fill-opacity='0.12' "
                  "stroke='#3f007d' stroke-width='1.2' fill-rule='evenodd'/>"
                  for g in places.geometry]
    if ward_names and wards is not None:
        for name, g in zip(wards["name"], wards.geometry, strict=True):
            p = g.representative_point()
            x, y = frame.xy(p.x, p.y)
            parts.append(f"<text x='{x:.1f}' y='{y:.1f}' text-anchor='middle' "
                         f"font-size='8' fill='#666'>{_e(name)}</text>")
    return parts


def _legend(raster, bands, *, places: bool, insets: int, extra: str, wards: bool,
            place_label: str) -> str:
    swatches = "".join(
        f"<span class='hs-swatch'><i style='background:{DENSITY_COLOURS[int(b)]}'></i>"
        f"{lo:,.0f}–{hi:,.0f}</span>"
        for b, lo, hi in zip(bands["band"], bands["lower"], bands["upper"], strict=True)
    ) if bands is not None and len(bands) else ""
    parts = []
    if swatches:
        parts.append(f"<div class='hs-legend-row'><b>Incidents per km²</b> {swatches}</div>"
                     f"<div class='hs-legend-note'>Kernel density ({_e(raster.kernel)}, "
                     f"bandwidth {raster.bandwidth_m:.0f} m, {raster.cell_size_m:g} m "
                     "cells).</div>")
    items = ["<span class='hs-key'><i class='hs-k-area'></i>study area</span>"]
    if wards:
        items.append("<span class='hs-key'><i class='hs-k-ward'></i>ward boundary</span>")
    if places:
        items += [f"<span class='hs-key'><i class='hs-k-place'></i>{_e(place_label)}</span>",
                  "<span class='hs-key'><i class='hs-k-num'>1</i>its rank</span>"]
    if insets:
        items.append("<span class='hs-key'><i class='hs-k-inset'>A</i>crowded places: see "
                     "inset</span>")
    parts.append(f"<div class='hs-legend-row'>{''.join(items)}</div>")
    if extra:
        parts.append(f"<div class='hs-legend-note'>{_e(extra)}</div>")
    return "<div class='hs-legend'>" + "".join(parts) + "</div>"


def print_map(*, area: gpd.GeoDataFrame, wards: gpd.GeoDataFrame | None = None, raster=None,
              places: gpd.GeoDataFrame | None = None, note: str = "",
              place_label: str = "place (cluster of incidents)") -> PrintMap:
    """The pack's map. ``area``: the study area's polygons; ``wards`` (``name``,
    geometry) for orientation (an area without wards: None, and the legend names none);
    ``raster`` from :func:`hotspots.density.kde` for the density bands; ``places`` with
    ``rank`` and geometry (None: no places, the partner version), named in the legend by
    ``place_label`` (ranked LSOAs or grid cells are no clusters). All in EPSG:27700.
    ``note`` is added under the legend, escaped."""
    bands = density_contours(raster) if raster is not None else None
    frame = _Frame(area.total_bounds, MAP_W, MAP_H)
    parts = _base(frame, area, wards, bands, places, ward_names=True)
    insets: list[tuple[str, str]] = []
    if places is not None and len(places):
        markers, insets = _markers_and_insets(frame, area, wards, bands, places)
        parts += markers
    parts.append(_scale_bar(frame.scale, frame.w, frame.h))
    svg = "".join(parts) + "</svg>"
    legend = _legend(raster, bands, places=places is not None, insets=len(insets),
                     extra=note, wards=wards is not None, place_label=place_label)
    return PrintMap(svg=svg, insets=tuple(insets), legend=legend)


def _markers_and_insets(frame: _Frame, area, wards, bands, places
                        ) -> tuple[list[str], list[tuple[str, str]]]:
    """Numbered markers on the main map; crowded groups as lettered frames there and
    enlarged panels (three to a row, or four smaller ones when there are more)."""
    centres = shapely.point_on_surface(places.geometry.to_numpy())
    px = np.column_stack(frame.xy(shapely.get_x(centres), shapely.get_y(centres)))
    ranks = places["rank"].astype(int).to_numpy()
    groups = _groups(px, CROWDED_PX)
    grouped = {i for g in groups for i in g}
    parts = [_marker(px[i, 0], px[i, 1], ranks[i]) for i in range(len(px))
             if i not in grouped]
    size = INSET_PX if len(groups) <= 3 else INSET_PX * 3 // 4
    insets = []
    for letter, g in zip(LETTERS, groups, strict=False):
        x0, y0, x1, y1 = places.iloc[g].total_bounds
        side = max(x1 - x0, y1 - y0) * 1.3 + 120  # a margin round the group
        side = max(side, MIN_M_PER_PX * size)
        cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
        box = (cx - side / 2, cy - side / 2, cx + side / 2, cy + side / 2)
        (bx0, bx1), (by1, by0) = frame.xy([box[0], box[2]], [box[1], box[3]])
        parts.append(f"<rect x='{bx0:.1f}' y='{by0:.1f}' width='{bx1 - bx0:.1f}' "
                     f"height='{by1 - by0:.1f}' fill='none' stroke='#e08214' "
                     "stroke-width='1.5'/>")
        parts.append(_marker(bx1, by0, letter, colour="#e08214", square=True))
        insets.append((letter, _inset(box, size, area, wards, bands, places, centres,
                                      ranks)))
    return parts, insets


def _inset(bounds, size: int, area, wards, bands, places, centres, ranks) -> str:
    """One enlarged panel of a crowded group (and every other place whose marker falls
    in it), markers pushed apart where they touch."""
    frame = _Frame(bounds, size, size, pad=0)
    clip = shapely.box(*bounds)
    def cut(frame_):
        if frame_ is None:
            return None
        out = frame_.assign(geometry=frame_.geometry.intersection(clip))
        return out.loc[~out.geometry.is_empty]
    parts = _base(frame, cut(area), cut(wards), cut(bands), cut(places), ward_names=False)
    inside = shapely.contains(clip, centres)
    centres, ranks = centres[inside], ranks[inside]
    true = np.column_stack(frame.xy(shapely.get_x(centres), shapely.get_y(centres)))
    shown = _repel(true, MARKER_PX + 2, (frame.w, frame.h))
    for (tx, ty), (sx, sy), rank in zip(true, shown, ranks, strict=True):
        if np.hypot(sx - tx, sy - ty) > 2:
            parts.append(f"<line x1='{tx:.1f}' y1='{ty:.1f}' x2='{sx:.1f}' y2='{sy:.1f}' "
                         "stroke='#3f007d' stroke-width='1'/>"
                         f"<circle cx='{tx:.1f}' cy='{ty:.1f}' r='2' fill='#3f007d'/>")
        parts.append(_marker(sx, sy, rank))
    parts.append(_scale_bar(frame.scale, frame.w, frame.h))
    return "".join(parts) + "</svg>"


def _scale_bar(px_per_m: float, width: int, height: int) -> str:
    """A scale bar of a round length no longer than a third of the panel."""
    target = max(width / 3 / px_per_m, 10)
    length = max(v for v in (10, 20, 50, 100, 200, 250, 500, 1000, 2000, 5000) if v <= target)
    text = f"{length / 1000:g} km" if length >= 1000 else f"{length} m"
    return (f"<g font-size='9'><rect x='6' y='{height - 10}' width='{length * px_per_m:.1f}' "
            f"height='3' fill='#222'/><text x='6' y='{height - 14}'>{text}</text></g>")
