import csv
from pathlib import Path

import numpy as np
import openpyxl
import pandas as pd
import pytest

from hotspots import export
from hotspots.export import neutralise, partner_table, write_csv, write_xlsx

DANGEROUS = ['=HYPERLINK("http://x","click")', "+cmd|' /C calc'!A0", "-1+2", "-2+3",
             "@SUM(A1)", "\tcmd", "\r=1", " =1+1", "\uff1dSUM(A1)", "\uff0d1", "-0x10",
             "-1,5", "- 1", "-inf"]
# text that is a plain number reads back as that number: never guarded
NUMBER_TEXT = ["-0.0739", "+44", "-1", "1e-3", "-.5", "-2E+3", "51.52"]
HARMLESS = ["<script>alert(1)</script>", "Brick Lane", "", "#N/A", "it's =fine", *NUMBER_TEXT]


def hostile() -> pd.DataFrame:
    texts = DANGEROUS + HARMLESS
    k = len(texts)
    return pd.DataFrame({
        "location": texts,
        "n": np.arange(k) - 3,  # real negative numbers included
        "ratio": np.linspace(-2.5, 2.5, k),
        "=cmd|' /C calc'!A0": ["x"] * k,
    })


def test_neutralise():
    for text in DANGEROUS:
        assert neutralise(text) == "'" + text
    for text in HARMLESS:
        assert neutralise(text) == text
    for number in (-1, -2.5, np.int64(-3), np.float64(-0.5), 0, True, None):
        assert neutralise(number) is number
    assert type(neutralise(np.str_("=1"))) is str


def test_csv_round_trip_is_text_and_keeps_numbers(tmp_path):
    df = hostile()
    before = df.copy()
    path = write_csv(df, tmp_path / "t.csv")
    pd.testing.assert_frame_equal(df, before)
    with path.open(encoding="utf-8-sig", newline="") as fh:
        rows = list(csv.reader(fh))
    header, body = rows[0], rows[1:]
    assert header == ["location", "n", "ratio", "'=cmd|' /C calc'!A0"]
    assert [r[0] for r in body] == ["'" + t for t in DANGEROUS] + HARMLESS
    assert [r[1] for r in body] == [str(i - 3) for i in range(len(body))]  # "-3", no "'"
    assert body[0][2] == "-2.5"
    for row in rows:
        for cell in row:
            assert is_number(cell) or not cell.startswith(export.DANGEROUS_STARTS), cell


def is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def test_xlsx_round_trip_has_strings_numbers_and_no_formulas(tmp_path):
    df = hostile()
    path = write_xlsx({"Places": df, "Second": df.head(2)}, tmp_path / "t.xlsx")
    wb = openpyxl.load_workbook(path)
    assert wb.sheetnames == ["Places", "Second"]
    ws = wb["Places"]
    assert ws.freeze_panes == "A2"
    assert [c.value for c in ws[1]] == ["Location", "Incidents", "Ratio", "'=cmd|' /C calc'!A0"]
    texts = [ws.cell(row=r, column=1) for r in range(2, ws.max_row + 1)]
    assert all(c.data_type == "s" for c in texts if c.value is not None)
    assert texts[len(DANGEROUS) + 2].value is None  # empty text: an empty cell
    # XML reads a carriage return back as a newline
    assert [c.value for c in texts[:len(DANGEROUS)]] == [
        "'" + t.replace("\r", "\n") for t in DANGEROUS]
    assert texts[len(DANGEROUS)].value == "<script>alert(1)</script>"
    assert texts[len(DANGEROUS) + 3].value == "#N/A"  # text, not an error cell
    numbers = [ws.cell(row=r, column=2) for r in range(2, ws.max_row + 1)]
    assert [c.value for c in numbers[:4]] == [-3, -2, -1, 0]
    assert all(c.data_type == "n" for c in numbers)
    assert ws.cell(row=2, column=3).value == -2.5
    for sheet in wb.worksheets:
        for row in sheet.iter_rows():
            assert all(c.data_type != "f" for c in row)
    assert ws.column_dimensions["A"].width >= 8


