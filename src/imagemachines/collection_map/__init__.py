"""The collection as a map: a 2-D layout of an index's paintings by what the network sees, its clusters, and
what sets a group of paintings apart (``imagemachines map``, the interface's Map view, ``map.html``).

>>> from imagemachines.index import open_index
>>> from imagemachines.collection_map import build_map, open_map, standardize
>>> idx = open_index("paintings-index")
>>> build_map(idx)                                # INDEX/maps/features.18/: layout, clusters and their labels
>>> m = open_map(idx)                             # aligned with the index's current rows
>>> m.xy[:3], m.clusters[0]["text"]

Contrasts (:mod:`imagemachines.collection_map.contrast`): Cohen's d per unit with a permutation max-T p-value.
"""

from __future__ import annotations

from imagemachines.lazy import lazy_exports

_EXPORTS = {
    "build_map": "build", "MapResult": "build",
    "LayoutParams": "layout",
    "open_map": "view", "MapView": "view",
    "standardize": "contrast", "Contrast": "contrast", "UnitContrast": "contrast",
    "source_for": "vectors", "PooledSource": "vectors",
}
__all__ = sorted(_EXPORTS)

__getattr__ = lazy_exports(__name__, _EXPORTS, globals())
