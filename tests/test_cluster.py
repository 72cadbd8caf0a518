"""Tests of hotspots.cluster: planted hotspots recovered at 10k, 100k and 1M incidents with
the same default rule, places stable and independent of row order, honest times for
police.uk rows, and parameter errors that say what to do."""

from __future__ import annotations

import logging

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import shapely
from geopandas.testing import assert_geodataframe_equal
from sklearn.metrics import adjusted_rand_score

from hotspots.assign import assign_codes
from hotspots.cluster import (
    cluster_points,
    find_places,
    street_name,
    suggest_dbscan_params,
    suggest_hdbscan_params,
)
from hotspots.errors import CRSError
from hotspots.schema import INCIDENT_COLUMNS, PLACE_COLUMNS
from hotspots.synthetic import make_synthetic

LOCATION = {"asb": "Location", "nox": "Street", "drugs": "Address"}
SIZES = [10_000, 100_000, pytest.param(1_000_000, marks=pytest.mark.slow)]


def to_incidents(data, layers) -> pd.DataFrame:
    """Synthetic truth as an INCIDENT_COLUMNS frame, the way ingest would make it."""
    t = data.incidents[data.incidents["dirty_reason"] == ""].reset_index(drop=True)
    location = np.empty(len(t), dtype=object)
    for export, col in LOCATION.items():
        m = (t["export"] == export).to_numpy()
        location[m] = getattr(data, export)[col].to_numpy(dtype=object)[t["row"][m] - 2]
    x, y = t["x"].to_numpy(), t["y"].to_numpy()
    grid = np.char.add(np.char.add("xy:", (np.round(x / 10) * 10).astype(np.int64).astype(str)),
                       np.char.add(":", (np.round(y / 10) * 10).astype(np.int64).astype(str)))
    address = pd.Series(location).str.contains(r"\d", regex=True).to_numpy()
    key = np.where(address, "addr:" + pd.Series(location).str.lower().to_numpy(dtype=str), grid)
    n = len(t)
    return pd.DataFrame({
        "source": "synthetic-" + t["export"], "ref": t["reference"], "category": t["category"],
        "category_raw": t["category"], "period": t["date"].str[:7], "date": t["date"],
        "hour": t["hour"].astype(np.int64), "x": x, "y": y, "location": location,
        "location_key": key, "caller_key": t["caller"], "description": "SYNTHETIC",
        "quantity": np.ones(n, dtype=np.int64),
        "ward_code": assign_codes(x, y, layers["ward"], nearest_max_m=250),
        "lsoa_code": assign_codes(x, y, layers["lsoa"], nearest_max_m=250),
        "source_lsoa": "", "file": "synthetic", "row": t["row"]}, columns=list(INCIDENT_COLUMNS))


@pytest.fixture(scope="module")
def synth(layers, config):
    """(truth, incidents, places) at a size; module-scoped so each size is built once."""
    cache = {}

    def get(n: int, method: str = "dbscan"):
        if n not in cache:
            data = make_synthetic(layers["lsoa"], n_incidents=n, rng=1, dirty_fraction=0.0)
            cache[n] = {"data": data, "incidents": to_incidents(data, layers)}
        if method not in cache[n]:
            cache[n][method] = find_places(cache[n]["incidents"], config=config, method=method)
        return cache[n]["data"], cache[n]["incidents"], cache[n][method]
    return get


def matches(places: gpd.GeoDataFrame, x: np.ndarray, y: np.ndarray, within_m: float = 100.0):
    """Boolean matrix place x target: polygon contains or lies within ``within_m`` of it."""
    pts = shapely.points(x, y)
    return shapely.distance(places.geometry.to_numpy()[:, None], pts[None, :]) <= within_m


