"""Dataset examples of units over a user's own collection: ``imagemachines index`` and ``examples``.

>>> from imagemachines.models import load_model
>>> from imagemachines.index import build_index, open_index, sample_images
>>> model = load_model("mobilenet_v2")
>>> idx = open_index(build_index(model, Path("paintings/images"), Path("paintings-index")))
>>> [(e.rank, idx.image(e.image_id).path, e.value, e.percentile) for e in idx.examples("features.14", 40, k=5)]
>>> idx.stats("features.14", 40)                   # mean, std, min, max, quantiles of the images' maxima
>>> idx.similar("features.18", idx.pooled("features.18")[0], k=5, exclude=0)
>>> sample = sample_images(Path("paintings/images"), 200, seed=0)     # every class folder in proportion
>>> build_index(model, Path("paintings/images"), Path("sample-index"), images=sample)

Layout on disk and guarantees (incremental, resumable, exact shard merge): :mod:`imagemachines.index.store`,
:mod:`imagemachines.index.build`. Activation maps and heat overlays: :mod:`imagemachines.index.maps`.
"""

from __future__ import annotations

from imagemachines.lazy import lazy_exports

_EXPORTS = {
    "build_index": "build", "choose_layers": "build", "default_layers": "build", "default_out": "build",
    "CollectionIndex": "query", "open_index": "query",
    "Example": "records", "ImageInfo": "records", "UnitStats": "records",
    "sample_images": "sampling",
}
__all__ = sorted(_EXPORTS)

__getattr__ = lazy_exports(__name__, _EXPORTS, globals())
