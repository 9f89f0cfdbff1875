"""Nearest paintings by a similarity mode (or a weighted mix), why each is close, and duplicates grouped.

The search is exact: one float16 matrix–vector product per mode over the finished rows (memory-mapped; torch's
CPU half-precision product, about 2 ms for 30,000 × 1280 values on the development machine, see
docs/benchmarks.md), then the best k. No approximate library is needed at the sizes people index
(measured up to 30,000 paintings; see ``benchmarks/bench_similarity.py``).

Why two paintings are close, per mode (the finished rows are unit vectors, their dot product the score):

- ``content`` and ``composition``: the units whose shared (centred, standardised) activation adds most to the
  dot product — content: unit c adds q_c·x_c; composition: the sum over the unit's grid cells;
- ``style``: the style layers whose statistics match best (each layer's block adds its cosine / #layers).
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import torch

STEP = 65536  # rows per product: bounds the temporary scores, not the matrix (it stays memory-mapped)


def exact_scores(rows: np.ndarray, query: np.ndarray) -> np.ndarray:
    """[n] float32 dot products of the [n, D] float16 *rows* (a memory map is fine) with the [D] *query*."""
    q = torch.from_numpy(np.ascontiguousarray(query, dtype=np.float16))
    out = np.empty(len(rows), dtype=np.float32)
    for s in range(0, len(rows), STEP):
        block = np.asarray(rows[s:s + STEP])
        if block.dtype != np.float16:
            block = block.astype(np.float16)
        with warnings.catch_warnings():  # a read-only memory map: torch only reads it
            warnings.simplefilter("ignore", UserWarning)
            t = torch.from_numpy(block)
        out[s:s + STEP] = (t @ q).float().numpy()
    return out


def best(scores: np.ndarray, k: int, exclude: Sequence[int] = ()) -> list[int]:
    """The ids of the *k* highest *scores*, best first (ties: the smaller id first), never those in *exclude*."""
    s = np.asarray(scores, dtype=np.float32).copy()
    bad = [int(i) for i in exclude if 0 <= int(i) < len(s)]
    s[bad] = -np.inf
    s[~np.isfinite(s)] = -np.inf
    n = max(0, min(int(k), len(s) - len(set(bad))))
    if n == 0:
        return []
    part = np.argpartition(-s, n - 1)[:n] if n < len(s) else np.arange(len(s))
    cut = s[part].min()
    pool = np.flatnonzero(s >= cut)  # every id tied with the last one, so the tie-break is by id
    order = pool[np.lexsort((pool, -s[pool]))]
    return [int(i) for i in order[:n]]


@dataclass(frozen=True)
class Reason:
    """One reason two paintings are close: a unit (content, composition) or a layer (style), and its share of
    the mode's score (contribution / score; the shares of all units or layers add up to 1)."""

    mode: str
    layer: str
    channel: int | None
    share: float

    def as_dict(self) -> dict:
        return {"mode": self.mode, "layer": self.layer, "channel": self.channel, "share": self.share}


def unit_reasons(mode: str, layer: str, query: np.ndarray, row: np.ndarray, units: int, top: int = 3
                 ) -> list[Reason]:
    """The *top* units of *layer* that add most to the dot product of the finished *query* and *row*
    (``units`` units, each owning ``len(row) // units`` consecutive values: one for content, grid² for
    composition)."""
    contrib = (np.asarray(query, np.float64) * np.asarray(row, np.float64)).reshape(units, -1).sum(axis=1)
    total = float(contrib.sum())
    if total <= 0:
        return []
    order = np.lexsort((np.arange(units), -contrib))[:top]
    return [Reason(mode, layer, int(c), float(contrib[c] / total)) for c in order if contrib[c] > 0]


def layer_reasons(layers: Sequence[str], blocks: Sequence[int], query: np.ndarray, row: np.ndarray,
                  top: int = 3) -> list[Reason]:
    """The style layers whose statistics match best: each layer's part of the dot product, largest first."""
    parts, start = [], 0
    q, r = np.asarray(query, np.float64), np.asarray(row, np.float64)
    for size in blocks:
        parts.append(float(q[start:start + size] @ r[start:start + size]))
        start += size
    total = sum(parts)
    if total <= 0:
        return []
    order = sorted(range(len(parts)), key=lambda i: (-parts[i], i))[:top]
    return [Reason("style", layers[i], None, parts[i] / total) for i in order if parts[i] > 0]


@dataclass
class Neighbour:
    """A similar painting: its id, its score (the weighted mix of the modes' cosines), each mode's cosine, why
    it is close, and the other copies of it in the collection (near-duplicates grouped under it)."""

    image_id: int
    score: float
    scores: dict[str, float] = field(default_factory=dict)
    reasons: list[Reason] = field(default_factory=list)
    copies: list[int] = field(default_factory=list)

    def as_dict(self) -> dict:
        return {"image_id": self.image_id, "score": self.score, "scores": dict(self.scores),
                "reasons": [r.as_dict() for r in self.reasons], "copies": list(self.copies)}


def cosine(a: np.ndarray, b: np.ndarray) -> float:
    a, b = np.asarray(a, np.float64).ravel(), np.asarray(b, np.float64).ravel()
    na, nb = np.linalg.norm(a), np.linalg.norm(b)
    return float(a @ b / (na * nb)) if na > 0 and nb > 0 else 0.0


def group_duplicates(candidates: Sequence[int], fingerprint, query_print: np.ndarray | None,
                     threshold: float) -> tuple[list[int], list[list[int]]]:
    """Near-duplicates among ranked *candidates* (ids, best first): ``fingerprint(id)`` gives an id's raw
    fingerprint, compared by cosine with *threshold*. Returns (the candidates that are copies of the query
    itself, the groups of the others in rank order: each group's first id is the best-ranked copy, the rest
    are the copies found after it)."""
    same: list[int] = []
    groups: list[list[int]] = []
    heads: list[np.ndarray] = []
    for i in candidates:
        fp = fingerprint(i)
        if query_print is not None and cosine(fp, query_print) >= threshold:
            same.append(int(i))
            continue
        for g, head in zip(groups, heads, strict=True):
            if cosine(fp, head) >= threshold:
                g.append(int(i))
                break
        else:
            groups.append([int(i)])
            heads.append(fp)
    return same, groups
