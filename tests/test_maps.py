"""Maps: escaping, legend, layers; and the page itself in a real headless Chromium."""

import re
import shutil

import numpy as np
import pandas as pd
import pytest
import shapely

from hotspots.maps import area_map, map_html, save_map
from hotspots.summary import area_summary, month_period

from .conftest import XSS_PAYLOADS, guard_page, open_page, xss_findings

EVIL = "<script>window.__pwned=1</script>${window.__pwned=2}`=HYPERLINK(\"http://x\")"


def demo_incidents(layers):
    """A few incidents at real LSOA centroids, one with hostile location text."""
    lsoa = layers["lsoa"].head(6)
    pts = lsoa.geometry.representative_point()
    rows = []
    for i, (code, p) in enumerate(zip(lsoa["code"], pts, strict=True)):
        for k in range(i + 1):
            rows.append({"source": "t", "ref": f"{code}-{k}", "category":
                         "drug_dealing" if k % 2 else "nox_sighting", "category_raw": "x",
                         "period": "2024-08", "date": "2024-08-10", "hour": 21, "x": p.x,
                         "y": p.y, "location": EVIL if i == 5 else f"Street {i}",
                         "location_key": f"k{i}", "caller_key": "", "description": "",
                         "quantity": 1, "ward_code": "", "lsoa_code": code, "source_lsoa": "",
                         "file": "f", "row": 2})
    return pd.DataFrame(rows)


@pytest.fixture()
def built(layers, config):
    inc = demo_incidents(layers)
    table, meta = area_summary(inc, layers["lsoa"], level="lsoa",
                               period=month_period("2024-08"), config=config)
    return area_map(table, meta, config=config, incidents=inc), table, inc


def test_record_text_is_escaped_and_page_is_self_contained(built):
    page = map_html(built[0])
    n = built[2]["category"].value_counts()
    assert "<script>window.__pwned" not in page
    # HTML-escaped, then JSON-escaped inside the GeoJSON the page carries
    assert r"\u0026lt;script\u0026gt;window.__pwned=1\u0026lt;/script\u0026gt;" in page
    # no external scripts or stylesheets: opens offline apart from map tiles
    assert not re.search(r'<script src="http', page)
    assert not re.search(r'<link rel="stylesheet" href="http', page)
    assert "by LSOA, 2024-08 (previous: 2024-07)" in page
    assert f"Drug dealing: busiest locations ({n['drug_dealing']} incidents)" in page
    assert f"Nitrous oxide sighting: busiest locations ({n['nox_sighting']} incidents)" in page


#: Jinja syntax: what a map element writes is compiled as a template again by branca.
JINJA = "{{ 6*7 }}x{% if %}{# "


def test_text_with_template_syntax_is_shown_not_run(layers, config):
    """Record text, boundary names and the area's name holding {{ ... }} are shown as
    written, never evaluated (an expression there reaches Python's objects on the machine
    drawing the map), and a stray {% does not stop the map being drawn."""
    import dataclasses

    inc = demo_incidents(layers).assign(location=JINJA)
    areas = layers["lsoa"].assign(name=JINJA)
    table, meta = area_summary(inc, areas, level="lsoa", period=month_period("2024-08"),
                               config=config)
    m = area_map(table, meta, config=dataclasses.replace(config, name=JINJA), incidents=inc)
    page = map_html(m)  # with the text compiled, this raised TemplateSyntaxError
    assert "42x" not in page
    assert "&#123;&#123; 6*7 }}x&#123;% if %}&#123;# " in page  # the title, as HTML
    assert "\\u007b{ 6*7 }}x\\u007b% if %}\\u007b# " in page  # names, as script data
    assert "\\u0026#123;\\u0026#123; 6*7 }}x" in page  # a location's popup HTML, in GeoJSON


def test_unknown_measure_is_refused(built, layers, config):
    table = built[1]
    with pytest.raises(ValueError, match=r"measure = 'rate'; use one of \['n', 'harm'"):
        area_map(table, {"level": "lsoa"}, config=config, measure="rate")


@pytest.mark.skipif(shutil.which("chromium") is None, reason="needs Debian chromium "
                    "(installed by .ci/setup)")