def test_xlsx_stores_text_as_text_even_without_neutralise(tmp_path, monkeypatch):
    # a writer guessing types (openpyxl, XlsxWriter's write) stores "=..." as a formula: text
    # is written as text
    monkeypatch.setattr(export.safe, "neutralise", lambda value: value)
    texts = ["=1+1", "#N/A", "{=SUM(A1:A2)}", "https://example.org", "1e3", "TRUE"]
    path = write_xlsx({"S": pd.DataFrame({"a": texts})}, tmp_path / "raw.xlsx")
    ws = openpyxl.load_workbook(path)["S"]
    assert [(c.value, c.data_type) for c in ws["A"][1:]] == [(t, "s") for t in texts]


def test_xlsx_odd_values(tmp_path):
    df = pd.DataFrame({"t": ["bell\x07here", "x" * 40000, None],
                       "f": [np.nan, np.inf, 1.5], "d": pd.to_datetime(["2024-08-01"] * 3),
                       "b": [True, False, True]})
    ws = openpyxl.load_workbook(write_xlsx({"S": df}, tmp_path / "o.xlsx"))["S"]
    assert ws["A2"].value == "bell\ufffdhere" and len(ws["A3"].value) == 32767
    assert ws["A4"].value is None and ws["B2"].value is None and ws["B4"].value == 1.5
    assert ws["C2"].value == "2024-08-01T00:00:00" and ws["D2"].value is True


def test_write_xlsx_checks_sheet_names(tmp_path):
    with pytest.raises(ValueError, match=r"sheet name 'a/b' is not allowed; Excel needs 1-31"):
        write_xlsx({"a/b": pd.DataFrame()}, tmp_path / "x.xlsx")
    with pytest.raises(ValueError, match=r"sheet name 'x' is used twice"):
        write_xlsx({"X": pd.DataFrame(), "x": pd.DataFrame()}, tmp_path / "x.xlsx")
    with pytest.raises(ValueError, match=r"sheets must be a non-empty dict"):
        write_xlsx({}, tmp_path / "x.xlsx")
    with pytest.raises(FileNotFoundError):  # as for the other formats, not the writer's own
        write_xlsx({"S": pd.DataFrame({"a": [1]})}, tmp_path / "no such folder" / "x.xlsx")


def places() -> pd.DataFrame:
    """A ranked table as rank_units gives it, with record text and every kind of column
    a partner must not see."""
    return pd.DataFrame({
        "rank": [1, 2, 3, 4, 5],
        "place_id": ["p1", "p2", "p3", "p4", "p0"],
        "label": ["=HYPERLINK(\"http://x\")", "Brick Lane", "Mile End Rd", "Roman Rd", "A"],
        "ward": ["Whitechapel", "=cmd", "Bow East", "Bow West", "Poplar"],
        "score": [0.9, 0.8, 0.7, 0.6, 0.5],
        "component_trend": [0.722, 1.0, 0.5, 0.2, 0.1],
        "points_volume": [0.3, 0.2, 0.1, 0.1, 0.0],
        "n": [4, 5, 40, 12, 1],
        "n_previous": [6, 2, 0, 12, 9],
        "n_drugs": [1, 5, 0, 7, 0],
        "harm": [9.0, 5.0, 0.0, 30.0, 8.0],
        "density_per_km2": [40.0, 50.0, 400.0, 120.0, 10.0],
        "area_km2": [0.1, 0.1, 0.1, 0.1, 0.1],
        "repeat_location_share": [0.5, 0.0, 0.1, 0.25, 0.0],
        "change_previous": [-2, 3, 40, 0, -8],
        "trend_label": ["falling", "rising", "rising", "no clear change", "falling"],
        "caller_key": ["c1", "c2", "", "c4", ""],
        "main_categories": ["Drug dealing 100%"] * 5,
        "busiest_hour": [21] * 5,
        "Free_Text_Notes": ["x"] * 5,
    })


