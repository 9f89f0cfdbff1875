"""Reverse lookup: the units of a layer that one painting drives most, and the collection's closest paintings.

A unit's value for a painting is the maximum of its activation map taken as the index takes it (its ranking:
over the interior of the map by default, :mod:`imagemachines.index.peaks`), so a painting and the collection are
on one scale: with an index, each unit also gets its percentile among the
collection's maxima, and the painting's spatially pooled activation (the mean, as indexed) finds its nearest
neighbours by cosine similarity.

Units are ranked where their values do not saturate: for a block that closes with a bounded activation
(MobileNetV2's ``features.18`` ends in ReLU6, and 1,150 of its 1,280 units reach exactly 6 on some painting of
the shared collection) the values are those of the tap before it (``features.18.1``), by the rule of
:func:`imagemachines.models.clamps.ranking_layer`. Ties that remain are counted and reported (:class:`Tie`).
Similar paintings: with an index that holds the similarity modes (``content``, ``style``, ``composition`` and
mixes, :mod:`imagemachines.index.similarity_vectors`), by *mode*, each with why and with the same painting from
other sources set apart; with an older index, by content in the layer asked for (its pooled activations).
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


@dataclass(frozen=True)
class Tie:
    """*units* units of the layer share one value (*by* "value") or one percentile ("percentile"), *at*;
    *shown* of them are among the units shown, where tie-breakers order them (see :func:`explain_image`)."""

    by: str
    at: float
    units: int
    shown: int

    def as_dict(self) -> dict:
        return asdict(self)


@dataclass
class Explanation:
    """What one painting does to one layer: its strongest units, ranked by raw value and (with an index) by
    their percentile in the collection, their activation maps, and the most similar paintings of the index.

    *layer* is the layer asked for (its units, and the similar paintings); *ranked_at* the layer whose values
    rank them — *layer*, or the tap before its closing saturating activation *clamp* (``"ReLU6"``). *ties*: the
    groups of equal values among the units shown; *note*: why the ranking is not where it should be, if so.
    """

    model: str
    weights_id: str
    layer: str
    units: list[UnitHit]
    by_percentile: list[UnitHit] = field(default_factory=list)
    similar: list[tuple[int, float]] = field(default_factory=list)
    neighbours: list = field(default_factory=list)  # index.neighbours.Neighbour: score per mode, why, copies
    same_painting: list[int] = field(default_factory=list)  # copies of this painting in the collection
    mode: dict[str, float] = field(default_factory=lambda: {"content": 1.0})
    similar_basis: str = ""  # what the similar paintings were compared by: "content at features.18", …
    maps: dict[int, np.ndarray] = field(default_factory=dict, repr=False)  # channel → (h, w) map at ranked_at
    pooled: np.ndarray | None = field(default=None, repr=False)  # [channels] spatial means of *layer*
    index: str | None = None  # the index directory, when one was used
    ranked_at: str = ""
    clamp: str | None = None
    ties: list[Tie] = field(default_factory=list)
    note: str | None = None

    def hits(self) -> list[UnitHit]:
        """Every unit shown: the top by value, then those only the percentile ranking adds."""
        seen = {h.channel for h in self.units}
        return self.units + [h for h in self.by_percentile if h.channel not in seen]

    def to_json(self) -> dict:
        return {"model": self.model, "weights_id": self.weights_id, "layer": self.layer, "index": self.index,
                "ranked_at": self.ranked_at or self.layer, "clamp": self.clamp,
                "ties": [t.as_dict() for t in self.ties], "note": self.note,
                "units": [h.as_dict() for h in self.units],
                "by_percentile": [h.as_dict() for h in self.by_percentile],
                "similar": [n.as_dict() for n in self.neighbours] if self.neighbours else
                [{"image_id": int(i), "score": float(s)} for i, s in self.similar],
                "similar_mode": dict(self.mode), "similar_basis": self.similar_basis,
                "same_painting": list(self.same_painting)}


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
    return activations(model, image, [layer], ranking)[layer]


def activations(model: LoadedModel, image: Image.Image, layers: list[str], ranking: str = LEGACY_RANKING
                ) -> dict[str, torch.Tensor]:
    """The painting's activations at each of *layers* (one pass): [channels, h, w] each, on the CPU, over the
    cells that cover the painting under *ranking* (:func:`~imagemachines.index.peaks.painting_cells`)."""
    names = list(dict.fromkeys(layers))
    x = network_input(model.normalize(model_input(model, image)), ranking)
    with torch.inference_mode():
        out = model.tap(names)(x)
    result = {}
    for name in names:
        a = out[name]
        if ranking == "reflect":
            info = model.layer(name)
            a = painting_cells(a, ranking, (info.height, info.width))
        a = a[0].float()
        result[name] = (a[:, None, None] if a.ndim == 1 else a).cpu()
    return result


def ties(by: str, values: np.ndarray, shown: list[int]) -> list[Tie]:
    """The groups of exactly equal *values* (one per channel) that reach the *shown* channels: how many units of
    the layer share each value, and how many of them are shown."""
    out = []
    for v in dict.fromkeys(float(values[c]) for c in shown):
        units = int(np.count_nonzero(values == v))
        if units > 1:
            out.append(Tie(by, v, units, sum(1 for c in shown if float(values[c]) == v)))
    return out


def explain_image(model: LoadedModel, image: Image.Image, *, layer: str | None = None,
                  index: CollectionIndex | None = None, k: int = 12, similar: int = 12,
                  exclude: int | None = None, mode: str = "content") -> Explanation:
    """The *k* units of *layer* that *image* drives most, with their maps; with *index*, also the *k* with the
    highest percentile in the collection and the *similar* closest paintings by :func:`similar_paintings` (*mode*:
    ``content``, ``style``, ``composition`` or a mix like ``content:0.5,style:0.5``; *exclude*: an image id to
    leave out, e.g. the painting itself when it is in the collection; its copies in the collection go too).

    Values come from :func:`~imagemachines.models.clamps.ranking_layer` (the tap before a closing ReLU6 …), with
    an index only when it holds that tap (else from *layer*, with a note). Ties: by value, the larger mean over
    the painting first; by percentile, the value's distance from the unit's collection mean in standard
    deviations. Ties that remain among the units shown are listed in ``ties``.
    """
    from imagemachines.index.similarity_vectors import parse_mode
    from imagemachines.models.clamps import closing_clamp, ranking_layer

    weights = parse_mode(mode)
    if k < 1:
        raise UserError("k must be at least 1.")
    if similar < 0:
        raise UserError("The number of similar paintings cannot be negative.")
    if index is not None:
        check_index_model(index, model)
    layer = lookup_layer(model, layer, index)
    ranking = index.ranking if index is not None else DEFAULT_RANKING
    ranked, clamp, note = ranking_layer(model, layer), closing_clamp(model, layer), None
    if index is not None and ranked != layer and ranked not in index.layers:
        note = (f"The index has no {ranked} (the values of {layer} before its closing {clamp}), so the units are "
                f"ranked on {layer}, where many reach {clamp}'s bound and tie. Index the collection again "
                f"(`imagemachines index`; the default layers include {ranked}) to rank where values do not "
                "saturate.")
        ranked, clamp = layer, None
    acts = activations(model, image, [ranked, layer], ranking)
    channels, _h, w = acts[ranked].shape
    peak = peaks(acts[ranked][None], ranking)
    maxima, cells = peak.value[0], peak.cell[0]
    means = acts[ranked].flatten(1).mean(dim=1).numpy()
    pooled = acts[layer].flatten(1).mean(dim=1).numpy()
    k = min(k, channels)

    def hit(c: int, percentile: float | None) -> UnitHit:
        cell = int(cells[c])
        return UnitHit(layer, c, float(maxima[c]), percentile, (cell // w, cell % w), float(means[c]))

    percentiles: np.ndarray | None = None
    by_percentile: list[UnitHit] = []
    found = None
    tied: list[Tie] = []
    if index is not None:
        if index.channels(ranked) != channels:
            raise UserError(f"Layer {ranked!r} has {channels} units here but {index.channels(ranked)} in the index "
                            f"{index.path}: it was made with another network.")
        percentiles = np.array([index.percentile(ranked, c, float(maxima[c])) for c in range(channels)])
        stats = [index.stats(ranked, c) for c in range(channels)]
        z = (maxima.numpy() - np.array([s.mean for s in stats])) / np.array([max(s.std, 1e-12) for s in stats])
        order = np.lexsort((-z, -percentiles))[:k]
        by_percentile = [hit(int(c), float(percentiles[c])) for c in order]
        tied += ties("percentile", percentiles, [int(c) for c in order])
        if similar:
            found = _similar(model, image, index, weights, layer, pooled, similar, exclude)
    top = np.lexsort((-means, -maxima.numpy()))[:k].tolist()
    units = [hit(c, None if percentiles is None else float(percentiles[c])) for c in top]
    tied = ties("value", maxima.numpy(), top) + tied
    explanation = Explanation(model.name, model.weights_id, layer, units, by_percentile,
                              [] if found is None else [(n.image_id, n.score) for n in found.neighbours],
                              [] if found is None else found.neighbours,
                              [] if found is None else found.same_painting, weights,
                              "" if found is None else found.basis, pooled=pooled,
                              index=None if index is None else str(index.path), ranked_at=ranked,
                              clamp=clamp if ranked != layer else None, ties=tied, note=note)
    explanation.maps = {h.channel: acts[ranked][h.channel].numpy() for h in explanation.hits()}
    return explanation


def similar_paintings(model: LoadedModel, image: Image.Image, index: CollectionIndex, *, mode: str = "content",
                      layer: str | None = None, k: int = 12, exclude: int | None = None):
    """The *k* paintings of *index* closest to *image* — the same ones :func:`explain_image` finds — as a
    :class:`~imagemachines.index.similarity_store.Found` (neighbours with why and copies, the painting's own
    copies, and ``basis``: what they were compared by).

    With the index's similarity modes: by *mode* (a painting of the collection, *exclude*, by its stored rows;
    any other by its own vectors, computed as the index computes them). An index made before the modes can only
    compare content: the pooled activations of *layer* (or the reverse lookup's default layer)."""
    from imagemachines.index.similarity_vectors import parse_mode

    check_index_model(index, model)
    weights = parse_mode(mode)
    layer = lookup_layer(model, layer, index)
    pooled = None if "similarity" in index.manifest else \
        activations(model, image, [layer], index.ranking)[layer].flatten(1).mean(dim=1).numpy()
    return _similar(model, image, index, weights, layer, pooled, k, exclude)


def _similar(model: LoadedModel, image: Image.Image, index: CollectionIndex, weights: dict[str, float], layer: str,
             pooled: np.ndarray | None, k: int, exclude: int | None):
    from imagemachines.index.neighbours import Neighbour
    from imagemachines.index.similarity_store import Found, painting_vectors

    if "similarity" in index.manifest:
        store = index.similarity()
        query = store.stored_rows(exclude) if exclude is not None else \
            store.query_rows(painting_vectors(model, image, store.spec))
        found = store.search(query, weights, k, exclude=[] if exclude is None else [exclude])
        found.basis = store.basis(weights)
        return found
    if weights != {"content": 1.0}:
        index.similarity()  # an index made before the modes: says how to add them
    if not k or index.pooled(layer) is None:
        return Found(weights, [], [], basis=f"content at {layer}")
    hits = index.similar(layer, pooled, k=k, exclude=exclude)
    return Found(weights, [Neighbour(i, s, {"content": s}) for i, s in hits], [], basis=f"content at {layer}")
