"""The filtered view's helpers and the partner rule for the share at repeat locations."""

from __future__ import annotations

import pandas as pd
import shapely

from hotspots import report, selection
from hotspots.export import DERIVED_SUPPRESSED, partner_table


def test_share_at_repeat_locations_reaches_partners_only_when_nothing_gives_a_count_away():
    table = pd.DataFrame({
        "rank": [1, 2, 3, 4], "place_id": ["A", "B", "C", "D"], "n": [20, 30, 12, 4],
        "n_at_repeat_locations": [9, 27, 3, 2],
        "repeat_location_share": [0.45, 0.9, 0.25, 0.5]})
    out = partner_table(table, min_count=5).set_index("place_id")
    assert out.loc["A", "repeat_location_share"] == 0.45  # all counts shown: as in full
    assert out.loc["A", "n_at_repeat_locations"] == 9
    # 27 of 30: the other 3 would be worked out
    assert out.loc["B", "n_at_repeat_locations"] == DERIVED_SUPPRESSED
    assert out.loc["B", "repeat_location_share"] == DERIVED_SUPPRESSED
    assert out.loc["C", "n_at_repeat_locations"] == "<5"  # a small count itself
    assert out.loc["C", "repeat_location_share"] == DERIVED_SUPPRESSED
    assert out.loc["D", "repeat_location_share"] == DERIVED_SUPPRESSED  # n itself small
    assert out.loc["D", "n_at_repeat_locations"] == "<5"
    zero = partner_table(table.assign(n_at_repeat_locations=0, repeat_location_share=0.0))
    # 0 of a suppressed n: the part goes with the whole
    assert zero.set_index("place_id").loc["D", "n_at_repeat_locations"] == DERIVED_SUPPRESSED
    assert zero.set_index("place_id").loc["A", "repeat_location_share"] == 0


def test_percent_cells_scales_each_number_beside_a_suppressed_cell():
    frame = pd.DataFrame({"s": [0.45, DERIVED_SUPPRESSED, 0.18], "t": ["x", "y", "z"]})
    out = report.percent_cells(frame, ["s", "missing"])
    assert out["s"].tolist() == [45.0, DERIVED_SUPPRESSED, 18.0]
    assert frame["s"].iloc[0] == 0.45  # not modified
    shown = selection.readable(out, {"s": ("%", 0), "t": ("T", None)})
    assert shown["%"].tolist() == ["45", DERIVED_SUPPRESSED, "18"]
    # as read back from a partner CSV: the numbers beside "[c]" are text
    read = pd.DataFrame({"s": ["0.45", DERIVED_SUPPRESSED, "0.0"]})
    shown = selection.readable(report.percent_cells(read, ["s"]), {"s": ("%", 0)})
    assert shown["%"].tolist() == ["45", DERIVED_SUPPRESSED, "0"]


def test_readable_rounds_numbers_and_keeps_them_numeric():
    shown = selection.readable(pd.DataFrame({"d": [2574.5509, 12.4], "x": [1, 2]}),
                               {"d": ("Per km²", 0)})
    assert list(shown.columns) == ["Per km²"]
    assert shown["Per km²"].tolist() == [2575, 12]
    assert pd.api.types.is_numeric_dtype(shown["Per km²"])


def test_monthly_series_fills_empty_months_and_category_mix_labels():
    inc = pd.DataFrame({"period": ["2024-08", "2024-08", "2024-06", "2023-01"],
                        "category": ["a", "b", "a", "a"]})
    s = selection.monthly_series(inc, "2024-08", months=3)
    assert s["month"].tolist() == ["2024-06", "2024-07", "2024-08"]
    assert s["n"].tolist() == [1, 0, 2]
    mix = selection.category_mix(inc, str.upper)
    assert mix.iloc[0].tolist() == ["A", 3]


def test_decisions_go_to_the_area_their_place_lies_in():
    import geopandas as gpd

    layer = gpd.GeoDataFrame({"code": ["W1", "W2"]},
                             geometry=[shapely.box(0, 0, 100, 100), shapely.box(100, 0, 200, 100)],
                             crs=27700)
    decisions = pd.DataFrame({"place_id": ["a", "b", "c"], "geometry_wkt": [
        shapely.box(10, 10, 20, 20).wkt, shapely.box(150, 10, 160, 20).wkt, None]})
    areas = selection.decision_areas(decisions, layer)
    assert areas.tolist() == ["W1", "W2", ""]
    assert selection.in_areas(decisions, ["W2"], areas)["place_id"].tolist() == ["b"]
    assert len(selection.in_areas(decisions, [], areas)) == 3


def test_a_share_whose_count_is_missing_never_reaches_partners():
    # 10% of 40 is 4 incidents at repeat locations: without that count in the table the
    # rule cannot check it, so the share goes
    table = pd.DataFrame({"rank": [1], "place_id": ["A"], "n": [40],
                          "repeat_location_share": [0.1]})
    assert "repeat_location_share" not in partner_table(table).columns


def test_choose_areas_refuses_a_name_two_areas_share():
    """Ward names repeat across London (two boroughs have an "Abbey"): a name that two
    areas share is refused with their codes, never one of them picked in silence."""
    import pytest

    from hotspots.errors import HotspotsError

    layer = pd.DataFrame({"code": ["E05000026", "E05013807", "E05000001"],
                          "name": ["Abbey", "Abbey", "Bow East"]})
    assert selection.choose_areas(layer, ["e05013807", "bow east"], kind="ward") == (
        ["E05013807", "E05000001"], "Abbey, Bow East")
    with pytest.raises(HotspotsError, match=r"'abbey' names 2 wards \(E05000026, E05013807\)"):
        selection.choose_areas(layer, ["abbey"], kind="ward")
