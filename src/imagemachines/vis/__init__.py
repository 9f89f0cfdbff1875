"""The render engine: feature visualization split as parameterization / transforms / objectives / render.

>>> from imagemachines.models import load_model
>>> from imagemachines.vis import Unit, render, save_render
>>> model = load_model("mobilenet_v2")
>>> [r] = render(model, Unit("features.14", 40))
>>> save_render(r, Path("out/features-14_40.png"))
>>> accentuate(model, "painting.jpg", "features.16:150", strength=[0.5, 1, 2])  # the unit grown in a painting

Names are imported on first use, so ``imagemachines.vis.cli`` (and ``imagemachines --help``) do not pay for
importing torch.
"""

from __future__ import annotations

from imagemachines.lazy import lazy_exports

_EXPORTS = {
    "AccentTarget": "accentuation", "Accentuation": "accentuation", "Accentuations": "accentuation",
    "accentuate": "accentuation",
    "ConceptDirection": "directions", "load_direction": "directions", "save_direction": "directions",
    "contact_sheet": "io", "read_recipe": "io", "save_render": "io",
    "Channel": "objectives", "ClassLogit": "objectives", "Direction": "objectives", "Diversity": "objectives",
    "Neuron": "objectives", "Objective": "objectives", "PerImage": "objectives",
    "Progress": "progress", "RenderCancelled": "progress",
    "METHODS": "recipes", "method_defaults": "recipes",
    "Render": "engine", "render": "engine", "score": "engine",
    "Unit": "units", "parse_channels": "units",
}
__all__ = sorted(_EXPORTS)

__getattr__ = lazy_exports(__name__, _EXPORTS, globals())
