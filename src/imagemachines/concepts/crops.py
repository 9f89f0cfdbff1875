"""Crops of a painting on a regular grid, as the network sees them.

A crop is a fraction of the painting's width and height (so it has the painting's proportions), placed on a
grid that spans the painting edge to edge, and squashed to the network's input square like a whole painting
is by evaluation and indexing. CRAFT (Fel et al. 2023) cuts 64-px patches every 51 px out of a 224-px input,
i.e. crops of 0.29 of the side every 0.23; the defaults here, 0.3 and 0.25, give the same 4 × 4 = 16 crops.
Boxes are in the painting's own pixels: (left, top, right, bottom), right and bottom exclusive.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from PIL import Image, ImageOps

from imagemachines.errors import UserError

Box = tuple[int, int, int, int]


@dataclass(frozen=True)
class CropGrid:
    """Crops of *size* (a fraction of the painting's side) every *stride* (a fraction too)."""

    size: float = 0.3
    stride: float = 0.25

    def __post_init__(self) -> None:
        if not (0 < self.size <= 1 and math.isfinite(self.size)):
            raise UserError(f"--crop must be a fraction of the painting's side above 0 and at most 1; got {self.size}.")
        if not (0 < self.stride <= 1 and math.isfinite(self.stride)):
            raise UserError(f"--stride must be a fraction of the painting's side above 0 and at most 1; "
                            f"got {self.stride}.")

    def starts(self) -> list[float]:
        """Where crops begin along one side, as fractions: evenly spaced from 0 to 1 - size, at most *stride*
        apart, so the last crop ends at the painting's edge."""
        room = 1.0 - self.size
        if room <= 1e-9:
            return [0.0]
        n = math.ceil(room / self.stride - 1e-9) + 1
        return [room * i / (n - 1) for i in range(n)]

    @property
    def per_image(self) -> int:
        return len(self.starts()) ** 2

    def boxes(self, width: int, height: int) -> list[Box]:
        """The crop boxes of a *width* × *height* painting, row by row, in its pixels (at least 1 px each)."""
        out = []
        for top in self.starts():
            for left in self.starts():
                x0, y0 = round(left * width), round(top * height)
                x1 = max(x0 + 1, min(width, round((left + self.size) * width)))
                y1 = max(y0 + 1, min(height, round((top + self.size) * height)))
                out.append((x0, y0, x1, y1))
        return out

    def as_dict(self) -> dict:
        return {"size": self.size, "stride": self.stride, "per_image": self.per_image}


def read_rgb(path: Path) -> Image.Image:
    """The painting as RGB, EXIF rotation applied (an unreadable file raises; callers report it)."""
    with Image.open(path) as im:
        return ImageOps.exif_transpose(im).convert("RGB")


def crop_tensors(image: Image.Image, boxes: list[Box], side: int,
                 normalize: Callable[[torch.Tensor], torch.Tensor]) -> torch.Tensor:
    """``[len(boxes), 3, side, side]``: each box cut out and squashed to the input square (antialiased), the way
    the evaluation transform squashes a whole painting, then normalised for the network."""
    from torchvision.transforms.v2 import functional as TF

    pixels = TF.pil_to_tensor(image)
    crops = [TF.resized_crop(pixels, y0, x0, y1 - y0, x1 - x0, [side, side], antialias=True)
             for x0, y0, x1, y1 in boxes]
    return normalize(torch.stack(crops).float() / 255)


def crop_image(image: Image.Image, box: Box) -> Image.Image:
    """One crop as a picture (for pages)."""
    return image.crop(box)