def test_partner_table_keeps_nothing_a_small_count_can_be_worked_out_from():
    table = places()
    before = table.copy()
    out = partner_table(table)
    pd.testing.assert_frame_equal(table, before)
    # the whitelist: record text, components, points, score, harm, shares, previous
    # counts, changes, trends, category counts and busiest times are all gone
    assert list(out.columns) == ["rank", "place_id", "ward", "n", "density_per_km2",
                                 "area_km2"]
    c = export.DERIVED_SUPPRESSED
    # ranked rows renumbered in rank order; suppressed rows last, by id, without a rank
    assert out["place_id"].tolist() == ["p2", "p3", "p4", "p0", "p1"]
    assert out["rank"].tolist() == [1, 2, 3, c, c]
    assert out["n"].tolist() == [5, 40, 12, "<5", "<5"]
    assert out["density_per_km2"].tolist() == [50.0, 400.0, 120.0, c, c]
    assert out["ward"].tolist()[0] == "=cmd"  # kept; neutralised on export


def test_partner_table_threshold_counts_and_what_derives_from_them():
    out = partner_table(places(), min_count=3)
    assert out["n"].tolist() == [4, 5, 40, 12, "<3"]
    assert out["rank"].tolist() == [1, 2, 3, 4, "[c]"]
    tasked = pd.DataFrame({"meeting_date": ["2024-08-01"] * 3, "place_id": ["a", "b", "c"],
                           "label": ["1 High St"] * 3, "actions": ["=x"] * 3,
                           "n_before": [2, 9, 0], "n_after": [7, 8, 6],
                           "p_value": [0.1, 0.8, 0.03], "rank_now": ["1", "2", "3"],
                           "verdict": ["more incidents", "fewer incidents", "more incidents"]})
    out = partner_table(tasked)
    assert list(out.columns) == ["meeting_date", "place_id", "n_before", "n_after", "verdict"]
    assert out["place_id"].tolist() == ["a", "b", "c"]  # no n: the order is the caller's
    assert out["n_before"].tolist() == ["<5", 9, 0]
    assert out["verdict"].tolist() == ["[c]", "fewer incidents", "more incidents"]


def test_partner_table_errors():
    with pytest.raises(ValueError, match=r"min_count must be a whole number of 1 or more; got 0"):
        partner_table(places(), min_count=0)
    with pytest.raises(ValueError, match=r"'ref' column, so it holds incident records"):
        partner_table(places().assign(ref="r1"))


def test_partner_table_written_safely(tmp_path):
    out = partner_table(places())
    ws = openpyxl.load_workbook(write_xlsx({"Partners": out}, tmp_path / "p.xlsx"))["Partners"]
    header = [c.value for c in ws[1]]
    assert header == ["Rank", "Place", "Ward", "Incidents", "Incidents per km²", "Area (km²)"]
    n = header.index("Incidents") + 1
    assert [ws.cell(row=r, column=n).value for r in range(2, 7)] == [5, 40, 12, "<5", "<5"]
    assert ws.cell(row=2, column=n).data_type == "n"
    assert ws["C2"].value == "'=cmd" and ws["C2"].data_type == "s"


