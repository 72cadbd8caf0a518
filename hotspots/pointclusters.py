"""Density clusters of incidents (DBSCAN, HDBSCAN): labels for points and the rules that
choose their parameters. :mod:`hotspots.cluster` turns the labels into places.

Everything is in British National Grid metres (EPSG:27700): ``x`` and ``y`` arguments are
eastings and northings, never degrees.

The default rule (:func:`suggest_dbscan_params`) keeps DBSCAN meaningful from a thousand
to a million incidents. ``eps_m`` is a spatial scale (75 m, about a street block), so it
stays fixed; ``min_samples`` grows with volume: a core point needs at least
``density_factor`` (5) times the study area's mean density within ``eps_m``, and never
fewer than 5 incidents. A cluster is therefore "where the incident density is more than
five times the borough average", the same level set whatever the volume; more incidents
only sharpen its edge. (A fixed ``min_samples`` does the opposite: at 100,000 incidents,
eps 100 m and min_samples 10 make one cluster covering the borough.)

For speed and memory, DBSCAN runs on the occupied cells of a 10 m lattice weighted by
their counts, and the labels are mapped back to the points; on a lattice every cell's
neighbourhood is the same stencil of offsets, so the DBSCAN of those cells is computed by
lattice arithmetic (:func:`_lattice_dbscan`: binary searches and a connected-components
pass, no neighbour lists), with scikit-learn's own labels for the weighted cell centres.
Exact DBSCAN of the points runs out of memory at a million incidents; the adjusted Rand
index of the binned labels against it is 0.996 at 100,000 (bench/bench_cluster.py).
``bin_m=0`` runs exact DBSCAN (scikit-learn's; identical points are still merged, which
changes nothing).

HDBSCAN has no sample weights, and repeating bin centres would bring back the cost that
binning removes, so it runs on a seeded random subsample of at most 20,000 incidents
(drawn from the points sorted by coordinates, so row order does not matter); every other
incident takes the label of its nearest sampled point when it lies within that point's
core distance, else it is noise. A subsample keeps the shape of the density, which is all
HDBSCAN looks at; ``min_cluster_size`` is a share of the incidents (0.5%, at least 10;
``min_samples`` the same on the subsample), so it too means the same at every volume. About
3.3 s at a million incidents, against 66 s for the hdbscan package on the raw points.
"""

from __future__ import annotations

import logging

import numpy as np

from .schema import ClusterMethod
from .validate import check_option, check_positive, check_xy

log = logging.getLogger("hotspots.cluster")  # the name users configure, as before the split

METHODS = ("dbscan", "hdbscan")
DEFAULT_EPS_M = 75.0
DENSITY_FACTOR = 5.0
MIN_SAMPLES_FLOOR = 5
HDBSCAN_SHARE = 0.005
HDBSCAN_FLOOR = 10
HDBSCAN_MAX_SAMPLE = 20_000
#: The lattice DBSCAN counts cells through a table of the whole lattice when it has at most
#: this many positions per occupied cell, or this many in all; else by binary search.
LATTICE_TABLE_PER_CELL = 32
LATTICE_TABLE_MIN = 2 ** 22


def _weights(weights, n: int) -> np.ndarray | None:
    if weights is None:
        return None
    w = np.asarray(weights, dtype=float).ravel()
    if w.size != n or not np.isfinite(w).all() or (w < 0).any():
        raise ValueError(f"weights must be {n} finite numbers of 0 or more (one per point); "
                         f"got {w.size} values, min {w.min() if w.size else 'n/a'}.")
    return w


def _hull_area_m2(x: np.ndarray, y: np.ndarray) -> float:
    from scipy.spatial import ConvexHull, QhullError  # not at import: detect gives the area

    pts = np.unique(np.column_stack([x, y]), axis=0)
    if len(pts) < 3:
        return 0.0
    try:
        return float(ConvexHull(pts).volume)  # in 2-D, "volume" is the area
    except QhullError:  # all points on a line
        return 0.0


