"""The Streamlit app through streamlit.testing's AppTest on a small demo store: every page
runs without an exception and shows its key widgets, a filter change changes the ranked
table, roles limit what a user can reach (the password sign-in: tests/test_signin.py)."""

from __future__ import annotations

import datetime
import getpass
import html
import json
import os
import re
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from hotspots.cli import main

from .conftest import copy_demo

ROOT = Path(__file__).resolve().parents[1]
APP = str(ROOT / "streamlit_app.py")
PAGES = ["app_pages/tasking.py", "app_pages/patrol.py", "app_pages/trends.py",
         "app_pages/data.py"]
ENV = ("HOTSPOTS_STORE", "HOTSPOTS_GEODATA", "HOTSPOTS_LOCAL", "HOTSPOTS_TEST_ROLE")


@pytest.fixture(scope="module")
def demo(tmp_path_factory, cache, demo_build):
    """A demo store (police.uk rows + 6,000 synthetic council incidents: the module's own
    copy of the session's build) and the app's environment pointing at it; restored
    afterwards."""
    root = copy_demo(demo_build, tmp_path_factory.mktemp("app"))
    saved = {k: os.environ.get(k) for k in ENV}
    os.environ.update(HOTSPOTS_STORE=str(root / "d" / "hotspots.sqlite"),
                      HOTSPOTS_GEODATA=str(cache), HOTSPOTS_LOCAL="1")
    os.environ.pop("HOTSPOTS_TEST_ROLE", None)
    yield root
    for k, v in saved.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v


@pytest.fixture
def role(demo, monkeypatch):
    def start(name: str | None = None) -> AppTest:
        if name:
            monkeypatch.setenv("HOTSPOTS_TEST_ROLE", name)
        at = AppTest.from_file(APP, default_timeout=90)
        at.run()
        assert not at.exception, [e.value for e in at.exception]
        return at
    return start


def _df(at: AppTest, column: str):
    """The first table on the page with this column (AppTest's dataframes carry no key)."""
    return next(d.value for d in at.dataframe if column in d.value.columns)


def _keys(at: AppTest, kind: str) -> set[str]:
    return {e.key for e in at.get(kind)}


def _ba(at: AppTest):
    """The before/after table of the Trends page (one row per area)."""
    return next(t.value for t in at.table if t.value.index.name == "area")


def _table(at: AppTest, column: str):
    """The first static table (st.table) on the page with this column."""
    return next(t.value for t in at.table if column in t.value.columns)


def test_every_page_runs_with_its_widgets(role):
    at = role()  # local mode: analyst
    assert [s.label for s in at.sidebar.selectbox] == ["Period (month)"]
    assert [m.label for m in at.sidebar.multiselect] == ["Categories (none = all)",
                                                        "Wards (none = all)"]
    assert at.sidebar.selectbox(key="f_month").value == "2024-08"
    expect = {
        "app_pages/tasking.py": ("Tasking", lambda a: {"dl_pack_html", "dl_pack_xlsx",
                                                       "dl_pack_geojson",
                                                       "dl_partner", "dl_gpkg"}
                                 <= _keys(a, "download_button")
                                 and _df(a, "main_categories").shape[0] > 0
                                 and a.button[0].label == "Record decision"),
        "app_pages/patrol.py": ("Patrol map", lambda a: {"patrol_ward", "patrol_shift"}
                                <= {s.key for s in a.selectbox}
                                and a.radio(key="patrol_area").value == "A ward"
                                and _table(a, "Patrol windows").shape[0] > 0),
        "app_pages/trends.py": ("Trends", lambda a: a.radio(key="trend_level") is not None
                                and a.radio(key="ba_kind").value == "A ward"
                                and _ba(a).shape[0] == 3),
        "app_pages/data.py": ("Data", lambda a: {"check", "synth"} <= {b.key for b in a.button}
                              and _df(a, "n_read").shape[0] >= 4
                              and set(_df(a, "who")["who"]) == {getpass.getuser()}),
    }
    for page in PAGES:
        at.switch_page(page)
        at.run()
        assert not at.exception, (page, [e.value for e in at.exception])
        title, check = expect[page]
        assert at.title[0].value == title
        assert check(at), page
        assert "Traceback" not in str([m.value for m in at.markdown])


