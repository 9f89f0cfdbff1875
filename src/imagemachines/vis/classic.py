"""The 2018 seed's recipe: octave gradient ascent with a median filter (Keras deep-dream style).

Start from grey noise; render 10 octaves, each 1.2× larger, ending at the final size; in each octave take
100 steps of the gradient divided by its mean absolute value, median-filter (5×5) every 4th step except the
last, then add back the detail that shrinking lost; finally stretch each colour channel (autotone).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F

from imagemachines.vis.objectives import Objective
from imagemachines.vis.optimize import autocast
from imagemachines.vis.progress import Monitor
from imagemachines.vis.recipes import ClassicRecipe
from imagemachines.vis.transforms import resize


def octave_sizes(final: int, octaves: int = 10, scale: float = 1.2) -> list[int]:
    """The seed's size ladder, smallest first: final / scale^(octaves-1) … final."""
    return [max(8, round(final / scale**i)) for i in reversed(range(octaves))]


def seeded_noise(seeds: Sequence[int], size: int) -> torch.Tensor:
    """The seed's start image, (128 + 20·U[0,1)) / 255 per pixel, one generator per image."""
    rows = []
    for seed in seeds:
        g = torch.Generator().manual_seed(int(seed) * 1_000_003 + 11)
        rows.append((128 + 20 * torch.rand(3, size, size, generator=g)) / 255)
    return torch.stack(rows)


def median_filter(images: torch.Tensor, k: int = 5) -> torch.Tensor:
    """k×k median per channel (reflect padding), one channel at a time to bound memory."""
    pad = k // 2
    out = torch.empty_like(images)
    for c in range(images.shape[1]):
        x = F.pad(images[:, c : c + 1], (pad, pad, pad, pad), mode="reflect")
        patches = x.unfold(2, k, 1).unfold(3, k, 1)  # (B, 1, H, W, k, k)
        out[:, c : c + 1] = patches.reshape(*patches.shape[:4], k * k).median(dim=-1).values
    return out


def autotone(images: torch.Tensor, clip: float = 0.001) -> torch.Tensor:
    """Stretch each image's colour channels independently so the *clip* tails saturate (Photoshop's autotone)."""
    flat = images.flatten(2).float()
    lo = torch.quantile(flat, clip, dim=2, keepdim=True)
    hi = torch.quantile(flat, 1 - clip, dim=2, keepdim=True)
    out = (flat - lo) / (hi - lo).clamp(min=1e-8)
    return out.clamp(0, 1).view_as(images)


def classic(
    forward: Callable[[torch.Tensor], dict[str, torch.Tensor]],
    objective: Objective,
    seeds: Sequence[int],
    recipe: ClassicRecipe,
    device: torch.device,
    monitor: Monitor,
) -> torch.Tensor:
    """Run the seed's recipe; returns the final (B, 3, size, size) images in [0, 1]."""
    sizes = octave_sizes(recipe.size, recipe.octaves, recipe.octave_scale)
    original = seeded_noise(seeds, recipe.size).to(device)
    shrunk_original = resize(original, sizes[0])
    img = shrunk_original.clone()
    done = 0
    for size in sizes:
        img = resize(img, size)
        for i in range(recipe.steps):
            img.requires_grad_(True)
            x = img.contiguous(memory_format=torch.channels_last)
            with autocast(device):
                values = objective(forward(x))
            (grad,) = torch.autograd.grad(values.sum(), img)
            grad = grad.float()
            grad = grad / (grad.abs().mean(dim=(1, 2, 3), keepdim=True) + 1e-7)
            img = img.detach() + recipe.step_size * grad
            if recipe.median_every and i % recipe.median_every == 0 and i != recipe.steps - 1:
                img = median_filter(img, recipe.median_size)
            done += 1
            monitor(done, values, lambda current=img: autotone(current, recipe.autotone_clip))
        same_size_original = resize(original, size)
        img = img + same_size_original - resize(shrunk_original, size)
        shrunk_original = same_size_original
    return autotone(img.detach(), recipe.autotone_clip)
