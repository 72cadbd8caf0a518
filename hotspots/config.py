"""Study-area configuration: layers, taxonomy, harm weights. Frozen, loaded from TOML.

The default configuration (Tower Hamlets) ships with the package; another borough
passes its own file. Nothing else in the package names a place.
"""

from __future__ import annotations

import datetime as dt
import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

from .errors import ConfigError

DEFAULT_CONFIG = "tower_hamlets.toml"

#: Where each setting comes from when no flag gives it (the README's table).
SETTINGS = {  # setting: (environment variable, default)
    "config": ("HOTSPOTS_CONFIG", f"(packaged) {DEFAULT_CONFIG}"),
    "store": ("HOTSPOTS_STORE", "data/hotspots.sqlite"),
    "geodata": ("HOTSPOTS_GEODATA", "geodata/cache"),
}


@dataclass(frozen=True)
class Settings:
    """The configuration file (None: the packaged default), the store file and the geodata
    cache, with the rule that chose each (``"flag"``, the variable's name, ``"default"``).
    Build with :func:`resolve_settings`."""

    config: str | None
    store: Path
    geodata: Path
    chosen_by: dict[str, str]


def resolve_settings(*, config: str | Path | None = None, store: str | Path | None = None,
                     geodata: str | Path | None = None,
                     environ: Mapping[str, str] | None = None) -> Settings:
    """The one rule for the CLI and the app: a flag (argument) first, then the environment
    (``HOTSPOTS_CONFIG``, ``HOTSPOTS_STORE``, ``HOTSPOTS_GEODATA``), then the default
    (:data:`SETTINGS`). Empty values count as not given."""
    env = os.environ if environ is None else environ
    given = {"config": config, "store": store, "geodata": geodata}
    values, chosen = {}, {}
    for key, (var, default) in SETTINGS.items():
        if given[key]:
            values[key], chosen[key] = str(given[key]), "flag"
        elif env.get(var):
            values[key], chosen[key] = env[var], var
        else:
            values[key], chosen[key] = (None if key == "config" else default), "default"
    return Settings(config=values["config"], store=Path(values["store"]),
                    geodata=Path(values["geodata"]), chosen_by=chosen)


#: Labels of the usual layers; any other key is labelled from the key, or by ``label``.
_LABELS = {"lsoa": ("LSOA", "LSOAs"), "lsoa11": ("LSOA (2011)", "LSOAs (2011)"),
           "msoa": ("MSOA", "MSOAs"), "ward": ("Ward", "Wards"),
           "snt": ("Safer Neighbourhood Team area", "Safer Neighbourhood Team areas"),
           "pspo": ("PSPO zone", "PSPO zones"), "estate": ("Estate", "Estates")}


@dataclass(frozen=True)
class Layer:
    """A named area layer (LSOAs, wards, MSOAs, SNT areas, PSPO zones, estates).

    ``label``/``plural`` name it in every output. ``built_from`` names a finer layer it is
    made of (MSOAs from LSOAs): an incident's area then follows its finer area's, so
    totals add up; when its ``file`` is the finer layer's file it is that file dissolved
    by its ``code`` column.
    """

    key: str
    file: str
    code: str
    name: str
    label: str = ""
    plural: str = ""
    built_from: str = ""


@dataclass(frozen=True)
class Category:
    key: str
    label: str
    group: str
    weight: float


@dataclass(frozen=True)
class Config:
    """Everything place-specific. Build with :func:`load_config`."""

    name: str
    code: str
    boundary_layer: str
    manifest: str
    layers: dict[str, Layer]
    categories: dict[str, Category]
    police_uk_types: dict[str, str]
    nearest_max_m: float = 250.0
    location_key_m: int = 10
    future_tolerance_days: int = 1
    earliest_date: dt.date = dt.date(2000, 1, 1)
    land_layer: str = ""
    ranking: dict[str, float] = field(default_factory=dict)
    partner_min_count: int = 5
    trigger_reports: int = 3
    trigger_window_days: int = 182
    source: str = field(default="", compare=False)
    main_layer: str = "lsoa"
    demo_police_uk: str = ""
    population: Population | None = None

    @property
    def finest_layer(self) -> str:
        """The finest statistical layer (LSOAs): police.uk's codes and population use it."""
        return "lsoa"

    @property
    def stored_layers(self) -> tuple[str, ...]:
        """Layers whose codes the store keeps for each incident (the others are derived
        when read): the boundary layer, the finest layer and wards when configured."""
        keys = (self.boundary_layer, self.finest_layer, "ward")
        return tuple(k for k in dict.fromkeys(keys) if k in self.layers)

    @property
    def summary_layers(self) -> tuple[str, ...]:
        """Layers to report by: the finest first, then the others in configuration order
        (not ``lsoa11``, kept only to check police.uk's 2011 codes)."""
        keys = (self.finest_layer, *self.layers)
        return tuple(k for k in dict.fromkeys(keys) if k != "lsoa11")

    def layer_label(self, key: str, *, plural: bool = False) -> str:
        layer = self.layers.get(key)
        if layer is None:
            return key
        return layer.plural if plural else layer.label

    def weight(self, category: str) -> float:
        return self.categories[category].weight

    def label(self, category: str) -> str:
        cat = self.categories.get(category)
        return cat.label if cat else category


