"""The period's ranking (hotspots.ranking.rank_period, what the pack and the app's Tasking
page show): a set of categories ranked from the incidents a ranking of every category
read (the app's in-memory path) gives the very tables the store's rows give (the pack's
path)."""

from __future__ import annotations

import pandas as pd
import pytest

from hotspots import store
from hotspots.config import load_config
from hotspots.jobs import BACKTEST_COLUMNS
from hotspots.ranking import WINDOW_COLUMNS, rank_period
from hotspots.summary import in_period, month_period

from .conftest import copy_demo

PERIOD = month_period("2024-08")


@pytest.fixture(scope="module")
def demo_store(tmp_path_factory, demo_build) -> str:
    """A demo store: the police.uk rows and 6,000 synthetic council incidents."""
    root = copy_demo(demo_build, tmp_path_factory.mktemp("ranking"))  # the module's own copy
    return str(root / "d" / "hotspots.sqlite")


@pytest.mark.parametrize("categories, units", [
    (["nox_sighting"], "places"),
    (["asb_nuisance", "drug_dealing"], "places"),
    (["asb_nuisance", "drug_dealing", "drug_use"], "cells"),
    (["drug_use"], "lsoa"),
])
def test_categories_ranked_in_memory_as_from_the_store(demo_store, cache, layers, categories,
                                                       units):
    cfg = load_config()
    common = {"config": cfg, "store_file": demo_store, "cache": cache, "layers": layers,
              "categories": categories, "units": units}
    every = rank_period(config=cfg, store_file=demo_store, cache=cache, layers=layers,
                        period=PERIOD, cell_size_m=150.0)  # another grid: the rows count
    read = rank_period(period=PERIOD, **common)
    kept = rank_period(within=every, **common)
    assert 0 < len(kept.rk.inc) < len(every.rk.inc)
    assert set(kept.rk.inc["category"]) == set(categories)
    assert kept.period == read.period and kept.categories == read.categories
    assert kept.rk.grid == read.rk.grid and kept.rk.n_tested == read.rk.n_tested
    for name in ("inc", "cur", "places", "trends", "ranked"):
        pd.testing.assert_frame_equal(getattr(kept.rk, name), getattr(read.rk, name),
                                      check_exact=True, obj=name)
    assert len(read.ranked) and "patrol_windows" in read.ranked
    pd.testing.assert_frame_equal(kept.decisions, read.decisions)
    assert kept.meetings == read.meetings


def test_the_period_has_every_column_and_the_window_the_columns_read(demo_store, cache,
                                                                     layers):
    """The period's rows are the store's full read of it, in key order; the months around
    it have WINDOW_COLUMNS (and the place of each row), the same rows as the full read."""
    cfg = load_config()
    got = rank_period(config=cfg, store_file=demo_store, cache=cache, layers=layers,
                      period=PERIOD, categories=["asb_nuisance", "drug_dealing"]).rk
    with store.connection(demo_store) as conn:
        full = store.read_incidents(conn, start="2023-08-01", end=PERIOD.end.isoformat(),
                                    categories=["asb_nuisance", "drug_dealing"])
    cur = full.loc[in_period(full, PERIOD)].reset_index(drop=True)
    pd.testing.assert_frame_equal(got.cur, cur, check_exact=True)
    assert list(got.inc.columns) == [*WINDOW_COLUMNS, "unit"]
    key = ["source", "ref"]
    pd.testing.assert_frame_equal(
        got.inc.drop(columns="unit").sort_values(key).reset_index(drop=True),
        full[list(WINDOW_COLUMNS)].sort_values(key).reset_index(drop=True), check_exact=True)
    assert (got.inc["unit"] != "").any()


def test_within_must_rank_every_category_of_the_period(demo_store, cache, layers):
    cfg = load_config()
    some = rank_period(config=cfg, store_file=demo_store, cache=cache, layers=layers,
                       period=PERIOD, categories=["nox_sighting"])
    with pytest.raises(ValueError, match="every category"):
        rank_period(config=cfg, cache=cache, layers=layers, categories=["nox_sighting"],
                    within=some)
    every = rank_period(config=cfg, store_file=demo_store, cache=cache, layers=layers,
                        period=PERIOD)
    with pytest.raises(ValueError, match="every category of 2024-07"):
        rank_period(config=cfg, cache=cache, layers=layers, period=month_period("2024-07"),
                    within=every)


