"""Which paintings belong to a class: labelled ones when the collection says, else the model's top-1 choices.

The rule, in order:

1. ``--label-column COL``: the paintings whose metadata column COL names the class;
2. a metadata column called ``label`` (a CSV given with ``--metadata``, a WGA ``subset.csv``, or an index's);
3. class folders: the paintings in a folder named like the class (``IMAGE_DIR/portrait/…``, also
   ``train/portrait/…``);
4. otherwise the paintings the model ranks top-1 as the class.

Names are compared without regard to case. The rule and the counts are reported, so nobody mistakes the model's
own choices for labels.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from imagemachines.errors import UserError, did_you_mean

LABEL = "label"


@dataclass
class Collection:
    """The user's paintings: a folder, the relative paths of its images, and their metadata rows."""

    root: Path
    paths: list[str]
    meta: dict[str, dict[str, str]] = field(default_factory=dict)
    columns: list[str] = field(default_factory=list)
    source: str = "folder"  # or "index"
    index: object | None = None  # the opened collection index it came from (its near-duplicates), if any


def open_collection(image_dir: Path | None = None, *, index=None, metadata: Path | None = None) -> Collection:
    """A folder of images (metadata from *metadata* and a WGA ``subset.csv``), or an opened collection index (its
    images and metadata)."""
    from imagemachines.index.metadata import find_subset_csv, read_metadata
    from imagemachines.index.scan import scan_folder

    if index is not None:
        infos = list(index.images())
        root = Path(index.image_root)
        meta = {info.path: {k: str(v) for k, v in (info.meta or {}).items()} for info in infos}
        columns = list(index.manifest.get("metadata_columns") or [])
        collection = Collection(root, sorted(info.path for info in infos), meta, columns, "index", index)
    else:
        if image_dir is None:
            raise UserError("Give an image folder, or an index with --index.")
        root = Path(image_dir).expanduser()
        collection = Collection(root, [f.path for f in scan_folder(root)])
    for src in [p for p in (find_subset_csv(root) if index is None else None, metadata) if p]:
        cols, found = read_metadata(src, root, collection.paths)
        collection.columns += [c for c in cols if c not in collection.columns]
        for path, values in found.items():
            collection.meta.setdefault(path, {}).update(values)
    return collection


@dataclass
class Rule:
    """How class membership is decided: ``kind`` is column, folder or top1."""

    kind: str
    column: str | None = None

    def describe(self) -> str:
        if self.kind == "column":
            return f"paintings labelled with the class in the metadata column {self.column!r}"
        if self.kind == "folder":
            return "paintings in a folder named like the class"
        return "paintings the model ranks top-1 as the class (the collection has no labels)"


def choose_rule(collection: Collection, class_names: Sequence[str], label_column: str | None = None,
                predicted: bool = False) -> Rule:
    """The rule of the module doc for *collection* and a model with *class_names*."""
    if predicted:
        return Rule("top1")
    if label_column is not None:
        if label_column not in collection.columns:
            raise UserError(f"The collection's metadata has no column {label_column!r}."
                            f"{did_you_mean(label_column, collection.columns)} Its columns are: "
                            f"{', '.join(collection.columns) or 'none (give a CSV with --metadata)'}.")
        return Rule("column", label_column)
    if LABEL in collection.columns:
        return Rule("column", LABEL)
    lowered = {c.lower() for c in class_names}
    if any(_folder(p).lower() in lowered for p in collection.paths):
        return Rule("folder")
    return Rule("top1")


def _folder(path: str) -> str:
    parts = Path(path).parts
    return parts[-2] if len(parts) > 1 else ""


def labels_of(collection: Collection, rule: Rule) -> dict[str, str]:
    """{path: label} under a labelled *rule* (paintings without a label are left out)."""
    if rule.kind == "column":
        return {p: collection.meta[p][rule.column] for p in collection.paths
                if collection.meta.get(p, {}).get(rule.column)}
    if rule.kind == "folder":
        return {p: _folder(p) for p in collection.paths if _folder(p)}
    raise ValueError("the top-1 rule has no labels")


def class_members(collection: Collection, rule: Rule, name: str,
                  predict: Callable[[], dict[str, str]] | None = None) -> list[str]:
    """The paintings of class *name* under *rule*, sorted; *predict* gives {path: top-1 class name} for top1."""
    if rule.kind == "top1":
        if predict is None:
            raise ValueError("the top-1 rule needs the model's predictions")
        labels = predict()
    else:
        labels = labels_of(collection, rule)
    members = sorted(p for p, label in labels.items() if label.lower() == name.lower())
    if not members:
        present = sorted({label for label in labels.values()})
        where = ("the model ranks none of them top-1 as it" if rule.kind == "top1" else
                 f"none is labelled with it ({rule.describe()}); labels found: {', '.join(present[:12]) or 'none'}")
        raise UserError(f"No painting of {collection.root} belongs to class {name!r}: {where}. Choose another class, "
                        "or point to a folder with paintings of it.")
    return members


def cap(paths: Sequence[str], limit: int | None, seed: int) -> list[str]:
    """At most *limit* of *paths*: a seeded random sample (sorted), or all of them."""
    if limit is not None and limit < 1:
        raise UserError("--max-images must be at least 1.")
    if limit is None or len(paths) <= limit:
        return sorted(paths)
    return sorted(random.Random(seed).sample(sorted(paths), limit))


def distinct_paintings(collection: Collection, paths: Sequence[str], block: int = 2048) -> tuple[list[str],
                                                                                             dict[str, list[str]]]:
    """*paths* (sorted) with the other photographs of one painting left out, so that a painting photographed
    twice does not count twice: the near-duplicates of the collection's index among *paths* (composition rows at
    cosine ≥ ``DUPLICATE_COSINE``, the grouping of similar paintings), joined transitively; of each group the
    largest photograph stays (then the first path). Returns (kept, {kept path: [left-out copies]}). A folder, or
    an index without similarity modes, has no such grouping: *paths* come back as they are."""
    import numpy as np

    from imagemachines.index.similarity_vectors import DUPLICATE_COSINE

    paths = sorted(paths)
    index = collection.index
    if index is None or len(paths) < 2:
        return paths, {}
    try:
        prints_of = index.similarity().prints()
    except UserError:
        return paths, {}
    infos = {info.path: info for info in index.images()}
    known = [p for p in paths if p in infos]
    prints = np.asarray(prints_of[[infos[p].id for p in known]], np.float32)
    parent = list(range(len(known)))

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for start in range(0, len(known), block):
        close = prints[start:start + block] @ prints.T >= DUPLICATE_COSINE
        for i, j in zip(*np.nonzero(close), strict=True):
            a, b = root(start + int(i)), root(int(j))
            if a != b:
                parent[max(a, b)] = min(a, b)
    groups: dict[int, list[str]] = {}
    for i, p in enumerate(known):
        groups.setdefault(root(i), []).append(p)
    copies = {}
    for members in groups.values():
        best = max(members, key=lambda p: (infos[p].width * infos[p].height, [-ord(c) for c in p]))
        if len(members) > 1:
            copies[best] = sorted(m for m in members if m != best)
    left_out = {c for cs in copies.values() for c in cs}
    return [p for p in paths if p not in left_out], copies
