"""The render engine: feature visualization split as parameterization / transforms / objectives / render.

>>> from imagemachines.models import load_model
>>> from imagemachines.vis import Unit, render, save_render
>>> model = load_model("mobilenet_v2")
>>> [r] = render(model, Unit("features.14", 40))
>>> save_render(r, Path("out/features-14_40.png"))
"""

from imagemachines.vis.io import contact_sheet, read_recipe, save_render
from imagemachines.vis.objectives import (
    Channel,
    ClassLogit,
    Direction,
    Diversity,
    Neuron,
    Objective,
    PerImage,
)
from imagemachines.vis.progress import Progress, RenderCancelled
from imagemachines.vis.recipes import METHODS, method_defaults
from imagemachines.vis.render import Render, render, score
from imagemachines.vis.units import Unit, parse_channels

__all__ = [
    "METHODS", "Channel", "ClassLogit", "Direction", "Diversity", "Neuron", "Objective", "PerImage", "Progress",
    "Render", "RenderCancelled", "Unit", "contact_sheet", "method_defaults", "parse_channels", "read_recipe",
    "render", "save_render", "score",
]
