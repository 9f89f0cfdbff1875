"""Streaming per-unit accumulators: top-k and bottom-k images by spatial maximum, running statistics, and how many
images peak on the border of the unit's map.

Memory is units × k: each update keeps only the best k of (kept ∪ batch). Ties are broken by the image key,
so the result does not depend on the order in which images or shards arrive: merging the states of any
partition of the collection gives exactly the state of one pass over all of it.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


def _best(values: torch.Tensor, keys: torch.Tensor, cells: torch.Tensor, k: int, largest: bool):
    """Per row, the *k* best (value, key, cell) columns: by value, then by smaller key (a total order)."""
    order = keys.argsort(dim=1, stable=True)
    values, keys, cells = values.gather(1, order), keys.gather(1, order), cells.gather(1, order)
    order = values.argsort(dim=1, descending=largest, stable=True)[:, :k]
    return values.gather(1, order), keys.gather(1, order), cells.gather(1, order)


@dataclass
class UnitAccumulator:
    """Top/bottom k and sums for every channel of one layer. Values float32, statistics float64."""

    k: int
    top_v: torch.Tensor  # [C, m] m <= k
    top_key: torch.Tensor
    top_cell: torch.Tensor
    bot_v: torch.Tensor
    bot_key: torch.Tensor
    bot_cell: torch.Tensor
    count: torch.Tensor  # [1] int64
    total: torch.Tensor  # [C] float64 sums of maxima
    total_sq: torch.Tensor
    low: torch.Tensor
    high: torch.Tensor
    border: torch.Tensor  # [C] int64 images whose maximum over all cells lies on the map's border
    edge_high: torch.Tensor  # [C] float64 the highest of those border maxima (-inf: none)
    inner_high: torch.Tensor  # [C] float64 the highest maximum over the interior of the maps

    @classmethod
    def empty(cls, channels: int, k: int, device: torch.device | str = "cpu") -> UnitAccumulator:
        f = dict(device=device)
        e = lambda dt: torch.zeros(channels, 0, dtype=dt, **f)  # noqa: E731
        return cls(k, e(torch.float32), e(torch.int64), e(torch.int64), e(torch.float32), e(torch.int64),
                   e(torch.int64), torch.zeros(1, dtype=torch.int64, **f),
                   torch.zeros(channels, dtype=torch.float64, **f), torch.zeros(channels, dtype=torch.float64, **f),
                   torch.full((channels,), float("inf"), dtype=torch.float64, **f),
                   torch.full((channels,), float("-inf"), dtype=torch.float64, **f),
                   torch.zeros(channels, dtype=torch.int64, **f),
                   torch.full((channels,), float("-inf"), dtype=torch.float64, **f),
                   torch.full((channels,), float("-inf"), dtype=torch.float64, **f))

    @property
    def channels(self) -> int:
        return self.total.shape[0]

    def update(self, maxima: torch.Tensor, cells: torch.Tensor, keys: torch.Tensor, found=None) -> None:
        """Add a batch: *maxima* and *cells* are [B, C] (the ranked value and its flat cell), *keys* [B]; *found*
        (:class:`~imagemachines.index.peaks.Peaks`, optional) says where each maximum lies."""
        v = maxima.float().T
        kk = keys.to(v.device).view(1, -1).expand_as(v)
        c = cells.T.to(torch.int64)
        self._take(v, kk, c)
        d = maxima.double()
        self.count += maxima.shape[0]
        self.total += d.sum(0)
        self.total_sq += (d * d).sum(0)
        self.low = torch.minimum(self.low, d.min(0).values)
        self.high = torch.maximum(self.high, d.max(0).values)
        if found is not None:
            edge = found.border.to(self.border.device)
            self.border += edge.sum(0, dtype=torch.int64)
            on_edge = torch.where(edge, found.peak.to(self.border.device).double(), float("-inf"))
            self.edge_high = torch.maximum(self.edge_high, on_edge.max(0).values)
            self.inner_high = torch.maximum(self.inner_high, found.inner.to(self.border.device).double().max(0).values)

    def _take(self, v, kk, c, bv=None, bk=None, bc=None) -> None:
        """Keep the best k of (kept top ∪ v) and the lowest k of (kept bottom ∪ bv, default v)."""
        if bv is None:
            bv, bk, bc = v, kk, c
        self.top_v, self.top_key, self.top_cell = _best(
            torch.cat([self.top_v, v], 1), torch.cat([self.top_key, kk], 1), torch.cat([self.top_cell, c], 1),
            self.k, largest=True)
        self.bot_v, self.bot_key, self.bot_cell = _best(
            torch.cat([self.bot_v, bv], 1), torch.cat([self.bot_key, bk], 1), torch.cat([self.bot_cell, bc], 1),
            self.k, largest=False)

    def merge(self, other: UnitAccumulator) -> None:
        """Fold *other* (another part of the collection) into this one."""
        if other.channels != self.channels:
            raise ValueError("cannot merge accumulators of layers with different channel counts")
        self._take(other.top_v, other.top_key, other.top_cell, other.bot_v, other.bot_key, other.bot_cell)
        self.count += other.count
        self.total += other.total
        self.total_sq += other.total_sq
        self.low = torch.minimum(self.low, other.low)
        self.high = torch.maximum(self.high, other.high)
        self.border += other.border
        self.edge_high = torch.maximum(self.edge_high, other.edge_high)
        self.inner_high = torch.maximum(self.inner_high, other.inner_high)

    FIELDS = ("top_v", "top_key", "top_cell", "bot_v", "bot_key", "bot_cell", "count", "total", "total_sq",
              "low", "high", "border", "edge_high", "inner_high")

    def tensors(self, prefix: str) -> dict[str, torch.Tensor]:
        """The state as named CPU tensors (for safetensors)."""
        return {f"{prefix}{name}": getattr(self, name).detach().cpu().contiguous() for name in self.FIELDS}

    @classmethod
    def from_tensors(cls, tensors: dict[str, torch.Tensor], prefix: str, k: int) -> UnitAccumulator:
        return cls(k, *(tensors[f"{prefix}{name}"] for name in cls.FIELDS))

    def mean_std(self) -> tuple[torch.Tensor, torch.Tensor]:
        n = max(int(self.count.item()), 1)
        mean = self.total / n
        var = (self.total_sq / n - mean * mean).clamp_min(0)
        return mean, var.sqrt()
