"""The command line: fixed JSON shapes, exit codes, summaries, another study area."""

import json
import shutil
from pathlib import Path

import geopandas as gpd
import openpyxl
import pandas as pd
import pytest
from pyproj import Transformer

from hotspots.cli import main

from .conftest import SHARED

POLICE = SHARED / "policeuk"
BURGLARY = sorted(POLICE.glob("2024-0[78]-metropolitan-street_tower-hamlets_burglary-only.csv"))


def run(capsys, *argv):
    code = main(list(argv))
    out = capsys.readouterr()
    return code, out.out, out.err


def test_ingest_json_shape_and_unreadable_file(tmp_path, capsys, cache):
    store = tmp_path / "s.sqlite"
    bad = tmp_path / "broken.xlsx"
    bad.write_bytes(b"not a spreadsheet")
    code, out, _ = run(capsys, "--geodata", str(cache), "ingest", str(BURGLARY[0]), str(bad),
                       "--store", str(store), "--json")
    assert code == 1
    report = json.loads(out)
    assert report["store"] == str(store)
    good, broken = report["files"]
    for key in ("path", "format", "read", "accepted", "rejected", "replaced", "unchanged",
                "unassigned", "lsoa_agreement", "reasons"):
        assert key in good and key in broken
    assert good["format"] == "policeuk" and good["read"] == good["accepted"] + good["rejected"]
    assert good["unassigned"] == 0 and 0.8 < good["lsoa_agreement"] < 1
    assert broken["read"] is None and "broken.xlsx: cannot be read" in broken["error"]
    # the good file loaded although the other failed; loading it again changes nothing
    code, out, _ = run(capsys, "--geodata", str(cache), "ingest", str(BURGLARY[0]),
                       "--store", str(store), "--json")
    again = json.loads(out)["files"][0]
    assert code == 0 and again["unchanged"] == good["accepted"] and again["replaced"] == 0


def test_ingest_text_summary_and_rejected_rows_file(tmp_path, capsys, cache):
    city = POLICE / "2024-08-city-of-london-street.csv"
    code, out, _ = run(capsys, "--geodata", str(cache), "ingest", str(city), "--store",
                       str(tmp_path / "s.sqlite"))
    assert code == 0
    assert "2024-08-city-of-london-street.csv (policeuk): read 826 = accepted" in out
    assert "rejected rows by reason: duplicate_crime_id" in out
    kept = next((tmp_path / "rejected").glob("2024-08-city-of-london-street.load1*.csv"))
    rows = kept.read_text(encoding="utf-8-sig").splitlines()
    assert rows[0].startswith("row,Crime ID,Month") and rows[0].endswith(",reasons")
    assert "outside Tower Hamlets" in kept.read_text()


def test_summarise_writes_ranked_table_and_map(tmp_path, capsys, cache):
    store = str(tmp_path / "s.sqlite")
    run(capsys, "--geodata", str(cache), "ingest", *map(str, BURGLARY), "--store", store)
    code, out, _ = run(capsys, "--geodata", str(cache), "summarise", "--store", store,
                       "--level", "ward", "--out", str(tmp_path / "out"), "--json")
    assert code == 0
    meta = json.loads(out)
    assert meta["period"] == "2024-08" and meta["previous"] == "2024-07"
    table = (tmp_path / "out" / "areas_ward_2024-08.csv").read_text(
        encoding="utf-8-sig").splitlines()
    assert table[0].startswith("rank,code,name,area_km2,n,n_burglary,harm,density_per_km2")
    assert len(table) == 21
    assert meta["total_in_areas"] == meta["incidents"] == 185
    assert (tmp_path / "out" / "map_ward_2024-08.html").stat().st_size < 2_000_000
    # the same table for people (XLSX), Power BI (CSV lat/lon), ArcGIS (GeoJSON), QGIS (GPKG)
    files = meta["files"]
    ws = openpyxl.load_workbook(files["xlsx"])["Areas"]
    head = [c.value for c in ws[1]]
    assert head[:5] == ["Rank", "Code", "Name", "Area (km²)", "Incidents"]
    assert "Incidents: Burglary" in head and ws["E2"].number_format == "#,##0"
    areas = gpd.read_file(files["gpkg"])
    web = gpd.read_file(files["geojson"])
    assert areas.crs.to_epsg() == 27700 and web.crs.to_epsg() == 4326
    assert areas["code"].tolist() == web["code"].tolist() and len(areas) == 20
    got = pd.read_csv(files["table"])
    x, y = Transformer.from_crs(4326, 27700, always_xy=True).transform(got["longitude"],
                                                                      got["latitude"])
    inside = gpd.points_from_xy(x, y, crs=27700).within(areas.geometry.buffer(1).values)
    assert inside.all()  # each ward's latitude/longitude is a point inside that ward


