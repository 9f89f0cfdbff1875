"""Check a render request against the served models and the limits; fill in the method's defaults."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from imagemachines.errors import UnitOutOfRange, UnknownModel, UserError, did_you_mean
from imagemachines.models import LOGITS, LoadedModel
from imagemachines.models.shapes import ShapeTable
from imagemachines.serve.scheduler import RenderSpec
from imagemachines.serve.schemas import Limits, RenderRequest


@dataclass(frozen=True)
class Catalog:
    """What a server offers: its models (layer tables computed at start-up), methods and limits."""

    models: Mapping[str, LoadedModel]
    methods: Mapping[str, dict]
    limits: Limits
    default_model: str
    shapes: dict[str, ShapeTable] = field(default_factory=dict)  # made at start-up, before the worker runs

    def __post_init__(self) -> None:
        for name, model in self.models.items():
            self.shapes.setdefault(name, ShapeTable(model.module))

    def model(self, name: str) -> LoadedModel:
        if name not in self.models:
            raise UnknownModel(
                f"This server does not serve model {name!r}.{did_you_mean(name, self.models)} "
                f"It serves: {', '.join(self.models)}. Start `imagemachines serve {name}` to serve another."
            )
        return self.models[name]

    def resolve(self, req: RenderRequest) -> RenderSpec:
        """The fully specified render for *req*, or a UserError that says what to change."""
        model = self.model(req.model)
        unit = req.unit_spec()
        info = model.layer(req.layer)
        model.check_channel(req.layer, unit.channel)
        if (unit.x is None) != (unit.y is None):
            raise UserError("A neuron needs both x and y; give both, or neither for the whole channel.")
        if unit.x is not None and req.layer == LOGITS:
            raise UserError("Class logits have no position: drop x and y for the logits layer.")
        if req.method not in self.methods:
            raise UserError(
                f"Unknown method {req.method!r}.{did_you_mean(req.method, self.methods)} "
                f"Choose one of: {', '.join(self.methods)}."
            )
        defaults = self.methods[req.method]
        size = req.size if req.size is not None else int(defaults["size"])
        steps = req.steps if req.steps is not None else int(defaults["steps"])
        self.check_size_steps(size, steps, req.method)
        if unit.x is not None:
            self.check_position(req.model, req.layer, unit.x, unit.y, size, info.width, info.height)
        return RenderSpec(req.model, req.layer, unit.channel, unit.x, unit.y, req.method, size, steps, req.seed)

    def check_position(self, model: str, layer: str, x: int, y: int, size: int, width: int, height: int) -> None:
        """A neuron must lie inside the layer's output *at the render size* (not the model's input size)."""
        grid = self.shapes[model].spatial(layer, size)
        height, width = grid if grid is not None else (height, width)
        if not (x < width and y < height):
            raise UnitOutOfRange(
                f"Neuron ({x}, {y}) is outside layer {layer!r}, whose outputs are {width}×{height} for "
                f"{size}-px images (use x 0..{width - 1}, y 0..{height - 1}, or a larger size)."
            )

    def check_size_steps(self, size: int, steps: int, method: str) -> None:
        lim = self.limits
        if not lim.min_size <= size <= lim.max_size:
            raise UserError(
                f"Size {size} (method {method}) is outside this server's range: ask for {lim.min_size} to "
                f"{lim.max_size} pixels (the server's --max-size raises the limit)."
            )
        if not 1 <= steps <= lim.max_steps:
            raise UserError(
                f"Steps {steps} (method {method}) is outside this server's range: ask for 1 to {lim.max_steps} "
                "(the server's --max-steps raises the limit)."
            )
