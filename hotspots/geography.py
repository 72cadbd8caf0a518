"""Boundaries: install open data into the cache, read area layers in EPSG:27700.

The cache (default ``geodata/cache``, git-ignored) is filled from a local folder or by
download; every file is checked against the sha256 in the geodata manifest.
"""

from __future__ import annotations

import csv
import hashlib
import json
import logging
import os
import shutil
import tempfile
import threading
import tomllib
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely

from .assign import assign_points, nesting
from .config import Config, Layer
from .errors import GeodataError
from .kept import kept
from .schema import WORKING_CRS

log = logging.getLogger(__name__)

DEFAULT_CACHE = Path("geodata/cache")


@dataclass(frozen=True)
class ManifestFile:
    """A manifest entry. A derived file names the manifest file it is derived from
    (``derived_from``) and the rule: ``lsoa_name_prefix`` keeps the police.uk rows whose
    ``LSOA name`` starts with it, every line byte for byte."""

    name: str
    sha256: str
    url: str | None = None
    derived_from: str | None = None
    lsoa_name_prefix: str | None = None


def cache_dir(path: str | Path | None = None) -> Path:
    """The geodata cache: ``path``, else ``$HOTSPOTS_GEODATA``, else ``geodata/cache``."""
    return Path(path or os.environ.get("HOTSPOTS_GEODATA") or DEFAULT_CACHE)


def read_manifest(path: str | Path) -> list[ManifestFile]:
    """Read a geodata manifest (TOML with ``[[files]]`` entries: name, sha256, url)."""
    try:
        raw = tomllib.loads(Path(path).read_text("utf-8"))
    except OSError as exc:
        raise GeodataError(f"cannot read geodata manifest {path}: {exc.strerror}. Run hotspots "
                           "from the repository root or give --manifest.") from exc
    files = []
    for i, entry in enumerate(raw.get("files", []), start=1):
        if "name" not in entry or "sha256" not in entry:
            raise GeodataError(f"{path}: [[files]] entry {i} needs 'name' and 'sha256'.")
        if "derived_from" in entry and "lsoa_name_prefix" not in entry:
            raise GeodataError(f"{path}: [[files]] entry {i} ({entry['name']}) is derived_from "
                               "another file but gives no rule; add lsoa_name_prefix.")
        files.append(ManifestFile(entry["name"], entry["sha256"].lower(), entry.get("url"),
                                  entry.get("derived_from"), entry.get("lsoa_name_prefix")))
    return files


def derive_rows(src: Path, dest: Path, lsoa_name_prefix: str) -> int:
    """Write the header and the police.uk rows of ``src`` whose ``LSOA name`` starts with
    ``lsoa_name_prefix`` to ``dest``, each line byte for byte; returns the rows kept."""
    lines = src.read_bytes().splitlines(keepends=True)
    if not lines:
        raise GeodataError(f"{src} is empty; install it again.")
    header = next(csv.reader([lines[0].decode("utf-8-sig")]))
    if "LSOA name" not in header:
        raise GeodataError(f"{src} has no 'LSOA name' column: not a police.uk street-level "
                           "file, so rows cannot be kept by LSOA name.")
    col = header.index("LSOA name")
    kept = [lines[0]]
    for no, line in enumerate(lines[1:], start=2):
        row = next(csv.reader([line.decode("utf-8")]), [])
        if len(row) != len(header):
            raise GeodataError(f"{src}, line {no}: {len(row)} fields, the header has "
                               f"{len(header)}; install an unmodified copy.")
        if row[col].startswith(lsoa_name_prefix):
            kept.append(line)
    dest.write_bytes(b"".join(kept))
    return len(kept) - 1


