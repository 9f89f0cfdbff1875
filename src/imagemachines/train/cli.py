"""`imagemachines train | evaluate | top | predict`."""

from __future__ import annotations

from pathlib import Path

import typer

WORKERS = "0 on CPU; with CUDA, CPU cores - 1, at most 8"


def _opt(help: str, default: str, *flags: str):  # noqa: A002 - mirrors typer's keyword
    """An option whose value None means "use the default" (so --resume can tell what was given)."""
    return typer.Option(None, *flags, help=help, show_default=default)


def train(
    data_dir: Path = typer.Argument(..., help="Folder with train/ and val/ (one sub-folder per class)."),
    arch: str | None = _opt("torchvision architecture.", "inception_v3"),
    weights: str | None = _opt("imagenet | DEFAULT | a weights enum name | none | FILE (.pth/.safetensors).",
                               "imagenet"),
    freeze_through: str | None = _opt("Freeze up to and including this layer: a module name, a Keras name "
                                      "(mixed5), none, backbone, or auto.", "auto: Mixed_6c for inception_v3"),
    head: str | None = _opt("seed (1024 ReLU, then classes) | linear.", "seed"),
    image_size: int | None = _opt("Training image side in px.", "the architecture's"),
    epochs: int | None = _opt("Epochs to train.", "10"),
    batch_size: int | None = _opt("Images per step, over all processes.", "32"),
    lr: float | None = _opt("Learning rate.", "0.0001"),
    optimizer: str | None = _opt("sgd (momentum 0.9) | adamw.", "sgd"),
    augment: str | None = _opt("seed (Keras: rotate, shift, shear, zoom, flip) | light | none.", "seed"),
    balance: str | None = _opt("Unequal classes: weighted (loss) | sampler | none.", "weighted"),
    aux_weight: float | None = _opt("Weight of Inception's auxiliary loss; 0 removes the aux head, as in the "
                                    "seed (0.4 is torchvision's recipe).", "0"),
    amp: bool | None = _opt("Mixed precision on CUDA.", "on", "--amp/--no-amp"),
    seed: int | None = _opt("Random seed.", "0"),
    keep_epochs: bool | None = _opt("Keep every epoch's weights (else only the best and the last).", "keep",
                                    "--keep-epochs/--no-keep-epochs"),
    device: str | None = _opt("auto | cpu | cuda | cuda:N | mps.", "auto"),
    workers: int | None = _opt("Data-loading processes.", WORKERS),
    out: Path | None = _opt("Run directory.", "runs/<DATA_DIR name>-<arch>"),
    resume: bool = typer.Option(False, "--resume", help="Continue the run in --out after its last saved epoch."),
) -> None:
    """Fine-tune a network on an image folder; checkpoints, metrics and curves go to the run directory.

    Defaults reproduce the 2018 seed: InceptionV3, 299 px, ImageNet weights, frozen through Mixed_6c (Keras mixed5).

    Head 1024 ReLU → classes; SGD lr 1e-4, momentum 0.9; 10 epochs of batch 32; Keras augmentation.

    Scale out with: torchrun --nproc_per_node=N -m imagemachines train DATA_DIR …
    """
    from imagemachines.train.trainer import fit, prepare

    given = {
        "arch": arch, "weights": weights, "freeze_through": freeze_through, "head": head,
        "image_size": image_size, "epochs": epochs, "batch_size": batch_size, "lr": lr, "optimizer": optimizer,
        "augment": augment, "balance": balance, "aux_weight": aux_weight, "amp": amp, "seed": seed,
        "keep_epochs": keep_epochs, "device": device, "workers": workers,
        "out": None if out is None else str(out),
    }
    cfg, previous = prepare(data_dir, given, resume=resume)
    fit(cfg, previous)


RUN_DIR = typer.Argument(..., help="Run directory written by `imagemachines train`.")


def evaluate(
    run_dir: Path = RUN_DIR,
    data_dir: Path = typer.Argument(..., help="Data folder (its test/ or val/) or a folder of class folders."),
    split: str | None = _opt("train | val | test.", "test if present, else val"),
    out: Path | None = _opt("Output folder.", "RUN_DIR/eval-<split>"),
    batch_size: int = typer.Option(32, help="Images per batch."),
    device: str = typer.Option("auto", help="auto | cpu | cuda | mps."),
    workers: int | None = _opt("Data-loading processes.", WORKERS),
) -> None:
    """Accuracy, per-class precision / recall / F1, top-k, confusion matrix and misclassified images.

    Writes metrics.json, confusion.png, confusion.json, predictions.csv and misclassified.html.

    The gallery shows WGA metadata (author, title, date) when the data folder has a subset.csv.
    """
    from imagemachines.train.evaluate import evaluate_run

    evaluate_run(run_dir, data_dir, split=split, out=out, batch_size=batch_size, device=device, workers=workers)


