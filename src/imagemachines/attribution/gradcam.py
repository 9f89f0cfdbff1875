"""Grad-CAM (Selvaraju et al., ICCV 2017), taken from Captum's ``LayerGradCam``.

The class score's gradient, averaged over the feature map, weighs each channel of the layer; the weighted sum
of the channels, negative parts cut, is the map.
"""

from __future__ import annotations

import numpy as np
import torch

from imagemachines.models.loaded import LoadedModel


def gradcam(model: LoadedModel, x: torch.Tensor, target: int, layer: str) -> np.ndarray:
    """Grad-CAM of class *target* for the input batch *x* ([1, 3, S, S] in [0, 1]) at *layer*: (h, w), ≥ 0."""
    from captum.attr import LayerGradCam

    module = dict(model.module.named_modules())[layer]
    cam = LayerGradCam(lambda z: model.module(model.normalize(z)), module)
    with torch.enable_grad():
        heat = cam.attribute(x, target=int(target), relu_attributions=True)
    return heat[0, 0].detach().float().cpu().numpy()