def test_filter_change_changes_the_ranked_table(role, layers, cache):
    from app_pages import common
    from hotspots.config import load_config
    from hotspots.pack import rank_period
    from hotspots.summary import month_period

    at = role()
    before = _df(at, "main_categories")
    at.sidebar.multiselect(key="f_categories").set_value(["nox_sighting"]).run()
    assert not at.exception
    after = _df(at, "main_categories")
    assert not before.equals(after)
    # ranked from the incidents the ranking of every category read (kept in memory), as
    # the pack ranks them from the store
    assert common._every_category(common.store_version(), "2024-08") is not None
    read = rank_period(config=load_config(), store_file=os.environ["HOTSPOTS_STORE"],
                       cache=cache, layers=layers, period=month_period("2024-08"),
                       categories=["nox_sighting"]).ranked
    for column in ("place_id", "n", "score", "trend_label", "patrol_windows"):
        assert after[column].tolist() == read[column].tolist(), column
    # one ranking: the pack's score, its components beside it
    for table in (before, after):
        assert table["rank"].tolist() == list(range(1, len(table) + 1))
        assert table["score"].is_monotonic_decreasing
        assert {"component_volume", "component_trend", "trend_label"} <= set(table.columns)
    assert after["main_categories"].str.startswith("Nitrous oxide").all()
    # a ward filter keeps only that ward's places
    wards = layers["ward"]
    ward = after["area"].iloc[0]
    code = wards.loc[wards["name"] == ward, "code"].iloc[0]
    at.sidebar.multiselect(key="f_wards").set_value([code]).run()
    assert set(_df(at, "main_categories")["area"]) == {ward}
    # police.uk burglary does not concentrate into places: the page says so, no crash
    at.sidebar.multiselect(key="f_wards").set_value([])
    at.sidebar.multiselect(key="f_categories").set_value(["burglary"]).run()
    assert not at.exception, [e.value for e in at.exception]
    assert any("No ranked places" in i.value for i in at.info)
    assert "dl_gpkg" in _keys(at, "download_button")

def test_officer_sees_the_patrol_map_only(role):
    at = role("officer")
    assert at.title[0].value == "Patrol map"
    assert not _keys(at, "download_button")
    for page in ("app_pages/tasking.py", "app_pages/data.py", "app_pages/partner.py"):
        with pytest.raises(ValueError, match="Known pages: \\[.*patrol.py'\\]"):
            at.switch_page(page)


def test_patrol_periods_shifts_wards_and_the_printout(role, demo, layers):
    """Rolling periods and months; the configured shifts; wards in alphabetical order;
    places busiest on the shift first; a print header with marking, period, shift and
    date; police.uk rows in a rolling period are said to be left out."""
    from hotspots.config import load_config

    at = role("officer")
    assert not at.exception, [e.value for e in at.exception]
    period = at.selectbox(key="patrol_period")
    assert period.options[:3] == ["Last 28 days (4 to 31 Aug 2024)",
                                  "Last 7 days (25 to 31 Aug 2024)",
                                  "Last 90 days (3 Jun to 31 Aug 2024)"]
    assert "Month: Aug 2024" in period.options and period.value == period.options[0]
    shifts = load_config().patrol.shifts
    shift = at.selectbox(key="patrol_shift")
    assert shift.options == [s.label for s in shifts.values()]
    names = dict(zip(layers["ward"]["code"], layers["ward"]["name"], strict=True))
    ward = at.selectbox(key="patrol_ward")
    assert ward.options == sorted(names.values())  # alphabetical
    assert any("police.uk rows are dated by month only" in c.value for c in at.caption)
    period.set_value("Month: Aug 2024")
    shift.set_value("evening")
    at.run()
    for code in sorted(names, key=names.get):  # the first ward with more than one place
        at.selectbox(key="patrol_ward").set_value(code).run()
        assert not at.exception, [e.value for e in at.exception]
        table = next((t.value for t in at.table if "Patrol windows" in t.value.columns), None)
        if table is not None and len(table) > 1:
            break
    assert not any("police.uk rows are dated by month only" in c.value for c in at.caption)
    on = table["On this shift"].astype(int).tolist()
    assert len(on) > 1 and on == sorted(on, reverse=True)  # busiest on the shift first
    assert not any("no shift applies" in i.value for i in at.info)  # council rows have times
    head = next(m.value for m in at.markdown if m.value.startswith("<div class='hs-print-head'"))
    assert (f"OFFICIAL-SENSITIVE · Patrol map: {html.escape(names[code])} · 2024-08 · "
            f"Evening 18:00-02:00 · produced {datetime.date.today().isoformat()}") in head
    assert "hs-print-foot'>OFFICIAL-SENSITIVE<" in head
    # the map zooms to the ward: its bounds are the ward's, not the borough's
    frame = next(f.proto.srcdoc for f in at.get("iframe") if "hs-title" in f.proto.srcdoc)
    bounds = json.loads(re.search(r"map_\w+\.fitBounds\(\s*(\[\[.*?\]\])", frame).group(1))
    ward_box = layers["ward"].loc[layers["ward"]["code"] == code].to_crs(4326)
    minx, miny, maxx, maxy = ward_box.total_bounds
    assert sum(bounds, []) == pytest.approx([miny, minx, maxy, maxx], abs=1e-4)
    # a shorter period: the same shift, rolling
    at.selectbox(key="patrol_period").set_value("Last 90 days (3 Jun to 31 Aug 2024)").run()
    assert not at.exception
    assert any("2024-06-03 to 2024-08-31, Evening 18:00-02:00" in c.value for c in at.caption)


