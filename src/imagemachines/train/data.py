"""Image folders: ``DATA_DIR/{train,val[,test]}/<class>/*.jpg``, read robustly.

Unreadable images never stop an epoch: :class:`ImageFiles` returns no tensor for them and :func:`collate`
passes their indices on, so the training loop can report them.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch
from PIL import Image

from imagemachines.errors import UserError, did_you_mean

IMAGE_EXTS = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp"})
SPLITS = ("train", "val", "test")


@dataclass(frozen=True)
class Sample:
    path: Path
    label: int


def list_images(folder: Path) -> list[Path]:
    """Image files under *folder* (recursively), sorted; hidden files skipped."""
    return sorted(
        p for p in folder.rglob("*")
        if p.suffix.lower() in IMAGE_EXTS and p.is_file() and not any(s.startswith(".") for s in p.parts[-2:])
    )


def find_classes(split_dir: Path) -> list[str]:
    """Class names = the sub-folders of *split_dir*, sorted."""
    return sorted(p.name for p in split_dir.iterdir() if p.is_dir() and not p.name.startswith("."))


def scan_split(split_dir: Path, classes: Sequence[str] | None = None) -> tuple[list[str], list[Sample]]:
    """Classes and samples of one ImageFolder tree; with *classes*, labels follow that list.

    A folder whose name is not among *classes* is an error (the model cannot know it); a missing class is fine.
    """
    if not split_dir.is_dir():
        raise UserError(f"{split_dir} is not a folder of class folders.")
    found = find_classes(split_dir)
    if classes is None:
        classes = found
    unknown = [c for c in found if c not in classes]
    if unknown:
        raise UserError(
            f"{split_dir} has class folders the model does not know: {', '.join(unknown[:5])}."
            f"{did_you_mean(unknown[0], classes)} The model's classes are: {', '.join(classes)}."
        )
    samples = [Sample(p, classes.index(c)) for c in found for p in list_images(split_dir / c)]
    return list(classes), samples


MAKE_SPLIT = ("`imagemachines split FOLDER --out DATA_DIR` makes one from a folder of class folders (or a CSV with "
              "a label column), `imagemachines wga subset` from the Web Gallery of Art")


def split_dir(data_dir: Path, split: str) -> Path:
    """``DATA_DIR/split``, or a clear error saying what the folder should look like and how to make one."""
    if not data_dir.is_dir():
        raise UserError(f"Data folder {data_dir} does not exist. {MAKE_SPLIT}.")
    path = data_dir / split
    if not path.is_dir():
        if split == "train" and not (data_dir / "val").is_dir() and any(
                p.is_dir() and list_images(p) for p in data_dir.iterdir() if not p.name.startswith(".")):
            beside = data_dir.resolve().parent / f"{data_dir.resolve().name}-split"
            raise UserError(
                f"{data_dir} holds class folders but no train/ and val/: split it first, e.g. "
                f"`imagemachines split {data_dir} --out {beside}` (add --metadata labels.csv "
                "--group-by artist to keep each artist on one side), then train on that folder."
            )
        raise UserError(
            f"{data_dir} has no {split}/ folder. The data folder must hold train/ and val/ (and optionally "
            f"test/), each with one sub-folder of images per class: {MAKE_SPLIT}."
        )
    return path


def train_val(data_dir: Path) -> tuple[list[str], list[Sample], list[Sample]]:
    """Classes (from train/), training and validation samples; errors say what is missing."""
    classes, train = scan_split(split_dir(data_dir, "train"))
    if len(classes) < 2:
        raise UserError(f"{data_dir / 'train'} must hold at least two class folders; found {len(classes)}.")
    empty = [c for c in classes if not any(s.label == classes.index(c) for s in train)]
    if empty:
        raise UserError(f"Class folders without images in {data_dir / 'train'}: {', '.join(empty)}. "
                        "Add images or remove the folders.")
    _, val = scan_split(split_dir(data_dir, "val"), classes)
    if not val:
        raise UserError(f"{data_dir / 'val'} holds no images; validation needs some of every class.")
    return classes, train, val


def fingerprint(samples: Sequence[Sample], root: Path) -> str:
    """sha256 over every sample's relative path, size and label: changes when the data set changes."""
    h = hashlib.sha256()
    for s in samples:
        h.update(f"{s.path.relative_to(root).as_posix()}\t{s.path.stat().st_size}\t{s.label}\n".encode())
    return h.hexdigest()


def class_counts(samples: Sequence[Sample], n_classes: int) -> list[int]:
    counts = [0] * n_classes
    for s in samples:
        counts[s.label] += 1
    return counts


def sample_seed(seed: int, epoch: int, index: int) -> int:
    """The augmentation seed of one image in one epoch: independent of workers, processes and order."""
    return (seed * 1_000_003 + epoch * 10_007 + index) % (2**63)


class ImageFiles(torch.utils.data.Dataset):
    """Samples → ``(tensor | None, label, index, error | None)``; transforms seeded per image and epoch."""

    def __init__(self, samples: Sequence[Sample], transform: Callable, seed: int = 0):
        self.samples = list(samples)
        self.transform = transform
        self.seed = seed
        self.epoch = 0

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int):
        s = self.samples[index]
        try:
            with Image.open(s.path) as im:
                img = im.convert("RGB")
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(sample_seed(self.seed, self.epoch, index))
                x = self.transform(img)
        except Exception as exc:  # noqa: BLE001 - any decoding failure: skip the file and report it
            return None, s.label, index, f"{type(exc).__name__}: {exc}"
        return x, s.label, index, None


@dataclass
class Batch:
    images: torch.Tensor
    labels: torch.Tensor
    indices: torch.Tensor
    bad: list[tuple[int, str]] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.labels)


def collate(items) -> Batch:
    """Stack the readable images; unreadable ones go to ``bad`` as (index, reason)."""
    good = [it for it in items if it[0] is not None]
    bad = [(it[2], it[3]) for it in items if it[0] is None]
    if not good:
        return Batch(torch.empty(0), torch.empty(0, dtype=torch.long), torch.empty(0, dtype=torch.long), bad)
    return Batch(
        torch.stack([it[0] for it in good]),
        torch.tensor([it[1] for it in good], dtype=torch.long),
        torch.tensor([it[2] for it in good], dtype=torch.long),
        bad,
    )
