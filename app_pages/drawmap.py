"""A map to draw an area on, as a Streamlit component that returns only the drawn area.

The map is the package's own offline HTML (:func:`hotspots.maps.map_html` with
:func:`hotspots.maps.add_draw_control`), shown in a frame inside the component. The
component passes on what the map posts when an area is drawn, edited or deleted, and
nothing else: panning and zooming never rerun the app. (st_folium does the same job but
its frontend loads Leaflet from a CDN, so its maps stay blank without internet access.)

The component speaks Streamlit's component protocol by hand (the messages
streamlit-component-lib sends), so it needs no build step and no npm package.
"""

from __future__ import annotations

import folium
import streamlit as st
import streamlit.components.v1 as components

from app_pages import common
from hotspots.errors import HotspotsError
from hotspots.maps import DRAWN_AREA_MESSAGE, add_draw_control, drawn_area, map_html

_INDEX = """<!doctype html>
<html><head><meta charset="utf-8"><style>
html,body{margin:0;height:100%;overflow:hidden}
iframe{border:0;width:100%;height:100%;display:block}
</style></head><body><iframe id="map" title="Map: draw an area"></iframe><script>
var frame = document.getElementById("map"), shown = null;
function send(type, data) {
  window.parent.postMessage(Object.assign({isStreamlitMessage: true, type: type}, data), "*");
}
window.addEventListener("message", function (e) {
  var d = e.data || {};
  if (e.source === window.parent && d.type === "streamlit:render") {
    var args = d.args || {};
    send("streamlit:setFrameHeight", {height: args.height});
    if (args.html !== shown) { shown = args.html; frame.srcdoc = args.html; }
  } else if (e.source === frame.contentWindow && d.type === __MESSAGE__) {
    send("streamlit:setComponentValue", {value: d.geojson, dataType: "json"});
  }
});
send("streamlit:componentReady", {apiVersion: 1});
</script></body></html>
"""


def _component():
    folder = common.WORK / "drawmap"
    folder.mkdir(parents=True, exist_ok=True)
    index = folder / "index.html"
    text = _INDEX.replace("__MESSAGE__", f'"{DRAWN_AREA_MESSAGE}"')
    if not index.is_file() or index.read_text("utf-8") != text:
        index.write_text(text, encoding="utf-8")
    return components.declare_component("hotspots_drawmap", path=str(folder))


_draw = _component()


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
