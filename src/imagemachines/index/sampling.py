"""A seeded sample of a collection that covers it: every label (class folder or metadata column) in proportion.

The first N files in sorted order are one corner of a collection (with label folders: the first labels only);
``sample_images`` draws from every label instead, in proportion to its size, at least one image each.
"""

from __future__ import annotations

import random
from collections import defaultdict
from collections.abc import Mapping
from pathlib import Path

from imagemachines.errors import UserError


def allocate(sizes: Mapping[str, int], n: int) -> dict[str, int]:
    """How many of *n* to draw from each label of *sizes*: proportional (largest remainder), at least one per label
    when *n* allows, never more than a label has."""
    total = sum(sizes.values())
    if n >= total:
        return dict(sizes)
    quota = {c: n * k / total for c, k in sizes.items()}
    take = {c: int(q) for c, q in quota.items()}
    if n >= len(sizes):
        take = {c: max(t, 1) for c, t in take.items()}  # sizes are >= 1 here: labels come from members
    while sum(take.values()) > n:  # the boosts above overshot: take back where a label got most above its quota
        c = max((c for c in take if take[c] > 1), key=lambda c: (take[c] - quota[c], c))
        take[c] -= 1
    while sum(take.values()) < n:  # floors left some over: to the largest remainders
        c = max((c for c in take if take[c] < sizes[c]), key=lambda c: (quota[c] - take[c], sizes[c], c))
        take[c] += 1
    return take


def stratified_sample(labels: Mapping[str, str], n: int, seed: int = 0) -> list[str]:
    """*n* keys of *labels* (key -> label), every label in proportion (see :func:`allocate`); sorted.

    The choice within a label depends only on the seed, the label and its members, not on the other labels.
    """
    if n < 0:
        raise UserError(f"A sample of {n} images: give a number of at least 0.")
    members: dict[str, list[str]] = defaultdict(list)
    for key, label in labels.items():
        members[label].append(key)
    take = allocate({c: len(v) for c, v in members.items()}, n)
    picked: list[str] = []
    for label, keys in members.items():
        picked += random.Random(f"{seed}:sample:{label}").sample(sorted(keys), take[label])
    return sorted(picked)


def collection_labels(root: Path, rel_paths: list[str], metadata: Path | None = None,
                      label_column: str | None = None) -> dict[str, str]:
    """Each image's label: the *label_column* of the *metadata* CSV, else its class folder ("" for none)."""
    from imagemachines.index.metadata import folder_label, metadata_column, read_metadata

    if label_column is None:
        return {r: folder_label(r) or "" for r in rel_paths}
    if metadata is None:
        raise UserError(f"A label column ({label_column!r}) needs the metadata CSV that has it.")
    columns, found = read_metadata(metadata, root, rel_paths)
    column = metadata_column(label_column, columns, metadata, "label column")
    return {r: found.get(r, {}).get(column, "") for r in rel_paths}


def sample_images(root: Path, n: int, *, seed: int = 0, metadata: Path | None = None,
                  label_column: str | None = None) -> list[Path]:
    """*n* images of the folder *root* (searched recursively), drawn from every label in proportion; sorted.

    Labels are the class folders (the first folder under *root*), or the *label_column* of a *metadata* CSV (as
    ``imagemachines index --metadata`` joins it); images without a label form one more label. The same seed
    gives the same sample.
    """
    from imagemachines.train.data import list_images

    root = Path(root)
    if not root.is_dir():
        raise UserError(f"Image folder {root} does not exist (or is not a folder).")
    rel_paths = [p.relative_to(root).as_posix() for p in list_images(root)]
    if not rel_paths:
        raise UserError(f"{root} holds no images (.jpg, .png, .tif, .webp …, searched recursively).")
    labels = collection_labels(root, rel_paths, metadata, label_column)
    return [root / r for r in stratified_sample(labels, n, seed)]
