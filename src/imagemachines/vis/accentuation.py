"""Feature accentuation: a unit's look grown inside a real painting (Hamblin et al. 2024, "Feature Accentuation").

A render starts from noise and shows what a unit responds to in general; an accentuation starts from a painting
and changes it just enough that the unit (a neuron, a class, a concept direction) fires strongly, while a
regulariser keeps the image close to the painting in the network's own terms (:mod:`imagemachines.vis.regulariser`).
So the change shows the feature *as it appears in that painting*.

It is the engine's recipe with another start and one more term: the Fourier parameterization of ``lucid``
(1/f scaling, decorrelated colour, sigmoid) initialised from the painting (:meth:`FourierImage.from_images`), the
engine's transforms, its Adam loop (:func:`~imagemachines.vis.optimize.ascend`), progress, cancellation and
scoring of the final 8-bit images. Many images run in one batch: several strengths, units or seeds of one
painting. Image *i* comes out the same alone or in a batch.
"""

from __future__ import annotations

import dataclasses
import hashlib
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from imagemachines import __version__
from imagemachines.errors import UnitOutOfRange, UserError
from imagemachines.models.loaded import LoadedModel
from imagemachines.models.taps import LOGITS
from imagemachines.vis.directions import ConceptDirection
from imagemachines.vis.display import Renders, figure_html
from imagemachines.vis.engine import MAX_BATCH, Render, score, seeds_for, units_objective
from imagemachines.vis.objectives import Direction, Objective, PerImage, _spatial
from imagemachines.vis.optimize import ascend
from imagemachines.vis.param import FourierImage
from imagemachines.vis.progress import Monitor, Progress
from imagemachines.vis.recipes import MAX_SIZE, MAX_STEPS
from imagemachines.vis.regulariser import (
    PaintingDistance,
    PaintingReference,
    Penalised,
    balance,
    default_reg_layer,
)
from imagemachines.vis.transforms import RandomAffine, TransformSpec
from imagemachines.vis.units import Unit

DEFAULT_STEPS = 256
DEFAULT_STRENGTH = 1.0
DEFAULT_LR = 0.02
MAX_STRENGTH = 1e6
MIN_SIDE = 8


