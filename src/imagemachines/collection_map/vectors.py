"""Where a map's points come from: one vector per indexed painting, from a named source.

Today the source is the pooled (spatially averaged) activations of one indexed layer; its name is the layer's
name (``features.18``). A later source (a style or composition vector, ``--mode``) adds a class here with its own
name and the rest of the map (layout, clusters, contrast, pages) stays as it is.
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


def source_for(index, layer: str | None = None) -> PooledSource:
    """The source of a map of *index*: *layer*'s pooled activations (default: :func:`deepest_pooled_layer`)."""
    name = layer or deepest_pooled_layer(index)
    if not _NAME.match(name):
        raise UserError(f"{name[:80]!r} is not a layer name.")
    index.check_layer(name)
    return PooledSource(name)
