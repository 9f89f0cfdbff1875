"""The gradient-ascent loop of the ``lucid`` and ``maco`` methods.

One loop for both: a parameterization makes a batch of images, an augmentation turns it into network input,
the tap runs the network only up to the needed layers, the objective gives one value per image, Adam climbs.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from imagemachines.vis.objectives import Objective
from imagemachines.vis.progress import Monitor


def autocast(device: torch.device):
    """bf16 autocast on CUDA (the engine's GPU speed path); a no-op elsewhere."""
    return torch.autocast("cuda", dtype=torch.bfloat16, enabled=device.type == "cuda")


def ascend(
    forward: Callable[[torch.Tensor], dict[str, torch.Tensor]],
    objective: Objective,
    image: nn.Module,
    augment: Callable[[torch.Tensor, int], torch.Tensor],
    *,
    steps: int,
    lr: float,
    monitor: Monitor,
    group: int = 1,
    schedule: Callable[[int], float] | None = None,
) -> None:
    """Maximise *objective* over *image*'s parameters for *steps* Adam steps.

    *forward* maps network input to tapped activations; *augment(images, step)* returns that input, with
    *group* augmented views per image (image-major); values of the views are averaged per image. *schedule(step)*
    scales the learning rate of each step (default: constant).
    """
    params = [p for p in image.parameters() if p.requires_grad]
    opt = torch.optim.Adam(params, lr=lr)
    device = params[0].device
    for step in range(steps):
        if schedule is not None:
            for g in opt.param_groups:
                g["lr"] = lr * schedule(step)
        opt.zero_grad(set_to_none=True)
        x = augment(image(), step)
        x = x.contiguous(memory_format=torch.channels_last)
        with autocast(device):
            values = objective(forward(x))
        values = values.view(-1, group).mean(dim=1) if group > 1 else values
        (-values.sum()).backward()
        opt.step()
        monitor(step + 1, values, image)
