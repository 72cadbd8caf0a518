"""Which area a store belongs to, and setting up a new area.

A store records the area it was built for (its name, code and the checksums of the layer
files its incidents were assigned with) in its ``meta`` table. Every command and page
opens the store through :func:`check_store_area`, which refuses a configuration of
another area (or other boundary files) instead of answering with zero incidents in
every area.
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

from . import geography, store
from .config import Config
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


def check_store_area(conn: sqlite3.Connection, config: Config, *, store_file: str | Path,
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
        codes = [r[0] for r in conn.execute(  # a store made before stores kept a record
            "SELECT DISTINCT lsoa_code FROM incidents WHERE lsoa_code != '' LIMIT 1000")]
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