@dataclass(frozen=True)
class Population:
    """Residents by LSOA: a CSV in the geodata cache with a code and a count column."""

    file: str
    code: str = "lsoa21cd"
    value: str = "usual_residents"


def _population(spec: dict | None, where: str) -> Population | None:
    if not spec:
        return None
    return Population(file=_require(spec, "file", "population", where),
                      code=str(spec.get("code", "lsoa21cd")),
                      value=str(spec.get("value", "usual_residents")))


def _require(table: dict, key: str, where: str, path: str):
    if key not in table:
        raise ConfigError(f"{path}: [{where}] has no '{key}'. Add it (see the default "
                          f"configuration {DEFAULT_CONFIG} for an example).")
    return table[key]


def load_config(path: str | Path | None = None) -> Config:
    """Load a study-area configuration from TOML; ``None`` gives the packaged default.

    Raises
    ------
    ConfigError
        naming the file and the missing or wrong key.
    """
    if path is None:
        text = resources.files("hotspots").joinpath("data", DEFAULT_CONFIG).read_text("utf-8")
        where = f"(packaged) {DEFAULT_CONFIG}"
    else:
        try:
            text = Path(path).read_text("utf-8")
        except OSError as exc:
            raise ConfigError(f"cannot read configuration file {path}: {exc.strerror}. "
                              "Check the path given to --config.") from exc
        where = str(path)
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{where} is not valid TOML: {exc}") from exc

    area = _require(raw, "study_area", "top level", where)
    layers_raw = _require(raw, "layers", "top level", where)
    layers = {}
    for key, spec in layers_raw.items():
        if not key.isidentifier():
            raise ConfigError(f"{where}: [layers.{key}]: a layer key is letters, digits and _ "
                              "(it names a column, e.g. msoa, snt_area, pspo).")
        label, plural = _LABELS.get(key, (key.replace("_", " ").capitalize(), ""))
        label = str(spec.get("label", label))
        layers[key] = Layer(key=key, file=_require(spec, "file", f"layers.{key}", where),
                            code=_require(spec, "code", f"layers.{key}", where),
                            name=_require(spec, "name", f"layers.{key}", where),
                            label=label, plural=str(spec.get("plural", plural or label + "s")),
                            built_from=str(spec.get("built_from", "")))
    if "lsoa" not in layers:
        raise ConfigError(f"{where}: no [layers.lsoa]. The finest statistical layer (LSOAs: "
                          "police.uk's own codes and population are by LSOA) is the one layer "
                          "every area needs; add it.")
    for layer in layers.values():
        if layer.built_from and (layer.built_from not in layers
                                 or layer.built_from == layer.key):
            raise ConfigError(f"{where}: layers.{layer.key}.built_from = '{layer.built_from}' "
                              f"is not another layer; use one of "
                              f"{sorted(set(layers) - {layer.key})}.")
    boundary = area.get("boundary_layer", "ward" if "ward" in layers else "lsoa")
    land = area.get("land_layer", "")
    main = area.get("main_layer", "ward" if "ward" in layers else "lsoa")
    for what, value in (("boundary_layer", boundary), ("land_layer", land),
                        ("main_layer", main)):
        if value and value not in layers:
            raise ConfigError(f"{where}: study_area.{what} = '{value}' is not a layer; use "
                              f"one of {sorted(layers)}.")
    cats = {}
    for key, spec in _require(raw, "categories", "top level", where).items():
        weight = spec.get("weight", 1.0)
        if not isinstance(weight, int | float) or weight < 0:
            raise ConfigError(f"{where}: categories.{key}.weight = {weight!r}; "
                              "give a number of 0 or more.")
        cats[key] = Category(key=key, label=spec.get("label", key),
                             group=spec.get("group", "Other"), weight=float(weight))
    puk = raw.get("police_uk_types", {})
    for value, key in puk.items():
        if key not in cats:
            raise ConfigError(f"{where}: police_uk_types.\"{value}\" = '{key}' is not a category; "
                              f"add [categories.{key}] or use one of {sorted(cats)}.")
    assign = raw.get("assign", {})
    ingest = raw.get("ingest", {})
    earliest = ingest.get("earliest_date", dt.date(2000, 1, 1))
    if not isinstance(earliest, dt.date) or isinstance(earliest, dt.datetime):
        raise ConfigError(f"{where}: ingest.earliest_date = {earliest!r}; give a date without "
                          "quotes, e.g. earliest_date = 2000-01-01.")
    return Config(
        name=_require(area, "name", "study_area", where),
        code=area.get("code", ""),
        boundary_layer=boundary,
        manifest=area.get("manifest", "geodata/manifest.toml"),
        layers=layers,
        categories=cats,
        police_uk_types=dict(puk),
        nearest_max_m=float(assign.get("nearest_max_m", 250.0)),
        location_key_m=int(ingest.get("location_key_m", 10)),
        future_tolerance_days=int(ingest.get("future_tolerance_days", 1)),
        earliest_date=earliest,
        land_layer=land,
        ranking={k: float(v) for k, v in raw.get("ranking", {}).items()},
        partner_min_count=int(raw.get("partner", {}).get("min_count", 5)),
        trigger_reports=int(raw.get("repeats", {}).get("trigger_reports", 3)),
        trigger_window_days=int(raw.get("repeats", {}).get("trigger_window_days", 182)),
        source=where,
        main_layer=main,
        demo_police_uk=str(area.get("demo_police_uk", "")),
        population=_population(raw.get("population"), where),
    )
