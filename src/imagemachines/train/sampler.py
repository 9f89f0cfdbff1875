"""One sampler for one process or many: a per-epoch order from (seed, epoch), sharded by rank.

The order depends only on the seed and the epoch, so a resumed run sees exactly the batches an uninterrupted
one would. With *weights* it draws with replacement (balanced sampling for unequal classes).
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence

import torch


class EpochSampler(torch.utils.data.Sampler[int]):
    """Indices of this rank's share of the epoch; call :meth:`set_epoch` before each epoch."""

    def __init__(self, n: int, *, seed: int = 0, rank: int = 0, world: int = 1, shuffle: bool = True,
                 weights: Sequence[float] | None = None):
        self.n, self.seed, self.rank, self.world, self.shuffle = n, seed, rank, world, shuffle
        self.weights = None if weights is None else torch.as_tensor(weights, dtype=torch.double)
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def order(self) -> list[int]:
        """The whole epoch's order (all ranks), padded to a multiple of the world size."""
        g = torch.Generator().manual_seed(self.seed * 7919 + self.epoch)
        if self.weights is not None:
            idx = torch.multinomial(self.weights, self.n, replacement=True, generator=g).tolist()
        elif self.shuffle:
            idx = torch.randperm(self.n, generator=g).tolist()
        else:
            idx = list(range(self.n))
        total = len(self) * self.world
        return (idx * math.ceil(total / max(len(idx), 1)))[:total] if idx else idx

    def __iter__(self) -> Iterator[int]:
        return iter(self.order()[self.rank::self.world])

    def __len__(self) -> int:
        return math.ceil(self.n / self.world)


def balanced_weights(labels: Sequence[int], n_classes: int) -> list[float]:
    """Per-sample weights that make every class equally likely."""
    counts = [0] * n_classes
    for y in labels:
        counts[y] += 1
    return [1.0 / counts[y] for y in labels]


def class_weights(counts: Sequence[int]) -> torch.Tensor:
    """Loss weights n / (k · count): 1 for every class when classes are equal in size."""
    total, k = sum(counts), len(counts)
    return torch.tensor([total / (k * c) if c else 0.0 for c in counts], dtype=torch.float32)