def test_each_officer_keeps_a_home_ward(role, demo, monkeypatch):
    from hotspots.usersettings import settings_folder

    folder = settings_folder(os.environ["HOTSPOTS_STORE"])
    try:
        at = role("officer")
        first = at.selectbox(key="patrol_ward").value
        at.selectbox(key="patrol_ward").set_value("E05009333").run()
        at.button(key="patrol_home").click().run()
        assert not at.exception
        assert any("Your home ward" in c.value for c in at.caption)
        again = AppTest.from_file(APP, default_timeout=90)  # a new session, same user
        again.run()
        assert again.selectbox(key="patrol_ward").value == "E05009333"
        assert first != "E05009333"
        # another user's home ward is their own
        monkeypatch.delenv("HOTSPOTS_LOCAL")
        other = AppTest.from_file(APP, default_timeout=90)
        from hotspots import auth

        other.secrets["passwords"] = {"pat": {"password_hash": auth.hash_password("pw"),
                                              "role": "officer"}}
        other.secrets["signin"] = {"secret": "test secret for the home-ward session"}
        other.run()
        other.text_input[0].input("pat")
        other.text_input[1].input("pw")
        other.button[0].click().run()
        assert other.selectbox(key="patrol_ward").value == first
    finally:
        import shutil

        shutil.rmtree(folder, ignore_errors=True)


def _rectangle(x0, y0, x1, y1) -> dict:
    """What the map's draw control posts for a rectangle given in EPSG:27700."""
    from pyproj import Transformer

    t = Transformer.from_crs(27700, 4326, always_xy=True)
    ring = [list(t.transform(x, y)) for x, y in
            ((x0, y0), (x1, y0), (x1, y1), (x0, y1), (x0, y0))]
    return {"type": "FeatureCollection", "features": [{
        "type": "Feature", "properties": {},
        "geometry": {"type": "Polygon", "coordinates": [ring]}}]}


def test_patrol_lists_the_places_in_a_drawn_area(role):
    at = role("officer")
    at.radio(key="patrol_area").set_value("An area I draw").run()
    assert not at.exception
    assert any("Draw an area on the map" in i.value for i in at.info)
    assert not at.table  # nothing listed until an area is drawn
    # the component's value, as the browser would send it: a 1.2 km square in Whitechapel
    at.session_state["patrol_drawn"] = _rectangle(533800, 181200, 535000, 182400)
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    listed = _table(at, "Patrol windows")
    assert 0 < len(listed) <= 10
    assert any("The area drawn (1.44 km²)" in c.value for c in at.caption)
    # a bigger area over the same streets lists at least as many places
    at.session_state["patrol_drawn"] = _rectangle(532000, 179500, 537000, 184000)
    at.run()
    assert len(_table(at, "Patrol windows")) >= len(listed)
    # a shape in Kent is refused with the fix, and nothing is listed
    at.session_state["patrol_drawn"] = _rectangle(600000, 150000, 601000, 151000)
    at.run()
    assert not at.exception
    assert any("outside the study area" in w.value for w in at.warning)
    assert not at.table


def test_before_and_after_counts_the_target_ring_and_rest(role, demo, layers):
    """The Trends page's before/after for a ward: its counts are the incidents in the ward
    in each window, counted here straight from the store, and the three areas hold every
    incident of the borough in the windows."""
    from hotspots import store

    at = role()
    at.switch_page("app_pages/trends.py").run()
    ward = "E05009333"  # Spitalfields & Banglatown
    at.selectbox(key="ba_ward").set_value(ward)
    at.date_input(key="ba_date_A ward").set_value(datetime.date(2024, 3, 1))
    at.number_input(key="ba_months").set_value(4).run()
    assert not at.exception, [e.value for e in at.exception]
    table = _ba(at)
    before, after = table.columns[0], table.columns[1]
    assert "2023-11-01 to 2024-02-29" in before and "2024-03-01 to 2024-06-30" in after
    conn = store.connect(os.environ["HOTSPOTS_STORE"])
    inc = store.read_incidents(conn)
    conn.close()
    windows = {before: ("2023-11-01", "2024-03-01"), after: ("2024-03-01", "2024-07-01")}
    for col, (lo, hi) in windows.items():
        inside = inc.loc[(inc["date"] >= lo) & (inc["date"] < hi)]
        assert table.at["Target", col] == (inside["ward_code"] == ward).sum()
        assert table[col].sum() == len(inside)  # target + ring + rest: nothing lost
    assert "Weighted displacement quotient" in " ".join(m.value for m in at.expander[0].markdown)
    # a tasked place, judged from its meeting date
    at.radio(key="ba_kind").set_value("A tasked place").run()
    assert not at.exception
    assert at.info or at.selectbox(key="ba_tasked") is not None