def test_rejected_rows_file_round_trips_through_ingest(tmp_path, cache, capsys):
    """A user corrects the rejected-rows CSV and loads it again: the negative longitude
    is still a number (no apostrophe), so the row loads; only real formula text is
    guarded."""
    import json

    from hotspots.cli import main

    export_file = tmp_path / "asb.csv"
    with export_file.open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["Ref", "When", "Type", "Lat", "Lon", "Where"])
        w.writerow(["R1", "2024-08-03 21:15", "Rowdy", "51.5205", "-0.0716", "Brick Lane"])
        w.writerow(["R2", "2024-08-04 22:00", "Rowdy behavour", "51.5206", "-0.0739",
                    "=HYPERLINK(\"http://x\")"])
    mapping = tmp_path / "asb.toml"
    mapping.write_text('source = "asb"\n[columns]\nreference = "Ref"\ndatetime = "When"\n'
                       'category = "Type"\nlatitude = "Lat"\nlongitude = "Lon"\n'
                       'location = "Where"\n[categories]\n"Rowdy" = "asb_nuisance"\n')
    store = tmp_path / "s.sqlite"

    def ingest(path):
        capsys.readouterr()
        main(["--geodata", str(cache), "ingest", str(path), "--mapping", str(mapping),
              "--store", str(store), "--json"])
        return json.loads(capsys.readouterr().out)["files"][0]

    first = ingest(export_file)
    assert (first["accepted"], first["rejected"]) == (1, 1)
    kept = Path(first["rejected_file"])
    with kept.open(encoding="utf-8-sig", newline="") as fh:
        rows = list(csv.reader(fh))
    header, bad = rows[0], rows[1]
    assert bad[header.index("Lon")] == "-0.0739" and bad[header.index("Lat")] == "51.5206"
    assert bad[header.index("Where")] == "'=HYPERLINK(\"http://x\")"  # guarded text
    bad[header.index("Type")] = "Rowdy"  # the correction
    fixed = tmp_path / "asb-fixed.csv"
    with fixed.open("w", encoding="utf-8-sig", newline="") as fh:
        csv.writer(fh).writerows([header, bad])
    again = ingest(fixed)
    assert (again["read"], again["accepted"], again["rejected"]) == (1, 1, 0), again
    assert "unparseable_coordinates" not in again["reasons"]


# --- one module for every table file: write_table ------------------------------------------

def c_shape(x0: float, y0: float):
    """A C-shaped place 300 m across, open to the east: its centroid is in the gap."""
    from shapely.geometry import Polygon
    return Polygon([(x0, y0), (x0 + 300, y0), (x0 + 300, y0 + 50), (x0 + 50, y0 + 50),
                    (x0 + 50, y0 + 250), (x0 + 300, y0 + 250), (x0 + 300, y0 + 300),
                    (x0, y0 + 300)])


@pytest.fixture
def ranked(layers):
    """places() with shapes in EPSG:27700: four LSOAs of the borough and one C-shaped place
    whose centroid lies outside it."""
    import geopandas as gpd

    lsoa = layers["lsoa"].iloc[[3, 40, 80, 120]]
    shapes = [c_shape(535000, 181000), *lsoa.geometry]
    return gpd.GeoDataFrame(places(), geometry=shapes, crs=27700)


def test_xlsx_is_for_people(ranked, tmp_path):
    tasked = pd.DataFrame({"meeting_date": ["2024-08-01"], "place_id": ["p1"],
                           "actions": ["@SUM(A1)"], "n_before": [2], "n_after": [7],
                           "p_value": [0.0312], "geometry_wkt": ["POINT (1 2)"],
                           "verdict_brief": ["more"]})
    before = ranked.copy()
    path = export.write_table({"Ranked places": ranked, "Tasked": tasked},
                              tmp_path / "r.xlsx", labels={"drugs": "Drug dealing"})
    pd.testing.assert_frame_equal(ranked, before)
    wb = openpyxl.load_workbook(path)
    ws = wb["Ranked places"]
    head = [c.value for c in ws[1]]
    col = {h: i + 1 for i, h in enumerate(head)}
    # readable headings; internal columns (scaled components, the geometry) left out;
    # the score's points named; n_<category> labelled; a point of each shape appended
    assert head[:4] == ["Rank", "Place", "Where", "Ward"]
    assert {"Incidents per km²", "Incidents: Drug dealing", "Score from volume",
            "Share at repeat locations", "Latitude", "Longitude"} <= set(head)
    assert not [h for h in head if "_" in h or h.lower().startswith(("component", "geometry"))]
    assert len(head) == len(ranked.columns) - 1 - 1 + 2  # - component_trend - geometry + lat/lon
    assert ws.freeze_panes == "A2"
    assert ws.auto_filter.ref == f"A1:{openpyxl.utils.get_column_letter(len(head))}6"
    assert all(c.font.bold and c.alignment.wrap_text for c in ws[1])
    widths = [ws.column_dimensions[openpyxl.utils.get_column_letter(i)].width
              for i in range(1, len(head) + 1)]
    assert all(8 <= w <= 60 for w in widths)
    assert widths[col["Where"] - 1] >= len("Mile End Rd") + 2

    def cell(heading, row=2):
        return ws.cell(row=row, column=col[heading])

    # numbers stay numbers, with formats: counts, one-decimal rates, percentages, degrees
    for heading, value, fmt in [("Incidents", 4, "#,##0"), ("Incidents per km²", 40.0, "#,##0.0"),
                                ("Share at repeat locations", 0.5, "0%"),
                                ("Score", 0.9, "0.00"), ("Area (km²)", 0.1, "0.000")]:
        assert (cell(heading).value, cell(heading).data_type) == (value, "n"), heading
        assert cell(heading).number_format == fmt, heading
    assert cell("Latitude").number_format == "0.000000"
    assert 51.48 < cell("Latitude").value < 51.55 and -0.09 < cell("Longitude").value < 0.01
    assert cell("Change on previous period").value == -2  # a negative number, not text
    assert cell("Where").value == "'=HYPERLINK(\"http://x\")" and cell("Where").data_type == "s"
    assert cell("Ward", 3).value == "'=cmd"
    t = wb["Tasked"]
    assert [c.value for c in t[1]] == ["Meeting", "Place", "Actions", "Incidents before",
                                       "Incidents since", "p (exact)"]
    assert t["C2"].value == "'@SUM(A1)" and t["F2"].number_format == "0.000"
    for sheet in wb.worksheets:
        for row in sheet.iter_rows():
            assert all(c.data_type != "f" for c in row)


