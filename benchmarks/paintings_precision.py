"""Real paintings (../shared/data/paintings): fine-tune MobileNetV2 on a few labels, index the held-out
paintings, and measure how many of each class logit's top-k examples carry that label (precision@k).

Used by ``tests/index/test_paintings.py`` (small, asserts a floor) and ``benchmarks/bench_index.py`` (writes
the numbers into docs/benchmarks.md). The training images are left out of the indexed collection, so the
numbers are on paintings the network has not seen; every label of the collection is indexed, also the ones
the network was not trained on (they are the distractors).
"""

from __future__ import annotations

import csv
import random
import time
from pathlib import Path

SHARED = Path(__file__).resolve().parents[2] / "shared"
PAINTINGS = SHARED / "data" / "paintings"
LABELS = ("landscape", "genre", "portrait")


def read_labels(root: Path = PAINTINGS) -> dict[str, str]:
    """{relative path under images/: label}."""
    with open(root / "labels.csv", newline="", encoding="utf-8") as f:
        return {row["path"]: row["label"] for row in csv.DictReader(f)}


def split(root: Path, dest: Path, labels=LABELS, n_train: int = 30, n_val: int = 8, seed: int = 0,
          heldout_labels=None) -> tuple[Path, Path]:
    """Symlinks: ``dest/data/{train,val}/<label>/`` for training and ``dest/heldout/<label>/`` with every other
    painting of the collection (of *heldout_labels*, default all). Returns (data folder, held-out folder)."""
    by_label: dict[str, list[str]] = {}
    for path, label in sorted(read_labels(root).items()):
        by_label.setdefault(label, []).append(path)
    rng = random.Random(seed)
    used: set[str] = set()
    for label in labels:
        paths = by_label[label][:]
        rng.shuffle(paths)
        for part, chosen in (("train", paths[:n_train]), ("val", paths[n_train:n_train + n_val])):
            for p in chosen:
                link = dest / "data" / part / label / Path(p).name
                link.parent.mkdir(parents=True, exist_ok=True)
                link.symlink_to(root / "images" / p)
                used.add(p)
    for label, paths in by_label.items():
        if heldout_labels is not None and label not in heldout_labels:
            continue
        for p in paths:
            if p not in used:
                link = dest / "heldout" / p
                link.parent.mkdir(parents=True, exist_ok=True)
                link.symlink_to(root / "images" / p)
    return dest / "data", dest / "heldout"


def finetune(data: Path, out: Path, *, image_size: int = 128, epochs: int = 3, freeze: str = "features.13",
             lr: float = 1e-3) -> Path:
    """MobileNetV2 from its ImageNet weights, frozen through *freeze*, linear head (AdamW); returns the run."""
    from imagemachines.train.trainer import fit, prepare

    cfg, previous = prepare(data, {"arch": "mobilenet_v2", "weights": "imagenet", "freeze_through": freeze,
                                   "head": "linear", "image_size": image_size, "epochs": epochs,
                                   "batch_size": 16, "optimizer": "adamw", "lr": lr, "augment": "light",
                                   "workers": 0, "device": "cpu", "amp": False, "out": str(out)})
    return fit(cfg, previous)


def precision_at_k(index, ks=(5, 10, 20)) -> dict[str, dict[int, float]]:
    """Per class of the indexed run: the share of its logit's top-k paintings whose label is that class."""
    classes = index.manifest["class_names"]
    result = {}
    for c, name in enumerate(classes):
        top = index.examples("logits", c, k=max(ks))
        hits = [index.image(e.image_id).meta.get("label") == name for e in top]
        result[name] = {k: sum(hits[:k]) / min(k, len(hits)) for k in ks}
    return result


def run(tmp: Path, *, labels=LABELS, n_train: int = 30, n_val: int = 8, image_size: int = 128, epochs: int = 3,
        freeze: str = "features.13", lr: float = 1e-3, ks=(5, 10, 20), progress: bool = False,
        heldout_labels=None) -> tuple[dict[str, dict[int, float]], Path, dict]:
    """Split, fine-tune, index the held-out paintings; (precision@k, index folder, facts for the report)."""
    from imagemachines.index import build_index, open_index
    from imagemachines.models import load_model

    data, heldout = split(PAINTINGS, tmp / "split", labels, n_train, n_val, heldout_labels=heldout_labels)
    t0 = time.perf_counter()
    run_dir = finetune(data, tmp / "run", image_size=image_size, epochs=epochs, freeze=freeze, lr=lr)
    t1 = time.perf_counter()
    model = load_model(str(run_dir), device="cpu")
    out = build_index(model, heldout, tmp / "index", k=max(ks), metadata=PAINTINGS / "labels.csv",
                      progress=progress, model_ref=str(run_dir))
    index = open_index(out)
    t2 = time.perf_counter()
    counts: dict[str, int] = {}
    for info in index.images():
        counts[info.meta.get("label", "?")] = counts.get(info.meta.get("label", "?"), 0) + 1
    facts = {"n_indexed": index.n_images, "counts": counts, "n_train": n_train, "n_val": n_val,
             "image_size": image_size, "epochs": epochs, "labels": list(labels), "freeze": freeze,
             "train_s": t1 - t0, "index_s": t2 - t1}
    return precision_at_k(index, ks), out, facts