def suggest_dbscan_params(x, y, *, area_m2: float | None = None, eps_m: float | None = None,
                          weights=None, density_factor: float = DENSITY_FACTOR
                          ) -> tuple[float, int]:
    """Choose DBSCAN ``eps_m`` and ``min_samples`` that mean the same at any volume.

    ``eps_m`` is 75 m unless given. ``min_samples = max(5, ceil(density_factor * W / A *
    pi * eps_m**2))`` where ``W`` is the number of points (or the sum of ``weights``) and
    ``A`` the study area: a core point has at least ``density_factor`` times the mean
    density within ``eps_m``. ``A`` is at least one eps disc, so a few points alone never
    form a cluster. The choice is logged.

    Parameters
    ----------
    x, y : array-like
        Eastings and northings, EPSG:27700 metres.
    area_m2 : float, optional
        Study area in square metres; default the convex hull of the points.
    eps_m : float, optional
        Neighbourhood radius in metres; default 75.
    weights : array-like, optional
        Weight per point (as sklearn's ``sample_weight``); default 1 each.
    density_factor : float, default 5
        Core density as a multiple of the mean density.

    Returns
    -------
    (float, int)
        ``eps_m`` and ``min_samples``.

    Examples
    --------
    >>> gen = np.random.default_rng(0)
    >>> x, y = gen.uniform(0, 2000, 5000), gen.uniform(0, 2000, 5000)
    >>> suggest_dbscan_params(x, y, area_m2=4e6)
    (75.0, 111)
    """
    x, y = check_xy(x, y, finite=True, metres=True)
    w = _weights(weights, x.size)
    if eps_m is not None:
        check_positive("eps_m", eps_m)
    if area_m2 is not None:
        check_positive("area_m2", area_m2)
    check_positive("density_factor", density_factor)
    eps = float(DEFAULT_EPS_M if eps_m is None else eps_m)
    total = float(x.size if w is None else w.sum())
    hull = area_m2 is None
    area = _hull_area_m2(x, y) if area_m2 is None else float(area_m2)
    disc = np.pi * eps**2
    min_samples = max(MIN_SAMPLES_FLOOR,
                      int(np.ceil(density_factor * total / max(area, disc) * disc - 1e-9)))
    log.info("DBSCAN eps set to %.0f m and min_samples to %d: %g x the mean density of %.0f "
             "incidents per km2 over %.2f km2 (%s), at least %d.", eps, min_samples,
             density_factor, total / max(area, disc) * 1e6, area / 1e6,
             "convex hull of the points" if hull else "given", MIN_SAMPLES_FLOOR)
    return eps, min_samples


def suggest_hdbscan_params(x, y) -> int:
    """Choose HDBSCAN's ``min_cluster_size``: 0.5% of the points, at least 10. Logged.

    Parameters
    ----------
    x, y : array-like
        Eastings and northings, EPSG:27700 metres.

    Returns
    -------
    int
        Smallest number of incidents that make a place.

    Examples
    --------
    >>> gen = np.random.default_rng(0)
    >>> suggest_hdbscan_params(gen.uniform(0, 2000, 5000), gen.uniform(0, 2000, 5000))
    25
    """
    x, _ = check_xy(x, y, finite=True, metres=True)
    size = max(HDBSCAN_FLOOR, int(round(HDBSCAN_SHARE * x.size)))
    log.info("HDBSCAN min_cluster_size set to %d (%.1f%% of %d incidents, at least %d).",
             size, 100 * HDBSCAN_SHARE, x.size, HDBSCAN_FLOOR)
    return size


def _relabel(labels: np.ndarray, sizes_from: np.ndarray) -> np.ndarray:
    """Renumber clusters 0, 1, ... by size (``sizes_from``) descending; ties by first seen.

    ``labels`` are in a canonical (coordinate-sorted) order, so the result does not depend
    on the input row order.
    """
    k = labels.max() + 1 if labels.size else 0
    if k <= 0:
        return labels
    ok = labels >= 0
    size = np.bincount(labels[ok], weights=sizes_from[ok], minlength=k)
    first = np.full(k, labels.size)
    np.minimum.at(first, labels[ok], np.flatnonzero(ok))
    new = np.empty(k, dtype=np.int64)
    new[np.lexsort((first, -size))] = np.arange(k)
    return np.where(ok, new[np.maximum(labels, 0)], -1)


def _range_min(values: np.ndarray, lo: np.ndarray, hi: np.ndarray, longest: int) -> np.ndarray:
    """The least of ``values[lo:hi]`` for each range (ranges of at most ``longest``
    values; an empty one gives the dtype's largest value), by a sparse table."""
    big = np.iinfo(values.dtype).max
    table = [values]
    while 2 ** len(table) <= longest:
        prev, half = table[-1], 2 ** (len(table) - 1)
        shifted = np.full_like(prev, big)
        shifted[:len(prev[half:])] = prev[half:]
        table.append(np.minimum(prev, shifted))
    n = hi - lo
    out = np.full(len(lo), big, dtype=values.dtype)
    for level, row in enumerate(table):  # each range by the two blocks of 2**level that cover it
        use = (n >= 2 ** level) & (n < 2 ** (level + 1))
        a, b = lo[use], hi[use] - 2 ** level
        out[use] = np.minimum(row[a], row[b])
    return out