def sha256_file(path: Path) -> str:
    """sha256 of a file, read in blocks."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _fetch(url: str, dest: Path, timeout_s: float) -> None:
    try:
        with urllib.request.urlopen(url, timeout=timeout_s) as resp, open(dest, "wb") as out:
            shutil.copyfileobj(resp, out)
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise GeodataError(f"download of {url} failed: {reason}. Check the network, or install "
                           "from a local copy with --from DIR.") from exc


def install_geodata(manifest: str | Path, *, source_dir: str | Path | None = None,
                    base_url: str | None = None, cache: str | Path | None = None,
                    timeout_s: float = 60.0, skip_unavailable: bool = False) -> list[dict]:
    """Install every manifest file into the cache, verified by sha256.

    Parameters
    ----------
    manifest : path of the geodata manifest.
    source_dir : copy from this folder (same relative names) instead of downloading.
    base_url : download ``{base_url}/{name}`` (a mirror) instead of each file's ``url``.
        Without either, a derived file (``derived_from``) is derived from its installed
        source, and checked by its sha256 like any other.
    cache : destination; see :func:`cache_dir`.
    skip_unavailable : downloading, pass over the files with no published source (status
        ``unavailable``) instead of stopping at the first.

    Returns
    -------
    list of dicts ``{"name", "path", "status"}`` with status ``installed`` or ``present``
    (already in the cache with the right checksum), or ``unavailable``.

    Raises
    ------
    GeodataError
        a file is missing from ``source_dir``, has no download source, fails to download,
        or its checksum differs (the bad copy is not kept).
    """
    dest_root = cache_dir(cache)
    results = []
    # derived files after the files they are derived from
    for entry in sorted(read_manifest(manifest), key=lambda e: e.derived_from is not None):
        dest = dest_root / entry.name
        if dest.exists() and sha256_file(dest) == entry.sha256:
            results.append({"name": entry.name, "path": str(dest), "status": "present"})
            continue
        dest.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(dir=dest.parent, prefix=".part-")
        os.close(fd)
        tmp = Path(tmp_name)
        try:
            if source_dir is not None:
                src = Path(source_dir) / entry.name
                if not src.is_file():
                    raise GeodataError(f"{entry.name} is not in {source_dir}. Point --from at the "
                                       "folder holding the manifest's files.")
                shutil.copyfile(src, tmp)
                origin = str(src)
            elif entry.derived_from and not entry.url and not base_url:
                src = dest_root / entry.derived_from
                if not src.is_file():
                    raise GeodataError(f"{entry.name} is derived from {entry.derived_from}, "
                                       "which is not installed; list that file in the "
                                       "manifest too.")
                derive_rows(src, tmp, entry.lsoa_name_prefix or "")
                origin = f"{entry.derived_from} (rows of LSOAs named {entry.lsoa_name_prefix}*)"
            else:
                url = f"{base_url.rstrip('/')}/{entry.name}" if base_url else entry.url
                if not url and skip_unavailable:
                    results.append({"name": entry.name, "path": str(dest),
                                    "status": "unavailable"})
                    continue
                if not url:
                    raise GeodataError(f"{entry.name} has no download source in the manifest (it "
                                       "was derived from its source by hand); install it --from "
                                       "a folder or --base-url of a mirror holding it, or pass "
                                       "--skip-unavailable.")
                _fetch(url, tmp, timeout_s)
                origin = url
            got = sha256_file(tmp)
            if got != entry.sha256:
                raise GeodataError(f"{entry.name} from {origin} has sha256 {got[:12]}..., the "
                                   f"manifest expects {entry.sha256[:12]}...; the copy was not "
                                   "kept. Use an unmodified copy of the file.")
            os.replace(tmp, dest)
        finally:
            tmp.unlink(missing_ok=True)
        log.info("installed %s from %s", entry.name, origin)
        results.append({"name": entry.name, "path": str(dest), "status": "installed"})
    return results


def read_layer(layer: Layer, *, cache: str | Path | None = None) -> gpd.GeoDataFrame:
    """Read an area layer from the cache as ``code, name, area_km2, geometry`` in EPSG:27700.

    Rows are sorted by code; area is planar, in km², computed in EPSG:27700. The layer is
    kept in the cache's ``derived/`` folder for the next process (:func:`_derived`):
    London's LSOAs read back in 0.14 s, against 0.5 s to read, repair and project.
    """
    path = cache_dir(cache) / layer.file
    if not path.exists():
        raise GeodataError(f"boundary file {path} is not installed. Run `hotspots geodata "
                           "install --from DIR` (or without --from to download).")
    return _derived(("layer", layer), cache, lambda: _read_layer_file(path, layer))


def _read_layer_file(path: Path, layer: Layer) -> gpd.GeoDataFrame:
    gdf = gpd.read_file(path)
    for col in (layer.code, layer.name):
        if col not in gdf.columns:
            raise GeodataError(f"{path} has no column '{col}' (layer '{layer.key}'); columns are "
                               f"{sorted(c for c in gdf.columns if c != 'geometry')}. Fix the "
                               "layer's code/name in the configuration.")
    if gdf.crs is None:
        gdf = gdf.set_crs("EPSG:4326")
    gdf = gdf.to_crs(WORKING_CRS)
    out = gpd.GeoDataFrame(
        {"code": gdf[layer.code].astype(str), "name": gdf[layer.name].astype(str)},
        geometry=shapely.make_valid(gdf.geometry.values), crs=WORKING_CRS)
    out["area_km2"] = out.geometry.area / 1e6
    return out[["code", "name", "area_km2", "geometry"]].sort_values("code", ignore_index=True)


def read_layers(config: Config, *, cache: str | Path | None = None) -> dict[str, gpd.GeoDataFrame]:
    """Read every layer of the configuration, keyed as in the configuration.

    With a ``land_layer`` configured (LSOAs stop at mean high water), every other layer's
    ``area_km2`` is its land area, so densities are not diluted by river (wards run into
    the Thames); geometries are kept whole for assignment.

    The layers are read once per process for the same files (each call gets its own
    copies), and layers dissolved from a finer one are kept in the cache's ``derived/``
    folder, keyed by the source file's sha256, so the next process reads them back.
    """
    key = _layers_key(config, cache)
    with _MEMO_LOCK:
        hit = _LAYERS_MEMO.get(key)
    if hit is None:
        hit = _read_layers(config, cache=cache)
        with _MEMO_LOCK:
            _LAYERS_MEMO[key] = hit
            while len(_LAYERS_MEMO) > _MEMO_SIZE:
                _LAYERS_MEMO.pop(next(iter(_LAYERS_MEMO)))
    return {k: gdf.copy() for k, gdf in hit.items()}


def _read_layers(config: Config, *, cache: str | Path | None) -> dict[str, gpd.GeoDataFrame]:
    layers = {key: read_layer(layer, cache=cache) for key, layer in config.layers.items()
              if not _dissolved(config, key)}
    for key, layer in config.layers.items():
        if _dissolved(config, key):
            layers[key] = _derived(("dissolve", key, layer, config.layers[layer.built_from]),
                                   cache, lambda key=key, layer=layer: _dissolve(
                                       config, key, layers[layer.built_from], cache=cache))
    layers = {key: layers[key] for key in config.layers}
    if config.land_layer:
        land = _union(layers[config.land_layer].geometry.values, cache=cache)
        for key, gdf in layers.items():
            if key != config.land_layer:
                gdf["area_km2"] = shapely.area(shapely.intersection(gdf.geometry.values,
                                                                    land)) / 1e6
    return layers


#: Layers and unions kept in memory per process (the app and tests read them many times).
_MEMO_SIZE = 8
_LAYERS_MEMO: dict = {}
_UNION_MEMO: dict = {}
_MEMO_LOCK = threading.Lock()
_SHA_MEMO: dict = {}
#: Bump when what the derived files hold changes.
_DERIVED_VERSION = 1


def _file_sha256(path: Path) -> str:
    """sha256 of a file, computed once per process for the same size and time stamp."""
    try:
        st = path.stat()
    except OSError:
        return ""
    key = (str(path.resolve()), st.st_size, st.st_mtime_ns)
    if key not in _SHA_MEMO:
        _SHA_MEMO[key] = sha256_file(path)
    return _SHA_MEMO[key]


def _layers_key(config: Config, cache) -> tuple:
    root = cache_dir(cache)
    files = sorted({layer.file for layer in config.layers.values()})
    return (str(root.resolve()), tuple(sorted(config.layers.items())), config.land_layer,
            tuple((f, _file_sha256(root / f)) for f in files))


def _derived(what: tuple, cache, build) -> gpd.GeoDataFrame:
    """A layer derived from cached files, from ``<cache>/derived/`` when it was built
    before from the same files (by sha256), else built and kept there (a read-only cache
    is left as it is)."""
    root = cache_dir(cache)
    files = sorted({v.file for v in what if isinstance(v, Layer)})
    ident = json.dumps([_DERIVED_VERSION, repr(what),
                        [(f, _file_sha256(root / f)) for f in files]])
    path = root / "derived" / f"{what[0]}-{hashlib.sha256(ident.encode()).hexdigest()[:24]}.parquet"
    return kept(path, build, read=gpd.read_parquet, write=lambda g, p: g.to_parquet(p),
                what="derived layer")


def _union(geoms, *, cache=None) -> shapely.Geometry:
    """``shapely.union_all`` of polygons, once per process for the same polygons and kept
    in ``<cache>/derived/`` (by the polygons' WKB) for the next process."""
    geoms = np.asarray(geoms)
    ids = tuple(map(id, geoms))  # the entry holds the geometries: ids are not reused
    with _MEMO_LOCK:
        hit = _UNION_MEMO.get(ids)
    if hit is not None:
        return hit[1]
    digest = hashlib.sha256(b"".join(shapely.to_wkb(geoms))).hexdigest()[:24]
    out = kept(cache_dir(cache) / "derived" / f"union-{digest}.wkb",
               lambda: shapely.union_all(geoms),
               read=lambda p: shapely.from_wkb(p.read_bytes()),
               write=lambda u, p: p.write_bytes(shapely.to_wkb(u)), what="derived union")
    with _MEMO_LOCK:
        _UNION_MEMO[ids] = (geoms, out)
        while len(_UNION_MEMO) > _MEMO_SIZE:
            _UNION_MEMO.pop(next(iter(_UNION_MEMO)))
    return out


def _dissolved(config: Config, key: str) -> bool:
    """A layer built from a finer one and given by the finer layer's file: that file
    dissolved by the layer's code column."""
    layer = config.layers[key]
    return bool(layer.built_from) and layer.file == config.layers[layer.built_from].file


def _dissolve(config: Config, key: str, finer: gpd.GeoDataFrame, *,
              cache: str | Path | None) -> gpd.GeoDataFrame:
    layer, base = config.layers[key], config.layers[config.layers[key].built_from]
    path = cache_dir(cache) / layer.file
    attrs = gpd.read_file(path, columns=[base.code, layer.code, layer.name],
                          ignore_geometry=True)
    for col in (layer.code, layer.name):
        if col not in attrs.columns:
            raise GeodataError(f"{path} has no column '{col}' (layer '{key}', built from "
                               f"'{base.key}'); fix the layer's code/name in the configuration.")
    of = attrs.astype(str).set_index(base.code)
    parts = finer.assign(code=finer["code"].map(of[layer.code]),
                         name=finer["code"].map(of[layer.name]))
    out = parts.dissolve("code", aggfunc={"name": "first"}).reset_index()
    out = gpd.GeoDataFrame(out[["code", "name"]], geometry=out.geometry.values,
                           crs=WORKING_CRS)
    out["area_km2"] = out.geometry.area / 1e6
    return out[["code", "name", "area_km2", "geometry"]].sort_values("code", ignore_index=True)


def layer_codes(frame: pd.DataFrame, layers: dict[str, gpd.GeoDataFrame], config: Config,
                key: str) -> np.ndarray:
    """The code in layer ``key`` of each row of ``frame`` (incidents, or places with
    ``x, y`` and ``lsoa_code``); '' when in none.

    Layers the store keeps (:attr:`Config.stored_layers`) are read from ``<key>_code``; a
    layer built from a finer one follows the row's finer area (so its totals add up); any
    other is assigned by its points (EPSG:27700), with the configured nearest rule.
    """
    if key not in config.layers:
        raise ValueError(f"layer '{key}' is not in the configuration; use one of "
                         f"{sorted(config.layers)}.")
    col = f"{key}_code"
    if key in config.stored_layers and col in frame.columns:
        return frame[col].to_numpy(dtype=object)
    built_from = config.layers[key].built_from
    if built_from:
        finer = layer_codes(frame, layers, config, built_from)
        lookup = nesting(layers[built_from], layers[key])
        return pd.Series(finer, dtype=object).map(lookup).fillna("").to_numpy(dtype=object)
    idx = assign_points(frame["x"].to_numpy(dtype=float), frame["y"].to_numpy(dtype=float),
                        layers[key], nearest_max_m=config.nearest_max_m)
    return np.append(layers[key]["code"].to_numpy(dtype=object), "")[idx]


def read_population(config: Config, layers: dict[str, gpd.GeoDataFrame], key: str, *,
                    cache: str | Path | None = None) -> tuple[pd.Series | None, str]:
    """Residents per area of layer ``key`` from the configured LSOA population file, and
    how: ``"exact"`` for LSOAs and layers built from them (sums of their LSOAs), ``"by
    area"`` for any other layer (each LSOA's residents shared by the share of its area in
    each area). ``(None, "")`` when no population file is configured; an area with no
    residents counted is missing from the Series (its rate is n/a, never 0 or infinite).
    """
    pop = config.population
    if pop is None:
        return None, ""
    path = cache_dir(cache) / pop.file
    if not path.exists():
        raise GeodataError(f"population file {path} is not installed. Run `hotspots geodata "
                           "install` (it is listed in the area's manifest).")
    table = pd.read_csv(path, dtype={pop.code: str})
    for col in (pop.code, pop.value):
        if col not in table.columns:
            raise GeodataError(f"{path} has no column '{col}'; columns are "
                               f"{list(table.columns)}. Fix [population] in the configuration.")
    lsoa_pop = pd.to_numeric(table.set_index(pop.code)[pop.value], errors="coerce")
    lsoas = layers[config.finest_layer]
    lsoa_pop = lsoa_pop.reindex(lsoas["code"]).dropna()
    chain, k = [], key
    while k != config.finest_layer and config.layers[k].built_from:
        chain.append(k)
        k = config.layers[k].built_from
    if k == config.finest_layer:
        codes = pd.Series(lsoa_pop.index, index=lsoa_pop.index)
        finer = config.finest_layer
        for step in reversed(chain):
            codes = codes.map(nesting(layers[finer], layers[step]))
            finer = step
        return lsoa_pop.groupby(codes.to_numpy()).sum(), "exact"
    geoms = np.asarray(lsoas.geometry.values)
    areas = np.asarray(layers[key].geometry.values)
    li, ai = shapely.STRtree(areas).query(geoms, predicate="intersects")
    share = shapely.area(shapely.intersection(geoms[li], areas[ai])) / shapely.area(geoms[li])
    residents = lsoa_pop.reindex(lsoas["code"].to_numpy()[li]).to_numpy() * share
    out = pd.Series(residents, index=layers[key]["code"].to_numpy()[ai])
    return out.groupby(level=0).sum(min_count=1).dropna(), "by area"


def study_area(layers: dict[str, gpd.GeoDataFrame], config: Config, *,
               cache: str | Path | None = None) -> shapely.Geometry:
    """The study area: union of the boundary layer's polygons (EPSG:27700). Records
    outside it are rejected. Computed once per process for the same polygons, and kept in
    the geodata cache (``cache``, see :func:`cache_dir`) for the next."""
    return _union(layers[config.boundary_layer].geometry.values, cache=cache)


def land_area(layers: dict[str, gpd.GeoDataFrame], config: Config, *,
              cache: str | Path | None = None) -> shapely.Geometry:
    """Where grids and kernel density are computed: the land layer's union when one is
    configured (no cells on the river), else the study area."""
    if not config.land_layer:
        return study_area(layers, config, cache=cache)
    return _union(layers[config.land_layer].geometry.values, cache=cache)
