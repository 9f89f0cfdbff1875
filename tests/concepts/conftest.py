"""A network with planted colour detectors and paintings whose concepts, and where they lie, are known.

``ColourNet``: ``features.0`` is a fixed 1×1 convolution, channel 0 = redness R − (G + B)/2, channel 1 = greenness,
channel 2 = blueness; ``features.1`` = ReLU; ``features.2`` = 4×4 max pooling (32-px input → 8×8 map). Then global
average pooling and a linear layer: the ``red`` logit is 8 × the mean redness, the ``blue`` logit 8 × the mean
blueness; greenness counts for neither. Inputs are not normalised, so grey gives exactly 0 everywhere.

Paintings (96 × 64 px): ``red/red-I.png`` = grey with a red disc and a green disc at known places;
``blue/blue-I.png`` = grey with a blue disc and a green disc. So each class has two concepts, its own colour (all
of the class evidence) and green (none of it), and the green concepts of the two classes are the same direction.
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

W, H, SIDE, RADIUS = 96, 64, 32, 10
COLOURS = {"red": (230, 60, 60), "green": (60, 230, 60), "blue": (60, 60, 230)}


class ColourNet(nn.Module):
    def __init__(self):
        super().__init__()
        conv = nn.Conv2d(3, 3, 1, bias=False)
        with torch.no_grad():
            conv.weight.copy_(torch.tensor([[1.0, -0.5, -0.5], [-0.5, 1.0, -0.5], [-0.5, -0.5, 1.0]])[:, :, None, None])
        self.features = nn.Sequential(conv, nn.ReLU(), nn.MaxPool2d(4))
        self.pool = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.classifier = nn.Linear(3, 2)
        with torch.no_grad():
            self.classifier.weight.copy_(torch.tensor([[8.0, 0.0, 0.0], [0.0, 0.0, 8.0]]))
            self.classifier.bias.zero_()

    def forward(self, x):
        return self.classifier(self.pool(self.features(x)))


def colour_model() -> LoadedModel:
    return LoadedModel.wrap("colournet", ColourNet(), mean=(0.0, 0.0, 0.0), std=(1.0, 1.0, 1.0), input_size=SIDE,
                            weights_id="colournet-v1", class_names=["red", "blue"], source="test")


@dataclass
class Painted:
    root: Path
    centres: dict[str, dict[str, tuple[int, int]]]  # path -> colour -> disc centre (x, y) in the painting's pixels

    def of(self, cls: str) -> list[str]:
        return sorted(p for p in self.centres if p.startswith(cls + "/"))


def disc_painting(discs: dict[str, tuple[int, int]]) -> Image.Image:
    img = Image.new("RGB", (W, H), (128, 128, 128))
    draw = ImageDraw.Draw(img)
    for colour, (x, y) in discs.items():
        draw.ellipse([x - RADIUS, y - RADIUS, x + RADIUS, y + RADIUS], fill=COLOURS[colour])
    return img


def make_paintings(root: Path, n: int = 6, seed: int = 0) -> Painted:
    """*n* paintings per class (red, blue), each with its colour's disc and a green disc, apart from each other."""
    rng = random.Random(seed)
    centres: dict[str, dict[str, tuple[int, int]]] = {}
    for cls in ("red", "blue"):
        (root / cls).mkdir(parents=True, exist_ok=True)
        for i in range(n):
            left = rng.random() < 0.5  # the class's disc on one half, green on the other
            xa = rng.randint(RADIUS + 1, W // 2 - RADIUS - 2)
            xb = rng.randint(W // 2 + RADIUS + 2, W - RADIUS - 2)
            own = (xa if left else xb, rng.randint(RADIUS + 1, H - RADIUS - 2))
            green = (xb if left else xa, rng.randint(RADIUS + 1, H - RADIUS - 2))
            rel = f"{cls}/{cls}-{i:02d}.png"
            disc_painting({cls: own, "green": green}).save(root / rel)
            centres[rel] = {cls: own, "green": green}
    return Painted(root, centres)


@pytest.fixture
def colournet() -> LoadedModel:
    return colour_model()


@pytest.fixture
def painted(tmp_path) -> Painted:
    return make_paintings(tmp_path / "paintings")


@pytest.fixture
def cache_dir(tmp_path) -> Path:
    return tmp_path / "cache"