def test_usage_errors_are_named(tmp_path, capsys, cache):
    code, _, err = run(capsys, "--geodata", str(cache), "summarise", "--store",
                       str(tmp_path / "empty.sqlite"))
    assert code == 1 and "the store has no incidents yet; load exports with `hotspots ingest" \
        in err
    code, _, err = run(capsys, "summarise", "--month", "2024-08", "--start", "2024-08-01")
    assert code == 1 and "give either --month or --start/--end, not both" in err
    code, _, err = run(capsys, "--config", str(tmp_path / "none.toml"), "summarise")
    assert code == 1 and "cannot read configuration file" in err
    code, _, err = run(capsys, "--geodata", str(cache), "summarise", "--store",
                       str(tmp_path / "empty.sqlite"), "--formats", "csv,shp")
    assert code == 1 and ("formats: shp is not a table format; use some of xlsx, csv, "
                          "geojson, gpkg") in err


def test_another_study_area_works_from_its_own_files(tmp_path, capsys):
    """City of London: its LSOAs, and its one MSOA standing in for wards; nothing in the
    package names Tower Hamlets apart from the default configuration."""
    cache = tmp_path / "cache"
    cache.mkdir()
    shutil.copy(SHARED / "city_of_london_lsoa21.geojson", cache)
    london = gpd.read_file(SHARED / "london_lsoa21.gpkg", layer="lsoa21")
    city = london[london["lad22nm"] == "City of London"]
    city.dissolve("msoa21cd").reset_index()[["msoa21cd", "msoa21nm", "geometry"]].to_file(
        cache / "city_msoa.geojson")
    cfg = tmp_path / "city.toml"
    cfg.write_text(f"""
[study_area]
name = "City of London"
boundary_layer = "ward"
manifest = "{tmp_path / 'manifest.toml'}"
[layers.ward]
file = "city_msoa.geojson"
code = "msoa21cd"
name = "msoa21nm"
[layers.lsoa]
file = "city_of_london_lsoa21.geojson"
code = "lsoa21cd"
name = "lsoa21nm"
[categories]
asb = {{ label = "ASB", weight = 1 }}
other = {{ label = "Everything else", weight = 1 }}
[police_uk_types]
"Anti-social behaviour" = "asb"
""")
    code, out, _ = run(capsys, "--config", str(cfg), "--geodata", str(cache), "ingest",
                       str(POLICE / "2024-08-city-of-london-street.csv"), "--store",
                       str(tmp_path / "city.sqlite"), "--json")
    f = json.loads(out)["files"][0]
    assert code == 0 and f["accepted"] > 0
    # only ASB is mapped: every other crime type is an unknown category, said so per row
    assert f["reasons"]["unknown_category"] > 500
    assert f["unassigned"] == 0 and f["lsoa_agreement"] > 0.8