def test_map_in_headless_chromium(built, layers, tmp_path):
    from playwright.sync_api import sync_playwright

    path = save_map(built[0], tmp_path / "map.html")
    table = built[1].set_index("code")
    code = layers["lsoa"]["code"].iloc[5]
    row = table.loc[code]
    rep = layers["lsoa"].head(6).geometry.representative_point().to_crs(4326).iloc[5]
    target = (rep.x, rep.y)
    with sync_playwright() as pw:
        browser, page, errors = open_page(pw, width=375, height=812)
        page.goto(path.as_uri())
        page.wait_for_selector("path.leaflet-interactive")
        assert page.locator("path.leaflet-interactive").count() == 169
        assert "Incidents per km² by LSOA" in page.locator(".legend").inner_text()
        # the densest LSOA is the one with the hostile location text: open its popup
        # zoom in and tap, as a user would, where the incidents with the hostile text are
        lon, lat = target
        find_map = "Object.values(window).find(v => v instanceof L.Map)"
        page.evaluate(f"([lat, lon]) => {find_map}.setView([lat, lon], 17, {{animate: false}})",
                      [lat, lon])
        page.wait_for_timeout(300)  # let Leaflet redraw the paths at the new zoom
        px, py = page.evaluate("""([lat, lon]) => {
            const m = Object.values(window).find(v => v instanceof L.Map);
            const p = m.latLngToContainerPoint([lat, lon]);
            const r = m.getContainer().getBoundingClientRect();
            return [r.left + p.x, r.top + p.y]; }""", [lat, lon])
        # under the pointer: the area's name, code and value, and a black outline
        page.mouse.move(px - 1, py - 1)
        page.mouse.move(px, py)
        page.wait_for_timeout(300)  # tooltips the pointer left fade out in 200 ms
        tip = page.locator(".leaflet-tooltip").inner_text()
        assert tip == f"{row['name']} ({code}): {row['density_per_km2']:,.1f}"
        outlined = page.locator("path.leaflet-interactive[stroke='#000']")
        assert outlined.count() == 1 and outlined.get_attribute("stroke-width") == "3"
        page.mouse.click(px, py)
        text = page.locator(".leaflet-popup-content").inner_text()
        assert "<script>window.__pwned=1</script>" in text
        assert text.startswith(f"{row['name']} ({code})\nRank 1 by ")
        assert page.evaluate("window.__pwned === undefined")
        page.screenshot(path=str(tmp_path / "phone.png"))
        for width in (375, 320):  # a small phone, or the app's map frame on one
            page.set_viewport_size({"width": width, "height": 640})
            page.wait_for_timeout(200)
            box = page.locator(".legend").first.bounding_box()
            assert box and box["x"] >= 0 and box["x"] + box["width"] <= width, (width, box)
        browser.close()
    assert errors == []


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("chromium") is None, reason="needs Debian chromium")
def test_boundary_names_and_category_labels_are_text_on_the_area_map(layers, config, tmp_path):
    """Ward and LSOA names come from a boundary file and category labels from the
    configuration: both reach tooltips, popups and the layer control as text only."""
    import dataclasses

    from playwright.sync_api import sync_playwright

    lsoa = layers["lsoa"].copy()
    lsoa["name"] = [XSS_PAYLOADS[i % len(XSS_PAYLOADS)] for i in range(len(lsoa))]
    labels = {k: dataclasses.replace(c, label=XSS_PAYLOADS[i % len(XSS_PAYLOADS)])
              for i, (k, c) in enumerate(config.categories.items())}
    hostile = dataclasses.replace(config, categories=labels, name=XSS_PAYLOADS[2])
    inc = demo_incidents(layers)
    table, meta = area_summary(inc, lsoa, level="lsoa", period=month_period("2024-08"),
                               config=hostile)
    path = save_map(area_map(table, meta, config=hostile, incidents=inc), tmp_path / "m.html")
    with sync_playwright() as pw:
        browser, page, errors = open_page(pw, width=1000, height=800)
        dialogs = guard_page(page)
        page.goto(path.as_uri())
        page.wait_for_selector("path.leaflet-interactive")
        found = xss_findings(page)
        control = page.locator(".leaflet-control-layers").text_content()
        tooltips = page.locator(".leaflet-tooltip").all_inner_texts()
        browser.close()
    assert found == [] and dialogs == [] and errors == []
    assert any(p in t for p in XSS_PAYLOADS for t in tooltips)  # shown as text
    assert any(f"{p}: busiest locations" in control for p in XSS_PAYLOADS)  # layer names


