"""``build_map``: lay out an index's paintings (or place the new ones), cluster them, label the clusters, store it.

Incremental with the index: run after ``imagemachines index`` has added paintings, it keeps every known
painting where it was (matched by its image hash), places the new ones with the stored PCA and their nearest
laid-out neighbours (:func:`imagemachines.collection_map.layout.place`), drops the removed ones, and labels
the clusters again. ``refit=True`` lays everything out afresh; so does a run with other layout settings, but only
when asked (else a clear error).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from imagemachines import __version__
from imagemachines.collection_map.clusters import assign, cluster_xy, label_clusters, parse_clusters
from imagemachines.collection_map.layout import (
    LayoutParams,
    Reduction,
    embed,
    fit_reduction,
    neighbourhood_kept,
    place,
)
from imagemachines.collection_map.store import StoredMap, load_map, map_dir, save_map, sha_bytes, sha_keys
from imagemachines.collection_map.vectors import source_for
from imagemachines.errors import UserError

NEIGHBOURHOOD_SAMPLE = 1000


@dataclass
class MapResult:
    """What a run did: where the map is, how many paintings were laid out, placed, kept and dropped."""

    folder: Path
    name: str
    n: int
    fitted: int
    placed: int
    kept: int
    removed: int
    seconds: float
    neighbourhood: float | None

    def summary(self) -> str:
        if self.fitted:
            what = f"laid out {self.fitted} paintings"
        elif self.placed or self.removed:
            what = f"placed {self.placed} new paintings, kept {self.kept}, dropped {self.removed}"
        else:
            what = f"up to date ({self.n} paintings)"
        score = f"; {100 * self.neighbourhood:.0f} % of map neighbours are neighbours in its source space" \
            if self.neighbourhood is not None else ""
        return f"Map {self.name}: {what} in {self.seconds:.1f} s{score}."


def _versions() -> dict:
    from importlib.metadata import PackageNotFoundError, version

    out = {"imagemachines": __version__}
    for pkg in ("umap-learn", "scikit-learn", "numpy"):
        try:
            out[pkg] = version(pkg)
        except PackageNotFoundError:
            out[pkg] = None
    return out


def _settings(params: LayoutParams, clusters: int | None) -> dict:
    return {**params.as_dict(), "clusters": "auto" if clusters is None else clusters}


def build_map(index, layer: str | None = None, *, mode: str | None = None, params: LayoutParams = LayoutParams(),
              clusters: str = "auto", refit: bool = False, progress: bool = True) -> MapResult:
    """Make or update the map of *index* (an opened :class:`~imagemachines.index.CollectionIndex`) for *layer*
    (default: the deepest pooled layer), or with *mode* (``style``, ``content:0.5,style:0.5`` …) from the
    index's similarity rows, its groups explained by *layer*'s units; see the module docstring."""
    from rich.console import Console

    from imagemachines.collection_map.contrast import standardize
    from imagemachines.index.enrichment import collection_facets

    console = Console(stderr=True, highlight=False, quiet=not progress)
    k = parse_clusters(clusters)
    if params.pca < 0 or params.neighbors < 2 or not 0 <= params.min_dist <= 1 or params.seed < 0:
        raise UserError("Layout settings out of range: --pca ≥ 0, --neighbors ≥ 2, 0 ≤ --min-dist ≤ 1, --seed ≥ 0.")
    source = source_for(index, layer, mode)
    vectors = source.vectors(index)
    images = index.images()
    if len(images) != vectors.shape[0]:
        raise UserError(f"The index in {index.path} holds {len(images)} images but {vectors.shape[0]} rows of "
                        f"{source.description}; run `imagemachines index` again to finish it.")
    if len(images) < 3:
        raise UserError(f"A map needs at least 3 indexed paintings; the index in {index.path} has {len(images)}.")
    folder = map_dir(index.path, source.name)
    settings = _settings(params, k)
    shas = sha_bytes([im.sha256 for im in images])
    t0 = time.perf_counter()
    old = load_map(folder) if (folder / "map.json").exists() and not refit else None
    if old is not None and old.meta.get("settings") != settings:
        changed = ", ".join(f"{key} {old.meta.get('settings', {}).get(key)!r} → {settings[key]!r}"
                            for key in settings if old.meta.get("settings", {}).get(key) != settings[key])
        raise UserError(f"The map {source.name} of {index.path} was made with other settings ({changed}). Add "
                        "--refit to lay it out again with the new ones.")
    if old is not None and mode is not None:
        _require_same_modes(old, index, source)
    if old is not None and old.pca_mean.shape[0] != vectors.shape[1]:
        raise UserError(f"The stored map {source.name} has {old.pca_mean.shape[0]} dimensions, the index now "
                        f"{vectors.shape[1]}; add --refit.")
    neighbourhood = None
    if old is None:
        console.print(f"Laying out {len(images)} paintings from {source.description} (PCA {params.pca or 'off'}, "
                      f"UMAP, seed {params.seed})…")
        reduction = fit_reduction(vectors, params.pca, params.seed)
        reduced = reduction.apply(vectors)
        xy = embed(reduced, params)
        labels = cluster_xy(xy, k, params.seed)
        stored = StoredMap({}, shas, xy, labels, np.zeros(len(images), np.uint8), reduced, xy.copy(), labels.copy(),
                           reduction.mean, reduction.components)
        fitted, placed_now, kept, removed = len(images), 0, 0, 0
        neighbourhood = neighbourhood_kept(vectors, xy, 10, NEIGHBOURHOOD_SAMPLE, params.seed)
    else:
        stored, placed_now, kept, removed = _update(old, shas, vectors)
        fitted = 0
        neighbourhood = old.meta.get("neighbourhood", {}).get("kept")
    seconds = time.perf_counter() - t0
    if fitted or placed_now or removed or old is None or old.meta.get("index_updated") != \
            index.manifest.get("updated") or (mode is not None and old.meta.get("source", {}).get("similarity")
                                              != index.manifest.get("similarity")):
        console.print("Labelling the clusters…")
        prepared = standardize(vectors if mode is None else source_for(index, source.layer).vectors(index))
        facets = collection_facets(images)
        cluster_labels = label_clusters(stored.cluster, stored.xy, prepared, facets)
        now = datetime.now(UTC).isoformat(timespec="seconds")
        stored.meta = {
            "source": {"kind": "pooled" if mode is None else "mode", "name": source.name, "layer": source.layer,
                       "description": source.description,
                       **({} if mode is None else {"mode": source.mode,
                                                   "similarity": index.manifest.get("similarity")})},
            "index": {"model": index.model_name, "weights_id": index.weights_id},
            "index_updated": index.manifest.get("updated"),
            "settings": settings, "n": len(images), "n_fitted": int((stored.placed == 0).sum()),
            "n_placed": int(stored.placed.sum()), "dims": int(vectors.shape[1]),
            "reduced_dims": int(stored.fit_reduced.shape[1]),
            "clusters": [c.as_dict() for c in cluster_labels],
            "n_unclustered": int((stored.cluster < 0).sum()),
            "neighbourhood": {"k": 10, "kept": neighbourhood,
                              "sample": min(NEIGHBOURHOOD_SAMPLE, int((stored.placed == 0).sum()))},
            "layout_seconds": round(seconds, 2) if fitted else (old.meta.get("layout_seconds") if old else None),
            "created": now if old is None else old.meta.get("created", now), "updated": now,
            "versions": _versions(),
        }
        save_map(folder, stored)
    return MapResult(folder, source.name, len(images), fitted, placed_now, kept, removed, seconds, neighbourhood)


def _require_same_modes(old: StoredMap, index, source) -> None:
    """A map laid out from similarity rows is kept only while the index computes those rows as it did then
    (the same :class:`~imagemachines.index.similarity_vectors.SimilaritySpec`); a map from before specs were
    recorded, only when it does not read style (the one mode whose vectors have changed since)."""
    then = old.meta.get("source", {}).get("similarity")
    now = index.manifest.get("similarity")
    if then == now or (then is None and "style" not in dict(source.weights)):
        return
    changed = "style statistics from before this version" if then is None else ", ".join(
        f"{key} {then.get(key)!r} → {now.get(key)!r}" for key in sorted(set(then) | set(now or {}))
        if then.get(key) != (now or {}).get(key))
    raise UserError(f"The map {source.name} of {index.path} was laid out from the index's earlier similarity rows "
                    f"({changed}). Add --refit to lay it out from the present ones.")


def _update(old: StoredMap, shas: np.ndarray, vectors: np.ndarray) -> tuple[StoredMap, int, int, int]:
    """The stored map brought in line with the index's current images: kept where known, new ones placed."""
    known = {key: i for i, key in enumerate(sha_keys(old.sha256))}
    keys = sha_keys(shas)
    rows_known = np.array([known.get(key, -1) for key in keys], dtype=np.int64)
    new_rows = np.flatnonzero(rows_known < 0)
    n = len(keys)
    xy = np.empty((n, 2), np.float32)
    cluster = np.empty(n, np.int32)
    placed = np.empty(n, np.uint8)
    have = rows_known >= 0
    xy[have] = old.xy[rows_known[have]]
    cluster[have] = old.cluster[rows_known[have]]
    placed[have] = old.placed[rows_known[have]]
    if new_rows.size:
        reduction = Reduction(old.pca_mean, old.pca_components)
        reduced = reduction.apply(np.asarray(vectors[new_rows]))
        xy[new_rows] = place(reduced, old.fit_reduced, old.fit_xy)
        cluster[new_rows] = assign(xy[new_rows], old.fit_xy, old.fit_cluster)
        placed[new_rows] = 1
    removed = len(known) - len(set(rows_known[have].tolist()))
    stored = StoredMap(old.meta, shas, xy, cluster, placed, old.fit_reduced, old.fit_xy, old.fit_cluster,
                       old.pca_mean, old.pca_components)
    return stored, int(new_rows.size), int(have.sum()), int(removed)
