"""Layers that close with an activation: the tap just before it (the block's pre-activation), found by rule.

A block that ends in an activation bounded above (ReLU6 — MobileNetV2's blocks —, Hardtanh, Hardsigmoid,
Sigmoid, Tanh) *saturates*: many of its units reach exactly the bound on many images, so a ranking by value is
decided by tie-breakers. Its last module before the activation (the BatchNorm or convolution output) has the
same channels — the block's unit *c* is the activation of that module's channel *c* — and its values do not
saturate: rankings use it (:func:`ranking_layer`). A block that ends in ReLU is no problem for rankings (ties
only at 0), but a unit that is off everywhere has no gradient there, so renders use the tap before any closing
ReLU or clamp (``explain``'s ``render_layer``, through :func:`before_closing`).

The rule looks only at the modules (``named_children``, following the last child down), never at model names,
so it holds for every architecture, training runs included.
"""

from __future__ import annotations

from torch import nn

from imagemachines.errors import UnknownLayer
from imagemachines.models.loaded import LoadedModel

SATURATING: tuple[type[nn.Module], ...] = (nn.Hardtanh, nn.Hardsigmoid, nn.Sigmoid, nn.Tanh)  # ReLU6 ⊂ Hardtanh


def before_closing(model: LoadedModel, layer: str, kinds: tuple[type[nn.Module], ...]) -> tuple[str, str] | None:
    """(the module just before *layer*'s closing activation, that activation's type name) when *layer* is a
    container whose last module — following last children down — is one of *kinds*, and the module before that
    activation is a layer of the same channels; else None (a leaf module, an activation itself, or no match)."""
    module = dict(model.module.named_modules()).get(layer)
    name = layer
    while module is not None:
        children = list(module.named_children())
        if not children:
            return None
        last_name, last = children[-1]
        if isinstance(last, kinds):
            if len(children) < 2:
                return None
            inner = f"{name}.{children[-2][0]}"
            try:
                same = model.layer(inner).channels == model.layer(layer).channels
            except UnknownLayer:  # the module before it has no output of its own in the layer table
                return None
            return (inner, type(last).__name__) if same else None
        name, module = f"{name}.{last_name}", last
    return None


def ranking_layer(model: LoadedModel, layer: str) -> str:
    """The layer whose values rank *layer*'s units: the tap before its closing saturating activation (ReLU6 …),
    else *layer* itself."""
    found = before_closing(model, layer, SATURATING)
    return found[0] if found else layer


def closing_clamp(model: LoadedModel, layer: str) -> str | None:
    """The type name of the saturating activation *layer* closes with (``"ReLU6"``), or None."""
    found = before_closing(model, layer, SATURATING)
    return found[1] if found else None