def test_area_map_shows_streets_with_repeats_never_a_single_address(layers, config):
    inc = demo_incidents(layers)
    inc.loc[0, "location"] = "Flat 3, Quiet House, Globe Road"  # one incident: never shown
    inc.loc[1:2, "location"] = ["12 Busy House, Mile End Road", "14 Busy House, Mile End Road"]
    inc.loc[1:2, "lsoa_code"] = inc.loc[1, "lsoa_code"]
    table, meta = area_summary(inc, layers["lsoa"], level="lsoa",
                               period=month_period("2024-08"), config=config)
    page = map_html(area_map(table, meta, config=config, incidents=inc))
    assert "Quiet House" not in page and "Busy House" not in page
    assert "Mile End Road (2)" in page


def test_a_repeat_location_is_named_by_its_first_incident_in_store_order(layers, config):
    """Incidents at one location with different streets: its marker names the street of the
    first in order of source and reference, whatever order the rows come in (the store
    reads a period in no particular order)."""
    inc = demo_incidents(layers)
    at = inc.index[inc["location_key"] == "k3"]
    inc.loc[at, "category"] = "nox_sighting"
    inc.loc[at, "location"] = ["Zed Street", "Alpha Road", "Mid Lane", "Zed Street"]
    inc.loc[at, "ref"] = ["r4", "r2", "r3", "r5"]
    for rows in (inc, inc.iloc[::-1]):
        table, meta = area_summary(rows, layers["lsoa"], level="lsoa",
                                   period=month_period("2024-08"), config=config)
        page = map_html(area_map(table, meta, config=config, incidents=rows))
        assert "Alpha Road" in page and "Mid Lane" not in page
        assert "Zed Street (2)" in page  # the area's busiest street


def _square(x0, y0, side):
    from pyproj import Transformer

    t = Transformer.from_crs(27700, 4326, always_xy=True)
    ring = [list(t.transform(x, y)) for x, y in ((x0, y0), (x0 + side, y0),
                                                (x0 + side, y0 + side), (x0, y0 + side),
                                                (x0, y0))]
    return {"type": "Polygon", "coordinates": [ring]}


def _fc(*geoms):
    return {"type": "FeatureCollection",
            "features": [{"type": "Feature", "properties": {}, "geometry": g} for g in geoms]}


def test_drawn_area_is_read_in_metres_and_bad_shapes_are_refused(area):
    from hotspots.errors import HotspotsError
    from hotspots.maps import drawn_area

    assert drawn_area(None, area) is None
    assert drawn_area(_fc(), area) is None  # everything deleted
    got = drawn_area(_fc(_square(534000, 181500, 300)), area)
    assert got.area == pytest.approx(90_000, rel=1e-3)
    assert got.bounds == pytest.approx((534000, 181500, 534300, 181800), abs=0.05)
    # two shapes are one area; a bow tie is repaired, not refused
    two = drawn_area(_fc(_square(534000, 181500, 300), _square(535000, 181500, 300)), area)
    assert two.area == pytest.approx(180_000, rel=1e-3)
    bow = _square(534000, 181500, 300)
    ring = bow["coordinates"][0]
    bow["coordinates"] = [[ring[0], ring[2], ring[1], ring[3], ring[0]]]
    assert drawn_area(_fc(bow), area).area > 0
    with pytest.raises(HotspotsError, match="under 100 m²; draw it again"):
        drawn_area(_fc(_square(534000, 181500, 5)), area)
    with pytest.raises(HotspotsError, match="outside the study area; draw it over"):
        drawn_area(_fc(_square(600000, 150000, 500)), area)
    with pytest.raises(HotspotsError, match="could not be read .*draw it again"):
        drawn_area({"type": "FeatureCollection", "features": [{"geometry": {"type": "Polygon",
                                                                            "coordinates": 5}}]},
                   area)


