"""Activation maps of units over images, and heat overlays of them on the images.

The maps use the same preprocessing as indexing (the model's evaluation transform: the image squashed to the
input square) and, given the index's *ranking*, the same network input (mirrored outward for ``reflect``) and
the same cells (those that cover the painting), so a map's peak is where the index took the unit's value
(:func:`imagemachines.index.peaks.peaks`).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from PIL import Image

from imagemachines.errors import UserError
from imagemachines.index.peaks import LEGACY_RANKING, check_ranking, network_input, painting_cells
from imagemachines.models.loaded import LoadedModel


def activation_maps(model: LoadedModel, images: Sequence[Image.Image], layer: str, channels: Sequence[int],
                    batch_size: int = 16, ranking: str = LEGACY_RANKING) -> np.ndarray:
    """[n_images, len(channels), h, w] float32 at feature-map resolution (1×1 for logits and linear layers), over
    the cells that cover the painting under *ranking* (an index's :attr:`ranking`)."""
    from imagemachines.index.passes import preprocess

    for c in channels:
        model.check_channel(layer, int(c))
    if not images:
        raise UserError("activation_maps needs at least one image.")
    check_ranking(ranking)
    transform = preprocess(model)
    tap = model.tap([layer])
    info = model.layer(layer)
    idx = torch.as_tensor([int(c) for c in channels], dtype=torch.long)
    out = []
    with torch.inference_mode():
        for s in range(0, len(images), batch_size):
            x = torch.stack([transform(im.convert("RGB")) for im in images[s:s + batch_size]]).to(model.device)
            a = painting_cells(tap(network_input(x, ranking))[layer], ranking, (info.height, info.width))
            if a.ndim == 2:
                a = a[:, :, None, None]
            out.append(a.index_select(1, idx.to(a.device)).float().cpu())
    return torch.cat(out).numpy()


def heat_overlay(image: Image.Image, heat: np.ndarray, *, alpha: float = 0.5, vmax: float | None = None,
                 cmap: str = "inferno") -> Image.Image:
    """*heat* (h, w) upsampled (bilinear) to *image*'s size, colour-mapped from 0 to *vmax* (default: its own
    maximum; negative values count as 0) and blended over the image (*alpha* = weight of the heat)."""
    from matplotlib import colormaps

    heat = np.asarray(heat, dtype=np.float32)
    if heat.ndim != 2:
        raise UserError(f"heat_overlay takes a 2-D map; got shape {heat.shape}.")
    top = float(vmax) if vmax is not None else float(np.nanmax(heat)) if heat.size else 0.0
    norm = np.clip(np.nan_to_num(heat) / top, 0, 1) if top > 0 else np.zeros_like(heat)
    small = Image.fromarray((norm * 255).astype(np.uint8), mode="L")
    big = np.asarray(small.resize(image.size, Image.BILINEAR), dtype=np.float32) / 255.0
    rgb = (colormaps[cmap](big)[..., :3] * 255).astype(np.uint8)
    return Image.blend(image.convert("RGB"), Image.fromarray(rgb, mode="RGB"), float(alpha))


def peak_cell(heat: np.ndarray, ranking: str = LEGACY_RANKING) -> tuple[int, int]:
    """(row, col) of a map's maximum (over the interior for the ``interior`` ranking, as the index takes it)."""
    from imagemachines.index.peaks import peaks

    heat = np.asarray(heat, dtype=np.float32)
    cell = peaks(torch.from_numpy(heat)[None, None], check_ranking(ranking)).cell
    return divmod(int(cell[0, 0]), heat.shape[1])
