"""From a painting to the network's input, and from a feature-map heat back to the painting.

The network sees the whole painting squashed to ``input_size``², exactly as evaluation and indexing do
(no crop), so a map over the input covers the painting edge to edge and goes back by a plain resize.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from imagemachines.errors import UnknownLayer, UserError
from imagemachines.models.loaded import LoadedModel
from imagemachines.models.taps import LOGITS


def open_image(path: Path) -> Image.Image:
    """Read an image file as RGB; a missing, unreadable or oversized file is a clear :class:`UserError`."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"No such image file: {path}. Give the path of a JPEG, PNG, TIFF or WebP file.")
    try:
        with Image.open(path) as im:
            return im.convert("RGB")
    except Image.DecompressionBombError as exc:
        raise UserError(f"{path} is too large to decode safely ({exc}). Scale it down first.") from exc
    except (OSError, SyntaxError, ValueError) as exc:  # PIL's UnidentifiedImageError is an OSError
        raise UserError(f"Cannot read {path} as an image ({type(exc).__name__}: {exc}). "
                        "Give a JPEG, PNG, TIFF or WebP file.") from exc


def model_input(model: LoadedModel, image: Image.Image) -> torch.Tensor:
    """``[1, 3, S, S]`` in [0, 1] on the model's device: *image* squashed to the model's input size."""
    from torchvision.transforms import v2

    size = model.input_size
    load = v2.Compose([v2.ToImage(), v2.Resize((size, size), antialias=True), v2.ToDtype(torch.float32, scale=True)])
    return load(image.convert("RGB"))[None].to(model.device)


def spatial_layer(model: LoadedModel, layer: str | None = None) -> str:
    """*layer* checked to have a spatial map; by default the deepest top-level block that still has one."""
    if layer is not None:
        info = model.layer(layer)
        if layer == LOGITS or info.height * info.width <= 1:
            raise UnknownLayer(f"Layer {layer!r} of {model.name!r} has no spatial map ({info.height}×{info.width}): "
                               "pick a convolutional block (`imagemachines layers MODEL`).")
        return layer
    spatial = [info.name for info in model.layers() if info.name != LOGITS and info.height * info.width > 1]
    if not spatial:
        raise UnknownLayer(f"Model {model.name!r} has no convolutional block to take a map from.")
    deepest = spatial[-1]
    # a container (``features``) fires right after its last child (``features.18``): name the child
    if len(spatial) > 1 and spatial[-2].startswith(deepest + "."):
        deepest = spatial[-2]
    return deepest


def upsample(heat: np.ndarray | torch.Tensor, size: tuple[int, int]) -> np.ndarray:
    """A (h, w) map resized bilinearly to *size* = (width, height), as float32."""
    t = torch.as_tensor(np.asarray(heat, dtype=np.float32))[None, None]
    width, height = size
    out = F.interpolate(t, size=(height, width), mode="bilinear", align_corners=False)
    return out[0, 0].numpy()


def unit_interval(heat: np.ndarray | torch.Tensor, clip_quantile: float | None = None) -> np.ndarray:
    """Negative values to 0, then divided by the maximum (or the *clip_quantile* of the positive values)."""
    h = np.clip(np.asarray(heat, dtype=np.float32), 0, None)
    positive = h[h > 0]
    if positive.size == 0:
        return np.zeros_like(h)
    top = float(np.quantile(positive, clip_quantile)) if clip_quantile is not None else float(positive.max())
    return np.clip(h / top, 0, 1) if top > 0 else np.zeros_like(h)