@pytest.mark.skipif(shutil.which("chromium") is None, reason="needs Debian chromium")
def test_draw_control_posts_the_drawn_area_and_nothing_on_panning(layers, config, area,
                                                                  tmp_path):
    """The map in a frame, as in the app: drawing a rectangle posts that rectangle to the
    parent window; panning posts nothing; a second drawing replaces the first."""
    from playwright.sync_api import sync_playwright

    from hotspots.maps import DRAWN_AREA_MESSAGE, add_draw_control, drawn_area, hotspot_map

    ward = layers["ward"].head(1)
    m = hotspot_map(area=ward, config=config, meta={"period": "2024-08", "incidents": 0})
    (tmp_path / "map.html").write_text(map_html(add_draw_control(m)), encoding="utf-8")
    (tmp_path / "index.html").write_text(
        "<script>window.got = []; addEventListener('message', e => got.push(e.data));"
        "</script><iframe src='map.html' style='width:800px;height:500px;border:0'></iframe>",
        encoding="utf-8")
    find_map = "Object.values(window).find(v => v instanceof L.Map)"
    with sync_playwright() as pw:
        browser, page, errors = open_page(pw, width=900, height=600)
        page.goto((tmp_path / "index.html").as_uri())
        frame = page.frame_locator("iframe")
        inner = page.frames[1]
        frame.locator(".leaflet-draw-draw-rectangle").wait_for()

        def drag(x0, y0, x1, y1):
            page.mouse.move(x0, y0)
            page.mouse.down()
            page.mouse.move(x1, y1, steps=6)
            page.mouse.up()

        drag(400, 200, 550, 300)  # panning: nothing is posted
        page.wait_for_timeout(300)
        assert page.evaluate("got.length") == 0
        corners = []
        for x0, y0, x1, y1 in ((200, 150, 400, 300), (450, 200, 600, 350)):
            frame.locator(".leaflet-draw-draw-rectangle").click()
            drag(x0, y0, x1, y1)
            page.wait_for_function("got.length > 0")
            box = page.locator("iframe").bounding_box()  # page -> map container pixels
            # the two corners, and a point one pixel from the first for the tolerance
            corners.append(inner.evaluate(
                f"(p) => p.map(xy => {find_map}.containerPointToLatLng(xy))",
                [[x0 - box["x"], y0 - box["y"]], [x1 - box["x"], y1 - box["y"]],
                 [x0 - box["x"] + 1, y0 - box["y"] + 1]]))
        posted = page.evaluate("got")
        browser.close()
    assert errors == []
    assert [p["type"] for p in posted] == [DRAWN_AREA_MESSAGE] * 2
    assert len(posted[1]["geojson"]["features"]) == 1  # the second replaced the first
    for message, (a, b, one_px) in zip(posted, corners, strict=True):
        ring = message["geojson"]["features"][0]["geometry"]["coordinates"][0]
        lons, lats = [p[0] for p in ring], [p[1] for p in ring]
        # within a pixel: the mouse lands on whole or sub-pixels depending on the frame's
        # offset (up to half a pixel), and toGeoJSON rounds to 6 decimals on top (a run on
        # a busy machine was 0.51 px off); a wrong corner is off by the drag, tens of pixels
        px_lng, px_lat = abs(one_px["lng"] - a["lng"]), abs(one_px["lat"] - a["lat"])
        assert min(lons) == pytest.approx(min(a["lng"], b["lng"]), abs=px_lng)
        assert max(lons) == pytest.approx(max(a["lng"], b["lng"]), abs=px_lng)
        assert max(lats) == pytest.approx(max(a["lat"], b["lat"]), abs=px_lat)
    assert drawn_area(posted[1]["geojson"], area).area > 10_000


def _places(layers, labels):
    import geopandas as gpd

    lsoa = layers["lsoa"].head(len(labels))
    return gpd.GeoDataFrame({
        "place_id": [f"P{i}" for i in range(len(labels))], "label": labels,
        "n": 5, "area_km2": 0.01, "density_per_km2": 500.0, "harm": 5.0,
        "repeat_locations": 1, "repeat_share": 0.4, "main_categories": "Drug dealing 100%",
        "busiest_hour": 21, "busiest_weekday": "Fri", "first_seen": "2024-08-01",
        "last_seen": "2024-08-30"}, geometry=lsoa.geometry.buffer(-50).values, crs=27700)


