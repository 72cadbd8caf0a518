"""A map whose places can be clicked, as a Streamlit component that returns only the place
clicked (the hand-written component of app_pages/mapframe.py, as the drawing map).

The map is the package's own offline HTML, focused by
:func:`hotspots.maps.focus_map_html`; the component passes on what the map posts when a
place is clicked, and nothing else: panning and zooming never rerun the app.
"""

from __future__ import annotations

import streamlit as st

from app_pages.mapframe import map_component
from hotspots.maps import PLACE_MESSAGE

_map = map_component(
    "placemap", title="Map of hotspots and places", message=PLACE_MESSAGE, state=", clicks = 0",
    on_message="""    clicks += 1;  // a second click on the same place selects it again
    send("streamlit:setComponentValue",
         {value: {place_id: String(d.place_id), click: clicks}, dataType: "json"});""")


def place_map(html: str, *, key: str, height: int = 520, on_change=None) -> dict | None:
    """Show a focused map page; returns ``{"place_id", "click"}`` of the last place clicked
    (None before any click). ``on_change`` runs when a place is clicked."""
    return _map(html=html, height=height, key=key, default=None, on_change=on_change)


def clicked(key: str) -> str | None:
    """The place last clicked on the map with this key, from the session."""
    value = st.session_state.get(key)
    return str(value["place_id"]) if isinstance(value, dict) and value.get("place_id") else None