def test_trend_series_run_over_their_own_months(role, demo):
    """Each series runs over its own months: the council's year before police.uk burglary
    starts is counted, and the page says which source covers which months. The one-month
    police.uk ASB and drugs file is left out by default (a spike in April 2023)."""
    from hotspots import store

    at = role()
    at.switch_page("app_pages/trends.py").run()
    assert not at.exception, [e.value for e in at.exception]
    streams = at.multiselect(key="trend_streams")
    assert "Anti-social behaviour (police.uk)" not in streams.value
    assert "Burglary (police.uk)" in streams.value
    cover = _table(at, "Months")
    assert cover.at["Burglary (police.uk)", "Months"] == "2023-09 to 2024-08"
    assert cover.at["Anti-social behaviour (police.uk)", "Months"] == "2023-04 only"
    assert cover.at["Drug dealing (synthetic-drugs)", "Months"] == "2022-09 to 2024-08"
    conn = store.connect(os.environ["HOTSPOTS_STORE"])
    inc = store.read_incidents(conn)
    conn.close()
    caption = next(c.value for c in at.caption if "Each series runs over its own" in c.value)
    want = (~inc["category"].isin(["asb", "drugs"])).sum()  # 2022-09 onwards, all of it
    assert caption.startswith(f"{want:,} incidents in all of Tower Hamlets")
    spec = json.loads(_charts(at)[0].spec)
    series = _chart_data(_charts(at)[0])[spec["data"]["name"]]
    # a colour of its own for each line: twenty colours past ten series (the default ten
    # repeated, and London's 14 police.uk series shared colours)
    n = series["series"].nunique()
    assert spec["encoding"]["color"]["scale"]["scheme"] == ("tableau20" if n > 10
                                                            else "tableau10"), n
    firsts = series.groupby("series")["month"].min().astype(str).str[:7]
    assert firsts["Burglary (police.uk)"] == "2023-09"
    assert firsts["Drug dealing (synthetic-drugs)"] == "2022-09"
    # one line per area adds the series up: over the months every one covers, and says so
    at.radio(key="trend_lines").set_value("One line per area").run()
    caption = next(c.value for c in at.caption if "the months every series" in c.value)
    assert "2023-09 to 2024-08" in caption


def _charts(at: AppTest) -> list:
    """The protos of the page's Altair / Vega-Lite charts, in page order."""
    def walk(node, out):
        for child in getattr(node, "children", {}).values():
            out.append(child)
            walk(child, out)
        return out
    return [e.proto for e in walk(at._tree, []) if e.type == "vega_lite_chart"]


def _chart_data(proto) -> dict:
    import pyarrow as pa

    return {d.name: pa.ipc.open_stream(d.data.data).read_pandas() for d in proto.datasets}


def test_the_wards_filter_always_applies_to_the_trends(role, demo, layers):
    """The sidebar's Wards filter changes the series every time it changes, not only on
    the first visit (a keyed widget kept its first value and ignored a new default)."""
    from hotspots import store

    conn = store.connect(os.environ["HOTSPOTS_STORE"])
    inc = store.read_incidents(conn)
    conn.close()
    inc = inc.loc[~inc["category"].isin(["asb", "drugs"])]
    at = role()
    at.switch_page("app_pages/trends.py").run()
    names = dict(zip(layers["ward"]["code"], layers["ward"]["name"], strict=True))
    for wards in (["E05009333"], ["E05009317", "E05009320"], ["E05009333"], []):
        at.sidebar.multiselect(key="f_wards").set_value(wards).run()
        assert not at.exception, [e.value for e in at.exception]
        caption = next(c.value for c in at.caption if "Each series runs over" in c.value)
        want = inc["ward_code"].isin(wards).sum() if wards else len(inc)
        where = (", ".join(sorted(names[w] for w in wards)) if wards
                 else "all of Tower Hamlets")
        assert caption.startswith(f"{want:,} incidents in {where}."), (wards, caption)
        series = _chart_data(_charts(at)[0])
        assert sum(d["incidents"].sum() for d in series.values()) == want
        shown = next(m for m in at.multiselect if m.key.startswith("trend_areas_ward"))
        assert shown.value == wards
        assert set(shown.options) <= ({names[w] for w in wards} or set(names.values()))