@pytest.mark.slow
def test_demo_end_to_end(tmp_path, capsys, cache):
    code, out, _ = run(capsys, "--geodata", str(cache), "demo", "--data", str(tmp_path / "d"),
                       "--out", str(tmp_path / "o"), "--n", "5000", "--json")
    assert code == 0
    report = json.loads(out)
    files = report["ingest"]["files"]
    assert len(files) == 16  # 13 police.uk Tower Hamlets files and 3 synthetic exports
    assert all(f["read"] == f["accepted"] + f["rejected"] for f in files)
    assert all(f["unassigned"] == 0 for f in files)
    lsoa, ward = report["summaries"]
    assert lsoa["period"] == ward["period"] == "2024-08"
    assert lsoa["total_in_areas"] == ward["total_in_areas"] == lsoa["incidents"]
    assert (tmp_path / "o" / "map_lsoa_2024-08.html").exists()
    hot = report["hotspots"]
    assert hot["period"] == "2024-08" and hot["places"] > 5
    assert hot["cell_size_m"] > 0 and hot["bandwidth_m"] > 0  # chosen by rule, reported
    assert sum(hot["hot_cells"].values()) > 0
    places = (tmp_path / "o" / "places_2024-08.csv").read_text(encoding="utf-8-sig").splitlines()
    assert places[0].startswith("place_id,label,n,harm,area_km2,density_per_km2")
    assert len(places) == hot["places"] + 1
    assert (tmp_path / "o" / "pack_2024-08.html").exists() and report["pack"]["places"] > 5


def test_detect_announces_chosen_values_and_refuses_empty_periods(tmp_path, capsys, cache):
    store = str(tmp_path / "s.sqlite")
    run(capsys, "--geodata", str(cache), "ingest", *map(str, BURGLARY), "--store", store)
    code, out, err = run(capsys, "--geodata", str(cache), "detect", "--store", store, "--out",
                         str(tmp_path / "o"))
    assert code == 0
    assert "cell size set to" in err and "bandwidth set to" in err
    assert "Hotspots for 2024-08: 185 incidents" in out
    # the backtest's winner is drawn on its own grid, not on the 250 m grid of the month
    assert "cell size set to 250 m" in err
    page = (tmp_path / "o" / "hotspots_2024-08.html").read_text()
    assert "Forecast for 2024-09: top 5% of the area" in page
    assert "Where it is concentrated now (not a forecast): Getis-Ord Gi*" in page
    code, _, err = run(capsys, "--geodata", str(cache), "detect", "--store", store, "--month",
                       "2023-01")
    assert code == 1 and "0 incident(s) in 2023-01: too few to look for hotspots" in err


def test_ingest_skips_content_already_loaded_so_old_exports_cannot_undo_new(tmp_path, capsys,
                                                                             cache):
    week1, week2 = tmp_path / "week1.csv", tmp_path / "week2.csv"
    header = "Ref,When,Type,Lat,Lon\n"
    week1.write_text(header + "A1,2024-08-05 10:00,asb_nuisance,51.5205,-0.0716\n")
    week2.write_text(header + "A1,2024-08-05 10:00,drug_dealing,51.5205,-0.0716\n")
    mapping = tmp_path / "m.toml"
    mapping.write_text('source = "s"\n[columns]\nreference = "Ref"\ndatetime = "When"\n'
                       'category = "Type"\nlatitude = "Lat"\nlongitude = "Lon"\n')
    store = str(tmp_path / "s.sqlite")
    args = ["--geodata", str(cache), "ingest", "--mapping", str(mapping), "--store", store,
            "--json"]
    run(capsys, *args, str(week1))
    run(capsys, *args, str(week2))
    code, out, _ = run(capsys, *args, str(week1))
    entry = json.loads(out)["files"][0]
    assert code == 0 and entry["already_loaded"] == 1 and entry["replaced"] == 0
    from hotspots import store as st
    conn = st.connect(store)
    assert st.read_incidents(conn)["category"].tolist() == ["drug_dealing"]
    conn.close()


