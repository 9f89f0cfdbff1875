"""A synthetic collection for the map benchmarks: N small generated "paintings" with metadata, written once.

    .venv/bin/python -m benchmarks.synthetic_collection /work/wt/data/synth30k --n 30000

Each picture (96 × 72 to 128 × 96 px, JPEG) belongs to one of 24 "schools" that fix a palette and a motif
(discs, stripes, blocks, gradients, noise, a horizon), drawn with random sizes, positions and colours around
the school's own, so the network sees groups with overlap. ``labels.csv`` holds path, label (the motif), school,
artist (school × 8), title and year, so every metadata facet of the map has something to say. Nothing of the
shared paintings is used; the folder stays outside the repository.
"""

from __future__ import annotations

import argparse
import csv
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

MOTIFS = ("discs", "stripes", "blocks", "gradient", "noise", "horizon")
SCHOOLS = 24


def picture(i: int) -> tuple[Image.Image, dict]:
    rng = np.random.default_rng(i)
    school = int(rng.integers(SCHOOLS))
    srng = np.random.default_rng(10_000 + school)
    base = srng.integers(0, 256, size=(3, 3))          # the school's palette: three colours
    motif = MOTIFS[school % len(MOTIFS)]
    w, h = (int(rng.integers(96, 129)), int(rng.integers(72, 97)))
    if rng.random() < 0.3:
        w, h = h, w
    colour = lambda j: tuple(int(v) for v in np.clip(base[j] + rng.normal(0, 28, 3), 0, 255))  # noqa: E731
    img = Image.new("RGB", (w, h), colour(0))
    draw = ImageDraw.Draw(img)
    if motif == "discs":
        for _ in range(int(rng.integers(2, 9))):
            r = int(rng.integers(4, 22))
            x, y = int(rng.integers(0, w)), int(rng.integers(0, h))
            draw.ellipse((x - r, y - r, x + r, y + r), fill=colour(1 + int(rng.integers(2))))
    elif motif == "stripes":
        step = int(rng.integers(5, 16))
        vertical = rng.random() < 0.5
        for k in range(0, max(w, h), step * 2):
            box = (k, 0, k + step, h) if vertical else (0, k, w, k + step)
            draw.rectangle(box, fill=colour(1))
    elif motif == "blocks":
        for _ in range(int(rng.integers(3, 10))):
            x0, y0 = int(rng.integers(0, w)), int(rng.integers(0, h))
            draw.rectangle((x0, y0, x0 + int(rng.integers(8, 40)), y0 + int(rng.integers(8, 40))),
                           fill=colour(1 + int(rng.integers(2))))
    elif motif == "gradient":
        a, b = np.array(colour(1), float), np.array(colour(2), float)
        t = np.linspace(0, 1, h)[:, None, None]
        img = Image.fromarray(np.broadcast_to(a * (1 - t) + b * t, (h, w, 3)).astype(np.uint8))
    elif motif == "noise":
        noise = rng.normal(0, 40, (h // 4 + 1, w // 4 + 1, 3)) + np.array(colour(1))
        img = Image.fromarray(np.clip(noise, 0, 255).astype(np.uint8)).resize((w, h), Image.Resampling.BICUBIC)
    else:  # horizon: sky over ground, a sun
        y = int(h * rng.uniform(0.3, 0.7))
        draw.rectangle((0, y, w, h), fill=colour(1))
        r = int(rng.integers(5, 14))
        x = int(rng.integers(r, w - r))
        draw.ellipse((x - r, y // 2 - r, x + r, y // 2 + r), fill=colour(2))
    if rng.random() < 0.3:
        img = img.filter(ImageFilter.GaussianBlur(float(rng.uniform(0.5, 2.0))))
    year = 1400 + 20 * school + int(rng.integers(0, 60))
    meta = {"label": motif, "school": f"School {school:02d}", "artist": f"Master {school:02d}-{int(rng.integers(8))}",
            "title": f"{motif.title()} no. {i}", "year": str(year)}
    return img, meta


def write(root: Path, n: int) -> Path:
    from tqdm import tqdm

    images = root / "images"
    rows = []
    for i in tqdm(range(n), desc="pictures", unit="img"):
        rel = f"{i // 1000:03d}/p{i:06d}.jpg"
        img, meta = picture(i)
        dest = images / rel
        if not dest.is_file():
            dest.parent.mkdir(parents=True, exist_ok=True)
            img.save(dest, quality=88)
        rows.append({"path": rel, **meta})
    with open(root / "labels.csv", "w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return images


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("root", type=Path)
    parser.add_argument("--n", type=int, default=30_000)
    args = parser.parse_args()
    print(write(args.root, args.n))


if __name__ == "__main__":
    main()
