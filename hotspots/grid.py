"""Square and hexagonal grids over the study area, point-to-cell lookup and cell counts.

A grid is a lattice of cells anchored at the CRS origin (0, 0), so the same area and cell
size always give the same cells, and grids of the same size over different areas line up
cell for cell. Cells are clipped to the area; cells that meet it in zero area are left out.

So a lattice is fixed by the cell size and shape alone (a ``GridSpec``): :func:`cell_index`
and :func:`grid_counts` take them, as :func:`make_grid` does, and check the cells lie on
it. Nothing about the layout rides in ``DataFrame.attrs`` (joins drop it).

The cell rule (one cell per point, deterministic):

1. The lattice is half-open. Squares own their west and south edges and their south-west
   corner: a point on an edge between two squares goes to the square east or north of
   it. A flat-topped hexagon owns its south, north-west and north-east edges: a point on
   a horizontal edge goes to the hexagon north of it, a point on a sloping edge to the
   hexagon south of it (exact where the coordinates are; points on the sloping edges are
   only on them up to rounding, since their positions involve sqrt(3)).
2. A point is in the grid when it is in the closed study area (a point on the area's
   boundary counts, as in :mod:`hotspots.assign`). If the lattice cell of rule 1 does not
   contain it after clipping (it lies on the area's edge of a neighbouring cell), it goes
   to the lowest ``cell_id`` whose clipped cell contains it.
3. A point outside the closed area, or with a NaN coordinate, gets -1.
"""

from __future__ import annotations

import logging
import math
from types import SimpleNamespace

import geopandas as gpd
import numpy as np
import pyproj
import shapely

from .errors import ValidationError
from .schema import GRID_COLUMNS, WORKING_CRS, CellShape
from .validate import check_metres, check_option, check_positive, check_projected, check_xy

logger = logging.getLogger(__name__)

SHAPES = ("square", "hex")
#: Upper bound on lattice cells over the area's bounding box.
MAX_CELLS = 4_000_000
#: "Nice" mantissas for suggested cell sizes: 1, 2, 2.5 and 5 times a power of ten.
NICE = (1.0, 2.0, 2.5, 5.0)
SQRT3 = math.sqrt(3.0)


def _check_shape(shape: str) -> str:
    check_option("shape", shape, SHAPES)
    return shape


def area_geometry(area, crs=None) -> tuple[shapely.Geometry, pyproj.CRS]:
    """The study area as one polygonal geometry and its projected CRS.

    ``area`` is a shapely geometry (in ``crs``, default EPSG:27700) or a GeoSeries /
    GeoDataFrame (its own CRS; its geometries are unioned). Raises CRSError on a CRS in
    degrees and ValueError when ``area`` has no area.

    Examples
    --------
    >>> import shapely
    >>> geom, crs = area_geometry(shapely.box(0, 0, 1000, 500))
    >>> geom.area, crs.to_epsg()
    (500000.0, 27700)
    """
    if isinstance(area, (gpd.GeoSeries, gpd.GeoDataFrame)):
        if crs is not None and area.crs is not None and pyproj.CRS(crs) != area.crs:
            raise ValueError(f"crs={crs!r} differs from the area's own CRS {area.crs}; "
                             "leave crs unset for a GeoSeries or GeoDataFrame.")
        check_projected(area, "area")
        geom, crs = shapely.union_all(np.asarray(area.geometry.values)), area.crs
    else:
        geom, crs = area, pyproj.CRS(crs if crs is not None else WORKING_CRS)
        check_projected(SimpleNamespace(crs=crs), "area")
    if not isinstance(geom, shapely.Geometry) or shapely.area(geom) <= 0:
        kind = geom.geom_type if isinstance(geom, shapely.Geometry) else type(geom).__name__
        raise ValueError(f"area must be a polygon or multipolygon with non-zero area, got {kind}.")
    return geom, crs


