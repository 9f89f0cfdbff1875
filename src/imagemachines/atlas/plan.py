"""Which images an atlas holds and how they are cut into batches: whole batches of one layer, one method, one
seed, dealt out to the ranks of a torchrun job so that every rank renders exactly the batches a single
process would (image *i* of a batch does not depend on the others, so the result is the same)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from imagemachines.errors import UserError


@dataclass(frozen=True)
class Job:
    """One render call: *channels* of *layer* with *method* and *seed*."""

    layer: str
    channels: tuple[int, ...]
    method: str
    seed: int


def plan_jobs(layers: dict[str, Sequence[int]], methods: Sequence[str], seeds: Sequence[int],
              batch: int) -> list[Job]:
    """Every (layer, method, seed) cut into batches of at most *batch* channels, in a fixed order."""
    if batch < 1:
        raise UserError("--batch must be at least 1.")
    if not methods or not seeds:
        raise UserError("Give at least one method and one seed.")
    jobs = []
    for layer, channels in layers.items():
        channels = list(channels)
        for method in methods:
            for seed in seeds:
                for start in range(0, len(channels), batch):
                    jobs.append(Job(layer, tuple(channels[start:start + batch]), method, int(seed)))
    return jobs


def shard(jobs: Sequence[Job], rank: int, world: int) -> list[Job]:
    """The jobs of *rank* among *world* ranks: round robin, so every rank gets a share of every layer."""
    if not 0 <= rank < world:
        raise ValueError(f"rank {rank} outside a world of {world}")
    return list(jobs[rank::world])
