"""A generated collection in three families anyone can tell apart, indexed with the tiny model, for map tests.

``red``: red discs on dark ground; ``blue``: blue horizontal stripes on pale ground; ``green``: green noise.
Each picture has metadata (label = family, school, artist, title, year) in ``labels.csv``.
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

FAMILIES = ("red", "blue", "green")
SCHOOL = {"red": "Venetian", "blue": "Dutch", "green": "Flemish"}


def picture(family: str, i: int) -> Image.Image:
    rng = np.random.default_rng([FAMILIES.index(family), i])
    w, h = int(rng.integers(56, 80)), int(rng.integers(44, 64))
    if family == "red":
        img = Image.new("RGB", (w, h), tuple(int(v) for v in rng.integers(0, 40, 3)))
        draw = ImageDraw.Draw(img)
        for _ in range(3):
            r = int(rng.integers(6, 14))
            x, y = int(rng.integers(0, w)), int(rng.integers(0, h))
            draw.ellipse((x - r, y - r, x + r, y + r), fill=(int(rng.integers(190, 255)), 20, 20))
        return img
    if family == "blue":
        img = Image.new("RGB", (w, h), tuple(int(v) for v in rng.integers(200, 250, 3)))
        draw = ImageDraw.Draw(img)
        step = int(rng.integers(4, 8))
        for y in range(0, h, 2 * step):
            draw.rectangle((0, y, w, y + step), fill=(20, 40, int(rng.integers(170, 255))))
        return img
    noise = rng.normal(0, 50, (h, w, 3)) + np.array([30, 150, 40])
    return Image.fromarray(np.clip(noise, 0, 255).astype(np.uint8))


def write_family(images: Path, family: str, numbers, rows: list[dict]) -> None:
    for i in numbers:
        rel = f"{family}/{family}-{i:03d}.png"
        (images / family).mkdir(parents=True, exist_ok=True)
        picture(family, i).save(images / rel)
        rows.append({"path": rel, "label": family, "school": SCHOOL[family],
                     "artist": f"{family.title()} Master {i % 4}", "title": f"{family.title()} study {i}",
                     "year": str(1500 + 100 * FAMILIES.index(family) + i)})


def write_labels(root: Path, rows: list[dict]) -> Path:
    path = root / "labels.csv"
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=["path", "label", "school", "artist", "title", "year"])
        writer.writeheader()
        writer.writerows(rows)
    return path


def make_families(root: Path, per_family: int = 20, families=FAMILIES) -> tuple[Path, Path]:
    """Pictures in root/images/FAMILY/ and root/labels.csv; returns (images, labels)."""
    images = root / "images"
    rows: list[dict] = []
    for family in families:
        write_family(images, family, range(per_family), rows)
    return images, write_labels(root, rows)


def index_families(root: Path, images: Path, labels: Path):
    """The folder indexed with the tiny model (seed 0); the opened index."""
    from imagemachines.index import build_index, open_index
    from tests.conftest import tiny_loaded_model

    out = build_index(tiny_loaded_model(), images, root / "index", k=4, metadata=labels, progress=False)
    return open_index(out)


def quick_map(index, clusters: str = "3"):
    """``build_map`` with the first two PCA components as the layout instead of UMAP (no compile wait): for the
    server and browser tests, which test what is done with a stored map, not the layout."""
    import pytest

    import imagemachines.collection_map.build as build
    from imagemachines.collection_map.layout import normalize_xy

    def embed(reduced, params):
        centred = reduced - reduced.mean(0)
        _, _, vt = np.linalg.svd(centred, full_matrices=False)
        return normalize_xy(centred @ vt[:2].T)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(build, "embed", embed)
        return build.build_map(index, clusters=clusters, progress=False)
