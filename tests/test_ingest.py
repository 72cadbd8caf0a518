import datetime as dt
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from pyproj import Transformer

from hotspots.config import load_config
from hotspots.errors import ConfigError, InputError
from hotspots.ingest import Mapping, read_export, read_mapping, to_incidents
from hotspots.schema import POLICE_UK_HEADER

from .conftest import SHARED

TODAY = dt.date(2024, 9, 15)
LAT, LON = 51.5205, -0.0716  # Brick Lane
E, N = Transformer.from_crs(4326, 27700, always_xy=True).transform(LON, LAT)
LATLON = Mapping(source="test-asb", columns={
    "reference": "Ref", "datetime": "When", "category": "Type", "latitude": "Lat",
    "longitude": "Lon", "location": "Where", "caller": "Caller", "description": "Text",
    "count": "Qty"}, categories={"Rowdy": "asb_nuisance"})
GRID = Mapping(source="test-nox", columns={
    "reference": "Ref", "date": "Day", "time": "At", "category": "Type", "easting": "E",
    "northing": "N"}, date_format="%d/%m/%Y")


def row(**kw):
    base = {"Ref": "R1", "When": "2024-08-03 21:15", "Type": "Rowdy", "Lat": f"{LAT}",
            "Lon": f"{LON}", "Where": "12 Example House, Brick Lane", "Caller": "C1",
            "Text": "noise", "Qty": ""}
    base.update(kw)
    return base


def run(rows, mapping=LATLON, **kw):
    from hotspots import geography
    from hotspots.config import load_config
    config = load_config()
    layers = run.layers
    return to_incidents(pd.DataFrame(rows, dtype=str), file="export.csv", config=config,
                        layers=layers, area=geography.study_area(layers, config),
                        mapping=mapping, today=TODAY, **kw)


@pytest.fixture(autouse=True)
def _layers(layers):
    run.layers = layers


def only_message(res):
    assert len(res.incidents) == 0 and len(res.rejected) == 1
    return " | ".join(res.problems["message"])


def test_valid_row_is_accepted_with_ward_lsoa_hour_and_address_key():
    res = run([row()])
    inc = res.incidents.iloc[0]
    assert (inc.category, inc.period, inc.date, inc.hour) == ("asb_nuisance", "2024-08",
                                                               "2024-08-03", 21)
    assert abs(inc.x - E) < 0.01 and abs(inc.y - N) < 0.01
    assert inc.ward_code.startswith("E0500") and inc.lsoa_code.startswith("E0100")
    assert inc.location_key == "addr:12 example house brick lane"
    assert inc.quantity == 1 and res.lsoa_agreement is None


def test_street_name_alone_is_not_an_address_key():
    inc = run([row(Where="Brick Lane")]).incidents.iloc[0]
    assert inc.location_key == f"xy:{round(E / 10) * 10}:{round(N / 10) * 10}"


@pytest.mark.parametrize("kw, expected", [
    ({"Lat": ""}, "export.csv row 2, field 'Lat' = '': no location: the coordinate is empty. "
                  "Fix: fill in latitude/longitude or easting/northing, or remove the row."),
    ({"Lon": "west"}, "export.csv row 2, field 'Lon' = 'west': 'west' is not a number. Fix: "
                      "give decimal degrees"),
    ({"Lat": "0", "Lon": "0.0"}, "field 'Lat/Lon' = '0, 0.0': the location is (0, 0), a "
                                 "placeholder for a missing location. Fix: geocode"),
    ({"Lat": f"{LON}", "Lon": f"{LAT}"}, "latitude and longitude are swapped: exchanged, the "
                                         "point falls in Tower Hamlets. Fix: swap the two"),
    ({"Lat": f"{N:.0f}", "Lon": f"{E:.0f}"}, "is a British National Grid coordinate in metres, "
                                             "not degrees. Fix: map these columns as `easting`"),
    ({"Lat": "51.5074", "Lon": "-0.1278"}, "field 'Lat/Lon' = '51.5074, -0.1278': the point is "
                                           "3.3 km outside Tower Hamlets. Fix: check the "),
    ({"When": "yesterday"}, "field 'When' = 'yesterday': 'yesterday' is not a date. Fix: write "
                            "dates as ISO 8601 (2024-08-31 21:30) or day-first"),
    ({"When": "2024-09-30 10:00"}, "field 'When' = '2024-09-30 10:00': 2024-09-30 10:00 is in "
                                   "the future (today is 2024-09-15). Fix: correct the date"),
    ({"When": ""}, "field 'When' = '': the date is empty."),
    ({"Type": "Loud music"}, "field 'Type' = 'Loud music': 'Loud music' is not a known category."
                             " Fix: add it under [categories] in the mapping file, for example "
                             "\"Loud music\" = \"asb_nuisance\""),
    ({"Ref": ""}, "field 'Ref' = '': the reference is empty."),
    ({"Qty": "2.5"}, "field 'Qty' = '2.5': '2.5' is not a whole number from 0 to 1,000,000."),
    ({"Qty": "1e300"}, "field 'Qty' = '1e300': '1e300' is not a whole number from 0 to"),
    ({"Qty": "inf"}, "field 'Qty' = 'inf': 'inf' is not a whole number from 0 to"),
])
def test_each_rule_names_file_row_field_value_and_fix(kw, expected):
    msg = only_message(run([row(**kw)]))
    assert expected in msg