def test_before_and_after_reads_in_plain_words_with_the_date_marked(role, demo):
    at = role()
    at.switch_page("app_pages/trends.py").run()
    at.selectbox(key="ba_ward").set_value("E05009333")
    at.date_input(key="ba_date_A ward").set_value(datetime.date(2024, 3, 1))
    at.number_input(key="ba_months").set_value(4).run()
    assert not at.exception, [e.value for e in at.exception]
    verdict = next(m.value for m in at.markdown if m.value.startswith("**The target "))
    assert "chance" in verdict and "p =" not in verdict and "WDQ" not in verdict
    table = _ba(at)
    b, a = table.iloc[0, 0], table.iloc[0, 1]
    moved = "fell" if a < b else "rose"
    assert f"The target {moved} {abs(a / b - 1):.0%}" in verdict
    metrics = {m.label: m.value for m in at.metric}
    assert list(metrics) == ["Target", "Ring round it", "Rest of the borough"]
    assert metrics["Target"] == f"{a / b - 1:+.0%}".replace("-", "−")
    assert all(len(v) <= 6 for v in metrics.values())  # short: never cut off
    details = at.expander[0]
    assert details.label.startswith("Details")
    text = " ".join(m.value for m in details.markdown)
    assert "p = " in text and "Weighted displacement quotient" in text
    chart = _charts(at)[-1]
    data = _chart_data(chart)
    marks = [layer["mark"]["type"] for layer in json.loads(chart.spec)["layer"]]
    assert marks == ["line", "rule", "text"]
    rule = data[json.loads(chart.spec)["layer"][1]["data"]["name"]]
    assert rule["start"].dt.date.tolist() == [datetime.date(2024, 3, 1)]
    assert rule["text"].tolist() == ["2024-03-01"]
    steps = data[json.loads(chart.spec)["layer"][0]["data"]["name"]]
    target = steps.loc[steps["area"] == "Target"]
    assert target.loc[target["side"] == "before", "n"].sum() == b
    assert target.loc[target["side"] == "after", "n"].sum() == a


def test_emerging_hot_spots_are_drawn_on_a_map(role, demo, cache, tmp_path):
    """The map's classes are the tasking pack's: the same cells, counted the same."""
    from hotspots.config import load_config
    from hotspots.pack import build_pack

    at = role()
    at.switch_page("app_pages/trends.py").run()
    frames = [f.proto.srcdoc for f in at.get("iframe")]
    page = next(f for f in frames if "emerging hot spots" in f)
    want = build_pack(config=load_config(), store_file=os.environ["HOTSPOTS_STORE"],
                      out_dir=tmp_path, cache=cache)["emerging"]
    assert want
    for name, n in want.items():
        assert f"{name}: {n}</div>" in page  # the map's legend
    caption = next(c.value for c in at.caption if "grid cells of" in c.value)
    assert all(f"{n} {name}" in caption for name, n in want.items())


def test_partner_sees_the_minimised_pack_only(role):
    at = role("partner")
    assert at.title[0].value == "Partner pack"
    assert _keys(at, "download_button") == {"dl_partner", "dl_partner_xlsx"}
    table = at.dataframe[0].value
    assert "caller_key" not in table.columns and "repeat_callers" not in table.columns
    with pytest.raises(ValueError, match="Could not find a navigation page"):
        at.switch_page("app_pages/tasking.py")


def test_the_analyst_sets_the_grid_cell_size(role):
    """The Tasking page's sidebar setting goes through resolve_spec to the pack's grid,
    like `hotspots pack --cell-size-m`; the chair keeps the size chosen by rule."""
    def grid_caption(at: AppTest) -> str:
        return next(c.value for c in at.caption if "ranked places there" in c.value)

    at = role()  # local mode: analyst, on the Tasking page
    cell = at.sidebar.number_input(key="cell_size_m")
    assert cell.value is None and cell.label == "Grid cell size (m)"
    auto = float(re.search(r"grid cells of ([\d.]+) m", grid_caption(at)).group(1))
    size = 325.0 if auto != 325 else 350.0
    cell.set_value(size).run()
    assert not at.exception, [e.value for e in at.exception]
    assert f"grid cells of {size:g} m" in grid_caption(at)
    chair = role("chair")
    assert "cell_size_m" not in {n.key for n in chair.sidebar.number_input}
    assert f"grid cells of {auto:g} m" in grid_caption(chair)


