"""Folium maps: the one place that converts to EPSG:4326 for the web.

Text from records, boundary files and the configuration is escaped before it reaches
the page: Leaflet puts tooltip and popup contents and layer-control names into the page
as HTML (folium does not escape them), so every tooltip field, popup and layer name is
built from escaped parts only; an area map's popups are put in as text nodes. The title
box is escaped; legend captions are drawn as text by d3.

The modules: ``base`` (the page, tiles, frame, title, escaping, :func:`lonlat`),
``areas`` (:func:`area_map`), ``detection`` (:func:`hotspot_map`, :func:`emerging_map`,
:func:`density_contours`) and ``components`` (the draw control, the focused place map).
Every name is imported from here: ``from hotspots.maps import hotspot_map``; those of
``components`` when first asked for (it imports ``folium.plugins``, which the area and
detection maps of the CLI do not need).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .areas import MAX_MARKERS_PER_CATEGORY, MEASURE_LABELS, area_map
from .base import NO_TILES_NOTE, NO_TILES_STREETS, lonlat, map_html, save_map
from .detection import (
    DENSITY_BANDS,
    DENSITY_COLOURS,
    EMERGING_COLOURS,
    GI_CLASSES,
    MAX_GI_CELLS,
    density_contours,
    emerging_map,
    forecast_legend,
    hotspot_map,
)

if TYPE_CHECKING:
    from .components import (
        DRAWN_AREA_MESSAGE,
        MIN_DRAWN_M2,
        PLACE_MESSAGE,
        add_draw_control,
        drawn_area,
        focus_bounds,
        focus_map_html,
    )

_COMPONENTS = ("DRAWN_AREA_MESSAGE", "MIN_DRAWN_M2", "PLACE_MESSAGE", "add_draw_control",
               "drawn_area", "focus_bounds", "focus_map_html")

__all__ = ["DENSITY_BANDS", "DENSITY_COLOURS", "DRAWN_AREA_MESSAGE", "EMERGING_COLOURS",
           "GI_CLASSES", "MAX_GI_CELLS", "MAX_MARKERS_PER_CATEGORY", "MEASURE_LABELS",
           "MIN_DRAWN_M2", "NO_TILES_NOTE", "NO_TILES_STREETS", "PLACE_MESSAGE",
           "add_draw_control", "area_map", "density_contours", "drawn_area", "emerging_map",
           "focus_bounds", "focus_map_html", "forecast_legend", "hotspot_map", "lonlat",
           "map_html", "save_map"]


def __getattr__(name: str):
    """The names of ``components``, imported when first asked for."""
    if name in _COMPONENTS:
        from . import components

        return getattr(components, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