def test_outside_distance_is_measured(layers):
    # a point just west of the borough edge (Bishopsgate side)
    msg = only_message(run([row(Lat="51.5210", Lon="-0.0800")]))
    metres = int(msg.split("the point is ")[1].split(" m outside")[0])
    x, y = Transformer.from_crs(4326, 27700, always_xy=True).transform(-0.08, 51.521)
    from shapely.geometry import Point
    assert metres == round(layers["ward"].union_all().distance(Point(x, y)))
    assert 20 < metres < 1000


def test_duplicate_reference_names_first_row_and_keeps_first():
    res = run([row(), row(Where="other"), row(Ref="R2")])
    assert res.incidents["ref"].tolist() == ["R1", "R2"]
    assert res.problems["message"].tolist() == [
        "export.csv row 3, field 'Ref' = 'R1': reference 'R1' already appears at row 2. Fix: "
        "remove the duplicate row, or give it its own reference."]


def test_grid_mapping_separate_time_and_swapped_easting_northing():
    base = {"Ref": "N1", "Day": "03/08/2024", "At": "23:40", "Type": "nox_sighting",
            "E": f"{E:.0f}", "N": f"{N:.0f}"}
    res = run([base, {**base, "Ref": "N2", "At": ""},
               {**base, "Ref": "N3", "E": f"{N:.0f}", "N": f"{E:.0f}"},
               {**base, "Ref": "N4", "E": "-0.0716", "N": "51.52"},
               {**base, "Ref": "N5", "At": "25:99"}], mapping=GRID)
    assert res.incidents["hour"].tolist() == [23, -1]
    assert res.incidents["date"].tolist() == ["2024-08-03"] * 2
    msgs = res.problems.set_index("row")["message"]
    assert "easting and northing are swapped" in msgs[4]
    assert "looks like degrees, not a British National Grid coordinate" in msgs[5]
    assert "field 'At' = '25:99': '25:99' is not a date (times are HH:MM)" in msgs[6]


def test_conservation_and_rejected_rows_keep_raw_fields_and_reasons():
    rows = [row(Ref=f"R{i}") for i in range(10)]
    rows[3]["Lat"] = ""
    rows[7]["Type"] = "Loud music"
    rows[7]["When"] = "never"
    res = run(rows)
    assert res.n_read == len(res.incidents) + len(res.rejected) == 10
    assert res.rejected["row"].tolist() == [5, 9]
    assert res.rejected.loc[1, "Type"] == "Loud music"
    assert "is not a date" in res.rejected.loc[1, "reasons"]
    assert "not a known category" in res.rejected.loc[1, "reasons"]
    assert res.reasons == {"missing_coordinates": 1, "unknown_category": 1,
                           "unparseable_date": 1}


def test_council_export_needs_mapping():
    with pytest.raises(InputError, match=r"export.csv: not a police.uk street-level file \(its "
                                         r"header starts \['Ref', 'When', 'Type', 'Lat'\]\) and "
                                         r"no mapping was given"):
        run([row()], mapping=None)


def test_mapping_file_errors(tmp_path, config):
    p = tmp_path / "m.toml"
    p.write_text('source = "x"\n[columns]\nreference = "a"\ncategory = "b"\ndate = "c"\n'
                 'latitude = "d"\neasting = "e"\n')
    with pytest.raises(ConfigError, match=r"needs either latitude and longitude or easting and "
                                          r"northing; it has \['easting', 'latitude'\]"):
        read_mapping(p, config)
    p.write_text('source = "x"\n[columns]\nreference = "a"\ncategory = "b"\ndate = "c"\n'
                 'latitude = "d"\nlongitude = "e"\nwhen = "f"\n')
    with pytest.raises(ConfigError, match=r"unknown field\(s\) \['when'\]"):
        read_mapping(p, config)
    p.write_text('source = "x"\n[columns]\nreference = "a"\ncategory = "b"\ndate = "c"\n'
                 'latitude = "d"\nlongitude = "e"\n[categories]\n"Loud" = "noise"\n')
    with pytest.raises(ConfigError, match=r"\"Loud\" = 'noise' is not a taxonomy key"):
        read_mapping(p, config)


def test_mapping_column_missing_from_export():
    """A required column missing refuses the file (an optional one only warns: below)."""
    with pytest.raises(InputError, match=r"column\(s\) 'Lon' \(longitude\) named in the "
                                         r"mapping are not in the export"):
        run([{k: v for k, v in row().items() if k != "Lon"}])


def test_xlsx_export_reads_dates_times_and_numbers(tmp_path):
    frame = pd.DataFrame({"Ref": ["N1"], "Day": [dt.datetime(2024, 8, 3)],
                          "At": [dt.time(23, 40)], "Type": ["nox_sighting"],
                          "E": [round(E)], "N": [round(N)]})
    path = tmp_path / "nox.xlsx"
    frame.to_excel(path, index=False)
    text = read_export(path)
    assert text.iloc[0].tolist() == ["N1", "2024-08-03", "23:40:00", "nox_sighting",
                                     str(round(E)), str(round(N))]
    res = run(text.to_dict("records"), mapping=Mapping(source="x", columns={
        **GRID.columns}))
    assert res.incidents[["date", "hour"]].values.tolist() == [["2024-08-03", 23]]


def test_unreadable_files(tmp_path):
    with pytest.raises(InputError, match=r"^missing.csv: no such file. Fix: check") as err:
        read_export(tmp_path / "missing.csv")
    assert str(tmp_path) not in str(err.value)  # an upload's temporary folder is not shown
    bad = tmp_path / "notes.pdf"
    bad.write_bytes(b"%PDF")
    with pytest.raises(InputError, match=r"'\.pdf' is not a supported export. Fix: give a CSV "
                                         r"\(comma- or tab-separated text\) or an Excel"):
        read_export(bad)
    broken = tmp_path / "broken.xlsx"
    broken.write_bytes(b"not a zip")
    with pytest.raises(InputError, match=r"broken.xlsx: cannot be read"):
        read_export(broken)


