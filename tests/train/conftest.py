"""Synthetic image folders for the training tests: three classes anyone can tell apart at a glance."""

from __future__ import annotations

import random
from pathlib import Path

import pytest
from PIL import Image, ImageDraw

CLASSES = ("landscape", "portrait", "stilllife")


def draw(kind: str, size: int, rng: random.Random) -> Image.Image:
    """landscape: blue sky over green stripes; portrait: a reddish oval on dark ground; stilllife: yellow
    checkerboard. Positions, sizes and tints vary per image."""
    j = lambda: rng.randint(-25, 25)  # noqa: E731 - tiny colour jitter
    img = Image.new("RGB", (size, size))
    d = ImageDraw.Draw(img)
    if kind == "landscape":
        horizon = rng.randint(size // 3, size // 2)
        d.rectangle([0, 0, size, horizon], fill=(90 + j(), 150 + j(), 230 + j()))
        for y in range(horizon, size, 4):
            d.rectangle([0, y, size, y + 1], fill=(40 + j(), 140 + j(), 50 + j()))
    elif kind == "portrait":
        d.rectangle([0, 0, size, size], fill=(30 + j(), 25 + j(), 20 + j()))
        w, h = rng.randint(size // 4, size // 3), rng.randint(size // 3, size // 2)
        cx, cy = size // 2 + rng.randint(-size // 8, size // 8), size // 2 + rng.randint(-size // 8, size // 8)
        d.ellipse([cx - w, cy - h, cx + w, cy + h], fill=(210 + j(), 150 + j(), 120 + j()))
    else:
        cell = rng.randint(size // 8, size // 4)
        for y in range(0, size, cell):
            for x in range(0, size, cell):
                dark = ((x // cell) + (y // cell)) % 2
                d.rectangle([x, y, x + cell, y + cell], fill=(120, 90, 20) if dark else (235 + j(), 205 + j(), 60))
    return img


def make_dataset(root: Path, per_class: dict[str, int] | None = None, size: int = 40, seed: int = 0,
                 classes=CLASSES) -> Path:
    """``root/{train,val}/<class>/*.jpg``; *per_class* maps split to images per class."""
    per_class = per_class or {"train": 16, "val": 8}
    rng = random.Random(seed)
    for split, n in per_class.items():
        for c in classes:
            folder = root / split / c
            folder.mkdir(parents=True, exist_ok=True)
            for i in range(n):
                draw(c, size, rng).save(folder / f"{c}-{split}-{i:03d}.jpg", quality=90)
    return root


@pytest.fixture
def dataset(tmp_path) -> Path:
    return make_dataset(tmp_path / "data")


# Small and fast: resnet18 from scratch on 32 px images reaches 100 % on these classes in two epochs.
FAST = {"arch": "resnet18", "weights": "none", "image_size": 32, "batch_size": 16, "optimizer": "adamw",
        "lr": 1e-3, "workers": 0}


def train_run(data: Path, out: Path, on_epoch_end=None, resume: bool = False, **settings) -> Path:
    """Train through the Python API (what the CLI calls); returns the run directory."""
    from imagemachines.train.trainer import fit, prepare

    cfg, previous = prepare(data, {**FAST, "out": str(out), **settings}, resume=resume)
    return fit(cfg, previous, on_epoch_end=on_epoch_end)


@pytest.fixture(scope="session")
def trained(tmp_path_factory) -> tuple[Path, Path]:
    """(data folder with train/val/test, run directory) of one 3-epoch training run, shared by the tests."""
    root = tmp_path_factory.mktemp("trained")
    data = make_dataset(root / "data", {"train": 16, "val": 8, "test": 6}, seed=1)
    return data, train_run(data, root / "run", epochs=3)
