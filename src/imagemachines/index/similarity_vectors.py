"""Similarity modes: what makes two paintings alike — subject (content), manner (style), arrangement
(composition).

Each mode turns a painting's activations into one vector; two paintings are as similar as the cosine of their
vectors. Per painting the index stores a *raw* vector per mode (computed in the same single pass as
everything else, float16); the collection then *finishes* them (style and composition: centres and scales
every value by the collection's mean and spread; then normalises) into the unit rows that the search multiplies with.

- ``content``: the spatial mean of every unit of the deepest block with a map (``features.18`` for
  MobileNetV2; the network's penultimate features), as the network gives it. What is in the painting.
- ``style``: second-order statistics of the earlier layers, where position no longer counts — Gatys et al.'s
  style representation (*A Neural Algorithm of Artistic Style*, 2015 / CVPR 2016) taken through the matrix
  logarithm (the Log-Euclidean metric of Arsigny et al., 2006; second-order pooling, Carreira et al., ECCV
  2012). Per style layer, the covariance of its channels over all positions (a Gram matrix with the channel
  means removed) of at most :data:`STYLE_CHANNELS` channels (wider layers go through a fixed random projection,
  seeded by the layer's name), plus a ridge of :data:`STYLE_RIDGE` × its mean variance, then its matrix
  logarithm, upper triangle; each value is standardised over the collection (z-score), each layer normalised to
  unit length, the layers weighted equally; then the rows are whitened over the collection, shrunk
  (:func:`shrunk_whitening`: the few directions that dominate the collection are damped). Brushwork, palette
  and manner count more than subject. (Indexes made before the logarithm keep their plain covariances of 32
  channels, unwhitened: :attr:`SimilaritySpec.statistic`.)
- ``composition``: where things are. The composition layer pooled on a ``grid`` × ``grid`` grid (adaptive
  average), each unit's grid minus its own mean over the grid (so *what* the painting shows drops out and
  *where* it is stays), standardised over the collection. It also finds near-duplicates: the same painting
  photographed twice is arranged alike far more closely than two different paintings.

Layers are chosen per network by :func:`similarity_spec`: the network's top-level blocks fall into stages of
one resolution; the style layers are every block of every stage but the deepest (MobileNetV2:
``features.0`` to ``features.13``), the composition layer the last block of the second-deepest
(``features.13``, 14×14). Why these: docs/explain.md ("Similar paintings") and ``benchmarks/bench_similarity.py``.
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np
import torch
import torch.nn.functional as F

from imagemachines.errors import UserError

MODES = ("content", "style", "composition")
STYLE_CHANNELS = 16  # channels whose covariance a style layer keeps (136 values)
STYLE_RIDGE = 1e-3  # added to a style covariance before its logarithm, times its mean variance
STYLE_FLOOR = 1e-6  # the smallest eigenvalue the logarithm sees (a flat map has none above it)
STYLE_SHRINK = 10.0  # the style rows' whitening: each eigenvalue plus this × the mean spanned eigenvalue
WHITEN_UP_TO = 8192  # the widest rows whitened (a [D, D] float64 covariance: 512 MiB at this width); wider: none
LOG_COVARIANCE, COVARIANCE = "log-covariance", "covariance"  # SimilaritySpec.statistic
LEGACY_STYLE = {"statistic": COVARIANCE, "keep": 32}  # what an index made before the logarithm used
GRID = 4  # the composition grid's side
DUPLICATE_COSINE = 0.65  # composition rows at least this close: the same painting (see docs/explain.md)


@dataclass(frozen=True)
class SimilaritySpec:
    """Which layers each mode reads, and how: stored in the index manifest so a query is computed the same way."""

    content: str
    style: tuple[str, ...]
    composition: str
    style_channels: tuple[int, ...]  # channels of each style layer (before projection)
    content_channels: int
    composition_channels: int
    grid: int = GRID
    keep: int = STYLE_CHANNELS
    statistic: str = LOG_COVARIANCE  # of each style layer: LOG_COVARIANCE, or COVARIANCE (older indexes)

    def as_dict(self) -> dict:
        return asdict(self) | {"style": list(self.style), "style_channels": list(self.style_channels)}

    @classmethod
    def from_dict(cls, d: dict) -> SimilaritySpec:
        """From a manifest; one written before the style logarithm reads as the plain covariances it used."""
        statistic = d.get("statistic", LEGACY_STYLE["statistic"])
        if statistic not in (LOG_COVARIANCE, COVARIANCE):
            raise UserError(f"This index's style statistic {statistic!r} is unknown to this version of "
                            "imagemachines: update imagemachines, or index again with --rebuild.")
        return cls(d["content"], tuple(d["style"]), d["composition"], tuple(int(c) for c in d["style_channels"]),
                   int(d["content_channels"]), int(d["composition_channels"]), int(d.get("grid", GRID)),
                   int(d.get("keep", LEGACY_STYLE["keep"])), statistic)

    @property
    def layers(self) -> list[str]:
        """Every layer the modes read (the index pass taps them), without repeats."""
        return list(dict.fromkeys([self.content, *self.style, self.composition]))

    def style_sizes(self) -> list[int]:
        """The number of raw style values of each style layer."""
        return [triangle(min(c, self.keep)) for c in self.style_channels]

    def width(self, raw: str) -> int:
        """The length of a raw vector: ``content``, ``style`` or ``grid``."""
        return {"content": self.content_channels, "style": sum(self.style_sizes()),
                "grid": self.composition_channels * self.grid * self.grid}[raw]


def triangle(k: int) -> int:
    """Values in the upper triangle (diagonal included) of a k × k matrix."""
    return k * (k + 1) // 2


def model_spec(model) -> SimilaritySpec:
    """The mode layers of a loaded network (:func:`similarity_spec` of its top-level blocks)."""
    from imagemachines.attribution.inputs import spatial_layer
    from imagemachines.index.build import default_layers

    chosen = set(default_layers(model))
    blocks = [(i.name, i.channels, i.height, i.width) for i in model.layers() if i.name in chosen]
    content = spatial_layer(model)
    return similarity_spec(blocks, (content, model.layer(content).channels))


def similarity_spec(blocks: Sequence[tuple[str, int, int, int]], content: tuple[str, int]) -> SimilaritySpec:
    """The mode layers of a network from its blocks in forward order, as (name, channels, height, width), and
    its *content* layer (name, channels). Blocks without a map (1×1) are left out; a stage is a run of blocks of one
    resolution."""
    spatial = [b for b in blocks if b[2] * b[3] > 1]
    if not spatial:
        raise UserError("This network has no convolutional block with a spatial map: similarity modes need one.")
    stages: list[list[tuple[str, int, int, int]]] = []
    for b in spatial:
        if stages and (stages[-1][-1][2], stages[-1][-1][3]) == (b[2], b[3]):
            stages[-1].append(b)
        else:
            stages.append([b])
    ends = [stage[-1] for stage in stages]
    style = [b for stage in stages[:-1] for b in stage] or stages[-1]
    composition = ends[-2] if len(ends) > 1 else ends[-1]
    return SimilaritySpec(content[0], tuple(b[0] for b in style), composition[0], tuple(int(b[1]) for b in style),
                          int(content[1]), int(composition[1]))


def style_projection(layer: str, channels: int, keep: int = STYLE_CHANNELS) -> torch.Tensor | None:
    """A fixed [channels, keep] Gaussian projection for a layer wider than *keep* (None otherwise), the same on
    every machine and in every process: seeded by the layer's name, drawn on the CPU."""
    if channels <= keep:
        return None
    g = torch.Generator().manual_seed(zlib.crc32(layer.encode()))
    return torch.randn(channels, keep, generator=g) / math.sqrt(keep)


