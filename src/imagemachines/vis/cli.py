"""`imagemachines models | layers | visualize` (and `accentuate`, from :mod:`imagemachines.vis.accent_cli`)."""

from __future__ import annotations

from pathlib import Path

import typer

from imagemachines.errors import UserError

MODEL_HELP = "A torchvision model name (e.g. mobilenet_v2, inception_v3) or a run directory from `train`."
WEIGHTS_HELP = "imagenet (first ImageNet weights), DEFAULT (torchvision's default), none, or a state-dict file."


def models_command() -> None:
    """List the model names `layers`, `visualize` and `serve` accept."""
    from rich.console import Console

    from imagemachines.models import DEFAULT_MODEL, available_models

    console = Console()
    for name in available_models():
        console.print(f"{name}{'  [bold](default)[/]' if name == DEFAULT_MODEL else ''}", highlight=False)


def layers_command(
    model: str = typer.Argument("mobilenet_v2", help=MODEL_HELP),
    all_layers: bool = typer.Option(False, "--all", help="Every module, not only the top-level blocks."),
    weights: str = typer.Option("none", help="Weights do not change the table; " + WEIGHTS_HELP),
) -> None:
    """Print the layer table: name, module type, channels and output size (no download needed)."""
    from rich.console import Console
    from rich.table import Table

    from imagemachines.models import load_model

    m = load_model(model, weights=weights, device="cpu")
    table = Table(title=f"{m.name}, input {m.input_size}×{m.input_size}")
    for col in ("layer", "type", "channels", "size"):
        table.add_column(col, justify="right" if col in ("channels", "size") else "left")
    for layer in m.layers(all=all_layers):
        table.add_row(layer.name, layer.type, str(layer.channels), f"{layer.height}×{layer.width}")
    console = Console()
    console.print(table)
    if m.class_names:
        console.print(class_list(m.class_names), highlight=False, soft_wrap=True)


def class_list(names: list[str], show: int = 50) -> str:
    """'classes (the channels of logits): 0 landscape, 1 portrait, …' — all of them up to *show*, else 10."""
    listed = ", ".join(f"{i} {n}" for i, n in enumerate(names if len(names) <= show else names[:10]))
    more = f", … ({len(names)} in all; `--class NAME` takes a name)" if len(names) > show else ""
    return f"classes (the channels of logits): {listed}{more}"


def _units(m, layer: str | None, channel: int | None, channels: str | None, class_: str | None,
           neuron: str | None):
    from imagemachines.models import LOGITS
    from imagemachines.vis.units import Unit, parse_channels

    if class_ is not None:
        layer = LOGITS
        if class_.isdigit():
            channel = int(class_)
        else:
            names = [n.lower() for n in (m.class_names or [])]
            if class_.lower() not in names:
                from imagemachines.errors import did_you_mean

                raise UserError(f"Model {m.name!r} has no class {class_!r}.{did_you_mean(class_, m.class_names or [])}"
                                " Give a class index or name.")
            channel = names.index(class_.lower())
    if layer is None:
        raise UserError("Say which layer: --layer NAME (see `imagemachines layers MODEL`), or --class for a logit.")
    info = m.layer(layer)
    if channels is not None:
        picked = parse_channels(channels, info.channels)
    elif channel is not None:
        picked = [channel]
    else:
        raise UserError("Say which unit: --channel N, --channels 0-63|all, or --class NAME.")
    x = y = None
    if neuron is not None:
        try:
            x, y = (int(v) for v in neuron.split(","))
        except ValueError:
            raise UserError(f"Cannot read --neuron {neuron!r}: write X,Y (e.g. 3,3).") from None
    return [Unit(layer, c, x, y) for c in picked]


def settings_tag(method: str, size: int, steps: int, seed: int) -> str:
    """What tells renders of one unit apart in a file name: 'lucid-224px-256steps-seed0'."""
    return f"{method}-{size}px-{steps}steps-seed{seed}"


def weights_tag(weights_id: str) -> str:
    """What tells weights apart in a file name, '' for the default ImageNet weights (names stay short for most):
    'random' (--weights none), the torchvision weights' name ('IMAGENET1K_V2'), 'file-<8 hex>' for a state
    dict, 'run-<8 hex>' for a trained run."""
    if weights_id == "random-init":
        return "random"
    kind, _, rest = weights_id.partition(":")
    if kind in ("file", "run"):
        return f"{kind}-{rest[:8]}"
    name = kind.rpartition(".")[2]  # 'MobileNet_V2_Weights.IMAGENET1K_V1:mobilenet_v2-b0353104.pth'
    return "" if name == "IMAGENET1K_V1" else name