def test_ingest_dry_run_says_what_would_change_and_writes_nothing(tmp_path, capsys, cache):
    from hotspots import store as st
    from hotspots.jobs import PREVIEW_KEYS

    week1, week2 = tmp_path / "week1.csv", tmp_path / "week2.csv"
    header = "Ref,When,Type,Lat,Lon\n"
    week1.write_text(header + "A1,2024-08-05 10:00,asb_nuisance,51.5205,-0.0716\n")
    week2.write_text(header + "A1,2024-08-05 10:00,drug_dealing,51.5205,-0.0716\n"
                     "A2,2024-08-06 11:00,asb_nuisance,51.5205,-0.0716\n"
                     "A3,2024-08-06 11:00,asb_nuisance,,\n")
    mapping = tmp_path / "m.toml"
    mapping.write_text('source = "s"\n[columns]\nreference = "Ref"\ndatetime = "When"\n'
                       'category = "Type"\nlatitude = "Lat"\nlongitude = "Lon"\n'
                       'caller = "Caller ID"\n')
    store = tmp_path / "s.sqlite"
    args = ["--geodata", str(cache), "ingest", "--mapping", str(mapping), "--store", str(store)]
    code, out, _ = run(capsys, *args, "--dry-run", str(week1))
    assert code == 0 and not store.exists()  # not even created
    assert "week1.csv (council): would add 1 new, replace 0" in out
    run(capsys, *args, str(week1))
    conn = st.connect(store)
    loads = len(st.read_loads(conn))
    code, out, _ = run(capsys, *args, "--dry-run", "--json", str(week2))
    entry = json.loads(out)["files"][0]
    assert code == 0 and set(entry) == set(PREVIEW_KEYS)
    assert (entry["inserted"], entry["replaced"], entry["unchanged"], entry["rejected"]) == (
        1, 1, 0, 1)
    assert entry["changes"] == [{"ref": "A1", "field": "category", "old": "asb_nuisance",
                                 "new": "drug_dealing"}]
    assert entry["warnings"][0].startswith("week2.csv: optional column(s) 'Caller ID' (caller)")
    assert entry["explained"][0]["fix"].startswith("Fill in latitude/longitude")
    assert len(st.read_loads(conn)) == loads  # nothing written
    assert st.read_incidents(conn)["category"].tolist() == ["asb_nuisance"]
    conn.close()
    code, out, _ = run(capsys, *args, "--dry-run", str(week2))
    assert "A1: category 'asb_nuisance' -> 'drug_dealing'" in out and "nothing written" in out


def test_every_ingest_entry_has_the_same_keys(tmp_path, capsys, cache):
    from hotspots.jobs import INGEST_KEYS
    code, out, _ = run(capsys, "--geodata", str(cache), "ingest", str(BURGLARY[0]),
                       str(tmp_path / "missing.csv"), "--store", str(tmp_path / "s.sqlite"),
                       "--json")
    assert code == 1
    for entry in json.loads(out)["files"]:
        assert set(entry) == set(INGEST_KEYS)


