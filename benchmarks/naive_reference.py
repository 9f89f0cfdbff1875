"""The common way feature visualizations are rendered (Lucent-style), kept as the benchmark's baseline.

Whole network forward every step (a hook picks the target layer), one unit per run, one random transform
chain per step applied with torchvision ops to the single image, Fourier parameterization with colour
decorrelation (the same as the engine's), Adam lr 0.05, 512 steps, 128 px upsampled to 224.
"""

from __future__ import annotations

import torch
import torchvision.transforms.v2.functional as TF

from imagemachines.models import LOGITS, LoadedModel
from imagemachines.vis.param import FourierImage


def _transform(img: torch.Tensor, g: torch.Generator) -> torch.Tensor:
    """Lucid's standard transforms, one step, one image: pad 12, jitter 8, scale, rotate ±10°, jitter 4."""
    def rint(lo, hi):
        return int(torch.randint(lo, hi + 1, (1,), generator=g))

    img = TF.pad(img, [12], fill=0.5)
    for jitter in (8,):
        dx, dy = rint(0, 2 * jitter), rint(0, 2 * jitter)
        img = img[..., dy : img.shape[-2] - 2 * jitter + dy, dx : img.shape[-1] - 2 * jitter + dx]
    scale = [1 + (i - 5) / 50 for i in range(11)][rint(0, 10)]
    side = max(8, round(img.shape[-1] * scale))
    img = TF.resize(img, [side, side], antialias=False)
    img = TF.rotate(img, float(rint(-10, 10)), interpolation=TF.InterpolationMode.BILINEAR)
    dx, dy = rint(0, 8), rint(0, 8)
    return img[..., dy : img.shape[-2] - 8 + dy, dx : img.shape[-1] - 8 + dx]


def naive_render(model: LoadedModel, layer: str, channel: int, *, steps: int = 512, size: int = 128,
                 input_size: int = 224, seed: int = 0, on_step=None) -> torch.Tensor:
    """Render one unit the naive way; returns the final (3, size, size) image in [0, 1]."""
    torch.manual_seed(seed)
    g = torch.Generator().manual_seed(seed)
    image = FourierImage([seed], size)
    opt = torch.optim.Adam(image.parameters(), lr=0.05)
    captured = {}
    hook = None
    if layer != LOGITS:
        module = dict(model.module.named_modules())[layer]
        hook = module.register_forward_hook(lambda _m, _i, out: captured.__setitem__("a", out))
    try:
        for step in range(steps):
            opt.zero_grad()
            x = _transform(image(), g)
            x = TF.resize(x, [input_size, input_size], antialias=False)
            out = model.module(model.normalize(x))
            acts = out if layer == LOGITS else captured["a"]
            loss = -(acts[0, channel].mean())
            loss.backward()
            opt.step()
            if on_step is not None:
                on_step(step + 1)
    finally:
        if hook is not None:
            hook.remove()
    return image().detach()[0]
