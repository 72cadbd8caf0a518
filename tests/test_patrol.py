"""Patrol planning: shifts from the configuration (checked), rolling periods, places ordered
by what happens on the shift, and each user's remembered settings."""

from __future__ import annotations

import datetime as dt
import json

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import shapely

from hotspots.config import DEFAULT_MARKING, load_config
from hotspots.errors import ConfigError
from hotspots.patrol import (
    NO_TIMES,
    current_shift,
    month_only_note,
    on_shift,
    patrol_places,
    period_options,
    rolling_period,
)
from hotspots.summary import in_period, month_only_left_out, month_period
from hotspots.usersettings import read_settings, settings_folder, write_setting

PACKAGED = load_config().source


def _config(tmp_path, extra: str):
    """The packaged configuration without its [shifts] and [patrol], plus ``extra``."""
    from importlib import resources

    text = resources.files("hotspots").joinpath("data", "tower_hamlets.toml").read_text()
    text = text.split("\n[shifts]")[0].rsplit("\n#", 2)[0]
    path = tmp_path / "area.toml"
    path.write_text(text + "\n" + extra, encoding="utf-8")
    return path


def test_default_shifts_include_an_evening_shift_across_midnight(tmp_path):
    cfg = load_config(_config(tmp_path, ""))  # no [shifts]: the defaults
    shifts = cfg.patrol.shifts
    assert list(shifts) == ["early", "late", "evening", "night"]
    assert shifts["evening"].label == "Evening 18:00-02:00"
    assert shifts["evening"].hours == (18, 19, 20, 21, 22, 23, 0, 1)
    assert shifts["night"].hours == (23, 0, 1, 2, 3, 4, 5, 6)
    assert cfg.patrol.marking == DEFAULT_MARKING == "OFFICIAL-SENSITIVE"
    assert "{z}" in cfg.patrol.tile_url and cfg.patrol.tile_attribution
    assert load_config().patrol == cfg.patrol  # the packaged file says the same


def test_a_partnerships_own_shifts_marking_and_tiles(tmp_path):
    cfg = load_config(_config(tmp_path, '[shifts]\nday = "08:00-20:00"\nnights = "20:00-08:00"\n'
                                        '[patrol]\nmarking = "OFFICIAL"\n'
                                        'tile_url = "https://tiles.council.example/{z}/{x}/{y}.png"\n'
                                        'tile_attribution = "Council tiles"\n'))
    assert [s.label for s in cfg.patrol.shifts.values()] == ["Day 08:00-20:00",
                                                             "Nights 20:00-08:00"]
    assert len(cfg.patrol.shifts["nights"].hours) == 12
    assert cfg.patrol.marking == "OFFICIAL"
    assert cfg.patrol.tile_url.startswith("https://tiles.council.example/")


@pytest.mark.parametrize(("extra", "message"), [
    ('[shifts]\nevening = "6pm-2am"\n', r"shifts\.evening = '6pm-2am' is not a shift; write "
                                        r'it as "HH:MM-HH:MM"'),
    ('[shifts]\nevening = "18:30-02:30"\n', r"shifts\.evening = '18:30-02:30' does not start "
                                            "and end on the hour"),
    ('[shifts]\nlate = "25:00-03:00"\n', r"shifts\.late = '25:00-03:00' is not a shift"),
    ('[shifts]\nlate = 15\n', r"shifts\.late = 15 is not a shift"),
    ('[shifts]\nlate = "15:00-15:00"\n', r"shifts\.late = '15:00-15:00' starts and ends at "
                                         'the same time; a shift round the clock is '
                                         '"00:00-24:00"'),
    ("[shifts]\n", r"\[shifts\] has no shifts"),
    ('[patrol]\nmarking = ""\n', r"patrol\.marking = ''; give the protective marking"),
    ('[patrol]\ntile_url = "tiles.example/{z}"\n', r"patrol\.tile_url = 'tiles\.example/\{z\}' "
                                                   "is not a tile URL"),
    ('[patrol]\ntile_url = "https://t.example/{z}/{x}/{y}.png"\n',
     r"patrol\.tile_attribution is missing"),
    ('[patrol]\ntile_url = "https://t.example/{{ 6*7 }}/{z}/{x}/{y}.png"\n',
     r"is not a tile URL; give one with \{z\}, \{x\} and \{y\} \(and no other braces\)"),
])
def test_bad_shift_and_patrol_settings_name_the_key(tmp_path, extra, message):
    path = _config(tmp_path, extra)
    with pytest.raises(ConfigError, match=message) as err:
        load_config(path)
    assert str(path) in str(err.value)


def test_a_round_the_clock_shift_takes_every_hour(tmp_path):
    cfg = load_config(_config(tmp_path, '[shifts]\nall = "00:00-24:00"\n'))
    assert cfg.patrol.shifts["all"].hours == tuple(range(24))


def test_on_shift_handles_midnight_and_untimed_rows():
    shifts = load_config().patrol.shifts
    hours = np.array([-1, 0, 1, 2, 17, 18, 23])
    assert on_shift(hours, shifts["evening"]).tolist() == [False, True, True, False, False,
                                                          True, True]
    assert on_shift(hours, shifts["early"]).tolist() == [False] * 7
    assert current_shift(shifts, 20) == "late"  # the first listed that is on
    assert current_shift(shifts, 1) == "evening"
    assert current_shift(shifts, 4) == "night"
    assert current_shift(shifts, 9) == "early"