def style_statistics(activation: torch.Tensor, projection: torch.Tensor | None = None,
                     statistic: str = LOG_COVARIANCE) -> torch.Tensor:
    """[B, C, H, W] → [B, k(k+1)/2]: the channels' covariance over positions (means removed, divided by H·W)
    — with :data:`LOG_COVARIANCE` its :func:`log_covariance` —, upper triangle row by row (diagonal
    included); *projection* [C, k] first maps the channels to k."""
    if activation.ndim != 4:
        raise ValueError(f"style statistics need a [B, C, H, W] map, not {tuple(activation.shape)}")
    f = activation.float().flatten(2)
    if projection is not None:
        f = torch.einsum("bcn,ck->bkn", f, projection.to(f.device))
    f = f - f.mean(dim=2, keepdim=True)
    cov = f @ f.transpose(1, 2) / f.shape[2]
    if statistic == LOG_COVARIANCE:
        cov = log_covariance(cov).to(f.device)
    elif statistic != COVARIANCE:
        raise ValueError(f"unknown style statistic {statistic!r}")
    i, j = torch.triu_indices(cov.shape[1], cov.shape[1], device=cov.device)
    return cov[:, i, j]


def log_covariance(cov: torch.Tensor, ridge: float = STYLE_RIDGE) -> torch.Tensor:
    """[B, k, k] covariances → their matrix logarithms (float32), after adding *ridge* × the mean variance
    (trace / k) to the diagonal and raising every eigenvalue to at least :data:`STYLE_FLOOR`: ``V diag(log λ)
    Vᵀ``. Computed in float64 on the CPU, so every device gives the same values (the matrices are small)."""
    c = cov.detach().to("cpu", torch.float64)
    c = (c + c.transpose(1, 2)) / 2
    k = c.shape[1]
    mean_variance = c.diagonal(dim1=1, dim2=2).mean(1).clamp_min(0)
    c = c + (ridge * mean_variance)[:, None, None] * torch.eye(k, dtype=c.dtype)
    values, vectors = torch.linalg.eigh(c)
    logs = values.clamp_min(STYLE_FLOOR).log()
    return ((vectors * logs[:, None, :]) @ vectors.transpose(1, 2)).float()