def test_no_sign_in_configured_refuses(demo, monkeypatch):
    monkeypatch.delenv("HOTSPOTS_LOCAL")
    at = AppTest.from_file(APP, default_timeout=30)
    at.run()
    assert "No sign-in is configured" in at.error[0].value
    assert not at.title


def test_recording_a_decision(role, cache, tmp_path):
    at = role()
    # someone else's later detection run (burglary: no places) is not what is on screen
    assert main(["--geodata", str(cache), "detect", "--store", os.environ["HOTSPOTS_STORE"],
                 "--categories", "burglary", "--out", str(tmp_path)]) == 0
    at.text_area[0].input("Joint patrol Fri and Sat nights")
    at.button[0].click().run()
    assert not at.exception
    assert "recorded" in at.success[0].value
    assert "Meeting of" in " ".join(c.value for c in at.caption)
    from hotspots import store
    conn = store.connect(os.environ["HOTSPOTS_STORE"])
    last = store.read_decisions(conn).iloc[-1]
    conn.close()
    assert last["recorded_by"] == "local analyst"  # the signed-in user, not the server's
    assert last["actions"] == "Joint patrol Fri and Sat nights"


def _map_focus(at: AppTest) -> dict:
    """What the Tasking map was drawn with: the places kept, the place selected, the
    bounds zoomed to (the configuration :func:`hotspots.maps.focus_map_html` embeds)."""
    m = next(e for e in at.main if getattr(e, "type", "") == "component_instance"
             and e.proto.id.endswith("tasking_map"))
    page = json.loads(m.proto.json_args)["html"]
    return json.loads(re.findall(r'\((\{"keep": .*?"message": "hotspots:place"\})\);', page)[-1])


def _card(at: AppTest) -> str:
    """The place card's HTML (shown in a frame of its own), or "" when none is open."""
    return next((e.proto.srcdoc for e in at.main if getattr(e, "type", "") == "iframe"
                 and "hs-card" in e.proto.srcdoc), "")


def _inside(bounds: list, lon: float, lat: float) -> bool:
    (south, west), (north, east) = bounds
    return south <= lat <= north and west <= lon <= east


def test_a_place_card_opens_and_the_map_zooms_to_it(role, demo):
    import geopandas as gpd

    from app_pages import common

    at = role()
    assert not _card(at)  # no card before a place is chosen
    table = _df(at, "main_categories")
    pid = table["place_id"].iloc[1]
    common.wait_for_forecasts()  # started once the page was drawn: on the map from now
    at.selectbox(key="detail_place").set_value(pid).run()
    assert not at.exception, [e.value for e in at.exception]
    card = _card(at)
    assert f"data-place='{pid}'" in card
    for part in ("Why it ranks", "What", "When (hour by weekday)", "12 months",
                 "Repeats", "Tasking history"):
        assert f"<h4>{part}</h4>" in card, part
    label = html.escape(table["label"].iloc[1], quote=True)
    assert label in card
    # the map outlines that place and zooms to it: its shape, from `hotspots detect`'s
    # GeoPackage (the same place ids), lies within the bounds
    focus = _map_focus(at)
    assert focus["selected"] == pid and focus["keep"] is None
    places = gpd.read_file(demo / "o" / "hotspots_2024-08.gpkg", layer="places")
    shape = places.set_index("place_id").loc[[pid]].to_crs(4326).geometry.iloc[0]
    x0, y0, x1, y1 = shape.bounds
    assert _inside(focus["bounds"], x0, y0) and _inside(focus["bounds"], x1, y1)
    others = places.loc[places["place_id"] != pid].to_crs(4326).representative_point()
    assert not all(_inside(focus["bounds"], p.x, p.y) for p in others)
    # the map shows the forecast `hotspots detect` wrote (layer `forecast`): its legend,
    # method, cell size, PAI and the same number of ranked cells
    m = next(e for e in at.main if getattr(e, "type", "") == "component_instance"
             and e.proto.id.endswith("tasking_map"))
    shown = json.loads(m.proto.json_args)["html"]
    legend = re.search(r"Forecast for 2024-09: [^\"<]*",
                       (demo / "o" / "hotspots_2024-08.html").read_text("utf-8")).group(0)
    forecast = gpd.read_file(demo / "o" / "hotspots_2024-08.gpkg", layer="forecast")
    first = forecast.iloc[0]
    assert f"{first['cell_size_m']:.0f} m cells; PAI {first['pai_5pct']:.2f}" in legend
    assert legend in shown and f" of {len(forecast)}; score " in shown
    # filters that leave the place out close its card
    at.sidebar.multiselect(key="f_categories").set_value(["burglary"]).run()
    assert not at.exception and not _card(at)


