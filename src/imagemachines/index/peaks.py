"""Where a unit's value on a painting is taken (an index's *ranking*), and whether that spot is on the edge.

A unit's value on a painting is the maximum of its activation map. The network's convolutions pad their input
with zeros, and the painting is squashed to the input square, so the cells on the edge of a map see the
painting's edge meet a grey frame (zero is the mean colour after normalisation): some units answer that seam —
a corner of sky, a black background — rather than anything painted. Three rankings:

- ``interior`` (the default, measured best on real paintings: docs/examples.md): the maximum over the cells
  that do not touch the map's edge (maps narrower than 3 cells: every cell). The network's input is unchanged,
  only the ranking is: the activation maps, heat overlays and pooled activations are the same as with ``full``.
- ``reflect``: the painting is mirrored outward by :func:`reflect_pad` pixels on every side of the input square
  before the network sees it, so the zero padding meets mirrored paint instead of the painting's edge; the value
  is the maximum over the cells that cover the painting itself. The network's input changes (larger: more work).
- ``full``: the maximum over every cell (indexes made before rankings were recorded).

Whatever the ranking, the *border* of a map is its outer ring of cells (none for maps narrower than 3 cells),
and for every painting the index records whether the maximum over *all* the painting's cells lies on it: how
often that happens is a unit's border share (:func:`border_chance` is the share of the map that is border);
and per unit, its strongest border peak over the collection beside its strongest value inside the maps.
When the maximum is also reached off the border (a flat region, a unit saturated at ReLU6's 6), an inner cell
is taken, so such a tie is not called a border peak.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F

RANKINGS = ("interior", "reflect", "full")
DEFAULT_RANKING = "interior"
LEGACY_RANKING = "full"  # what an index without a recorded ranking did
REFLECT_SHARE = 1 / 7  # the mirrored margin, as a share of the input side (32 px of MobileNetV2's 224)


def check_ranking(ranking: str) -> str:
    from imagemachines.errors import UserError

    if ranking not in RANKINGS:
        raise UserError(f"Unknown ranking {ranking!r}: use one of {', '.join(RANKINGS)} (see docs/examples.md).")
    return ranking


def reflect_pad(input_size: int) -> int:
    """Pixels of mirrored painting added on every side of the input square for the ``reflect`` ranking."""
    return max(1, round(input_size * REFLECT_SHARE))


def network_input(x: torch.Tensor, ranking: str) -> torch.Tensor:
    """The batch [B, 3, S, S] as the network sees it under *ranking* (mirrored outward for ``reflect``)."""
    if ranking != "reflect":
        return x
    pad = reflect_pad(x.shape[-1])
    return F.pad(x, (pad, pad, pad, pad), mode="reflect")


def painting_cells(a: torch.Tensor, ranking: str, shape: tuple[int, int]) -> torch.Tensor:
    """The part of a layer's output [B, C, H, W] that covers the painting: for ``reflect``, the centred
    *shape* (the layer's map size without padding); otherwise *a* itself. Vectors [B, C] pass unchanged."""
    if ranking != "reflect" or a.ndim != 4:
        return a
    h, w = shape
    top, left = max(0, (a.shape[2] - h) // 2), max(0, (a.shape[3] - w) // 2)
    return a[:, :, top:top + h, left:left + w]


def has_border(h: int, w: int) -> bool:
    """A map has a border (and an interior) when it is at least 3 cells in both directions."""
    return h >= 3 and w >= 3


def border_mask(h: int, w: int) -> torch.Tensor:
    """[h, w] bool: the cells on the map's outer ring (all False when the map has no border)."""
    mask = torch.zeros(h, w, dtype=torch.bool)
    if has_border(h, w):
        mask[0, :] = mask[-1, :] = mask[:, 0] = mask[:, -1] = True
    return mask


def border_chance(h: int, w: int) -> float:
    """The share of a map's cells on its border: how often a unit indifferent to position peaks there."""
    return float(border_mask(h, w).float().mean()) if h * w else 0.0


def on_border(cells: torch.Tensor, h: int, w: int) -> torch.Tensor:
    """Whether flat cell indices of an [h, w] map lie on its border."""
    if not has_border(h, w):
        return torch.zeros_like(cells, dtype=torch.bool)
    r, c = cells // w, cells % w
    return (r == 0) | (c == 0) | (r == h - 1) | (c == w - 1)


def _inner_max(maps: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The maximum of [M, H, W] maps over the cells off the border, and its flat cell in the H×W map (the first in
    row-major order)."""
    m, h, w = maps.shape
    value, cell = maps[:, 1:-1, 1:-1].reshape(m, -1).max(dim=1)
    return value, (cell // (w - 2) + 1) * w + cell % (w - 2) + 1


class Peaks(NamedTuple):
    """A unit's value on each painting and where it was taken (see :func:`peaks`); every field [B, C]."""

    value: torch.Tensor  # float32: the value as the ranking takes it
    cell: torch.Tensor  # int64: its flat cell in the H×W map
    border: torch.Tensor  # bool: the maximum over all cells lies on the border (and nowhere inside)
    peak: torch.Tensor  # float32: the maximum over all cells
    inner: torch.Tensor  # float32: the maximum over the interior (all cells for a map without a border)


def peaks(a: torch.Tensor, ranking: str) -> Peaks:
    """Per image and unit of the painting's maps *a* [B, C, H, W] (or vectors [B, C]): the value as *ranking*
    takes it and its cell, whether the maximum over all cells lies on the border, and the maxima over all cells
    and over the interior. ``interior`` takes the value away from the border; the others over every cell. When
    the maximum is also reached off the border (a flat region, a unit saturated at ReLU6's 6), it is not a
    border peak and its cell is the inner one (the first in row-major order).

    Cost: one pass over the maps, and one over the interior of only the maps whose maximum is on the border."""
    flat = (a.flatten(2) if a.ndim == 4 else a.reshape(a.shape[0], a.shape[1], 1)).float()
    h, w = (a.shape[2], a.shape[3]) if a.ndim == 4 else (1, 1)
    value, cell = flat.max(dim=2)
    edge = on_border(cell, h, w)
    if not edge.any():
        return Peaks(value, cell, edge, value, value)
    rows = edge.flatten().nonzero().squeeze(1)  # the (image, unit) pairs that peak on the border
    inner_v, inner_cell = _inner_max(flat.reshape(-1, h * w).index_select(0, rows).view(-1, h, w))
    inside = inner_v == value.flatten()[rows]  # the maximum is reached inside too: not a border peak
    edge.view(-1)[rows] = ~inside
    peak, inner, cell = value, value.clone(), cell.clone()
    inner.view(-1)[rows] = inner_v
    if ranking == "interior":
        cell.view(-1)[rows] = inner_cell
        return Peaks(inner, cell, edge, peak, inner)
    cell.view(-1)[rows] = torch.where(inside, inner_cell, cell.flatten()[rows])
    return Peaks(peak, cell, edge, peak, inner)
