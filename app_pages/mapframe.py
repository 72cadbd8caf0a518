"""The one hand-written Streamlit component both map components use: the package's own
offline map page shown in a frame, passing on to the app only the messages the map posts
of one type (panning and zooming never rerun the app).

It speaks Streamlit's component protocol by hand (the messages streamlit-component-lib
sends), so it needs no build step and no npm package.
"""

from __future__ import annotations

import html
import json

import streamlit.components.v1 as components

from app_pages import common

_INDEX = """<!doctype html>
<html><head><meta charset="utf-8"><style>
html,body{margin:0;height:100%;overflow:hidden}
iframe{border:0;width:100%;height:100%;display:block}
</style></head><body><iframe id="map" title="__TITLE__"></iframe><script>
var frame = document.getElementById("map"), shown = null__STATE__;
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
__ON_MESSAGE__
  }
});
send("streamlit:componentReady", {apiVersion: 1});
</script></body></html>
"""


def map_component(name: str, *, title: str, message: str, on_message: str, state: str = ""):
    """Declare the component ``hotspots_<name>``: a frame titled ``title`` showing the
    ``html`` argument; a ``message``-typed post from the map runs the JavaScript
    ``on_message`` (``d`` is the message, ``send`` the protocol; ``state`` declares its
    variables), which sets the component's value."""
    text = (_INDEX.replace("__TITLE__", html.escape(title))
            .replace("__STATE__", state).replace("__MESSAGE__", json.dumps(message))
            .replace("__ON_MESSAGE__", on_message))
    folder = common.WORK / name
    folder.mkdir(parents=True, exist_ok=True)
    index = folder / "index.html"
    if not index.is_file() or index.read_text("utf-8") != text:
        index.write_text(text, encoding="utf-8")
    return components.declare_component(f"hotspots_{name}", path=str(folder))
