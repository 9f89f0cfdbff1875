"""The layout's neighbour search: from EXACT_KNN_FROM paintings the map hands UMAP the exact neighbours (one
blocked matrix product) instead of letting it search; checked on a small set by lowering the threshold."""

from __future__ import annotations

import numpy as np
import pytest

from imagemachines.collection_map import layout
from imagemachines.collection_map.layout import LayoutParams, embed, knn, neighbourhood_kept

pytestmark = pytest.mark.slow  # UMAP compiles itself on first use


def blobs(n_per: int = 40, dims: int = 12, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    centres = rng.normal(0, 4, (3, dims))
    x = np.concatenate([c + rng.normal(0, 1, (n_per, dims)) for c in centres]).astype(np.float32)
    return x, np.repeat(np.arange(3), n_per)


def test_the_exact_neighbours_reach_umap_and_the_layout_keeps_the_groups(monkeypatch):
    import umap

    seen = {}
    real = umap.UMAP

    class Spy(real):
        def __init__(self, **kw):
            seen.update(kw)
            super().__init__(**kw)

    monkeypatch.setattr(umap, "UMAP", Spy)
    monkeypatch.setattr(layout, "EXACT_KNN_FROM", 0)
    x, group = blobs()
    xy = embed(x, LayoutParams(neighbors=10))
    idx, dist, _ = seen["precomputed_knn"]
    n = x.shape[0]
    assert idx.shape == (n, 10) and np.array_equal(idx[:, 0], np.arange(n)) and np.all(dist[:, 0] == 0)
    full = np.linalg.norm(x[:, None, :] - x[None, :, :], axis=2)
    expected = np.sort(full, axis=1)[:, 1:10]
    assert np.allclose(dist[:, 1:], expected, atol=1e-3)       # the true nearest, nearest first
    near, _ = knn(xy, xy, 6)
    assert np.mean(group[near[:, 1:]] == group[:, None]) > 0.95
    assert neighbourhood_kept(x, xy, 5, sample=None) > 0.3


def test_below_the_threshold_umap_searches_itself(monkeypatch):
    import umap

    seen = {}

    class Spy(umap.UMAP):
        def __init__(self, **kw):
            seen.update(kw)
            super().__init__(**kw)

    monkeypatch.setattr(umap, "UMAP", Spy)
    x, _ = blobs(n_per=10)
    embed(x, LayoutParams(neighbors=5))
    assert seen["precomputed_knn"] == (None, None, None)
