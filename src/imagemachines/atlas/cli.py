"""`imagemachines atlas MODEL --out SITE`: a static website of a model's units (torchrun aware)."""

from __future__ import annotations

from pathlib import Path

import typer

from imagemachines.errors import UserError
from imagemachines.vis.cli import MODEL_HELP, WEIGHTS_HELP


def _ints(text: str, what: str) -> list[int]:
    try:
        return [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise UserError(f"Cannot read {what} {text!r}: write numbers separated by commas (e.g. 0,1,2).") from None


def atlas_command(
    model: str = typer.Argument("mobilenet_v2", help=MODEL_HELP),
    out: Path = typer.Option(Path("atlas"), "--out", "-o", help="Site folder (created; resumable)."),
    layers: str | None = typer.Option(None, help="Comma-separated layers (default: every block layer)."),
    channels: str = typer.Option("all", help="Channels of every layer: all, 0-15, 1,5,9-12 (clipped per layer)."),
    methods: str = typer.Option("lucid", help="Comma-separated methods: lucid, classic, maco."),
    seeds: str = typer.Option("0", help="Comma-separated seeds: one render per unit, method and seed."),
    seed: int | None = typer.Option(None, help="One seed (same as --seeds N)."),
    size: int | None = typer.Option(None, help="Image side in pixels (method default)."),
    steps: int | None = typer.Option(None, help="Optimisation steps (method default)."),
    image_format: str = typer.Option("webp", "--format", help="webp or png (both carry the recipe)."),
    batch: int | None = typer.Option(None, help="Units per render batch (4 on CPU, up to 64 on GPU)."),
    index: Path | None = typer.Option(None, help="A collection index (`imagemachines index`): top and bottom "
                                                  "paintings with heat overlays on every unit page."),
    concepts: Path | None = typer.Option(None, help="A concept study (`imagemachines concepts --out DIR`) of this "
                                                     "model: a page per class, linked from the model page."),
    map_: bool = typer.Option(False, "--map", help="With --index: add the index's map (`imagemachines map`) "
                                                   "as MODEL/map/map.html, its cluster units linked to their pages."),
    serve_url: str = typer.Option("http://127.0.0.1:8000", help="Where `open in imagemachines` links point."),
    force: bool = typer.Option(False, "--force", help="Render again what the folder already holds."),
    device: str = typer.Option("auto", help="auto, cpu, cuda, cuda:N or mps (torchrun: one GPU per rank)."),
    weights: str = typer.Option("imagenet", help=WEIGHTS_HELP),
) -> None:
    """Render a static atlas: model page, a page per layer, a page per unit; resumable; torchrun spreads it."""
    from imagemachines.atlas.build import AtlasSettings, build_atlas
    from imagemachines.models import load_model, resolve_device
    from imagemachines.train import distributed

    dist = distributed.from_env()
    dev = distributed.setup(dist, resolve_device(device))
    try:
        m = load_model(model, weights=weights, device=dev)
        settings = AtlasSettings(
            layers=[x.strip() for x in layers.split(",") if x.strip()] if layers else None, channels=channels,
            methods=[x.strip() for x in methods.split(",") if x.strip()],
            seeds=[seed] if seed is not None else _ints(seeds, "--seeds"), size=size, steps=steps,
            image_format=image_format.lower(), batch=batch, force=force, serve_url=serve_url, index=index,
            concepts=concepts, map=map_)
        result = build_atlas(m, out, settings, dist=dist)
    finally:
        distributed.teardown(dist)
    if dist.main:
        typer.echo(f"{result.rendered} images rendered, {result.skipped} already there; open {result.index_html}")


def register(app: typer.Typer) -> None:
    """Add `atlas` to the main app."""
    app.command("atlas")(atlas_command)
