"""The Streamlit app through streamlit.testing's AppTest on a small demo store: every page
runs without an exception and shows its key widgets, a filter change changes the ranked
table, roles limit what a user can reach (the password sign-in: tests/test_signin.py)."""

from __future__ import annotations

import datetime
import getpass
import os
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from hotspots.cli import main

ROOT = Path(__file__).resolve().parents[1]
APP = str(ROOT / "streamlit_app.py")
PAGES = ["app_pages/tasking.py", "app_pages/patrol.py", "app_pages/trends.py",
         "app_pages/data.py"]
ENV = ("HOTSPOTS_STORE", "HOTSPOTS_GEODATA", "HOTSPOTS_LOCAL", "HOTSPOTS_TEST_ROLE")


@pytest.fixture(scope="module")
def demo(tmp_path_factory, cache):
    """A demo store (police.uk rows + 6,000 synthetic council incidents) and the app's
    environment pointing at it; restored afterwards."""
    root = tmp_path_factory.mktemp("app")
    assert main(["--geodata", str(cache), "demo", "--data", str(root / "d"), "--out",
                 str(root / "o"), "--n", "6000", "--json"]) == 0
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
                                and _df(a, "area").shape[0] == 3),
        "app_pages/data.py": ("Data", lambda a: {"load", "synth"} <= {b.key for b in a.button}
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


def test_filter_change_changes_the_ranked_table(role, layers):
    at = role()
    before = _df(at, "main_categories")
    at.sidebar.multiselect(key="f_categories").set_value(["nox_sighting"]).run()
    assert not at.exception
    after = _df(at, "main_categories")
    assert not before.equals(after)
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
    table = _df(at, "area").set_index("area")
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
    assert any(m.label == "Weighted displacement quotient" for m in at.metric)
    # a tasked place, judged from its meeting date
    at.radio(key="ba_kind").set_value("A tasked place").run()
    assert not at.exception
    assert at.info or at.selectbox(key="ba_tasked") is not None


def test_trend_series_compare_like_with_like(role, demo):
    """The one-month police.uk ASB and drugs file is left out of the series by default (it
    would make a spike in April 2023); the series run over the months every chosen
    stream covers, and dropping police.uk burglary (from 2023-09) lengthens them."""
    from hotspots import store

    at = role()
    at.switch_page("app_pages/trends.py").run()
    assert not at.exception, [e.value for e in at.exception]
    streams = at.multiselect(key="trend_streams")
    assert "Anti-social behaviour (police.uk), 2023-04 only" in streams.options
    assert "Anti-social behaviour (police.uk)" not in streams.value
    assert "Burglary (police.uk)" in streams.value
    caption = next(c.value for c in at.caption if "the months every series" in c.value)
    assert "2023-09 to 2024-08" in caption and "Left out: Anti-social behaviour" in caption
    conn = store.connect(os.environ["HOTSPOTS_STORE"])
    inc = store.read_incidents(conn)
    conn.close()
    month = inc["date"].str[:7]
    want = ((month >= "2023-09") & ~inc["category"].isin(["asb", "drugs"])).sum()
    assert caption.startswith(f"{want:,} incidents")
    streams.unselect("Burglary (police.uk)").run()
    caption = next(c.value for c in at.caption if "the months every series" in c.value)
    assert "2022-09 to 2024-08" in caption
    want = (inc["source"] != "policeuk").sum()
    assert caption.startswith(f"{want:,} incidents")


def test_partner_sees_the_minimised_pack_only(role):
    at = role("partner")
    assert at.title[0].value == "Partner pack"
    assert _keys(at, "download_button") == {"dl_partner", "dl_partner_xlsx"}
    table = at.dataframe[0].value
    assert "caller_key" not in table.columns and "repeat_callers" not in table.columns
    with pytest.raises(ValueError, match="Could not find a navigation page"):
        at.switch_page("app_pages/tasking.py")


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
