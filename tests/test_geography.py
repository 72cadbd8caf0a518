import functools
import hashlib
import http.server
import threading
from pathlib import Path

import pytest
import shapely

from hotspots import geography
from hotspots.config import Layer
from hotspots.errors import GeodataError

from .conftest import MANIFEST, SHARED

SMALL = ["tower_hamlets_wards_2022.geojson", "tower_hamlets_lsoa21.geojson"]


def small_manifest(tmp_path: Path, urls: dict[str, str] | None = None,
                   sha: dict[str, str] | None = None) -> Path:
    lines = []
    for name in SMALL:
        digest = (sha or {}).get(name) or hashlib.sha256((SHARED / name).read_bytes()).hexdigest()
        lines += ["[[files]]", f'name = "{name}"', f'sha256 = "{digest}"']
        if urls and name in urls:
            lines.append(f'url = "{urls[name]}"')
    path = tmp_path / "manifest.toml"
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.fixture()
def http_server():
    """A real HTTP server on 127.0.0.1 serving the shared open data folder."""
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(SHARED))
    handler.log_message = lambda *a, **k: None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    # polled every 50 ms, not 0.5 s: shutdown() waits for the next poll
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05},
                              daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_manifest_lists_every_shared_file_with_its_checksum():
    entries = {e.name: e for e in geography.read_manifest(MANIFEST)}
    for path in SHARED.rglob("*"):
        if path.suffix in (".csv", ".geojson", ".gpkg"):
            name = path.relative_to(SHARED).as_posix()
            assert entries[name].sha256 == hashlib.sha256(path.read_bytes()).hexdigest()


def test_install_from_folder_then_present(tmp_path):
    manifest = small_manifest(tmp_path)
    first = geography.install_geodata(manifest, source_dir=SHARED, cache=tmp_path / "c")
    assert [r["status"] for r in first] == ["installed", "installed"]
    again = geography.install_geodata(manifest, source_dir=SHARED, cache=tmp_path / "c")
    assert [r["status"] for r in again] == ["present", "present"]


def test_download_from_each_files_url(tmp_path, http_server):
    urls = {n: f"{http_server}/{n}" for n in SMALL}
    manifest = small_manifest(tmp_path, urls=urls)
    res = geography.install_geodata(manifest, cache=tmp_path / "c")
    assert [r["status"] for r in res] == ["installed", "installed"]
    for name in SMALL:
        assert (tmp_path / "c" / name).read_bytes() == (SHARED / name).read_bytes()


def test_download_from_mirror_base_url(tmp_path, http_server):
    res = geography.install_geodata(small_manifest(tmp_path), base_url=http_server,
                                    cache=tmp_path / "c")
    assert {r["status"] for r in res} == {"installed"}


def test_checksum_mismatch_is_refused_and_not_kept(tmp_path, http_server):
    manifest = small_manifest(tmp_path, sha={SMALL[0]: "0" * 64})
    with pytest.raises(GeodataError, match=r"tower_hamlets_wards_2022.geojson from http://127\."
                                           r".*has sha256 .*the manifest expects 000000000000"
                                           r"\.\.\.; the copy was not kept"):
        geography.install_geodata(manifest, base_url=http_server, cache=tmp_path / "c")
    assert not (tmp_path / "c" / SMALL[0]).exists()
    assert not list((tmp_path / "c").glob(".part-*"))


def test_missing_download_and_missing_source_file(tmp_path, http_server):
    with pytest.raises(GeodataError, match="has no download source in the manifest"):
        geography.install_geodata(small_manifest(tmp_path), cache=tmp_path / "c")
    with pytest.raises(GeodataError, match=r"download of http://127\.0\.0\.1:\d+/nope/"
                                           r"tower_hamlets_wards_2022\.geojson failed"):
        geography.install_geodata(small_manifest(tmp_path), base_url=f"{http_server}/nope",
                                  cache=tmp_path / "c")
    with pytest.raises(GeodataError, match=r"is not in .*Point --from at the folder"):
        geography.install_geodata(small_manifest(tmp_path), source_dir=tmp_path,
                                  cache=tmp_path / "c")


