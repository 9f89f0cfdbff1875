"""Image parameterizations: what the optimizer actually changes.

Each parameterization holds a batch of images as learnable tensors and maps them to RGB in [0, 1]. Every
image draws its initial values from its own generator, so image *i* of a batch starts exactly as it would
alone with the same seed.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn

# Square root of ImageNet's colour correlation matrix (Olah et al., Distill 2017 / Lucid).
_COLOR_SVD_SQRT = torch.tensor([[0.26, 0.09, 0.02], [0.27, 0.00, -0.05], [0.27, -0.09, 0.03]])
COLOR_DECORRELATION = _COLOR_SVD_SQRT / _COLOR_SVD_SQRT.norm(dim=0).max()
SATURATION = 0.25 / 255  # pictures are clamped to [S, 1 - S] before the sigmoid is undone: 8-bit 0 and 255 stay put


def seeded_randn(shape: Sequence[int], seeds: Sequence[int], offset: int = 0) -> torch.Tensor:
    """A (len(seeds), *shape) normal tensor; row *i* depends only on ``seeds[i]`` (and *offset*)."""
    rows = []
    for seed in seeds:
        g = torch.Generator().manual_seed(int(seed) * 1_000_003 + offset)
        rows.append(torch.randn(*shape, generator=g))
    return torch.stack(rows)


def rfft2d_freqs(h: int, w: int) -> torch.Tensor:
    """Spatial frequency magnitude of every bin of a real 2-D FFT of an h×w image."""
    fy = torch.fft.fftfreq(h)[:, None]
    fx = torch.fft.rfftfreq(w)[None, :]
    return torch.sqrt(fx * fx + fy * fy)


class PixelImage(nn.Module):
    """Plain pixels (through a sigmoid): the baseline parameterization."""

    def __init__(self, seeds: Sequence[int], size: int, sd: float = 0.01):
        super().__init__()
        self.pixels = nn.Parameter(seeded_randn((3, size, size), seeds) * sd)

    def forward(self) -> torch.Tensor:
        return torch.sigmoid(self.pixels)


def decorrelate_colors(t: torch.Tensor, matrix: torch.Tensor) -> torch.Tensor:
    """Map decorrelated colour channels back to RGB (B, 3, H, W) with *matrix* (COLOR_DECORRELATION)."""
    return torch.einsum("bchw,dc->bdhw", t, matrix)


class FourierImage(nn.Module):
    """Fourier coefficients scaled by 1/f, with ImageNet colour decorrelation (the Lucid/Distill recipe).

    *size* is the side of a square image or (height, width). :meth:`from_images` starts from given pictures
    instead of noise (feature accentuation starts from a painting).
    """

    def __init__(self, seeds: Sequence[int], size: int | tuple[int, int], sd: float = 0.01,
                 decay_power: float = 1.0):
        super().__init__()
        self.shape = (size, size) if isinstance(size, int) else (int(size[0]), int(size[1]))
        self.size = max(self.shape)
        freqs = rfft2d_freqs(*self.shape)
        scale = 1.0 / torch.clamp(freqs, min=1.0 / self.size) ** decay_power
        self.register_buffer("scale", scale[None, None, :, :, None])
        self.register_buffer("colors", COLOR_DECORRELATION.clone())
        self.spectrum = nn.Parameter(seeded_randn((3, *freqs.shape, 2), seeds) * sd)

    @classmethod
    def from_images(cls, images: torch.Tensor, decay_power: float = 1.0) -> FourierImage:
        """The parameterization whose output is *images* ((B, 3, H, W) in [0, 1]; 0 and 1 are clamped to
        ``SATURATION`` inside): the sigmoid and the colour decorrelation undone, a real FFT, divided by the
        spectrum's 1/f scale. Its forward pass gives *images* back to float precision."""
        b, _, h, w = images.shape
        image = cls([0] * b, (h, w), sd=0.0, decay_power=decay_power).to(images.device)
        logits = torch.logit(images.float().clamp(SATURATION, 1 - SATURATION))
        decorrelated = torch.einsum("bdhw,cd->bchw", logits, torch.linalg.inv(image.colors))
        spectrum = torch.fft.rfft2(decorrelated * 4.0, norm="ortho")
        with torch.no_grad():
            image.spectrum.copy_(torch.view_as_real(spectrum) / image.scale)
        return image

    def forward(self) -> torch.Tensor:
        spectrum = torch.view_as_complex((self.scale * self.spectrum).contiguous())
        image = torch.fft.irfft2(spectrum, s=self.shape, norm="ortho") / 4.0
        return torch.sigmoid(decorrelate_colors(image, self.colors))


class PhaseImage(nn.Module):
    """MACO: only the Fourier phase is optimised; the magnitude is a fixed natural-image spectrum.

    *magnitude* is a (3, size, size//2+1) amplitude spectrum in decorrelated colour space (see
    :mod:`imagemachines.vis.spectrum`). Each channel is standardised, decorrelated to RGB and squashed into
    [0, 1], so only the arrangement of structure (the phase) is free.
    """

    def __init__(self, seeds: Sequence[int], magnitude: torch.Tensor):
        super().__init__()
        self.size = magnitude.shape[-2]
        self.register_buffer("magnitude", magnitude[None].float())
        self.register_buffer("colors", COLOR_DECORRELATION.clone())
        self.phase = nn.Parameter(seeded_randn(magnitude.shape, seeds) * math.pi)

    def forward(self) -> torch.Tensor:
        spectrum = torch.polar(self.magnitude.expand_as(self.phase), self.phase)
        image = torch.fft.irfft2(spectrum, s=(self.size, self.size), norm="ortho")
        image = image - image.mean(dim=(-2, -1), keepdim=True)
        image = image / (image.std(dim=(-2, -1), keepdim=True) + 1e-8)
        return torch.sigmoid(decorrelate_colors(image, self.colors) * 1.5)
