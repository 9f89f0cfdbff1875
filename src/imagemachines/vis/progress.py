"""Progress reports and cancellation shared by every method's loop."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch


class RenderCancelled(Exception):
    """Raised inside a render when its ``stop()`` callback returns True."""


@dataclass
class Progress:
    """Handed to ``on_progress`` after each step; ``images`` only every ``preview_every`` steps and at the end."""

    step: int
    total: int
    activations: list[float]
    images: torch.Tensor | None = None


class Monitor:
    """Calls the user's callbacks; costs nothing (no device sync) when there are none."""

    def __init__(self, total: int, preview_every: int = 0, on_progress: Callable[[Progress], None] | None = None,
                 stop: Callable[[], bool] | None = None):
        self.total, self.preview_every, self.on_progress, self.stop = total, preview_every, on_progress, stop

    def __call__(self, step: int, values: torch.Tensor, images: Callable[[], torch.Tensor]) -> None:
        if self.stop is not None and self.stop():
            raise RenderCancelled
        if self.on_progress is None:
            return
        preview = None
        if step == self.total or (self.preview_every and step % self.preview_every == 0):
            with torch.no_grad():
                preview = images().detach().float().clamp(0, 1).cpu()
        self.on_progress(Progress(step, self.total, values.detach().float().cpu().tolist(), preview))
