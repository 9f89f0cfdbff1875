"""What to explain: a class by name or number, a unit as ``LAYER:CHANNEL``; and their maps on one painting."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch
from PIL import Image

from imagemachines.attribution import attribute_low, check_method, check_target
from imagemachines.attribution.inputs import model_input
from imagemachines.errors import UnknownLayer, UserError, did_you_mean
from imagemachines.models.loaded import LoadedModel
from imagemachines.models.taps import LOGITS


def parse_class(model: LoadedModel, text: str | int) -> int:
    """A class index from a number or a class name (case-insensitive) of *model*; clear errors otherwise."""
    text = str(text).strip()
    if LOGITS not in {info.name for info in model.layers()}:
        raise UserError(f"Model {model.name!r} has no class scores (its output is not a vector of logits): "
                        "explain a unit (--unit LAYER:CHANNEL) instead.")
    if text.isdigit():
        return check_target(model, int(text))
    names = model.class_names or []
    if not names:
        raise UserError(f"Model {model.name!r} has no class names (weights {model.weights_id}); give the class as "
                        f"a number from 0 to {model.layer(LOGITS).channels - 1}.")
    lowered = [n.lower() for n in names]
    if text.lower() not in lowered:
        raise UserError(f"Model {model.name!r} has no class {text!r}.{did_you_mean(text, names)} "
                        "Give a class name or number.")
    return lowered.index(text.lower())


def parse_unit(model: LoadedModel, text: str) -> tuple[str, int]:
    """``LAYER:CHANNEL`` checked against *model*."""
    layer, sep, channel = str(text).strip().rpartition(":")
    if not sep or not layer or not channel.isdigit():
        raise UserError(f"Cannot read unit {text!r}: write LAYER:CHANNEL, e.g. features.14:40.")
    if layer == LOGITS:
        raise UnknownLayer("A class is explained with --class (an attribution map), not with --unit logits:N.")
    model.check_channel(layer, int(channel))
    return layer, int(channel)


@dataclass
class ClassMaps:
    """Attribution maps of one class on one painting, and the painting's score for it."""

    target: int
    name: str | None
    logit: float
    probability: float
    rank: int  # 1 = the model's top class for this painting
    maps: dict[str, np.ndarray] = field(default_factory=dict, repr=False)  # method → map in [0, 1]

    def as_dict(self) -> dict:
        return {"class": self.target, "name": self.name, "logit": self.logit, "probability": self.probability,
                "rank": self.rank}


def class_maps(model: LoadedModel, image: Image.Image, target: int, methods: list[str], *,
               layer: str | None = None, steps: int | None = None, baseline: str = "black") -> ClassMaps:
    """Every map of *methods* for class *target* on *image*, with the class's logit, probability and rank."""
    target = check_target(model, target)
    methods = [check_method(m) for m in methods]
    with torch.inference_mode():
        logits = model.module(model.normalize(model_input(model, image)))[0].float().cpu()
    probs = logits.softmax(0)
    rank = int((logits > logits[target]).sum()) + 1
    names = model.class_names or []
    result = ClassMaps(target, names[target] if target < len(names) else None, float(logits[target]),
                       float(probs[target]), rank)
    for method in methods:
        result.maps[method] = attribute_low(model, image, target, method=method,
                                            layer=None if method == "ig" else layer, steps=steps, baseline=baseline)
    return result


def unit_map(model: LoadedModel, image: Image.Image, layer: str, channel: int, ranking: str = "full") -> np.ndarray:
    """The activation map (h, w) of unit *channel* of *layer* over *image* (the index's own maps, for an index's
    *ranking*)."""
    from imagemachines.index.maps import activation_maps

    return activation_maps(model, [image], layer, [channel], ranking=ranking)[0, 0]
