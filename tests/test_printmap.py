"""The pack's printed map: crowded numbered markers go to insets instead of overlapping,
and every name is escaped."""

import re

import geopandas as gpd
import numpy as np
import shapely

from hotspots.printmap import CROWDED_PX, MARKER_PX, print_map

EVIL = "<b onmouseover=x>Ward</b>"


def _markers(svg: str) -> list[tuple[str, float, float]]:
    return [(label, float(x), float(y)) for label, x, y in re.findall(
        r"<g class='hs-marker' data-label='([^']*)'><(?:circle cx|rect x)='([-\d.]+)' "
        r"(?:cy|y)='([-\d.]+)'", svg)]


def _min_gap(points) -> float:
    xy = np.array([(x, y) for _, x, y in points])
    d = np.hypot(*(xy[:, None, :] - xy[None, :, :]).transpose(2, 0, 1))
    return float(d[np.triu_indices(len(xy), 1)].min())


def test_crowded_places_get_an_inset_and_no_marker_overlaps():
    crs = "EPSG:27700"
    area = gpd.GeoDataFrame(geometry=[shapely.box(530000, 180000, 538000, 188000)], crs=crs)
    wards = gpd.GeoDataFrame({"name": [EVIL, "East"]}, geometry=[
        shapely.box(530000, 180000, 534000, 188000),
        shapely.box(534000, 180000, 538000, 188000)], crs=crs)
    # ranks 1-4 within 60 m of each other (one pixel apart at the main scale); 5 and 6 far
    centres = [(532000, 184000), (532040, 184010), (532020, 184050), (532060, 184060),
               (536000, 182000), (531000, 187000)]
    places = gpd.GeoDataFrame({"rank": range(1, 7)},
                              geometry=[shapely.Point(c).buffer(15) for c in centres], crs=crs)
    pm = print_map(area=area, wards=wards, places=places)
    main = _markers(pm.svg)
    labels = sorted(label for label, _, _ in main)
    assert labels == ["5", "6", "A"]  # the crowded four are framed as inset A
    assert _min_gap(main) >= CROWDED_PX
    assert [letter for letter, _ in pm.insets] == ["A"]
    inset = _markers(pm.insets[0][1])
    assert sorted(label for label, _, _ in inset) == ["1", "2", "3", "4"]
    assert _min_gap(inset) >= MARKER_PX  # pushed apart, tied to their place by a line
    assert "inset" in pm.legend
    assert "ward boundary" in pm.legend
    assert EVIL not in pm.svg and "&lt;b onmouseover=x&gt;Ward&lt;/b&gt;" in pm.svg


def test_places_far_apart_need_no_inset():
    crs = "EPSG:27700"
    area = gpd.GeoDataFrame(geometry=[shapely.box(0, 0, 8000, 8000)], crs=crs)
    places = gpd.GeoDataFrame({"rank": [1, 2]}, geometry=[
        shapely.Point(1000, 1000).buffer(20), shapely.Point(7000, 7000).buffer(20)], crs=crs)
    pm = print_map(area=area, places=places)
    assert pm.insets == () and sorted(m[0] for m in _markers(pm.svg)) == ["1", "2"]
    assert "inset" not in pm.legend
    # no wards given: the legend names none; ranked LSOAs are not called clusters
    assert "ward boundary" not in pm.legend and "cluster of incidents" in pm.legend
    pm = print_map(area=area, places=places, place_label="ranked <LSOA>")
    assert "cluster" not in pm.legend and "ranked &lt;LSOA&gt;" in pm.legend
