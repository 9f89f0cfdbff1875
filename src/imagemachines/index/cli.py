"""`imagemachines index`, `imagemachines examples` and `imagemachines export`."""

from __future__ import annotations

from pathlib import Path

import typer

WEIGHTS_HELP = "imagenet | DEFAULT | a weights enum name | none | FILE (.pth/.safetensors)."


def index(
    model: str = typer.Argument(..., help="A model name (mobilenet_v2, …) or a run directory of `train`."),
    image_dir: Path = typer.Argument(..., help="Folder of images, searched recursively (an ImageFolder or a WGA "
                                               "subset works as it is)."),
    layers: str = typer.Option(None, help="Comma-separated layer names, or 'all' (every module). Default: the "
                                          "top-level blocks and logits."),
    k: int = typer.Option(32, "--k", help="Top and bottom images kept per unit."),
    pooled: bool = typer.Option(True, "--pooled/--no-pooled",
                                help="Store every image's pooled activations (reverse lookup, similarity)."),
    metadata: Path = typer.Option(None, help="CSV with a 'path' column to join (subset.csv of a WGA subset is "
                                             "joined automatically)."),
    out: Path = typer.Option(None, help="Index folder. Default: <parent of IMAGE_DIR>/index/<IMAGE_DIR name>-<model>."),
    weights: str = typer.Option("imagenet", help=WEIGHTS_HELP),
    batch_size: int = typer.Option(None, help="Images per forward pass (default 16 on CPU, 64 on CUDA)."),
    device: str = typer.Option("auto", help="auto | cpu | cuda | cuda:N | mps."),
    workers: int = typer.Option(None, help="Data-loading processes (0 on CPU; with CUDA, cores - 1, at most 8)."),
    chunk: int = typer.Option(512, help="Images per committed chunk: an interruption loses at most one chunk."),
    rebuild: bool = typer.Option(False, "--rebuild", help="Replace an index made with other settings in --out."),
    rehash: bool = typer.Option(False, "--rehash", help="Hash every file again (else only files whose size or "
                                                        "modification time changed)."),
    ranking: str = typer.Option("interior", help="Where a unit's value on a painting is taken: interior (its "
                                                 "maximum over the cells off the map's border; default), reflect "
                                                 "(the painting mirrored outward, its maximum over the painting's "
                                                 "cells) or full (every cell). See docs/examples.md."),
) -> None:
    """Index a collection: every chosen unit's top/bottom-k images (with the position of their strongest spot),
    its distribution over the collection, and each image's pooled activations.

    Run it again after adding, changing or removing images: only those are processed. An interrupted run
    resumes. Scale out with: torchrun --nproc_per_node=N -m imagemachines index MODEL IMAGE_DIR …
    """
    from rich.console import Console

    from imagemachines.index.build import build_index
    from imagemachines.index.peaks import check_ranking
    from imagemachines.index.query import open_index
    from imagemachines.index.scan import scan_folder
    from imagemachines.models import load_model
    from imagemachines.train.distributed import from_env

    check_ranking(ranking)
    scan_folder(image_dir)  # a missing or empty folder is reported before the model loads
    ref = str(Path(model).resolve()) if Path(model).is_dir() else model
    if weights and Path(weights).expanduser().is_file():
        weights = str(Path(weights).expanduser().resolve())  # recorded for `examples`, from any folder
    loaded = load_model(ref, weights=weights, device=device)
    path = build_index(loaded, image_dir, out, layers=layers, k=k, pooled=pooled, metadata=metadata,
                       batch_size=batch_size, workers=workers, chunk_size=chunk, rebuild=rebuild, rehash=rehash,
                       model_ref=ref, weights=weights, ranking=ranking)
    if from_env().main:
        idx = open_index(path)
        bad = idx.unreadable()
        console = Console(stderr=True, highlight=False)
        for p, why in bad[:20]:
            console.print(f"[yellow]unreadable:[/] {p}: {why}")
        if len(bad) > 20:
            console.print(f"… and {len(bad) - 20} more unreadable files (listed in {path / 'index.json'}).")
        groups = idx.duplicates()
        for group in groups[:20]:
            console.print(f"[yellow]same image:[/] {' = '.join(i.path for i in group)} (shown once, as "
                          f"{group[0].path})")
        if len(groups) > 20:
            console.print(f"… and {len(groups) - 20} more groups of identical files (listed in "
                          f"{path / 'index.json'}).")
        copies = sum(len(g) - 1 for g in groups)
        console.print(f"Indexed {idx.n_images} images ({len(bad)} unreadable"
                      + (f", {copies} copies of another file, each painting shown once" if copies else "")
                      + f") for {len(idx.layers)} layers of {idx.model_name} into {path}")
        typer.echo(str(path))