def composition_grid(activation: torch.Tensor, grid: int = GRID) -> torch.Tensor:
    """[B, C, H, W] → [B, C·grid²]: each unit averaged over the cells of a grid × grid grid (unit-major: unit
    0's cells row by row, then unit 1's …)."""
    if activation.ndim != 4:
        raise ValueError(f"a composition grid needs a [B, C, H, W] map, not {tuple(activation.shape)}")
    return F.adaptive_avg_pool2d(activation.float(), grid).flatten(1)


def arrangement(grids: np.ndarray, grid: int = GRID) -> np.ndarray:
    """[n, C·grid²] raw grids → each unit's cells minus the unit's mean over them: where, not what."""
    g = np.asarray(grids, dtype=np.float32)
    cells = g.reshape(len(g), -1, grid * grid)
    return (cells - cells.mean(axis=2, keepdims=True)).reshape(len(g), -1)


def raw_vectors(outputs: dict[str, torch.Tensor], spec: SimilaritySpec,
                projections: dict[str, torch.Tensor | None]) -> dict[str, torch.Tensor]:
    """A batch's raw per-painting vectors from the tapped *outputs*: ``style`` (the style layers' statistics,
    concatenated) and ``grid`` (the composition layer's grid). Content is the pooled content layer, which the
    index records anyway."""
    style = torch.cat([style_statistics(outputs[name], projections.get(name), spec.statistic) for name in spec.style],
                      dim=1)
    return {"style": style, "grid": composition_grid(outputs[spec.composition], spec.grid)}


