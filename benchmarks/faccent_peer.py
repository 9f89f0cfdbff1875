"""The peer for `bench_accentuate`: faccent 1.0.3 installed into a throwaway folder, never a project dependency.

``install()`` runs ``pip install --target DIR --no-deps`` for faccent 1.0.3 and the imports it needs that the
project does not have (kornia 0.6.12, decorator, einops, imageio), then puts DIR on ``sys.path``. ``faccent`` is
Hamblin et al.'s own package for "Feature Accentuation" (2024). ``faccent_accentuate`` runs its ``render_vis``
as its demo does: a Fourier image initialised from the painting, 16 random box crops + noise per step, the
regulariser at ``accent_reg_layer`` weighted by the gradient ratio at the start (``accent_reg_alpha``), Adam lr
0.05. One change from the demo, in faccent's favour: ``reg_for_img_tr=True`` lets its transparency map (a display
aid) reuse the step's own gradient instead of a second backward pass through the 16 views each step; the image it
optimises is the same.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import nn

from benchmarks.peer_install import install_peer

PACKAGES = ["faccent==1.0.3", "kornia==0.6.12", "decorator==5.1.1", "einops==0.8.1", "imageio==2.37.0"]
MEAN, STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
RANGE = (-2.0, 2.0)  # faccent's default model input range; the wrapper maps it back to ImageNet normalisation


def install(target: Path | None = None) -> Path:
    """Install faccent and its missing imports into *target* (a fresh temporary folder by default)."""
    target = install_peer(PACKAGES, "faccent", ("faccent", "kornia"), target)
    return target


class FaccentInput(nn.Module):
    """A torchvision network that takes faccent's input range ([-2, 2]) and normalises it as ImageNet wants."""

    def __init__(self, net: nn.Module):
        super().__init__()
        self.net = net
        self.register_buffer("mean", torch.tensor(MEAN).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(STD).view(1, 3, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x01 = (x - RANGE[0]) / (RANGE[1] - RANGE[0])
        return self.net((x01 - self.mean) / self.std)


def faccent_layer(layer: str) -> str:
    """faccent's hook name for *layer* of the wrapped network: ``features.16`` -> ``net_features_16``."""
    return "net_" + layer.replace(".", "_")


def faccent_accentuate(net: nn.Module, painting: np.ndarray, layer: str, channel: int, reg_layer: str, *,
                       steps: int, alpha: float = 1.0, seed: int = 0) -> np.ndarray:
    """Accentuate channel *channel* of *layer* in *painting* ((S, S, 3) uint8, square) with faccent's defaults
    (image size S); returns its last image as (S, S, 3) uint8."""
    from faccent import render
    from PIL import Image

    torch.manual_seed(seed)
    np.random.seed(seed)
    size = painting.shape[0]
    wrapped = FaccentInput(net).eval()
    imgs, _, _, _ = render.render_vis(
        wrapped, f"{faccent_layer(layer)}:{channel}", init_img=Image.fromarray(painting),
        img_size=(size, size), model_input_size=(224, 224), model_input_range=RANGE,
        accent_reg_layer=faccent_layer(reg_layer), accent_reg_alpha=alpha,
        out_thresholds=range(steps + 1), inline_thresholds=[], progress=False, reg_for_img_tr=True)
    last = imgs[-1][0].permute(1, 2, 0).clamp(0, 1).numpy()
    return (last * 255).round().astype(np.uint8)
