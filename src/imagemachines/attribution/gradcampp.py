"""Grad-CAM++ (Chattopadhyay et al., WACV 2018, eq. 19), written here: Captum has no Grad-CAM++.

Each position's positive gradient is weighted by ``α = g² / (2g² + ΣA·g³)``, so that several weaker instances
of an object count as much as one strong one. Positions where α is undefined (no positive gradient) get 0.
pytorch-grad-cam (which would also bring OpenCV, SciPy and scikit-learn, ~350 MB) adds ``1e-6`` to the
denominator instead; MobileNetV2's class-score gradients are about 1e-3 per position, so ``2g²`` is of the same
order and its maps differ from these by up to 0.05 (of 1). Tests compare both where the constant is negligible.
"""

from __future__ import annotations

import numpy as np
import torch

from imagemachines.models.loaded import LoadedModel
from imagemachines.models.taps import LOGITS


def gradcam_plus_plus(model: LoadedModel, x: torch.Tensor, target: int, layer: str) -> np.ndarray:
    """Grad-CAM++ of class *target* for *x* ([1, 3, S, S] in [0, 1]) at *layer*: (h, w), ≥ 0."""
    with torch.enable_grad():
        z = x.detach().clone().requires_grad_(True)
        out = model.tap([layer, LOGITS])(model.normalize(z))
        (grads,) = torch.autograd.grad(out[LOGITS][0, int(target)], out[layer])
    acts, g = out[layer][0].detach().double(), grads[0].double()
    g2 = g * g
    denominator = 2 * g2 + acts.sum(dim=(1, 2), keepdim=True) * g2 * g
    defined = (g > 0) & (denominator > 0)
    alpha = torch.where(defined, g2 / torch.where(defined, denominator, 1.0), 0.0)
    weights = (alpha * g.clamp(min=0)).sum(dim=(1, 2))
    cam = (weights[:, None, None] * acts).sum(0).clamp(min=0)
    return cam.float().cpu().numpy()
