"""One training epoch and one validation pass, on one process or many (sums are all-reduced)."""

from __future__ import annotations

import time
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from imagemachines.train import distributed as D
from imagemachines.train.data import Batch


@dataclass
class Amp:
    """Mixed precision on CUDA: bfloat16 where supported, else float16 with a gradient scaler."""

    device: torch.device
    enabled: bool

    def __post_init__(self) -> None:
        self.enabled = self.enabled and self.device.type == "cuda"
        self.dtype = torch.bfloat16 if self.enabled and torch.cuda.is_bf16_supported() else torch.float16
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.enabled and self.dtype == torch.float16)

    def autocast(self):
        return torch.autocast("cuda", dtype=self.dtype) if self.enabled else nullcontext()


@dataclass
class EpochResult:
    loss: float
    accuracy: float
    images: int
    seconds: float
    bad: list[tuple[int, str]] = field(default_factory=list)

    @property
    def rate(self) -> float:
        return self.images / self.seconds if self.seconds else 0.0


def split_outputs(out) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """Main logits and auxiliary logits (InceptionOutputs / GoogLeNetOutputs in training mode)."""
    if isinstance(out, torch.Tensor):
        return out, []
    main = out.logits
    aux = [v for k, v in out._asdict().items() if k != "logits" and v is not None]
    return main, aux


def to_device(batch: Batch, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    x = batch.images.to(device, non_blocking=True)
    if device.type == "cuda":
        x = x.contiguous(memory_format=torch.channels_last)
    return x, batch.labels.to(device, non_blocking=True)


def train_epoch(model: nn.Module, loader, optimizer: torch.optim.Optimizer, loss_fn: nn.Module, *,
                amp: Amp, aux_weight: float, set_mode: Callable[[], None], dist: D.Dist, device: torch.device,
                desc: str) -> EpochResult:
    """One pass over this process's shard; batches whose images all failed to load are skipped everywhere."""
    set_mode()
    sums = torch.zeros(3, dtype=torch.float64)  # loss sum, correct, images
    bad: list[tuple[int, str]] = []
    start = time.perf_counter()
    bar = tqdm(total=len(loader.sampler), desc=desc, unit="img", disable=not dist.main, dynamic_ncols=True)
    for batch in loader:
        bad.extend(batch.bad)
        bar.update(len(batch) + len(batch.bad))
        if D.min_(len(batch), dist, device) == 0:
            continue
        x, y = to_device(batch, device)
        with amp.autocast():
            logits, aux = split_outputs(model(x))
            loss = loss_fn(logits, y) + sum(aux_weight * loss_fn(a, y) for a in aux)
        optimizer.zero_grad(set_to_none=True)
        amp.scaler.scale(loss).backward()
        amp.scaler.step(optimizer)
        amp.scaler.update()
        with torch.no_grad():
            plain = F.cross_entropy(logits.float(), y, reduction="sum")
            sums += torch.tensor([plain.item(), (logits.argmax(1) == y).sum().item(), len(y)], dtype=torch.float64)
        bar.set_postfix(loss=f"{sums[0] / sums[2]:.3f}", acc=f"{sums[1] / sums[2]:.3f}", refresh=False)
    bar.close()
    D.sum_(sums, dist)
    n = int(sums[2])
    return EpochResult(float(sums[0] / max(n, 1)), float(sums[1] / max(n, 1)), n,
                       time.perf_counter() - start, bad)


@torch.no_grad()
def validate(model: nn.Module, loader, n_classes: int, *, amp: Amp, dist: D.Dist, device: torch.device,
             desc: str) -> tuple[float, torch.Tensor, list[tuple[int, str]]]:
    """Mean cross-entropy and confusion matrix (rows: true class, columns: predicted) over all processes."""
    model.eval()
    confusion = torch.zeros(n_classes, n_classes, dtype=torch.float64)
    loss_sum = torch.zeros(1, dtype=torch.float64)
    bad: list[tuple[int, str]] = []
    bar = tqdm(total=len(loader.dataset), desc=desc, unit="img", disable=not dist.main, leave=False,
               dynamic_ncols=True)
    for batch in loader:
        bad.extend(batch.bad)
        bar.update(len(batch) + len(batch.bad))
        if not len(batch):
            continue
        x, y = to_device(batch, device)
        with amp.autocast():
            logits = model(x).float()
        loss_sum += F.cross_entropy(logits, y, reduction="sum").item()
        pred = logits.argmax(1).cpu()
        confusion.index_put_((y.cpu(), pred), torch.ones(len(y), dtype=torch.float64), accumulate=True)
    bar.close()
    D.sum_(confusion, dist)
    D.sum_(loss_sum, dist)
    n = float(confusion.sum())
    return float(loss_sum.item() / max(n, 1.0)), confusion.long(), bad
