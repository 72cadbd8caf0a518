"""A map to draw an area on, as a Streamlit component that returns only the drawn area.

The map is the package's own offline HTML (:func:`hotspots.maps.map_html` with
:func:`hotspots.maps.add_draw_control`), shown in a frame inside the component. The
component passes on what the map posts when an area is drawn, edited or deleted, and
nothing else: panning and zooming never rerun the app. (st_folium does the same job but
its frontend loads Leaflet from a CDN, so its maps stay blank without internet access.)
"""

from __future__ import annotations

import folium
import streamlit as st

from app_pages.mapframe import map_component
from hotspots.errors import HotspotsError
from hotspots.maps import DRAWN_AREA_MESSAGE, add_draw_control, drawn_area, map_html

_draw = map_component(
    "drawmap", title="Map: draw an area", message=DRAWN_AREA_MESSAGE,
    on_message='    send("streamlit:setComponentValue", {value: d.geojson, dataType: "json"});')


def current_area(key: str, study_area):
    """The area last drawn on the map with this key (EPSG:27700), or None. Read before
    the map is drawn, so the page can build the map around it. A shape that cannot be
    used (too small, outside ``study_area``) is reported on the page and taken as none."""
    try:
        return drawn_area(st.session_state.get(key), study_area)
    except HotspotsError as exc:
        st.warning(str(exc))
        return None


def draw_map(m: folium.Map, *, key: str, drawn=None, height: int = 420) -> None:
    """Show ``m`` with a control to draw one area; ``drawn`` (EPSG:27700) is the current
    area, shown editable. What is drawn comes back through :func:`current_area`."""
    _draw(html=map_html(add_draw_control(m, drawn)), height=height, key=key, default=None)
