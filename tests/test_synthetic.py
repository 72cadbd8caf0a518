"""Tests of the synthetic council-export generator: reproducible, inside the borough, and
its planted truth (hotspots, step changes, repeat callers and addresses, dirty rows) holds
in the exports themselves."""

from __future__ import annotations

import json
import os
import tomllib
from pathlib import Path

import geopandas
import numpy as np
import openpyxl
import pandas as pd
import pytest
import shapely
from geopandas.testing import assert_geodataframe_equal
from pyproj import Transformer

from hotspots.errors import CRSError
from hotspots.synthetic import DIRTY_REASONS, make_synthetic, write_synthetic

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("HOTSPOTS_GEODATA_FROM", ROOT.parent / "shared" / "geodata"))
LSOA_FILE = SHARED / "tower_hamlets_lsoa21.geojson"
TO_BNG = Transformer.from_crs(4326, 27700, always_xy=True)
DESCRIPTION = {"asb": "Details", "nox": "Notes", "drugs": "Summary"}


@pytest.fixture(scope="module")
def lsoas() -> geopandas.GeoDataFrame:
    if not LSOA_FILE.is_file():
        pytest.fail(f"{LSOA_FILE} is missing: the tests need the Tower Hamlets LSOA file")
    gdf = geopandas.read_file(LSOA_FILE).to_crs(27700)
    return gdf.rename(columns={"LSOA21CD": "code", "LSOA21NM": "name"})


@pytest.fixture(scope="module")
def union(lsoas):
    area = shapely.union_all(lsoas.geometry.values)
    shapely.prepare(area)
    return area


@pytest.fixture(scope="module")
def data(lsoas):
    return make_synthetic(lsoas)  # 20,000 incidents, seed 0


@pytest.fixture(scope="module")
def written(data, tmp_path_factory):
    return write_synthetic(data, tmp_path_factory.mktemp("synthetic"))


@pytest.fixture(scope="module")
def rows(data) -> pd.DataFrame:
    """Truth joined with what each export row says: BNG point and parsed timestamp."""
    parts = []
    for name, frame in (("asb", data.asb), ("nox", data.nox), ("drugs", data.drugs)):
        if name == "nox":
            x = frame["Easting"].astype(float).to_numpy()
            y = frame["Northing"].astype(float).to_numpy()
            when = pd.to_datetime(frame["Date"].astype(str) + " " + frame["Time"],
                                  format="%Y-%m-%d %H:%M", errors="coerce")
        else:
            lat, lon = (frame[c].to_numpy() for c in (("Latitude", "Longitude") if name == "asb"
                                                     else ("Lat", "Lon")))
            x, y = TO_BNG.transform(lon, lat)
            fmt = "%d/%m/%Y %H:%M" if name == "asb" else "%Y-%m-%d %H:%M:%S"
            when = pd.to_datetime(frame["Reported" if name == "asb" else "Call Date"],
                                  format=fmt, errors="coerce")
        parts.append(pd.DataFrame({"export": name, "row": np.arange(len(frame)) + 2,
                                   "ex": x, "ey": y, "when": when.to_numpy(),
                                   "ref": frame.iloc[:, 0].to_numpy()}))
    seen = pd.concat(parts, ignore_index=True)
    return data.incidents.merge(seen, on=["export", "row"], how="left", validate="1:1")


def clean(rows: pd.DataFrame) -> pd.DataFrame:
    return rows[rows["dirty_reason"] == ""]


def test_same_seed_same_output_and_other_seed_differs(lsoas):
    a = make_synthetic(lsoas, n_incidents=3000, rng=5)
    b = make_synthetic(lsoas, n_incidents=3000, rng=5)
    g = make_synthetic(lsoas, n_incidents=3000, rng=np.random.default_rng(5))
    c = make_synthetic(lsoas, n_incidents=3000, rng=6)
    for field in ("asb", "nox", "drugs", "incidents", "hotspots", "callers", "addresses"):
        pd.testing.assert_frame_equal(getattr(a, field), getattr(b, field))
        pd.testing.assert_frame_equal(getattr(a, field), getattr(g, field))
    assert a.params == b.params
    assert not a.asb.equals(c.asb)
    assert not a.incidents[["x", "y"]].equals(c.incidents[["x", "y"]])