def test_tiles_come_from_the_configuration(layers, config):
    import dataclasses

    from hotspots.maps import NO_TILES_NOTE, NO_TILES_STREETS, hotspot_map

    own = dataclasses.replace(config, patrol=dataclasses.replace(
        config.patrol, tile_url="https://tiles.council.example/{z}/{x}/{y}.png",
        tile_attribution="Council <b>tiles</b>"))
    page = map_html(hotspot_map(area=layers["ward"], config=own,
                                places=_places(layers, ["Brick Lane", EVIL]),
                                meta={"period": "2024-08", "incidents": 3}))
    assert "https://tiles.council.example/{z}/{x}/{y}.png" in page
    assert "openstreetmap" not in page.lower().replace("© openstreetmap", "")
    assert r"Council \u0026lt;b\u0026gt;tiles" in page  # HTML-escaped, then JSON-escaped
    assert NO_TILES_NOTE in page and NO_TILES_STREETS in page
    assert r"hs-street\u0027\u003eBrick Lane\u003c/span" in page  # labels name the streets
    assert "<script>window.__pwned" not in page


@pytest.mark.skipif(shutil.which("chromium") is None, reason="needs Debian chromium "
                    "(installed by .ci/setup)")
def test_without_a_tile_server_the_map_says_so_and_names_the_streets(layers, config,
                                                                      tmp_path):
    from playwright.sync_api import sync_playwright

    from hotspots.maps import NO_TILES_NOTE, NO_TILES_STREETS, hotspot_map

    m = hotspot_map(area=layers["ward"], config=config,
                    places=_places(layers, ["Brick Lane", "Watney Street"]),
                    meta={"period": "2024-08", "incidents": 3})
    path = save_map(m, tmp_path / "map.html")
    with sync_playwright() as pw:  # no network here: every tile fails
        browser, page, errors = open_page(pw, width=375, height=812)
        page.route("**/*.png", lambda route: route.abort())  # and no tile server, surely
        page.goto(path.as_uri())
        page.locator(".hs-notiles-box").wait_for(state="visible", timeout=20_000)
        assert page.locator(".hs-notiles-box").inner_text() == f"{NO_TILES_NOTE} {NO_TILES_STREETS}"
        streets = page.locator(".hs-street")
        assert streets.nth(0).is_visible() and streets.nth(0).inner_text() == "Brick Lane"
        assert streets.nth(1).text_content() == "Watney Street"  # shown where it fits
        page.screenshot(path=str(tmp_path / "no_tiles.png"))
        shutil.copy(tmp_path / "no_tiles.png", "/tmp/off_no_tiles.png")
        browser.close()
    assert errors == []


@pytest.mark.skipif(shutil.which("chromium") is None, reason="needs Debian chromium "
                    "(installed by .ci/setup)")
def test_street_labels_that_would_overlap_are_hidden_until_zoomed_in(layers, config,
                                                                     tmp_path):
    """Three places 40 m apart, one above the other: on the borough view of a phone their
    labels would cover each other, so only the top-ranked one shows; zoomed in, all do."""
    import geopandas as gpd
    from playwright.sync_api import sync_playwright

    from hotspots.maps import hotspot_map

    x, y = layers["ward"].geometry.union_all().representative_point().coords[0]
    squares = [shapely.box(x, y - 40 * i, x + 20, y - 40 * i + 20) for i in range(3)]
    labels = ["Brick Lane", "Watney Street", "Cable Street"]
    places = gpd.GeoDataFrame(_places(layers, labels).drop(columns="geometry"),
                              geometry=squares, crs=27700)
    path = save_map(hotspot_map(area=layers["ward"], config=config, places=places,
                                meta={"period": "2024-08", "incidents": 3}),
                    tmp_path / "map.html")
    shown = ("() => [...document.querySelectorAll('.hs-street')].filter("
             "e => getComputedStyle(e).visibility === 'visible').map(e => e.textContent)")
    with sync_playwright() as pw:
        browser, page, errors = open_page(pw, width=375, height=812)
        page.route("**/*.png", lambda route: route.abort())
        page.goto(path.as_uri())
        page.locator(".hs-notiles-box").wait_for(state="visible", timeout=20_000)
        assert page.evaluate(shown) == ["Brick Lane"]
        for _ in range(6):
            page.locator(".leaflet-control-zoom-in").click()
            page.wait_for_timeout(400)
        page.wait_for_function(f"({shown})().length === 3", timeout=10_000)
        browser.close()
    assert errors == []


