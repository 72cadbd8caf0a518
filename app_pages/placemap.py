"""A map whose places can be clicked, as a Streamlit component that returns only the place
clicked (the same hand-written component protocol as app_pages/drawmap.py).

The map is the package's own offline HTML, focused by
:func:`hotspots.maps.focus_map_html`; the component passes on what the map posts when a
place is clicked, and nothing else: panning and zooming never rerun the app.
"""

from __future__ import annotations

import streamlit as st
import streamlit.components.v1 as components

from app_pages import common
from hotspots.maps import PLACE_MESSAGE

_INDEX = """<!doctype html>
<html><head><meta charset="utf-8"><style>
html,body{margin:0;height:100%;overflow:hidden}
iframe{border:0;width:100%;height:100%;display:block}
</style></head><body><iframe id="map" title="Map of hotspots and places"></iframe><script>
var frame = document.getElementById("map"), shown = null, clicks = 0;
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
    clicks += 1;  // a second click on the same place selects it again
    send("streamlit:setComponentValue",
         {value: {place_id: String(d.place_id), click: clicks}, dataType: "json"});
  }
});
send("streamlit:componentReady", {apiVersion: 1});
</script></body></html>
"""


def _component():
    folder = common.WORK / "placemap"
    folder.mkdir(parents=True, exist_ok=True)
    index = folder / "index.html"
    text = _INDEX.replace("__MESSAGE__", f'"{PLACE_MESSAGE}"')
    if not index.is_file() or index.read_text("utf-8") != text:
        index.write_text(text, encoding="utf-8")
    return components.declare_component("hotspots_placemap", path=str(folder))


_map = _component()


def place_map(html: str, *, key: str, height: int = 520, on_change=None) -> dict | None:
    """Show a focused map page; returns ``{"place_id", "click"}`` of the last place clicked
    (None before any click). ``on_change`` runs when a place is clicked."""
    return _map(html=html, height=height, key=key, default=None, on_change=on_change)


def clicked(key: str) -> str | None:
    """The place last clicked on the map with this key, from the session."""
    value = st.session_state.get(key)
    return str(value["place_id"]) if isinstance(value, dict) and value.get("place_id") else None
