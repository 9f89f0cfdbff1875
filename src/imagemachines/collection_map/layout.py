"""A 2-D layout of a collection from one vector per painting: cosine geometry, PCA, then UMAP (umap-learn).

Steps: every vector is scaled to unit length (so distances follow cosine similarity, as the index's
``similar`` does), reduced by PCA to ``pca`` components when it has more dimensions (scikit-learn, randomized,
seeded), and laid out in two dimensions by UMAP with a fixed ``random_state`` (reproducible: the same vectors
and seed give the same layout). The layout is scaled into the unit square, keeping its aspect.

Paintings added to the index later are *placed*, not laid out again: each new vector goes through the stored
PCA and lands at the distance-weighted mean position of its ``k`` nearest laid-out paintings in the reduced
space (what UMAP's own ``transform`` starts from; the fitted UMAP object cannot be stored without a pickle).
``imagemachines map --refit`` lays everything out afresh.
"""

from __future__ import annotations

import warnings
from dataclasses import asdict, dataclass

import numpy as np

from imagemachines.errors import UserError

DEFAULT_PCA = 50
PLACE_K = 10
EXACT_KNN_FROM, EXACT_KNN_UP_TO = 4096, 60_000  # UMAP computes every distance itself below; NN-descent above


@dataclass(frozen=True)
class LayoutParams:
    """How a layout is made (stored with it)."""

    method: str = "umap"
    pca: int = DEFAULT_PCA          # components kept (0: none); only applied when the vectors have more
    neighbors: int = 15
    min_dist: float = 0.1
    seed: int = 0

    def as_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class Reduction:
    """The fitted preprocessing: unit length, then ``(x - mean) @ components.T`` (none when *components* is
    empty)."""

    mean: np.ndarray          # [dims] float32
    components: np.ndarray    # [k, dims] float32, or [0, dims] for no PCA

    def apply(self, vectors: np.ndarray, block: int = 8192) -> np.ndarray:
        n = vectors.shape[0]
        k = self.components.shape[0] or vectors.shape[1]
        out = np.empty((n, k), dtype=np.float32)
        for s in range(0, n, block):
            part = unit_rows(np.asarray(vectors[s:s + block], dtype=np.float32))
            out[s:s + block] = (part - self.mean) @ self.components.T if self.components.shape[0] else part
        return out


def unit_rows(x: np.ndarray) -> np.ndarray:
    """Rows scaled to unit length (all-zero rows stay zero)."""
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return x / np.maximum(norms, 1e-12)


def fit_reduction(vectors: np.ndarray, components: int, seed: int = 0) -> Reduction:
    """PCA of the unit-length *vectors* to *components* (none when 0 or not fewer than the dimensions)."""
    dims = vectors.shape[1]
    x = unit_rows(np.asarray(vectors, dtype=np.float32))
    if components <= 0 or components >= min(dims, x.shape[0]):
        return Reduction(np.zeros(dims, np.float32), np.zeros((0, dims), np.float32))
    from sklearn.decomposition import PCA

    pca = PCA(components, svd_solver="randomized", random_state=seed).fit(x)
    return Reduction(pca.mean_.astype(np.float32), pca.components_.astype(np.float32))


def normalize_xy(xy: np.ndarray) -> np.ndarray:
    """Scale a 2-D layout into the unit square, centred, keeping its aspect."""
    xy = np.asarray(xy, dtype=np.float64)
    lo, hi = xy.min(0), xy.max(0)
    span = float(max((hi - lo).max(), 1e-12))
    return ((xy - (lo + hi) / 2) / span + 0.5).astype(np.float32)