def test_input_not_modified(lsoas):
    before = lsoas.copy(deep=True)
    make_synthetic(lsoas, n_incidents=2000, rng=1)
    assert_geodataframe_equal(lsoas, before)


def test_counts_add_up_and_truth_matches_exports(data, rows, config):
    n_rows = len(data.asb) + len(data.nox) + len(data.drugs)
    assert n_rows == len(data.incidents) == 20_000
    n_dirty = (data.incidents["dirty_reason"] != "").sum()
    assert n_dirty == round(20_000 * 0.005) == data.params["n_dirty"]
    assert (rows["reference"] == rows["ref"]).all()
    assert set(data.incidents["category"]) <= set(config.categories)
    assert (data.nox["Category"] == "Nitrous oxide canisters").all()
    assert data.nox["Canisters"].between(1, 200).all() and data.nox["Canisters"].median() < 10


def test_clean_points_inside_the_lsoas_and_dirty_outside_far(rows, union):
    ok = clean(rows)
    assert np.isfinite(ok["ex"]).all()
    assert shapely.contains_xy(union, ok["ex"].to_numpy(), ok["ey"].to_numpy()).all()
    assert np.allclose(ok["ex"], ok["x"], atol=1.0) and np.allclose(ok["ey"], ok["y"], atol=1.0)
    out = rows[rows["dirty_reason"] == "outside_study_area"]
    dist = shapely.distance(union, shapely.points(out["ex"].to_numpy(), out["ey"].to_numpy()))
    assert len(out) > 0 and (dist > 1000).all() and (dist < 10_000).all()


