import datetime as dt

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import shapely

from hotspots.summary import (
    Period,
    area_summary,
    in_period,
    in_periods,
    month_period,
    parse_period,
    repeated_codes,
)


def areas():
    return gpd.GeoDataFrame(
        {"code": ["A", "B", "C"], "name": ["Alpha", "Beta", "Gamma"],
         "area_km2": [1.0, 0.5, 2.0]},
        geometry=[shapely.box(0, 0, 1000, 1000), shapely.box(1000, 0, 1500, 1000),
                  shapely.box(0, 1000, 2000, 2000)], crs=27700)


def incidents(rows):
    base = {"source": "lbth-asb", "category": "asb_nuisance", "hour": 20, "x": 1.0, "y": 1.0,
            "location": "", "caller_key": "", "description": "", "quantity": 1,
            "ward_code": "", "source_lsoa": "", "file": "f", "row": 2}
    out = pd.DataFrame([{**base, "ref": f"r{i}", **r} for i, r in enumerate(rows)])
    out["period"] = out["date"].str[:7]
    out["location_key"] = out.get("location_key", pd.Series(dtype=object)).fillna(
        pd.Series([f"k{i}" for i in range(len(out))]))
    return out


def test_periods():
    aug = month_period("2024-08")
    assert (aug.start, aug.end, aug.label, aug.is_month) == (
        dt.date(2024, 8, 1), dt.date(2024, 8, 31), "2024-08", True)
    assert aug.previous().label == "2024-07" and month_period("2024-03").previous().days == 29
    fortnight = parse_period("2024-08-12", "2024-08-25")
    assert fortnight.previous() == Period(dt.date(2024, 7, 29), dt.date(2024, 8, 11))
    with pytest.raises(ValueError, match="the end is before the start"):
        parse_period("2024-08-25", "2024-08-12")
    with pytest.raises(ValueError, match=r"month '2024/08' is not YYYY-MM"):
        month_period("2024/08")


def test_month_only_rows_need_their_whole_month_inside():
    inc = incidents([{"date": "2024-08-01", "source": "policeuk", "lsoa_code": "A"},
                     {"date": "2024-08-05", "lsoa_code": "A"}])
    assert in_period(inc, month_period("2024-08")).tolist() == [True, True]
    assert in_period(inc, parse_period("2024-08-01", "2024-08-14")).tolist() == [False, True]


def test_periods_share_one_reading_of_the_dates():
    """in_periods answers for several periods at once (each distinct date read once) as
    in_period does for each: a row without a date is in none, police.uk rows need their
    whole month, dates with a time of day or a time zone count by their day there."""
    rows = [{"date": d, "source": s, "lsoa_code": "A"} for d, s in [
        ("2024-08-01", "policeuk"), ("2024-08-05", "asb"), ("2024-07-31", "asb"),
        ("2024-07-01", "policeuk"), (None, "asb"), ("2024-08-05", "asb")]]
    inc = incidents(rows)
    periods = [month_period("2024-08"), month_period("2024-07"),
               parse_period("2024-07-15", "2024-08-14")]
    want = [[True, True, False, False, False, True], [False, False, True, True, False, False],
            [False, True, True, False, False, True]]
    assert [m.tolist() for m in in_periods(inc, periods)] == want
    assert [in_period(inc, p).tolist() for p in periods] == want
    timed = inc.assign(date=pd.to_datetime(inc["date"]) + pd.Timedelta(hours=23))
    zoned = timed.assign(date=timed["date"].dt.tz_localize("Europe/London"))
    for frame in (timed, zoned):
        assert [m.tolist() for m in in_periods(frame, periods)] == want


def test_counts_density_repeats_change_and_rank(config):
    rows = (
        [{"date": "2024-08-03", "lsoa_code": "A", "location_key": "hot"}] * 3
        + [{"date": "2024-08-04", "lsoa_code": "A", "category": "drug_dealing"}]
        + [{"date": "2024-08-09", "lsoa_code": "B"}] * 2
        + [{"date": "2024-07-09", "lsoa_code": "B"}] * 4
        + [{"date": "2024-07-10", "lsoa_code": "C"}]
        + [{"date": "2024-06-10", "lsoa_code": "C"}]  # outside both periods
    )
    table, meta = area_summary(incidents(rows), areas(), level="lsoa",
                               period=month_period("2024-08"), config=config)
    t = table.set_index("code")
    assert t.loc["A", ["n", "n_asb_nuisance", "n_drug_dealing", "repeat_locations",
                       "n_at_repeat", "n_prev"]].tolist() == [4, 3, 1, 1, 3, 0]
    assert t.loc["A", "harm"] == pytest.approx(3 * 1.0 + 6.0)
    assert t.loc["A", "repeat_share"] == pytest.approx(0.75)
    assert t.loc["B", "density_per_km2"] == pytest.approx(4.0)
    assert (t.loc["B", "change"], t.loc["B", "change_pct"]) == (-2, -50.0)
    assert np.isnan(t.loc["A", "change_pct"])
    assert t.loc["C", ["n", "n_prev", "change"]].tolist() == [0, 1, -1]
    assert table["code"].tolist() == ["A", "B", "C"]  # density 4.0 ties: A before B by code
    assert table["rank"].tolist() == [1, 2, 3]
    assert meta["incidents"] == 6 and meta["incidents_previous"] == 5
    by_harm, _ = area_summary(incidents(rows), areas(), level="lsoa",
                              period=month_period("2024-08"), config=config, rank_by="harm")
    assert by_harm["code"].tolist()[0] == "A"