POLICE = sorted((SHARED / "policeuk").glob("*.csv"))
#: Met months of every London borough: most rows lie outside Tower Hamlets
LONDON = [p for p in POLICE if "_london_" in p.name]


@pytest.mark.slow
def test_every_police_uk_month_ingests_with_explained_rejections(layers, config):
    from hotspots import geography
    area = geography.study_area(layers, config)
    explained = {"duplicate_crime_id", "outside_study_area", "missing_coordinates"}
    seen = {}
    for path in POLICE:
        res = to_incidents(read_export(path), file=path.name, config=config, layers=layers,
                           area=area)
        assert res.format == "policeuk"
        assert res.n_read == len(res.incidents) + len(res.rejected)
        assert set(res.reasons) <= explained, (path.name, res.reasons)
        inc = res.incidents
        assert (inc["ward_code"] != "").all() and (inc["lsoa_code"] != "").all()
        if "metropolitan" in path.name:
            assert res.lsoa_agreement > 0.8
            assert ("outside_study_area" in res.reasons) == (path in LONDON)
        seen[path.name] = res
    assert len(seen) == 61 and len(LONDON) == 12
    # the Tower Hamlets burglary files are the Tower Hamlets rows of the London months
    for path in LONDON:
        borough = seen[path.name.replace("_london_", "_tower-hamlets_")].incidents
        london = seen[path.name].incidents
        assert sorted(london["ref"]) == sorted(borough["ref"]), path.name
    # ASB rows have no Crime ID: their derived keys are stable from run to run
    asb = next(p for p in POLICE if "asb-drugs" in p.name)
    again = to_incidents(read_export(asb), file=asb.name, config=config, layers=layers, area=area)
    assert again.incidents["ref"].tolist() == seen[asb.name].incidents["ref"].tolist()
    assert again.incidents["ref"].is_unique
    dup = seen["2023-10-metropolitan-street_tower-hamlets_burglary-only.csv"].problems
    assert dup["message"].str.contains(
        r"police\.uk lists some crimes twice.*Fix: nothing to do: the first row is kept").all()
    city = seen["2024-08-city-of-london-street.csv"]
    assert 0 < len(city.incidents) < 100  # City of London Police rows that fall in the borough
    assert np.isin(["missing_coordinates", "outside_study_area"], list(city.reasons)).all()


def test_police_uk_header_is_recognised_without_mapping(layers, config):
    path = SHARED / "policeuk" / "2024-08-metropolitan-street_tower-hamlets_burglary-only.csv"
    from hotspots import geography
    res = to_incidents(read_export(path), file=Path(path).name, config=config, layers=layers,
                       area=geography.study_area(layers, config))
    inc = res.incidents
    assert (inc["source"] == "policeuk").all() and (inc["hour"] == -1).all()
    assert (inc["period"] == "2024-08").all() and (inc["category"] == "burglary").all()
    assert (inc["source_lsoa"] != "").all()
    assert 0.85 < res.lsoa_agreement < 1


def test_offset_dates_become_london_time_and_date_only_has_no_hour():
    res = run([row(When="2024-08-05T10:00:00+01:00"), row(Ref="R2", When="2024-08-05T09:00Z"),
               row(Ref="R3", When="2024-08-05")])
    assert res.incidents["hour"].tolist() == [10, 10, -1]
    assert res.incidents["date"].tolist() == ["2024-08-05"] * 3


def test_future_date_tolerance_is_by_day():
    res = run([row(When="2024-09-16 09:00"), row(Ref="R2", When="2024-09-16"),
               row(Ref="R3", When="2024-09-17")])
    assert res.incidents["ref"].tolist() == ["R1", "R2"]  # today 2024-09-15, 1 day allowed
    assert res.reasons == {"future_date": 1}


def test_blank_lines_keep_row_numbers_and_conservation(tmp_path):
    path = tmp_path / "blank.csv"
    path.write_text("Ref,When,Type,Lat,Lon,Where,Caller,Text,Qty\n"
                    f"B1,2024-08-05 10:00,Rowdy,{LAT},{LON},,,,\n\n"
                    f"B3,2024-08-05 11:00,Rowdy,{LAT},{LON},,,,\n")
    res = run(read_export(path).to_dict("records"))
    assert res.n_read == 3 == len(res.incidents) + len(res.rejected)
    assert res.incidents["row"].tolist() == [2, 4]  # B3 is on line 4 of the file
    assert res.rejected["row"].tolist() == [3]


def test_xlsx_date_cells_with_a_date_format_mapping(tmp_path):
    frame = pd.DataFrame({"Ref": ["N1", "N2"],
                          "When": [dt.datetime(2024, 8, 3, 21, 15), dt.datetime(2024, 8, 4)],
                          "Type": ["Rowdy", "Rowdy"], "Lat": [LAT, LAT], "Lon": [LON, LON]})
    path = tmp_path / "asb.xlsx"
    frame.to_excel(path, index=False)
    mapping = Mapping(source="x", columns={k: v for k, v in LATLON.columns.items() if v in
                                           frame.columns}, categories=LATLON.categories,
                      date_format="%d/%m/%Y %H:%M")
    res = run(read_export(path).to_dict("records"), mapping=mapping)
    assert res.incidents[["date", "hour"]].values.tolist() == [["2024-08-03", 21],
                                                               ["2024-08-04", -1]]


