"""Reverse lookup: the units of a layer that one painting drives most, and the collection's closest paintings.

A unit's value for a painting is the maximum of its activation map taken as the index takes it (its ranking:
over the interior of the map by default, :mod:`imagemachines.index.peaks`), so a painting and the collection are
on one scale: with an index, each unit also gets its percentile among the
collection's maxima, and the painting's spatially pooled activation (the mean, as indexed) finds its nearest
neighbours by cosine similarity.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING

import numpy as np
import torch
from PIL import Image

from imagemachines.attribution.inputs import model_input, spatial_layer
from imagemachines.errors import UserError
from imagemachines.index.peaks import DEFAULT_RANKING, LEGACY_RANKING, network_input, painting_cells, peaks
from imagemachines.models.loaded import LoadedModel

if TYPE_CHECKING:
    from imagemachines.index import CollectionIndex


@dataclass(frozen=True)
class UnitHit:
    """Unit *channel* of *layer*: its spatial maximum on the painting, the map cell of that maximum, (with an
    index) the percentile of that value among the collection's maxima of the unit (0 … 100), and its mean."""

    layer: str
    channel: int
    value: float
    percentile: float | None = None
    cell: tuple[int, int] = (0, 0)
    mean: float | None = None  # the map's spatial mean: how much of the painting drives the unit

    def as_dict(self) -> dict:
        return asdict(self) | {"cell": list(self.cell)}


@dataclass
class Explanation:
    """What one painting does to one layer: its strongest units, ranked by raw value and (with an index) by
    their percentile in the collection, their activation maps, and the most similar paintings of the index."""

    model: str
    weights_id: str
    layer: str
    units: list[UnitHit]
    by_percentile: list[UnitHit] = field(default_factory=list)
    similar: list[tuple[int, float]] = field(default_factory=list)
    maps: dict[int, np.ndarray] = field(default_factory=dict, repr=False)  # channel → (h, w) activation map
    pooled: np.ndarray | None = field(default=None, repr=False)  # [channels] spatial means
    index: str | None = None  # the index directory, when one was used

    def hits(self) -> list[UnitHit]:
        """Every unit shown: the top by value, then those only the percentile ranking adds."""
        seen = {h.channel for h in self.units}
        return self.units + [h for h in self.by_percentile if h.channel not in seen]

    def to_json(self) -> dict:
        return {"model": self.model, "weights_id": self.weights_id, "layer": self.layer, "index": self.index,
                "units": [h.as_dict() for h in self.units],
                "by_percentile": [h.as_dict() for h in self.by_percentile],
                "similar": [{"image_id": int(i), "score": float(s)} for i, s in self.similar]}


def check_index_model(index: CollectionIndex, model: LoadedModel) -> None:
    """Refuse an index made with another network or other weights: its percentiles would mean nothing here."""
    if index.weights_id != model.weights_id:
        raise UserError(f"The index in {index.path} was made with {index.model_name!r} (weights "
                        f"{index.weights_id}), not with {model.name!r} (weights {model.weights_id}). Give the "
                        "index's own model, or index the collection with this one (`imagemachines index`).")


def lookup_layer(model: LoadedModel, layer: str | None, index: CollectionIndex | None) -> str:
    """The layer to look up: *layer* as given (and indexed, with an index), else the deepest block with a map
    (with an index: the deepest indexed one)."""
    if layer is not None:
        model.layer(layer)
        if index is not None:
            index.check_layer(layer)
        return layer
    if index is None:
        return spatial_layer(model)
    infos = {info.name: info for info in model.layers(all=True)}
    indexed = [name for name in index.layers if name in infos and infos[name].height * infos[name].width > 1]
    if not indexed:
        raise UserError(f"The index in {index.path} has no convolutional layer of {model.name!r} "
                        f"(it has {', '.join(index.layers)}): give --layer, or index a block.")
    preferred = spatial_layer(model)
    return preferred if preferred in indexed else max(indexed, key=list(infos).index)


def layer_activations(model: LoadedModel, image: Image.Image, layer: str, ranking: str = LEGACY_RANKING
                      ) -> torch.Tensor:
    """The painting's activations at *layer*: [channels, h, w] (1×1 maps for vector layers), on the CPU, over the
    cells that cover the painting under *ranking*."""
    x = network_input(model.normalize(model_input(model, image)), ranking)
    info = model.layer(layer)
    with torch.inference_mode():
        a = painting_cells(model.tap([layer])(x)[layer], ranking, (info.height, info.width))[0].float()
    return (a[:, None, None] if a.ndim == 1 else a).cpu()


def explain_image(model: LoadedModel, image: Image.Image, *, layer: str | None = None,
                  index: CollectionIndex | None = None, k: int = 12, similar: int = 12,
                  exclude: int | None = None) -> Explanation:
    """The *k* units of *layer* that *image* drives most, with their maps; with *index*, also the *k* with the
    highest percentile in the collection and the *similar* closest paintings (*exclude*: an image id to leave
    out, e.g. the painting itself when it is in the collection)."""
    if k < 1:
        raise UserError("k must be at least 1.")
    if similar < 0:
        raise UserError("The number of similar paintings cannot be negative.")
    if index is not None:
        check_index_model(index, model)
    layer = lookup_layer(model, layer, index)
    ranking = index.ranking if index is not None else DEFAULT_RANKING
    acts = layer_activations(model, image, layer, ranking)
    channels, _h, w = acts.shape
    found = peaks(acts[None], ranking)
    maxima, cells = found.value[0], found.cell[0]
    pooled = acts.flatten(1).mean(dim=1).numpy()
    k = min(k, channels)

    def hit(c: int, percentile: float | None) -> UnitHit:
        cell = int(cells[c])
        return UnitHit(layer, c, float(maxima[c]), percentile, (cell // w, cell % w), float(pooled[c]))

    percentiles: np.ndarray | None = None
    by_percentile: list[UnitHit] = []
    found: list[tuple[int, float]] = []
    if index is not None:
        if index.channels(layer) != channels:
            raise UserError(f"Layer {layer!r} has {channels} units here but {index.channels(layer)} in the index "
                            f"{index.path}: it was made with another network.")
        percentiles = np.array([index.percentile(layer, c, float(maxima[c])) for c in range(channels)])
        # ties (at or above the collection's maximum: 100) broken by the value's distance from the unit's mean
        # over the collection, in standard deviations
        stats = [index.stats(layer, c) for c in range(channels)]
        z = (maxima.numpy() - np.array([s.mean for s in stats])) / np.array([max(s.std, 1e-12) for s in stats])
        order = np.lexsort((-z, -percentiles))[:k]
        by_percentile = [hit(int(c), float(percentiles[c])) for c in order]
        if similar and index.pooled(layer) is not None:
            found = index.similar(layer, pooled, k=similar, exclude=exclude)
    # ties (units that saturate, e.g. ReLU6 at 6) broken by how much of the painting drives the unit (its mean)
    top = np.lexsort((-pooled, -maxima.numpy()))[:k].tolist()
    units = [hit(c, None if percentiles is None else float(percentiles[c])) for c in top]
    explanation = Explanation(model.name, model.weights_id, layer, units, by_percentile, found, pooled=pooled,
                              index=None if index is None else str(index.path))
    explanation.maps = {h.channel: acts[h.channel].numpy() for h in explanation.hits()}
    return explanation
