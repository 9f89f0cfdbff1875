"""Where a concept lies in whole paintings: its coefficient in every feature-map cell, over the painting.

A painting's concept map is the non-negative least-squares coefficient of each cell's activation vector on the
concept (:func:`imagemachines.concepts.importance.cell_coefficients`), at feature-map resolution; it is drawn
like the other heat overlays (:func:`imagemachines.index.maps.heat_overlay`: upsampled over the painting, which
the network saw squashed to its input square), on one colour scale per concept: its strongest cell over the
class's paintings.
"""

from __future__ import annotations

import numpy as np
import torch
from PIL import Image


def peak_paintings(maps: torch.Tensor, limit: int, floor: float = 0.0) -> list[tuple[int, float, tuple[int, int]]]:
    """(painting row, peak coefficient, (row, col) of the peak) of the *limit* paintings whose concept map
    (``[n, h, w]``) peaks highest, highest first; paintings where the concept is absent (peak at most *floor*)
    are left out."""
    n, h, w = maps.shape
    flat = maps.reshape(n, -1)
    peaks, cells = flat.max(dim=1)
    order = sorted(range(n), key=lambda i: (-float(peaks[i]), i))
    out = []
    for i in order[:limit]:
        if float(peaks[i]) <= floor:
            break
        out.append((i, float(peaks[i]), (int(cells[i]) // w, int(cells[i]) % w)))
    return out


def concept_overlay(painting: Image.Image, concept_map: np.ndarray | torch.Tensor, vmax: float,
                    alpha: float = 0.55) -> Image.Image:
    """*painting* with a concept's map (``[h, w]``) over it, coloured from 0 to *vmax*."""
    from imagemachines.index.maps import heat_overlay

    heat = concept_map.numpy() if isinstance(concept_map, torch.Tensor) else np.asarray(concept_map)
    return heat_overlay(painting, heat, alpha=alpha, vmax=vmax if vmax > 0 else None)