def test_asb_keys_survive_a_spreadsheet_resave(tmp_path, layers, config):
    """A police.uk file re-saved by a spreadsheet (trailing zeros dropped, spaces trimmed)
    gives the same derived keys for ASB rows, so loading it again adds nothing."""
    from hotspots import geography
    src = SHARED / "policeuk" / "2023-04-metropolitan-street_tower-hamlets_asb-drugs-only.csv"
    frame = read_export(src)
    resaved = frame.astype(object).copy()
    for col in ("Longitude", "Latitude"):
        resaved[col] = [str(float(v)) if v else v for v in resaved[col]]
    resaved["Location"] = resaved["Location"].str.strip() + "  "
    area = geography.study_area(layers, config)
    a = to_incidents(frame, file="a.csv", config=config, layers=layers, area=area)
    b = to_incidents(resaved, file="b.csv", config=config, layers=layers, area=area)
    assert (resaved["Longitude"] != frame["Longitude"].astype(object)).any()
    assert a.incidents["ref"].tolist() == b.incidents["ref"].tolist()


def test_rows_with_the_wrong_number_of_fields_are_rejected_not_the_file(tmp_path):
    path = tmp_path / "ragged.csv"
    good = f"2024-08-05 10:00,Rowdy,{LAT},{LON},,,,"
    path.write_text("Ref,When,Type,Lat,Lon,Where,Caller,Text,Qty\n"
                    f"A1,{good}\nA2,{good},noise, with a comma\nA3,{good}\nA4,short\n")
    from hotspots import geography
    config = load_config()
    res = to_incidents(read_export(path), file="ragged.csv", config=config, layers=run.layers,
                       area=geography.study_area(run.layers, config), mapping=LATLON,
                       today=TODAY)
    assert res.n_read == 4 == len(res.incidents) + len(res.rejected)
    assert res.incidents["row"].tolist() == [2, 4]
    assert res.rejected["row"].tolist() == [3, 5]
    assert res.reasons == {"malformed_row": 2}
    assert ("ragged.csv row 3, field '(whole row)'" in res.problems["message"].iloc[0]
            and "the row has 11 fields where the header has 9" in res.problems["message"].iloc[0])


def test_excel_style_encodings_are_read(tmp_path):
    """Excel's plain 'CSV' on a UK machine is Windows-1252; 'CSV UTF-8' has a BOM."""
    cp = tmp_path / "cp1252.csv"
    cp.write_bytes("Ref,Where\nA1,Café on Brick Lane £5\n".encode("cp1252"))
    assert read_export(cp).iloc[0].tolist() == ["A1", "Café on Brick Lane £5"]
    bom = tmp_path / "bom.csv"
    bom.write_bytes(b"\xef\xbb\xbfRef,Where\nA1,x\n")
    assert list(read_export(bom).columns) == ["Ref", "Where"]


def repeated_positions(layers, n=3000, seed=0):
    """Rows at 60 positions, each repeated: LSOA corners (on shared boundaries once
    projected back and forth, or within centimetres), points within a few metres of a
    boundary, points in the Thames (in a ward, in no LSOA), outside the borough, and
    swapped; plus rows with other problems."""
    import shapely

    rng = np.random.default_rng(seed)
    vx, vy = shapely.get_coordinates(layers["lsoa"].geometry.values).T
    pick = rng.choice(len(vx), 40, replace=False)
    ex = np.r_[vx[pick], vx[pick[:10]] + rng.normal(0, 3, 10), 536500, 537800, 520000]
    ny = np.r_[vy[pick], vy[pick[:10]] + rng.normal(0, 3, 10), 179700, 179500, 180000]
    lon, lat = Transformer.from_crs(27700, 4326, always_xy=True).transform(ex, ny)
    at = rng.integers(0, len(lon), n)
    rows = [row(Ref=f"R{i}", Lat=f"{lat[k]:.6f}", Lon=f"{lon[k]:.6f}", Where="Brick Lane")
            for i, k in enumerate(at)]
    for i in range(0, n, 97):
        rows[i]["Lat"], rows[i]["Lon"] = rows[i]["Lon"], rows[i]["Lat"]
    for i in range(5, n, 89):
        rows[i]["When"] = "never"
    return rows


def same_result(a, b):
    for part in ("incidents", "problems", "rejected"):
        pd.testing.assert_frame_equal(getattr(a, part), getattr(b, part), check_exact=True)
    assert (a.n_read, a.reasons) == (b.n_read, b.reasons)


def test_repeated_positions_are_placed_once_with_the_same_result(layers, monkeypatch):
    from hotspots import ingest

    rows = repeated_positions(layers)
    seen = []

    def spy(x, y, areas, **kw):
        seen.append(len(x))
        return assign_points(x, y, areas, **kw)

    from hotspots.assign import assign_codes, assign_points
    monkeypatch.setattr(ingest, "assign_points", spy)
    monkeypatch.setattr(ingest, "DISTINCT_MIN_ROWS", 0)
    monkeypatch.setattr(ingest, "DISTINCT_MAX_SHARE", 1.0)
    grouped = run(rows)
    assert max(seen) <= 2 * 53  # each distinct position (or its swap) once, not each row
    seen.clear()
    monkeypatch.setattr(ingest, "DISTINCT_MAX_SHARE", -1.0)
    plain = run(rows)
    assert max(seen) > 2500
    same_result(grouped, plain)
    assert {"outside_study_area", "swapped_latlon", "unparseable_date"} <= set(plain.reasons)
    # and each row's own position, projected and placed on its own
    inc = plain.incidents
    src = pd.DataFrame(rows).iloc[inc["row"].to_numpy() - 2]
    x, y = Transformer.from_crs(4326, 27700, always_xy=True).transform(
        src["Lon"].astype(float).to_numpy(), src["Lat"].astype(float).to_numpy())
    assert np.array_equal(inc["x"], x) and np.array_equal(inc["y"], y)
    assert (inc["ward_code"] == assign_codes(x, y, layers["ward"])).all()
    assert (inc["lsoa_code"] == assign_codes(x, y, layers["lsoa"], nearest_max_m=250)).all()
    assert (inc["lsoa_code"] != "").all()  # Thames points: the nearest LSOA
    assert inc["location_key"].tolist() == [f"xy:{round(a / 10) * 10}:{round(b / 10) * 10}"
                                            for a, b in zip(x, y, strict=True)]


