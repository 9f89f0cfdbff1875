"""Classification metrics from a confusion matrix and a score table (no scikit-learn needed)."""

from __future__ import annotations

from collections.abc import Sequence

import torch


def confusion_matrix(true: Sequence[int], pred: Sequence[int], n_classes: int) -> torch.Tensor:
    """``m[t, p]`` = how many images of class *t* were predicted as *p*."""
    m = torch.zeros(n_classes, n_classes, dtype=torch.long)
    for t, p in zip(true, pred, strict=True):
        m[t, p] += 1
    return m


def per_class(confusion: torch.Tensor, classes: Sequence[str]) -> list[dict]:
    """Precision, recall, F1 and support of every class (0 where undefined)."""
    m = confusion.double()
    tp = m.diag()
    predicted, actual = m.sum(0), m.sum(1)
    rows = []
    for i, name in enumerate(classes):
        p = float(tp[i] / predicted[i]) if predicted[i] else 0.0
        r = float(tp[i] / actual[i]) if actual[i] else 0.0
        f1 = 2 * p * r / (p + r) if p + r else 0.0
        rows.append({"class": name, "precision": p, "recall": r, "f1": f1, "support": int(actual[i])})
    return rows


def top_k_accuracy(scores: torch.Tensor, labels: torch.Tensor, ks: Sequence[int]) -> dict[str, float]:
    """Share of images whose true class is among the *k* highest scores, for every k in *ks*."""
    out = {}
    for k in ks:
        k = min(k, scores.shape[1])
        top = scores.topk(k, dim=1).indices
        out[f"top{k}"] = float((top == labels[:, None]).any(1).double().mean()) if len(labels) else 0.0
    return out


def summary(confusion: torch.Tensor, classes: Sequence[str], scores: torch.Tensor | None = None,
            labels: torch.Tensor | None = None) -> dict:
    """Accuracy, per-class and macro precision/recall/F1, top-k (when scores are given), the matrix itself."""
    n = int(confusion.sum())
    rows = per_class(confusion, classes)
    present = [r for r in rows if r["support"]] or rows
    out = {
        "images": n,
        "accuracy": float(confusion.diag().sum() / n) if n else 0.0,
        "macro": {k: sum(r[k] for r in present) / len(present) for k in ("precision", "recall", "f1")},
        "per_class": rows,
        "class_names": list(classes),
        "confusion": confusion.tolist(),
    }
    if scores is not None and labels is not None:
        out["top_k"] = top_k_accuracy(scores, labels, sorted({k for k in (1, 3, 5) if k <= len(classes)}))
    return out
