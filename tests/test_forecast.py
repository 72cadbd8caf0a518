"""The forecast search (method x cell size, rolling origin), its choice and fallback, and
the forecast layer: the map shown is the map scored."""

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import shapely

from hotspots import evaluate as ev
from hotspots import forecast as fc
from hotspots.backtest import backtest_result
from hotspots.grid import cell_index


def frame(points):
    return pd.DataFrame(points, columns=["period", "x", "y"])


STRIP = shapely.box(0, 0, 500, 100)  # five 100 m cells in a row


def scores(points, label, *, sizes=(100.0,), last="2024-03"):
    b = fc.bin_incidents(frame(points), STRIP, cell_sizes=sizes, last_month=last)
    return fc._Scorer(b, sizes[-1]).scores(fc.METHODS[label], [b.monthly.shape[0]])[0]


def test_count_methods_by_hand_and_no_peeking():
    pts = [("2024-03", 50, 50), ("2024-03", 150, 50), ("2024-02", 450, 50),
           ("2024-01", 450, 50), ("2024-04", 250, 50)]  # 2024-04 is after the last month
    assert scores(pts, "naive").tolist() == [1, 1, 0, 0, 0]
    assert scores(pts, "counts_all").tolist() == [1, 1, 0, 0, 2]
    assert scores(pts, "counts_3m").tolist() == [1, 1, 0, 0, 2]
    # half-life 3 months: ages 0, 1 and 2 weigh 1, 2^(-1/3), 2^(-2/3)
    assert scores(pts, "decay_3m") == pytest.approx([1, 1, 0, 0, 2 ** (-1 / 3) + 2 ** (-2 / 3)])


def test_prospective_weights_by_hand():
    one = scores([("2024-03", 50, 50)], "prospective")
    assert one == pytest.approx([1, 1 / 2, 1 / 3, 1 / 4, 1 / 5])
    two = scores([("2024-02", 50, 50), ("2024-01", 50, 50)], "prospective")
    # age 1 weighs 1/2; age 2 is outside the 2-month band
    assert two == pytest.approx(np.array([1, 1 / 2, 1 / 3, 1 / 4, 1 / 5]) / 2)


def test_coarse_cells_are_sums_of_fine_cells():
    pts = [("2024-03", 20, 20), ("2024-03", 60, 20), ("2024-03", 160, 80), ("2024-02", 480, 90)]
    b = fc.bin_incidents(frame(pts), STRIP, cell_sizes=(50.0, 100.0, 250.0))
    assert fc._Scorer(b, 100.0).counts([1]).tolist() == [[2, 1, 0, 0, 0]]
    assert fc._Scorer(b, 250.0).counts([1]).tolist() == [[3, 0]]
    assert fc._Scorer(b, 250.0).counts([0]).tolist() == [[0, 1]]


def test_tie_kernel_breaks_ties_only():
    grid = shapely.box(0, 0, 1000, 1000)
    pts = [("2024-03", 125, 125)] * 3 + [("2024-03", 525, 525), ("2024-03", 575, 525),
                                         ("2024-03", 875, 875)]
    b = fc.bin_incidents(frame(pts), grid, cell_sizes=(50.0,))
    sc = fc._Scorer(b, 50.0)
    plain = sc.scores(fc.METHODS["decay_6m"], [1])[0]
    tied = sc.scores(fc.METHODS["decay_6m_kernel"], [1])[0]
    # every strict order of the decayed counts is kept
    i, j = np.nonzero(plain[:, None] > plain[None, :])
    assert (tied[i] > tied[j]).all()
    # among the single-incident cells, the one with a neighbouring incident comes first
    ones = np.flatnonzero(plain == 1)
    lonely = cell_index(b.fine, [875], [875], cell_size_m=50.0)[0]
    pair = np.setdiff1d(ones, [lonely])
    assert len(ones) == 3 and (tied[lonely] < tied[pair]).all()


def monthly_hotspots(months=8, seed=0):
    """Synthetic months: most incidents at a few fixed points, the rest uniform."""
    rng = np.random.default_rng(seed)
    hot = rng.uniform(100, 1900, size=(6, 2))
    rows = []
    for m in range(months):
        period = f"2024-{m + 1:02d}"
        k = rng.integers(0, 6, size=60)
        rows += [(period, *hot[i]) for i in k]
        rows += [(period, *p) for p in rng.uniform(0, 2000, size=(30, 2))]
    return frame(rows), shapely.box(0, 0, 2000, 2000)