def test_projection_shared_with_a_worker_thread_gives_the_same_numbers(layers, monkeypatch):
    from hotspots import ingest

    rows = repeated_positions(layers, seed=1)
    for i, r in enumerate(rows):  # every position its own
        r["Lat"] = f"{float(r['Lat']) + i * 1e-7:.7f}" if r["Lat"] else r["Lat"]
    monkeypatch.setattr(ingest, "BACKGROUND_MIN_ROWS", 10**9)
    alone = run(rows)
    monkeypatch.setattr(ingest, "BACKGROUND_MIN_ROWS", 0)
    monkeypatch.setattr(ingest, "PROJECT_CHUNK", 7)
    monkeypatch.setattr(ingest, "_cores", lambda: 2)
    shared = run(rows)
    same_result(alone, shared)


def test_references_repeated_exactly_as_text():
    refs = ["A", "A ", "Ａ", "ASB-2024-0000001", "ASB-2024-0000002", "ASB-2024-0000001",
            "x" * 70, "x" * 69 + "y", "x" * 70, "é1", "e1", "é1", "12345678", "123456789",
            "12345678\u00a0", "12345678"]
    res = run([row(Ref=r) for r in refs])
    dups = res.problems.loc[res.problems["reason"] == "duplicate_reference", "row"].tolist()
    # "A " is trimmed to "A"; a trailing no-break space is trimmed too
    assert dups == [3, 7, 10, 13, 16, 17]
    assert res.incidents["ref"].tolist() == ["A", "Ａ", "ASB-2024-0000001", "ASB-2024-0000002",
                                             "x" * 70, "x" * 69 + "y", "é1", "e1", "12345678",
                                             "123456789"]


def test_padded_cells_are_trimmed_and_clean_ones_kept():
    res = run([row(Ref=" R1", Type="\tRowdy ", Lat=f"\u00a0{LAT}", When="2024-08-03 21:15 ",
                   Where="  12 Example House, Brick Lane"),
               row(Ref="R2")])
    inc = res.incidents
    assert inc["ref"].tolist() == ["R1", "R2"]
    assert inc["category_raw"].tolist() == ["Rowdy", "Rowdy"]
    assert inc["hour"].tolist() == [21, 21] and inc["location_key"].nunique() == 1
    assert inc["location"].tolist() == ["12 Example House, Brick Lane"] * 2


def test_location_keys_without_the_cell_table(monkeypatch):
    from hotspots import ingest

    rows = [row(Ref=f"R{i}", Where="Brick Lane", Lat=f"{LAT + i * 1e-4:.6f}")
            for i in range(30)]
    keys = run(rows).incidents["location_key"]
    monkeypatch.setattr(ingest, "PAIR_TABLE_MAX", 0)
    assert run(rows).incidents["location_key"].tolist() == keys.tolist()
    assert keys.iloc[0] == f"xy:{round(E / 10) * 10}:{round(N / 10) * 10}"
    assert keys.nunique() > 20


# --- issue 10, items 8 and 9: unclear messages, a good row lost, implausible values -----

HEADER = "Ref,When,Type,Lat,Lon,Where,Caller,Text,Qty\n"
GOOD = f"2024-08-05 10:00,Rowdy,{LAT},{LON},,,,"


def run_file(path, mapping=LATLON, config=None):
    from hotspots import geography
    config = config or load_config()
    return to_incidents(read_export(path), file=path.name, config=config, layers=run.layers,
                        area=geography.study_area(run.layers, config), mapping=mapping,
                        today=TODAY)


def test_a_10_mb_field_rejects_its_row_and_the_good_rows_load(tmp_path):
    path = tmp_path / "huge.csv"
    path.write_text(HEADER + f"A1,{GOOD}\nA2,2024-08-05 10:00,Rowdy,{LAT},{LON},,,"
                    f"{'x' * 10_000_000},\nA3,{GOOD}\n")
    res = run_file(path)
    assert res.n_read == 3 == len(res.incidents) + len(res.rejected)
    assert res.incidents["ref"].tolist() == ["A1", "A3"]
    assert res.problems["message"].tolist() == [
        f"huge.csv row 3, field 'Text' = '{'x' * 57}...': the value is 10,000,000 characters "
        "long, more than a spreadsheet cell holds (32,767). Fix: check the export: a quote "
        "mark that is never closed makes one cell swallow the lines after it; shorten the "
        "text, or remove the row."]


def test_a_field_at_the_spreadsheet_cell_limit_is_kept(tmp_path):
    res = run([row(Text="é" * 32_767), row(Ref="R2", Text="é" * 32_768)])
    assert res.incidents["ref"].tolist() == ["R1"]  # characters counted, not bytes
    assert res.reasons == {"oversized_field": 1}