def lr_schedule(steps: int) -> Callable[[int], float]:
    """The learning rate's factor per step: up over the first tenth, then down to nothing at the end.

    Adam moves every parameter by about the learning rate per step whatever the gradient's size, so with a
    constant rate an image can never settle closer to the painting than one step's jitter (at lr 0.05 about 5
    levels RMS on MobileNetV2, whatever the strength). Ending at zero lets it settle; starting low keeps the
    first steps, which follow the objective alone (the distance is flat at the painting), from overshooting.
    """
    warm = max(1, steps // 10)
    return lambda step: min((step + 1) / warm, (steps - step) / max(1, steps - warm))


@dataclass(frozen=True)
class AccentTarget:
    """One accentuated image: what to drive (a unit or a concept direction) and how hard the painting holds."""

    what: Unit | ConceptDirection
    strength: float = DEFAULT_STRENGTH

    @property
    def unit(self) -> Unit | None:
        return self.what if isinstance(self.what, Unit) else None


@dataclass
class Accentuation(Render):
    """One accentuated painting: the picture, the objective after (``activation``) and before (``before``), the
    full recipe with its numbers (``recipe["accentuation"]``), and the painting it started from."""

    target: Unit | ConceptDirection | None = None
    strength: float = DEFAULT_STRENGTH
    before: float = 0.0
    painting: Image.Image | None = dataclasses.field(default=None, repr=False)

    @property
    def numbers(self) -> dict:
        return self.recipe["accentuation"]

    @property
    def label(self) -> str:
        return f"{self.target} · strength {self.strength:g}"


class Accentuations(Renders):
    """What :func:`accentuate` returns: a list that shows itself in Jupyter as the painting and its
    accentuations, with the objective before → after."""

    def _repr_html_(self) -> str:
        if not self:
            return "<div></div>"
        parts = [figure_html(self[0].painting, f"painting · {self[0].before:.2f}", width=200)]
        for a in self:
            gain = a.numbers["gain"]
            times = f" (×{gain:.1f})" if gain is not None else ""
            parts.append(figure_html(a.image, f"{a.label} · {a.activation:.2f}{times}", width=200))
        return "<div>" + "".join(parts) + "</div>"

    def sheet(self, path: Path, height: int = 224) -> Path:
        """The painting and its accentuations as one PNG (a row per target, strengths left to right)."""
        return accentuation_sheet(self, path, height)


# -- inputs -------------------------------------------------------------------------------------------------------
def painting_size(width: int, height: int, size: int) -> tuple[int, int]:
    """(height, width) of a painting of *width* × *height* scaled so that its longer side is *size*."""
    scale = size / max(width, height)
    return max(MIN_SIDE, round(height * scale)), max(MIN_SIDE, round(width * scale))


def painting_image(image: Image.Image | Path | str | np.ndarray) -> Image.Image:
    """An RGB picture from a PIL image, an image file or an (H, W, 3) uint8 array."""
    if isinstance(image, Image.Image):
        return image.convert("RGB")
    if isinstance(image, np.ndarray):
        if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
            raise UserError(f"A painting array must be (height, width, 3) uint8; got {image.shape} {image.dtype}.")
        return Image.fromarray(image, "RGB")
    from imagemachines.attribution.inputs import open_image

    return open_image(Path(image))


def as_targets(targets, strength: float | Sequence[float] | None) -> list[AccentTarget]:
    """Every (target, strength) pair: each target with each strength (target-major), or the pairs as given."""
    items = [targets] if isinstance(targets, (Unit, str, ConceptDirection, AccentTarget)) else list(targets)
    if not items:
        raise UserError("Say what to accentuate: a unit (LAYER:CHANNEL), a class or a direction.")
    strengths = [DEFAULT_STRENGTH] if strength is None else (
        [strength] if isinstance(strength, (int, float)) else list(strength))
    if not strengths:
        raise UserError("Give at least one strength.")
    out = []
    for item in items:
        if isinstance(item, AccentTarget):
            out.append(item)
            continue
        what = Unit.parse(item) if isinstance(item, str) else item
        if not isinstance(what, (Unit, ConceptDirection)):
            raise UserError(f"Cannot accentuate {item!r}: give a Unit, 'LAYER:CHANNEL' or a ConceptDirection.")
        out.extend(AccentTarget(what, float(s)) for s in strengths)
    for t in out:
        if not (math.isfinite(t.strength) and 0 <= t.strength <= MAX_STRENGTH):
            raise UserError(f"Strength {t.strength} is out of range: use 0 (no hold: an ordinary render from the "
                            f"painting) to {MAX_STRENGTH:g}.")
    return out


def check_target(model: LoadedModel, what: Unit | ConceptDirection, shape: tuple[int, int]) -> None:
    """Raise a clear error unless *what* exists in *model* (neurons: inside the layer at image size *shape*)."""
    if isinstance(what, ConceptDirection):
        what.check(model)
        return
    model.check_channel(what.layer, what.channel)
    if what.x is None:
        return
    if what.layer == LOGITS:
        raise UserError("Class logits have no position: drop @X,Y for a class.")
    with torch.no_grad():
        out = model.tap([what.layer])(torch.zeros(1, 3, *shape, device=model.device))[what.layer]
    height, width = (out.shape[-2], out.shape[-1]) if out.ndim == 4 else (1, 1)
    if not (what.x < width and what.y < height):
        raise UnitOutOfRange(
            f"Neuron ({what.x}, {what.y}) is outside layer {what.layer!r} of {model.name!r}, whose outputs are "
            f"{width}×{height} for this {shape[1]}×{shape[0]} painting: use x 0..{width - 1}, y 0..{height - 1}.")


def targets_objective(targets: Sequence[AccentTarget]) -> Objective:
    """One batched objective: the engine's for units, ``Direction`` for directions, per image when mixed."""
    whats = [t.what for t in targets]
    if all(isinstance(w, Unit) for w in whats):
        return units_objective(whats)
    if all(isinstance(w, ConceptDirection) for w in whats) and len({w.layer for w in whats}) == 1:
        return Direction(whats[0].layer, torch.stack([w.vector for w in whats]))
    return PerImage([units_objective([w]) if isinstance(w, Unit) else Direction(w.layer, w.vector) for w in whats])


# -- the accentuation -----------------------------------------------------------------------------------------------
def accentuate(
    model: LoadedModel,
    image: Image.Image | Path | str | np.ndarray,
    targets,
    *,
    strength: float | Sequence[float] | None = None,
    reg_layer: str | None = None,
    size: int | None = None,
    steps: int | None = None,
    seed: int | Sequence[int] = 0,
    lr: float = DEFAULT_LR,
    decay_power: float = 1.0,
    transforms: TransformSpec | None = None,
    index=None,
    painting_name: str | None = None,
    preview_every: int = 0,
    on_progress: Callable[[Progress], None] | None = None,
    stop: Callable[[], bool] | None = None,
) -> Accentuations:
    """Accentuate *targets* in the painting *image*; one image per (target, strength).

    *targets*: a :class:`Unit` or its text (``"features.16:150"``, ``"features.10:5@3,4"``, ``"logits:281"``), a
    :class:`ConceptDirection`, or a list of them (each with each of *strength*, target-major), or
    :class:`AccentTarget` pairs that carry their own strength. *strength* (default 1): how hard the painting holds
    (0: not at all, an ordinary render started from the painting; large: the painting stays as it is).
    *reg_layer*: where the regulariser compares (default :func:`default_reg_layer`). *size*: the painting's
    longer side in pixels (its aspect is kept; default the network's input size). *seed*: one for all images or
    one per image (it draws the transforms). *index*: a collection index of this model's weights; the numbers
    then include the unit's percentile in the collection before and after. *on_progress*, *stop* and
    *preview_every* work as in :func:`~imagemachines.vis.render`.
    """
    steps = DEFAULT_STEPS if steps is None else int(steps)
    if not 1 <= steps <= MAX_STEPS:
        raise UserError(f"Steps {steps} is out of range: use 1 to {MAX_STEPS}.")
    size = model.input_size if size is None else int(size)
    if not MIN_SIDE <= size <= MAX_SIZE:
        raise UserError(f"Size {size} is out of range: use {MIN_SIDE} to {MAX_SIZE} pixels (the longer side).")
    if not (math.isfinite(lr) and lr >= 0):
        raise UserError(f"The learning rate must be a finite number ≥ 0; got {lr}.")
    pairs = as_targets(targets, strength)
    n = len(pairs)
    if n > MAX_BATCH:
        raise UserError(f"An accentuation takes 1 to {MAX_BATCH} images at once; got {n}.")
    seeds = seeds_for(seed, n)
    original = painting_image(image)
    shape = painting_size(*original.size, size)
    reg_layer = reg_layer or default_reg_layer(model)
    model.layer(reg_layer)
    for t in pairs:
        check_target(model, t.what, shape)
    if index is not None and index.weights_id != model.weights_id:
        raise UserError(f"The index in {index.path} was made with weights {index.weights_id}, not with "
                        f"{model.name!r}'s ({model.weights_id}): its percentiles would mean nothing here.")
    pixels = np.asarray(original.resize((shape[1], shape[0]), Image.LANCZOS), dtype=np.uint8)
    painting_u8 = torch.from_numpy(pixels.copy()).permute(2, 0, 1)[None]
    spec = transforms if transforms is not None else TransformSpec()
    objective = targets_objective(pairs)
    strengths = torch.tensor([t.strength for t in pairs])

    final, betas = _run(model, painting_u8, objective, strengths, seeds, reg_layer, steps, lr,
                        decay_power, spec, Monitor(steps, preview_every, None, stop), on_progress)
    numbers = _numbers(model, objective, reg_layer, painting_u8, final, index, pairs)
    base = {
        "model": model.name, "weights_id": model.weights_id, "method": "accentuate", "size": size,
        "height": shape[0], "width": shape[1], "steps": steps, "device": model.device.type,
        "options": {"lr": lr, "decay_power": decay_power, "reg_layer": reg_layer,
                    "transforms": dataclasses.asdict(spec)},
        "painting": {"name": painting_name, "width": original.size[0], "height": original.size[1],
                     "sha256": hashlib.sha256(pixels.tobytes()).hexdigest()},
        "imagemachines": __version__,
    }
    painting_pil = Image.fromarray(pixels, "RGB")
    results = []
    for i, t in enumerate(pairs):
        beta = None if betas is None else float(betas[i])
        accent = {"strength": t.strength, "balance": beta, "reg_layer": reg_layer, **numbers[i]}
        recipe = {**base, "seed": seeds[i], "activation": numbers[i]["after"], "accentuation": accent,
                  **_target_fields(model, t.what)}
        picture = Image.fromarray(final[i].permute(1, 2, 0).cpu().numpy(), "RGB")
        results.append(Accentuation(t.unit, picture, numbers[i]["after"], recipe, target=t.what,
                                    strength=t.strength, before=numbers[i]["before"], painting=painting_pil))
    return Accentuations(results)


def _run(model, painting_u8, objective, strengths, seeds, reg_layer, steps, lr, decay_power, spec, monitor,
         on_progress):
    """The loop: parameterization from the painting, the balance, then the engine's Adam ascent."""
    device = model.device
    n, (h, w) = len(seeds), painting_u8.shape[-2:]
    tap = model.tap(objective.layers + (reg_layer,), fast=True)
    reg_tap = model.tap([reg_layer], fast=True)
    mean = torch.tensor(model.mean, device=device).view(1, 3, 1, 1)
    std = torch.tensor(model.std, device=device).view(1, 3, 1, 1)

    def forward(x: torch.Tensor) -> dict[str, torch.Tensor]:
        return tap((x - mean) / std)

    def reg_forward(x: torch.Tensor) -> dict[str, torch.Tensor]:
        return reg_tap((x - mean) / std)

    painting = painting_u8.to(device).float() / 255
    image = FourierImage.from_images(painting.expand(n, -1, -1, -1), decay_power=decay_power).to(device)

    def make_affine(image_seeds):
        return RandomAffine(spec, steps, image_seeds, (h, w), device)

    reference = PaintingReference(reg_forward, reg_layer, painting, make_affine(seeds), seeds, make_affine)
    distance = PaintingDistance(reg_layer, reference)
    betas = balance(image, forward, reference.augment, objective, distance) if bool((strengths > 0).any()) else None
    weights = strengths.to(device) * (betas if betas is not None else 0.0)
    penalised = Penalised(objective, distance, weights)
    if on_progress is not None:
        def report(p: Progress) -> None:
            values = penalised.last.float().cpu().tolist() if penalised.last is not None else p.activations
            on_progress(dataclasses.replace(p, activations=values))

        monitor.on_progress = report
    ascend(forward, penalised, image, reference.augment, steps=steps, lr=lr, monitor=monitor,
           schedule=lr_schedule(steps))
    final = (image().detach().float().clamp(0, 1) * 255).round().to(torch.uint8)
    return final, None if betas is None else betas.detach().cpu()


@torch.no_grad()
def _numbers(model, objective, reg_layer, painting_u8, final, index, pairs) -> list[dict]:
    """Per image: the objective before (the painting) and after, the distance to the painting in pixels (RMS, in
    8-bit levels) and at the regulariser's layer (relative to the painting's activations), and with an index the
    unit's percentile in the collection before and after."""
    device = model.device
    n = final.shape[0]
    tap = model.tap(objective.layers, fast=True)
    reg_tap = model.tap([reg_layer], fast=True)

    def forward(x):
        return tap(model.normalize(x))

    paintings = painting_u8.expand(n, -1, -1, -1)
    before = score(forward, objective, paintings, device)
    after = score(forward, objective, final, device)
    acts = _spatial(reg_tap(model.normalize(final.to(device).float() / 255))[reg_layer].float())
    acts0 = _spatial(reg_tap(model.normalize(painting_u8.to(device).float() / 255))[reg_layer].float())
    far = (acts - acts0).square().sum(dim=1).sqrt().mean(dim=(-2, -1))
    norm = acts0.square().sum(dim=1).sqrt().mean(dim=(-2, -1)).clamp_min(1e-12)
    pixels = (final.float() - paintings.float()).square().mean(dim=(1, 2, 3)).sqrt()
    out = []
    for i, t in enumerate(pairs):
        entry = {"before": before[i], "after": after[i], "change": after[i] - before[i],
                 "gain": after[i] / before[i] if before[i] > 0 else None,
                 "pixel_distance": float(pixels[i]), "activation_distance": float(far[i] / norm[0])}
        unit = t.unit
        if index is not None and unit is not None and unit.layer in index.layers:
            entry["percentile_before"] = index.percentile(unit.layer, unit.channel,
                                                          collection_value(model, painting_u8, unit))
            entry["percentile_after"] = index.percentile(unit.layer, unit.channel,
                                                         collection_value(model, final[i:i + 1], unit))
        out.append(entry)
    return out


@torch.no_grad()
def collection_value(model: LoadedModel, images_u8: torch.Tensor, unit: Unit) -> float:
    """The unit's value on the collection's scale: the spatial maximum of its channel's map with the picture
    squashed to the network's input square, as the index sees paintings."""
    import torch.nn.functional as F

    s = model.input_size
    x = images_u8.to(model.device).float() / 255
    x = F.interpolate(x, size=(s, s), mode="bilinear", align_corners=False, antialias=True).clamp(0, 1)
    a = _spatial(model.tap([unit.layer])(model.normalize(x))[unit.layer].float())
    return float(a[0, unit.channel].max())


def _target_fields(model: LoadedModel, what: Unit | ConceptDirection) -> dict:
    if isinstance(what, ConceptDirection):
        return {"unit": None, "layer": what.layer, "kind": "direction", "direction": what.name}
    fields = {"unit": str(what), "layer": what.layer, "channel": what.channel, "kind": what.kind, "x": what.x,
              "y": what.y}
    if what.kind == "class" and model.class_names:
        fields["class_name"] = model.class_names[what.channel]
    return fields


# -- pictures -------------------------------------------------------------------------------------------------------
def accentuation_sheet(results: Sequence[Accentuation], path: Path, height: int = 224) -> Path:
    """One PNG: per target a row with the painting first, then its accentuations (by strength), labelled with
    the objective, its gain and the distance to the painting at the regulariser's layer."""
    from PIL import ImageDraw

    from imagemachines.fileio import atomic_write
    from imagemachines.vis.display import ImagePath

    if not results:
        raise UserError("No accentuations to put on a sheet.")
    rows: dict[str, list[Accentuation]] = {}
    for a in results:
        name = a.recipe.get("class_name")
        rows.setdefault(f"{a.target}" + (f" ({name})" if name else ""), []).append(a)
    first = results[0]
    w = round(first.image.width * height / first.image.height)
    cols = 1 + max(len(r) for r in rows.values())
    label_h = 30
    sheet = Image.new("RGB", (cols * (w + 4), len(rows) * (height + label_h)), (24, 24, 24))
    draw = ImageDraw.Draw(sheet)
    for r, (name, items) in enumerate(rows.items()):
        y = r * (height + label_h)
        cells = [(items[0].painting, f"painting · {name}", f"objective {items[0].before:.2f}")]
        for a in items:
            gain = a.numbers["gain"]
            cells.append((a.image, f"strength {a.strength:g}",
                          f"{a.activation:.2f}" + (f" (x{gain:.1f})" if gain is not None else "")
                          + f" · dist {a.numbers['activation_distance']:.2f}"))
        for c, (picture, line1, line2) in enumerate(cells):
            x = c * (w + 4)
            sheet.paste(picture.resize((w, height), Image.LANCZOS), (x, y))
            draw.text((x + 3, y + height + 2), line1, fill=(230, 230, 230))
            draw.text((x + 3, y + height + 15), line2, fill=(160, 160, 160))
    path = Path(path)
    atomic_write(path, lambda tmp: sheet.save(tmp, format="PNG"))
    return ImagePath(path)