def test_search_tests_every_method_and_cell_size_and_chooses_the_best():
    inc, area = monthly_hotspots()
    before = inc.copy()
    result, table = backtest_result(inc, area)
    pd.testing.assert_frame_equal(inc, before)
    assert set(table["method"]) == set(fc.METHODS)
    assert set(table["cell_size_m"]) == set(fc.CELL_SIZES_M)
    # rolling origin: months with 3 months of history before them, said by name
    assert result["test_months"] == ["2024-04", "2024-05", "2024-06", "2024-07", "2024-08"]
    assert result["incidents_tested"] == 5 * 90 and result["incidents"] == 8 * 90
    assert result["cell_sizes_m"] == list(fc.CELL_SIZES_M) and result["enough"]
    summary = fc.summarise(table)
    w = result["winner"]
    assert (w["method"], w["cell_size_m"]) == tuple(summary.iloc[0][["method", "cell_size_m"]])
    assert w["pai_5pct"] == pytest.approx(summary["pai"].max()) and w["test_months"] == 5
    assert not w["fallback"] and w["pai_5pct"] > 3
    assert (table["pei"].dropna() <= 1 + 1e-9).all()
    # chosen only on earlier months: one pick per test month after the first
    picks = fc.chosen_before_scored(table)
    assert picks["period"].tolist() == result["test_months"][1:]
    assert result["chosen_before_scored"]["months"] == 4


def test_too_little_history_falls_back_and_says_so():
    inc, area = monthly_hotspots(months=3)
    result, table = backtest_result(inc, area)
    assert result["test_months"] == [] and not result["enough"]
    w = result["winner"]
    assert w["fallback"] and (w["method"], w["cell_size_m"]) == ("counts_12m", 50.0)
    assert "too little history to choose a forecast: 0 test month(s), fewer than the 3" in \
        w["note"]
    # the fallback is still drawn, from the months there are
    b = fc.bin_incidents(inc, area, cell_sizes=(50.0,))
    layer = fc.forecast_layer(b, w)
    assert len(layer) > 0 and (layer["method"] == "counts_12m").all()
    # four months: one test month, still fewer than the minimum
    inc4, _ = monthly_hotspots(months=4)
    r4, _ = backtest_result(inc4, area)
    assert r4["test_months"] == ["2024-04"] and r4["winner"]["fallback"]
    assert r4["winner"]["pai_5pct"] > 1  # the fallback's own figure on that month


def test_forecast_layer_is_what_was_scored():
    inc, area = monthly_hotspots()
    result, table = backtest_result(inc, area)
    w = result["winner"]
    # the layer drawn for 2024-08 from the months before it, scored on 2024-08, scores
    # what the search said for that method, cell size and month (up to the whole-cell edge)
    upto = inc.loc[inc["period"] <= "2024-07"]
    b = fc.bin_incidents(upto, area, cell_sizes=(50.0, w["cell_size_m"]))
    layer = fc.forecast_layer(b, w)
    assert list(layer.columns) == [*fc.LAYER_COLUMNS, "geometry"]
    assert layer["rank"].tolist() == list(range(1, len(layer) + 1))
    assert (np.diff(layer["score"]) <= 0).all()
    covered = layer.area.sum() / area.area
    assert 0.05 <= covered < 0.05 + (w["cell_size_m"] ** 2) / area.area
    test = inc.loc[inc["period"] == "2024-08"]
    union = shapely.union_all(layer.geometry.values)
    hit = shapely.intersects_xy(union, test["x"], test["y"]).mean()
    scored = table.loc[(table["method"] == w["method"]) & (table["cell_size_m"] == w["cell_size_m"])
                       & (table["period"] == "2024-08") & np.isclose(table["coverage"], 0.05)]
    assert hit / covered == pytest.approx(float(scored["pai"].iloc[0]), rel=0.1)
    assert isinstance(layer, gpd.GeoDataFrame) and layer.crs.to_epsg() == 27700


def test_cell_order_does_not_change_a_naive_map_score():
    # the defect: the naive map's many tied cells were taken south-west first. Mirror the
    # data east-west: the grid's cell order flips, the score must not change
    inc, area = monthly_hotspots()
    mirrored = inc.assign(x=2000 - inc["x"])
    a = fc.summarise(fc.search(fc.bin_incidents(inc, area, cell_sizes=(100.0,)),
                               methods={"naive": fc.METHODS["naive"]}))
    b = fc.summarise(fc.search(fc.bin_incidents(mirrored, area, cell_sizes=(100.0,)),
                               methods={"naive": fc.METHODS["naive"]}))
    assert a["pai"].iloc[0] == pytest.approx(b["pai"].iloc[0], rel=1e-9)


def test_pai_of_captured_matches_evaluate():
    rng = np.random.default_rng(2)
    s, c, a = rng.integers(0, 4, 50).astype(float), rng.poisson(1, 50).astype(float), \
        rng.uniform(0.5, 1, 50)
    n = ev.captured(s, c, a, np.array([0.05]))[0]
    assert n / c.sum() / 0.05 == pytest.approx(ev.pai(s, c, a, coverage=0.05))