def test_a_200000_column_header_is_refused_with_what_was_found(tmp_path):
    path = tmp_path / "wide.csv"
    path.write_text(",".join(f"c{i}" for i in range(200_000)) + "\n" + "1," * 199_999 + "1\n")
    with pytest.raises(InputError) as err:
        read_export(path)
    assert str(err.value) == (
        "wide.csv: the header row has 200,000 columns; an export has at most 16,384 (a "
        "spreadsheet's limit), so this is not a table of records (or its separator is not a "
        "comma or a tab). Fix: export the records again as CSV (comma-separated, one header "
        "row) or XLSX.")


def test_a_wide_header_longer_than_a_read_block_is_read(tmp_path):
    names = [f"a rather long column name, number {i:05d}, as some systems write them"
             for i in range(15_000)]
    path = tmp_path / "wide.csv"
    path.write_text(",".join(f'"{n}"' for n in names) + "\n" + ",".join("v" for _ in names))
    assert path.stat().st_size > 2**20  # longer than the reader's first block
    frame = read_export(path)
    assert frame.shape == (1, 15_000) and frame.columns[-1] == names[-1]


def test_cells_spanning_lines_across_read_blocks(tmp_path):
    path = tmp_path / "notes.csv"
    path.write_text("Ref,Text\n" + "".join(f'A{i},"first line {i}\nsecond line, with a comma"\n'
                                           for i in range(40_000)))
    frame = read_export(path)  # not cut between blocks inside a cell, which Arrow does
    assert len(frame) == 40_000  # silently unless told that cells span lines
    assert frame.iloc[-1].tolist() == ["A39999", "first line 39999\nsecond line, with a comma"]


@pytest.mark.parametrize("sep", [",", "\t"])
@pytest.mark.parametrize("encoding", ["utf-16", "utf-16-le", "utf-16-be"])
def test_utf16_unicode_text_is_read(tmp_path, sep, encoding):
    """Excel's "Unicode text" is UTF-16 with a byte-order mark, tab-separated."""
    cells = [["Ref", "When", "Type", "Lat", "Lon", "Where"],
             ["U1", "2024-08-05 10:00", "Rowdy", f"{LAT}", f"{LON}", "Café, Brick Lane"]]
    text = "\r\n".join(sep.join(f'"{c}"' if sep in c else c for c in r) for r in cells) + "\r\n"
    path = tmp_path / "unicode.txt"
    path.write_bytes(text.encode(encoding))
    frame = read_export(path)
    assert list(frame.columns) == cells[0]
    mapping = Mapping(source="x", columns={k: v for k, v in LATLON.columns.items()
                                           if v in cells[0]}, categories=LATLON.categories)
    res = run_file(path, mapping=mapping)
    assert res.incidents[["ref", "location"]].values.tolist() == [["U1", "Café, Brick Lane"]]


def test_broken_utf16_is_refused_clearly(tmp_path):
    path = tmp_path / "broken.csv"
    path.write_bytes("Ref,Where\nA1,x\n".encode("utf-16") + b"\x00\xd8")  # a lone surrogate
    with pytest.raises(InputError, match=r"^broken.csv: the file starts as UTF-16 text \(Excel's "
                                         r"\"Unicode text\"\) but is not valid UTF-16 from byte 33"
                                         r" on. Fix: open it in a spreadsheet and save it again"):
        read_export(path)


def test_windows_1252_undefined_bytes_reject_the_row_without_codec_jargon(tmp_path):
    path = tmp_path / "cp.csv"
    path.write_bytes((HEADER + f"A1,{GOOD}\nA2,2024-08-05 10:00,Rowdy,{LAT},{LON},Caf\xe9 "
                      ",,,\n").encode("cp1252").replace(b"Caf\xe9 ", b"Caf\xe9 \x90"))
    res = run_file(path)
    assert res.incidents["ref"].tolist() == ["A1"]
    msg = res.problems["message"].iloc[0]
    assert msg.startswith("cp.csv row 3, field 'Where' = 'Café \\x90': the value contains the "
                          "control character U+0090, which is not text")
    assert "codec" not in msg and "\x90" not in msg


def test_nul_and_control_characters_are_never_stored():
    res = run([row(Text="fine\tand\nmultiline"), row(Ref="R2", Text="bad\x00byte"),
               row(Ref="R3\x1b"), row(Ref="R4", Where="12 Example\x7f House")])
    assert res.incidents["ref"].tolist() == ["R1"]
    assert res.reasons == {"control_characters": 3}
    probs = res.problems.set_index("row")
    assert probs.loc[3, "message"] == (
        "export.csv row 3, field 'Text' = 'bad\\x00byte': the value contains the control "
        "character U+0000 (NUL), which is not text (the row is rejected rather than stored "
        "with the character removed, so nothing is changed silently). Fix: remove the "
        "character from the export (NUL bytes and other control characters come from a "
        "damaged copy or a binary file), or remove the row.")
    assert probs.loc[4, "field"] == "Ref" and "U+001B (escape)" in probs.loc[4, "message"]
    assert "U+007F (DEL)" in probs.loc[5, "message"]
    assert not res.problems["value"].str.contains("[\x00\x1b\x7f]").any()


@pytest.mark.parametrize("when", ["1899-12-31", "1900-01-01 00:00", "1970-01-01",
                                  "01/01/1970 00:00", "31/12/1999"])
