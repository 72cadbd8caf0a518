"""The one analysis (hotspots.analysis): parameters resolved once, in the open, and the same
result whoever calls it. Points and area are made in code: no data folder needed."""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
import pytest
import shapely

from hotspots.analysis import AnalysisSpec, GridSpec, KdeSpec, analyse, resolve_spec
from hotspots.errors import HotspotsError, ValidationError

AREA = shapely.box(530_000, 180_000, 533_000, 182_000)


def incidents(n: int = 600, seed: int = 1) -> pd.DataFrame:
    """Background spread over the area plus one tight cluster of a third of the rows."""
    gen = np.random.default_rng(seed)
    k = n // 3
    x = np.r_[gen.uniform(530_100, 532_900, n - k), gen.normal(531_500, 20, k)]
    y = np.r_[gen.uniform(180_100, 181_900, n - k), gen.normal(181_000, 20, k)]
    return pd.DataFrame({
        "source": "synthetic-asb", "ref": [f"R{i}" for i in range(n)],
        "category": "asb_nuisance", "category_raw": "Noise", "period": "2024-05",
        "date": "2024-05-10", "hour": gen.integers(0, 24, n), "x": x.round(1), "y": y.round(1),
        "location": "Example Street", "location_key": "example street", "caller_key": "",
        "description": "", "quantity": 1, "ward_code": "", "lsoa_code": "", "source_lsoa": "",
        "file": "made-in-code", "row": np.arange(2, n + 2)})


def test_zero_cell_size_is_an_error_not_automatic():
    inc = incidents()
    with pytest.raises(ValidationError, match="cell_size_m must be a positive number of metres, "
                                              "got 0") as err:
        resolve_spec(inc["x"], inc["y"], AREA, cell_size_m=0)
    assert isinstance(err.value, HotspotsError) and isinstance(err.value, ValueError)
    with pytest.raises(ValidationError, match="bandwidth_m must be a positive number"):
        resolve_spec(inc["x"], inc["y"], AREA, bandwidth_m=-1)
    with pytest.raises(ValidationError, match="kernel must be one of 'quartic', 'gaussian'; "
                                              "got 'box'"):
        KdeSpec(100.0, 10.0, "box")  # type: ignore[arg-type]


def test_resolve_spec_says_which_rule_chose_what():
    inc = incidents()
    auto = resolve_spec(inc["x"], inc["y"], AREA)
    assert [s.split(" set to")[0] for s in auto.chosen] == ["cell size", "bandwidth"]
    assert f"{auto.grid.cell_size_m:g} m (rule:" in auto.chosen[0]
    given = resolve_spec(inc["x"], inc["y"], AREA, cell_size_m=auto.grid.cell_size_m,
                         bandwidth_m=auto.kde.bandwidth_m)
    assert given.chosen == ()
    assert (given.grid, given.kde) == (auto.grid, auto.kde)
    half = resolve_spec(inc["x"], inc["y"], AREA, cell_size_m=250)
    assert half.grid == GridSpec(250.0) and len(half.chosen) == 1
    with pytest.raises(dataclasses.FrozenInstanceError):
        half.grid.cell_size_m = 10  # type: ignore[misc]


def test_analyse_runs_on_the_spec_it_is_given_and_leaves_its_input_alone(config):
    inc = incidents()
    before = inc.copy()
    spec = AnalysisSpec(grid=GridSpec(200.0), kde=KdeSpec(150.0, 25.0))
    found = analyse(inc, AREA, config=config, spec=spec)
    pd.testing.assert_frame_equal(inc, before)
    assert found.spec is spec
    assert found.raster.bandwidth_m == 150.0
    cells = found.cells
    assert len(cells) == 15 * 10  # 3 km x 2 km in 200 m squares
    assert cells["n"].sum() == len(inc)
    hottest = cells.loc[cells["gistar_z"].idxmax()]
    assert abs(hottest["x"] - 531_500) <= 200 and abs(hottest["y"] - 181_000) <= 200
    assert len(found.places) >= 1
    biggest = found.places.sort_values("n").iloc[-1]
    assert biggest.geometry.distance(shapely.Point(531_500, 181_000)) < 50
    coarse = analyse(inc, AREA, config=config,
                     spec=dataclasses.replace(spec, grid=GridSpec(500.0)))
    assert len(coarse.cells) == 6 * 4 and coarse.cells["n"].sum() == len(inc)


@pytest.mark.parametrize("shape", ["square", "hex"])
def test_the_analysis_grid_is_kept_in_the_cache_and_gives_the_same_analysis(
        tmp_path, monkeypatch, shape):
    # detect and pack take the grid from the geodata cache (clipping London's takes a
    # quarter of a second); the cells, Gi* and places are those of a grid made there
    from hotspots.config import load_config
    from hotspots.jobs import analysis_grid

    config, inc = load_config(), incidents()
    spec = resolve_spec(inc["x"].to_numpy(), inc["y"].to_numpy(), AREA, shape=shape)
    made = analyse(inc, AREA, config=config, spec=spec)
    analysis_grid(AREA, spec, cache=tmp_path)
    assert [p.name.split("-")[2] for p in (tmp_path / "derived").iterdir()] == [shape]
    def made_again(*args, **kwargs):
        raise AssertionError("the grid was made again")

    monkeypatch.setattr("hotspots.analysis.make_grid", made_again, raising=False)
    monkeypatch.setattr("hotspots.grid.make_grid", made_again)
    monkeypatch.setattr("hotspots.jobs.make_grid", made_again)
    again = analyse(inc, AREA, config=config, spec=spec,
                    grid=analysis_grid(AREA, spec, cache=tmp_path))
    pd.testing.assert_frame_equal(again.cells, made.cells)
    pd.testing.assert_frame_equal(again.places, made.places)
    assert np.array_equal(again.raster.values, made.raster.values)
