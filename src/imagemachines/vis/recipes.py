"""Named recipes ("methods") and their documented defaults.

- ``lucid`` (default): Fourier parameterization with 1/f scaling and colour decorrelation, the Lucid
  transforms (pad 12, jitter 8, scale 0.9–1.1, rotate ±10°, jitter 4), Adam lr 0.05.
- ``classic``: the 2018 seed's recipe — noise start, 10 octaves ×1.2 up to the final size, 100 normalised
  gradient steps per octave, 5×5 median filter every 4th step, lost detail added back between octaves,
  per-channel autotone at the end; objective = channel mean ignoring a 2-px border.
- ``maco``: Fel et al. 2023 — only the Fourier phase is optimised, the magnitude is a fixed natural-image
  spectrum; random crops and noise as augmentation.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields, replace

from imagemachines.errors import UserError
from imagemachines.vis.transforms import TransformSpec

MAX_SIZE = 2048
MAX_STEPS = 10_000


@dataclass(frozen=True)
class LucidRecipe:
    size: int = 224
    steps: int = 256
    lr: float = 0.05
    parameterization: str = "fourier"  # or "pixel"
    decay_power: float = 1.0
    transforms: TransformSpec = field(default_factory=TransformSpec)


@dataclass(frozen=True)
class MacoRecipe:
    size: int = 224
    steps: int = 256
    lr: float = 0.5
    crops: int = 6
    crop_min: float = 0.3
    noise: float = 0.05
    spectrum: str = "natural"  # "natural" (built in) or a path to a .pt / .npy spectrum file


@dataclass(frozen=True)
class ClassicRecipe:
    size: int = 900
    steps: int = 100  # per octave
    octaves: int = 10
    octave_scale: float = 1.2
    step_size: float = 0.005  # the seed's 0.01 in Inception's [-1, 1] input range, here in [0, 1]
    median_every: int = 4
    median_size: int = 5
    border: int = 2
    autotone_clip: float = 0.001


RECIPES = {"lucid": LucidRecipe, "classic": ClassicRecipe, "maco": MacoRecipe}
METHODS = tuple(RECIPES)


def method_defaults(method: str) -> dict:
    """The default settings of a method, as a plain dict (size, steps, …)."""
    return asdict(make_recipe(method))


def make_recipe(method: str, size: int | None = None, steps: int | None = None, **options):
    """The recipe for *method* with *size*, *steps* and any recipe field in *options* overridden."""
    if method not in RECIPES:
        raise UserError(f"Unknown method {method!r}: choose one of {', '.join(METHODS)}.")
    cls = RECIPES[method]
    recipe = cls()
    known = {f.name for f in fields(cls)}
    unknown = set(options) - known
    if unknown:
        raise UserError(
            f"Method {method!r} has no option {', '.join(sorted(unknown))}; its options are {', '.join(sorted(known))}."
        )
    changes = {k: v for k, v in {"size": size, "steps": steps, **options}.items() if v is not None}
    recipe = replace(recipe, **changes)
    if not 8 <= recipe.size <= MAX_SIZE:
        raise UserError(f"Size {recipe.size} is out of range: use 8 to {MAX_SIZE} pixels.")
    if not 1 <= recipe.steps <= MAX_STEPS:
        raise UserError(f"Steps {recipe.steps} is out of range: use 1 to {MAX_STEPS}.")
    return recipe