def _lattice_dbscan(ix: np.ndarray, iy: np.ndarray, mass: np.ndarray, *, eps_m: float,
                    step_m: float, min_samples: float) -> np.ndarray:
    """DBSCAN labels of the occupied cells of a lattice of ``step_m`` metres, the same as
    scikit-learn's ``DBSCAN(eps_m, min_samples).fit(centres, sample_weight=mass)`` on the
    cells' centres given in the order of ``(ix, iy)`` (which they must be sorted by, each
    cell once, indices 0 or more).

    On a lattice every cell's neighbourhood (centres within ``eps_m``) is the same stencil
    of offsets: for each column offset a run of rows, found by counting the cells before
    its ends (a table of the lattice, or binary search of the sorted cells), so neither
    the neighbour lists nor a loop per cell are needed (scikit-learn
    sums each cell's neighbours' weights in Python: seconds at a million cells). Cells
    whose neighbours weigh ``min_samples`` or more are core; core cells within ``eps_m``
    of each other are joined (connected components); a cell that is not core takes the
    cluster, of those with a core cell within its reach, found first by scikit-learn's
    scan (the one whose first core cell comes first), else is noise (-1). Clusters are
    numbered as scikit-learn numbers them. Whole-number weights (counts) sum exactly, so
    the labels are scikit-learn's; the stencil is the set of offsets ``(dx, dy)`` with
    ``(dx * step)**2 + (dy * step)**2 <= eps**2``, what its k-d tree tests on centres
    whose differences are exact (whole or half metres)."""
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    n = len(ix)
    reach = int(np.floor(eps_m / step_m))
    while ((reach + 1) * step_m) ** 2 <= eps_m ** 2:
        reach += 1
    offsets = np.arange(-reach, reach + 1)
    # half-height of the run of rows in each column offset: (dx s)^2 + (dy s)^2 <= eps^2
    half = np.array([int(((dx * step_m) ** 2 + (offsets * step_m) ** 2 <= eps_m ** 2).sum()
                          // 2) for dx in offsets])
    # lattice positions padded by the reach on every side, so runs stay inside it
    span = np.int64(iy.max() + 1 + 2 * reach)
    key = (ix.astype(np.int64) + reach) * span + iy.astype(np.int64) + reach
    if n > 1 and not (np.diff(key) > 0).all():
        raise ValueError("lattice cells must be distinct and sorted by (ix, iy)")
    size = int(ix.max() + 1 + 2 * reach) * int(span)
    # the cells before each position: a table of the lattice when it is small enough (4
    # bytes a position: London at 10 m, 67 MB), else by binary search of the sorted keys
    if size <= max(LATTICE_TABLE_PER_CELL * n, LATTICE_TABLE_MIN):
        table = np.zeros(size + 1, dtype=np.int64 if n >= 2 ** 31 else np.int32)
        table[key + 1] = 1
        np.cumsum(table, out=table)

        def before(q: np.ndarray) -> np.ndarray:
            return table[q]
    else:
        def before(q: np.ndarray) -> np.ndarray:
            return np.searchsorted(key, q, side="left")

    def runs(of: np.ndarray, dx: int) -> tuple[np.ndarray, np.ndarray]:
        """Positions [lo, hi) of the cells in the run of column offset dx of each cell."""
        centre = of + dx * span
        return before(centre - half[dx + reach]), before(centre + half[dx + reach] + 1)

    whole = np.array_equal(mass, np.round(mass))
    total = np.r_[0, np.cumsum(mass.astype(np.int64) if whole else mass)]
    weight = np.zeros(n, dtype=total.dtype)
    for dx in offsets.tolist():
        lo, hi = runs(key, dx)
        weight += total[hi] - total[lo]
    core = weight >= min_samples
    ranked = np.r_[0, np.cumsum(core)]  # position among the core cells
    ckey = key[core]
    m = len(ckey)
    labels = np.full(n, -1, dtype=np.int64)
    if m == 0:
        return labels
    # core cells in reach of each other, by the forward half of the stencil: each core cell
    # is joined to the first core cell of each run, and the core cells of a run to each
    # other (consecutive ones: they are all in reach of the first cell)
    src, dst = [], []
    linked = np.zeros(m + 1, dtype=np.int64)
    for dx in range(0, reach + 1):
        lo, hi = (ranked[r] for r in runs(ckey, dx))
        if dx == 0:  # the rows above, in the same column
            lo = np.arange(m) + 1
        some = hi > lo
        src.append(np.flatnonzero(some))
        dst.append(lo[some])
        many = hi - lo >= 2
        linked += np.bincount(lo[many], minlength=m + 1) - np.bincount(hi[many] - 1,
                                                                         minlength=m + 1)
    chain = np.flatnonzero(np.cumsum(linked)[:m - 1] > 0)
    src.append(chain)
    dst.append(chain + 1)
    a, b = np.concatenate(src), np.concatenate(dst)
    graph = coo_matrix((np.ones(len(a), dtype=np.int8), (a, b)), shape=(m, m)).tocsr()
    _, comp = connected_components(graph, directed=False)
    # scikit-learn numbers clusters by their first core cell in the cells' order
    first = np.full(comp.max() + 1, m, dtype=np.int64)
    np.minimum.at(first, comp, np.arange(m))
    number = np.empty(len(first), dtype=np.int64)
    number[np.argsort(first)] = np.arange(len(first))
    core_label = number[comp]
    labels[core] = core_label
    # a border cell joins the first-numbered cluster with a core cell in its reach
    rest = np.flatnonzero(~core)
    best = np.full(len(rest), np.iinfo(np.int64).max, dtype=np.int64)
    for dx in offsets.tolist():
        lo, hi = (ranked[r] for r in runs(key[rest], dx))
        best = np.minimum(best, _range_min(core_label, lo, hi, 2 * half[dx + reach] + 1))
    found = best < np.iinfo(np.int64).max
    labels[rest[found]] = best[found]
    return labels


def cluster_points(x, y, *, method: ClusterMethod = "dbscan", eps_m: float | None = None,
                   min_samples: int | None = None, bin_m: float = 10.0, weights=None,
                   area_m2: float | None = None, max_sample: int = HDBSCAN_MAX_SAMPLE,
                   rng: int | np.random.Generator | None = 0) -> np.ndarray:
    """Cluster label of each point: 0 is the largest cluster, -1 noise.

    Labels depend on the set of points, not on their order.

    Parameters
    ----------
    x, y : array-like
        Eastings and northings, EPSG:27700 metres.
    method : {"dbscan", "hdbscan"}, default "dbscan"
    eps_m : float, optional
        DBSCAN: neighbourhood radius in metres, default from :func:`suggest_dbscan_params`
        (75). HDBSCAN: ``cluster_selection_epsilon`` in metres (clusters closer than this
        merge), default 0.
    min_samples : int, optional
        DBSCAN: weight within ``eps_m`` that makes a core point, default from
        :func:`suggest_dbscan_params`. HDBSCAN: smallest number of incidents in a cluster,
        default from :func:`suggest_hdbscan_params`.
    bin_m : float, default 10
        DBSCAN only: lattice cell in metres on which points are counted; 0 runs exact
        DBSCAN. At most half of ``eps_m``.
    weights : array-like, optional
        DBSCAN only: weight per point (harm, canisters); default 1 each.
    area_m2 : float, optional
        DBSCAN: study area for the default ``min_samples``; default the points' convex hull.
    max_sample : int, default 20000
        HDBSCAN only: it runs on a random subsample of this many points at most.
    rng : int, numpy.random.Generator or None, default 0
        Seed of the HDBSCAN subsample.

    Returns
    -------
    numpy.ndarray
        int64 labels, one per point.

    Examples
    --------
    >>> gen = np.random.default_rng(0)
    >>> x = np.r_[gen.normal(500, 10, 50), gen.uniform(0, 5000, 50)]
    >>> y = np.r_[gen.normal(500, 10, 50), gen.uniform(0, 5000, 50)]
    >>> labels = cluster_points(x, y, eps_m=30, min_samples=10)
    >>> int((labels[:50] == 0).sum()), sorted(set(labels.tolist()))
    (50, [-1, 0])
    """
    x, y = check_xy(x, y, finite=True, metres=True)
    check_option("method", method, METHODS)
    if eps_m is not None:
        check_positive("eps_m", eps_m, allow_zero=method == "hdbscan")
    if min_samples is not None:
        check_positive("min_samples", min_samples, integer=True)
    check_positive("bin_m", bin_m, allow_zero=True)
    check_positive("max_sample", max_sample, integer=True)
    w = _weights(weights, x.size)
    if method == "hdbscan":
        if w is not None:
            raise ValueError("weights apply to method='dbscan' only; got weights with "
                             "method='hdbscan'.")
        return _hdbscan(x, y, eps_m=eps_m or 0.0, min_size=min_samples, max_sample=max_sample,
                        rng=rng)
    if eps_m is None or min_samples is None:
        eps, ms = suggest_dbscan_params(x, y, area_m2=area_m2, eps_m=eps_m, weights=w)
        eps_m = eps if eps_m is None else eps_m
        min_samples = ms if min_samples is None else min_samples
    if bin_m > eps_m / 2:
        raise ValueError(f"bin_m must be 0 (exact) or at most half of eps_m ({eps_m / 2:g} m); "
                         f"got {bin_m!r}.")
    if x.size == 0:
        return np.zeros(0, dtype=np.int64)
    inv: np.ndarray
    if bin_m > 0:  # the occupied cells of a lattice, by lattice arithmetic (no neighbour lists)
        ix, iy = np.floor(x / bin_m).astype(np.int64), np.floor(y / bin_m).astype(np.int64)
        ix, iy = ix - ix.min(), iy - iy.min()
        keys, inv, counts = np.unique(ix * (iy.max() + 1) + iy, return_inverse=True,
                                      return_counts=True)
        inv = inv.ravel()
        mass = counts.astype(float) if w is None else np.bincount(inv, weights=w,
                                                                  minlength=len(counts))
        labels = _lattice_dbscan(keys // (iy.max() + 1), keys % (iy.max() + 1), mass,
                                 eps_m=float(eps_m), step_m=float(bin_m),
                                 min_samples=int(min_samples))
    else:
        centres, inv, counts = np.unique(np.column_stack([x, y]), axis=0,
                                         return_inverse=True, return_counts=True)
        inv = inv.ravel()
        mass = counts.astype(float) if w is None else np.bincount(inv, weights=w,
                                                                  minlength=len(counts))
        from sklearn.cluster import DBSCAN  # not at import: scikit-learn takes a second

        labels = DBSCAN(eps=float(eps_m), min_samples=int(min_samples)).fit(
            centres, sample_weight=mass).labels_
    return _relabel(labels.astype(np.int64), counts.astype(float))[inv]


def _hdbscan(x, y, *, eps_m: float, min_size: int | None, max_sample: int, rng) -> np.ndarray:
    n = x.size
    if min_size is None:
        min_size = suggest_hdbscan_params(x, y)
    order = np.lexsort((y, x))  # canonical order: row order cannot change the sample
    if n > max_sample:
        pick = np.sort(np.random.default_rng(rng).choice(n, max_sample, replace=False))
        order = order[pick]
    m = order.size
    size = max(2, int(round(min_size * m / n))) if n else 2
    if m <= size:
        return np.full(n, -1, dtype=np.int64)
    pts = np.column_stack([x[order], y[order]])
    from sklearn.cluster import HDBSCAN  # not at import, as DBSCAN

    labels = HDBSCAN(min_cluster_size=size, min_samples=size, cluster_selection_epsilon=eps_m,
                     copy=True).fit(pts).labels_.astype(np.int64)
    # identical points (repeat addresses, police.uk map points) can get different labels
    # from HDBSCAN's tie-breaking: give each group its majority label (ties: smallest)
    new = np.r_[True, (np.diff(pts[:, 0]) != 0) | (np.diff(pts[:, 1]) != 0)]
    group = np.cumsum(new) - 1
    span = np.int64(labels.max() + 2)
    pair, count = np.unique(group * span + labels + 1, return_counts=True)
    g, lab_g = pair // span, pair % span - 1
    best = np.lexsort((lab_g, -count, g))
    best = best[np.r_[True, g[best][1:] != g[best][:-1]]]
    labels = lab_g[best][group]
    out = np.full(n, -1, dtype=np.int64)
    if m == n:
        out[order] = labels
    else:  # the rest join their nearest sampled point's cluster within its core distance
        from scipy.spatial import cKDTree

        tree = cKDTree(pts)
        core = tree.query(pts, k=size)[0][:, -1]
        dist, near = tree.query(np.column_stack([x, y]), k=1)
        out = np.where((labels[near] >= 0) & (dist <= core[near]), labels[near], -1)
        out[order] = labels
    relabelled = _relabel(out[np.lexsort((y, x))], np.ones(n))
    final = np.empty(n, dtype=np.int64)
    final[np.lexsort((y, x))] = relabelled
    return final
