"""A small generated collection, indexed with the tiny model, for the collection API and browser tests."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
from PIL import Image

from tests.conftest import tiny_loaded_model

N_PAINTINGS = 9  # plus the twin


def painting(i: int) -> Image.Image:
    """Painting *i*: a plain ground of its own colour with a bright square somewhere (64×48)."""
    rng = np.random.default_rng(i)
    ground = rng.integers(20, 235, size=3)
    pixels = np.empty((48, 64, 3), np.uint8)
    pixels[:] = ground
    y, x = rng.integers(0, 32), rng.integers(0, 48)
    pixels[y:y + 16, x:x + 16] = 255 - ground
    return Image.fromarray(pixels)


def make_collection(root: Path) -> tuple[Path, Path]:
    """Images in *root*/images (``p0.png`` … and ``twin.png``, a larger copy of ``p0``) and a metadata CSV."""
    images = root / "images"
    (images / "sub").mkdir(parents=True)
    rows = []
    for i in range(N_PAINTINGS):
        rel = f"p{i}.png" if i % 2 else f"sub/p{i}.png"
        painting(i).save(images / rel)
        rows.append({"path": rel, "title": f"Painting {i}", "artist": f"Master {i % 3}", "year": str(1500 + i),
                     "URL": f"https://www.wga.hu/html/m/master/p{i}.html"})
    painting(0).resize((80, 60), Image.Resampling.LANCZOS).save(images / "twin.png")
    rows.append({"path": "twin.png", "title": "Twin", "artist": "Copyist", "year": "1700",
                 "URL": "javascript:alert(1)"})
    meta = root / "labels.csv"
    with open(meta, "w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return images, meta


def build_tiny_index(root: Path, seed: int = 0, k: int = 4):
    """The collection of :func:`make_collection` indexed with the tiny model of *seed*; the opened index."""
    from imagemachines.index import build_index, open_index

    images, meta = make_collection(root)
    out = build_index(tiny_loaded_model(seed=seed), images, root / "paintings-index", k=k, metadata=meta,
                      progress=False)
    return open_index(out)