# -- finishing over the collection ----------------------------------------------------------------------------
@dataclass
class Finish:
    """How raw rows of one mode become unit search rows: ``(transform(raw) - center) / scale``, then each block
    normalised to length 1/√(blocks), so the whole row has length 1 and a dot product is the mean of the
    blocks' cosines. With *whiten* (style), the rows are then centred on *whiten_center*, multiplied by the
    collection's shrunk whitening (:func:`shrunk_whitening`) and made unit length again."""

    center: np.ndarray  # [D] float32
    scale: np.ndarray  # [D] float32
    blocks: tuple[int, ...]  # sizes, summing to D
    arrange: int = 0  # the grid side when the raw rows are composition grids (arrangement first), else 0
    whiten: np.ndarray | None = None  # [D, D] float32, symmetric
    whiten_center: np.ndarray | None = None  # [D] float32: the mean of the block-normalised rows

    def transform(self, raw: np.ndarray) -> np.ndarray:
        x = np.asarray(raw, dtype=np.float32)
        return arrangement(x, self.arrange) if self.arrange else x

    def blocked(self, raw: np.ndarray) -> np.ndarray:
        """[n, D] raw rows → standardised, each block normalised (a zero block stays zero); before whitening."""
        x = (self.transform(np.atleast_2d(raw)) - self.center) / self.scale
        out = np.empty_like(x)
        weight = 1.0 / math.sqrt(len(self.blocks))
        start = 0
        for size in self.blocks:
            part = x[:, start:start + size]
            norm = np.linalg.norm(part, axis=1, keepdims=True)
            out[:, start:start + size] = np.where(norm > 0, part / np.maximum(norm, 1e-30), 0.0) * weight
            start += size
        return out

    def apply(self, raw: np.ndarray) -> np.ndarray:
        """[n, D] raw rows → [n, D] float32 finished rows, unit length (or 0)."""
        x = self.blocked(raw)
        if self.whiten is None:
            return x
        x = (x - self.whiten_center) @ self.whiten
        norm = np.linalg.norm(x, axis=1, keepdims=True)
        return np.where(norm > 0, x / np.maximum(norm, 1e-30), 0.0).astype(np.float32)

    def tensors(self, prefix: str = "") -> dict[str, np.ndarray]:
        extra = {} if self.whiten is None else {f"{prefix}whiten": self.whiten,
                                                f"{prefix}whiten_center": self.whiten_center}
        return {f"{prefix}center": self.center, f"{prefix}scale": self.scale,
                f"{prefix}blocks": np.asarray(self.blocks, dtype=np.int64),
                f"{prefix}arrange": np.asarray([self.arrange], dtype=np.int64), **extra}

    @classmethod
    def from_tensors(cls, t: dict[str, np.ndarray], prefix: str = "") -> Finish:
        whiten = t.get(f"{prefix}whiten")
        return cls(np.asarray(t[f"{prefix}center"], np.float32), np.asarray(t[f"{prefix}scale"], np.float32),
                   tuple(int(b) for b in t[f"{prefix}blocks"]), int(t[f"{prefix}arrange"][0]),
                   None if whiten is None else np.asarray(whiten, np.float32),
                   None if whiten is None else np.asarray(t[f"{prefix}whiten_center"], np.float32))


def shrunk_whitening(covariance: np.ndarray, shrink: float = STYLE_SHRINK,
                     rank: int | None = None) -> np.ndarray | None:
    """[D, D] covariance → the symmetric whitening ``V diag(1 / √(λ + shrink · λ̄)) Vᵀ`` (float32), or None
    when nothing varies; λ̄ is the mean of the *rank* largest eigenvalues (the directions the collection spans:
    n − 1 for n rows, when fewer than D), so the shrinkage means the same for a small collection as for a large
    one. The few directions that carry far more than λ̄ are damped, the rest scaled alike: the whitening that
    helps retrieval (Jégou & Chum, ECCV 2012), shrunk so that directions of almost no variance are not blown up."""
    c = np.asarray(covariance, np.float64)
    c = (c + c.T) / 2
    values, vectors = np.linalg.eigh(c)
    values = values.clip(0)
    spanned = np.sort(values)[::-1][:max(1, min(rank or len(values), len(values)))]
    mean = float(spanned.mean())
    if not mean > 0:
        return None
    return ((vectors / np.sqrt(values + shrink * mean)) @ vectors.T).astype(np.float32)


