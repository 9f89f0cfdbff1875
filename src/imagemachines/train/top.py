"""``imagemachines top RUN_DIR IMAGE_DIR --class portrait --k 20``: the images a class fits best (the seed's
test notebook): an HTML contact sheet and a CSV."""

from __future__ import annotations

import io
import re
from pathlib import Path

from rich.console import Console

from imagemachines import csvfiles
from imagemachines.errors import UnitOutOfRange, UserError, did_you_mean
from imagemachines.train.data import Sample, list_images
from imagemachines.train.gallery import Card, Metadata, write_page
from imagemachines.train.inference import load_run, score
from imagemachines.train.runio import write_text

console = Console(stderr=True, highlight=False)


def class_index(name: str, classes: list[str]) -> int:
    """A class given by name or by number."""
    if name in classes:
        return classes.index(name)
    if name.isdigit():
        i = int(name)
        if i < len(classes):
            return i
        raise UnitOutOfRange(f"Class {i} is out of range: the run has classes 0 to {len(classes) - 1} "
                             f"({', '.join(classes)}).")
    raise UserError(f"The run has no class {name!r}.{did_you_mean(name, classes)} Its classes are: "
                    f"{', '.join(classes)}.")


def top_images(run_dir: Path, image_dir: Path, class_name: str, *, k: int = 20, out: Path | None = None,
               batch_size: int = 32, device: str = "auto", workers: int | None = None) -> list[dict]:
    """The *k* images of *image_dir* (recursively) with the highest probability for the class; returns rows."""
    if k < 1:
        raise UserError("--k must be at least 1.")
    model = load_run(run_dir, device)
    classes = list(model.class_names or [])
    c = class_index(class_name, classes)
    image_dir = Path(image_dir)
    if not image_dir.is_dir():
        raise UserError(f"{image_dir} is not a folder of images.")
    paths = list_images(image_dir)
    if not paths:
        raise UserError(f"{image_dir} holds no images (.jpg, .png, …).")
    scores = score(model, [Sample(p, 0) for p in paths], batch_size=batch_size, workers=workers,
                   desc=f"scoring for {classes[c]}")
    order = scores.probs[:, c].argsort(descending=True)[:k].tolist() if scores.paths else []
    meta = Metadata.near(image_dir)
    rows, cards = [], []
    for rank, i in enumerate(order, 1):
        path, probs = scores.paths[i], scores.probs[i].tolist()
        best = max(range(len(classes)), key=probs.__getitem__)
        rows.append({"rank": rank, "path": str(path), "score": probs[c], "predicted": classes[best],
                     **{col: meta.get(path).get(col, "") for col in meta.columns}})
        cards.append(Card(path, [("good", f"#{rank}  {classes[c]} {probs[c]:.3f}"), ("", path.name),
                                 *meta.lines(path)], dict(zip(classes, probs, strict=True))))
    slug = re.sub(r"[^A-Za-z0-9_-]+", "-", classes[c]).strip("-") or str(c)
    out = Path(out) if out else Path(run_dir) / f"top-{slug}"
    out.mkdir(parents=True, exist_ok=True)
    buf = io.StringIO()
    w = csvfiles.dict_writer(buf, fieldnames=["rank", "path", "score", "predicted", *meta.columns])
    w.writeheader()
    w.writerows(rows)
    write_text(out / "top.csv", buf.getvalue())
    write_page(out / "top.html", f"Top {len(rows)} for {classes[c]!r} ({model.name})", cards,
               note=f"{len(scores.paths)} images of {image_dir} ranked by the probability of {classes[c]}; "
                    f"{len(scores.skipped)} unreadable.")
    console.print(f"Top {len(rows)} of {len(scores.paths)} images for {classes[c]!r} written to "
                  f"{out / 'top.html'} and {out / 'top.csv'}"
                  + (f"; skipped {len(scores.skipped)} unreadable." if scores.skipped else "."))
    return rows
