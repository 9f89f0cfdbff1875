"""Objectives: what a render maximises, computed from tapped layer outputs, one value per image.

An objective maps ``{layer: activations}`` (a batch) to a tensor of shape (B,). Objectives combine with ``+``,
``-``, scalar ``*`` and unary ``-``, like Lucid's. ``Channel`` and ``Neuron`` accept one index per image, so a
whole batch of different units of one layer is a single vectorised objective.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F

from imagemachines.models.taps import LOGITS


def _as_index(values: int | Sequence[int], batch: int, device: torch.device) -> torch.Tensor:
    t = torch.as_tensor(values, device=device).long()
    return t.expand(batch) if t.ndim == 0 else t


def _spatial(acts: torch.Tensor) -> torch.Tensor:
    """View (B, C) outputs as (B, C, 1, 1) so every objective can treat layers alike."""
    return acts[:, :, None, None] if acts.ndim == 2 else acts


class Objective:
    """Base class: ``layers`` to tap and ``__call__(acts) -> (B,)`` values to maximise."""

    layers: tuple[str, ...] = ()

    def __call__(self, acts: dict[str, torch.Tensor]) -> torch.Tensor:
        raise NotImplementedError

    def __add__(self, other: Objective | float) -> Objective:
        return Sum([self, other if isinstance(other, Objective) else Constant(other)])

    __radd__ = __add__

    def __mul__(self, weight: float) -> Objective:
        return Scaled(self, float(weight))

    __rmul__ = __mul__

    def __neg__(self) -> Objective:
        return Scaled(self, -1.0)

    def __sub__(self, other: Objective) -> Objective:
        return self + (-other)


class Constant(Objective):
    def __init__(self, value: float):
        self.value = float(value)

    def __call__(self, acts):
        any_act = next(iter(acts.values()))
        return torch.full((any_act.shape[0],), self.value, device=any_act.device)


class Sum(Objective):
    def __init__(self, parts: Sequence[Objective]):
        self.parts = list(parts)
        self.layers = tuple(dict.fromkeys(layer for p in self.parts for layer in p.layers))

    def __call__(self, acts):
        return sum(p(acts) for p in self.parts)


class Scaled(Objective):
    def __init__(self, inner: Objective, weight: float):
        self.inner, self.weight, self.layers = inner, weight, inner.layers

    def __call__(self, acts):
        return self.weight * self.inner(acts)


class Channel(Objective):
    """Mean activation of a channel (one channel per image when *channel* is a sequence).

    *border* ignores that many pixels at each edge (the seed's recipe ignores 2).
    """

    def __init__(self, layer: str, channel: int | Sequence[int], border: int = 0):
        self.layer, self.channel, self.border = layer, channel, border
        self.layers = (layer,)

    def __call__(self, acts):
        a = _spatial(acts[self.layer])
        b = self.border
        if b and a.shape[-1] > 2 * b and a.shape[-2] > 2 * b:
            a = a[..., b:-b, b:-b]
        idx = _as_index(self.channel, a.shape[0], a.device)
        picked = a[torch.arange(a.shape[0], device=a.device), idx]
        return picked.float().mean(dim=(-2, -1))


def ClassLogit(label: int | Sequence[int]) -> Channel:  # noqa: N802 - reads like the other objectives
    """The network's output for class *label* (a channel of the ``logits`` pseudo-layer)."""
    return Channel(LOGITS, label)


class Neuron(Objective):
    """One spatial position of a channel; ``x``/``y`` None means the centre."""

    def __init__(self, layer: str, channel: int | Sequence[int], x: int | Sequence[int] | None = None,
                 y: int | Sequence[int] | None = None):
        self.layer, self.channel, self.x, self.y = layer, channel, x, y
        self.layers = (layer,)

    def __call__(self, acts):
        a = _spatial(acts[self.layer])
        n, _, h, w = a.shape
        x = _as_index(w // 2 if self.x is None else self.x, n, a.device)
        y = _as_index(h // 2 if self.y is None else self.y, n, a.device)
        c = _as_index(self.channel, n, a.device)
        return a[torch.arange(n, device=a.device), c, y, x].float()


class Direction(Objective):
    """Mean over positions of the dot product between activations and a direction in channel space.

    *vector* is (C,) for all images or (B, C), one direction per image.
    """

    def __init__(self, layer: str, vector: torch.Tensor):
        self.layer, self.vector = layer, torch.as_tensor(vector, dtype=torch.float32)
        self.layers = (layer,)

    def __call__(self, acts):
        a = _spatial(acts[self.layer]).float()
        v = self.vector.to(a.device)
        v = v.expand(a.shape[0], -1) if v.ndim == 1 else v
        return torch.einsum("bchw,bc->bhw", a, v).mean(dim=(-2, -1))


class Diversity(Objective):
    """Lucid's diversity term: minus the mean cosine similarity of each image's Gram matrix to the others'.

    Meaningful for batches of several images of the same unit; use with a weight, e.g.
    ``Channel(l, c) + 10 * Diversity(l)`` … with a larger weight for stronger diversity.
    """

    def __init__(self, layer: str):
        self.layer = layer
        self.layers = (layer,)

    def __call__(self, acts):
        a = _spatial(acts[self.layer]).float()
        b, c = a.shape[:2]
        flat = a.reshape(b, c, -1)
        gram = F.normalize(torch.bmm(flat, flat.transpose(1, 2)).reshape(b, -1), dim=1)
        sim = gram @ gram.T
        if b < 2:
            return torch.zeros(b, device=a.device)
        off_diag = sim.sum(dim=1) - sim.diagonal()
        return -off_diag / (b - 1)


class PerImage(Objective):
    """Image *i* maximises ``objectives[i]`` (for batches mixing layers or kinds of unit)."""

    def __init__(self, objectives: Sequence[Objective]):
        self.objectives = list(objectives)
        self.layers = tuple(dict.fromkeys(layer for o in self.objectives for layer in o.layers))

    def __call__(self, acts):
        values = [o({k: v[i : i + 1] for k, v in acts.items()}) for i, o in enumerate(self.objectives)]
        return torch.cat(values)
