"""Image transforms for training and evaluation (torchvision ``transforms.v2``).

``seed`` augmentation reproduces the Keras ``ImageDataGenerator`` of the 2018 seed: rotation ±30°, shifts
±20 %, shear 0.2 (Keras 2.1 took radians: ±11.5°), zoom 0.8-1.2 (independently in x and y), horizontal
flip, bilinear resampling with the image edge repeated outside (Keras ``fill_mode='nearest'``).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torchvision.transforms import v2

AUGMENTS = ("seed", "light", "none")


class KerasAffine(torch.nn.Module):
    """Random affine transform of a (C, H, W) float tensor, as Keras 2.1 ``random_transform`` computes it.

    The matrix maps output pixel coordinates (row, col) to input coordinates: rotation · shift · shear · zoom,
    about the image centre; samples outside the image take the nearest edge pixel.
    """

    def __init__(self, rotation: float = 30.0, shift: float = 0.2, shear: float = 0.2, zoom: float = 0.2,
                 flip: bool = True):
        super().__init__()
        self.rotation, self.shift, self.shear, self.zoom, self.flip = rotation, shift, shear, zoom, flip

    @staticmethod
    def _u(lo: float, hi: float) -> float:
        return lo + (hi - lo) * float(torch.rand(()))

    def matrix(self, h: int, w: int) -> torch.Tensor:
        """A random 3×3 output→input matrix in (row, col) pixel coordinates."""
        theta = math.radians(self._u(-self.rotation, self.rotation))
        tx, ty = self._u(-self.shift, self.shift) * h, self._u(-self.shift, self.shift) * w
        sh = self._u(-self.shear, self.shear)
        zx, zy = self._u(1 - self.zoom, 1 + self.zoom), self._u(1 - self.zoom, 1 + self.zoom)
        rot = torch.tensor([[math.cos(theta), -math.sin(theta), 0], [math.sin(theta), math.cos(theta), 0],
                            [0, 0, 1]], dtype=torch.float64)
        shift = torch.tensor([[1, 0, tx], [0, 1, ty], [0, 0, 1]], dtype=torch.float64)
        shear = torch.tensor([[1, -math.sin(sh), 0], [0, math.cos(sh), 0], [0, 0, 1]], dtype=torch.float64)
        zoom = torch.tensor([[zx, 0, 0], [0, zy, 0], [0, 0, 1]], dtype=torch.float64)
        m = rot @ shift @ shear @ zoom
        cr, cc = h / 2 - 0.5, w / 2 - 0.5
        offset = torch.tensor([[1, 0, cr], [0, 1, cc], [0, 0, 1]], dtype=torch.float64)
        reset = torch.tensor([[1, 0, -cr], [0, 1, -cc], [0, 0, 1]], dtype=torch.float64)
        return offset @ m @ reset

    def forward(self, img: torch.Tensor) -> torch.Tensor:
        _, h, w = img.shape
        m = self.matrix(h, w)
        rows, cols = torch.meshgrid(torch.arange(h, dtype=torch.float64), torch.arange(w, dtype=torch.float64),
                                    indexing="ij")
        src_r = m[0, 0] * rows + m[0, 1] * cols + m[0, 2]
        src_c = m[1, 0] * rows + m[1, 1] * cols + m[1, 2]
        grid = torch.stack([2 * src_c / max(w - 1, 1) - 1, 2 * src_r / max(h - 1, 1) - 1], dim=-1)
        out = F.grid_sample(img[None], grid[None].to(img.dtype), mode="bilinear", padding_mode="border",
                            align_corners=True)[0]
        if self.flip and float(torch.rand(())) < 0.5:
            out = out.flip(-1)
        return out


def _load(size: int) -> list:
    """PIL image → float tensor in [0, 1], squashed to size×size (as Keras ``flow_from_directory`` does)."""
    return [v2.ToImage(), v2.Resize((size, size), antialias=True), v2.ToDtype(torch.float32, scale=True)]


def train_transform(size: int, augment: str, mean, std) -> v2.Compose:
    """The training transform for *augment* = seed | light | none."""
    if augment == "seed":
        steps = [*_load(size), KerasAffine()]
    elif augment == "light":
        steps = [v2.ToImage(), v2.RandomResizedCrop(size, scale=(0.7, 1.0), antialias=True),
                 v2.RandomHorizontalFlip(), v2.ToDtype(torch.float32, scale=True)]
    elif augment == "none":
        steps = _load(size)
    else:
        from imagemachines.errors import UserError, did_you_mean

        raise UserError(f"Unknown augmentation {augment!r}.{did_you_mean(augment, AUGMENTS)} "
                        f"Use one of: {', '.join(AUGMENTS)}.")
    return v2.Compose([*steps, v2.Normalize(list(mean), list(std))])


def eval_transform(size: int, mean, std) -> v2.Compose:
    """Deterministic preprocessing for validation, evaluation and prediction."""
    return v2.Compose([*_load(size), v2.Normalize(list(mean), list(std))])
