"""What runs inside a map page and talks to the app: the draw control and the area it
posts (:func:`add_draw_control`, :func:`drawn_area`), and a pack map focused on a
selection whose places post their id when clicked (:func:`focus_map_html`)."""

from __future__ import annotations

import folium
import folium.plugins
import folium.template
import geopandas as gpd
import numpy as np
import shapely

from ..errors import HotspotsError
from ..schema import WEB_CRS, WORKING_CRS
from .base import FIT_PADDING, lonlat

#: ``type`` of the message a map with a draw control posts to its parent window.
DRAWN_AREA_MESSAGE = "hotspots:drawn-area"
#: How a drawn area or a selection is zoomed to: clear of the title box and the notice
#: (:data:`.base.FIT_PADDING`), no closer than street level, and not animated (Leaflet
#: drops a zoom asked for while one is animating: two resizes close together left the
#: map a zoom short).
FIT_OPTIONS = {"maxZoom": 17, "animate": False, **FIT_PADDING}
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
        // FIT_OPTIONS: without animation, clear of the title box
        var fit = function () {
          map.invalidateSize();
          map.fitBounds(items.getBounds(), {{ this.fit|tojson }});
        };
        fit();
        // the frame may get its final size after the map is built, in steps: zoom again
        // at each, until the user moves the map themselves
        var follow = true;
        ["mousedown", "touchstart", "wheel", "keydown"].forEach(function (e) {
          map.getContainer().addEventListener(e, function () { follow = false; });
        });
        map.on("resize", function () { if (follow) { fit(); } });
        setTimeout(function () { if (follow) { fit(); } }, 300);
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
        self.fit = FIT_OPTIONS


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
      var fit = function () {  // FIT_OPTIONS: see the drawn area's fit
        map.invalidateSize(); map.fitBounds(cfg.bounds, cfg.fit);
      };
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

    cfg = json.dumps({"keep": keep, "selected": selected, "bounds": bounds, "fit": FIT_OPTIONS,
                      "message": PLACE_MESSAGE}).replace("<", "\\u003c")
    script = _FOCUS_JS.replace("__CFG__", cfg)
    at = page.rfind("</html>")
    return page[:at] + script + page[at:] if at >= 0 else page + script
