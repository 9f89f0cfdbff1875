"""Integrated gradients (Sundararajan et al., ICML 2017), taken from Captum's ``IntegratedGradients``.

The gradient of the class score is integrated along the straight path from a baseline image to the painting;
the attributions add up to the score's difference between the two (completeness). Baselines: ``black`` (the
paper's choice: an image with no signal) or ``blur`` (the painting blurred away, Sturmfels et al., Distill
2020: no colour is taken for "missing"). The pixel map is the channel sum, positive part, lightly smoothed.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from imagemachines.errors import UserError
from imagemachines.models.loaded import LoadedModel

BASELINES = ("black", "blur")
DEFAULT_STEPS = 32


@dataclass
class IGResult:
    heat: np.ndarray   # (S, S) ≥ 0: positive evidence per input pixel, smoothed
    attributions: torch.Tensor  # [3, S, S] raw signed attributions
    delta: float       # completeness gap: sum(attributions) - (score(x) - score(baseline))


def baseline_image(x: torch.Tensor, baseline: str) -> torch.Tensor:
    """The baseline for *x* ([N, 3, S, S] in [0, 1])."""
    from torchvision.transforms.functional import gaussian_blur

    if baseline == "black":
        return torch.zeros_like(x)
    if baseline == "blur":
        side = x.shape[-1]
        sigma = side / 8
        kernel = int(2 * round(3 * sigma) + 1)
        return gaussian_blur(x, [kernel, kernel], [sigma, sigma])
    raise UserError(f"Unknown integrated-gradients baseline {baseline!r}: use {' or '.join(BASELINES)}.")


def integrated_gradients(model: LoadedModel, x: torch.Tensor, target: int, *, steps: int = DEFAULT_STEPS,
                         baseline: str = "black", batch: int = 16) -> IGResult:
    """Integrated gradients of class *target* for *x* ([1, 3, S, S] in [0, 1]) with *steps* path points."""
    from captum.attr import IntegratedGradients
    from torchvision.transforms.functional import gaussian_blur

    if steps < 2:
        raise UserError("Integrated gradients needs at least 2 steps.")
    ig = IntegratedGradients(lambda z: model.module(model.normalize(z)))
    with torch.enable_grad():
        attributions, delta = ig.attribute(x, baselines=baseline_image(x, baseline), target=int(target),
                                           n_steps=steps, internal_batch_size=batch,
                                           return_convergence_delta=True)
    pixel = attributions[0].detach().sum(0).clamp(min=0)
    sigma = max(1.0, x.shape[-1] / 112)
    kernel = int(2 * round(3 * sigma) + 1)
    heat = gaussian_blur(pixel[None, None], [kernel, kernel], [sigma, sigma])[0, 0]
    return IGResult(heat.float().cpu().numpy(), attributions[0].detach(), float(delta.abs().max()))
