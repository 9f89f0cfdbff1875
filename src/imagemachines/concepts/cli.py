"""`imagemachines concepts MODEL IMAGE_DIR`: what a network uses to call a painting a portrait, a landscape…"""

from __future__ import annotations

from pathlib import Path

import typer

MODEL_HELP = "A torchvision model name (e.g. mobilenet_v2) or a run directory from `train` (class names from the run)."
WEIGHTS_HELP = "imagenet | DEFAULT | a weights enum name | none | FILE (.pth/.safetensors)."


def concepts_command(
    model: str = typer.Argument(..., help=MODEL_HELP),
    image_dir: Path = typer.Argument(None, help="Folder of paintings, searched recursively (class folders, a WGA "
                                                "subset or any folder); or give --index."),
    index: Path = typer.Option(None, "--index", help="A collection index (`imagemachines index`): its paintings and "
                                                     "metadata."),
    class_: str = typer.Option(None, "--class", "-c", help="Class names or numbers, comma-separated."),
    classes: str = typer.Option(None, "--classes", help="'all' (every class with paintings), or names like --class."),
    label_column: str = typer.Option(None, help="Metadata column naming each painting's class (default: a 'label' "
                                                "column, else class folders, else the model's top-1 class)."),
    metadata: Path = typer.Option(None, help="CSV with a 'path' column whose other columns travel with the paintings "
                                             "(a WGA subset.csv is found by itself)."),
    predicted: bool = typer.Option(False, "--predicted", help="Take the paintings the model ranks top-1 as the class, "
                                                              "even where there are labels."),
    layer: str = typer.Option(None, "--layer", "-l", help="Layer to find concepts in (default: the deepest layer with "
                                                          "a spatial map before the global pooling)."),
    concepts: int = typer.Option(10, "--concepts", "-k", help="Concepts per class."),
    crop: float = typer.Option(0.3, help="Crop side as a fraction of the painting's side."),
    stride: float = typer.Option(0.25, help="Distance between crops as a fraction of the painting's side."),
    max_images: int = typer.Option(200, help="At most this many paintings per class (a seeded sample)."),
    seed: int = typer.Option(0, help="Seed of the factorisation, the Sobol design, the samples and the renders."),
    design: int = typer.Option(32, help="Sobol design points (CRAFT's 32); each painting takes (K + 2) × this many "
                                        "passes through the rest of the network."),
    draws: int = typer.Option(10, help="Random orders averaged for the random deletion and insertion curves."),
    crops_shown: int = typer.Option(10, help="Best crops shown per concept (at most one per painting)."),
    render: bool = typer.Option(True, "--render/--no-render", help="Render each concept (feature visualization)."),
    render_size: int = typer.Option(128, help="Render side in px."),
    render_steps: int = typer.Option(128, help="Render optimisation steps."),
    out: Path = typer.Option(None, help="Output folder (default: out/concepts-<model>)."),
    cache: Path = typer.Option(None, help="Where activations are kept between runs (default: the user cache)."),
    weights: str = typer.Option("imagenet", help=WEIGHTS_HELP),
    device: str = typer.Option("auto", help="auto | cpu | cuda | cuda:N | mps."),
    batch_size: int = typer.Option(None, help="Crops per forward pass (default 32 on CPU, 128 on CUDA)."),
) -> None:
    """Concepts of each class: crops of its paintings factorised into concepts at a layer, ranked by how much the
    class score depends on them (total Sobol indices, ablation), each shown by its best crops, its map over whole
    paintings and a render, with deletion and insertion curves that test whether they matter.

    Writes concepts.html, concepts.json and concepts.safetensors. Activations are cached: a second run with
    another --concepts or --seed skips the network's pass over the crops. Scale out with:
    torchrun --nproc_per_node=N -m imagemachines concepts MODEL IMAGE_DIR …
    """
    from rich.console import Console

    from imagemachines.concepts.discovery import Settings, discover
    from imagemachines.errors import UserError
    from imagemachines.models import load_model
    from imagemachines.train import distributed

    if class_ and classes:
        raise UserError("Give either --class or --classes, not both.")
    if (image_dir is None) == (index is None):
        raise UserError("Give the paintings: an IMAGE_DIR, or --index INDEX (not both).")
    settings = Settings(concepts=concepts, crop=crop, stride=stride, max_images=max_images, seed=seed, design=design,
                        draws=draws, crops_shown=crops_shown, render=render, render_size=render_size,
                        render_steps=render_steps)
    images = _paintings(image_dir, index)
    ref = str(Path(model).resolve()) if Path(model).is_dir() else model
    loaded = load_model(ref, weights=weights, device=device)
    dist = distributed.from_env()
    dev = distributed.setup(dist, loaded.device)
    if dev != loaded.device:
        loaded.to(dev)
    console = Console(stderr=True, highlight=False)
    try:
        study = discover(loaded, images, classes or class_ or "all", layer=layer, settings=settings,
                         metadata=metadata, label_column=label_column, predicted=predicted, cache=cache,
                         batch_size=batch_size, dist=dist, log=console.print if dist.main else None)
    finally:
        distributed.teardown(dist)
    if study is None:
        return
    slug = "".join(ch if ch.isalnum() or ch in "-_." else "-" for ch in loaded.name)
    target = out or Path("out") / f"concepts-{slug}"
    page = study.save(target)
    for name, c in study.classes.items():
        s = c.summary()
        console.print(
            f"{name}: {len(c.paths)} paintings, R² {c.r2:.2f}, logit kept {c.curves.logit_share:.2f}, stability "
            f"{c.stability.mean:.2f}; p({name}) {s['probability']:.3f} → {s['probability'] - s['drop_top']:.3f} "
            f"without the top {s['steps']} concepts, {s['probability'] - s['drop_random']:.3f} without {s['steps']} "
            f"random ones, {s['probability'] - s['drop_units']:.3f} without the top {s['steps']} units")
    computed = sum(t.get("computed_images", 0) for t in study.timings.values() if isinstance(t, dict))
    console.print(f"{computed} paintings went through the network, the rest came from the cache; "
                  f"{study.timings.get('total_s', 0):.0f} s in all.")
    console.print(f"page: {page}")
    typer.echo(str(page))


def _paintings(image_dir: Path | None, index: Path | None):
    """The folder (checked now, before the model loads), or the opened index."""
    if index is not None:
        from imagemachines.index import open_index

        return open_index(index)
    from imagemachines.index.scan import scan_folder

    scan_folder(image_dir)  # a missing or empty folder is reported before the model loads
    return image_dir


def register(app: typer.Typer) -> None:
    """Add `concepts` to the main app."""
    app.command("concepts")(concepts_command)
