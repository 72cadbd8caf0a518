"""One analysis for every front-end: the parameters in the open, then grid counts with Gi*,
kernel density and places.

:func:`resolve_spec` chooses every parameter once (a flag or configuration value wins,
else a stated rule) and says which rule chose what; :func:`analyse` runs the analysis on
those frozen specs. Both are pure: no file, store or network I/O. The CLI
(:func:`hotspots.jobs.detect`), the tasking pack and the app call :func:`analyse`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd

from .config import Config
from .errors import HotspotsError
from .schema import CellShape, ClusterMethod, Kernel
from .validate import check_metres, check_option

Shape = CellShape
Method = ClusterMethod

#: Fewest incidents in a period to look for hotspots in.
MIN_INCIDENTS = 3

CELL_RULE = ("the larger of the bounding box's shorter side / 50 and sqrt(area / "
             "incidents), rounded down")
BANDWIDTH_RULE = "ArcGIS spatial Silverman, 0.9 min(SD, sqrt(1/ln 2) Dm) n^-0.2"


@dataclass(frozen=True)
class GridSpec:
    """The grid of counts and Gi*: cell size in metres (> 0) and cell shape.

    Examples
    --------
    >>> GridSpec(150.0)
    GridSpec(cell_size_m=150.0, shape='square')
    >>> GridSpec(0.0)
    Traceback (most recent call last):
    hotspots.errors.ValidationError: cell_size_m must be a positive number of metres, got 0.0.
    """

    cell_size_m: float
    shape: Shape = "square"

    def __post_init__(self) -> None:
        object.__setattr__(self, "cell_size_m", check_metres("cell_size_m", self.cell_size_m))
        check_option("shape", self.shape, ("square", "hex"))


@dataclass(frozen=True)
class KdeSpec:
    """The kernel density surface: bandwidth and raster cell size in metres, kernel."""

    bandwidth_m: float
    cell_size_m: float
    kernel: Kernel = "quartic"

    def __post_init__(self) -> None:
        object.__setattr__(self, "bandwidth_m", check_metres("bandwidth_m", self.bandwidth_m))
        object.__setattr__(self, "cell_size_m", check_metres("cell_size_m", self.cell_size_m))
        check_option("kernel", self.kernel, ("quartic", "gaussian"))


@dataclass(frozen=True)
class AnalysisSpec:
    """Every parameter of :func:`analyse`, and the sentences saying which rule chose which
    value (empty when every value was given)."""

    grid: GridSpec
    kde: KdeSpec
    method: Method = "dbscan"
    fdr: bool = True
    chosen: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        check_option("method", self.method, ("dbscan", "hdbscan"))


@dataclass(frozen=True, eq=False)
class Analysis:
    """What :func:`analyse` finds: ``cells`` (grid counts with Gi*, EPSG:27700, on the
    lattice of ``spec.grid``: look points up with
    ``hotspots.grid.cell_index(cells, x, y, cell_size_m=spec.grid.cell_size_m,
    shape=spec.grid.shape)``), ``raster`` (a :class:`hotspots.density.Raster`), ``places``
    (from :func:`hotspots.cluster.find_places`) and the ``spec`` it ran with."""

    cells: gpd.GeoDataFrame
    raster: Any
    places: gpd.GeoDataFrame
    spec: AnalysisSpec


def gistar_meta(spec: AnalysisSpec) -> dict:
    """How :func:`analyse`'s Gi* was made, as the maps name it (their layer of hot and
    cold spots) and the reports give it: ``cell_size_m``, ``cell_shape``,
    ``gi_neighbours`` (queen on squares, the six of a hexagon) and ``fdr``."""
    return {"cell_size_m": float(spec.grid.cell_size_m), "cell_shape": spec.grid.shape,
            "gi_neighbours": "queen" if spec.grid.shape == "square" else "6 hexagon",
            "fdr": spec.fdr}


def resolve_spec(x: Any, y: Any, area: Any, *, cell_size_m: float | None = None,
                 shape: Shape = "square", bandwidth_m: float | None = None,
                 kernel: Kernel = "quartic", method: Method = "dbscan",
                 fdr: bool = True) -> AnalysisSpec:
    """Choose every parameter of :func:`analyse` once: a value given wins (and must be
    valid: ``cell_size_m=0`` is an error, not "automatic"); a value left as None is chosen
    by its rule, and ``chosen`` says so.

    - grid cell size: :func:`hotspots.grid.suggest_cell_size` of the points over ``area``;
    - bandwidth: :func:`hotspots.density.suggest_bandwidth` of the points;
    - raster cell size: :func:`hotspots.grid.suggest_cell_size` with that bandwidth.

    Parameters
    ----------
    x, y : array-like of float
        The incidents' eastings and northings, EPSG:27700 metres.
    area : shapely geometry or GeoSeries
        The land area, EPSG:27700.

    Examples
    --------
    >>> import shapely
    >>> area = shapely.box(0, 0, 2000, 1000)
    >>> spec = resolve_spec([10, 1500, 1900], [20, 500, 900], area, cell_size_m=100,
    ...                     bandwidth_m=200)
    >>> spec.grid, spec.kde.bandwidth_m, spec.chosen
    (GridSpec(cell_size_m=100.0, shape='square'), 200.0, ())
    >>> resolve_spec([10, 1500], [20, 500], area, cell_size_m=0)
    Traceback (most recent call last):
    hotspots.errors.ValidationError: cell_size_m must be a positive number of metres, got 0.
    """
    from .density import suggest_bandwidth
    from .grid import suggest_cell_size

    chosen = []
    if cell_size_m is None:
        cell = suggest_cell_size(x, y, area)
        chosen.append(f"cell size set to {cell:g} m (rule: {CELL_RULE})")
    else:
        cell = check_metres("cell_size_m", cell_size_m)
    if bandwidth_m is None:
        bw = suggest_bandwidth(x, y)
        chosen.append(f"bandwidth set to {bw:g} m (rule: {BANDWIDTH_RULE})")
    else:
        bw = check_metres("bandwidth_m", bandwidth_m)
    raster_cell = suggest_cell_size(x, y, area, bandwidth_m=bw)
    return AnalysisSpec(grid=GridSpec(cell, shape), kde=KdeSpec(bw, raster_cell, kernel),
                        method=method, fdr=fdr, chosen=tuple(chosen))


def check_enough_incidents(n: int, label: str) -> None:
    """Raise HotspotsError when a period has too few incidents (fewer than
    :data:`MIN_INCIDENTS`) to look for hotspots in.

    Examples
    --------
    >>> check_enough_incidents(2, "2024-08")
    Traceback (most recent call last):
    hotspots.errors.HotspotsError: 2 incident(s) in 2024-08: too few to look for hotspots; ...
    """
    if n < MIN_INCIDENTS:
        raise HotspotsError(f"{n} incident(s) in {label}: too few to look for hotspots; "
                            "widen the period or the categories.")


def place_names(layers: dict[str, gpd.GeoDataFrame]) -> dict[str, str]:
    """Ward and LSOA names by code, from the layers that have them (places are named
    after them)."""
    return {c: n for key in ("ward", "lsoa") if key in layers
            for c, n in zip(layers[key]["code"], layers[key]["name"], strict=True)}


def analyse(incidents: pd.DataFrame, area: Any, *, config: Config,
            spec: AnalysisSpec | None = None,
            names: dict[str, str] | None = None, order: Any = None,
            grid: gpd.GeoDataFrame | None = None) -> Analysis:
    """Grid counts with Gi*, kernel density and places for a period's incidents.

    Parameters
    ----------
    incidents : pandas.DataFrame
        The period's incidents (``hotspots.schema.INCIDENT_COLUMNS``, EPSG:27700); at
        least 3. Not modified.
    area : shapely geometry
        The land area, EPSG:27700.
    config : Config
        Category weights (the harm weights of the grid counts) and place rules.
    spec : AnalysisSpec, optional
        From :func:`resolve_spec`; default: every value chosen by its rule.
    names : dict, optional
        Area names by code (:func:`place_names`) for the places' labels.
    order : array of int, optional
        Positions of the rows in the order their points are summed in (kernel density,
        harm-weighted counts: floating-point sums differ in the last bits with the order);
        default the rows' own. The places do not depend on the order.
    grid : geopandas.GeoDataFrame, optional
        ``make_grid(area, cell_size_m=..., shape=...)`` of the spec's grid, made already
        (:func:`hotspots.jobs.analysis_grid` keeps it in the geodata cache); default made
        here.

    Returns
    -------
    Analysis
        ``cells``, ``raster``, ``places`` and the ``spec`` used.
    """
    from .cluster import find_places
    from .density import kde
    from .gistar import gistar, grid_neighbours
    from .grid import grid_counts, make_grid

    # each category looked up once: its harm weight (1 when unknown or missing), and one
    # string object per category for the places' tallies (a year of rows read from a store
    # holds a string object per row, slow to hash again and again)
    codes, cats = pd.factorize(incidents["category"])
    weights = np.array([config.categories[c].weight if c in config.categories else 1.0
                        for c in cats] + [1.0])
    shared = np.append(np.asarray(cats, dtype=object), np.nan)[codes]
    rows = slice(None) if order is None else np.asarray(order)
    x, y = incidents["x"].to_numpy()[rows], incidents["y"].to_numpy()[rows]
    harm = weights[codes[rows]]
    spec = spec or resolve_spec(x, y, area)
    g = spec.grid
    if grid is None:
        grid = make_grid(area, cell_size_m=g.cell_size_m, shape=g.shape)
    cells = grid_counts(grid, x, y, weights=harm, cell_size_m=g.cell_size_m, shape=g.shape)
    cells = cells.join(gistar(cells["n"].to_numpy(dtype=float),
                              grid_neighbours(cells, cell_shape=g.shape), fdr=spec.fdr))
    raster = kde(x, y, area=area, bandwidth_m=spec.kde.bandwidth_m, kernel=spec.kde.kernel,
                 cell_size_m=spec.kde.cell_size_m)
    places = find_places(incidents.assign(category=shared), config=config, method=spec.method,
                         area_km2=area.area / 1e6, names=names)
    return Analysis(cells=cells, raster=raster, places=places, spec=spec)
