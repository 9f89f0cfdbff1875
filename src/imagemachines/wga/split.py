"""Deterministic class balancing and train/val/test splits, optionally keeping groups (artists) together."""

from __future__ import annotations

import random
from collections import defaultdict

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
    out = {}
    for cls, ids in by_class.items():
        keep = set(random.Random(f"{seed}:balance:{cls}").sample(sorted(ids), n))
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


def split_grouped(groups: dict[str, str], fractions: dict[str, float], seed: int) -> dict[str, str]:
    """Split so that all ids of a group land in one split; *groups* maps id -> group; id -> split.

    Groups are taken in an order fixed by *seed* and each goes to the split furthest below its target size.
    """
    members: dict[str, list[str]] = defaultdict(list)
    for i, g in groups.items():
        members[g].append(i)
    order = sorted(members)
    random.Random(f"{seed}:groups").shuffle(order)
    total = len(groups)
    size = dict.fromkeys(SPLITS, 0)
    out = {}
    used = [s for s in SPLITS if fractions[s] > 0]
    for g in order:
        target = max(used, key=lambda s: (fractions[s] * total - size[s], -SPLITS.index(s)))
        for i in members[g]:
            out[i] = target
        size[target] += len(members[g])
    return out
