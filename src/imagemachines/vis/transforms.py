"""Random per-image transforms (robustness), drawn once for the whole render and applied on the device.

The Lucid standard chain — pad, jitter, scale, rotate, jitter — is one affine map per image, so the whole batch
goes through a single ``affine_grid`` + ``grid_sample``: each image its own random draw, no Python loop per
image, and only one resampling (less blur than chaining). All random numbers for all steps are drawn at the
start from each image's own generator, so image *i* sees the same transforms whether rendered alone or in a
batch.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F


@dataclass(frozen=True)
class TransformSpec:
    """Ranges of the random transforms, in pixels of the rendered image and degrees."""

    pad: int = 12
    jitter: int = 8
    scales: tuple[float, ...] = tuple(1 + (i - 5) / 50 for i in range(11))
    degrees: int = 10
    extra_zero_angles: int = 5  # Lucid draws from range(-10, 11) + 5 * [0]: no rotation is likelier
    jitter_after: int = 4
    pad_value: float = 0.5

    @property
    def identity(self) -> bool:
        return (self.pad, self.jitter, self.degrees, self.jitter_after) == (0, 0, 0, 0) and set(self.scales) <= {1.0}


NONE = TransformSpec(pad=0, jitter=0, scales=(1.0,), degrees=0, jitter_after=0)


def draw_affine(spec: TransformSpec, steps: int, seeds: Sequence[int], size: int | tuple[int, int]) -> torch.Tensor:
    """(steps, B, 2, 3) affine matrices for ``F.affine_grid`` (normalised coordinates), one draw per image/step.

    *size* is the side of square images or (height, width); rotations turn the picture, not its normalised
    square, so a non-square image is not sheared."""
    per_image = []
    for seed in seeds:
        g = torch.Generator().manual_seed(int(seed) * 1_000_003 + 7)
        j1 = torch.randint(-spec.jitter, spec.jitter + 1, (steps, 2), generator=g).float()
        s = torch.tensor(spec.scales)[torch.randint(len(spec.scales), (steps,), generator=g)]
        angles = torch.tensor(list(range(-spec.degrees, spec.degrees + 1)) + [0] * spec.extra_zero_angles)
        deg = angles[torch.randint(len(angles), (steps,), generator=g)].float()
        j2 = torch.randint(-spec.jitter_after, spec.jitter_after + 1, (steps, 2), generator=g).float()
        per_image.append((j1, s, deg, j2))
    j1, s, deg, j2 = (torch.stack([p[k] for p in per_image], dim=1) for k in range(4))
    # Output pixel u (normalised, in [-1, 1]) samples the padded canvas at  R(θ) u · pad/s  + shift, with the
    # rotation done in pixels: normalised x and y are scaled back by the sides (h/w, w/h: 1 for a square).
    h, w = (size, size) if isinstance(size, int) else size
    zoom_x, zoom_y = (w + 2 * spec.pad) / w / s, (h + 2 * spec.pad) / h / s  # (steps, B)
    theta = torch.deg2rad(deg)
    cos, sin = torch.cos(theta), torch.sin(theta)
    shift = (j1 + j2) * 2.0 / torch.tensor([float(w), float(h)])  # pixels -> normalised units, (steps, B, 2)
    row0 = torch.stack([cos * zoom_x, -(sin * zoom_y * (h / w)), shift[..., 0]], dim=-1)
    row1 = torch.stack([sin * zoom_x * (w / h), cos * zoom_y, shift[..., 1]], dim=-1)
    return torch.stack([row0, row1], dim=-2)


class RandomAffine:
    """Applies step *k*'s precomputed per-image affine transforms to a batch on its device."""

    def __init__(self, spec: TransformSpec, steps: int, seeds: Sequence[int], size: int | tuple[int, int],
                 device: torch.device):
        self.spec = spec
        self.size = size
        self.theta = None if spec.identity else draw_affine(spec, steps, seeds, size).to(device)

    def __call__(self, images: torch.Tensor, step: int) -> torch.Tensor:
        if self.theta is None:
            return images
        theta = self.theta[step].to(images.dtype)
        grid = F.affine_grid(theta, list(images.shape), align_corners=False)
        shifted = images - self.spec.pad_value  # zeros padding == pad_value padding after the shift back
        return F.grid_sample(shifted, grid, mode="bilinear", padding_mode="zeros", align_corners=False) + (
            self.spec.pad_value
        )


def random_crops(
    images: torch.Tensor, n: int, generators: Sequence[torch.Generator],
    noise_generators: Sequence[torch.Generator], min_frac: float = 0.25, noise: float = 0.05,
    out_size: int | None = None,
) -> torch.Tensor:
    """MACO's augmentation: *n* random square crops per image, resized, plus Gaussian noise.

    Image *i* draws its crops from ``generators[i]`` (CPU) and its noise from ``noise_generators[i]`` (on the
    images' device, so no noise crosses from host to device). Returns (B*n, 3, out, out), image 0's first.
    """
    b, _, h, _ = images.shape
    out = out_size or h
    draws = []
    for g, g_noise in zip(generators, noise_generators, strict=True):
        fr = min_frac + (1 - min_frac) * torch.rand(n, generator=g)
        cx, cy = ((torch.rand(2, n, generator=g) * 2 - 1) * (1 - fr)).unbind(0)
        eps = torch.randn(n, 3, out, out, generator=g_noise, device=images.device)
        draws.append((fr, cx, cy, eps))
    fr, cx, cy = (torch.cat([d[k] for d in draws]) for k in range(3))
    zeros = torch.zeros_like(fr)
    theta = torch.stack([torch.stack([fr, zeros, cx], -1), torch.stack([zeros, fr, cy], -1)], dim=-2)
    theta = theta.to(images.device, images.dtype)
    src = images.repeat_interleave(n, dim=0)
    grid = F.affine_grid(theta, [b * n, 3, out, out], align_corners=False)
    crops = F.grid_sample(src, grid, mode="bilinear", padding_mode="reflection", align_corners=False)
    eps = torch.cat([d[3] for d in draws]).to(crops.dtype)
    return crops + noise * eps


def resize(images: torch.Tensor, size: int) -> torch.Tensor:
    """Bilinear resize of a batch to size×size (antialiased when shrinking)."""
    if images.shape[-1] == size and images.shape[-2] == size:
        return images
    return F.interpolate(images, size=(size, size), mode="bilinear", align_corners=False,
                         antialias=size < images.shape[-1])