def test_hotspot_share_and_densest_cells_are_the_planted_places(data, rows):
    ok = clean(rows)
    share = (ok["hotspot"] != "").mean()
    assert 0.6 < share < 0.7
    counts = ok.loc[ok["hotspot"] != "", "hotspot"].value_counts()
    planted = data.hotspots.set_index("name")["n_planted"]
    assert counts.reindex(planted.index).eq(planted).all()
    cells = ok.groupby([ok["ex"] // 200, ok["ey"] // 200]).size().nlargest(10)
    cx = np.array([i for i, _ in cells.index]) * 200 + 100
    cy = np.array([j for _, j in cells.index]) * 200 + 100
    hx, hy = data.hotspots["x"].to_numpy(), data.hotspots["y"].to_numpy()
    nearest = np.hypot(cx[:, None] - hx[None, :], cy[:, None] - hy[None, :]).min(axis=1)
    assert (nearest < 250).all(), nearest


def _monthly_ratio(ok: pd.DataFrame, name: str, step: pd.Timestamp) -> tuple[float, float]:
    """Monthly rate after / before the step, and a z-score of the after-count given the total."""
    when = ok.loc[ok["hotspot"] == name, "when"]
    months = when.dt.to_period("M")
    after = (when >= step).sum()
    m_before = months[when < step].nunique()
    m_after = months[when >= step].nunique()
    ratio = (after / m_after) / ((len(when) - after) / m_before)
    p0 = m_after / (m_before + m_after)  # no change: counts split like the months
    z = (after - len(when) * p0) / np.sqrt(len(when) * p0 * (1 - p0))
    return ratio, z


def test_step_changes_show_in_monthly_rates(data, rows):
    ok = clean(rows)
    steps = data.hotspots[data.hotspots["step_date"] != ""]
    assert sorted(steps["step_factor"]) == [0.3, 2.5, 2.5, 2.5]
    for h in steps.itertuples():
        ratio, z = _monthly_ratio(ok, h.name, pd.Timestamp(h.step_date))
        if h.step_factor > 1:
            assert ratio > 1.8 and z > 5, (h.name, ratio, z)
        else:
            assert ratio < 0.5 and z < -5, (h.name, ratio, z)
    steady = data.hotspots[data.hotspots["step_date"] == ""]
    rise = pd.Timestamp(data.params["steps"]["rise"]["date"])
    for name in steady["name"]:
        ratio, _ = _monthly_ratio(ok, name, rise)
        assert 0.7 < ratio < 1.6, (name, ratio)


def test_time_patterns_hour_weekday_and_season(rows):
    ok = clean(rows)
    nox = ok[(ok["hotspot"] == "Ambergate Market") & (ok["category"] == "nox_sighting")]
    night = nox["when"] - pd.Timedelta(hours=4)  # the night of Fri = Fri 20:00 to Sat 04:00
    weekend_night = night.dt.dayofweek.isin([4, 5]) & (night.dt.hour >= 16)
    assert weekend_night.mean() > 0.5
    dealing = ok[ok["category"] == "drug_dealing"]["when"].dt.hour
    assert dealing.between(14, 22).mean() > 0.6
    month = ok["when"].dt.month
    assert month.isin([6, 7, 8]).sum() > 1.2 * month.isin([12, 1, 2]).sum()


def test_repeat_callers_have_their_planted_counts(data, rows):
    ok = clean(rows)
    assert len(data.callers) == 8
    assert ok.loc[ok["export"] == "nox", "caller"].eq("").all()
    said = pd.concat([data.asb["Caller ID"], data.drugs["Caller"]])
    said = said[said != ""]
    counts = said.value_counts()
    for c in data.callers.itertuples():
        assert 6 <= c.n_reports <= 40
        assert counts[c.caller] == c.n_reports
        when = np.sort(ok.loc[ok["caller"] == c.caller, "when"].to_numpy())
        within = np.searchsorted(when, when + np.timedelta64(182, "D")) - np.arange(when.size)
        assert within.max() == c.max_in_182_days
    assert (data.callers["max_in_182_days"] >= 3).sum() >= 3
    ordinary = ok.loc[(ok["caller"] != "") & ~ok["caller"].isin(data.callers["caller"]), "caller"]
    assert ordinary.value_counts().max() == 2
    assert ordinary.value_counts().eq(1).mean() > 0.8


def test_repeat_addresses_share_one_point(data, rows):
    ok = clean(rows)
    for a in data.addresses.itertuples():
        at = ok[ok["repeat_address"] == a.address]
        assert len(at) == a.n_reports >= 5
        assert at["export"].isin(["asb", "drugs"]).all()
        assert at[["ex", "ey"]].round(6).drop_duplicates().shape[0] == 1
    loc = pd.concat([data.asb["Location"], data.drugs["Address"]])
    assert loc[loc.str.contains(r"\d")].isin(data.addresses["address"]).all()


def test_dirty_rows_show_their_reason(data, rows, written):
    reasons = rows["dirty_reason"]
    assert set(reasons[reasons != ""]) == set(DIRTY_REASONS)
    known = {}
    for name in ("asb", "nox", "drugs"):
        known[name] = set(tomllib.loads(written[f"{name}_mapping"].read_text())["categories"])
    raw = pd.concat([data.asb["Type"], data.nox["Category"], data.drugs["Call Type"]],
                    ignore_index=True)
    frames = {"asb": data.asb, "nox": data.nox, "drugs": data.drugs}
    for r in rows[reasons != ""].itertuples():
        frame = frames[r.export]
        rec = frame.iloc[r.row - 2]
        if r.export == "nox":
            a, b = rec["Northing"], rec["Easting"]
        else:
            a, b = rec.iloc[3], rec.iloc[4]  # latitude, longitude
        if r.dirty_reason == "missing_coordinates":
            assert pd.isna(a) and pd.isna(b)
        elif r.dirty_reason == "zero_coordinates":
            assert a == 0 and b == 0
        elif r.dirty_reason == "swapped_latlon":
            assert abs(a) < 1 and 51 < b < 52
        elif r.dirty_reason == "grid_in_latlon":
            assert 170_000 < a < 190_000 and 530_000 < b < 545_000
        elif r.dirty_reason in ("unparseable_date", "future_date"):
            if r.dirty_reason == "unparseable_date":
                assert pd.isna(r.when)
            else:
                assert r.when > pd.Timestamp(data.params["end"]) + pd.Timedelta(days=365 * 5)
                assert 8 <= r.when.year - int(r.date[:4]) <= 13
        elif r.dirty_reason == "unknown_category":
            assert rec.iloc[2] not in known[r.export]
        elif r.dirty_reason == "duplicate_reference":
            first = frame.index[frame.iloc[:, 0] == rec.iloc[0]]
            assert len(first) == 2 and first[0] < r.row - 2
            pd.testing.assert_series_equal(frame.iloc[first[0]], rec, check_names=False)
    ok = clean(rows)
    assert ok["when"].notna().all()
    assert ok["when"].between(pd.Timestamp(data.params["start"]),
                              pd.Timestamp(data.params["end"]) + pd.Timedelta(days=1)).all()
    assert not ok["reference"].duplicated().any()
    ok_raw = raw[(data.incidents["dirty_reason"] != "unknown_category").to_numpy()]
    assert ok_raw.isin(set().union(*known.values())).all()
    assert set(rows.loc[rows["export"] == "nox", "dirty_reason"]) <= (
        set(DIRTY_REASONS) - {"swapped_latlon", "grid_in_latlon", "unknown_category"}) | {""}


def test_write_synthetic_files(data, written, config):
    names = {p.name for p in written.values()}
    assert names == {"synthetic-asb.csv", "synthetic-nox.xlsx", "synthetic-drugs.csv",
                     "synthetic-asb.mapping.toml", "synthetic-nox.mapping.toml",
                     "synthetic-drugs.mapping.toml", "synthetic-truth.json",
                     "synthetic-truth-incidents.csv", "README.txt"}
    assert all(p.is_file() for p in written.values())
    asb = pd.read_csv(written["asb"], dtype=str, keep_default_na=False)
    drugs = pd.read_csv(written["drugs"], dtype=str, keep_default_na=False)
    book = openpyxl.load_workbook(written["nox"], read_only=True)
    assert book.sheetnames == ["Sightings"]
    header = next(book["Sightings"].iter_rows(max_row=1, values_only=True))
    book.close()
    assert list(header) == list(data.nox.columns)
    nox = pd.read_excel(written["nox"], sheet_name="Sightings", dtype=object)
    assert (len(asb), len(nox), len(drugs)) == (len(data.asb), len(data.nox), len(data.drugs))
    for name, frame in (("asb", asb), ("nox", nox), ("drugs", drugs)):
        assert frame[DESCRIPTION[name]].str.startswith("SYNTHETIC").all()
        mapping = tomllib.loads(written[f"{name}_mapping"].read_text())
        assert mapping["source"] == f"synthetic-{name}"
        assert set(mapping["columns"].values()) <= set(frame.columns)
        assert set(mapping["categories"].values()) <= set(config.categories)
    assert asb["Reported"].iloc[1][2] == "/" and asb["Latitude"].iloc[1].count(".") <= 1
    assert tomllib.loads(written["nox_mapping"].read_text())["sheet"] == "Sightings"
    assert asb["Case Ref"].str.match(r"ASB-\d{4}-\d{6}$").all()
    truth = json.loads(written["truth"].read_text())
    assert truth["seed"] == 0 and truth["params"]["n_incidents"] == 20_000
    assert len(truth["hotspots"]) == 15 and len(truth["repeat_callers"]) == 8
    assert {"name", "street", "x", "y", "sd_m", "n_planted", "categories", "peak_window",
            "step_date", "step_factor"} <= set(truth["hotspots"][0])
    assert sum(truth["dirty_reasons"].values()) == 100
    per_row = pd.read_csv(written["truth_incidents"], dtype=str, keep_default_na=False)
    assert len(per_row) == 20_000
    assert list(per_row.columns[:7]) == ["export", "reference", "row", "hotspot",
                                         "repeat_address", "caller", "dirty_reason"]
    readme = written["readme"].read_text()
    assert "SYNTHETIC" in readme and "seed 0" in readme


def test_wrong_crs_raises(lsoas):
    with pytest.raises(CRSError, match=r"EPSG:4326, not EPSG:27700.*lsoas\.to_crs\(27700\)"):
        make_synthetic(lsoas.to_crs(4326))


@pytest.mark.parametrize(("options", "message"), [
    ({"n_incidents": 100}, "n_incidents must be an integer >= 2000"),
    ({"dirty_fraction": 0.5}, "dirty_fraction must be between 0 and 0.05"),
    ({"start": "2024-01-01", "end": "2024-02-01"}, "at least 180 days after start"),
    ({"start": "1 Sept 2022"}, "start and end must be dates 'YYYY-MM-DD'"),
])
def test_bad_options_raise(lsoas, options, message):
    with pytest.raises(ValueError, match=message):
        make_synthetic(lsoas, **options)


def test_missing_columns_raise(lsoas):
    with pytest.raises(ValueError, match=r"columns 'code' and 'name' \(missing: \['code'\]\)"):
        make_synthetic(lsoas.drop(columns="code"))


def test_100k_incidents(lsoas, union):
    big = make_synthetic(lsoas, n_incidents=100_000, rng=3)
    assert len(big.asb) + len(big.nox) + len(big.drugs) == 100_000
    reasons = big.incidents["dirty_reason"]
    assert (reasons != "").sum() == 500 and set(reasons[reasons != ""]) == set(DIRTY_REASONS)
    ok = big.incidents[reasons == ""]
    assert shapely.contains_xy(union, ok["x"].to_numpy(), ok["y"].to_numpy()).all()
    assert big.asb["Case Ref"].is_unique is False  # the planted duplicates
    assert big.asb["Case Ref"][~big.asb["Case Ref"].duplicated()].size > 0.99 * len(big.asb)


def test_no_dirty_rows_when_fraction_is_zero(lsoas):
    tidy = make_synthetic(lsoas, n_incidents=2000, dirty_fraction=0.0, rng=2)
    assert (tidy.incidents["dirty_reason"] == "").all()
    assert tidy.asb["Case Ref"].is_unique and tidy.drugs["Call Ref"].is_unique


@pytest.mark.parametrize("borough", ["City of London", "Camden"])
def test_synthetic_data_anywhere_from_the_area_s_own_geometry(borough):
    """Another area's LSOAs: hotspots, streets and callers are placed in its own
    geometry (no fixed coordinates), apart, seeded and inside."""
    london = geopandas.read_file(SHARED / "london_lsoa21.gpkg", layer="lsoa21")
    lsoas = london.loc[london["lad22nm"] == borough].rename(
        columns={"lsoa21cd": "code", "lsoa21nm": "name"})
    area = shapely.union_all(lsoas.geometry.values)
    one = make_synthetic(lsoas, n_incidents=4000, rng=3)
    assert one.hotspots.equals(make_synthetic(lsoas, n_incidents=4000, rng=3).hotspots)
    hx, hy = one.hotspots["x"].to_numpy(), one.hotspots["y"].to_numpy()
    assert shapely.contains_xy(area, hx, hy).all()
    gap = np.hypot(hx[:, None] - hx[None, :], hy[:, None] - hy[None, :])
    assert gap[~np.eye(len(hx), dtype=bool)].min() > 150  # separate places
    truth = one.incidents.loc[one.incidents["dirty_reason"] == ""]
    assert shapely.contains_xy(area, truth["x"].to_numpy(), truth["y"].to_numpy()).all()
    homes = one.callers[["home_x", "home_y"]].to_numpy()
    assert shapely.contains_xy(area, homes[:, 0], homes[:, 1]).all()
    assert one.params["synthetic"] and one.asb["Details"].str.startswith("SYNTHETIC").all()