@pytest.mark.parametrize("method", ["dbscan", "hdbscan"])
@pytest.mark.parametrize("n", SIZES)
def test_planted_hotspots_are_recovered(synth, n, method):
    data, _, places = synth(n, method)
    top = places.head(20)
    hot = data.hotspots
    hit = matches(top, hot["x"].to_numpy(), hot["y"].to_numpy())
    recall = hit.any(axis=0).mean()
    assert recall >= 0.9, f"{method} at {n}: {recall:.0%} of planted hotspots recovered"
    targets_x = np.r_[hot["x"], data.addresses["x"]]
    targets_y = np.r_[hot["y"], data.addresses["y"]]
    precision = matches(top, targets_x, targets_y).any(axis=1).mean()
    assert precision >= 0.75, f"{method} at {n}: only {precision:.0%} of the top 20 are planted"
    # no place swallows two planted hotspots
    assert hit.sum(axis=1).max() == 1


@pytest.mark.parametrize("n", SIZES[1:])
def test_default_rule_stable_across_volumes(synth, n):
    """Same number of clusters (within a few) and the same big places at 10x the volume."""
    _, _, small = synth(10_000)
    _, _, big = synth(n)
    assert 12 <= len(small) <= 30 and 12 <= len(big) <= 30
    assert abs(len(big) - len(small)) <= 0.25 * len(small)

    def centres(p):
        major = p[p["n"] >= 0.01 * p["n"].sum()]
        c = major.geometry.centroid
        return np.c_[c.x, c.y]

    a, b = centres(small), centres(big)
    assert len(a) == len(b)
    dist = np.hypot(a[:, None, 0] - b[None, :, 0], a[:, None, 1] - b[None, :, 1])
    assert dist.min(axis=1).max() <= 50 and dist.min(axis=0).max() <= 50


def test_min_samples_grows_with_volume(caplog):
    gen = np.random.default_rng(0)
    sizes = {}
    for n in (10_000, 100_000):
        x, y = gen.uniform(530_000, 538_000, n), gen.uniform(178_000, 183_000, n)
        with caplog.at_level(logging.INFO, logger="hotspots.cluster"):
            eps, sizes[n] = suggest_dbscan_params(x, y)
        assert eps == 75.0
    assert sizes[100_000] == pytest.approx(10 * sizes[10_000], rel=0.05)
    assert "min_samples to" in caplog.text and "eps set to 75 m" in caplog.text
    # 5 x mean density of 100,000 over 40 km2 in a 75 m disc
    assert suggest_dbscan_params(x, y, area_m2=40e6)[1] == int(np.ceil(
        5 * 100_000 / 40e6 * np.pi * 75**2))
    assert suggest_dbscan_params(x[:20], y[:20])[1] == 5  # the floor
    assert suggest_hdbscan_params(x, y) == 500


def test_uniform_points_make_no_cluster():
    """Without hotspots there is nothing 5x the mean density: no place, at any volume."""
    gen = np.random.default_rng(3)
    for n in (1_000, 100_000):
        x, y = gen.uniform(530_000, 538_000, n), gen.uniform(178_000, 183_000, n)
        assert (cluster_points(x, y) == -1).all()


def test_binned_matches_exact_dbscan(synth):
    _, inc, _ = synth(10_000)
    x, y = inc["x"].to_numpy(), inc["y"].to_numpy()
    eps, ms = suggest_dbscan_params(x, y)
    exact = cluster_points(x, y, eps_m=eps, min_samples=ms, bin_m=0)
    binned = cluster_points(x, y, eps_m=eps, min_samples=ms)
    assert adjusted_rand_score(exact, binned) >= 0.95
    assert binned.max() == exact.max()
    # weights count as incidents: doubling every weight doubles the suggested min_samples
    two = np.full(len(x), 2.0)
    eps2, ms2 = suggest_dbscan_params(x, y, weights=two)
    assert (eps2, ms2) == (eps, pytest.approx(2 * ms, abs=1))
    np.testing.assert_array_equal(cluster_points(x, y, weights=two, min_samples=2 * ms),
                                  binned)


