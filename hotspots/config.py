"""Study-area configuration: layers, taxonomy, harm weights. Frozen, loaded from TOML.

The default configuration ships with the package; another borough
passes its own file. Nothing else in the package names a place.
"""

from __future__ import annotations

import datetime as dt
import os
import re
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
    store: str  # a file, or a postgresql:// URL
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
    values: dict[str, str | None] = {}
    chosen: dict[str, str] = {}
    for key, (var, default) in SETTINGS.items():
        if given[key]:
            values[key], chosen[key] = str(given[key]), "flag"
        elif env.get(var):
            values[key], chosen[key] = env[var], var
        else:
            values[key], chosen[key] = (None if key == "config" else default), "default"
    return Settings(config=values["config"], store=str(values["store"]),
                    geodata=Path(str(values["geodata"])), chosen_by=chosen)


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
    """One incident category of the taxonomy: its key, label, harm weight and the rest."""

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
    #: Protective marking on every page of the tasking pack (``[pack] marking``).
    pack_marking: str = "OFFICIAL-SENSITIVE"
    #: Places in the pack's one-page brief (``[pack] brief_places``).
    brief_places: int = 8
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
    patrol: PatrolSettings = field(default_factory=lambda: patrol_settings({}, "defaults"))

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


@dataclass(frozen=True)
class Shift:
    """A patrol shift in whole hours; ``end_hour`` before ``start_hour`` crosses midnight."""

    key: str
    start_hour: int
    end_hour: int

    @property
    def hours(self) -> tuple[int, ...]:
        """Hours of day (0-23) an incident's ``hour`` must have to fall on the shift."""
        n = (self.end_hour - self.start_hour) % 24 or 24
        return tuple((self.start_hour + i) % 24 for i in range(n))

    @property
    def label(self) -> str:
        name = self.key.replace("_", " ").capitalize()
        return f"{name} {self.start_hour:02d}:00-{self.end_hour:02d}:00"


@dataclass(frozen=True)
class PatrolSettings:
    """Patrol map settings: ``[shifts]`` and ``[patrol]`` in the configuration."""

    shifts: dict[str, Shift]
    marking: str
    tile_url: str
    tile_attribution: str


#: Shifts when the configuration has no ``[shifts]`` table.
DEFAULT_SHIFTS = {"early": "07:00-15:00", "late": "15:00-23:00", "evening": "18:00-02:00",
                  "night": "23:00-07:00"}
DEFAULT_MARKING = "OFFICIAL-SENSITIVE"
DEFAULT_TILES = ("https://tile.openstreetmap.org/{z}/{x}/{y}.png",
                 "© OpenStreetMap contributors")
_SHIFT = re.compile(r"^\s*(\d{1,2}):(\d{2})\s*-\s*(\d{1,2}):(\d{2})\s*$")


def patrol_settings(raw: dict, where: str) -> PatrolSettings:
    """``[shifts]`` and ``[patrol]`` of a parsed configuration, checked; ``where`` names
    the file in messages. Shifts are ``name = "HH:00-HH:00"`` on the hour (incidents carry
    the hour only); an end before the start crosses midnight."""
    table = raw.get("shifts", DEFAULT_SHIFTS)
    if not isinstance(table, dict) or not table:
        raise ConfigError(f"{where}: [shifts] has no shifts; add at least one, such as "
                          'evening = "18:00-02:00".')
    shifts = {}
    for key, value in table.items():
        m = _SHIFT.match(value) if isinstance(value, str) else None
        h0, m0, h1, m1 = (int(g) for g in m.groups()) if m else (-1, 0, -1, 0)
        if not m or not (0 <= h0 <= 23 and 0 <= h1 <= 24):
            raise ConfigError(f"{where}: shifts.{key} = {value!r} is not a shift; write "
                              'it as "HH:MM-HH:MM", such as "18:00-02:00".')
        if m0 or m1:
            raise ConfigError(f"{where}: shifts.{key} = {value!r} does not start and end on "
                              "the hour; incidents carry the hour of day only, so round it "
                              'to whole hours, such as "18:00-02:00".')
        if h0 == h1 % 24 and h1 != 24:
            raise ConfigError(f"{where}: shifts.{key} = {value!r} starts and ends at the same "
                              'time; a shift round the clock is "00:00-24:00".')
        shifts[key] = Shift(key=key, start_hour=h0, end_hour=h1 % 24)
    patrol = raw.get("patrol", {})
    marking = patrol.get("marking", DEFAULT_MARKING)
    if not isinstance(marking, str) or not marking.strip():
        raise ConfigError(f"{where}: patrol.marking = {marking!r}; give the protective "
                          f'marking printed on patrol maps, such as "{DEFAULT_MARKING}".')
    url = patrol.get("tile_url", DEFAULT_TILES[0])
    if not isinstance(url, str) or not url.startswith(("https://", "http://")) \
            or not all(k in url for k in ("{z}", "{x}", "{y}")) \
            or any(k in url for k in ("{{", "{%", "{#")):
        raise ConfigError(f"{where}: patrol.tile_url = {url!r} is not a tile URL; give one "
                          "with {z}, {x} and {y} (and no other braces), such as "
                          f'"{DEFAULT_TILES[0]}".')
    attribution = patrol.get("tile_attribution",
                             DEFAULT_TILES[1] if url == DEFAULT_TILES[0] else "")
    if not isinstance(attribution, str) or not attribution.strip():
        raise ConfigError(f"{where}: patrol.tile_attribution is missing; a tile server's "
                          "maps must credit it: give the text its licence asks for.")
    return PatrolSettings(shifts=shifts, marking=marking.strip(), tile_url=url,
                          tile_attribution=attribution)


def _pack_settings(pack: dict, where: str) -> dict:
    """``[pack]``: the protective marking on every page and the places in the brief."""
    marking = pack.get("marking", DEFAULT_MARKING)
    if not isinstance(marking, str) or not marking.strip():
        raise ConfigError(f"{where}: pack.marking = {marking!r}; give the protective marking "
                          f'printed on every page of the tasking pack, such as '
                          f'"{DEFAULT_MARKING}".')
    places = pack.get("brief_places", 8)
    if not isinstance(places, int) or isinstance(places, bool) or not 1 <= places <= 12:
        raise ConfigError(f"{where}: pack.brief_places = {places!r}; give a whole number "
                          "from 1 to 12 (the brief must fit on one page).")
    return {"pack_marking": marking.strip(), "brief_places": places}


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
        **_pack_settings(raw.get("pack", {}), where),
        trigger_reports=int(raw.get("repeats", {}).get("trigger_reports", 3)),
        trigger_window_days=int(raw.get("repeats", {}).get("trigger_window_days", 182)),
        source=where,
        main_layer=main,
        demo_police_uk=str(area.get("demo_police_uk", "")),
        population=_population(raw.get("population"), where),
        patrol=patrol_settings(raw, where),
    )