def test_the_wards_filter_drives_table_map_counts_and_decisions(role, demo, layers):
    from hotspots import store
    from hotspots.summary import in_period, month_period

    at = role()
    full = _df(at, "main_categories")
    first, other = full.iloc[0], full.loc[full["area"] != full["area"].iloc[0]].iloc[0]
    for row in (first, other):  # a decision on a place in each of two wards
        form_place = next(s for s in at.selectbox if s.label.startswith("Place ("))
        form_place.set_value(row["place_id"])
        at.text_area[0].input(f"Visit {row['label']}")
        at.button[0].click().run()
        assert not at.exception, [e.value for e in at.exception]
    wards = layers["ward"]
    code = wards.loc[wards["name"] == first["area"], "code"].iloc[0]
    at.sidebar.multiselect(key="f_wards").set_value([code]).run()
    assert not at.exception, [e.value for e in at.exception]
    table = _df(at, "main_categories")
    assert set(table["area"]) == {first["area"]}
    assert table["place_id"].tolist() == full.loc[full["area"] == first["area"],
                                                  "place_id"].tolist()
    # the count is the ward's incidents in the period, from the store
    conn = store.connect(os.environ["HOTSPOTS_STORE"])
    inc = store.read_incidents(conn, start="2024-08-01", end="2024-08-31")
    conn.close()
    n = int((in_period(inc, month_period("2024-08")) & (inc["ward_code"] == code)).sum())
    assert at.caption[0].value.startswith(f"{n:,} incidents in 2024-08 in {first['area']}")
    # the map draws the ward's places only, zoomed to the ward
    focus = _map_focus(at)
    assert focus["keep"] == table["place_id"].tolist() and focus["selected"] is None
    x0, y0, x1, y1 = wards.loc[wards["code"] == code].to_crs(4326).total_bounds
    assert _inside(focus["bounds"], x0, y0) and _inside(focus["bounds"], x1, y1)
    assert not _inside(focus["bounds"], *wards.loc[wards["code"] != code].to_crs(4326)
                       .representative_point().iloc[0].coords[0]) or len(wards) == 1
    # the decision list keeps the ward's places only
    decided = _df(at, "review_date")
    assert first["place_id"] in set(decided["place_id"])
    assert other["place_id"] not in set(decided["place_id"])
    assert set(decided["place_id"]) <= set(full.loc[full["area"] == first["area"], "place_id"])
    at.sidebar.multiselect(key="f_wards").set_value([]).run()
    assert {first["place_id"], other["place_id"]} <= set(_df(at, "review_date")["place_id"])


def _html_column(page: str, heading: str) -> dict[str, str]:
    """Place id -> the text of column ``heading`` in the first table of a pack page that
    has both it and a "Place" column."""
    from html.parser import HTMLParser

    tables: list[list[list[str]]] = []

    class Cells(HTMLParser):
        in_cell = False

        def handle_starttag(self, tag, attrs):
            if tag == "table":
                tables.append([])
            elif tag == "tr" and tables:
                tables[-1].append([])
            elif tag in ("td", "th") and tables and tables[-1]:
                tables[-1][-1].append("")
                self.in_cell = True

        def handle_endtag(self, tag):
            if tag in ("td", "th", "tr", "table"):
                self.in_cell = False

        def handle_data(self, data):
            if self.in_cell:
                tables[-1][-1][-1] += data

    Cells().feed(page)
    for rows in tables:
        head = [c.strip() for c in rows[0]] if rows else []
        if heading in head and "Place" in head:
            i, p = head.index(heading), head.index("Place")
            return {r[p].strip(): r[i].strip() for r in rows[1:] if len(r) == len(head)}
    raise AssertionError(f"no table with {heading!r}")