def test_the_map_names_the_forecast_and_the_layers_that_are_not_one():
    """The legend says the method, the cell size, its mean PAI and hit rate on which test
    months, or that there was no month to test it on (was "PAI nan, hit rate nan%"), and
    the fallback; Gi* cells are "where it is concentrated now" with their own next-month
    figure, never a forecast."""
    from hotspots.config import load_config
    from hotspots.gistar import gistar, grid_neighbours
    from hotspots.grid import grid_counts, make_grid
    from hotspots.maps import forecast_legend, hotspot_map, map_html

    box = shapely.box(533000, 180000, 535000, 182000)  # in Tower Hamlets, EPSG:27700
    inc, _ = monthly_hotspots(months=3)
    inc = inc.assign(x=inc["x"] + 533000, y=inc["y"] + 180000)
    result, _ = backtest_result(inc, box)  # 0 test months: the fallback, untested
    layer = fc.forecast_layer(fc.bin_incidents(inc, box, cell_sizes=(50.0,)),
                              result["winner"])
    w = result["winner"]
    info = {"month": "2024-04", "description": fc.DESCRIPTIONS[w["method"]],
            "months_tested": result["test_months"], **w}
    legend = forecast_legend(info)
    assert legend == ("Forecast for 2024-04: top 5% of the area, counts over the last 12 "
                      "months, 50 m cells; no month to test it on yet (fallback: too little "
                      "history to choose)")
    tested = {**info, "fallback": False, "pai_5pct": 9.876, "hit_rate_5pct": 0.494,
              "test_months": 2, "months_tested": ["2024-02", "2024-03"]}
    assert forecast_legend(tested).endswith(
        "50 m cells; PAI 9.88, hit rate 49% on 2 test months (2024-02 to 2024-03)")
    grid = make_grid(box, cell_size_m=100)
    cells = grid_counts(grid, inc["x"].to_numpy(), inc["y"].to_numpy(), cell_size_m=100)
    cells = cells.join(gistar(cells["n"].to_numpy(float), grid_neighbours(grid)))
    assert (cells["gi_class"] > 0).any()
    meta = {"period": "2024-03", "incidents": len(inc), "categories": [], "cell_size_m": 100,
            "gi_neighbours": "queen", "fdr": True, "forecast": info,
            "concentrated_now": {"gistar": {"pai": 1.65, "hit_rate": 0.06, "coverage": 0.036,
                                            "months": 8}}}
    page = map_html(hotspot_map(area=gpd.GeoDataFrame(geometry=[box], crs=27700), meta=meta,
                                config=load_config(), cells=cells, forecast=layer))
    assert legend in page and "PAI nan" not in page and "nan%" not in page
    assert ("Where it is concentrated now (not a forecast): Getis-Ord Gi* hot and cold spots "
            "(queen neighbours, 100 m cells, FDR-corrected); next month it held 6% of "
            "incidents in 3.60% of the area: PAI 1.65 over 8 months") in page
    assert page.count("Forecast for ") == 1


# ------------------------------------------------------------------ real police.uk months


def city_incidents(types=None):
    """The City of London Police months inside the City (its 6 LSOAs): period, x, y."""
    import pyproj

    from hotspots.ingest import read_export

    from .conftest import SHARED

    lsoas = gpd.read_file(SHARED / "city_of_london_lsoa21.geojson").to_crs(27700)
    city = shapely.union_all(lsoas.geometry.values)
    rows = pd.concat([read_export(f) for f in
                      sorted((SHARED / "policeuk").glob("*-city-of-london-street.csv"))],
                     ignore_index=True)
    if types:
        rows = rows.loc[rows["Crime type"].isin(types)]
    lon = pd.to_numeric(rows["Longitude"], errors="coerce").to_numpy()
    lat = pd.to_numeric(rows["Latitude"], errors="coerce").to_numpy()
    x, y = pyproj.Transformer.from_crs(4326, 27700, always_xy=True).transform(lon, lat)
    keep = np.isfinite(x) & np.isfinite(y)
    keep[keep] = shapely.intersects_xy(city, x[keep], y[keep])
    return pd.DataFrame({"period": rows["Month"].to_numpy()[keep], "x": x[keep],
                         "y": y[keep]}), city


@pytest.mark.parametrize("types", [None, ["Anti-social behaviour", "Drugs"]],
                         ids=["all", "asb-drugs"])
