"""What every map shares: the page (Leaflet and d3 inlined, :func:`map_html`,
:func:`save_map`), the configured tiles and the notice when they fail, the title box and
layer control, the frame round the study area, escaping and number formats, and
:func:`lonlat` (British National Grid to longitude and latitude)."""

from __future__ import annotations

import html
import json
import re
from importlib import resources
from pathlib import Path

import folium
import folium.template
import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
from branca.element import Element, Figure

from .. import webgeom
from ..config import Config
from ..schema import WEB_CRS, WORKING_CRS, transformer

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
@media (max-width:480px){.legend{transform:scale(.5)}}
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
NO_TILES_STREETS = "The numbered labels name the streets where they fit; the popups always do."


class _TileNotice(folium.MacroElement):
    """Marks the page ``hs-notiles`` when the map's tiles fail (an error before any tile
    has loaded, or nothing loaded within 8 s): the notice and the street labels show.
    A street label that would cover a higher-ranked place's label or any place's number
    is hidden (labels come in rank order; the place's popup still names it), again after
    each zoom, move or layer change: on a phone the labels of nearby places overlapped."""

    _template = folium.template.Template("""
    {% macro script(this, kwargs) %}
    (function (map) {
      var loaded = false;
      function declutter() {
        if (!document.body.classList.contains("hs-notiles")) { return; }
        var labels = Array.prototype.slice.call(document.querySelectorAll(".hs-street"));
        var numbers = labels.map(function (el) {
          el.style.visibility = "visible";
          return el.parentNode.getBoundingClientRect();
        });
        var kept = [];
        labels.forEach(function (el, i) {
          var r = el.getBoundingClientRect();
          function hit(b) {
            return r.left < b.right && b.left < r.right && r.top < b.bottom && b.top < r.bottom;
          }
          if (kept.some(hit) || numbers.some(function (b, j) { return j !== i && hit(b); })) {
            el.style.visibility = "hidden";
          } else { kept.push(r); }
        });
      }
      map.on("zoomend moveend overlayadd overlayremove resize", declutter);
      function fail() {
        if (!loaded) { document.body.classList.add("hs-notiles"); declutter(); }
      }
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


def page_of(m: Element) -> Figure:
    """The HTML page (a branca ``Figure``) a map is drawn in."""
    root = m.get_root()
    if not isinstance(root, Figure):
        raise TypeError("a map drawn outside an HTML page (branca Figure)")
    return root


#: Pixels kept clear round the area a map is fitted to (Leaflet's fitBounds options):
#: the title box (at the top of a wide map; at the bottom of a narrow one, a phone's or
#: the app's frames) and the no-tiles notice (at the other end) would otherwise hide its
#: edges: a London borough's southern half lay under the title in the app's patrol map.
FIT_PADDING = {"paddingTopLeft": [10, 60], "paddingBottomRight": [10, 110]}


def _title_and_controls(m: folium.Map, heading: str, note: str) -> None:
    page = page_of(m)
    page.header.add_child(folium.Element(_PAGE_CSS))
    page.html.add_child(folium.Element(
        f"<div class='hs-title'><b>{_esc(heading)}</b><br><span>{_esc(note)}</span></div>"))
    page.html.add_child(folium.Element(
        f"<div class='hs-notiles-box' role='status'>{_esc(NO_TILES_NOTE)}"
        f"<span class='hs-notiles-streets'> {_esc(NO_TILES_STREETS)}</span></div>"))
    _TileNotice().add_to(m)
    folium.LayerControl(collapsed=True, position="topleft").add_to(m)


def _script_json(value) -> str:
    """``value`` as JSON that can stand inside an HTML script element and that branca
    does not read as a template (:data:`JINJA_OPENER`)."""
    text = (json.dumps(value, separators=(",", ":")).replace("<", "\\u003c")
            .replace(">", "\\u003e").replace("&", "\\u0026"))
    # an opener lies inside a string (JSON has none outside): the same string, escaped
    return JINJA_OPENER.sub(r"\\u007b", text)


#: What starts a Jinja expression, statement or comment. branca renders what each map
#: element writes (a tooltip's script, a layer's data) by compiling it as a Jinja
#: template again (``MacroElement.render``): text from records, boundary files or the
#: configuration holding ``{{ ... }}`` would be run on the machine drawing the map (it
#: reaches Python's objects), and a stray ``{%`` would stop the map being drawn. So no
#: text reaches a map with an opener in it: HTML has "{" as ``&#123;`` (:func:`_esc`),
#: script data as ``\\u007b`` (:func:`_script_json`).
JINJA_OPENER = re.compile(r"\{(?=[{%#])")


#: ``function (spec, v)``: a popup's or tooltip's box, ``spec.lines`` filled in with the
#: values ``v`` as text nodes, so nothing in it is read as HTML. A line is a list of parts:
#: text, the index of a value in ``v``, or a list of parts shown bold; a line with a value
#: that is null is left out. A value that is a list holds counts in the order of
#: ``spec.names``, shown by name, largest first.
_TEXT_JS = """function (spec, v) {
  function shown(x) {
    if (!Array.isArray(x)) return String(x);
    var kinds = [];
    x.forEach(function (n, i) { if (n > 0) kinds.push([n, i]); });
    kinds.sort(function (a, b) { return b[0] - a[0] || a[1] - b[1]; });
    return kinds.map(function (k) { return spec.names[k[1]] + " " + k[0]; }).join("; ");
  }
  function known(parts) {
    return parts.every(function (p) {
      return typeof p === "number" ? v[p] != null : typeof p === "string" || known(p);
    });
  }
  function put(el, parts) {
    parts.forEach(function (p) {
      if (Array.isArray(p)) { put(el.appendChild(document.createElement("b")), p); }
      else { el.appendChild(document.createTextNode(typeof p === "number" ? shown(v[p]) : p)); }
    });
  }
  var box = document.createElement("div");
  spec.lines.forEach(function (line) {
    if (!known(line)) return;
    if (box.firstChild) box.appendChild(document.createElement("br"));
    put(box, line);
  });
  return box;
}"""

#: ``function (d)``: the Leaflet feature group of a :func:`shapes_layer`'s polygons.
_SHAPES_JS = """function (d) {
  var text = (__TEXT_JS__), x = 0, y = 0, group = L.featureGroup();
  function ring(r) {
    var out = [];
    for (var i = 0; i < r.length; i += 2) {
      x += r[i]; y += r[i + 1]; out.push([y / d.scale, x / d.scale]);
    }
    return out;
  }
  d.g.forEach(function (polys, k) {
    if (!polys.length) return;
    var v = d.v ? d.v[k] : [], style = d.styles[d.s ? d.s[k] : 0];
    var layer = L.polygon(polys.map(function (p) { return p.map(ring); }), style);
    if (d.p) { layer.feature = {type: "Feature", properties: d.p[k]}; }
    if (d.tooltip) {
      layer.bindTooltip(function () { return text(d.tooltip, v); },
                        {sticky: true, className: "foliumtooltip"});
    }
    if (d.popup) {
      layer.bindPopup(function () { return text(d.popup, v); }, {maxWidth: d.popup.width});
    }
    if (d.highlight) {
      layer.on({mouseover: function () { layer.setStyle(d.highlight); },
                mouseout: function () { layer.setStyle(style); }});
    }
    group.addLayer(layer);
  });
  return group;
}""".replace("__TEXT_JS__", _TEXT_JS)


class _Script(Element):
    """A script put into the page as it is: branca's own elements compile their text as a
    template (London's layers are megabytes: a second of each map)."""

    def __init__(self, text: str):
        super().__init__()
        self.text = text

    def render(self, **kwargs) -> str:
        return self.text


class _Shapes(folium.MacroElement):
    """Polygons drawn by :data:`_SHAPES_JS` into the layer this element is added to."""

    def __init__(self, data: dict):
        super().__init__()
        self._name = "Shapes"
        self.data = _script_json(data)

    def render(self, **kwargs) -> str:
        layer = self._parent
        if layer is None:
            raise TypeError("shapes drawn outside a layer")
        page_of(layer).script.add_child(_Script(
            f"({_SHAPES_JS})({self.data}).addTo({layer.get_name()});"), name=self.get_name())
        return ""  # drawn by the page's script


def shapes_layer(parent: folium.MacroElement, web: gpd.GeoDataFrame, *, styles: list[dict],
                 style_of: list[int] | None = None, values: list[list] | None = None,
                 tooltip: list[list] | None = None, popup: dict | None = None,
                 highlight: dict | None = None, properties: list[dict] | None = None,
                 scale: float = webgeom.PACK_SCALE) -> None:
    """Draw the polygons of ``web`` (EPSG:4326) in ``parent`` (a feature group), each
    styled by ``styles[style_of[i]]`` (Leaflet path options; the first when ``style_of``
    is None), with a tooltip of the lines ``tooltip`` and a popup of ``popup`` (``lines``,
    ``width``, and ``names`` of counts, as :data:`_TEXT_JS` takes them) filled in with its
    ``values`` (text or numbers; None leaves a line out) as text nodes; under the pointer
    a polygon takes the ``highlight`` path options too. ``properties`` become each
    polygon's ``feature.properties``, as GeoJSON layers have them (the app's focused map
    finds places by ``place_id``: :func:`hotspots.maps.focus_map_html`).

    The page holds each popup's lines once and each polygon's coordinates as
    :func:`hotspots.webgeom.packed_rings` (about 1 m with the default ``scale``): London's
    31,895 forecast cells take 1.6 MB instead of 6.3 MB of GeoJSON."""
    data: dict = {"scale": scale, "styles": styles,
                  "g": webgeom.packed_rings(np.asarray(web.geometry.values), scale)}
    if style_of is not None and len(styles) > 1:
        data["s"] = [int(i) for i in style_of]
    if values is not None:
        data["v"] = values
    if tooltip is not None:
        data["tooltip"] = {"lines": tooltip}
    if popup is not None:
        data["popup"] = popup
    if highlight is not None:
        data["highlight"] = highlight
    if properties is not None:
        data["p"] = properties
    _Shapes(data).add_to(parent)


def _esc(value) -> str:
    """``value`` as HTML text, its braces too (:data:`JINJA_OPENER`)."""
    return html.escape(str(value), quote=True).replace("{", "&#123;")


def _rate(v) -> str:
    return "n/a" if pd.isna(v) else f"{v:,.1f}"


def _fmt(v, digits=1) -> str:
    if isinstance(v, float | np.floating):
        return "–" if np.isnan(v) else f"{v:,.{digits}f}"
    return f"{v:,}"


def web_bounds(frame: gpd.GeoDataFrame | gpd.GeoSeries, *, candidates: int = 1000
               ) -> np.ndarray:
    """``frame.to_crs(WEB_CRS).total_bounds``, without projecting every vertex (London's
    LSOAs have 825,000: 0.8 s): the extremes of longitude and latitude are at the vertices
    that are extreme along the projection's local axes (a projection over a city is affine
    to a few metres), so the ``candidates`` vertices furthest along each of the four
    directions are projected, and their extremes are the same vertices' to the bit."""
    if frame.crs is None or frame.crs.equals(WEB_CRS):
        return np.asarray(frame.total_bounds)
    to_web = transformer(frame.crs, WEB_CRS)
    xy = shapely.get_coordinates(frame.geometry.to_numpy())
    if len(xy) <= 4 * candidates:
        pick = xy
    else:
        x0, y0 = xy.mean(axis=0)
        lon, lat = to_web.transform(np.array([x0, x0 + 1000.0, x0]),
                                    np.array([y0, y0, y0 + 1000.0]))
        rows = []
        for d in (lon, lat):  # each direction's gradient, degrees per metre east and north
            along = xy @ np.array([d[1] - d[0], d[2] - d[0]])
            rows += [np.argpartition(along, candidates)[:candidates],
                     np.argpartition(-along, candidates)[:candidates]]
        pick = xy[np.unique(np.concatenate(rows))]
    lon, lat = to_web.transform(pick[:, 0], pick[:, 1])
    return np.array([lon.min(), lat.min(), lon.max(), lat.max()])


def _framed_map(frame: gpd.GeoDataFrame, config: Config, *,
                outline: gpd.GeoDataFrame | None = None,
                cache: str | Path | None = None) -> folium.Map:
    """A map framed on ``frame`` (any CRS: see :func:`web_bounds`) with the configured
    tiles; with ``outline`` (the study area's polygons, EPSG:27700), its outline
    (:func:`hotspots.webgeom.outline`) as a fixed, unlisted layer. ``cache`` is the
    geodata cache folder, where the simplified polygons the outline is the union of are
    kept for the next map."""
    minx, miny, maxx, maxy = web_bounds(frame)
    # half zoom levels: fitted clear of the title box (FIT_PADDING), an area would
    # otherwise often drop to the whole level below, at half the size it could have
    m = folium.Map(location=[(miny + maxy) / 2, (minx + maxx) / 2], zoom_start=13,
                   **_tiles(config), control_scale=True, zoom_snap=0.5)
    m.fit_bounds([[miny, minx], [maxy, maxx]], padding_top_left=FIT_PADDING["paddingTopLeft"],
                 padding_bottom_right=FIT_PADDING["paddingBottomRight"])
    if outline is not None:
        shape = gpd.GeoSeries([webgeom.outline(outline, cache=cache)],
                              crs=outline.crs).to_crs(WEB_CRS)
        folium.GeoJson(shape.set_precision(1e-6).to_json(), name="Study area",
                       style_function=lambda f: {"fill": False, "color": "#333", "weight": 2},
                       control=False).add_to(m)
    return m


def lonlat(x, y) -> tuple[np.ndarray, np.ndarray]:
    """British National Grid metres as longitude and latitude (WGS84 degrees), for tables
    that a web map or Power BI plots (CSV exports)."""
    lon, lat = transformer(WORKING_CRS, WEB_CRS).transform(
        np.asarray(x, dtype=float), np.asarray(y, dtype=float))
    return lon, lat