def _rings(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Polygons from closed rings, one row of vertex coordinates per polygon."""
    n, k = x.shape
    return shapely.from_ragged_array(
        shapely.GeometryType.POLYGON, np.stack([x.ravel(), y.ravel()], axis=1),
        (np.arange(0, n * k + 1, k), np.arange(n + 1)))


def _square_ring(rows, cols, s):
    # corners counter-clockwise from the south-west; neighbours share bit-identical corners
    dx, dy = np.array([0, 1, 1, 0, 0]), np.array([0, 0, 1, 1, 0])
    return (cols[:, None] + dx) * s, (rows[:, None] + dy) * s


def _hex_centres(rows, cols, s):
    return cols * (SQRT3 / 2 * s), (rows + cols / 2) * s


def _hex_ring(rows, cols, s):
    # vertices on the lattice of half-steps, so neighbours share bit-identical vertices:
    # x = m * R/2 with m = 3q + (2, 1, -1, -2, -1, 1); y = k * s/2 with k = 2r + q + ...
    half_r = s / SQRT3 / 2
    m = 3 * cols[:, None] + np.array([2, 1, -1, -2, -1, 1, 2])
    k = 2 * rows[:, None] + cols[:, None] + np.array([0, 1, 1, 0, -1, -1, 0])
    return m * half_r, k * (s / 2)


def _ring(shape, rows, cols, s) -> tuple[np.ndarray, np.ndarray]:
    """Each full cell's closed ring: x and y, one row of vertices per cell."""
    return (_square_ring if shape == "square" else _hex_ring)(rows, cols, s)


def _cells(shape, rows, cols, s):
    return _rings(*_ring(shape, rows, cols, s))


def _unclipped(geoms: np.ndarray, shape, rows, cols, s) -> np.ndarray:
    """Which cells are their full lattice cell, exactly (``shapely.equals_exact`` with the
    cell :func:`_cells` draws, tolerance 0): compared by coordinates, without drawing the
    cells (a 50 m grid of London has 641,000)."""
    x, y = _ring(shape, rows, cols, s)
    k = x.shape[1] if len(x) else 0
    out = ((shapely.get_type_id(geoms) == shapely.GeometryType.POLYGON)
           & (shapely.get_num_interior_rings(geoms) == 0)
           & (shapely.get_num_coordinates(geoms) == k))
    i = np.flatnonzero(out)
    xy = shapely.get_coordinates(geoms[i]).reshape(len(i), k, 2)
    out[i] = (xy[:, :, 0] == x[i]).all(axis=1) & (xy[:, :, 1] == y[i]).all(axis=1)
    return out


def _centres(shape, rows, cols, s):
    if shape == "square":
        return (cols + 0.5) * s, (rows + 0.5) * s
    return _hex_centres(rows, cols, s)


def _too_many(s: float, n: int, bounds) -> None:
    minx, miny, maxx, maxy = bounds
    raise ValueError(f"cell_size_m={s:g} gives about {n:,} cells over the area's "
                     f"{(maxx - minx) / 1000:.1f} x {(maxy - miny) / 1000:.1f} km bounding box; "
                     f"the limit is {MAX_CELLS:,}. Use a larger cell size.")


def _candidates(shape: str, s: float, bounds) -> tuple[np.ndarray, ...]:
    """Lattice (row, col) of every cell whose bounding box meets the area's."""
    minx, miny, maxx, maxy = bounds
    if shape == "square":
        col0, row0 = math.floor(minx / s), math.floor(miny / s)
        ncol = max(1, math.ceil(maxx / s) - col0)
        nrow = max(1, math.ceil(maxy / s) - row0)
        n = ncol * nrow
    else:
        step = SQRT3 / 2 * s  # centre-to-centre in x; the hexagon reaches s/sqrt(3) each side
        q0 = math.floor((minx - s / SQRT3) / step)
        q1 = math.ceil((maxx + s / SQRT3) / step)
        r0 = math.floor(miny / s - q1 / 2 - 1)
        r1 = math.ceil(maxy / s - q0 / 2 + 1)
        n = (q1 - q0 + 1) * (r1 - r0 + 1)
    if n > (1 if shape == "square" else 3) * MAX_CELLS:
        _too_many(s, n, bounds)
    if shape == "square":
        rows, cols = np.divmod(np.arange(n), ncol)
        return rows + row0, cols + col0
    cols, rows = np.meshgrid(np.arange(q0, q1 + 1), np.arange(r0, r1 + 1))
    rows, cols = rows.ravel(), cols.ravel()
    cx, cy = _hex_centres(rows, cols, s)
    keep = ((cx + s / SQRT3 > minx) & (cx - s / SQRT3 < maxx)
            & (cy + s / 2 > miny) & (cy - s / 2 < maxy))
    if keep.sum() > MAX_CELLS:
        _too_many(s, int(keep.sum()), bounds)
    return rows[keep], cols[keep]


def _boundary_segments(geom: shapely.Geometry) -> np.ndarray:
    """The area's boundary as an array of two-point line segments."""
    coords, ring = shapely.get_coordinates(shapely.get_rings(shapely.get_parts(geom)),
                                           return_index=True)
    same = ring[1:] == ring[:-1]
    return shapely.linestrings(np.stack([coords[:-1][same], coords[1:][same]], axis=1))


def _polygonal(geoms: np.ndarray) -> np.ndarray:
    """Keep only the polygonal part of intersection results (drop touching lines/points)."""
    out = geoms.copy()
    mixed = np.nonzero(~np.isin(shapely.get_type_id(geoms), (3, 6)))[0]  # not (Multi)Polygon
    for i in mixed:
        parts = shapely.get_parts(geoms[i])
        polys = parts[np.isin(shapely.get_type_id(parts), (3, 6))]
        out[i] = shapely.union_all(polys) if len(polys) else shapely.Polygon()
    return out


def make_grid(area, *, cell_size_m: float, shape: CellShape = "square",
              crs=None) -> gpd.GeoDataFrame:
    """Square or hexagonal cells covering the study area, clipped to it.

    Parameters
    ----------
    area : shapely geometry in ``crs`` (metres), or a GeoSeries / GeoDataFrame in a
        projected CRS (its geometries are unioned). Not modified.
    cell_size_m : for squares the side, in metres; for hexagons (flat-topped: two edges
        horizontal) the distance between the centres of neighbouring hexagons, in metres,
        which is also the distance across the flats. A hexagon has area
        ``sqrt(3) / 2 * cell_size_m**2``, 87% of a square of the same size.
    shape : ``"square"`` (default) or ``"hex"``.
    crs : CRS of a bare geometry, default EPSG:27700; leave unset for a GeoSeries /
        GeoDataFrame.

    Returns
    -------
    geopandas.GeoDataFrame
        Columns :data:`hotspots.schema.GRID_COLUMNS`: ``cell_id`` (0..n-1 in row-major
        order: by ``row``, then ``col``), ``row``, ``col`` (lattice indices, see the schema;
        for hexagons the axial coordinates r and q, which may be negative), ``x``, ``y``
        (centre of the full cell, metres), ``area_km2`` (clipped area) and ``geometry``
        (the cell clipped to the area). Only cells meeting the area in non-zero area.
        The lattice is anchored at the CRS origin: square (row 0, col 0) has its lower
        left corner at (0, 0), hexagon (q 0, r 0) its centre there; so the cells depend
        only on the area, the size and the shape, which :func:`cell_index` and
        :func:`grid_counts` take again (nothing rides in ``attrs``).

    Raises
    ------
    CRSError
        When the CRS is not projected (degrees).
    ValueError
        On a bad ``cell_size_m`` or ``shape``, an area without area, or more than
        :data:`MAX_CELLS` cells.

    Examples
    --------
    >>> import shapely
    >>> grid = make_grid(shapely.box(0, 0, 1000, 500), cell_size_m=250)
    >>> len(grid), list(grid.columns)
    (8, ['cell_id', 'row', 'col', 'x', 'y', 'area_km2', 'geometry'])
    >>> grid["area_km2"].round(4).unique().tolist()
    [0.0625]
    """
    s = check_metres("cell_size_m", cell_size_m)
    _check_shape(shape)
    geom, crs = area_geometry(area, crs)
    bounds = shapely.bounds(geom)
    rows, cols = _candidates(shape, s, bounds)
    cells = _cells(shape, rows, cols, s)

    # cells crossed by the boundary are clipped; the rest are wholly inside or outside
    tree = shapely.STRtree(cells)
    shapely.prepare(geom)
    edge = np.zeros(len(cells), dtype=bool)
    edge[tree.query(_boundary_segments(geom), predicate="intersects")[1]] = True
    cx, cy = _centres(shape, rows, cols, s)
    keep = ~edge & shapely.contains_xy(geom, cx, cy)
    clipped = cells.copy()
    clipped[edge] = _polygonal(shapely.intersection(cells[edge], geom))
    areas = shapely.area(clipped)
    keep |= edge & (areas > 0)

    order = np.lexsort((cols[keep], rows[keep]))
    idx = np.nonzero(keep)[0][order]
    out = gpd.GeoDataFrame({
        "cell_id": np.arange(len(idx), dtype=np.int64),
        "row": rows[idx].astype(np.int64), "col": cols[idx].astype(np.int64),
        "x": cx[idx], "y": cy[idx], "area_km2": areas[idx] / 1e6,
    }, geometry=clipped[idx], crs=crs)
    return out[list(GRID_COLUMNS)]


def _lattice_index(shape: str, s: float, x: np.ndarray, y: np.ndarray
                   ) -> tuple[np.ndarray, np.ndarray]:
    """Lattice (row, col) of each point under the half-open rule (floats; NaN stays NaN)."""
    if shape == "square":
        return np.floor(y / s), np.floor(x / s)
    # cube coordinates; the floors of their pairwise differences cut the plane into
    # half-open triangles, six to a hexagon, so each point falls in exactly one hexagon
    qf = x / (SQRT3 / 2 * s)
    rf = y / s - qf / 2
    sf = -qf - rf
    a, b, c = np.floor(qf - rf), np.floor(rf - sf), np.floor(sf - qf)
    return np.round((b - a) / 3), np.round((a - c) / 3)


def _on_lattice_edge(shape: str, s: float, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Points on the boundary of their lattice cell (for hexagons: within rounding of it)."""
    with np.errstate(invalid="ignore"):
        if shape == "square":
            fx, fy = x / s, y / s
            return (fx == np.floor(fx)) | (fy == np.floor(fy))
        pr, pc = _lattice_index(shape, s, x, y)
        qf = x / (SQRT3 / 2 * s) - pc
        rf = y / s - x / (SQRT3 * s) - pr
        # the hexagon is |dq - dr| <= 1, |2 dr + dq| <= 1, |2 dq + dr| <= 1 in axial terms
        reach = np.maximum(np.abs(qf - rf), np.maximum(np.abs(2 * rf + qf), np.abs(2 * qf + rf)))
        return reach >= 1 - 1e-9


def check_layout(grid: gpd.GeoDataFrame, *, cell_size_m: float, shape: CellShape = "square"
                 ) -> float:
    """The cell size as a float, once the grid's cells are checked to lie on the lattice of
    ``cell_size_m`` and ``shape`` (what :func:`make_grid` was given): each cell's ``x``,
    ``y`` where its ``row`` and ``col`` put it, to 1e-6 of the cell size. ValidationError
    names the first cell off it (a grid of another size or shape) or the missing columns.

    Examples
    --------
    >>> import shapely
    >>> grid = make_grid(shapely.box(0, 0, 1000, 500), cell_size_m=250)
    >>> check_layout(grid, cell_size_m=250)
    250.0
    >>> check_layout(grid, cell_size_m=100)
    Traceback (most recent call last):
    hotspots.errors.ValidationError: grid's cell 0 (row 0, col 0) has its centre at ...
    """
    s = check_metres("cell_size_m", cell_size_m)
    _check_shape(shape)
    missing = [c for c in ("cell_id", "row", "col", "x", "y") if c not in grid.columns]
    if missing:
        raise ValidationError(f"grid lacks the column(s) {', '.join(missing)}; make it with "
                              "hotspots.grid.make_grid.")
    if len(grid) == 0:
        return s
    rows, cols = grid["row"].to_numpy(dtype=np.int64), grid["col"].to_numpy(dtype=np.int64)
    cx, cy = _centres(shape, rows, cols, s)
    x, y = grid["x"].to_numpy(dtype=float), grid["y"].to_numpy(dtype=float)
    off = (np.abs(cx - x) > 1e-6 * s) | (np.abs(cy - y) > 1e-6 * s)
    if off.any():
        i = int(np.argmax(off))
        raise ValidationError(
            f"grid's cell {grid['cell_id'].iloc[i]} (row {rows[i]}, col {cols[i]}) has its "
            f"centre at ({x[i]:.1f}, {y[i]:.1f}), not at ({cx[i]:.1f}, {cy[i]:.1f}) where a "
            f"{shape} lattice of {s:g} m puts it; pass the cell_size_m and shape the grid "
            "was made with.")
    return s


def cell_index(grid: gpd.GeoDataFrame, x, y, *, cell_size_m: float,
               shape: CellShape = "square") -> np.ndarray:
    """``cell_id`` of the cell holding each point (numpy int64, one per point), -1 when in
    none (see the module's rule). Lattice arithmetic finds each point's cell; only points
    in cells cut by the area's boundary are tested against the clipped geometry.

    Parameters
    ----------
    grid : from :func:`make_grid`; may be a subset of its rows, or joined to other columns.
    x, y : eastings and northings in the grid's CRS, metres.
    cell_size_m, shape : what :func:`make_grid` was given (checked: :func:`check_layout`).

    Examples
    --------
    >>> import shapely
    >>> grid = make_grid(shapely.box(0, 0, 1000, 500), cell_size_m=250)
    >>> cell_index(grid, [10, 260, 5000], [10, 10, 10], cell_size_m=250).tolist()
    [0, 1, -1]
    """
    check_projected(grid, "grid")
    s = check_layout(grid, cell_size_m=cell_size_m, shape=shape)
    x, y = check_xy(x, y)
    out = np.full(len(x), -1, dtype=np.int64)
    if len(grid) == 0 or len(x) == 0:
        return out
    ids = grid["cell_id"].to_numpy(dtype=np.int64)
    rows = grid["row"].to_numpy(dtype=np.int64)
    cols = grid["col"].to_numpy(dtype=np.int64)
    geoms = np.asarray(grid.geometry.values)
    full = _unclipped(geoms, shape, rows, cols, s)

    r0, c0 = rows.min(), cols.min()
    table = np.full((rows.max() - r0 + 1, cols.max() - c0 + 1), -1, dtype=np.int64)
    table[rows - r0, cols - c0] = np.arange(len(grid))  # position in grid
    pr, pc = _lattice_index(shape, s, x, y)
    ok = np.isfinite(pr) & np.isfinite(pc)
    pr = np.clip(np.where(ok, pr - r0, -1), -1, table.shape[0]).astype(np.int64)
    pc = np.clip(np.where(ok, pc - c0, -1), -1, table.shape[1]).astype(np.int64)
    ok &= (pr >= 0) & (pr < table.shape[0]) & (pc >= 0) & (pc < table.shape[1])
    pos = np.full(len(x), -1, dtype=np.int64)
    pos[ok] = table[pr[ok], pc[ok]]

    # rule 1 inside unclipped cells; cells cut by the boundary need the exact test
    test = np.nonzero((pos >= 0) & ~full[np.maximum(pos, 0)])[0]
    if len(test):
        shapely.prepare(geoms[np.unique(pos[test])])
        inside = shapely.intersects_xy(geoms[pos[test]], x[test], y[test])
        pos[test[~inside]] = -1
    out[pos >= 0] = ids[pos[pos >= 0]]

    # rule 2: a point that missed its lattice cell can only be in a neighbouring clipped
    # cell if it lies on its lattice cell's boundary
    rest = np.nonzero((pos < 0) & _on_lattice_edge(shape, s, x, y))[0]
    if len(rest):
        hit_pt, hit_cell = shapely.STRtree(geoms).query(shapely.points(x[rest], y[rest]),
                                                        predicate="intersects")
        best = np.full(len(rest), np.iinfo(np.int64).max, dtype=np.int64)
        np.minimum.at(best, hit_pt, ids[hit_cell])
        found = best < np.iinfo(np.int64).max
        out[rest[found]] = best[found]
    return out


def grid_counts(grid: gpd.GeoDataFrame, x, y, weights=None, *, cell_size_m: float,
                shape: CellShape = "square") -> gpd.GeoDataFrame:
    """The grid with ``n``, the points in each cell, and ``weighted``, their summed weights.

    Parameters
    ----------
    grid : from :func:`make_grid`. Not modified.
    x, y : eastings and northings in the grid's CRS, metres. Points outside the area (and
        NaN coordinates) are not counted: ``n`` sums to the number of points in the closed
        area.
    weights : optional weight per point (e.g. harm weights), finite; adds ``weighted``.
    cell_size_m, shape : what :func:`make_grid` was given.

    Returns
    -------
    geopandas.GeoDataFrame
        :data:`hotspots.schema.GRID_COLUMNS` plus ``n`` (int64) and, with weights,
        ``weighted`` (float64); same row order.

    Examples
    --------
    >>> import shapely
    >>> grid = make_grid(shapely.box(0, 0, 1000, 500), cell_size_m=250)
    >>> out = grid_counts(grid, [10, 20, 260], [10, 20, 10], cell_size_m=250)
    >>> out["n"].tolist()
    [2, 1, 0, 0, 0, 0, 0, 0]
    """
    x, y = check_xy(x, y)
    idx = cell_index(grid, x, y, cell_size_m=cell_size_m, shape=shape)
    pos = np.full(len(idx), -1, dtype=np.int64)
    cell_ids = grid["cell_id"].to_numpy(dtype=np.int64)
    lookup = np.full(int(cell_ids.max()) + 1 if len(cell_ids) else 0, -1, dtype=np.int64)
    lookup[cell_ids] = np.arange(len(grid))
    pos[idx >= 0] = lookup[idx[idx >= 0]]
    hit = pos >= 0
    out = grid.copy()
    out["n"] = np.bincount(pos[hit], minlength=len(grid)).astype(np.int64)
    if weights is not None:
        w = np.asarray(weights, dtype=float).ravel()
        if w.shape != x.shape:
            raise ValueError(f"weights must have one value per point ({len(x)}), got {len(w)}.")
        if not np.isfinite(w).all():
            bad = int(np.argmin(np.isfinite(w)))
            raise ValueError(f"weights must be finite; {int((~np.isfinite(w)).sum())} are not, "
                             f"the first at position {bad} ({w[bad]}).")
        out["weighted"] = np.bincount(pos[hit], weights=w[hit], minlength=len(grid))
    return out


def _nice_floor(value: float) -> float:
    """Largest 1, 2, 2.5 or 5 times a power of ten that is at most ``value``."""
    exp = math.floor(math.log10(value))
    for mant in reversed(NICE):
        nice = mant * 10.0 ** exp
        if nice <= value * (1 + 1e-12):
            return float(round(nice, 12))
    return float(round(5 * 10.0 ** (exp - 1), 12))


def suggest_cell_size(x, y, area, *, cells_across: int = 50, bandwidth_m: float | None = None,
                      crs=None) -> float:
    """Choose a cell size for a grid over ``area`` from the points, and log it.

    The rule: ``max(L / cells_across, sqrt(A / n))``, capped at ``bandwidth_m / 3`` when a
    bandwidth is given, then rounded down to 1, 2, 2.5 or 5 times a power of ten (so 124 m
    becomes 100 m, 37 m becomes 25 m). L is the shorter side of the area's bounding box
    (m), A the area (m²) and n the number of points inside the area's bounding box.

    Why: the first term is sfhotspot's default (50 cells across the shorter side), a
    resolution fitted to the map; the second keeps at least about one point per cell on
    average, so a small set of incidents (a rare category, one ward, one month) is not
    spread over a grid of empty cells, where counts, densities and Gi* have no support.
    For a kernel density surface the cap makes the kernel at least 6 cells across, so the
    surface is resolved and sums to the number of points within 0.5%. Rounding down to a
    familiar number makes the size easy to state on a map, and never gives fewer than
    ``cells_across`` cells across.

    Parameters
    ----------
    x, y : eastings and northings, metres.
    area : as for :func:`make_grid`.
    cells_across : cells across the shorter side, default 50.
    bandwidth_m : kernel bandwidth in metres, for a density raster; default none (no cap).
    crs : as for :func:`make_grid`.

    Returns
    -------
    float, metres. Logged as ``cell size set to N m (rule ...)``.

    Examples
    --------
    >>> import shapely
    >>> x, y = [100, 400, 900, 950], [100, 300, 400, 450]
    >>> suggest_cell_size(x, y, shapely.box(0, 0, 1000, 500))
    250.0
    """
    check_positive("cells_across", cells_across, integer=True)
    if bandwidth_m is not None:
        bandwidth_m = check_metres("bandwidth_m", bandwidth_m)
    geom, _ = area_geometry(area, crs)
    x, y = check_xy(x, y)
    minx, miny, maxx, maxy = shapely.bounds(geom)
    n = int(np.count_nonzero((x >= minx) & (x <= maxx) & (y >= miny) & (y <= maxy)))
    short = min(maxx - minx, maxy - miny)
    by_map = short / cells_across
    by_points = math.sqrt(shapely.area(geom) / n) if n else 0.0
    raw = max(by_map, by_points)
    cap = ""
    if bandwidth_m is not None and raw > bandwidth_m / 3:
        raw = bandwidth_m / 3
        cap = f", capped at bandwidth {bandwidth_m:g} m / 3"
    size = _nice_floor(raw)
    logger.info("cell size set to %g m (rule: max(shorter side %.0f m / %d = %.1f m, "
                "sqrt(area / %d points) = %.1f m)%s, rounded down to 1, 2, 2.5 or 5 x 10^k)",
                size, short, cells_across, by_map, n, by_points, cap)
    return size
