"""Kernel density of incidents in incidents per km², fast and with a stated accuracy.

The surface is the classic kernel estimate at the centre c of every raster cell,
``sum_i w_i K(|c - p_i|) / h**2`` over the points p_i inside the study area, scaled from
per m² to per km². Two kernels:

- ``"quartic"`` (biweight, the default of ArcGIS and CrimeStat):
  ``K(u) = 3 / pi * (1 - u**2)**2`` for ``u = d / h < 1``, else 0; h is the radius at which
  the weight reaches 0. Peak of one incident: ``3 / (pi h**2)`` per m².
- ``"gaussian"``: ``K(u) = exp(-u**2 / 2) / (2 pi)``; h is the standard deviation. The
  kernel is cut at 8 h, where it is ``e**-32`` (1e-14) of its peak.

How it is computed (and why it is accurate):

1. Points are linearly binned onto a fine lattice of spacing ``step = cell_size_m / f``
   whose nodes include every cell centre (f odd): f is the smallest odd number giving at
   least 32 steps per bandwidth for the quartic kernel, 12 for the Gaussian (fewer if the
   lattice would pass :data:`MAX_FINE_NODES`; step 3 then makes up the accuracy).
2. The fine masses are convolved (FFT, single precision) with the kernel sampled on the
   fine lattice and normalised to sum to exactly 1, so the fine surface holds exactly the
   points' mass; the values at the cell centres are kept. (Summing those over the cells
   approximates the mass to within 0.5% of a point once the kernel is 6 cells across.)
3. Linear binning replaces each point's kernel by its bilinear interpolation between the
   four nodes around it, whose error is at most ``step**2 / 8 * (|K_xx| + |K_yy|)`` over
   the step square holding the point. Convolving the masses with that bound (widened by
   the normalisation error and 1e-5 of the maximum for FFT rounding, measured at 2e-7)
   bounds the error of every cell. Cells that may be above 1% of the maximum but whose
   bound exceeds 0.9% of their value are recomputed by the direct sum. In practice these
   are the outer rims of isolated incidents or of stacks of reports at one address, where
   the quartic kernel falls to zero and any binned estimate is relatively poor.

So every cell whose density exceeds 1% of the maximum is within 1% of the direct kernel
sum over the points used (the tests check it, including with the oversampling forced
down). Measured on 2 cores: a million borough-shaped points in 0.05-0.08 s (Gaussian,
150 m, 50 m cells) and 0.25-0.35 s (quartic, the suggested 107 m and 25 m cells).
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass

import numpy as np
import pyproj
import scipy.fft
import shapely
from scipy import ndimage

from .assign import label_lattice
from .grid import area_geometry, suggest_cell_size
from .schema import Kernel
from .validate import check_metres, check_option, check_xy

logger = logging.getLogger(__name__)

KERNELS = ("quartic", "gaussian")
#: Fine lattice steps per bandwidth (at least) for each kernel.
STEPS_PER_BANDWIDTH = {"quartic": 32, "gaussian": 12}
#: The Gaussian kernel is cut at this many standard deviations.
GAUSSIAN_REACH = 8.0
#: Upper bound on fine-lattice nodes (peak memory about 35 bytes each). Past it the
#: oversampling is reduced and more cells are summed directly.
MAX_FINE_NODES = 8_000_000
#: Relative error bound above which a cell is recomputed by the direct sum.
EXACT_ABOVE = 0.009
#: Cells below this share of the maximum carry no accuracy promise.
CONTRACT_FLOOR = 0.01


@dataclass(frozen=True, eq=False)
class Raster:
    """A kernel density surface on a regular raster (arrays are read-only).

    Attributes
    ----------
    values : (ny, nx) float array, incidents per km² at each cell centre; row 0 is the
        SOUTHERN row, column 0 the western. Defined on the whole rectangle (cells outside
        the area hold the density that spills over the edge); see :meth:`masked`.
    mask : (ny, nx) bool array, True where the cell's centre is in the (closed) area.
    x0, y0 : lower-left corner of cell (0, 0), metres; multiples of ``cell_size_m``, so
        cells line up with the square grid of :func:`hotspots.grid.make_grid`.
    cell_size_m : cell side, metres.
    crs : the CRS of x0, y0 (EPSG:27700).
    bandwidth_m : quartic radius or Gaussian standard deviation, metres.
    kernel : ``"quartic"`` or ``"gaussian"``.
    n : points used (those inside the area).
    total : integral over the cells inside the area, ``values[mask].sum() * cell area
        in km²`` (incidents, or summed weights).
    edge_loss : ``sum of weights - total`` (``n - total`` without weights): the mass that
        falls outside the area, plus the discretisation error of summing over cells
        (under 0.5% of a point's mass once the bandwidth spans 3 cells).
    oversample : f, fine lattice steps per cell.
    exact_cells : cells recomputed by the direct sum.
    """

    values: np.ndarray
    mask: np.ndarray
    x0: float
    y0: float
    cell_size_m: float
    crs: pyproj.CRS
    bandwidth_m: float
    kernel: str
    n: int
    total: float
    edge_loss: float
    oversample: int
    exact_cells: int

    @property
    def bounds(self) -> tuple[float, float, float, float]:
        """(xmin, ymin, xmax, ymax) of the rectangle, metres."""
        ny, nx = self.values.shape
        return (self.x0, self.y0, self.x0 + nx * self.cell_size_m,
                self.y0 + ny * self.cell_size_m)

    def centres(self) -> tuple[np.ndarray, np.ndarray]:
        """X of the column centres and y of the row centres (1-D arrays, metres)."""
        ny, nx = self.values.shape
        return (self.x0 + (np.arange(nx) + 0.5) * self.cell_size_m,
                self.y0 + (np.arange(ny) + 0.5) * self.cell_size_m)

    def masked(self) -> np.ndarray:
        """A copy of ``values`` with NaN outside the area (what a map should draw)."""
        return np.where(self.mask, self.values, np.nan)


def sample(raster: Raster, x, y) -> np.ndarray:
    """Density (incidents per km²) of the cell holding each point; NaN off the rectangle.

    Cells are half-open like the square grid's: a point on an edge takes the cell east or
    north of it. Cells outside the area are sampled too (check ``raster.mask``).

    Examples
    --------
    >>> import shapely
    >>> area = shapely.box(0, 0, 1000, 1000)
    >>> r = kde([500, 510, 490], [500, 505, 495], area=area, bandwidth_m=100, cell_size_m=50)
    >>> near, far = sample(r, [500, 50], [500, 50])
    >>> bool(near > far), float(far)
    (True, 0.0)
    """
    x, y = check_xy(x, y)
    ny, nx = raster.values.shape
    with np.errstate(invalid="ignore"):
        col = np.floor((x - raster.x0) / raster.cell_size_m)
        row = np.floor((y - raster.y0) / raster.cell_size_m)
    ok = (col >= 0) & (col < nx) & (row >= 0) & (row < ny)
    out = np.full(len(x), np.nan)
    out[ok] = raster.values[row[ok].astype(np.int64), col[ok].astype(np.int64)]
    return out


def suggest_bandwidth(x, y) -> float:
    """Choose a kernel bandwidth from the points' spread, and log it.

    The rule is the spatial variant of Silverman's rule of thumb used by ArcGIS Pro's
    Kernel Density tool (Esri, "How Kernel Density works", ArcGIS Pro tool reference;
    Silverman, B. W. 1986, Density Estimation for Statistics and Data Analysis, eq. 3.31):

        h = 0.9 * min(SD, sqrt(1 / ln 2) * Dm) * n ** -0.2

    where SD is the standard distance (``sqrt(var(x) + var(y))``, dividing by n), Dm the
    median distance of the points from their mean centre and n the number of points. The
    median term keeps a few far-flung points from inflating the bandwidth. The result is
    rounded to the nearest metre (at least 1 m). Weights are not used: the bandwidth
    describes where incidents are; harm weights only scale the surface.

    Parameters
    ----------
    x, y : eastings and northings, metres; points with a NaN coordinate are ignored.

    Returns
    -------
    float, metres. Logged as ``bandwidth set to N m (rule ...)``.

    Raises
    ------
    ValueError
        With fewer than 2 distinct points.

    Examples
    --------
    >>> x, y = [0, 100, 200, 300, 400], [0, 50, 100, 150, 200]
    >>> round(suggest_bandwidth(x, y), 1)
    88.0
    """
    x, y = check_xy(x, y)
    ok = np.isfinite(x) & np.isfinite(y)
    x, y = x[ok], y[ok]
    n = len(x)
    if n < 2 or (np.ptp(x) == 0 and np.ptp(y) == 0):
        raise ValueError(f"suggest_bandwidth needs at least 2 distinct points, got {min(n, 1)} "
                         f"(from {n} point(s) with finite coordinates); pass bandwidth_m "
                         "explicitly.")
    dx, dy = x - x.mean(), y - y.mean()
    sd = math.sqrt(float(np.mean(dx**2) + np.mean(dy**2)))
    dm = float(np.median(np.hypot(dx, dy)))
    raw = 0.9 * min(sd, math.sqrt(1 / math.log(2)) * dm) * n ** -0.2
    h = max(1.0, float(round(raw)))
    logger.info("bandwidth set to %g m (rule: ArcGIS Pro / Silverman, 0.9 * min(standard "
                "distance %.0f m, sqrt(1/ln 2) * median distance %.0f m) * %d^-0.2 = %.1f m)",
                h, sd, math.sqrt(1 / math.log(2)) * dm, n, raw)
    return h


def _profile(u2: np.ndarray, kernel: str) -> np.ndarray:
    """K(u) from u**2; integrates to 1 over the plane in units of the bandwidth."""
    if kernel == "quartic":
        return np.where(u2 < 1, 3 / np.pi * np.square(1 - np.minimum(u2, 1)), 0.0)
    return np.exp(-u2 / 2) / (2 * np.pi)


def _curvature_bound(lo: np.ndarray, hi: np.ndarray, kernel: str) -> np.ndarray:
    """An upper bound of |K_xx| + |K_yy| over distances u in [lo, hi] (bandwidth units)."""
    if kernel == "gaussian":
        # |K''| + |K'/u| = max(u**2, 2 - u**2) K(u)
        return np.maximum(hi**2, 2.0) * np.exp(-lo**2 / 2) / (2 * np.pi)

    # quartic: (3/pi)(|12u**2 - 4| + 4(1 - u**2)) on u < 1, 0 beyond; it falls to
    # u = 1/sqrt(3) and then rises to 8 * 3/pi, so the maximum is at an end of [lo, hi]
    def g(u):
        return np.where(u < 1, 3 / np.pi * (np.abs(12 * u**2 - 4) + 4 * (1 - u**2)), 0.0)

    top = np.where(hi >= 1, 8 * 3 / np.pi, g(np.minimum(hi, 1)))
    return np.where(lo >= 1, 0.0, np.maximum(g(lo), top))


def _fine_kernels(h: float, step: float, kernel: str
                  ) -> tuple[np.ndarray, np.ndarray, float, float]:
    """Kernel (summing to 1), error-bound kernel, reach (m) and normalisation error."""
    reach = h if kernel == "quartic" else GAUSSIAN_REACH * h
    gap = math.sqrt(2) * step / h  # the points behind a node lie within this of it
    r = int(math.ceil(reach / step + gap * h / step))  # nodes whose points may be in reach
    off = np.arange(-r, r + 1) * step
    dist = np.hypot(off[None, :], off[:, None]) / h
    k = np.where(dist * h <= reach, _profile(dist**2, kernel), 0.0)
    scale = 1.0 / k.sum()
    k *= scale  # per node: mass fraction; later divided by the step area
    bound = (step**2 / 8 / h**2) * scale * _curvature_bound(np.maximum(dist - gap, 0), dist + gap,
                                                            kernel)
    # relative departure of the normalised kernel from the analytic one
    return k, bound, reach, abs(scale * h**2 / step**2 - 1)


def _linear_bin(x, y, w, *, x0, y0, step, shape) -> np.ndarray:
    """Bilinear shares of each point's weight (1 when ``w`` is None) on the nodes at
    ``x0 + (j - 0.5) * step``.

    The lattice has one node of padding on each side (node 0 is at ``x0 - step / 2``);
    points must lie in the rectangle the other nodes cover.
    """
    hgt, wid = shape
    fx = (x - x0) * (1 / step) + 0.5
    fy = (y - y0) * (1 / step) + 0.5
    ix = fx.astype(np.int64)  # fx > 0: truncation is floor
    iy = fy.astype(np.int64)
    fx -= ix  # now the share of the east node
    fy -= iy  # the share of the north node
    flat = iy * wid + ix
    north = fy if w is None else w * fy
    south = (1 - fy) if w is None else w - north
    east = south * fx
    out = np.bincount(flat, weights=south - east, minlength=hgt * wid)
    out[1:] += np.bincount(flat, weights=east, minlength=hgt * wid)[:-1]
    east = north * fx
    out[wid:] += np.bincount(flat, weights=north - east, minlength=hgt * wid)[:-wid]
    out[wid + 1:] += np.bincount(flat, weights=east, minlength=hgt * wid)[:-wid - 1]
    return out.reshape(hgt, wid)


def _convolve(image: np.ndarray, kernels: np.ndarray, *, start: int, stride: int
              ) -> np.ndarray:
    """Linear convolution of an image with a stack of odd square kernels, sampled at
    ``[start::stride, start::stride]`` of the image's lattice.

    In single precision (twice as fast): rounding is about 1e-6 of the maximum.
    """
    hgt, wid = image.shape
    r = kernels.shape[-1] // 2
    # circular convolution on (hgt + r, wid + r) or more: what wraps round lands on zeros
    size = (scipy.fft.next_fast_len(hgt + r, real=True),
            scipy.fft.next_fast_len(wid + r, real=True))
    spectrum = scipy.fft.rfft2(image.astype(np.float32), size, workers=-1)
    spectrum = spectrum * scipy.fft.rfft2(kernels.astype(np.float32), size, workers=-1)
    out = scipy.fft.irfft2(spectrum, size, workers=-1)
    return out[..., r + start:r + hgt:stride, r + start:r + wid:stride].astype(np.float64)


def _direct(cells, x, y, w, *, x0, y0, s, shape, h, kernel, reach) -> np.ndarray:
    """Direct kernel sums (per m²) at the centres of ``cells`` (flat indices); ``w`` None
    means weight 1."""
    ny, nx = shape
    cy, cx = np.divmod(cells, nx)
    rc = int(math.ceil(reach / s + 0.5))
    near = np.zeros(shape, dtype=bool)
    near[cy, cx] = True
    near = ndimage.maximum_filter(near, size=2 * rc + 1, mode="constant")
    px = np.clip(np.floor((x - x0) / s).astype(np.int64), 0, nx - 1)
    py = np.clip(np.floor((y - y0) / s).astype(np.int64), 0, ny - 1)
    keep = near[py, px]
    flat = py[keep] * nx + px[keep]
    order = np.argsort(flat, kind="stable")
    xs, ys, flat = x[keep][order], y[keep][order], flat[order]
    ws = np.ones(len(xs)) if w is None else w[keep][order]
    starts = np.searchsorted(flat, np.arange(nx * ny + 1))
    ccx, ccy = x0 + (cx + 0.5) * s, y0 + (cy + 0.5) * s
    out = np.zeros(len(cells))
    lo_col = np.maximum(cx - rc, 0)
    hi_col = np.minimum(cx + rc, nx - 1)
    for first in range(0, len(cells), 512):  # chunks keep the gathered arrays small
        sl = slice(first, first + 512)
        for dy in range(-rc, rc + 1):
            row = cy[sl] + dy
            ok = (row >= 0) & (row < ny)
            row = np.clip(row, 0, ny - 1)
            a = starts[row * nx + lo_col[sl]]
            cnt = np.where(ok, starts[row * nx + hi_col[sl] + 1] - a, 0)
            total = int(cnt.sum())
            if total == 0:
                continue
            owner = np.repeat(np.arange(len(cnt)), cnt)
            idx = np.repeat(a - np.cumsum(cnt) + cnt, cnt) + np.arange(total)
            u2 = ((xs[idx] - ccx[sl][owner])**2 + (ys[idx] - ccy[sl][owner])**2) / h**2
            out[sl] += np.bincount(owner, weights=ws[idx] * _profile(u2, kernel),
                                   minlength=len(cnt))
    return out / h**2


def _classify(geom, *, x0: float, y0: float, step: float, top: tuple[float, float]
              ) -> np.ndarray:
    """Lookup lattice over the rectangle from (x0, y0) to ``top``: 1 inside the area, 0
    outside, -1 near its boundary (the lattice of :func:`hotspots.assign.label_lattice`)."""
    labels, _ = label_lattice(np.array([geom], dtype=object), np.zeros(1, dtype=np.int64),
                              step, (x0, y0, *top))
    return np.where(labels >= 0, 1, np.where(labels == -1, -1, 0))


def _in_area(geom, table: np.ndarray, x, y, *, x0: float, y0: float, step: float) -> np.ndarray:
    """Points in the closed area, exact: the lookup lattice, then a test near the boundary."""
    ny, nx = table.shape
    padded = np.pad(table, 1)  # a ring of "outside" for points off the lattice (and NaN)
    col = np.floor(np.fmin(np.fmax((x - x0) * (1 / step), -1.0), nx)).astype(np.intp) + 1
    row = np.floor(np.fmin(np.fmax((y - y0) * (1 / step), -1.0), ny)).astype(np.intp) + 1
    cls = padded[row, col]
    test = np.flatnonzero(cls < 0)
    out = cls > 0
    out[test] = shapely.intersects_xy(geom, x[test], y[test])
    return out


def _surface(x, y, w, *, x0: float, y0: float, s: float, shape: tuple[int, int], h: float,
             kernel: str) -> tuple[np.ndarray, int, int]:
    """Density per m² at the cell centres, the oversampling used and the cells done exactly."""
    ny, nx = shape
    f = max(1, math.ceil(STEPS_PER_BANDWIDTH[kernel] * s / h))
    f += 1 - f % 2  # odd, so cell centres are fine nodes
    f_max = max(1, math.isqrt(MAX_FINE_NODES // ((ny + 1) * (nx + 1))))
    if f > f_max:  # memory first: the direct sums make up the accuracy, at some cost in time
        logger.info("oversampling limited to %d (wanted %d) by MAX_FINE_NODES", f_max, f)
        f = f_max - (1 - f_max % 2)
    step = s / f
    k, kb, reach, norm_err = _fine_kernels(h, step, kernel)
    mass = _linear_bin(x, y, w, x0=x0, y0=y0, step=step, shape=(ny * f + 2, nx * f + 2))
    c = 1 + f // 2
    est, bound = _convolve(mass, np.stack([k, kb]), start=c, stride=f)
    est = np.maximum(est[:ny, :nx], 0.0) / step**2
    bound = (np.abs(bound[:ny, :nx]) / step**2 + norm_err * est
             + 1e-5 * est.max(initial=0.0))  # + FFT rounding

    # recompute the cells that may be above 1% of the maximum but lack a 1% guarantee
    top = np.unravel_index(np.argmax(est), est.shape)
    floor = CONTRACT_FLOOR * (est[top] - bound[top])
    doubt = np.nonzero(((est + bound) >= floor) & (bound > EXACT_ABOVE * (est - bound)))
    cells = np.ravel_multi_index(doubt, est.shape)
    if len(cells) and len(x):
        est[doubt] = _direct(cells, x, y, w, x0=x0, y0=y0, s=s, shape=shape, h=h,
                             kernel=kernel, reach=reach)
    return est, f, int(len(cells))


def _check_weights(weights, n: int) -> np.ndarray:
    w = np.asarray(weights, dtype=float).ravel()
    if w.shape != (n,):
        raise ValueError(f"weights must have one value per point ({n}), got {w.size}.")
    bad = ~np.isfinite(w) | (w < 0)
    if bad.any():
        first = int(np.argmax(bad))
        raise ValueError(f"weights must be finite and non-negative; {int(bad.sum())} are not, "
                         f"the first at position {first} ({w[first]}).")
    return w


def kde(x, y, *, area, bandwidth_m: float | None = None, cell_size_m: float | None = None,
        kernel: Kernel = "quartic", weights=None, crs=None) -> Raster:
    """Kernel density of points in incidents per km² on a raster covering the area.

    Parameters
    ----------
    x, y : eastings and northings, metres. Points outside the (closed) area and points
        with a NaN coordinate are dropped; there is no edge correction, so density near
        the boundary is lower and ``edge_loss`` reports the mass that spills out.
    area : study area, as for :func:`hotspots.grid.make_grid` (shapely geometry in
        ``crs``, default EPSG:27700, or a GeoSeries / GeoDataFrame). Not modified.
    bandwidth_m : quartic radius or Gaussian standard deviation, metres; default
        :func:`suggest_bandwidth` of the points used (logged).
    cell_size_m : raster cell, metres; default :func:`hotspots.grid.suggest_cell_size` of
        the points used, at most a third of the bandwidth (logged).
    kernel : ``"quartic"`` (default) or ``"gaussian"``.
    weights : optional non-negative weight per point (e.g. harm); the surface is then in
        weighted incidents per km².
    crs : CRS of a bare geometry ``area``, default EPSG:27700.

    Returns
    -------
    Raster
        Values at cell centres on the area's bounding rectangle (not masked: use
        ``raster.mask`` or :meth:`Raster.masked`); every cell above 1% of the maximum is
        within 1% of the direct kernel sum (see the module docstring).

    Raises
    ------
    CRSError
        When the CRS is not projected (degrees).
    ValueError
        On a bad parameter, or more than :data:`MAX_FINE_NODES` cells.

    Examples
    --------
    >>> import shapely
    >>> area = shapely.box(0, 0, 1000, 1000)
    >>> r = kde([500, 510, 490], [500, 505, 495], area=area, bandwidth_m=100, cell_size_m=50)
    >>> r.values.shape, r.cell_size_m, r.bandwidth_m
    ((21, 21), 50.0, 100.0)
    >>> bool(r.values.max() > r.values[0, 0])
    True
    """
    check_option("kernel", kernel, KERNELS)
    if bandwidth_m is not None:
        bandwidth_m = check_metres("bandwidth_m", bandwidth_m)
    if cell_size_m is not None:
        cell_size_m = check_metres("cell_size_m", cell_size_m)
    geom, crs = area_geometry(area, crs)
    x, y = check_xy(x, y)
    w = None if weights is None else _check_weights(weights, len(x))
    shapely.prepare(geom)
    minx, miny, maxx, maxy = shapely.bounds(geom)
    # lookup lattice for the exact area test: 20 m cells, fewer than a million of them
    lx0, ly0 = math.floor(minx), math.floor(miny)
    lstep = max(20.0, math.sqrt((maxx - minx) * (maxy - miny) / 1e6))
    ltab = _classify(geom, x0=lx0, y0=ly0, step=lstep, top=(maxx, maxy))
    inside = _in_area(geom, ltab, x, y, x0=lx0, y0=ly0, step=lstep)
    if not inside.all():
        x, y, w = x[inside], y[inside], (None if w is None else w[inside])

    h = bandwidth_m if bandwidth_m is not None else suggest_bandwidth(x, y)
    s = cell_size_m if cell_size_m is not None else suggest_cell_size(x, y, geom, crs=crs,
                                                                      bandwidth_m=h)
    x0, y0 = math.floor(minx / s) * s, math.floor(miny / s) * s
    nx, ny = int((maxx - x0) // s) + 1, int((maxy - y0) // s) + 1
    if nx * ny > MAX_FINE_NODES:
        raise ValueError(f"cell_size_m={s:g} gives {nx * ny:,} cells over the area's bounding "
                         f"box; the limit is {MAX_FINE_NODES:,}. Use a larger cell size.")
    est, f, exact = _surface(x, y, w, x0=x0, y0=y0, s=s, shape=(ny, nx), h=h, kernel=kernel)

    values = est * 1e6  # per m² to per km²
    gx, gy = np.meshgrid(x0 + (np.arange(nx) + 0.5) * s, y0 + (np.arange(ny) + 0.5) * s)
    mask = _in_area(geom, ltab, gx.ravel(), gy.ravel(), x0=lx0, y0=ly0, step=lstep)
    mask = mask.reshape(ny, nx)
    total = float(values[mask].sum() * s * s / 1e6)
    values.setflags(write=False)
    mask.setflags(write=False)
    return Raster(values=values, mask=mask, x0=float(x0), y0=float(y0), cell_size_m=s, crs=crs,
                  bandwidth_m=h, kernel=kernel, n=int(len(x)), total=total,
                  edge_loss=(len(x) if w is None else float(w.sum())) - total, oversample=f,
                  exact_cells=exact)
