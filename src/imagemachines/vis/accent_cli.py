"""`imagemachines accentuate MODEL IMAGE`: a unit's, class's or direction's look grown inside a painting."""

from __future__ import annotations

import re
from pathlib import Path

import typer

from imagemachines.errors import UserError
from imagemachines.vis.cli import MODEL_HELP, WEIGHTS_HELP, weights_tag


def parse_strengths(text: str) -> list[float]:
    """'1' or '0.5,1,2' -> [0.5, 1.0, 2.0] (each finite and ≥ 0)."""
    import math

    try:
        values = [float(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise UserError(f"Cannot read --strength {text!r}: give a number or a comma list like 0.5,1,2.") from None
    if not values or any(not math.isfinite(v) or v < 0 for v in values):
        raise UserError(f"--strength {text!r}: give numbers ≥ 0 (0: no hold on the painting), e.g. 0.5,1,2.")
    return values


def file_stem(text: str) -> str:
    """A file-name-safe version of *text*."""
    return re.sub(r"[^A-Za-z0-9_-]+", "-", text).strip("-") or "painting"


def accentuate_command(
    model: str = typer.Argument(..., help=MODEL_HELP),
    image: Path = typer.Argument(..., help="The painting: a JPEG, PNG, TIFF or WebP file."),
    unit: list[str] = typer.Option([], "--unit", "-u", help="LAYER:CHANNEL, or LAYER:CHANNEL@X,Y for one neuron "
                                                            "(repeatable)."),
    class_: list[str] = typer.Option([], "--class", "-c", help="A class, by name or number (repeatable)."),
    direction: list[Path] = typer.Option([], "--direction", "-d", help="A concept direction file (.safetensors "
                                                                       "with a vector and its layer; repeatable)."),
    strength: str = typer.Option("1", "--strength", "-s", help=(
        "How hard the painting holds: 0 = not at all (an ordinary render started from the painting), 1 = the "
        "default balance, larger = fainter. A comma list (0.5,1,2) makes a strip from strong to faint.")),
    reg_layer: str | None = typer.Option(None, help=(
        "Layer where the regulariser compares with the painting (default: the last block at 1/8 of the input's "
        "side, e.g. features.6 for mobilenet_v2).")),
    steps: int | None = typer.Option(None, show_default=False, help="Optimisation steps [default: 256]."),
    size: int | None = typer.Option(None, show_default=False, help=(
        "Longer side of the painting in pixels, its aspect kept [default: the network's input size].")),
    seed: int = typer.Option(0, help="Random seed of the transforms: the same seed gives the same image."),
    lr: float | None = typer.Option(None, show_default=False, help="Adam's learning rate [default: 0.02]."),
    index: Path | None = typer.Option(None, "--index", help=(
        "A collection index (`imagemachines index`) made with this model: the unit's percentile in the "
        "collection before and after.")),
    out: Path = typer.Option(Path("out"), help="Output folder for the PNG (+ JSON) files and the sheet."),
    weights: str = typer.Option("imagenet", help=WEIGHTS_HELP),
    device: str = typer.Option("auto", help="auto, cpu, cuda, cuda:N or mps."),
    as_json: bool = typer.Option(False, "--json", help="Print the numbers as JSON on stdout (files are written too)."),
) -> None:
    """Accentuate a unit, class or direction in a painting: the painting changed just enough that it fires
    strongly, while a regulariser keeps it close to the painting in the network's own terms. One PNG (+ JSON
    recipe) per target and strength, and a sheet with the painting beside them."""
    import json

    from tqdm import tqdm

    from imagemachines.attribution.inputs import open_image
    from imagemachines.models import load_model
    from imagemachines.vis import save_render
    from imagemachines.vis.accentuation import DEFAULT_LR, DEFAULT_STEPS, accentuate
    from imagemachines.vis.cli import _units
    from imagemachines.vis.directions import load_direction
    from imagemachines.vis.units import Unit

    if not (unit or class_ or direction):
        raise UserError("Say what to accentuate: --unit LAYER:CHANNEL, --class NAME or --direction FILE.")
    strengths = parse_strengths(strength)
    painting = open_image(image)  # a missing or broken file fails before the model loads
    directions = [load_direction(d) for d in direction]
    collection = None
    if index is not None:
        from imagemachines.index import open_index

        collection = open_index(index)
    m = load_model(model, weights=weights, device=device)
    targets = [Unit.parse(u) for u in unit]
    for name in class_:
        targets.extend(_units(m, None, None, None, name, None))
    targets.extend(directions)
    steps = steps or DEFAULT_STEPS
    n = len(targets) * len(strengths)
    with tqdm(total=steps, unit="step", desc=f"accentuating {n} image{'s' if n > 1 else ''}") as bar:
        results = accentuate(m, painting, targets, strength=strengths, reg_layer=reg_layer, size=size, steps=steps,
                             seed=seed, lr=DEFAULT_LR if lr is None else lr, index=collection,
                             painting_name=image.name, on_progress=lambda _p: bar.update(1))
    prefix = "-".join(filter(None, [Path(m.name).name, weights_tag(m.weights_id), file_stem(image.stem)]))
    first = results[0].recipe
    tag = f"{first['size']}px-{first['steps']}steps-seed{seed}"
    doc = []
    for r in results:
        slug = r.target.slug
        path = save_render(r, out / f"{prefix}-{slug}-accent-s{r.strength:g}-{tag}.png")
        doc.append({"file": str(path), **r.numbers, "target": str(r.target)})
        if not as_json:
            typer.echo(_line(path, r))
    sheet = results.sheet(out / f"{prefix}-accent-{tag}-sheet.png")
    if as_json:
        print(json.dumps({"sheet": str(sheet), "accentuations": doc}, indent=2))
    else:
        typer.echo(f"sheet: {sheet}")


def _line(path: Path, r) -> str:
    n = r.numbers
    gain = f" (×{n['gain']:.2f})" if n["gain"] is not None else ""
    pct = (f", percentile {n['percentile_before']:.1f} → {n['percentile_after']:.1f}"
           if "percentile_before" in n else "")
    return (f"{path}  {r.target} strength {r.strength:g}: {n['before']:.3f} → {n['after']:.3f}{gain}{pct}; "
            f"distance {n['pixel_distance']:.1f} levels, {n['activation_distance']:.2f} at {n['reg_layer']}")