def test_partner_figures_agree_with_the_full_pack(role, demo, layers, cache, tmp_path):
    import pandas as pd

    at = role("partner")
    shown = at.dataframe[0].value
    assert list(shown.columns) == ["Rank", "Place", "Ward", "Incidents", "Per km²",
                                   "At repeat locations", "% at repeat locations"]
    assert "August 2024" in at.caption[0].value and "2024-08" in at.caption[0].value
    full = pd.read_csv(demo / "o" / "ranked_2024-08.csv", dtype={"place_id": str})
    full = full.set_index("place_id")
    def number(v):  # a column holding "<5" or "[c]" reaches the page as text
        try:
            return float(v)
        except ValueError:
            return None

    compared = shares = 0
    for r in shown.itertuples(index=False):
        f = full.loc[r.Place]
        if number(r.Incidents) is not None:
            assert number(r.Incidents) == f["n"]
            assert number(r[4]) == round(f["density_per_km2"])
            compared += 1
        if number(r[6]) is not None:
            assert number(r[6]) == round(100 * f["repeat_location_share"])
            assert number(r[5]) == f["n_at_repeat_locations"]
            shares += 1
        else:
            assert r[6] == "[c]"
    assert compared >= 3 and shares >= 3
    # the packs' own pages: "% at repeat locations" agrees wherever it is shown (it read
    # 0 in the partner pack beside a "[c]")
    assert main(["--geodata", str(cache), "pack", "--store", os.environ["HOTSPOTS_STORE"],
                 "--partner", "--month", "2024-08", "--out", str(tmp_path), "--json"]) == 0
    pages = [(demo / "o" / "pack_2024-08.html"), (tmp_path / "pack_2024-08_partner.html")]
    full_col, partner_col = (_html_column(p.read_text("utf-8"), "% at repeat locations")
                             for p in pages)
    agree = [k for k, v in partner_col.items() if v != "[c]"]
    assert agree and all(partner_col[k] == full_col[k] for k in agree)
    assert set(partner_col.values()) - {"[c]"} <= set(full_col.values())
    # the ward filter applies here too
    wards = layers["ward"]
    name = shown["Ward"].iloc[0]
    at.sidebar.multiselect(key="f_wards").set_value(
        [wards.loc[wards["name"] == name, "code"].iloc[0]]).run()
    assert not at.exception
    assert set(at.dataframe[0].value["Ward"]) == {name}
    assert name in at.caption[0].value


def test_the_packs_follow_the_wards_filter(role, demo, layers, cache, tmp_path):
    """The packs downloaded from Tasking and Partner are built for the wards chosen: the
    ward's ranked places only, with their ranks in the whole area, the ward named in the
    title; the partner pack too (through the one minimisation rule). The caption names the
    ranking weights by their readable names."""
    import pandas as pd

    from hotspots.config import load_config
    from hotspots.pack import build_pack, rank_period
    from hotspots.summary import month_period

    at = role()
    caption = next(c.value for c in at.caption if c.value.startswith("Ranked by a score"))
    assert "repeat locations 1" in caption and "repeat_locations" not in caption
    cfg, store_file = load_config(), os.environ["HOTSPOTS_STORE"]
    whole = pd.read_csv(demo / "o" / "ranked_2024-08.csv", dtype={"place_id": str})
    code = whole["ward_code"].iloc[0]
    name = layers["ward"].set_index("code").loc[code, "name"]
    ranking = rank_period(config=cfg, store_file=store_file, cache=cache,
                          period=month_period("2024-08"), layers=layers)
    assert ranking.ranked["place_id"].tolist() == whole["place_id"].tolist()
    assert ranking.ranked["patrol_windows"].tolist() == whole["patrol_windows"].tolist()
    files = build_pack(config=cfg, store_file=store_file, out_dir=tmp_path / "full",
                       cache=cache, layers=layers, ranking=ranking, areas=(code,),
                       where=name)["files"]
    part = pd.read_csv(files["csv"], dtype={"place_id": str})
    mine = whole.loc[whole["ward_code"] == code]
    assert 0 < len(part) < len(whole)
    assert part[["place_id", "rank"]].values.tolist() == mine[["place_id", "rank"]].values.tolist()
    page = Path(files["html"]).read_text("utf-8")
    assert f"tasking pack: 2024-08, {html.escape(name)}" in page
    assert set(_html_column(page, "Where")) == set(mine["place_id"])
    partner = build_pack(config=cfg, store_file=store_file, out_dir=tmp_path / "partner",
                         cache=cache, layers=layers, partner=True,
                         period=month_period("2024-08"), areas=(code,), where=name)
    shown = pd.read_csv(partner["files"]["csv"], dtype={"place_id": str})
    assert len(shown) and set(shown["ward"]) == {name}
    assert set(shown["place_id"]) == set(mine["place_id"])


def test_names_in_page_text_show_as_written_not_as_markdown():
    """A ward name from a boundary file reaches captions (Markdown): every character
    Markdown gives a meaning to (links, emphasis, code, markup, Streamlit's LaTeX) is
    backslash-escaped, which CommonMark shows as the character itself; nothing else
    changes."""
    import re

    from app_pages.common import md

    special = set("\\`*_{}[]()#+-.!|<>~$")
    for name in ("[x](https://e.test)", "*Bow* _East_", "<b>Mile End</b>", "`Poplar` #1",
                 "St. Katharine's & Wapping", "$x$ ~y~ |z| a\\b", "Bow East"):
        out = md(name)
        pairs = re.findall(r"\\(.)|(.)", out, flags=re.S)
        assert "".join(a or b for a, b in pairs) == name, (name, out)
        assert all(a in special for a, _ in pairs if a), (name, out)
        assert not any(b in special for _, b in pairs if b), (name, out)