def test_layers_are_projected_with_codes_names_and_area(layers):
    wards, lsoa = layers["ward"], layers["lsoa"]
    assert len(wards) == 20 and len(lsoa) == 169 and len(layers["lsoa11"]) == 144
    for gdf in layers.values():
        assert gdf.crs.to_epsg() == 27700
        assert list(gdf.columns) == ["code", "name", "area_km2", "geometry"]
        assert gdf["code"].is_unique and gdf["code"].is_monotonic_increasing
    # wards reach into the Thames, LSOAs stop at mean high water (provenance notes): ward
    # areas are land areas, so densities are not diluted by river
    assert lsoa["area_km2"].sum() == pytest.approx(19.76, abs=0.05)
    assert wards["area_km2"].sum() == pytest.approx(lsoa["area_km2"].sum(), rel=1e-3)
    assert shapely.union_all(wards.geometry.values).area / 1e6 == pytest.approx(21.58, abs=0.05)
    island = wards.set_index("name").loc["Island Gardens"]
    assert island["area_km2"] < island.geometry.area / 1e6 * 0.9  # much of it is river


def test_uninstalled_layer_and_wrong_column_messages(tmp_path, cache):
    with pytest.raises(GeodataError, match=r"is not installed\. Run `hotspots geodata install"):
        geography.read_layer(Layer("ward", "nope.geojson", "code", "name"), cache=tmp_path)
    with pytest.raises(GeodataError, match=r"has no column 'WD22CD' \(layer 'ward'\); columns "
                                           r"are \['name', 'wardcode'\]"):
        geography.read_layer(Layer("ward", SMALL[0], "WD22CD", "name"), cache=cache)


def test_derived_police_files_are_derived_in_code_byte_for_byte(tmp_path, http_server):
    """The borough's police.uk extracts come from the published London months: the
    manifest's rule keeps their rows, and the install checks the result's sha256."""
    entries = {e.name: e for e in geography.read_manifest(MANIFEST)}
    derived = [e for e in entries.values() if e.derived_from][:3]
    assert len([e for e in entries.values() if e.derived_from]) == 12
    lines = []
    for e in derived:
        src = entries[e.derived_from]
        assert src.url  # the source is published
        lines += ["[[files]]", f'name = "{e.name}"', f'sha256 = "{e.sha256}"',
                  f'derived_from = "{e.derived_from}"', 'lsoa_name_prefix = "Tower Hamlets"',
                  "[[files]]", f'name = "{src.name}"', f'sha256 = "{src.sha256}"',
                  f'url = "{http_server}/{src.name}"']
    manifest = tmp_path / "m.toml"
    manifest.write_text("\n".join(lines) + "\n")
    res = geography.install_geodata(manifest, cache=tmp_path / "c")
    assert [r["status"] for r in res] == ["installed"] * 6
    assert [r["name"] for r in res][3:] == [e.name for e in derived]  # sources first
    for e in derived:
        assert (tmp_path / "c" / e.name).read_bytes() == (SHARED / e.name).read_bytes()
    # another rule gives other bytes: refused, not kept
    manifest.write_text(manifest.read_text().replace('"Tower Hamlets"', '"Tower Hamlets 00"', 1))
    (tmp_path / "c" / derived[0].name).unlink()
    with pytest.raises(GeodataError, match=r"from policeuk/.*london_burglary-only.csv \(rows of "
                                           r"LSOAs named Tower Hamlets 00\*\) has sha256"):
        geography.install_geodata(manifest, cache=tmp_path / "c")
    assert not (tmp_path / "c" / derived[0].name).exists()


def test_skip_unavailable_installs_what_has_a_source_and_lists_the_rest(tmp_path,
                                                                        http_server):
    manifest = small_manifest(tmp_path, urls={SMALL[1]: f"{http_server}/{SMALL[1]}"})
    res = geography.install_geodata(manifest, cache=tmp_path / "c", skip_unavailable=True)
    assert [(r["name"], r["status"]) for r in res] == [(SMALL[0], "unavailable"),
                                                       (SMALL[1], "installed")]
    assert not (tmp_path / "c" / SMALL[0]).exists()