def test_emerging_classes_on_a_map(layers, config):
    from hotspots.grid import make_grid
    from hotspots.maps import EMERGING_COLOURS, emerging_map

    grid = make_grid(layers["ward"].geometry.union_all(), cell_size_m=500)
    pattern = np.array(["no pattern"] * len(grid), dtype=object)
    pattern[:3], pattern[3:5], pattern[5] = ("persistent hot spot", "new hot spot",
                                            "sporadic cold spot")
    cells = grid.assign(pattern=pattern)
    page = map_html(emerging_map(cells, area=layers["ward"], config=config,
                                 meta={"period": "2023-09 to 2024-08", "cell_size_m": 500}))
    assert "emerging hot spots, 2023-09 to 2024-08" in page
    assert "Cells of 500 m" in page
    for name, n in (("persistent hot spot", 3), ("new hot spot", 2), ("sporadic cold spot", 1)):
        assert f"{name}: {n}</div>" in page  # the legend
        assert f"{name} ({n} cells)" in page  # the tooltip of the class's cells
        assert EMERGING_COLOURS[name] in page
    assert "intensifying hot spot:" not in page  # classes with no cell stay out
    empty = map_html(emerging_map(cells.assign(pattern="no pattern"), area=layers["ward"],
                                  config=config, meta={"period": "x", "cell_size_m": 500}))
    assert "No cell has a class." in empty


def _shapes_data(page: str) -> list[dict]:
    """The data of each :func:`hotspots.maps.base.shapes_layer` on a map page."""
    import json

    return [json.loads(d) for d in re.findall(r'\}\)\((\{"scale".*?\})\)\.addTo\(', page)]


def test_area_popups_travel_as_values_with_their_lines_once(built):
    """Each area carries its popup's values and its tooltip's; the page holds the lines
    once (for London's 4,994 LSOAs the popups were 2.8 MB of a 5.6 MB page), and no popup
    or tooltip text is HTML."""
    page = map_html(built[0])
    table = built[1]
    assert page.count("Harm-weighted: ") == 1 and page.count("Busiest streets: ") == 1
    [data] = _shapes_data(page)
    assert len(data["v"]) == len(data["g"]) == len(table)
    assert data["tooltip"] == {"lines": [[0, " (", 1, "): ", 15]]}
    assert data["highlight"] == {"weight": 3, "color": "#000"}
    # the hostile street is in an area's values as JSON text, never as markup
    busiest = [v[14] for v in data["v"] if v[14]]
    assert f"{EVIL} (6)" in busiest
    assert r'\u003cscript\u003ewindow.__pwned=1\u003c/script\u003e${window.__pwned=2}' in page
    # one style per colour; the densest area the darkest
    first = data["v"].index(next(v for v in data["v"] if v[2] == "1"))
    assert data["styles"][data["s"][first]]["fillColor"] == "#bd0026ff"
    assert len(data["styles"]) == len({st["fillColor"] for st in data["styles"]})


