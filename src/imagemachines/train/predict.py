"""``imagemachines predict RUN_DIR IMAGE…``: class scores for single files."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

from rich.console import Console
from rich.table import Table

from imagemachines.errors import UserError
from imagemachines.train.data import Sample
from imagemachines.train.inference import load_run, score

console = Console(stderr=True, highlight=False)


def predict_files(run_dir: Path, images: Sequence[Path], *, as_json: bool = False,
                  device: str = "auto") -> list[dict]:
    """Softmax scores per class for every readable file (printed as a table or JSON); returns them."""
    missing = [str(p) for p in images if not Path(p).is_file()]
    if missing:
        raise UserError(f"No such image file: {', '.join(missing[:5])}.")
    model = load_run(run_dir, device)
    classes = list(model.class_names or [])
    result = score(model, [Sample(Path(p), 0) for p in images], workers=0, desc="predicting")
    rows = []
    for path, probs in zip(result.paths, result.probs.tolist(), strict=True):
        best = max(range(len(classes)), key=probs.__getitem__)
        rows.append({"path": str(path), "predicted": classes[best],
                     "scores": dict(zip(classes, probs, strict=True))})
    for path, why in result.skipped:
        console.print(f"[yellow]Skipped {path}[/]: cannot read it as an image ({why}).")
    if not rows:
        raise UserError("None of the files could be read as an image (JPEG, PNG, …).")
    if as_json:
        print(json.dumps(rows, indent=2))
        return rows
    table = Table(title=f"{model.name}: class probabilities")
    table.add_column("image")
    for c in classes:
        table.add_column(c, justify="right")
    table.add_column("predicted")
    for r in rows:
        table.add_row(Path(r["path"]).name, *[f"{r['scores'][c]:.3f}" for c in classes], r["predicted"])
    Console().print(table)
    return rows
