"""Attribution maps: where in a painting the evidence for a class lies.

>>> from imagemachines.attribution import attribute
>>> heat = attribute(model, painting, target=1, method="gradcam++")   # (H, W) in [0, 1]

Methods: ``gradcam`` (Captum's LayerGradCam), ``gradcam++`` (written here; Captum has none) and ``ig``
(integrated gradients, Captum, black or blurred baseline). The CAM methods work on a convolutional layer
(default: the model's deepest block with a spatial map); integrated gradients works on the pixels.
"""

from __future__ import annotations

import numpy as np
from PIL import Image

from imagemachines.attribution.inputs import model_input, open_image, spatial_layer, unit_interval, upsample
from imagemachines.errors import UserError, did_you_mean
from imagemachines.models.loaded import LoadedModel
from imagemachines.models.taps import LOGITS

METHODS = ("gradcam", "gradcam++", "ig")
METHOD_NAMES = {"gradcam": "Grad-CAM", "gradcam++": "Grad-CAM++", "ig": "Integrated gradients"}

__all__ = ["METHODS", "METHOD_NAMES", "attribute", "attribute_low", "check_method", "check_target", "open_image",
           "spatial_layer"]


def check_method(method: str) -> str:
    """*method* normalised (case, ``gradcampp``, ``integrated-gradients``); unknown names are a UserError."""
    key = method.strip().lower().replace("_", "-")
    key = {"grad-cam": "gradcam", "gradcampp": "gradcam++", "grad-cam++": "gradcam++", "gradcamplusplus": "gradcam++",
           "integrated-gradients": "ig", "integratedgradients": "ig"}.get(key, key)
    if key not in METHODS:
        raise UserError(f"Unknown attribution method {method!r}.{did_you_mean(method, METHODS)} "
                        f"Use one of: {', '.join(METHODS)}.")
    return key


def check_target(model: LoadedModel, target: int) -> int:
    """*target* as a class index of *model*: the model must end in class scores and the index be in range."""
    if LOGITS not in {info.name for info in model.layers()}:
        raise UserError(f"Model {model.name!r} has no class scores (its output is not a vector of logits): "
                        "explain a unit (--unit LAYER:CHANNEL) instead.")
    model.check_channel(LOGITS, int(target))
    return int(target)


def attribute_low(model: LoadedModel, image: Image.Image, target: int, *, method: str = "gradcam",
                  layer: str | None = None, steps: int | None = None, baseline: str = "black") -> np.ndarray:
    """The map of *method* at its own resolution (CAMs: the layer's; IG: the input's), in [0, 1]."""
    from imagemachines.attribution.gradcam import gradcam
    from imagemachines.attribution.gradcampp import gradcam_plus_plus
    from imagemachines.attribution.integrated import DEFAULT_STEPS, integrated_gradients

    method = check_method(method)
    target = check_target(model, target)
    x = model_input(model, image)
    if method == "ig":
        if layer is not None:
            raise UserError("Integrated gradients attributes to the pixels; it takes no layer.")
        result = integrated_gradients(model, x, target, steps=steps or DEFAULT_STEPS, baseline=baseline)
        return unit_interval(result.heat, clip_quantile=0.995)
    layer = spatial_layer(model, layer)
    heat = (gradcam if method == "gradcam" else gradcam_plus_plus)(model, x, target, layer)
    return unit_interval(heat)


def attribute(model: LoadedModel, image: Image.Image, target: int, *, method: str = "gradcam",
              layer: str | None = None, steps: int | None = None, baseline: str = "black") -> np.ndarray:
    """Where *image* holds the evidence for class *target*: (H, W) float32 in [0, 1] at the image's size.

    *method*: ``gradcam``, ``gradcam++`` or ``ig``; *layer*: the convolutional layer of the CAM methods
    (default: the deepest block with a spatial map); *steps* and *baseline* (``black`` | ``blur``): integrated
    gradients' path. A model without class scores, a class out of range or an unknown layer is a UserError.
    """
    heat = attribute_low(model, image, target, method=method, layer=layer, steps=steps, baseline=baseline)
    return np.clip(upsample(heat, image.size), 0, 1)
