"""Which layer concepts are found at: a spatial map, never negative, and a cut of the network.

A non-negative factorisation needs activations that cannot be negative, so the layer's output must come out of
a clipping non-linearity (ReLU, ReLU6, a sigmoid…). A layer whose output comes straight out of a BatchNorm, a
convolution or a residual sum (MobileNetV2's ``features.17``) can be negative: it is refused with that reason and
the nearest layers that would do, rather than silently clipped. Outputs the structure cannot vouch for (a
concatenation of branches, a functional ReLU) are checked on the images themselves
(:func:`check_non_negative`). The rest of the network after the layer must be computable from the layer alone
(:func:`imagemachines.models.tail.network_tail`).
"""

from __future__ import annotations

import torch
from torch import nn

from imagemachines.errors import UnknownLayer, UserError
from imagemachines.models.loaded import LoadedModel
from imagemachines.models.taps import LOGITS

NON_NEGATIVE = (nn.ReLU, nn.ReLU6, nn.Sigmoid, nn.Hardsigmoid, nn.Softmax, nn.Softplus)
SIGNED = (nn.BatchNorm2d, nn.Conv2d, nn.Linear, nn.GroupNorm, nn.LayerNorm, nn.Identity, nn.SiLU, nn.GELU,
          nn.Hardswish, nn.Tanh, nn.LeakyReLU)


class NegativeLayer(UserError):
    """A layer whose activations can be negative: no non-negative factorisation of them."""


def _clips_at_zero(module: nn.Module) -> bool:
    if isinstance(module, nn.Hardtanh):  # ReLU6 is a Hardtanh from 0 to 6
        return module.min_val >= 0
    return isinstance(module, NON_NEGATIVE)


def last_operation(model: LoadedModel, layer: str) -> tuple[str, nn.Module] | None:
    """The innermost module inside *layer* whose output *is* the layer's output (the last to write it, since
    in-place ReLUs hand on the tensor they were given), found in a dry run; None when the output is made by a
    function (a sum, a concatenation, ``F.relu``) rather than by a module."""
    modules = dict(model.module.named_modules())
    target = modules[layer]
    if not any(True for _ in target.children()):
        return layer, target
    fired: list[tuple[str, torch.Tensor]] = []
    handles = [m.register_forward_hook(lambda _m, _i, out, n=name: fired.append((n, out)))
               for name, m in modules.items() if name.startswith(layer + ".") and not any(True for _ in m.children())]
    captured: dict[str, torch.Tensor] = {}
    handles.append(target.register_forward_hook(lambda _m, _i, out: captured.setdefault("out", out)))
    try:
        with torch.no_grad():
            model.tap([layer])(_probe(model, 1))
    finally:
        for h in handles:
            h.remove()
    out = captured.get("out")
    for name, value in reversed(fired):
        if value is out:
            return name, modules[name]
    return None


def _probe(model: LoadedModel, n: int) -> torch.Tensor:
    """*n* seeded noise images in the network's input space (a private generator: no global stream moves)."""
    x = torch.rand(n, 3, model.input_size, model.input_size, generator=torch.Generator().manual_seed(0))
    return model.normalize(x).to(model.device)


def structure_says(model: LoadedModel, layer: str) -> tuple[bool | None, str]:
    """(True, why) when *layer* ends in a clipping non-linearity, (False, why) when its output comes from an
    operation that can give negative values or was negative on noise images, (None, why) when neither shows."""
    last = last_operation(model, layer)
    if last is not None:
        name, module = last
        kind = type(module).__name__
        if _clips_at_zero(module):
            return True, f"{layer!r} ends in {kind} ({name})"
        if isinstance(module, SIGNED):
            return False, f"{layer!r} ends in {kind} ({name}), whose output can be negative"
        why = f"{layer!r} ends in {kind} ({name})"
    else:
        why = f"{layer!r} ends in a function (a sum or a concatenation), not in a module"
    with torch.no_grad():
        low = float(model.tap([layer])(_probe(model, 2))[layer].min())
    if low < 0:
        return False, f"{why}, and its output is negative on noise images (down to {low:.3g})"
    return None, why


def spatial(model: LoadedModel, layer: str) -> bool:
    info = model.layer(layer)
    return layer != LOGITS and info.height * info.width > 1


def _candidates(model: LoadedModel, every: bool = False) -> list[str]:
    """Spatial layers (blocks, or *every* module), deepest first. A container fires right after its last child
    with the same output (``features`` after ``features.18``): the child's name is kept, the container left out."""
    names = [info.name for info in model.layers(all=every) if spatial(model, info.name)]
    kept = [name for i, name in enumerate(names) if not (i and names[i - 1].startswith(name + "."))]
    return kept[::-1]


def suitable(model: LoadedModel, limit: int = 3) -> list[str]:
    """Up to *limit* layers that would do (clipped at zero, a cut of the network), deepest first: blocks, then
    modules inside other blocks (not inside one already named)."""
    from imagemachines.models.tail import NotACut, network_tail

    out: list[str] = []
    for name in [*_candidates(model), *_candidates(model, every=True)]:
        if len(out) >= limit:
            break
        if name in out or any(name.startswith(o + ".") for o in out) or structure_says(model, name)[0] is not True:
            continue
        try:
            network_tail(model, name)
        except NotACut:
            continue
        out.append(name)
    return out


def concept_layer(model: LoadedModel, layer: str | None = None) -> str:
    """*layer* checked (spatial map, non-negative, a cut of the network), or by default the deepest layer that
    has a spatial map before the global pooling and passes the same checks."""
    from imagemachines.models.tail import NotACut, network_tail

    if layer is not None:
        info = model.layer(layer)
        if not spatial(model, layer):
            raise UnknownLayer(
                f"Layer {layer!r} of {model.name!r} has no spatial map ({info.height}×{info.width}): concepts are "
                f"found in crops' feature maps. Use a convolutional layer{_hint(model)}.")
        verdict, why = structure_says(model, layer)
        if verdict is False:
            raise NegativeLayer(f"{why}; a non-negative factorisation needs activations that are never negative. "
                                f"Use a layer that ends in a ReLU{_hint(model)}.")
        network_tail(model, layer)  # NotACut with the reason
        return layer
    for name in _candidates(model):
        if structure_says(model, name)[0] is False:
            continue
        try:
            network_tail(model, name)
        except NotACut:
            continue
        return name
    raise UnknownLayer(f"{model.name!r} has no layer with a non-negative spatial map that the rest of the network "
                       "can be computed from; give one with --layer (`imagemachines layers MODEL`).")


def _hint(model: LoadedModel) -> str:
    names = suitable(model)
    return f", e.g. {', '.join(names)}" if names else ""


def check_non_negative(layer: str, minimum: float) -> None:
    """A clear error when the activations met on the images go below zero (for layers the structure cannot vouch
    for)."""
    if minimum < 0:
        raise NegativeLayer(f"The activations of {layer!r} go down to {minimum:.3g} on these images; a non-negative "
                            "factorisation needs a layer whose output is never negative (one that ends in a ReLU).")
