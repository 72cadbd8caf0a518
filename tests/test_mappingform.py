"""The mapping form's TOML: what it writes, the mapping reader reads back unchanged
(hostile names included); suggestions from an export's columns; saved mappings by source."""

import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hotspots import mappingform
from hotspots.errors import ConfigError
from hotspots.ingest import read_mapping

NAMES = st.text(st.characters(blacklist_categories=("Cs",)), min_size=1, max_size=30)


def _same(a, b) -> bool:
    keys = ("source", "columns", "categories", "date_format", "sheet")
    return all(getattr(a, k) == getattr(b, k) for k in keys)


def test_the_form_mapping_round_trips_through_the_reader(tmp_path, config):
    made = mappingform.make_mapping(
        source="lbth-asb", config=config, date_format="%d/%m/%Y %H:%M", sheet="Cases",
        columns={"reference": "Case Ref", "datetime": "Reported", "category": "Type",
                 "latitude": "Lat", "longitude": "Lon", "caller": 'Caller "ID"',
                 "description": "C:\\notes", "location": None, "count": ""},
        categories={"Rowdy behaviour": "asb_nuisance", 'Dealing "on street"': "drug_dealing",
                    "Ignored": None})
    assert made.columns.keys() == {"reference", "datetime", "category", "latitude",
                                   "longitude", "caller", "description"}  # none/'' left out
    assert made.categories == {"Rowdy behaviour": "asb_nuisance",
                               'Dealing "on street"': "drug_dealing"}
    text = mappingform.mapping_toml(made)
    assert 'caller = "Caller \\"ID\\""' in text and "[categories]" in text
    saved = mappingform.save_mapping(made, tmp_path / "mappings")
    assert saved.name == "lbth-asb.toml"
    back = read_mapping(saved, config)
    assert _same(made, back)
    # saved per source, listed and replaced by the next save of the same source
    other = mappingform.make_mapping(source="nox sightings/2024", config=config, columns={
        "reference": "Ref", "date": "Day", "category": "Type", "easting": "E",
        "northing": "N"}, categories={})
    mappingform.save_mapping(other, tmp_path / "mappings")
    mappingform.save_mapping(made, tmp_path / "mappings")
    listed = mappingform.saved_mappings(tmp_path / "mappings")
    assert list(listed) == ["lbth-asb", "nox sightings/2024"]
    assert _same(read_mapping(listed["nox sightings/2024"], config), other)
    assert len(list((tmp_path / "mappings").iterdir())) == 2  # no temporary files left


@settings(max_examples=60, deadline=None)
@given(source=NAMES, ref=NAMES, value=NAMES, fmt=st.sampled_from([None, "%d/%m/%Y"]))
def test_any_names_round_trip(tmp_path_factory, config, source, ref, value, fmt):
    if not source.strip():
        source = "s"
    made = mappingform.make_mapping(
        source=source, config=config, date_format=fmt,
        columns={"reference": ref, "date": "Day", "category": "Type", "latitude": "Lat",
                 "longitude": "Lon"}, categories={value: "asb_nuisance"})
    path = mappingform.save_mapping(made, tmp_path_factory.mktemp("m"))
    assert _same(read_mapping(path, config), made)


def test_the_form_refuses_an_incomplete_mapping(config):
    with pytest.raises(ConfigError, match="the mapping form: \\[columns\\] has no 'category'"):
        mappingform.make_mapping(source="s", config=config, categories={}, columns={
            "reference": "Ref", "date": "Day", "latitude": "Lat", "longitude": "Lon"})


def test_suggestions_from_the_columns_and_values(config):
    cols = ["Case Ref", "Date Reported", "Incident Type", "Easting", "Northing", "Address",
            "Caller ID", "Details", "Exported"]
    assert mappingform.suggest_columns(cols) == {
        "reference": "Case Ref", "datetime": "Date Reported", "category": "Incident Type",
        "easting": "Easting", "northing": "Northing", "location": "Address",
        "caller": "Caller ID", "description": "Details", "extract_date": "Exported"}
    split = mappingform.suggest_columns(["Ref", "Day", "Time", "Lat", "Long", "Type"])
    assert (split["date"], split["time"], split["latitude"], split["longitude"]) == (
        "Day", "Time", "Lat", "Long")
    values = pd.Series(["Noise", "Fly tipping", " Noise ", "", "Drug dealing", "Noise"])
    assert mappingform.category_values(values) == ["Noise", "Drug dealing", "Fly tipping"]
    assert mappingform.category_values(values, limit=1) == ["Noise"]
    key, cat = next(iter(config.categories.items()))
    assert mappingform.suggest_category(cat.label.upper(), config) == key
    assert mappingform.suggest_category(key, config) == key
    assert mappingform.suggest_category("Something else", config) is None
