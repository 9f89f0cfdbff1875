"""``render()``: the engine's one entry point.

It checks the units against the model, builds one batched objective, runs the chosen method with the network
cut at the deepest needed layer, then scores the final 8-bit images without any transform, so the reported
activation is what the saved PNG really produces.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from PIL import Image

from imagemachines import __version__
from imagemachines.errors import UnitOutOfRange, UserError
from imagemachines.models.loaded import LoadedModel
from imagemachines.vis.classic import classic
from imagemachines.vis.objectives import Channel, Neuron, Objective, PerImage
from imagemachines.vis.optimize import ascend, autocast
from imagemachines.vis.param import FourierImage, PhaseImage, PixelImage
from imagemachines.vis.progress import Monitor, Progress
from imagemachines.vis.recipes import ClassicRecipe, LucidRecipe, MacoRecipe, make_recipe
from imagemachines.vis.spectrum import load_spectrum
from imagemachines.vis.transforms import RandomAffine, random_crops
from imagemachines.vis.units import Unit

MAX_BATCH = 1024


@dataclass
class Render:
    """One finished image: the unit, the 8-bit RGB picture, its activation and the full recipe."""

    unit: Unit | None
    image: Image.Image
    activation: float
    recipe: dict

    def _repr_png_(self) -> bytes:
        """Jupyter shows a render as its picture."""
        from imagemachines.vis.display import png_bytes

        return png_bytes(self.image)


def check_unit(model: LoadedModel, unit: Unit, size: int | None = None) -> None:
    """Raise a clear error when *unit* does not exist in *model* (neurons: at render size *size*)."""
    model.check_channel(unit.layer, unit.channel)
    if unit.x is None:
        return
    size = size or model.input_size
    with torch.no_grad():
        shape = model.tap([unit.layer])(torch.zeros(1, 3, size, size, device=model.device))[unit.layer].shape
    height, width = (shape[-2], shape[-1]) if len(shape) == 4 else (1, 1)
    if not (0 <= unit.x < width and 0 <= unit.y < height):
        raise UnitOutOfRange(
            f"Neuron ({unit.x}, {unit.y}) is outside layer {unit.layer!r} of {model.name!r}, whose outputs are "
            f"{width}×{height} for {size}-px images: use x 0..{width - 1}, y 0..{height - 1}."
        )


def units_objective(units: Sequence[Unit], border: int = 0) -> Objective:
    """One objective for a batch: vectorised when all units share a layer and kind, else per image."""
    layers = {u.layer for u in units}
    kinds = {u.kind for u in units}
    if len(layers) == 1 and kinds <= {"channel", "class"}:
        return Channel(units[0].layer, [u.channel for u in units], border=border)
    if len(layers) == 1 and kinds == {"neuron"}:
        return Neuron(units[0].layer, [u.channel for u in units], [u.x for u in units], [u.y for u in units])
    return PerImage([units_objective([u], border) for u in units])


def seeds_for(seed: int | Sequence[int], n: int) -> list[int]:
    """One seed per image: *seed* repeated, or the given list checked against *n*."""
    seeds = [int(seed)] * n if isinstance(seed, int) else [int(s) for s in seed]
    if len(seeds) != n:
        raise UserError(f"Got {len(seeds)} seeds for {n} images: give one seed, or one per unit.")
    return seeds


def render(
    model: LoadedModel,
    units: Unit | str | Sequence[Unit | str] | Objective,
    *,
    method: str = "lucid",
    size: int | None = None,
    steps: int | None = None,
    seed: int | Sequence[int] = 0,
    images: int = 1,
    preview_every: int = 0,
    on_progress: Callable[[Progress], None] | None = None,
    stop: Callable[[], bool] | None = None,
    **options,
) -> list[Render]:
    """Render one image per unit (all in one batch) with *method*; see :mod:`imagemachines.vis.recipes`.

    *units* are :class:`Unit` objects or their text form (``"features.14:40"``), or an :class:`Objective`
    (then *images* images are made, e.g. with a diversity term; a list of units makes one image per unit).
    *seed* is one seed for all images or one per image; image *i* comes out the same alone or in a batch.
    *on_progress* gets a :class:`Progress` after every step (images every *preview_every* steps);
    *stop* returning True cancels (:class:`RenderCancelled`).
    """
    recipe = make_recipe(method, size, steps, **options)
    if isinstance(units, Objective):
        unit_list: list[Unit | None] = [None] * images
        objective_for: Callable[[int], Objective] = lambda _rep: units  # noqa: E731
        for layer in units.layers:
            model.layer(layer)
    else:
        unit_list = [units] if isinstance(units, (Unit, str)) else list(units)
        unit_list = [Unit.parse(u) if isinstance(u, str) else u for u in unit_list]
        for u in unit_list:
            check_unit(model, u, recipe.size)
        border = recipe.border if isinstance(recipe, ClassicRecipe) else 0
        objective_for = lambda rep: units_objective([u for u in unit_list for _ in range(rep)], border)  # noqa: E731
    n = len(unit_list)
    if not 1 <= n <= MAX_BATCH:
        raise UserError(f"A render takes 1 to {MAX_BATCH} units at once; got {n}.")
    seeds = seeds_for(seed, n)
    objective = objective_for(1)
    device = model.device
    tap = model.tap(objective.layers, fast=True)

    mean = torch.tensor(model.mean, device=device).view(1, 3, 1, 1)
    std = torch.tensor(model.std, device=device).view(1, 3, 1, 1)

    def forward(x: torch.Tensor) -> dict[str, torch.Tensor]:
        return tap((x - mean) / std)

    total = recipe.steps * recipe.octaves if isinstance(recipe, ClassicRecipe) else recipe.steps
    monitor = Monitor(total, preview_every, on_progress, stop)
    pictures = _run(recipe, forward, objective, objective_for, seeds, device, monitor)
    final = (pictures.detach().float().clamp(0, 1) * 255).round().to(torch.uint8)
    activations = score(forward, objective, final, device)
    base = {
        "model": model.name, "weights_id": model.weights_id, "method": method, "size": recipe.size,
        "steps": recipe.steps, "options": _options(recipe), "device": device.type,
        # what else decides the exact pixels (docs/visualize.md, "Reproducibility"): on a CPU the thread count
        # (reductions split differently), and the library versions
        "threads": torch.get_num_threads(), "torch": torch.__version__, "imagemachines": __version__,
    }
    renders = []
    for i, unit in enumerate(unit_list):
        recipe_i = {**base, "seed": seeds[i], "activation": activations[i]}
        if unit is not None:
            recipe_i |= {"unit": str(unit), "layer": unit.layer, "channel": unit.channel, "kind": unit.kind,
                         "x": unit.x, "y": unit.y}
            if unit.kind == "class" and model.class_names:
                recipe_i["class_name"] = model.class_names[unit.channel]
        pixels = final[i].permute(1, 2, 0).cpu().numpy()
        renders.append(Render(unit, Image.fromarray(pixels, "RGB"), activations[i], recipe_i))
    from imagemachines.vis.display import Renders

    return Renders(renders)  # a list that shows itself in Jupyter


def _options(recipe) -> dict:
    out = {}
    for f in dataclasses.fields(recipe):
        if f.name in ("size", "steps"):
            continue
        value = getattr(recipe, f.name)
        out[f.name] = dataclasses.asdict(value) if dataclasses.is_dataclass(value) else value
    return out


def _run(recipe, forward, objective, objective_for, seeds, device, monitor) -> torch.Tensor:
    """Run *recipe*; *objective_for(n)* builds the objective for n augmented views per image (MACO's crops)."""
    if isinstance(recipe, ClassicRecipe):
        return classic(forward, objective, seeds, recipe, device, monitor)
    if isinstance(recipe, LucidRecipe):
        if recipe.parameterization not in ("fourier", "pixel"):
            raise UserError(f"Unknown parameterization {recipe.parameterization!r}: use fourier or pixel.")
        image = (FourierImage(seeds, recipe.size, decay_power=recipe.decay_power)
                 if recipe.parameterization == "fourier" else PixelImage(seeds, recipe.size)).to(device)
        augment = RandomAffine(recipe.transforms, recipe.steps, seeds, recipe.size, device)
        ascend(forward, objective, image, augment, steps=recipe.steps, lr=recipe.lr, monitor=monitor)
        return image().detach()
    assert isinstance(recipe, MacoRecipe)
    image = PhaseImage(seeds, load_spectrum(recipe.spectrum, recipe.size)).to(device)
    generators = [torch.Generator().manual_seed(s * 1_000_003 + 13) for s in seeds]
    noise_generators = [torch.Generator(device=device).manual_seed(s * 1_000_003 + 17) for s in seeds]

    def augment(images: torch.Tensor, _step: int) -> torch.Tensor:
        return random_crops(images, recipe.crops, generators, noise_generators, recipe.crop_min, recipe.noise)

    ascend(forward, objective_for(recipe.crops), image, augment, steps=recipe.steps, lr=recipe.lr,
           monitor=monitor, group=recipe.crops)
    return image().detach()


@torch.no_grad()
def score(forward, objective: Objective, images_u8: torch.Tensor, device: torch.device) -> list[float]:
    """The objective on 8-bit images, without transforms: what a saved PNG scores."""
    x = images_u8.to(device).float() / 255
    with autocast(device):
        return objective(forward(x)).float().cpu().tolist()
