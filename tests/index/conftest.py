"""A network with planted detectors and images whose answers are known.

``BlobNet``: ``features.0`` is a fixed 5×5 convolution (no activation): channel 0 = redness R - (G + B)/2,
channel 1 = blueness B - (R + G)/2, averaged over the window; ``features.1`` = ReLU, ``features.2`` =
2×2 max pooling; logits = the pooled features (class 0 "red", class 1 "blue"). Inputs are not normalised
(mean 0, std 1), so a pure grey picture gives exactly 0 everywhere.

Images (96 × 64 px, PNG; squashed to 64 × 64 by the index like every image):
- ``red/red-I.png``: grey with a red disc (radius 9) of strength 100 + 15·I at a known centre;
- ``blue/tint-I.png``: a blue tint of strength 10·(I+1) over the whole picture (redness -tint everywhere);
- ``grey/grey-I.png``: plain grey (each one pixel taller than the last: no two files are the same image, which
  the index would show once).
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch
from PIL import Image, ImageDraw
from torch import nn

from imagemachines.models import LoadedModel

W, H, SIDE, RADIUS = 96, 64, 64, 9


class BlobNet(nn.Module):
    def __init__(self):
        super().__init__()
        conv = nn.Conv2d(3, 2, 5, padding=2, bias=False)
        with torch.no_grad():
            conv.weight.zero_()
            conv.weight[0, 0], conv.weight[0, 1], conv.weight[0, 2] = 1.0, -0.5, -0.5
            conv.weight[1, 2], conv.weight[1, 0], conv.weight[1, 1] = 1.0, -0.5, -0.5
            conv.weight /= 25.0
        self.features = nn.Sequential(conv, nn.ReLU(), nn.MaxPool2d(2))
        self.pool = nn.Sequential(nn.AdaptiveMaxPool2d(1), nn.Flatten())

    def forward(self, x):
        return self.pool(self.features(x))


def blob_model() -> LoadedModel:
    return LoadedModel.wrap("blobnet", BlobNet(), mean=(0.0, 0.0, 0.0), std=(1.0, 1.0, 1.0), input_size=SIDE,
                            weights_id="blobnet-v1", class_names=["red", "blue"], source="test")


@dataclass
class Collection:
    root: Path
    red: list[tuple[str, tuple[int, int]]]  # (relative path, blob centre (x, y) in image pixels), strongest first
    tints: list[str]  # strongest tint (most negative redness) first
    grey: list[str]


def red_image(strength: int, centre: tuple[int, int]) -> Image.Image:
    img = Image.new("RGB", (W, H), (128, 128, 128))
    x, y = centre
    ImageDraw.Draw(img).ellipse([x - RADIUS, y - RADIUS, x + RADIUS, y + RADIUS],
                                fill=(min(255, 128 + strength), 128 - strength // 2, 128 - strength // 2))
    return img


def make_collection(root: Path, n_red: int = 6, n_tint: int = 5, n_grey: int = 5, seed: int = 0) -> Collection:
    rng = random.Random(seed)
    red, tints, grey = [], [], []
    for i in range(n_red):
        centre = (rng.randint(RADIUS + 2, W - RADIUS - 3), rng.randint(RADIUS + 2, H - RADIUS - 3))
        rel = f"red/red-{i:02d}.png"
        (root / "red").mkdir(parents=True, exist_ok=True)
        red_image(100 + 15 * i, centre).save(root / rel)
        red.append((rel, centre))
    for i in range(n_tint):
        t = 10 * (i + 1)
        rel = f"blue/tint-{i:02d}.png"
        (root / "blue").mkdir(parents=True, exist_ok=True)
        Image.new("RGB", (W, H), (128 - t, 128 - t, 128 + t)).save(root / rel)
        tints.append(rel)
    for i in range(n_grey):
        rel = f"grey/grey-{i:02d}.png"
        (root / "grey").mkdir(parents=True, exist_ok=True)
        Image.new("RGB", (W, H + i), (128, 128, 128)).save(root / rel)  # each its own file (not a copy)
        grey.append(rel)
    return Collection(root, red[::-1], tints[::-1], grey)


@pytest.fixture
def blobnet() -> LoadedModel:
    return blob_model()


@pytest.fixture
def collection(tmp_path) -> Collection:
    return make_collection(tmp_path / "images")


def snapshot(idx) -> dict:
    """Everything an index answers, by image path (ids are path order, so they compare too)."""
    import numpy as np

    snap = {"images": [(i.id, i.path, i.sha256, i.width, i.height, i.meta) for i in idx.images()], "units": {},
            "stats": {}, "pooled": {}, "border": {}, "maxima": {}}
    for layer in idx.layers:
        for c in range(idx.channels(layer)):
            for neg in (False, True):
                snap["units"][(layer, c, neg)] = [(idx.image(e.image_id).path, e.value, e.cell, e.box)
                                                  for e in idx.examples(layer, c, negative=neg)]
            s = idx.stats(layer, c)
            snap["stats"][(layer, c)] = (s.count, s.mean, s.std, s.min, s.max, *s.quantiles.values())
            snap["border"][(layer, c)] = idx.border(layer, c)
        snap["maxima"][layer] = np.asarray(idx.maxima(layer)).tobytes()
        pooled = idx.pooled(layer)
        snap["pooled"][layer] = None if pooled is None else np.asarray(pooled).tobytes()
    if "similarity" in idx.manifest:  # the modes' finished rows and their finishes, exactly
        sim = idx.similarity()
        for mode in ("content", "style", "composition"):
            f = sim.finish(mode)
            snap["pooled"][f"similar/{mode}"] = (np.asarray(sim.rows(mode)).tobytes(), f.center.tobytes(),
                                                 f.scale.tobytes(), f.blocks)
    return snap


def assert_same_index(a, b) -> None:
    """Exact equality of images, examples and pooled rows; statistics equal up to float64 rounding."""
    import pytest as _pytest

    sa, sb = snapshot(a), snapshot(b)
    assert sa["images"] == sb["images"]
    assert sa["units"] == sb["units"]
    assert sa["pooled"] == sb["pooled"]
    assert sa["border"] == sb["border"] and sa["maxima"] == sb["maxima"]  # border counts are exact sums
    assert sa["stats"].keys() == sb["stats"].keys()
    for key in sa["stats"]:
        assert sa["stats"][key] == _pytest.approx(sb["stats"][key], rel=1e-9, abs=1e-9), key


def as_written_before(out: Path, *keys: str | tuple[str, ...]) -> None:
    """Make the index in *out* look as an older version wrote it: each key (a name, or a path of names into
    nested settings) removed from its manifest and from its recorded build settings, wherever it is present."""
    import json

    from imagemachines.index.store import MANIFEST, connect

    def drop(d: dict) -> dict:
        for key in keys:
            *parents, last = (key,) if isinstance(key, str) else key
            inner = d
            for name in parents:
                inner = inner.get(name) or {}
            inner.pop(last, None)
        return d

    manifest = out / MANIFEST
    manifest.write_text(json.dumps(drop(json.loads(manifest.read_text()))))
    conn = connect(out)
    try:
        settings = json.loads(conn.execute("SELECT value FROM settings WHERE name = 'build'").fetchone()[0])
        with conn:
            conn.execute("UPDATE settings SET value = ? WHERE name = 'build'", (json.dumps(drop(settings)),))
    finally:
        conn.close()
