"""Scale-out with PyTorch's own engine: ``torchrun --nproc_per_node=N -m imagemachines train …``.

torchrun sets RANK, WORLD_SIZE and LOCAL_RANK; then each process trains its shard of every batch
(DistributedDataParallel: gradients averaged across processes), NCCL on GPUs, gloo on CPUs. Rank 0 alone
writes files and draws progress bars.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as td


@dataclass(frozen=True)
class Dist:
    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def main(self) -> bool:
        return self.rank == 0

    @property
    def active(self) -> bool:
        return self.world > 1


def from_env() -> Dist:
    """The process's place in a torchrun job (a single process when not launched by torchrun)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    return Dist(int(os.environ.get("RANK", "0")), world, int(os.environ.get("LOCAL_RANK", "0")))


def setup(dist: Dist, device: torch.device) -> torch.device:
    """Join the process group; on CUDA each process takes the GPU numbered by its local rank."""
    if not dist.active:
        return device
    if device.type == "cuda":
        device = torch.device("cuda", dist.local_rank % torch.cuda.device_count())
        torch.cuda.set_device(device)
    if not td.is_initialized():
        td.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return device


def teardown(dist: Dist) -> None:
    if dist.active and td.is_initialized():
        td.destroy_process_group()


def sum_(t: torch.Tensor, dist: Dist) -> torch.Tensor:
    """Sum *t* over all processes (in place; returned for convenience)."""
    if dist.active:
        td.all_reduce(t, op=td.ReduceOp.SUM)
    return t


def min_(value: int, dist: Dist, device: torch.device) -> int:
    """The smallest *value* over all processes."""
    if not dist.active:
        return value
    t = torch.tensor([value], device=device)
    td.all_reduce(t, op=td.ReduceOp.MIN)
    return int(t.item())


def gather(obj, dist: Dist) -> list:
    """Every process's *obj*, in rank order (a one-element list without torchrun)."""
    if not dist.active:
        return [obj]
    out = [None] * dist.world
    td.all_gather_object(out, obj)
    return out


def sync_buffers(module: torch.nn.Module, dist: Dist) -> None:
    """Give every process rank 0's buffers (BatchNorm statistics drift apart in the last training step)."""
    if dist.active:
        for buf in module.buffers():
            td.broadcast(buf, 0)


def barrier(dist: Dist) -> None:
    if dist.active:
        td.barrier()
