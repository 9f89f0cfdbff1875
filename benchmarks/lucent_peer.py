"""The peer for `bench_vs_lucent`: Lucent 0.1.8 installed into a throwaway folder, never a project dependency.

``install()`` runs ``pip install --target DIR --no-deps`` for torch-lucent 0.1.8 and what it imports that the
project does not have (kornia 0.6.12, decorator), then puts DIR on ``sys.path``. ``shim()`` restores the two
functions Lucent calls at kornia's top level (``get_rotation_matrix2d``, ``warp_affine``; kornia moved them to
``kornia.geometry.transform``). ``lucent_render`` runs Lucent's defaults: ``render_vis`` with its 128-px
Fourier image, decorrelated colours, standard transforms, upsampling to 224, Adam lr 0.05, 512 steps.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from benchmarks.peer_install import install_peer

PACKAGES = ["torch-lucent==0.1.8", "kornia==0.6.12", "decorator==5.3.1"]


def install(target: Path | None = None) -> Path:
    """Install Lucent and its missing imports into *target* (a fresh temporary folder by default)."""
    target = install_peer(PACKAGES, "lucent", ("torch-lucent", "kornia"), target)
    shim()
    return target


def shim() -> None:
    """Give kornia back the two top-level functions Lucent 0.1.8 calls."""
    import kornia
    from kornia.geometry import transform

    for name in ("get_rotation_matrix2d", "warp_affine"):
        if not hasattr(kornia, name):
            setattr(kornia, name, getattr(transform, name))


def lucent_layer(layer: str) -> str:
    """Lucent's name for a layer: ``features.14`` -> ``features_14``; the logits are ``labels``."""
    return "labels" if layer == "logits" else layer.replace(".", "_")


def lucent_render(net: torch.nn.Module, layer: str, channel: int, steps: int = 512, seed: int = 0) -> np.ndarray:
    """One image with Lucent's defaults: (H, W, 3) uint8 (128 px), as its ``export`` saves it."""
    from lucent.optvis import render

    torch.manual_seed(seed)
    np.random.seed(seed)
    images = render.render_vis(net, f"{lucent_layer(layer)}:{channel}", thresholds=(steps,), show_image=False,
                               progress=False)
    return (images[-1][0] * 255).astype(np.uint8)  # Lucent's export: truncation to uint8