def fit_finish(raw: np.ndarray, blocks: Sequence[int], *, standardise: bool, arrange: int = 0, centre: bool = True,
               whiten: float | None = None, step: int = 4096) -> Finish:
    """The collection's :class:`Finish` for [n, D] *raw* rows (a memory map is read *step* rows at a time, in
    order, so the sums do not depend on anything but the rows): with *centre* the mean of every value, with
    *standardise* also its standard deviation (values that never vary get scale 1, so they become 0); with
    *whiten* (a shrinkage) a second pass for the covariance of the block-normalised rows and its
    :func:`shrunk_whitening` (rows wider than :data:`WHITEN_UP_TO`, from a network with very many style blocks,
    are not whitened: memory stays bounded)."""
    n, width = raw.shape
    if sum(blocks) != width:
        raise ValueError(f"blocks {list(blocks)} do not add up to {width} values")
    plain = Finish(np.zeros(width, np.float32), np.ones(width, np.float32), tuple(blocks), arrange)
    if not centre and not standardise:
        return plain
    total, total_sq = np.zeros(width), np.zeros(width)
    for s in range(0, n, step):
        x = plain.transform(raw[s:s + step]).astype(np.float64)
        total += x.sum(0)
        total_sq += (x * x).sum(0)
    mean = total / max(n, 1)
    scale = np.ones(width)
    if standardise:
        std = np.sqrt(np.clip(total_sq / max(n, 1) - mean * mean, 0, None))
        scale = np.where(std > 1e-6 * max(float(std.max(initial=0.0)), 1e-30), std, 1.0)
    finish = Finish(mean.astype(np.float32), scale.astype(np.float32), tuple(blocks), arrange)
    if whiten is None or n < 2 or width > WHITEN_UP_TO:
        return finish
    total, outer = np.zeros(width), np.zeros((width, width))
    for s in range(0, n, step):
        x = finish.blocked(raw[s:s + step]).astype(np.float64)
        total += x.sum(0)
        outer += x.T @ x
    centre_of_rows = total / n
    matrix = shrunk_whitening(outer / n - np.outer(centre_of_rows, centre_of_rows), whiten, n - 1)
    if matrix is not None:
        finish.whiten, finish.whiten_center = matrix, centre_of_rows.astype(np.float32)
    return finish


def finish_options(mode: str, width: int, spec: SimilaritySpec) -> dict:
    """How *mode* is finished: its blocks, whether it is standardised, and the arrangement grid (0: none)."""
    if mode == "content":  # as the network gives them (centring measured no better, see docs/explain.md)
        return {"blocks": [width], "standardise": False, "arrange": 0, "centre": False}
    if mode == "style":  # whitened since the logarithm (measured together, see docs/explain.md)
        return {"blocks": spec.style_sizes(), "standardise": True, "arrange": 0,
                "whiten": STYLE_SHRINK if spec.statistic == LOG_COVARIANCE else None}
    if mode == "composition":
        return {"blocks": [width], "standardise": True, "arrange": spec.grid}
    raise UserError(f"Unknown similarity mode {mode!r}: use one of {', '.join(MODES)}.")


def mode_finish(mode: str, raw: np.ndarray, spec: SimilaritySpec) -> Finish:
    """The finish of *mode* for the collection's raw rows (content: pooled rows; style; composition: grids)."""
    return fit_finish(raw, **finish_options(mode, raw.shape[1], spec))


def parse_mode(text: str) -> dict[str, float]:
    """``"style"`` or a weighted mix ``"content:0.5,style:0.5"`` (or ``"content+style"``, equal weights) →
    {mode: weight}, weights summing to 1. A clear UserError for anything else."""
    if not isinstance(text, str) or not text.strip():
        raise UserError(f"Give a similarity mode: one of {', '.join(MODES)}, or a mix like content:0.5,style:0.5.")
    parts = [p.strip() for p in text.replace("+", ",").split(",") if p.strip()]
    weights: dict[str, float] = {}
    for part in parts:
        name, _, w = part.partition(":")
        name = name.strip().lower()
        if name not in MODES:
            raise UserError(f"Unknown similarity mode {name!r}: use one of {', '.join(MODES)} "
                            "(or a mix like content:0.5,style:0.5).")
        try:
            value = float(w) if w.strip() else 1.0
        except ValueError:
            raise UserError(f"The weight of {name!r} must be a number, not {w.strip()!r}.") from None
        if not math.isfinite(value) or value < 0:
            raise UserError(f"The weight of {name!r} must be a number ≥ 0, not {w.strip()}.")
        if name in weights:
            raise UserError(f"Similarity mode {name!r} is named twice in {text!r}.")
        weights[name] = value
    total = sum(weights.values())
    if total <= 0:
        raise UserError(f"The weights in {text!r} add up to 0: give at least one a positive weight.")
    return {name: w / total for name, w in weights.items() if w > 0}