@pytest.mark.slow
def test_backtest_names_the_months_and_the_incidents_tested(tmp_path, capsys, cache,
                                                             monkeypatch):
    store = str(tmp_path / "s.sqlite")
    months = sorted(POLICE.glob("*metropolitan-street_tower-hamlets_burglary-only.csv"))
    run(capsys, "--geodata", str(cache), "ingest", *map(str, months[-6:]), "--store", store)
    code, out, _ = run(capsys, "--geodata", str(cache), "backtest", "--store", store,
                       "--test-months", "3", "--out", str(tmp_path / "o"), "--json")
    assert code == 0
    res = json.loads(out)
    assert res["test_months"] == ["2024-06", "2024-07", "2024-08"]
    # the defect: the header gave the whole store's incidents as if they were tested
    assert res["incidents"] > res["incidents_tested"]
    from hotspots import store as st
    conn = st.connect(store)
    inc = st.read_incidents(conn)
    conn.close()
    assert res["incidents_in_test_months"] == inc["period"].isin(res["test_months"]).sum()
    assert res["incidents_in_test_months"] - 20 < res["incidents_tested"] \
        <= res["incidents_in_test_months"]  # a few lie outside the land (the Thames)
    assert res["cell_sizes_m"] == [50, 100, 150, 200, 250] and "12 months" in res["windows"]
    pairs = {(r["method"], r["cell_size_m"]) for r in res["summary"]}
    assert {("naive", 100), ("counts_12m", 50), ("decay_6m_kernel", 250)} <= pairs
    w = res["winner"]
    assert w["pai_5pct"] == pytest.approx(max(r["pai"] for r in res["summary"]), abs=1e-4)
    assert w["pai_5pct"] > 2
    assert "gistar" in res["concentrated_now"] and "places" in res["concentrated_now"]
    assert "PAI (Predictive Accuracy Index" in res["definitions"]
    assert (tmp_path / "o" / "backtest.csv").exists()
    # the search's five grids and the Gi* grid the "concentrated now" scores use were kept
    # in the geodata cache by the first run: the next reads them back (a defect: each
    # backtest clipped them again, 13.8 s for London; the Gi* one once a test month, 3 s)
    def no_grid(*args, **kwargs):
        raise AssertionError("a grid was made again")

    monkeypatch.setattr("hotspots.forecast.make_grid", no_grid)
    monkeypatch.setattr("hotspots.backtest.make_grid", no_grid)
    code, text, _ = run(capsys, "--geodata", str(cache), "backtest", "--store", store,
                        "--test-months", "3", "--out", str(tmp_path / "o"))
    monkeypatch.undo()
    assert code == 0
    assert (f"3 test month(s) (2024-06, 2024-07, 2024-08), {res['incidents_tested']:,} "
            "incidents in them inside the area") in text
    assert "fewer than" not in text
    # the stated minimum: with fewer test months it says so, and the map is the fallback
    code, out, _ = run(capsys, "--geodata", str(cache), "backtest", "--store", store,
                       "--test-months", "2", "--out", str(tmp_path / "o"), "--json")
    short = json.loads(out)
    assert short["test_months"] == ["2024-07", "2024-08"] and not short["enough"]
    assert short["winner"]["fallback"] and short["min_test_months"] == 3
    code, text, _ = run(capsys, "--geodata", str(cache), "backtest", "--store", store,
                        "--test-months", "2", "--out", str(tmp_path / "o"))
    assert "only 2 test month(s): fewer than the 3 needed to choose a map" in text