def top(
    run_dir: Path = RUN_DIR,
    image_dir: Path = typer.Argument(..., help="Folder of images (searched recursively)."),
    class_: str = typer.Option(..., "--class", help="Class name (or number) to rank the images by."),
    k: int = typer.Option(20, "--k", help="How many images to show."),
    out: Path | None = _opt("Output folder.", "RUN_DIR/top-<class>"),
    batch_size: int = typer.Option(32, help="Images per batch."),
    device: str = typer.Option("auto", help="auto | cpu | cuda | mps."),
    workers: int | None = _opt("Data-loading processes.", WORKERS),
) -> None:
    """The images of a folder that score highest for a class: an HTML contact sheet and a CSV."""
    from imagemachines.train.top import top_images

    top_images(run_dir, image_dir, class_, k=k, out=out, batch_size=batch_size, device=device, workers=workers)


def predict(
    run_dir: Path = RUN_DIR,
    images: list[Path] = typer.Argument(..., help="Image files or folders (searched recursively)."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON instead of a table."),
    device: str = typer.Option("auto", help="auto | cpu | cuda | mps."),
) -> None:
    """Scores per class (softmax probabilities) for image files and folders.

    Paths that are missing or unreadable get a row saying why; the exit status is then 1.
    """
    from imagemachines.train.predict import predict_files

    rows = predict_files(run_dir, images, as_json=as_json, device=device)
    if any(r["scores"] is None for r in rows):
        raise typer.Exit(1)


def split(
    folder: Path = typer.Argument(..., help="Folder of images: one sub-folder per class (or any layout with "
                                            "--label-column). Nothing in it is changed."),
    out: Path = typer.Option(..., "--out", help="New or empty folder for train/, val/ (and test/); a previous "
                                                "split there is replaced."),
    val: float = typer.Option(0.2, "--val", help="Share of every class for validation."),
    test: float = typer.Option(0.0, "--test", help="Share of every class for testing (test/ only when > 0)."),
    metadata: Path | None = typer.Option(None, "--metadata", help="CSV with a path column (and e.g. label, "
                                                                  "artist), joined as `index --metadata` does."),
    label_column: str | None = typer.Option(None, "--label-column", help="Classes from this column of --metadata "
                                                                         "instead of the class folders."),
    group_by: str | None = typer.Option(None, "--group-by", help="Keep all images with one value of this "
                                                                 "--metadata column (e.g. artist) on one side."),
    classes: str | None = typer.Option(None, "--classes", help="Only these classes, comma-separated."),
    per_class: int | None = typer.Option(None, "--per-class", help="At most this many images per class (a seeded "
                                                                   "choice; for a quick first run)."),
    seed: int = typer.Option(0, "--seed", help="Seed of the split (and of --per-class)."),
    link: str = typer.Option("auto", "--link", help="auto (symbolic links, else hard links, else copies), "
                                                    "symbolic, hard or copy."),
) -> None:
    """Split a folder of paintings into train/ and val/ (and test/) for `imagemachines train`: links, not copies.

    Every class is split by the shares; --group-by keeps an artist's paintings on one side, identical files
    (same sha256) always stay together, and files Pillow cannot read are reported and left out.

    Writes split.csv (every image: side, class, original file, metadata), split.json and index.html into --out.
    """
    from rich.console import Console
    from rich.table import Table

    from imagemachines.train.folder_split import SETTINGS, SplitOptions, split_folder

    names = [c.strip() for c in classes.split(",") if c.strip()] if classes else None
    opts = SplitOptions(val=val, test=test, seed=seed, metadata=metadata, label_column=label_column,
                        group_by=group_by, classes=names, per_class=per_class, link=link)
    report = split_folder(folder, out, opts)
    console = Console(highlight=False, soft_wrap=True)
    table = Table("class", *report.splits, "total", title=f"{report.path}" + (" (replaced)" if report.replaced
                                                                                else ""))
    for row in report.rows():
        table.add_row(*row, style="bold" if row[0] == "total" else None)
    console.print(table)
    err = Console(stderr=True, highlight=False, soft_wrap=True)
    for path, reason in report.unreadable[:10]:
        err.print(f"[yellow]unreadable:[/] {path}: {reason}")
    for w in report.warnings:
        err.print(f"[yellow]warning:[/] {w}")
    kinds = ", ".join(f"{k} {v:,}" for k, v in report.links.items())
    fallback = "" if "symbolic" in report.links or link != "auto" else (
        " (symbolic links are not allowed here, so the fallback was used)")
    console.print(f"files: {kinds}{fallback}; list: {report.path / 'split.csv'}; details: "
                  f"{report.path / SETTINGS}; overview: {report.path / 'index.html'}")
    console.print(f"next: imagemachines train {report.path}")


def register(app: typer.Typer) -> None:
    """Add the training and evaluation commands to the main app."""
    for command in (train, evaluate, top, predict, split):
        app.command()(command)