def test_repeated_codes_are_those_of_values_on_two_or_more_rows():
    """As pandas.factorize keeping repeated values: a missing value is at none, and values
    with equal hashes (-1 and -2 in CPython) are told apart."""
    values = np.array(["a", "b", "a", None, None, np.nan, -1, -2, "c", "b", "a"], dtype=object)
    codes, repeated = repeated_codes(values)
    assert repeated.tolist() == ["a", "b"]
    assert codes.tolist() == [0, 1, 0, -1, -1, -1, -1, -1, -1, 1, 0]
    codes, repeated = repeated_codes(np.array([], dtype=object))
    assert codes.tolist() == [] and repeated.tolist() == []


def test_bad_options_are_named(config):
    inc = incidents([{"date": "2024-08-03", "lsoa_code": "A"}])
    with pytest.raises(ValueError, match=r"rank_by = 'size' is not a measure; use one of"):
        area_summary(inc, areas(), level="lsoa", period=month_period("2024-08"), config=config,
                     rank_by="size")
    with pytest.raises(ValueError, match=r"level = 'msoa': the incidents have no 'msoa_code' "
                       r"column; add it with "):
        area_summary(inc, areas(), level="msoa", period=month_period("2024-08"), config=config)


def test_area_counts_add_up_to_accepted_incidents_on_real_data(layers, config):
    from hotspots import geography
    from hotspots.ingest import read_export, to_incidents

    from .conftest import SHARED
    area = geography.study_area(layers, config)
    frames = []
    for month in ("2024-07", "2024-08"):
        path = SHARED / "policeuk" / f"{month}-metropolitan-street_tower-hamlets_burglary-only.csv"
        frames.append(to_incidents(read_export(path), file=path.name, config=config,
                                   layers=layers, area=area).incidents)
    inc = pd.concat(frames, ignore_index=True)
    for level in ("lsoa", "ward"):
        table, meta = area_summary(inc, layers[level], level=level,
                                   period=month_period("2024-08"), config=config)
        assert table["n"].sum() == (inc["period"] == "2024-08").sum() == meta["incidents"]
        assert table["n_prev"].sum() == (inc["period"] == "2024-07").sum()
        assert len(table) == len(layers[level])


def test_rates_per_1000_residents_are_n_a_without_residents(config):
    inc = incidents([{"date": "2024-08-03", "lsoa_code": "A"},
                     {"date": "2024-08-04", "lsoa_code": "A"},
                     {"date": "2024-08-05", "lsoa_code": "B"}])
    table, _ = area_summary(inc, areas(), level="lsoa", period=month_period("2024-08"),
                            config=config, rank_by="per_1000_residents",
                            residents=pd.Series({"A": 500.0, "B": 0.0}))
    rate = table.set_index("code")["per_1000_residents"]
    assert rate["A"] == pytest.approx(4.0)  # 2 incidents / 500 residents x 1000
    assert np.isnan(rate["B"])  # no residents: n/a, not infinity
    assert table["code"].iloc[-2:].tolist() == ["B", "C"]  # n/a (0 or none) ranks last
    with pytest.raises(ValueError, match="needs residents: configure"):
        area_summary(inc, areas(), level="lsoa", period=month_period("2024-08"),
                     config=config, rank_by="per_1000_residents")


def test_population_exact_for_lsoas_and_by_area_for_wards(config, layers, cache):
    from hotspots.geography import read_population

    lsoa, how = read_population(config, layers, "lsoa", cache=cache)
    assert how == "exact" and len(lsoa) == len(layers["lsoa"]) and lsoa.sum() > 300_000
    ward, how = read_population(config, layers, "ward", cache=cache)
    assert how == "by area" and set(ward.index) == set(layers["ward"]["code"])
    # shared by area: all but slivers of LSOAs beyond the ward boundaries (under 0.1%)
    assert ward.sum() == pytest.approx(lsoa.sum(), rel=1e-3)
