"""Deterministic class balancing and train/val/test splits, optionally keeping groups (artists) together.

One implementation for every split the project makes: ``imagemachines wga subset`` and ``imagemachines split``.
"""

from __future__ import annotations

import random
from collections import Counter, defaultdict
from collections.abc import Mapping

from imagemachines.errors import UserError

SPLITS = ("train", "val", "test")


def check_fractions(val: float, test: float) -> dict[str, float]:
    if not (0 <= val < 1 and 0 <= test < 1 and val + test < 1):
        raise UserError(f"--val {val} and --test {test} must each be in [0, 1) and leave some for training "
                        f"(val + test < 1).")
    return {"train": 1 - val - test, "val": val, "test": test}


def balance(by_class: dict[str, list[str]], seed: int) -> dict[str, list[str]]:
    """Down-sample every class to the size of the smallest, at random (fixed by *seed*), keeping order."""
    n = min(len(v) for v in by_class.values())
    return limit_per_class(by_class, n, seed)


def limit_per_class(by_class: dict[str, list[str]], n: int, seed: int) -> dict[str, list[str]]:
    """At most *n* ids per class, chosen at random (fixed by *seed*), keeping order."""
    out = {}
    for cls, ids in by_class.items():
        keep = set(random.Random(f"{seed}:balance:{cls}").sample(sorted(ids), min(n, len(ids))))
        out[cls] = [i for i in ids if i in keep]
    return out


def split_random(by_class: dict[str, list[str]], fractions: dict[str, float], seed: int) -> dict[str, str]:
    """Stratified split: each class shuffled (fixed by *seed*) and cut by the fractions; id -> split."""
    out = {}
    for cls, ids in by_class.items():
        order = sorted(ids)
        random.Random(f"{seed}:split:{cls}").shuffle(order)
        n_test = round(len(order) * fractions["test"])
        n_val = round(len(order) * fractions["val"])
        for k, i in enumerate(order):
            out[i] = "test" if k < n_test else "val" if k < n_test + n_val else "train"
    return out


def split_grouped(groups: Mapping[str, str], fractions: dict[str, float], seed: int,
                  labels: Mapping[str, str] | None = None) -> dict[str, str]:
    """Split so that all ids of a group land in one split; *groups* maps id -> group; returns id -> split.

    Groups are taken in an order fixed by *seed*, and each goes to the split that is furthest below its target.
    With *labels* (id -> class) the targets are per class, so every class is split by the fractions as nearly as
    its groups allow (stratified); the shortfall of each class counts relative to the class's size, so a small
    class weighs as much as a large one. Without labels (or with one class) the targets are overall sizes.
    """
    members: dict[str, list[str]] = defaultdict(list)
    for i, g in groups.items():
        members[g].append(i)
    order = sorted(members)
    random.Random(f"{seed}:groups").shuffle(order)
    label_of = (lambda i: labels[i]) if labels is not None else (lambda i: "")
    totals = Counter(label_of(i) for i in groups)
    size: dict[str, Counter] = {s: Counter() for s in SPLITS}
    used = [s for s in SPLITS if fractions[s] > 0]
    out = {}
    for g in order:
        mix = Counter(label_of(i) for i in members[g])

        def shortfall(s: str, mix: Counter = mix) -> tuple[float, int]:
            need = sum(n * (fractions[s] * totals[c] - size[s][c]) / totals[c] for c, n in mix.items())
            return need, -SPLITS.index(s)

        target = max(used, key=shortfall)
        for i in members[g]:
            out[i] = target
        size[target].update(mix)
    return out