@pytest.mark.slow
def test_detect_draws_the_kept_backtest_winner(tmp_path, capsys, cache, monkeypatch):
    store = str(tmp_path / "s.sqlite")
    months = sorted(POLICE.glob("*metropolitan-street_tower-hamlets_burglary-only.csv"))
    run(capsys, "--geodata", str(cache), "ingest", *map(str, months[:-1]), "--store", store)
    code, out, _ = run(capsys, "--geodata", str(cache), "backtest", "--store", store, "--json")
    res = json.loads(out)
    # the backtest keeps the layer drawn from its winner beside it: detect draws that one,
    # reading no year of incidents and binning nothing
    from hotspots import store as st
    from hotspots.forecast import layer_from_record

    conn = st.connect(store)
    kept = conn.query("SELECT result_json FROM backtests WHERE selection LIKE "
                      "'%forecast_layer%'")
    conn.close()
    assert len(kept) == 1
    kept_layer = layer_from_record(json.loads(kept[0][0]))
    monkeypatch.setattr("hotspots.forecast.bin_incidents", None)
    code, out, _ = run(capsys, "--geodata", str(cache), "detect", "--store", store, "--out",
                       str(tmp_path / "o"), "--json")
    monkeypatch.undo()
    meta = json.loads(out)
    f = meta["forecast"]
    # reused from the store, not run again: same creation time as the backtest's
    assert f["backtest_created"] == res["created"]
    assert (f["method"], f["cell_size_m"]) == (res["winner"]["method"],
                                               res["winner"]["cell_size_m"])
    layer = gpd.read_file(meta["files"]["gpkg"], layer="forecast")
    assert list(layer.columns) == ["rank", "score", "method", "cell_size_m", "pai_5pct",
                                   "test_months", "geometry"]
    assert len(layer) == f["cells"] > 0 and (layer["cell_size_m"] == f["cell_size_m"]).all()
    assert layer["pai_5pct"].iloc[0] == pytest.approx(res["winner"]["pai_5pct"])
    assert layer["rank"].tolist() == kept_layer["rank"].tolist()
    assert layer["score"].tolist() == kept_layer["score"].tolist()
    assert layer.geometry.geom_equals_exact(kept_layer.geometry, tolerance=0).all()
    assert meta["cell_size_m"] == 250  # the month's own grid (Gi*) is another matter
    page = Path(meta["files"]["map"]).read_text()
    assert (f"PAI {f['pai_5pct']:.2f}, hit rate {f['hit_rate_5pct']:.0%} on "
            f"{f['test_months']} test months") in page
    assert f["test_months"] == 8 and not f["fallback"]
    assert f["months_tested"] == res["test_months"] and (f"on 8 test months ("
                                                         f"{res['test_months'][0]} to 2024-07)"
                                                         ) in page
    # Gi* cells and places: "where it is concentrated now", each with its own next-month
    # figure at its own share of the area, never called a forecast
    now = res["concentrated_now"]
    for key, layer_name in (("gistar", "Where it is concentrated now (not a forecast): "
                                       "Getis-Ord Gi*"),
                            ("places", "Places (clusters)")):
        v = now[key]
        assert v["months"] > 0 and v["coverage"] < 0.05
        note = (f"next month it held {v['hit_rate']:.0%} of incidents in {v['coverage']:.2%} "
                f"of the area: PAI {v['pai']:.2f} over {v['months']} months")
        assert note in page and layer_name in page, key
    assert "concentrated now, not a forecast; next month it held" in page  # places' name
    assert page.count("Forecast for ") == 1
    # the pack's map draws the same cells with the same legend
    code, out, _ = run(capsys, "--geodata", str(cache), "pack", "--store", store, "--out",
                       str(tmp_path / "o"), "--json")
    pack_map = Path(json.loads(out)["files"]["map"]).read_text()
    legend = (f"Forecast for {f['month']}: top 5% of the area, {f['description']}, "
              f"{f['cell_size_m']:.0f} m cells")
    assert legend in page and legend in pack_map
    last = f" of {f['cells']}; score "  # each cell's tooltip: "Rank i of <cells>; score s"
    assert last in page and last in pack_map
    run(capsys, "--geodata", str(cache), "ingest", str(months[-1]), "--store", store)
    # new data: the kept result no longer answers, so detect runs the backtest again
    code, out, _ = run(capsys, "--geodata", str(cache), "detect", "--store", store, "--out",
                       str(tmp_path / "o2"), "--json")
    again = json.loads(out)["forecast"]
    assert again["test_months"] == 9
    # an earlier month's forecast is chosen on the months before it only, though the store
    # holds later ones: 2023-12 to 2024-05 tested, for 2024-06
    code, out, _ = run(capsys, "--geodata", str(cache), "detect", "--store", store,
                       "--month", "2024-05", "--out", str(tmp_path / "o3"), "--json")
    past = json.loads(out)
    f5 = past["forecast"]
    assert f5["month"] == "2024-06" and f5["months_tested"] == [
        "2023-12", "2024-01", "2024-02", "2024-03", "2024-04", "2024-05"]
    assert f5["test_months"] == 6 and f5["backtest_created"] >= again["backtest_created"]
    page5 = Path(past["files"]["map"]).read_text()
    assert "on 6 test months (2023-12 to 2024-05)" in page5