def embed(reduced: np.ndarray, params: LayoutParams) -> np.ndarray:
    """[n, 2] positions in the unit square for the *reduced* vectors."""
    n = reduced.shape[0]
    if n < 3:
        raise UserError(f"A map needs at least 3 indexed paintings; this index has {n}.")
    if params.method != "umap":
        raise UserError(f"Unknown layout method {params.method!r}; use umap.")
    import umap

    neighbors = max(2, min(params.neighbors, n - 1))
    init = "spectral" if n > neighbors + 2 else "random"
    data = reduced.astype(np.float32, copy=False)
    precomputed = (None, None, None)
    if EXACT_KNN_FROM <= n <= EXACT_KNN_UP_TO:
        # the exact neighbours by one blocked matrix product (a few seconds for 30,000 on two cores) instead of
        # UMAP's NN-descent, which a fixed random_state keeps on one thread (most of the layout's time)
        idx, dist = knn(data, data, neighbors)
        dist[idx == np.arange(n)[:, None]] = 0.0  # a painting is at 0 from itself (the product's rounding aside)
        order = np.argsort(dist, axis=1, kind="stable")
        precomputed = (np.take_along_axis(idx, order, 1), np.take_along_axis(dist, order, 1), None)
    reducer = umap.UMAP(n_neighbors=neighbors, min_dist=params.min_dist, n_components=2, metric="euclidean",
                        random_state=params.seed, init=init, n_jobs=1, low_memory=True, verbose=False,
                        precomputed_knn=precomputed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "n_jobs overridden by setting random_state", disconnected graphs
        xy = reducer.fit_transform(data)
    if not np.all(np.isfinite(xy)):
        raise UserError("The layout failed (non-finite positions). Try another --seed or --refit.")
    return normalize_xy(xy)


def knn(queries: np.ndarray, points: np.ndarray, k: int, block: int = 2048) -> tuple[np.ndarray, np.ndarray]:
    """(indices [q, k], distances [q, k]) of the *k* nearest *points* of each query (Euclidean), nearest first."""
    k = min(k, points.shape[0])
    p2 = (points.astype(np.float32) ** 2).sum(1)
    idx = np.empty((queries.shape[0], k), dtype=np.int64)
    dist = np.empty((queries.shape[0], k), dtype=np.float32)
    for s in range(0, queries.shape[0], block):
        q = queries[s:s + block].astype(np.float32)
        d2 = np.maximum((q ** 2).sum(1)[:, None] - 2 * q @ points.T + p2[None, :], 0)
        part = np.argpartition(d2, k - 1, axis=1)[:, :k] if k < points.shape[0] else np.tile(
            np.arange(points.shape[0]), (q.shape[0], 1))
        pd = np.take_along_axis(d2, part, 1)
        order = np.argsort(pd, axis=1, kind="stable")
        idx[s:s + block] = np.take_along_axis(part, order, 1)
        dist[s:s + block] = np.sqrt(np.take_along_axis(pd, order, 1))
    return idx, dist


def place(new: np.ndarray, fitted: np.ndarray, fitted_xy: np.ndarray, k: int = PLACE_K) -> np.ndarray:
    """Positions for *new* reduced vectors: the inverse-distance-weighted mean of their *k* nearest *fitted*
    vectors' positions (an exact duplicate lands on its twin)."""
    if new.shape[0] == 0:
        return np.zeros((0, 2), np.float32)
    idx, dist = knn(new, fitted, k)
    weights = 1.0 / np.maximum(dist, 1e-6)
    weights /= weights.sum(1, keepdims=True)
    return (weights[:, :, None] * fitted_xy[idx]).sum(1).astype(np.float32)


def neighbourhood_kept(high: np.ndarray, xy: np.ndarray, k: int = 10, sample: int | None = 2000,
                       seed: int = 0) -> float:
    """The mean share of each painting's *k* nearest neighbours on the map that are also among its *k* nearest
    in the *high*-dimensional space (cosine), over a seeded *sample* of paintings (all when None)."""
    n = high.shape[0]
    if n <= k:
        raise UserError(f"Neighbourhoods of {k} need more than {k} paintings.")
    rows = np.arange(n) if sample is None or sample >= n else np.random.default_rng(seed).choice(n, sample, False)
    h = unit_rows(np.asarray(high, dtype=np.float32))
    near_high, _ = knn(h[rows], h, k + 1)
    near_map, _ = knn(np.asarray(xy, np.float32)[rows], np.asarray(xy, np.float32), k + 1)
    shares = []
    for r, a, b in zip(rows, near_high, near_map, strict=True):
        a = [i for i in a if i != r][:k]
        b = [i for i in b if i != r][:k]
        shares.append(len(set(a) & set(b)) / k)
    return float(np.mean(shares))