def test_the_city_search_picks_small_cells_and_beats_every_fixed_count_map(types):
    inc, city = city_incidents(types)
    result, table = backtest_result(inc, city)
    assert len(result["test_months"]) == 12 and result["test_months"][-1] == "2024-08"
    s = fc.summarise(table).set_index(["method", "cell_size_m"])["pai"]
    # the defect: the cell size was fixed at 100 m; 50 m nearly doubles PAI in the City
    assert s[("counts_12m", 50.0)] > 1.5 * s[("counts_12m", 100.0)]
    w = result["winner"]
    assert w["cell_size_m"] == 50.0
    counts = s[[m.startswith("counts") for m in s.index.get_level_values(0)]]
    assert w["pai_5pct"] >= counts.max() - 1e-9 and w["pai_5pct"] > 1.5 * s[("naive", 100.0)]
    # chosen only on earlier months, it stays close to the in-sample winner
    assert result["chosen_before_scored"]["pai_5pct"] > 0.95 * w["pai_5pct"]


def test_grids_are_kept_and_read_back_to_the_bit(tmp_path, caplog):
    # forecast_for's grids: made once, kept in the geodata cache's derived/ folder by the
    # area, and read back by the next process as the same cells (a 50 m grid of London
    # takes 4 s to make); an unreadable file is made again
    from hotspots.grid import make_grid
    from hotspots.jobs import _kept_grids

    area = shapely.Point(250, 250).buffer(240)
    made = _kept_grids(area, (50.0, 100.0), cache=tmp_path)
    kept = sorted(p.name for p in (tmp_path / "derived").iterdir())
    assert len(kept) == 2 and all(n.startswith("grid-") for n in kept)
    other = _kept_grids(shapely.box(0, 0, 300, 300), (50.0,), cache=tmp_path)
    assert len(list((tmp_path / "derived").iterdir())) == 3  # another area, another file
    assert len(other[50.0]) == 36
    (tmp_path / "derived" / kept[1]).write_bytes(b"not parquet")
    with caplog.at_level("WARNING"):
        again = _kept_grids(area, (50.0, 100.0), cache=tmp_path)
    assert "unreadable" in caplog.text
    for s in (50.0, 100.0):
        fresh = make_grid(area, cell_size_m=s)
        for g in (made[s], again[s]):
            assert g.drop(columns="geometry").equals(fresh.drop(columns="geometry"))
            assert (g.geometry.to_wkb() == fresh.geometry.to_wkb()).all()
            assert g.crs == fresh.crs and list(g.columns) == list(fresh.columns)
    # the binned data are the same with grids read back as with grids made
    inc = frame([("2024-03", 120, 130), ("2024-02", 300, 260), ("2024-03", 20, 250)])
    a = fc.bin_incidents(inc, area, cell_sizes=(50.0, 100.0), grids=again)
    b = fc.bin_incidents(inc, area, cell_sizes=(50.0, 100.0))
    assert np.array_equal(a.monthly, b.monthly) and a.first == b.first
    assert all(np.array_equal(a.parent[s], b.parent[s]) for s in (50.0, 100.0))
    with pytest.raises(ValueError, match="not the cell_sizes"):
        fc.bin_incidents(inc, area, cell_sizes=(50.0,), grids=again)


def test_grids_are_not_kept_without_a_geodata_cache(tmp_path):
    # a cache folder that does not exist (forecast_for's default, geodata/cache under the
    # working folder, when run from elsewhere) is not created to keep a grid in
    from hotspots.grid import make_grid
    from hotspots.jobs import _kept_grids

    area = shapely.box(0, 0, 300, 300)
    got = _kept_grids(area, (50.0,), cache=tmp_path / "absent")
    assert not (tmp_path / "absent").exists()
    assert got[50.0].drop(columns="geometry").equals(
        make_grid(area, cell_size_m=50.0).drop(columns="geometry"))


def test_binning_leaves_out_the_months_after_the_last():
    # forecast_for hands bin_incidents the whole history it read (a store holding later
    # months): months after last_month count as if they were never given
    area = shapely.box(0, 0, 300, 300)
    inc = frame([("2024-01", 120, 130), ("2024-02", 290, 260), ("2024-03", 20, 250),
                 ("2024-04", 10, 10)])
    a = fc.bin_incidents(inc, area, cell_sizes=(50.0,), last_month="2024-03")
    b = fc.bin_incidents(inc.loc[inc["period"] <= "2024-03"], area, cell_sizes=(50.0,),
                         last_month="2024-03")
    assert a.first == b.first and np.array_equal(a.monthly, b.monthly)
    assert a.monthly.shape[0] == 3 and a.monthly.sum() == 3
    later = fc.bin_incidents(inc.loc[inc["period"] == "2024-04"], area, cell_sizes=(50.0,),
                             last_month="2024-03")
    assert later.monthly.sum() == 0
