"""Which area a store belongs to, and setting up a new area.

A store records the area it was built for (its name, code and the checksums of the layer
files its incidents were assigned with) in its ``meta`` table. Every command and page
opens the store through :func:`check_store_area`, which refuses a configuration of
another area (or other boundary files) instead of answering with zero incidents in
every area.
"""

from __future__ import annotations

import json
import re
import shutil
from importlib import resources
from pathlib import Path

import geopandas as gpd

from . import geography, store
from .config import DEFAULT_CONFIG, Config
from .errors import ConfigError

_SHA_CACHE: dict[tuple, str] = {}


def _sha256(path: Path) -> str:
    st = path.stat()
    key = (str(path.resolve()), st.st_size, st.st_mtime_ns)
    if key not in _SHA_CACHE:
        _SHA_CACHE[key] = geography.sha256_file(path)
    return _SHA_CACHE[key]


def area_identity(config: Config, *, cache: str | Path | None = None) -> dict[str, str]:
    """What a store built with ``config`` records: ``area_name``, ``area_code``,
    ``config`` (where it came from) and ``layers`` (JSON: layer key -> file and sha256 of
    each layer whose codes the store keeps)."""
    root = geography.cache_dir(cache)
    layers = {}
    for key in config.stored_layers:
        path = root / config.layers[key].file
        layers[key] = {"file": config.layers[key].file,
                       "sha256": _sha256(path) if path.exists() else ""}
    return {"area_name": config.name, "area_code": config.code, "config": config.source,
            "layers": json.dumps(layers, sort_keys=True)}


def _who(name: str, code: str) -> str:
    return f"{name} ({code})" if code else name


def check_store_area(conn, config: Config, *, store_file: str | Path,
                     cache: str | Path | None = None, record: bool = False) -> None:
    """Refuse a store built for another area or with other boundary files; with
    ``record`` (loading exports), record the area in a store that has none yet.

    A store without a record but with incidents (made before stores kept one) is adopted
    when some of its LSOA codes are the configuration's.

    Raises
    ------
    ConfigError
        naming both areas (or the changed layer files) and the fix.
    """
    meta = store.read_meta(conn)
    mine = area_identity(config, cache=cache)
    if "area_name" not in meta:
        codes = store.lsoa_codes(conn, limit=1000)  # a store made before stores kept a record
        if codes:
            known = set(geography.read_layer(config.layers[config.finest_layer],
                                             cache=cache)["code"])
            if not known.intersection(codes):
                raise ConfigError(
                    f"the store {store_file} holds incidents of other areas than "
                    f"{_who(config.name, config.code)} ({config.source}): none of its "
                    f"LSOA codes (such as {codes[0]}) is in the configuration's "
                    f"{config.layers[config.finest_layer].file}. Give that store's "
                    "configuration with --config (or HOTSPOTS_CONFIG), or another store with "
                    "--store (or HOTSPOTS_STORE).")
        if codes or record:
            store.write_meta(conn, **mine)
        return
    if (meta["area_name"], meta.get("area_code", "")) != (config.name, config.code):
        raise ConfigError(
            f"the store {store_file} was built for {_who(meta['area_name'], meta['area_code'])}"
            f" (configuration {meta.get('config', '?')}), but the configuration in use is "
            f"{_who(config.name, config.code)} ({config.source}). Give the store's "
            "configuration with --config FILE (or HOTSPOTS_CONFIG), or a store of "
            f"{config.name} with --store FILE (or HOTSPOTS_STORE).")
    then, now = json.loads(meta.get("layers", "{}")), json.loads(mine["layers"])
    changed = [k for k in sorted(set(then) & set(now)) if then[k] != now[k]]
    if changed:
        k = changed[0]
        raise ConfigError(
            f"the store {store_file} of {config.name} was built with other boundary files: "
            f"layer '{k}' was {then[k]['file']} (sha256 {then[k]['sha256'][:12]}...), it is "
            f"now {now[k]['file']} (sha256 {now[k]['sha256'][:12]}...), so its incidents "
            "were assigned to other areas. Load the exports again into a new store "
            "(--store NEW_FILE), or install the files the store was built with.")


# --- setting up an area -------------------------------------------------------------

#: The London LSOA file and its columns (Census 2021 LSOAs with their MSOA and borough).
LONDON_LSOA = "london_lsoa21.gpkg"
LONDON_POPULATION = "population_lsoa21_london.csv"
_LONDON = {"name": "London", "code": "E12000007"}


def slug(name: str) -> str:
    """'City of London' -> 'city-of-london': a file and folder name."""
    return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-") or "area"