def test_the_forecast_is_drawn_once_from_the_window_and_kept(demo_store, cache, layers,
                                                              tmp_path, monkeypatch):
    """A store holding nothing older than the months the ranking reads: the pack's
    forecast is drawn from those rows, not a second read of the store, and is the layer a
    read of the store gives; the layer is then kept in the store and read back, until the
    data change. A store holding older rows is read again."""
    import shutil
    import sqlite3

    from hotspots.jobs import forecast_for
    from hotspots.ranking import forecast_of

    cfg = load_config()
    cats = ["asb_nuisance", "drug_dealing"]
    older = rank_period(config=cfg, store_file=demo_store, cache=cache, layers=layers,
                        period=PERIOD, categories=cats)
    assert not older.whole_history  # the demo's incidents begin in 2022
    trimmed = str(tmp_path / "trimmed.sqlite")
    shutil.copy(demo_store, trimmed)
    with sqlite3.connect(trimmed) as db:
        db.execute("DELETE FROM incidents WHERE date < '2023-08-01'")
    db.close()
    ranking = rank_period(config=cfg, store_file=trimmed, cache=cache, layers=layers,
                          period=PERIOD, categories=cats)
    assert ranking.whole_history

    def layers_kept() -> int:
        with sqlite3.connect(trimmed) as db:
            n = db.execute("SELECT count(*) FROM backtests WHERE selection LIKE "
                           "'%forecast_layer%'").fetchone()[0]
        db.close()
        return n

    before = layers_kept()  # the demo's own (the data it had)
    # the backtest is run and kept by a read of the store; the layer is kept beside it
    read, _ = forecast_for(config=cfg, period=PERIOD, area=ranking.rk.area,
                           store_file=trimmed, categories=cats, cache=cache)
    assert layers_kept() == before + 1
    with sqlite3.connect(trimmed) as db:  # the layer forgotten, the backtest kept
        db.execute("DELETE FROM backtests WHERE selection LIKE '%forecast_layer%'")
    db.close()
    reads = []
    real = store.read_incidents
    monkeypatch.setattr(store, "read_incidents",
                        lambda *a, **k: reads.append(k) or real(*a, **k))
    drawn, legend = forecast_of(ranking, config=cfg, store_file=trimmed, cache=cache)
    assert reads == [] and layers_kept() == 1
    assert len(drawn) and legend["forecast"]
    pd.testing.assert_frame_equal(drawn, read, check_exact=True)
    # kept: read back as it was drawn, nothing binned again
    monkeypatch.setattr("hotspots.forecast.bin_incidents", None)
    again, _ = forecast_of(ranking, config=cfg, store_file=trimmed, cache=cache)
    pd.testing.assert_frame_equal(again, read, check_exact=True)
    monkeypatch.undo()
    monkeypatch.setattr(store, "read_incidents",
                        lambda *a, **k: reads.append(k) or real(*a, **k))
    # new data: neither the backtest nor the layer is current
    with sqlite3.connect(trimmed) as db:
        db.execute("DELETE FROM incidents WHERE rowid = (SELECT max(rowid) FROM incidents)")
    db.close()
    forecast_of(ranking, config=cfg, store_file=trimmed, cache=cache)
    assert len(reads) == 1 and reads[0].get("columns") == BACKTEST_COLUMNS  # its own read
    assert layers_kept() == 1  # the layer of the earlier data is not kept beside it
    forecast_of(older, config=cfg, store_file=demo_store, cache=cache)
    assert len(reads) == 2


@pytest.mark.parametrize("units", ["lsoa", "places"])
def test_a_units_trend_counts_the_rows_its_count_does(demo_store, cache, layers, units):
    """The period's count of a unit and the count its trend compares with the previous
    month are of the same rows: an LSOA's rows are those the store assigned to it (a
    police.uk point on an edge goes to police.uk's own LSOA), in the table and in the
    trend alike; a cluster's rows are those its polygon holds."""
    from hotspots.assign import assign_codes

    rk = rank_period(config=load_config(), store_file=demo_store, cache=cache, layers=layers,
                     period=PERIOD, units=units).rk
    n = rk.trends["n"].reindex(rk.places["place_id"]).fillna(0).to_numpy()
    assert (n == rk.places["n"].to_numpy()).all()
    unit = rk.inc["unit"].to_numpy(dtype=object)
    if units == "lsoa":
        ids = set(rk.places["place_id"])
        want = [c if c in ids else "" for c in rk.inc["lsoa_code"]]
    else:
        want = assign_codes(rk.inc["x"].to_numpy(), rk.inc["y"].to_numpy(),
                            rk.places[["place_id", "geometry"]]
                            .rename(columns={"place_id": "code"}))
    assert unit.tolist() == list(want)