def test_csv_has_the_latitude_and_longitude_of_a_point_in_each_shape(ranked, tmp_path):
    from pyproj import Transformer
    from shapely import Point

    path = export.write_table(ranked, tmp_path / "r.csv")
    got = pd.read_csv(path, encoding="utf-8-sig")
    assert list(got.columns) == [*places().columns, "latitude", "longitude"]
    assert got["label"][0] == "'=HYPERLINK(\"http://x\")"
    x, y = Transformer.from_crs(4326, 27700, always_xy=True).transform(
        got["longitude"].to_numpy(), got["latitude"].to_numpy())
    for shape, px, py in zip(ranked.geometry, x, y, strict=True):
        assert shape.buffer(0.5).contains(Point(px, py))  # 6 decimals: about 0.1 m
    assert not ranked.geometry[0].contains(ranked.geometry[0].centroid)  # not the centroid
    assert got["latitude"].between(51.48, 51.55).all()
    assert got["longitude"].between(-0.09, 0.01).all()


def test_geojson_is_wgs84_and_gpkg_british_national_grid(ranked, tmp_path):
    import geopandas as gpd

    web = gpd.read_file(export.write_table(ranked, tmp_path / "r.geojson"))
    assert web.crs.to_epsg() == 4326
    assert '"crs"' not in (tmp_path / "r.geojson").read_text()  # RFC 7946: WGS84 only
    back = web.to_crs(27700)
    for a, b in zip(back.geometry, ranked.geometry, strict=True):
        assert a.hausdorff_distance(b) < 0.05
    gpkg = export.write_table({"ranked": ranked, "top": ranked.head(2)}, tmp_path / "r.gpkg")
    grid = gpd.read_file(gpkg, layer="ranked")
    assert grid.crs.to_epsg() == 27700 and len(gpd.read_file(gpkg, layer="top")) == 2
    assert grid.geometry.geom_equals_exact(ranked.geometry, tolerance=1e-6).all()
    for got in (web, grid):
        # the fields keep their names (GIS field names), numbers stay numbers
        assert list(got.columns) == [*places().columns, "geometry"]
        assert got["n"].tolist() == [4, 5, 40, 12, 1] and got["n"].dtype.kind == "i"
        assert got["change_previous"].tolist() == [-2, 3, 40, 0, -8]
        assert got["density_per_km2"].dtype.kind == "f"
        assert got["label"][0] == "'=HYPERLINK(\"http://x\")" and got["ward"][1] == "'=cmd"
        assert got["label"][1] == "Brick Lane"