def _detection_map(layers, config):
    """A detection map with two places (one named by hostile text), two Gi* cells and two
    forecast cells; and the popup and tooltip texts a user should see on it."""
    import geopandas as gpd

    from hotspots.maps import hotspot_map

    places = _places(layers, ["Brick Lane", EVIL])
    x, y = places.geometry.union_all().representative_point().coords[0]
    squares = [shapely.box(x + 100 * i, y, x + 100 * (i + 1), y + 100) for i in range(2)]
    cells = gpd.GeoDataFrame({"gi_class": [3, -1], "n": [12, 0], "gistar_z": [3.21, -1.7],
                              "p_adjusted": [0.0012, 0.08]}, geometry=squares, crs=27700)
    forecast = gpd.GeoDataFrame({"rank": [1, 2], "score": [3.14159, 2.5]},
                                geometry=[s.buffer(-25) for s in squares], crs=27700)
    info = {"month": "2024-09", "description": "counts", "cell_size_m": 50.0,
            "pai_5pct": float("nan"), "hit_rate_5pct": float("nan"), "test_months": 0,
            "fallback": True}
    m = hotspot_map(area=layers["ward"], config=config, places=places, cells=cells,
                    forecast=forecast, meta={"period": "2024-08", "incidents": 10,
                                             "cell_size_m": 100, "gi_neighbours": "queen",
                                             "fdr": True, "forecast": info})
    place = ("{i}. {label} ({pid})\n5 incidents in 0.010 km² = 500 per km²\nHarm-weighted "
             "5.0; repeat locations 1 holding 40%\nDrug dealing 100%\nBusiest: Fri 21:00\n"
             "Seen 2024-08-01 to 2024-08-30")
    popups = {place.format(i=1, label="Brick Lane", pid="P0"),
              place.format(i=2, label=EVIL, pid="P1"),
              "Hot spot, 99% confidence\n12 incident(s) in the cell\n"
              "Gi* z = 3.21, p = 0.0012 (FDR-adjusted)",
              "Cold spot, 90% confidence\n0 incident(s) in the cell\n"
              "Gi* z = -1.70, p = 0.0800 (FDR-adjusted)"}
    tooltips = {"Rank 1 of 2; score 3.14", "Rank 2 of 2; score 2.50"}
    return m, popups, tooltips


def test_detection_popups_travel_as_values_with_their_lines_once(layers, config):
    """Places, Gi* cells and forecast cells carry their values; the page holds each
    layer's lines once (a London month's 31,895 forecast cells and 2,499 places were
    11.6 MB of a 12.9 MB page), and no popup text is HTML."""
    page = map_html(_detection_map(layers, config)[0])
    assert page.count("Harm-weighted ") == 1 and page.count(" incident(s) in the cell") == 1
    assert page.count("; score ") == 1 and "Rank 2 of 2" not in page
    assert "<script>window.__pwned" not in page and "\\u003cbr\\u003e" not in page
    assert r'"2. \u003cscript\u003ewindow.__pwned=1\u003c/script\u003e' in page


@pytest.mark.skipif(shutil.which("chromium") is None, reason="needs Debian chromium "
                    "(installed by .ci/setup)")
def test_detection_popups_and_tooltips_show_their_text_in_chromium(layers, config, tmp_path):
    from playwright.sync_api import sync_playwright

    m, popups, tooltips = _detection_map(layers, config)
    path = save_map(m, tmp_path / "map.html")
    texts = """() => {
      document.querySelectorAll('input.leaflet-control-layers-selector').forEach(box => {
        if (!box.checked) box.click();  // the Gi* layer is hidden at first
      });
      const m = Object.values(window).find(v => v instanceof L.Map), out = [[], []];
      m.eachLayer(l => {
        if (l.getPopup && l.getPopup()) {
          l.openPopup();
          out[0].push(l.getPopup().getElement().querySelector('.leaflet-popup-content').innerText);
          m.closePopup();
        }
        if (l.getTooltip && l.getTooltip()) {
          l.openTooltip(); out[1].push(l.getTooltip().getElement().innerText);
          l.closeTooltip();
        }
      });
      return out;
    }"""
    with sync_playwright() as pw:
        browser, page, errors = open_page(pw, width=1000, height=800)
        dialogs = guard_page(page)
        page.route("**/*.png", lambda route: route.abort())
        page.goto(path.as_uri())
        page.wait_for_selector("path.leaflet-interactive")
        shown_popups, shown_tooltips = page.evaluate(texts)
        found = xss_findings(page)
        browser.close()
    assert set(shown_popups) == popups and len(shown_popups) == 4
    assert set(shown_tooltips) == tooltips and len(shown_tooltips) == 2
    assert found == [] and dialogs == [] and errors == []


def test_the_places_layer_names_how_many_it_numbers(layers, config):
    """The layer control says how many places are numbered: the patrol map's ten said
    "top 20"."""
    from hotspots.maps import hotspot_map

    places = _places(layers, ["Brick Lane", "Watney Street"])
    page = map_html(hotspot_map(area=layers["ward"], config=config, places=places,
                                meta={"period": "2024-08", "incidents": 2}))
    assert "Places (clusters), numbered by incidents: top 2; " in page and "top 20" not in page