def test_rolling_periods_end_on_the_last_day_and_months_follow():
    last = dt.date(2024, 8, 31)
    p = rolling_period(last, 28)
    assert (p.start, p.end, p.days) == (dt.date(2024, 8, 4), last, 28)
    opts = period_options(last, ["2024-08", "2024-07"])
    assert list(opts) == ["Last 28 days (4 to 31 Aug 2024)", "Last 7 days (25 to 31 Aug 2024)",
                          "Last 90 days (3 Jun to 31 Aug 2024)", "Month: Aug 2024",
                          "Month: Jul 2024"]
    assert opts["Month: Jul 2024"] == month_period("2024-07")
    assert opts["Last 90 days (3 Jun to 31 Aug 2024)"].days == 90
    assert list(period_options(None, ["2024-08"])) == ["Month: Aug 2024"]  # police.uk only
    with pytest.raises(ValueError, match="days must be a whole number of days >= 1"):
        rolling_period(last, 0)


def test_police_uk_rows_in_a_rolling_period_are_left_out_and_said():
    inc = pd.DataFrame({"source": ["policeuk", "policeuk", "council", "council"],
                        "date": ["2024-08-01", "2024-07-01", "2024-08-20", "2024-07-01"]})
    p = rolling_period(dt.date(2024, 8, 31), 28)
    assert in_period(inc, p).tolist() == [False, False, True, False]
    n = month_only_left_out(inc, p)
    assert n == 1
    note = month_only_note(n, p)
    assert note.startswith("police.uk rows are dated by month only: 2024-08-04 to 2024-08-31 "
                           "counts them only when their whole month lies inside it, so 1 are "
                           "left out")
    assert month_only_note(0, p) is None
    assert month_only_note(5, month_period("2024-08")) is None


def _square(x, y, side=100.0):
    return shapely.box(x, y, x + side, y + side)


def test_places_are_ordered_by_their_count_on_the_shift():
    """Place A is the busiest overall but quiet in the evening; B is busiest on the shift."""
    places = gpd.GeoDataFrame(
        {"place_id": ["A", "B", "C"], "label": ["A Street", "B Road", "C Lane"],
         "n": [30, 12, 12], "main_categories": ["Drug dealing 100%"] * 3},
        geometry=[_square(0, 0), _square(500, 0), _square(1000, 0)], crs=27700)
    rows = []
    for _place, x, hours in (("A", 50, [9] * 25 + [20] * 5), ("B", 550, [21] * 10 + [9] * 2),
                            ("C", 1050, [20] * 2 + [-1] * 10)):
        rows += [{"source": "council", "date": "2024-08-02", "hour": h, "x": x, "y": 50.0}
                 for h in hours]
    rows += [{"source": "policeuk", "date": "2024-08-01", "hour": -1, "x": 50.0, "y": 50.0}]
    inc = pd.DataFrame(rows)
    evening = load_config().patrol.shifts["evening"]
    table = patrol_places(inc, places, shift=evening)
    assert table["place_id"].tolist() == ["B", "A", "C"]
    assert table["no"].tolist() == [1, 2, 3]
    assert table["on_shift"].tolist() == [10, 5, 2]
    assert table["where"].tolist() == ["B Road", "A Street", "C Lane"]
    assert table.loc[0, "patrol_windows"].startswith("Fri 21:00-22:00")  # 2 Aug 2024: Fri
    early = patrol_places(inc, places, shift=load_config().patrol.shifts["early"], top=2)
    assert early["place_id"].tolist() == ["A", "B"] and early["on_shift"].tolist() == [25, 2]
    night = patrol_places(inc, places, shift=load_config().patrol.shifts["night"])
    assert (night["patrol_windows"] == NO_TIMES).all()  # ties: by n, then id
    assert night["place_id"].tolist() == ["A", "B", "C"]
    assert patrol_places(inc, places.iloc[:0], shift=evening).empty


def test_each_users_settings_are_kept_apart(tmp_path):
    folder = settings_folder(tmp_path / "data" / "hotspots.sqlite")
    assert folder == tmp_path / "data" / "user-settings"
    assert read_settings(folder, "pat@council.example") == {}
    write_setting(folder, "pat@council.example", "home_ward", "E05009317")
    write_setting(folder, "sam", "home_ward", "E05009333")
    write_setting(folder, "pat@council.example", "other", 1)
    assert read_settings(folder, "pat@council.example") == {
        "user": "pat@council.example", "home_ward": "E05009317", "other": 1}
    assert read_settings(folder, "sam")["home_ward"] == "E05009333"
    files = sorted(folder.iterdir())
    assert len(files) == 2 and all("@" not in f.name for f in files)  # no e-mails as names
    files[0].write_text("{not json", encoding="utf-8")  # a damaged file reads as none
    assert {} in (read_settings(folder, "sam"), read_settings(folder, "pat@council.example"))
    json.loads(files[1].read_text())  # the other is untouched
    with pytest.raises(ValueError, match="user must be a signed-in user name"):
        write_setting(folder, "", "home_ward", "x")