def examples(
    index_dir: Path = typer.Argument(..., help="An index folder made by `imagemachines index`."),
    layer: str = typer.Option(None, help="Layer of the unit."),
    channel: int = typer.Option(None, help="Channel (unit) of the layer."),
    class_: str = typer.Option(None, "--class", help="A class name or number (the logits layer)."),
    negative: bool = typer.Option(False, "--negative", help="The bottom-k images instead of the top-k."),
    k: int = typer.Option(None, "--k", help="How many examples (at most the index's k)."),
    out: Path = typer.Option(None, help="Output folder. Default: INDEX/examples/<layer>_<channel>[-negative]."),
    render: bool = typer.Option(True, "--render/--no-render", help="Render the unit beside its examples."),
    render_size: int = typer.Option(128, help="Render side in px (small by default: seconds on a CPU)."),
    render_steps: int = typer.Option(128, help="Render optimisation steps (small by default, see --render-size)."),
    model: str = typer.Option(None, help="Load this model instead of the one recorded in the index (same weights)."),
    weights: str = typer.Option(None, help=WEIGHTS_HELP),
    device: str = typer.Option("auto", help="auto | cpu | cuda | cuda:N | mps."),
    heat: bool = typer.Option(True, "--heat/--no-heat", help="Heat overlays (needs the model)."),
) -> None:
    """A unit's top (or bottom) paintings: examples.html (render, heat overlay toggle, crops, values,
    percentiles, metadata; works offline) and examples.csv."""
    from rich.console import Console

    from imagemachines.errors import UserError
    from imagemachines.index.examples import class_channel, load_index_model, write_examples
    from imagemachines.index.query import open_index
    from imagemachines.models.taps import LOGITS

    idx = open_index(index_dir)
    if class_ is not None:
        if layer not in (None, LOGITS) or channel is not None:
            raise UserError("Give either --class or --layer with --channel, not both.")
        layer, channel = LOGITS, class_channel(idx, class_)
    elif layer is None or channel is None:
        raise UserError("Say which unit: --layer L --channel C, or --class NAME.")
    idx.check_unit(layer, channel)
    loaded = load_index_model(idx, model, weights, device) if heat or render else None
    slug = f"{layer.replace('.', '-')}_{channel}" + ("-negative" if negative else "")
    target = out or idx.path / "examples" / slug
    page = write_examples(idx, loaded, layer, channel, target, k=k, negative=negative, render=render,
                          render_size=render_size, render_steps=render_steps)
    Console(stderr=True, highlight=False).print(f"Wrote {page} and {target / 'examples.csv'}")
    typer.echo(str(page))


def export(
    index_dir: Path = typer.Argument(..., help="An index folder made by `imagemachines index`."),
    layer: str = typer.Option(..., help="Layer(s) to export, comma-separated."),
    out: Path = typer.Option(..., help="The table: a file ending in .csv or .parquet (Parquet needs pyarrow)."),
    values: str = typer.Option("max", help="max (the unit's value as ranked: the examples' scale), mean (the "
                                           "pooled activation) or both."),
    units: str = typer.Option("all", help="Units of each layer: all, N, A-B or a comma list like 0-7,12."),
) -> None:
    """The painting × unit table of an index with every painting's metadata, as CSV (spreadsheet-safe) or Parquet:
    one row per painting, one column per unit, for statistics of your own."""
    from rich.console import Console

    from imagemachines.index.export import export_table
    from imagemachines.index.query import open_index

    idx = open_index(index_dir)
    layers = [name.strip() for name in layer.split(",") if name.strip()]
    path = export_table(idx, out, layers, values=values, units=units)
    Console(stderr=True, highlight=False).print(f"Wrote {idx.n_images} paintings × {', '.join(layers)} to {path}")
    typer.echo(str(path))


def register(app: typer.Typer) -> None:
    """Add `index`, `examples` and `export` to the main app."""
    app.command()(index)
    app.command()(examples)
    app.command()(export)
