"""Merge the done chunks into the final per-layer files: exact top/bottom-k, statistics, border counts, histogram,
every image's values and pooled rows.

Image ids (rows) are given here: the indexed images sorted by path get 0..n-1, so an index updated
incrementally equals one rebuilt from scratch. Collection-wide quantiles and percentiles come from a fixed
histogram per unit (``HIST_BINS`` bins between the unit's minimum and maximum over the collection), filled
from the spatial maxima stored in the chunks, one chunk at a time: memory stays units × bins, whatever the
number of images; a percentile is exact to 1/HIST_BINS of the unit's range (linear inside a bin).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from imagemachines.index.accumulate import UnitAccumulator
from imagemachines.index.store import (
    chunk_file,
    layer_file,
    load_tensors,
    maxima_file,
    pooled_file,
    save_tensors,
    write_array_streaming,
)

HIST_BINS = 512
QUANTILES = (0.01, 0.05, 0.25, 0.5, 0.75, 0.95, 0.99)


def assign_rows(conn: sqlite3.Connection) -> tuple[np.ndarray, np.ndarray]:
    """Give indexed images their ids (path order); returns (sorted keys, their rows) for lookups."""
    keys = [r[0] for r in conn.execute("SELECT key FROM images WHERE status = 'ok' ORDER BY path")]
    with conn:
        conn.execute("UPDATE images SET row = NULL")
        conn.executemany("UPDATE images SET row = ? WHERE key = ?", [(i, key) for i, key in enumerate(keys)])
    k = np.asarray(keys, dtype=np.int64)
    order = np.argsort(k)
    return k[order], order.astype(np.int64)


def _rows(keys: torch.Tensor, sorted_keys: np.ndarray, rows: np.ndarray) -> torch.Tensor:
    if keys.numel() == 0:
        return keys.clone()
    k = keys.numpy()
    pos = np.searchsorted(sorted_keys, k)
    pos = np.clip(pos, 0, max(len(sorted_keys) - 1, 0))
    if len(sorted_keys) == 0 or not np.array_equal(sorted_keys[pos], k):
        raise RuntimeError("index chunks name images the table does not hold; rebuild the index with --rebuild")
    return torch.from_numpy(rows[pos].copy())


def histogram(chunks: list[int], index_dir: Path, layer: str, low: torch.Tensor, high: torch.Tensor,
              bins: int = HIST_BINS) -> torch.Tensor:
    """[C, bins] counts of the images' spatial maxima between each unit's *low* and *high*."""
    c = low.shape[0]
    counts = torch.zeros(c * bins, dtype=torch.int64)
    span = (high - low).clamp_min(1e-12)
    finite = torch.isfinite(low)
    base = torch.arange(c) * bins
    for cid in chunks:
        maxima = load_tensors(chunk_file(index_dir, cid), [f"{layer}/maxima"])[f"{layer}/maxima"].double()
        if maxima.numel() == 0:
            continue
        lo = torch.where(finite, low, 0.0)
        b = ((maxima - lo) / span * bins).floor().clamp(0, bins - 1).long()
        counts += torch.bincount((b + base).flatten(), minlength=c * bins)
    return counts.view(c, bins).to(torch.int32)


def quantiles_from_histogram(hist: torch.Tensor, low: torch.Tensor, high: torch.Tensor,
                             qs=QUANTILES) -> torch.Tensor:
    """[C, len(qs)] values at quantiles *qs*, linear inside bins."""
    h = hist.double()
    cum = h.cumsum(1)
    total = cum[:, -1:].clamp_min(1)
    bins = h.shape[1]
    out = []
    for q in qs:
        target = q * total
        idx = torch.searchsorted(cum, target).clamp(max=bins - 1)
        before = torch.where(idx > 0, cum.gather(1, (idx - 1).clamp_min(0)), torch.zeros_like(target))
        inside = h.gather(1, idx).clamp_min(1)
        frac = ((target - before) / inside).clamp(0, 1)
        out.append(low.view(-1, 1) + (idx + frac) / bins * (high - low).view(-1, 1))
    return torch.cat(out, 1).float()


def merge_layer(index_dir: Path, chunks: list[int], layer: str, channels: int, k: int, pooled: bool,
                sorted_keys: np.ndarray, rows: np.ndarray, n_images: int) -> None:
    """Write ``layers/LAYER.safetensors`` (and ``pooled/LAYER.safetensors``) from the chunks."""
    acc = UnitAccumulator.empty(channels, k)
    names = [f"{layer}/{f}" for f in UnitAccumulator.FIELDS]
    for cid in chunks:
        acc.merge(UnitAccumulator.from_tensors(load_tensors(chunk_file(index_dir, cid), names), f"{layer}/", k))
    mean, std = acc.mean_std()
    hist = histogram(chunks, index_dir, layer, acc.low, acc.high)
    low = torch.where(torch.isfinite(acc.low), acc.low, 0.0)
    high = torch.where(torch.isfinite(acc.high), acc.high, 0.0)
    tensors = {
        "top_value": acc.top_v, "top_image": _rows(acc.top_key.flatten(), sorted_keys, rows).view_as(acc.top_key),
        "top_cell": acc.top_cell, "bottom_value": acc.bot_v,
        "bottom_image": _rows(acc.bot_key.flatten(), sorted_keys, rows).view_as(acc.bot_key),
        "bottom_cell": acc.bot_cell, "count": acc.count, "mean": mean, "std": std, "min": low, "max": high,
        "histogram": hist, "quantiles": quantiles_from_histogram(hist, low, high), "border": acc.border,
        "edge_high": acc.edge_high, "inner_high": acc.inner_high,
    }
    save_tensors(layer_file(index_dir, layer), {n: t.contiguous() for n, t in tensors.items()})

    def rows_of(kind: str):
        def fill(arr: np.ndarray) -> None:
            for cid in chunks:
                t = load_tensors(chunk_file(index_dir, cid), ["keys", f"{layer}/{kind}"])
                if t["keys"].numel():
                    arr[_rows(t["keys"], sorted_keys, rows).numpy()] = t[f"{layer}/{kind}"].numpy()

        return fill

    write_array_streaming(maxima_file(index_dir, layer), "maxima", (n_images, channels), np.float16,
                          rows_of("maxima"))
    if pooled:
        write_array_streaming(pooled_file(index_dir, layer), "pooled", (n_images, channels), np.float16,
                              rows_of("pooled"))
    else:
        pooled_file(index_dir, layer).unlink(missing_ok=True)


def merge_all(index_dir: Path, conn: sqlite3.Connection, layers: dict[str, int], k: int, pooled: bool,
              on_layer: Callable[[str], None] | None = None, similarity=None) -> int:
    """Merge every done chunk into the final files (with a :class:`SimilaritySpec` *similarity*, also the
    similarity modes' rows); returns the number of indexed images."""
    sorted_keys, rows = assign_rows(conn)
    chunks = [r[0] for r in conn.execute("SELECT id FROM chunks WHERE state = 'done' ORDER BY id")]
    for layer, channels in layers.items():
        merge_layer(index_dir, chunks, layer, channels, k, pooled, sorted_keys, rows, len(rows))
        if on_layer is not None:
            on_layer(layer)
    if similarity is not None:
        from imagemachines.index.similarity_store import merge_similarity

        merge_similarity(index_dir, chunks, similarity, lambda keys: _rows(keys, sorted_keys, rows), len(rows))
    return len(rows)
