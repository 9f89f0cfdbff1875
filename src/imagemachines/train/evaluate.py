"""``imagemachines evaluate RUN_DIR DATA_DIR``: how well a trained run classifies a labelled image folder."""

from __future__ import annotations

import io
import json
from pathlib import Path

import torch
from rich.console import Console
from rich.table import Table

from imagemachines import csvfiles
from imagemachines.errors import UserError
from imagemachines.train.data import scan_split, split_dir
from imagemachines.train.gallery import Card, Metadata, write_page
from imagemachines.train.inference import Scores, load_run, score
from imagemachines.train.metrics import confusion_matrix, summary
from imagemachines.train.runio import write_json, write_text

console = Console(stderr=True, highlight=False)


def pick_folder(data_dir: Path, split: str | None) -> Path:
    """``DATA_DIR/split``; by default test/, else val/, else DATA_DIR itself when it holds class folders."""
    if split:
        return split_dir(data_dir, split)
    if not data_dir.is_dir():
        raise UserError(f"Data folder {data_dir} does not exist.")
    for name in ("test", "val"):
        if (data_dir / name).is_dir():
            return data_dir / name
    if any(p.is_dir() for p in data_dir.iterdir()):
        return data_dir
    raise UserError(f"{data_dir} holds neither test/ nor val/ nor class folders; give a data folder written by "
                    "`imagemachines split` or `imagemachines wga subset`.")


def default_out(run_dir: Path, data_dir: Path, folder: Path) -> Path:
    """``RUN_DIR/eval-<data folder>-<split>``, or ``eval-<data folder>`` when DATA_DIR holds the classes itself."""
    data_dir, folder = data_dir.resolve(), folder.resolve()
    return run_dir / f"eval-{folder.name if folder == data_dir else f'{data_dir.name}-{folder.name}'}"


def check_not_other_data(out: Path, folder: Path) -> None:
    """Refuse to overwrite the evaluation of another data folder (the same folder again is an update)."""
    try:
        earlier = json.loads((out / "metrics.json").read_text())["data"]
    except (OSError, ValueError, KeyError, TypeError):
        return
    if Path(earlier).resolve() != folder.resolve():
        raise UserError(f"{out} holds the evaluation of {earlier}; give another folder with --out DIR to keep it.")


def evaluate_run(run_dir: Path, data_dir: Path, *, split: str | None = None, out: Path | None = None,
                 batch_size: int = 32, device: str = "auto", workers: int | None = None) -> dict:
    """Score every image of the chosen folder and write metrics, confusion matrix and galleries; returns
    the metrics."""
    model = load_run(run_dir, device)
    folder = pick_folder(Path(data_dir), split)
    classes, samples = scan_split(folder, model.class_names)
    if not samples:
        raise UserError(f"{folder} holds no images in its class folders.")
    scores = score(model, samples, batch_size=batch_size, workers=workers, desc=f"evaluating {folder.name}")
    if not scores.paths:
        raise UserError(f"None of the {len(samples)} images in {folder} could be read.")
    labels = torch.tensor(scores.labels)
    preds = scores.probs.argmax(1)
    confusion = confusion_matrix(labels.tolist(), preds.tolist(), len(classes))
    result = summary(confusion, classes, scores.probs, labels)
    result.update(run=str(Path(run_dir)), model=model.name, weights_id=model.weights_id, data=str(folder),
                  skipped=[{"path": str(p), "error": e} for p, e in scores.skipped])
    out = Path(out) if out else default_out(Path(run_dir), Path(data_dir), folder)
    check_not_other_data(out, folder)
    _write(out, result, scores, classes, Metadata.near(folder))
    _print(result, out)
    return result


def _write(out: Path, result: dict, scores: Scores, classes: list[str], meta: Metadata) -> None:
    from imagemachines.train.plots import confusion as plot_confusion

    out.mkdir(parents=True, exist_ok=True)
    write_json(out / "metrics.json", result)
    write_json(out / "confusion.json", {"class_names": classes, "rows": "true class", "columns": "predicted class",
                                        "matrix": result["confusion"]})
    plot_confusion(result["confusion"], classes, out / "confusion.png",
                   title=f"{result['model']}: accuracy {result['accuracy']:.3f} on {result['images']} images")
    buf = io.StringIO()
    w = csvfiles.writer(buf)
    w.writerow(["path", "true", "predicted", "correct", *[f"score_{c}" for c in classes], *meta.columns])
    cards = []
    for i, path in enumerate(scores.paths):
        t, p = scores.labels[i], int(scores.probs[i].argmax())
        probs = scores.probs[i].tolist()
        info = meta.get(path)
        w.writerow([str(path), classes[t], classes[p], int(t == p), *[f"{v:.6f}" for v in probs],
                    *[info.get(c, "") for c in meta.columns]])
        if t != p:
            cards.append((probs[p], Card(path, [
                ("", path.name), ("good", f"true: {classes[t]} ({probs[t]:.3f})"),
                ("bad", f"predicted: {classes[p]} ({probs[p]:.3f})"), *meta.lines(path),
            ], dict(zip(classes, probs, strict=True)))))
    write_text(out / "predictions.csv", buf.getvalue())
    cards.sort(key=lambda c: -c[0])
    write_page(out / "misclassified.html", f"Misclassified: {len(cards)} of {result['images']} images",
               [c for _, c in cards],
               note=f"Model {result['model']} on {result['data']}, most confident mistakes first.")


def _print(result: dict, out: Path) -> None:
    table = Table(title=f"{result['model']} on {result['data']}")
    for col in ("class", "precision", "recall", "F1", "images"):
        table.add_column(col, justify="left" if col == "class" else "right")
    for r in result["per_class"]:
        table.add_row(r["class"], f"{r['precision']:.3f}", f"{r['recall']:.3f}", f"{r['f1']:.3f}",
                      str(r["support"]))
    Console().print(table)
    topk = ", ".join(f"{k} {v:.3f}" for k, v in result.get("top_k", {}).items())
    console.print(f"accuracy {result['accuracy']:.3f} on {result['images']} images ({topk}); "
                  f"{len(result['skipped'])} unreadable. Written to {out}/ (metrics.json, confusion.png, "
                  "misclassified.html, predictions.csv).")