def default_batch(device_type: str, size: int) -> int:
    """Units per batch: 4 on CPU (2-8 cores gain little from more); on GPU 64 at 224 px, fewer for larger images."""
    if device_type == "cpu":
        return 4
    return max(1, min(64, int(64 * (224 / size) ** 2)))


def visualize_command(
    model: str = typer.Argument("mobilenet_v2", help=MODEL_HELP),
    layer: str | None = typer.Option(None, "--layer", "-l", help="Layer name (`imagemachines layers MODEL`)."),
    channel: int | None = typer.Option(None, "--channel", "-c", help="One channel of the layer."),
    channels: str | None = typer.Option(None, help="Several channels: all, 0-63, 1,5,9-12."),
    class_: str | None = typer.Option(None, "--class", help="A class logit, by index or name (layer logits)."),
    neuron: str | None = typer.Option(None, help="X,Y: one neuron of the channel instead of its mean."),
    method: str = typer.Option("lucid", help="lucid, classic (the 2018 seed's recipe) or maco."),
    size: int | None = typer.Option(None, show_default=False, help=(
        "Image side in pixels [default: lucid 224, maco 224, classic 900]. On a CPU, classic at 900 px takes "
        "about 2 minutes per unit.")),
    steps: int | None = typer.Option(None, show_default=False, help=(
        "Optimisation steps [default: lucid 256, maco 256, classic 100 per octave]. On a CPU, 64 units at "
        "256 steps take about 5 minutes.")),
    seed: int = typer.Option(0, help="Random seed: the same seed on the same device gives the same image."),
    device: str = typer.Option("auto", help="auto, cpu, cuda, cuda:N or mps."),
    batch: int | None = typer.Option(None, help=(
        "Units rendered together in one pass (4 on CPU; 64 on GPU at 224 px, fewer when larger).")),
    out: Path = typer.Option(Path("out"), help="Output folder for PNG + JSON files."),
    weights: str = typer.Option("imagenet", help=WEIGHTS_HELP),
) -> None:
    """Render feature visualizations: one PNG (+ JSON recipe) per unit, and a contact sheet for several."""
    from tqdm import tqdm

    from imagemachines.models import load_model
    from imagemachines.vis import contact_sheet, render, save_render
    from imagemachines.vis.recipes import ClassicRecipe, make_recipe

    if batch is not None and batch < 1:
        raise UserError("--batch must be at least 1.")
    recipe = make_recipe(method, size, steps)
    m = load_model(model, weights=weights, device=device)
    units = _units(m, layer, channel, channels, class_, neuron)
    per_batch = batch or default_batch(m.device.type, recipe.size)
    total = recipe.steps * (recipe.octaves if isinstance(recipe, ClassicRecipe) else 1)
    tag = settings_tag(method, recipe.size, recipe.steps, seed)
    prefix = "-".join(filter(None, [Path(m.name).name, weights_tag(m.weights_id)]))  # other weights, other files
    results = []
    bar = tqdm(total=total * len(units), unit="step", desc=f"{m.name} {units[0].layer}")
    for start in range(0, len(units), per_batch):
        chunk = units[start : start + per_batch]
        bar.set_postfix_str(f"units {start + 1}-{start + len(chunk)} of {len(units)}")
        renders = render(m, chunk, method=method, size=size, steps=steps, seed=seed,
                         on_progress=lambda p, n=len(chunk): bar.update(n))
        for r in renders:
            path = out / f"{prefix}-{r.unit.slug}-{tag}.png"
            save_render(r, path)
            tqdm.write(f"{path}  activation {r.activation:.3f}")
        results.extend(renders)
    bar.close()
    if len(results) > 1:
        stem = f"{prefix}-{units[0].layer.replace('.', '-')}-{tag}"
        sheet = contact_sheet(results, out / f"{stem}-sheet.png")
        typer.echo(f"contact sheet: {sheet}")


def register(app: typer.Typer) -> None:
    """Add the visualization commands to the main app."""
    app.command("models")(models_command)
    app.command("layers")(layers_command)
    app.command("visualize")(visualize_command)
    from imagemachines.vis.accent_cli import accentuate_command

    app.command("accentuate")(accentuate_command)