def _column(frame: gpd.GeoDataFrame, patterns: tuple[str, ...], what: str, path) -> str:
    cols = [c for c in frame.columns if c != "geometry"]
    for pat in patterns:
        hit = [c for c in cols if re.fullmatch(pat, c, flags=re.IGNORECASE)]
        if hit:
            return hit[0]
    raise ConfigError(f"{path}: no {what} column found among {cols}; name it with "
                      f"FILE:CODE_COLUMN:NAME_COLUMN.")


def read_boundaries(spec: str, *, key: str) -> gpd.GeoDataFrame:
    """A boundary file in any format GDAL reads, as ``code, name, geometry`` in
    EPSG:27700. ``spec`` is ``FILE`` or ``FILE:CODE_COLUMN:NAME_COLUMN``; without the
    columns, ``<key>..cd``/``code`` and ``<key>..nm``/``name`` are looked for."""
    path, _, cols = spec.partition(":") if not Path(spec).exists() else (spec, "", "")
    try:
        frame = gpd.read_file(path)
    except Exception as exc:  # noqa: BLE001 - GDAL's errors vary by driver
        raise ConfigError(f"cannot read boundary file {path}: {exc}. Give a file GDAL reads "
                          "(GeoPackage, GeoJSON, Shapefile...).") from exc
    code, name = cols.split(":", 1) if cols else (
        _column(frame, (rf"{key}\d*cd", r".*cd", r".*code"), "code", path),
        _column(frame, (rf"{key}\d*nm", r".*nm", r".*name"), "name", path))
    for col in (code, name):
        if col not in frame.columns:
            raise ConfigError(f"{path} has no column '{col}'; columns are "
                              f"{[c for c in frame.columns if c != 'geometry']}.")
    if frame.crs is None:
        frame = frame.set_crs("EPSG:4326")
    out = gpd.GeoDataFrame({"code": frame[code].astype(str), "name": frame[name].astype(str)},
                           geometry=frame.geometry.values, crs=frame.crs).to_crs(27700)
    if out.empty:
        raise ConfigError(f"{path} has no areas.")
    return out


def london_boroughs(borough: str, *, cache: str | Path | None = None
                    ) -> tuple[str, str, gpd.GeoDataFrame]:
    """The LSOAs of a London borough (by code, E09000001, or name, "City of London") or of
    all London (``"London"`` or ``"all"``) from the geodata cache's london_lsoa21.gpkg:
    ``(name, code, frame)``, the frame with ``code, name, msoa21cd, msoa21nm, lad22cd,
    lad22nm``."""
    path = geography.cache_dir(cache) / LONDON_LSOA
    if not path.exists():
        raise ConfigError(f"{path} is not installed; run `hotspots geodata install` first.")
    frame = gpd.read_file(path)
    if borough.casefold() in ("all", "london"):
        name, code, rows = _LONDON["name"], _LONDON["code"], frame
    else:
        hit = (frame["lad22cd"].str.upper() == borough.upper()) | (
            frame["lad22nm"].str.casefold() == borough.casefold())
        if not hit.any():
            names = sorted(frame["lad22nm"].unique())
            raise ConfigError(f"'{borough}' is not a London borough code or name in {path}; "
                              f"use one of {', '.join(names)} (or its E09 code), or 'all'.")
        rows = frame.loc[hit]
        name, code = rows["lad22nm"].iloc[0], rows["lad22cd"].iloc[0]
    out = rows.rename(columns={"lsoa21cd": "code", "lsoa21nm": "name"})
    return name, code, out[["code", "name", "msoa21cd", "msoa21nm", "lad22cd", "lad22nm",
                            "geometry"]].reset_index(drop=True)


def _manifest_entry(name: str, sha: str, url: str | None) -> str:
    line = f'[[files]]\nname = "{name}"\nsha256 = "{sha}"\n'
    return line + (f'url = "{url}"\n' if url else "")