def _sklearn_on_bins(x, y, *, eps, min_samples, bin_m, weights=None):
    """What cluster_points did before its lattice DBSCAN: scikit-learn's DBSCAN on the
    occupied bins' centres weighted by their counts, relabelled by size."""
    from sklearn.cluster import DBSCAN

    from hotspots.pointclusters import _relabel

    ix, iy = np.floor(x / bin_m).astype(np.int64), np.floor(y / bin_m).astype(np.int64)
    ix, iy = ix - ix.min(), iy - iy.min()
    keys, inv, counts = np.unique(ix * (iy.max() + 1) + iy, return_inverse=True,
                                  return_counts=True)
    mass = counts.astype(float) if weights is None else np.bincount(inv, weights=weights)
    x0, y0 = np.floor(x.min() / bin_m), np.floor(y.min() / bin_m)
    centres = np.column_stack([(x0 + keys // (iy.max() + 1) + 0.5) * bin_m,
                               (y0 + keys % (iy.max() + 1) + 0.5) * bin_m])
    labels = DBSCAN(eps=eps, min_samples=min_samples).fit(centres, sample_weight=mass).labels_
    return _relabel(labels.astype(np.int64), counts.astype(float))[inv]


@pytest.mark.parametrize("table", [True, False], ids=["lattice table", "binary search"])
def test_lattice_dbscan_is_sklearn_dbscan_on_the_bins(table, monkeypatch):
    """The lattice DBSCAN gives scikit-learn's labels to the point: core cells, clusters
    and the cluster a border cell between two clusters joins (the first found: about one
    case in eight here has such a cell, so the order in which clusters are found counts);
    whether it counts cells through a table of the lattice or by binary search."""
    import hotspots.pointclusters as pc

    monkeypatch.setattr(pc, "LATTICE_TABLE_MIN", 2 ** 40 if table else 0)
    monkeypatch.setattr(pc, "LATTICE_TABLE_PER_CELL", 2 ** 40 if table else 0)
    clusters = 0
    for seed in range(40):
        gen = np.random.default_rng(1000 + seed)
        n = int(gen.integers(20, 3000))
        x, y = gen.uniform(0, 1000, n) + 530_000, gen.uniform(0, 1000, n) + 180_000
        eps = float(gen.choice([20.0, 30.0, 50.0, 75.0]))
        bin_m = min(float(gen.choice([2.5, 5.0, 10.0])), eps / 2)
        ms = int(gen.integers(2, 12))
        w = None if seed % 2 else gen.integers(0, 3, n).astype(float)
        got = cluster_points(x, y, eps_m=eps, min_samples=ms, bin_m=bin_m, weights=w)
        np.testing.assert_array_equal(
            got, _sklearn_on_bins(x, y, eps=eps, min_samples=ms, bin_m=bin_m, weights=w),
            err_msg=f"seed {1000 + seed}")
        clusters += int(got.max()) + 1
    assert clusters > 200


def test_labels_numbered_by_size_and_independent_of_order(synth):
    _, inc, _ = synth(10_000)
    x, y = inc["x"].to_numpy(), inc["y"].to_numpy()
    perm = np.random.default_rng(5).permutation(len(x))
    for method in ("dbscan", "hdbscan"):
        lab = cluster_points(x, y, method=method)
        sizes = np.bincount(lab[lab >= 0])
        assert (np.diff(sizes) <= 0).all()
        np.testing.assert_array_equal(cluster_points(x[perm], y[perm], method=method),
                                      lab[perm])


def test_hdbscan_subsample_independent_of_order(synth):
    _, inc, _ = synth(100_000)
    x, y = inc["x"].to_numpy(), inc["y"].to_numpy()
    perm = np.random.default_rng(6).permutation(len(x))
    lab = cluster_points(x, y, method="hdbscan", max_sample=5_000)
    np.testing.assert_array_equal(cluster_points(x[perm], y[perm], method="hdbscan",
                                                 max_sample=5_000), lab[perm])


def test_places_schema_and_statistics(synth, config):
    _, inc, places = synth(10_000)
    assert list(places.columns) == list(PLACE_COLUMNS)
    assert places.crs.to_epsg() == 27700
    assert places["place_id"].is_unique
    assert places["place_id"].str.fullmatch(r"P\d{4}-\d{4}[a-z]?").all()
    assert (np.diff(places["n"].to_numpy()) <= 0).all()
    assert places.geometry.geom_type.eq("Polygon").all()
    np.testing.assert_allclose(places["density_per_km2"], places["n"] / places["area_km2"])
    assert places["busiest_hour"].between(0, 23).all()
    assert places["busiest_weekday"].isin(["Monday", "Tuesday", "Wednesday", "Thursday",
                                           "Friday", "Saturday", "Sunday"]).all()
    assert (places["first_seen"] <= places["last_seen"]).all()
    assert places["ward_code"].str.startswith("E05").all()
    assert places["lsoa_code"].str.startswith("E01").all()
    assert ((places["repeat_share"] >= 0) & (places["repeat_share"] <= 1)).all()
    # recompute one place's figures from its members
    lab = cluster_points(inc["x"], inc["y"])
    first = inc[lab == 0]
    row = places.iloc[0]
    assert row["n"] == len(first)
    assert row["harm"] == pytest.approx(first["category"].map(config.weight).sum())
    assert row["first_seen"] == first["date"].min() and row["last_seen"] == first["date"].max()
    assert row["busiest_hour"] == first["hour"].value_counts().idxmax()
    counts = first["location_key"].value_counts()
    assert row["repeat_locations"] == (counts >= 2).sum()
    assert row["repeat_share"] == pytest.approx(counts[counts >= 2].sum() / len(first))
    top = first["category"].map(config.label).value_counts()
    want = f"{top.index[0]} {round(100 * top.iloc[0] / len(first))}%"
    assert row["main_categories"].startswith(want)
    assert row["main_categories"].count("%") == min(3, len(top))


def test_labels_from_street_text(synth):
    data, _, places = synth(10_000)
    hot = data.hotspots.set_index("name")
    for name in data.hotspots["name"].head(3):
        h = hot.loc[name]
        hit = places[matches(places, np.array([h["x"]]), np.array([h["y"]]), 0)[:, 0]]
        assert hit["label"].tolist() == [h["street"]], name
    # a repeat address is labelled by its street, not "Flat 12, Example House"
    labels = set(places["label"])
    assert not any(lb.startswith("Flat") for lb in labels)


@pytest.mark.parametrize("text, street", [
    ("On or near Candy Street", "Candy Street"), ("near Brick Lane", "Brick Lane"),
    ("by the bus stop, Brick Lane", "Brick Lane"), ("outside shops, Roman Road", "Roman Road"),
    ("Flat 12, Example House, Cable Street", "Cable Street"),
    ("12a Brick Lane, London E1 6QL", "Brick Lane"), ("", "")])
def test_street_from_location_text(text, street):
    assert street_name(text) == street


def test_place_ids_stable_across_runs_and_shuffles(synth, config):
    _, inc, places = synth(10_000)
    again = find_places(inc, config=config)
    assert_geodataframe_equal(again, places)
    shuffled = inc.sample(frac=1.0, random_state=7)
    before = shuffled.copy()
    assert_geodataframe_equal(find_places(shuffled, config=config), places)
    pd.testing.assert_frame_equal(shuffled, before)  # input not mutated
    shuffled_h = find_places(shuffled.reset_index(drop=True), config=config, method="hdbscan")
    assert_geodataframe_equal(shuffled_h, synth(10_000, "hdbscan")[2])


def _tight(n: int, gen, *, cx: float, cy: float) -> pd.DataFrame:
    return pd.DataFrame({"x": cx + gen.normal(0, 15, n), "y": cy + gen.normal(0, 15, n)})


def test_policeuk_rows_get_no_invented_time(layers, config):
    gen = np.random.default_rng(2)
    pts = pd.concat([_tight(300, gen, cx=533_900, cy=181_950),  # police.uk, month only
                     _tight(300, gen, cx=536_500, cy=182_500)], ignore_index=True)
    bg = pd.DataFrame({"x": gen.uniform(530_500, 538_500, 600),
                       "y": gen.uniform(178_500, 183_500, 600)})
    pts = pd.concat([pts, bg], ignore_index=True)
    n = len(pts)
    police = (np.arange(n) < 300) | (np.arange(n) >= 600)  # background: police.uk too
    council_hour = np.where(np.arange(n) % 3 == 0, 22, 14)
    inc = pd.DataFrame({
        "source": np.where(police, "policeuk", "council"), "category": "drug_dealing",
        "date": np.where(police, "2024-05-01", "2024-05-04"),  # 4 May 2024: a Saturday
        "hour": np.where(police, -1, council_hour),
        "x": pts["x"], "y": pts["y"],
        "location": np.where(np.arange(n) < 300, "On or near Candy Street", ""),
        "location_key": "", "ward_code": "", "lsoa_code": ""})
    inc["ward_code"] = assign_codes(inc["x"], inc["y"], layers["ward"])
    inc["lsoa_code"] = assign_codes(inc["x"], inc["y"], layers["lsoa"])
    names = dict(zip(layers["lsoa"]["code"], layers["lsoa"]["name"], strict=True))
    names |= dict(zip(layers["ward"]["code"], layers["ward"]["name"], strict=True))
    places = find_places(inc, config=config, area_km2=20.0, names=names)
    assert len(places) == 2
    puk = places[places["label"] == "Candy Street"].iloc[0]
    assert puk["busiest_hour"] == -1 and puk["busiest_weekday"] == ""
    assert puk["first_seen"] == "2024-05"  # a police.uk month, not an invented 1st of May
    council = places[places["label"] != "Candy Street"].iloc[0]
    assert council["busiest_hour"] == 14 and council["busiest_weekday"] == "Saturday"
    # no location text: "<LSOA name>, <ward name>"
    assert council["label"] == f"{names[council['lsoa_code']]}, {names[council['ward_code']]}"
    assert council["repeat_locations"] == 0 and council["repeat_share"] == 0.0


def test_tiny_input_gives_empty_places(config):
    inc = pd.DataFrame({c: [] for c in INCIDENT_COLUMNS})
    for frame in (inc, pd.DataFrame({
            "source": "council", "category": "drug_use", "date": "2024-01-02", "hour": 3,
            "x": [533_000.0, 535_000.0, 537_000.0], "y": [180_000.0, 181_000.0, 182_000.0],
            "location": "", "location_key": "", "ward_code": "", "lsoa_code": ""})):
        places = find_places(frame, config=config)
        assert list(places.columns) == list(PLACE_COLUMNS) and len(places) == 0
        assert isinstance(places, gpd.GeoDataFrame) and places.crs.to_epsg() == 27700
    assert cluster_points([], []).shape == (0,)


def test_single_point_place_is_still_a_polygon(config):
    n = 50
    inc = pd.DataFrame({"source": "council", "category": "drug_use", "date": "2024-01-02",
                        "hour": 3, "x": np.r_[np.full(n, 533_000.0), 538_000.0],
                        "y": np.r_[np.full(n, 180_000.0), 183_000.0], "location": "",
                        "location_key": "xy:533000:180000", "ward_code": "", "lsoa_code": ""})
    assert find_places(inc, config=config).empty  # alone, 51 points are the mean density
    places = find_places(inc, config=config, buffer_m=10, area_km2=20.0)
    assert len(places) == 1 and places.geometry.iloc[0].geom_type == "Polygon"
    assert places["place_id"].iloc[0] == "P5330-1800"
    assert places["area_km2"].iloc[0] == pytest.approx(np.pi * 100 / 1e6, rel=0.02)
    assert places["repeat_locations"].iloc[0] == 1 and places["repeat_share"].iloc[0] == 1.0
    assert places["label"].iloc[0] == "P5330-1800"  # no text, no codes: the id


XY = (np.array([533_000.0, 533_010.0]), np.array([180_000.0, 180_010.0]))


@pytest.mark.parametrize("kwargs, message", [
    ({"method": "kmeans"}, r"method must be one of 'dbscan', 'hdbscan'; got 'kmeans'"),
    ({"eps_m": -5}, r"eps_m must be a number above 0; got -5"),
    ({"eps_m": "75"}, r"eps_m must be a number above 0; got '75'"),
    ({"min_samples": 0}, r"min_samples must be an integer 1 or more; got 0"),
    ({"min_samples": 2.5}, r"min_samples must be an integer 1 or more; got 2.5"),
    ({"bin_m": -1}, r"bin_m must be a number 0 or more; got -1"),
    ({"eps_m": 15, "min_samples": 5}, r"bin_m must be 0 \(exact\) or at most half of eps_m "
                                      r"\(7.5 m\); got 10.0"),
    ({"max_sample": 0}, r"max_sample must be an integer 1 or more; got 0"),
    ({"area_m2": 0}, r"area_m2 must be a number above 0; got 0"),
    ({"weights": [1.0]}, r"weights must be 2 finite numbers of 0 or more .*got 1 values"),
    ({"weights": [1.0, -1.0]}, r"weights must be 2 finite numbers of 0 or more"),
    ({"method": "hdbscan", "weights": [1.0, 1.0]},
     r"weights apply to method='dbscan' only; got weights with method='hdbscan'"),
])
def test_cluster_points_parameter_errors(kwargs, message):
    with pytest.raises(ValueError, match=message):
        cluster_points(*XY, **kwargs)


def test_coordinate_errors():
    with pytest.raises(ValueError, match="x and y must have the same length; got 2 and 1"):
        cluster_points(XY[0], XY[1][:1])
    with pytest.raises(ValueError, match=r"1 points are not, the first at position 1 "
                                         r"\(.*\)\. Drop"):
        cluster_points(XY[0], np.array([180_000.0, np.nan]))
    with pytest.raises(CRSError, match="look like degrees"):
        cluster_points([-0.07, -0.06], [51.52, 51.52])
    with pytest.raises(ValueError, match="density_factor must be a number above 0; got 0"):
        suggest_dbscan_params(*XY, density_factor=0)


def test_find_places_parameter_errors(synth, config):
    _, inc, _ = synth(10_000)
    small = inc.head(50)
    with pytest.raises(ValueError, match=r"buffer_m must be a number above 0; got 0"):
        find_places(small, config=config, buffer_m=0)
    with pytest.raises(ValueError, match=r"method must be one of 'dbscan', 'hdbscan'; got 'x'"):
        find_places(small, config=config, method="x")
    with pytest.raises(ValueError, match=r"area_km2 must be a number above 0; got -1"):
        find_places(small, config=config, area_km2=-1)
    with pytest.raises(ValueError, match=r"incidents lacks the columns \['location_key'\]"):
        find_places(small.drop(columns="location_key"), config=config)
    with pytest.raises(ValueError, match=r"categories not in the configuration: \['kebab'\]"):
        find_places(small.assign(category="kebab"), config=config)
    with pytest.raises(ValueError, match="incidents must be a pandas DataFrame"):
        find_places(small.to_dict(), config=config)
    gdf = gpd.GeoDataFrame(small, geometry=gpd.points_from_xy(small["x"], small["y"]),
                           crs=4326)
    with pytest.raises(CRSError, match="incidents is in"):
        find_places(gdf, config=config)


@pytest.mark.parametrize("seed", range(20))
def test_modes_are_each_clusters_most_common_value_ties_the_smallest(seed):
    # the counts are of the (cluster, value) pairs that occur, not a table of every
    # cluster by every value (London's LSOAs by their streets)
    from collections import Counter

    from hotspots.cluster import _modes

    rng = np.random.default_rng(seed)
    n, k = int(rng.integers(0, 300)), int(rng.integers(1, 20))
    lab = rng.integers(-1, k, n)
    values = rng.choice(np.array(["", "a", "b", "c", "d"], dtype=object), n)
    want = []
    for i in range(k):
        tally = Counter(v for v, g in zip(values, lab, strict=True) if g == i and v != "")
        top = max(tally.values(), default=0)
        want.append(min((v for v, c in tally.items() if c == top), default=None))
    assert _modes(lab, values, k) == want
