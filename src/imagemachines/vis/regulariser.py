"""The terms that keep an accentuation close to its painting, in the network's own terms.

Feature accentuation (Hamblin et al. 2024) maximises ``f(x) - λ·D(x)``: the objective *f* and the distance *D*
between the activations of the image and of the painting at one intermediate layer (the mean over positions of
the L2 distance across channels). The painting is seen through the same random transforms as the image at every
step, so *D* compares like with like and is zero exactly at the painting. *λ* is ``strength × β``, where *β*
weighs the two terms against each other automatically: the ratio of their gradients' sizes just off the painting
(see :func:`balance`), so strength 1 means "the regulariser pulls back as hard as the objective pushes" for any
unit, layer or model.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import nn

from imagemachines.models.loaded import LoadedModel
from imagemachines.models.taps import LOGITS
from imagemachines.vis.objectives import Objective, _spatial
from imagemachines.vis.transforms import RandomAffine

SOFTNESS = 0.01  # the distance is quadratic within 1 % of the painting's activation norm (see PaintingDistance)
BALANCE_PUSH = 0.1  # L2 length, in parameter space, of the probe step off the painting (an Adam step is ~8):
# β changes by under 3 % between 0.001 and 0.1 (by 9 % at 1, 65 % at 10: no longer "just off the painting")


def default_reg_layer(model: LoadedModel) -> str:
    """The regulariser's layer when none is given: the last top-level block at stride 8, whose output side is
    more than a twelfth of the input's (MobileNetV2 ``features.6``, ResNet-50 ``layer2.3``, InceptionV3 ``Mixed_5d``,
    VGG16 ``features.22``, GoogLeNet ``inception3b``): deep enough to describe parts and textures, shallow enough
    to keep the painting's layout. Hamblin et al. used InceptionV1's ``mixed3a``, at the same resolution. A model
    without a block that fine takes its middle block."""
    blocks = [info for info in model.layers() if info.name != LOGITS and info.height * info.width > 1]
    blocks = [b for b in blocks if not any(o.name.startswith(b.name + ".") for o in blocks)]  # a block, not its stage
    if not blocks:
        return model.layers()[0].name
    fine = [b for b in blocks if model.input_size / min(b.height, b.width) < 12]
    return fine[-1].name if fine else blocks[len(blocks) // 2].name


class PaintingReference:
    """The painting's activations at *layer*, seen through each image's transforms of the current step.

    Use :meth:`augment` as the loop's augmentation: it transforms the images and, without gradients, the painting
    with the same draws (one forward pass per distinct seed, up to *layer* only), for :class:`PaintingDistance`.
    """

    def __init__(self, forward: Callable[[torch.Tensor], dict[str, torch.Tensor]], layer: str,
                 painting: torch.Tensor, affine: RandomAffine, seeds: Sequence[int], make_affine):
        self.forward, self.layer, self.painting, self.affine = forward, layer, painting, affine
        distinct = list(dict.fromkeys(int(s) for s in seeds))
        self.rows = torch.tensor([distinct.index(int(s)) for s in seeds], device=painting.device)
        self.painting_affine = make_affine(distinct)  # the same draws: each image's transforms depend on its seed
        self.n_distinct = len(distinct)
        self.current: torch.Tensor | None = None

    def augment(self, images: torch.Tensor, step: int) -> torch.Tensor:
        with torch.no_grad():
            seen = self.painting_affine(self.painting.expand(self.n_distinct, -1, -1, -1), step)
            seen = seen.contiguous(memory_format=torch.channels_last)
            self.current = self.forward(seen)[self.layer].float()[self.rows]
        return self.affine(images, step)


class PaintingDistance(Objective):
    """Per image: the mean over positions of the L2 distance (across channels) from the painting's activations.

    Within *softness* × the painting's mean activation norm the distance is smoothed into a quadratic (a
    pseudo-Huber: ``sqrt(d² + ε²) - ε``), so at the painting itself its gradient is zero rather than a random
    direction of rounding noise, and Adam can settle there when the strength is high.
    """

    def __init__(self, layer: str, reference: PaintingReference, softness: float = SOFTNESS):
        self.layer, self.reference, self.softness = layer, reference, softness
        self.layers = (layer,)

    def __call__(self, acts):
        return self.distance(acts, self.softness)

    def distance(self, acts, softness: float) -> torch.Tensor:
        a = _spatial(acts[self.layer]).float()
        r = _spatial(self.reference.current)
        eps = softness * r.square().sum(dim=1).sqrt().mean(dim=(-2, -1)).view(-1, 1, 1) + 1e-12
        return ((a - r).square().sum(dim=1) + eps.square()).sqrt().sub(eps).mean(dim=(-2, -1))


class Penalised(Objective):
    """``objective - weights * distance``, one weight per image; remembers the objective's last values (the
    progress reports show those, not the penalised sum)."""

    def __init__(self, objective: Objective, distance: Objective, weights: torch.Tensor):
        self.objective, self.distance, self.weights = objective, distance, weights
        self.layers = tuple(dict.fromkeys(objective.layers + distance.layers))
        self.last: torch.Tensor | None = None

    def __call__(self, acts):
        value = self.objective(acts)
        self.last = value.detach()
        return value - self.weights.to(value.device, value.dtype) * self.distance(acts).to(value.dtype)


def balance(image: nn.Module, forward, augment, objective: Objective, distance: PaintingDistance,
            push: float = BALANCE_PUSH) -> torch.Tensor:
    """β per image: the L1 size of the objective's gradient over that of the distance's, both with respect to
    the image's parameters, like Hamblin et al.'s automatic weighting.

    At the painting itself the distance has no direction (it is zero there), so its gradient is taken one small
    probe step off it, in the direction the objective pulls: the resistance the objective meets first. The
    parameters are restored afterwards; step 0's transforms are used for both.
    """
    (params,) = [p for p in image.parameters() if p.requires_grad]
    (g_obj,) = torch.autograd.grad(objective(forward(augment(image(), 0))).sum(), params)
    start = params.detach().clone()
    with torch.no_grad():
        length = g_obj.flatten(1).norm(dim=1).clamp_min(1e-30).view(-1, *([1] * (params.dim() - 1)))
        params.add_(push * g_obj / length)
    try:
        plain = distance.distance(forward(augment(image(), 0)), softness=0.0)  # its linear regime
        (g_dist,) = torch.autograd.grad(plain.sum(), params)
    finally:
        with torch.no_grad():
            params.copy_(start)
    return g_obj.abs().flatten(1).sum(dim=1) / g_dist.abs().flatten(1).sum(dim=1).clamp_min(1e-30)