def init_area(name: str, *, code: str = "", lsoa: gpd.GeoDataFrame,
              layers: dict[str, gpd.GeoDataFrame] | None = None,
              nested: dict[str, tuple[str, str, str]] | None = None,
              main_layer: str | None = None, population: str | Path | None = None,
              out_dir: str | Path, cache: str | Path | None = None,
              template: Config | None = None) -> dict:
    """Set up an area from its boundaries: write its layer files, a configuration and a
    geodata manifest (sha256 of each file) to ``out_dir``, and install the files into
    the geodata cache, so the next command can load exports.

    Parameters
    ----------
    name, code : the area's name and code (E09... for a London borough).
    lsoa : the LSOAs (``code, name, geometry``, any CRS; extra columns are kept for
        ``nested`` layers). Required: the finest statistical layer.
    layers : other layers by key (``ward``, ``snt``, ``pspo``...), ``code, name,
        geometry``; each is assigned by its own polygons.
    nested : layers built from the LSOAs: key -> (label, code column, name column) of
        ``lsoa`` (e.g. ``{"msoa": ("MSOA", "msoa21cd", "msoa21nm")}``).
    main_layer : the layer the app's filters and patrol map choose from (default: wards
        if given, else the coarsest nested layer with more than one area, else LSOAs).
    population : a CSV of residents by LSOA (``lsoa21cd, usual_residents``), copied.
    template : configuration whose taxonomy, weights and rules are copied (default: the
        packaged one); its layers and names are not.

    Returns
    -------
    dict with ``name, code, config, manifest, files`` (written) and ``counts`` (areas per
    layer).
    """
    from .config import load_config

    layers = dict(layers or {})
    nested = dict(nested or {})
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    stem = slug(name)
    written: dict[str, Path] = {}
    keep = ["code", "name", *(c for _, a, b in nested.values() for c in (a, b))]
    lsoa = lsoa.to_crs(27700)
    frames = {"lsoa": lsoa[list(dict.fromkeys(keep)) + ["geometry"]], **layers}
    for key, frame in frames.items():
        path = out / f"{stem}_{key}.gpkg"
        path.unlink(missing_ok=True)
        gpd.GeoDataFrame(frame, crs=frame.crs).to_crs(27700).to_file(path, driver="GPKG",
                                                                     layer=key)
        written[key] = path
    counts = {"lsoa": int(len(lsoa)), **{k: int(len(v)) for k, v in layers.items()},
              **{k: int(lsoa[c].nunique()) for k, (_, c, _) in nested.items()}}
    if main_layer is None:
        several = sorted((counts[k], k) for k in nested if counts[k] > 1)
        main_layer = "ward" if "ward" in layers else (several[0][1] if several else "lsoa")
    pop_name = None
    if population is not None:
        pop_name = Path(population).name
        shutil.copyfile(population, out / pop_name)
        written["population"] = out / pop_name
    known = {}
    try:
        from .geography import read_manifest

        default = Path(load_config().manifest)
        known = {f.name: f.url for f in read_manifest(default)} if default.exists() else {}
    except ConfigError:
        pass
    manifest = out / "manifest.toml"
    manifest.write_text(
        f"# Geodata of {name}, written by `hotspots area init`: install with\n"
        f"# hotspots --config {out / (stem + '.toml')} geodata install --from {out}\n\n"
        + "\n".join(_manifest_entry(p.name, geography.sha256_file(p), known.get(p.name))
                    for p in written.values()), "utf-8")
    text = [f"# {name}: written by `hotspots area init`. Layers are files named in the",
            "# manifest beside this file; edit labels, add layers (ward, snt, pspo...) as",
            "# [layers.KEY] with file, code, name (and built_from for layers made of LSOAs).",
            "", "[study_area]", f"name = {_toml(name)}", f"code = {_toml(code)}",
            'boundary_layer = "lsoa"', f"main_layer = {_toml(main_layer)}",
            f"manifest = {_toml(str(manifest))}", "",
            "[layers.lsoa]", f'file = "{written["lsoa"].name}"', 'code = "code"',
            'name = "name"', ""]
    for key, (label, c, n) in nested.items():
        text += [f"[layers.{key}]", f'file = "{written["lsoa"].name}"', f"code = {_toml(c)}",
                 f"name = {_toml(n)}", f"label = {_toml(label)}", 'built_from = "lsoa"', ""]
    for key in layers:
        text += [f"[layers.{key}]", f'file = "{written[key].name}"', 'code = "code"',
                 'name = "name"', ""]
    if pop_name:
        text += ["[population]", f"file = {_toml(pop_name)}", 'code = "lsoa21cd"',
                 'value = "usual_residents"', ""]
    text.append(_rules(template))
    cfg_path = out / f"{stem}.toml"
    cfg_path.write_text("\n".join(text), "utf-8")
    load_config(cfg_path)  # what was written loads
    geography.install_geodata(manifest, source_dir=out, cache=cache)
    return {"name": name, "code": code, "config": str(cfg_path), "manifest": str(manifest),
            "files": {k: str(v) for k, v in written.items()}, "counts": counts,
            "main_layer": main_layer}


def _toml(value: str) -> str:
    return json.dumps(value, ensure_ascii=False)  # a TOML basic string is a JSON string


def _rules(template: Config | None) -> str:
    """Everything but the place: the taxonomy, harm weights, ranking and rules, from the
    template's file (comments kept) from its [assign] table on."""
    if template is not None and Path(template.source).is_file():
        text = Path(template.source).read_text("utf-8")
    else:
        text = resources.files("hotspots").joinpath("data", DEFAULT_CONFIG).read_text("utf-8")
    return text[text.index("[assign]"):] if "[assign]" in text else text
