"""Magnitude spectra for MACO: a built-in natural-image model, or one measured on a folder of images.

MACO fixes the Fourier magnitude of the image to that of natural images and optimises only the phase. The
built-in spectrum is the classic natural-image law, amplitude ∝ 1/f^α with α = 1 (Field 1987; van der Schaaf &
van Hateren 1996), in Lucid's decorrelated colour space, so nothing is downloaded. ``measure_spectrum`` averages
the spectra of real images (e.g. downloaded paintings) instead: a painting-statistics prior.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import torch

from imagemachines.errors import UserError
from imagemachines.vis.param import COLOR_DECORRELATION, rfft2d_freqs


def natural_spectrum(size: int, alpha: float = 1.0) -> torch.Tensor:
    """(3, size, size//2+1) amplitude spectrum ∝ 1/f^alpha, the DC term zeroed (images are standardised)."""
    f = rfft2d_freqs(size, size)
    amp = 1.0 / torch.clamp(f, min=1.0 / size) ** alpha
    amp[0, 0] = 0.0
    return amp.expand(3, -1, -1).clone()


def measure_spectrum(images: Iterable[torch.Tensor], size: int) -> torch.Tensor:
    """Mean amplitude spectrum of RGB images in [0, 1] (each (3, H, W)), in decorrelated colour space."""
    from imagemachines.vis.transforms import resize

    inverse = torch.linalg.inv(COLOR_DECORRELATION)
    total, n = None, 0
    for img in images:
        x = resize(img[None].float(), size)[0]
        x = torch.einsum("chw,dc->dhw", x - x.mean(dim=(1, 2), keepdim=True), inverse)
        amp = torch.fft.rfft2(x, norm="ortho").abs()
        total = amp if total is None else total + amp
        n += 1
    if not n:
        raise UserError("No images to measure a spectrum from: give a folder with JPEG or PNG files.")
    spec = total / n
    spec[:, 0, 0] = 0.0
    return spec


def load_spectrum(source: str, size: int) -> torch.Tensor:
    """'natural' or a file written by :func:`save_spectrum`, resized to *size*."""
    if source == "natural":
        return natural_spectrum(size)
    path = Path(source).expanduser()
    if not path.is_file():
        raise UserError(f"Spectrum file {source!r} not found: use 'natural' or a file made by save_spectrum.")
    from safetensors.torch import load_file

    spec = load_file(str(path))["magnitude"]
    if spec.shape != (3, size, size // 2 + 1):
        full = torch.fft.irfft2(spec.to(torch.complex64), norm="ortho")  # back to a "typical image" to resize
        from imagemachines.vis.transforms import resize

        spec = torch.fft.rfft2(resize(full[None], size)[0], norm="ortho").abs()
    return spec


def save_spectrum(magnitude: torch.Tensor, path: Path) -> Path:
    """Store a measured spectrum as safetensors (no pickle)."""
    from safetensors.torch import save_file

    save_file({"magnitude": magnitude.contiguous()}, str(path))
    return path