def test_a_colour_scale_labels_no_two_edges_on_top_of_each_other():
    from hotspots.maps.detection import spaced_ticks

    london = [6.0, 34.0, 68.0, 136.0, 272.0, 408.0, 543.0, 679.0]  # a London month's bands
    assert spaced_ticks(london) == [6.0, 68.0, 136.0, 272.0, 408.0, 543.0, 679.0]
    even = [0.0, 10.0, 20.0, 30.0, 40.0]
    assert spaced_ticks(even) == even  # nothing is dropped that has room
    assert spaced_ticks([0.0, 1.0, 99.0, 100.0]) == [0.0, 100.0]  # the ends stay
    assert spaced_ticks([5.0]) == [5.0]


def test_many_forecast_cells_are_drawn_as_their_merged_outline(layers, config, monkeypatch):
    """Above MAX_FORECAST_CELLS the forecast layer is one shape, the union of its cells
    (the same ground), saying how many it merges; below, a shape and a rank per cell."""
    import geopandas as gpd

    from hotspots.maps import detection, hotspot_map

    x, y = layers["ward"].geometry.union_all().representative_point().coords[0]
    cells = [shapely.box(x + 50 * i, y + 50 * j, x + 50 * (i + 1), y + 50 * (j + 1))
             for i in range(4) for j in range(3) if (i, j) != (1, 1)]  # a ring of 11
    forecast = gpd.GeoDataFrame({"rank": range(1, 12), "score": np.linspace(3, 1, 11)},
                                geometry=cells, crs=27700)
    info = {"month": "2024-09", "description": "counts", "cell_size_m": 50.0,
            "pai_5pct": 2.0, "hit_rate_5pct": 0.1, "test_months": 3, "fallback": False}

    real, drawn = detection.shapes_layer, []
    monkeypatch.setattr(detection, "shapes_layer", lambda fg, web, **kw: (
        drawn.append((web.to_crs(27700), kw["values"])), real(fg, web, **kw)))

    def forecast_drawn(limit: int):
        monkeypatch.setattr(detection, "MAX_FORECAST_CELLS", limit)
        drawn.clear()
        map_html(hotspot_map(area=layers["ward"], config=config, forecast=forecast,
                             meta={"period": "2024-08", "incidents": 1, "forecast": info}))
        (shapes, values), = drawn  # the forecast layer's, the only one drawn here
        return shapes, values

    shapes, values = forecast_drawn(10)
    assert values == [["The forecast's 11 cells, merged into one outline: too many to draw "
                       "one by one"]]
    (one,) = shapes.geometry
    assert one.geom_type == "Polygon" and len(one.interiors) == 1  # the ring and its hole
    assert one.area == pytest.approx(11 * 2500, rel=1e-6)
    assert one.symmetric_difference(shapely.union_all(cells)).area < 1  # the same ground
    shapes, values = forecast_drawn(11)
    assert len(shapes) == 11 and values[0] == [1, "3.00"] and values[-1] == [11, "1.00"]


def test_a_maps_frame_is_the_bounds_of_its_polygons_projected(layers, cache):
    """web_bounds projects only the vertices that can hold an extreme: the frame is the
    bounds of every vertex projected, to the bit, for a ward, a borough's LSOAs, the City
    and all of London's 4,994 LSOAs; a frame already in degrees is its own bounds."""
    import geopandas as gpd

    from hotspots.maps.base import web_bounds

    london = gpd.read_file(cache / "london_lsoa21.gpkg")
    city = gpd.read_file(cache / "city_of_london_lsoa21.geojson").to_crs(27700)
    for frame in (layers["ward"].iloc[[3]], layers["lsoa"], layers["ward"], city, london):
        want = frame.to_crs(4326).total_bounds
        assert web_bounds(frame).tolist() == want.tolist()
        assert web_bounds(frame, candidates=5).tolist() == want.tolist()
    web = layers["ward"].to_crs(4326)
    assert web_bounds(web).tolist() == web.total_bounds.tolist()
    # a frame with few vertices is projected whole
    box = gpd.GeoSeries([shapely.box(530000, 180000, 540000, 185000)], crs=27700)
    assert web_bounds(box).tolist() == box.to_crs(4326).total_bounds.tolist()
