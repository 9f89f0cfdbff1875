"""``imagemachines predict RUN_DIR IMAGE…``: class scores for single files and folders of images."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

from rich.console import Console
from rich.table import Table

from imagemachines.errors import UserError
from imagemachines.train.data import Sample, list_images
from imagemachines.train.inference import load_run, score

console = Console(stderr=True, highlight=False)


def expand_paths(paths: Sequence[Path]) -> tuple[list[Path], list[tuple[Path, str]]]:
    """(image files to score, [(path, why not)]): folders are searched recursively, missing paths reported."""
    files, problems = [], []
    for p in map(Path, paths):
        if p.is_dir():
            found = list_images(p)
            files.extend(found)
            if not found:
                problems.append((p, "a folder without images (.jpg, .png, …)"))
        elif p.is_file():
            files.append(p)
        else:
            problems.append((p, "no such file or folder"))
    return files, problems


def predict_files(run_dir: Path, images: Sequence[Path], *, as_json: bool = False,
                  device: str = "auto") -> list[dict]:
    """Softmax scores per class for every image file given or found in a given folder (printed as a table or
    JSON); paths that are missing or unreadable get a row saying why. Returns the rows."""
    files, problems = expand_paths(images)
    model = load_run(run_dir, device)
    classes = list(model.class_names or [])
    result = score(model, [Sample(p, 0) for p in files], workers=0, desc="predicting") if files else None
    rows = []
    for path, probs in zip(result.paths, result.probs.tolist(), strict=True) if result else ():
        best = max(range(len(classes)), key=probs.__getitem__)
        rows.append({"path": str(path), "predicted": classes[best],
                     "scores": dict(zip(classes, probs, strict=True))})
    problems += [(Path(p), f"cannot read it as an image ({why})") for p, why in (result.skipped if result else ())]
    rows += [{"path": str(p), "predicted": None, "scores": None, "error": why} for p, why in problems]
    if as_json:
        print(json.dumps(rows, indent=2))
    else:
        table = Table(title=f"{model.name}: class probabilities")
        table.add_column("image")
        for c in classes:
            table.add_column(c, justify="right")
        table.add_column("predicted")
        for r in rows:
            if r["scores"] is None:
                table.add_row(r["path"], *["—"] * len(classes), f"[yellow]{r['error']}[/]")
            else:
                table.add_row(r["path"], *[f"{r['scores'][c]:.3f}" for c in classes], r["predicted"])
        Console().print(table)
    if len(problems) == len(rows):
        raise UserError("None of the paths given could be read as an image (JPEG, PNG, …); see the table.")
    return rows
