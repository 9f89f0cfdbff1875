"""Where a map's points come from: one vector per indexed painting, from a named source.

- :class:`PooledSource`: the pooled (spatially averaged) activations of one indexed layer; its name is the
  layer's name (``features.18``).
- :class:`ModeSource` (``imagemachines map --mode style``): the rows of a similarity mode of the index (content,
  style, composition, or a weighted mix; :mod:`imagemachines.index.similarity_vectors`), so the map places the
  paintings as ``similar`` compares them; its name is ``mode:style`` (a mix: ``mode:content@0.5_style@0.5``).

Either way the map's groups are explained by the units of one layer (``layer``: its pooled activations feed the
contrasts and the cluster labels), so the rest of the map (layout, clusters, contrast, pages) is the same.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

from imagemachines.errors import UserError
from imagemachines.models.taps import LOGITS


@dataclass(frozen=True)
class PooledSource:
    """The pooled activations of *layer*: [n_images, channels], row = image id."""

    layer: str

    @property
    def name(self) -> str:
        return self.layer

    @property
    def description(self) -> str:
        return f"pooled activations of {self.layer}"

    def vectors(self, index) -> np.ndarray:
        index.check_layer(self.layer)
        data = index.pooled(self.layer)
        if data is None:
            raise UserError(f"The index in {index.path} was built with --no-pooled; a map needs every painting's "
                            "pooled activations. Build it again without --no-pooled.")
        return data


def deepest_pooled_layer(index) -> str:
    """The index's deepest layer with a spatial map (the logits and 1×1 layers only when there is nothing else)."""
    shapes = index.manifest.get("layer_shapes", {})
    spatial = [name for name in index.layers if name != LOGITS and int(shapes.get(name, [0, 1, 1])[1]) > 1]
    pool = spatial or [name for name in index.layers if name != LOGITS] or list(index.layers)
    return pool[-1]


_NAME = re.compile(r"^[A-Za-z0-9_.:@-]{1,200}$")


@dataclass(frozen=True)
class ModeSource:
    """The rows of similarity mode(s) *weights* ({mode: weight}, summing to 1); groups explained by *layer*.

    A mix's vector joins each mode's unit-length row times the square root of its weight, so the cosine of two
    such vectors is the weighted sum of the modes' cosines: the score ``similar`` ranks by."""

    weights: tuple[tuple[str, float], ...]
    layer: str

    @property
    def mode(self) -> str:
        """The mode as ``--mode`` takes it (``style``; ``content:0.5,style:0.5``)."""
        if len(self.weights) == 1:
            return self.weights[0][0]
        return ",".join(f"{m}:{w:g}" for m, w in self.weights)

    @property
    def name(self) -> str:
        if len(self.weights) == 1:
            return f"mode:{self.weights[0][0]}"
        return "mode:" + "_".join(f"{m}@{w:g}" for m, w in self.weights)

    @property
    def description(self) -> str:
        return f"similarity mode {self.mode}; groups explained by the units of {self.layer}"

    def vectors(self, index) -> np.ndarray:
        store = index.similarity()
        if len(self.weights) == 1:
            return store.rows(self.weights[0][0])
        parts = [np.sqrt(w) * np.asarray(store.rows(m), dtype=np.float32) for m, w in self.weights]
        return np.concatenate(parts, axis=1)


def source_for(index, layer: str | None = None, mode: str | None = None) -> PooledSource | ModeSource:
    """The source of a map of *index*: *layer*'s pooled activations (default: :func:`deepest_pooled_layer`), or
    with *mode* the index's similarity rows of that mode (a name or a mix), explained by *layer*'s units."""
    from imagemachines.index.similarity_vectors import parse_mode

    name = layer or deepest_pooled_layer(index)
    if not _NAME.match(name):
        raise UserError(f"{name[:80]!r} is not a layer name.")
    index.check_layer(name)
    if mode is None:
        return PooledSource(name)
    weights = parse_mode(mode)
    index.similarity()  # an index made before the modes: says how to add them
    return ModeSource(tuple(weights.items()), name)