def test_epoch_placeholder_dates_are_implausible(when):
    msg = only_message(run([row(When=when)]))
    assert msg == (f"export.csv row 2, field 'When' = '{when}': {when} is before 2000-01-01, "
                   "the earliest plausible date (1899-12-31, 1900-01-01 and 1970-01-01 are what "
                   "spreadsheets and databases write for an empty date). Fix: correct the date "
                   "in the export, or remove the row; if records this old are real, lower "
                   "earliest_date under [ingest] in the configuration.")


def test_earliest_date_is_configured(tmp_path):
    import dataclasses

    config = load_config()
    assert config.earliest_date == dt.date(2000, 1, 1)
    rows = [row(When="2000-01-01"), row(Ref="R2", When="1995-06-01 10:00")]
    assert run(rows).incidents["ref"].tolist() == ["R1"]
    from hotspots import geography
    older = dataclasses.replace(config, earliest_date=dt.date(1990, 1, 1))
    res = to_incidents(pd.DataFrame(rows, dtype=str), file="x.csv", config=older,
                       layers=run.layers, area=geography.study_area(run.layers, config),
                       mapping=LATLON, today=TODAY)
    assert res.incidents["ref"].tolist() == ["R1", "R2"]
    src = (Path(__file__).parents[1] / "hotspots" / "data" / "tower_hamlets.toml").read_text()
    p = tmp_path / "c.toml"
    p.write_text(src.replace("earliest_date = 2000-01-01", "earliest_date = 2005-04-01"))
    assert load_config(p).earliest_date == dt.date(2005, 4, 1)
    p.write_text(src.replace("earliest_date = 2000-01-01", 'earliest_date = "soon"'))
    with pytest.raises(ConfigError, match=r"c.toml: ingest.earliest_date = 'soon'; give a date "
                                          r"without quotes, e.g. earliest_date = 2000-01-01"):
        load_config(p)


def police_row(**kw):
    base = dict.fromkeys(POLICE_UK_HEADER, "")
    base.update({"Crime ID": "abc", "Month": "2024-07", "Longitude": f"{LON}",
                 "Latitude": f"{LAT}", "Location": "On or near Brick Lane",
                 "Crime type": "Burglary"})
    base.update(kw)
    return base


def test_police_uk_month_1900_01_is_implausible():
    res = run([police_row(), police_row(**{"Crime ID": "def", "Month": "1900-01"})],
              mapping=None)
    assert res.incidents["ref"].tolist() == ["abc"]
    assert res.problems["message"].iloc[0].startswith(
        "export.csv row 3, field 'Month' = '1900-01': 1900-01 is before 2000-01-01, the "
        "earliest plausible date")


BASE_MAPPING = ('source = "x"\n[columns]\nreference = "a"\ncategory = "b"\ndate = "c"\n'
                'latitude = "d"\nlongitude = "e"\n')


@pytest.mark.parametrize("line, expected", [
    ('date_format = "%Q"', 'm.toml: date_format = "%Q" is not a usable date format: %Q is not '
                           'a date code. Fix: write it with strftime codes for day, month and '
                           'year, e.g. date_format = "%d/%m/%Y %H:%M" for 31/08/2024 21:30, or '
                           'leave it out for ISO 8601 and day-first dates.'),
    ("date_format = 5", 'm.toml: date_format = 5 is not text. Fix: write it in quotes, e.g. '
                        'date_format = "%d/%m/%Y %H:%M".'),
    ('date_format = "%H:%M"', 'm.toml: date_format = "%H:%M" is not a usable date format: it '
                              'does not give the day, month and year. Fix: write it'),
    ('date_format = ""', 'm.toml: date_format = "" is not a usable date format'),
    ('sheet = ["a"]', "m.toml: sheet = ['a'] is not text. Fix: write it in quotes, e.g. "
                      'sheet = "Cases".'),
])
def test_bad_mapping_values_name_the_file_key_and_fix(tmp_path, config, line, expected):
    p = tmp_path / "m.toml"
    p.write_text(line + "\n" + BASE_MAPPING)
    with pytest.raises(ConfigError) as err:
        read_mapping(p, config)
    assert str(err.value).startswith(expected)
    assert str(tmp_path) not in str(err.value)


@pytest.mark.parametrize("text, expected", [
    (BASE_MAPPING.replace('reference = "a"', "reference = 7"),
     'm.toml: [columns] reference = 7 is not a column name. Fix: write the export column'),
    ('source = "x"\ncolumns = "a"\n', 'm.toml: columns = "a" is not a table. Fix: write a '
                                      '[columns] table'),
    (BASE_MAPPING + '[categories]\n"Loud" = 3\n', "m.toml: [categories] \"Loud\" = 3 is not a "
                                                  "taxonomy key"),
    ("source = 5\n" + BASE_MAPPING.split("\n", 1)[1], "m.toml: no 'source'."),
])
def test_mapping_values_of_the_wrong_kind(tmp_path, config, text, expected):
    p = tmp_path / "m.toml"
    p.write_text(text)
    with pytest.raises(ConfigError, match="^" + re.escape(expected)):
        read_mapping(p, config)


def test_a_mapping_object_is_checked_by_to_incidents_too():
    bad = Mapping(source="x", columns=LATLON.columns, date_format="%Q", path="m.toml")
    with pytest.raises(ConfigError, match=r"^m.toml: date_format = \"%Q\" is not a usable"):
        run([row()], mapping=bad)