def test_write_table_bytes_and_mistakes(ranked, tmp_path):
    for fmt in export.FORMATS:
        data = export.table_bytes(ranked, fmt, name="places")
        (tmp_path / f"b.{fmt}").write_bytes(data)
        assert len(data) > 100 and fmt in export.MIME
    assert export.table_bytes(ranked, "csv") == export.write_table(
        ranked, tmp_path / "f.csv").read_bytes()
    ws = openpyxl.load_workbook(tmp_path / "b.xlsx")["places"]
    assert ws["A1"].value == "Rank" and ws.max_row == 6
    import geopandas as gpd
    assert len(gpd.read_file(tmp_path / "b.gpkg", layer="places")) == 5
    assert gpd.read_file(tmp_path / "b.geojson").crs.to_epsg() == 4326

    with pytest.raises(ValueError, match=r"cannot tell the format from the file name 'r.txt'"):
        export.write_table(ranked, tmp_path / "r.txt")
    with pytest.raises(ValueError, match=r"fmt = 'shp' is not a table format"):
        export.table_bytes(ranked, "shp")
    with pytest.raises(ValueError, match=r"a csv file holds one table; got 2"):
        export.write_table({"a": ranked, "b": ranked}, tmp_path / "r.csv")
    with pytest.raises(ValueError, match=r"fmt is needed when writing to a buffer"):
        export.write_table(ranked, __import__("io").BytesIO())
    with pytest.raises(ValueError, match=r"are in EPSG:4326; tables are written from "
                                         r"EPSG:27700 .* convert with .to_crs\(27700\)"):
        export.write_table(ranked.to_crs(4326), tmp_path / "r.csv")
    partner = partner_table(ranked)  # the minimisation rule leaves the shapes out
    assert "geometry" not in partner.columns and "latitude" not in partner.columns
    with pytest.raises(ValueError, match=r"has no shapes, so it cannot be written as GeoJSON"):
        export.write_table(partner, tmp_path / "p.geojson")
    text = export.table_bytes(partner, "csv").decode("utf-8-sig")
    assert text.splitlines()[0] == "rank,place_id,ward,n,density_per_km2,area_km2"


def test_missing_shapes_give_empty_coordinates_and_null_geometry(tmp_path):
    import json

    import geopandas as gpd
    from shapely import Point, box

    table = gpd.GeoDataFrame({"code": ["a", "b", "c"], "n": [1, 2, 3]},
                             geometry=[box(533000, 181000, 533100, 181100), None, Point()],
                             crs=27700)
    got = pd.read_csv(export.write_table(table, tmp_path / "t.csv"), encoding="utf-8-sig")
    assert got["latitude"].notna().tolist() == [True, False, False]
    features = json.loads(export.table_bytes(table, "geojson"))["features"]
    assert [f["properties"]["n"] for f in features] == [1, 2, 3]
    assert features[0]["geometry"]["type"] == "Polygon" and features[1]["geometry"] is None


def test_xlsx_refuses_a_table_longer_than_a_sheet(tmp_path, monkeypatch):
    # XlsxWriter leaves out, in silence, the cells below Excel's last row (1,048,576): a
    # longer table is refused, naming the sheet and the format that holds it
    from hotspots.export import sheets

    assert sheets._XLSX_MAX_ROWS == 1_048_576
    monkeypatch.setattr(sheets, "_XLSX_MAX_ROWS", 3)
    write_xlsx({"S": pd.DataFrame({"a": [1, 2]})}, tmp_path / "ok.xlsx")  # header + 2 rows
    with pytest.raises(ValueError, match=r"sheets\['S'\] has 3 rows; a sheet holds 2 "
                                         r"below its header: write it as csv"):
        write_xlsx({"S": pd.DataFrame({"a": [1, 2, 3]})}, tmp_path / "long.xlsx")
    assert not (tmp_path / "long.xlsx").exists()
