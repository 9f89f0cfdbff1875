"""Grad-CAM++ (Chattopadhyay et al., WACV 2018, eq. 19), written here: Captum has no Grad-CAM++.

Each position's positive gradient is weighted by ``α = g² / (2g² + ΣA·g³)``, so that several weaker instances
of an object count as much as one strong one. Positions where α is undefined (no positive gradient) get 0.
pytorch-grad-cam adds ``1e-6`` to the denominator instead; with the gradients of a real network's class score
(about 1e-3 per position in MobileNetV2's last block) that constant is as large as ``2g²`` and shifts the
channel weights, so the exact form is kept here (tests compare both where the constant does not matter).
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