def test_binary_and_utf16_mapping_files(tmp_path, config):
    p = tmp_path / "mapping.toml"
    p.write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x90\xff")
    with pytest.raises(ConfigError) as err:
        read_mapping(p, config)
    assert str(err.value) == (
        "mapping.toml: the mapping file is not text (byte 1 is not UTF-8; a binary file, or a "
        "document saved by a word processor?). Fix: write the mapping as plain text (TOML) in "
        "a text editor and save it as UTF-8.")
    p.write_bytes(b"source = \"x\"\x00\n")
    with pytest.raises(ConfigError, match=r"^mapping.toml: the mapping file is not valid TOML: "
                                          r".*\(at line 1, column 13\)"):
        read_mapping(p, config)
    for encoding in ("utf-16", "utf-8-sig"):  # Notepad's "Unicode" and its UTF-8 with a BOM
        p.write_bytes(BASE_MAPPING.encode(encoding))
        assert read_mapping(p, config).columns["reference"] == "a"


def test_xlsx_huge_numbers_stay_short_and_unreadable_cells_name_the_file(tmp_path):
    path = tmp_path / "big.xlsx"
    pd.DataFrame({"Ref": ["A1"], "Qty": [1e300]}).to_excel(path, index=False)
    assert read_export(path).iloc[0].tolist() == ["A1", "1e+300"]  # not 301 digits
    # Excel's largest number is written rounded up, beyond what a float holds
    pd.DataFrame({"Ref": ["A1"], "Qty": [1.7976931348623157e308]}).to_excel(path, index=False)
    with pytest.raises(InputError, match=r"^big.xlsx: cannot be read as an Excel workbook"):
        read_export(path)


def test_whole_file_messages_name_the_file_and_say_the_fix(tmp_path):
    with pytest.raises(InputError) as err:
        run([row()], mapping=None)
    assert str(err.value).endswith("no mapping was given. Fix: write a mapping file naming its "
                                   "columns (see the README) and give it with the export: "
                                   "--mapping on the command line; in the app, choose a "
                                   "saved mapping, upload one, or make one with the mapping "
                                   "form.")
    wide = pd.DataFrame([{**row(), **{f"extra {i}": "" for i in range(30)}}])
    with pytest.raises(InputError) as err:
        run(wide.drop(columns=["Type", "Lat"]).to_dict("records"))
    assert str(err.value).startswith(
        "export.csv: column(s) 'Type' (category), 'Lat' (latitude) named in the mapping are "
        "not in the export, which cannot be loaded without them; its columns are ['Ref', "
        "'When', 'Lon',")
    assert ("and 18 more. Fix: choose the export's own columns for these fields in the "
            "mapping ([columns])") in str(err.value)  # of 37
    path = tmp_path / "asb.xlsx"
    pd.DataFrame({"Ref": ["A1"]}).to_excel(path, index=False, sheet_name="Cases")
    with pytest.raises(InputError, match=r"^asb.xlsx: cannot be read as an Excel workbook: it has "
                                         r"no sheet 'Calls'. Fix: open it in Excel"):
        read_export(path, sheet="Calls")
    assert read_export(path, sheet="Cases").columns.tolist() == ["Ref"]
    empty = tmp_path / "empty.csv"
    empty.write_bytes(b"")
    with pytest.raises(InputError, match=r"^empty.csv: the file is empty \(no header row\)\. "
                                         r"Fix: export the records again with their header row"):
        read_export(empty)
    dup = tmp_path / "dup.csv"
    dup.write_text("Ref,When,Ref\n1,2,3\n")
    with pytest.raises(InputError, match=r"^dup.csv: the header repeats column\(s\) \['Ref'\]. "
                                         r"Fix: give each column its own name"):
        read_export(dup)


def test_optional_columns_missing_from_the_export_warn_and_the_rows_load():
    rows = [row(Ref="A1"), row(Ref="A2", Qty="3")]
    slim = pd.DataFrame(rows).drop(columns=["Caller", "Text"]).to_dict("records")
    res = run(slim)
    assert res.incidents["ref"].tolist() == ["A1", "A2"] and res.rejected.empty
    assert res.incidents["quantity"].tolist() == [1, 3]  # the columns there still count
    assert (res.incidents[["caller_key", "description"]] == "").all().all()
    assert res.warnings == (
        "export.csv: optional column(s) 'Caller' (caller), 'Text' (description) named in the "
        "mapping are not in the export: it is loaded without caller identifiers (repeat "
        "callers are not counted); descriptions. Fix: nothing, if the export never has them; "
        "to stop this warning, take the field(s) out of the mapping's [columns].",)
    assert run(rows).warnings == ()  # all there: no warning


def test_reasons_are_explained_fix_first_in_plain_words():
    from hotspots.validate import explain_reasons

    res = run([row(Ref="A1", Lat="181000", Lon="534000"), row(Ref="A2", Type="Fly tipping"),
               row(Ref="A3", Type="Fly tipping"), row(Ref="A4")])
    got = explain_reasons(res.problems)
    assert [r["reason"] for r in got] == ["unknown_category", "grid_in_latlon"]  # most first
    assert got[0] == {
        "fix": "Add it under [categories] in the mapping file, for example \"Fly tipping\" = "
               "\"asb_nuisance\", or add it to the taxonomy in the configuration.",
        "rows": 2, "example": "row 3, field 'Type' = 'Fly tipping': 'Fly tipping' is not a "
                              "known category.", "reason": "unknown_category"}
    assert got[1]["fix"] == ("Map these columns as `easting` and `northing` in the mapping "
                             "file.")
    assert got[1]["example"].startswith("row 2, field 'Lat/Lon' = '181000, 534000': ")
    assert not any(r["reason"] in r["fix"] + r["example"] for r in got)  # no codes in text
