"""What a network has learned about each class: concepts found in crops of the user's own paintings.

>>> from imagemachines.models import load_model
>>> from imagemachines.concepts import discover
>>> model = load_model("runs/paintings")
>>> study = discover(model, "paintings/images", "portrait,landscape")   # shows itself in Jupyter
>>> [(k.rank, k.sobol, k.ablation) for k in study["portrait"].concepts[:3]]
>>> study.save("out/concepts")                       # concepts.html, concepts.json, concepts.safetensors

Method (CRAFT, Fel et al. 2023): crops → activations at a layer → non-negative factorisation into concepts →
importance by total Sobol indices through the rest of the network, beside the plain ablation effect → concept maps,
renders, and faithfulness curves that show whether the concepts matter. ``imagemachines concepts`` is the command.
"""

from __future__ import annotations

from imagemachines.lazy import lazy_exports

_EXPORTS = {
    "Settings": "discovery", "discover": "discovery", "parse_classes": "discovery",
    "ClassConcepts": "result", "Concept": "result", "ConceptStudy": "result",
    "Collection": "selection", "open_collection": "selection",
    "CropGrid": "crops", "ActivationCache": "cache", "concept_layer": "layer",
    "read_study": "store",
}
__all__ = sorted(_EXPORTS)

__getattr__ = lazy_exports(__name__, _EXPORTS, globals())
