"""A tiny network with planted detectors, and generated paintings where the detected objects are known.

``features.0`` channel 0 fires on red, channel 1 on blue (nothing else in the net does); ``features.1`` and
``features.2`` average 3×3 with stride 2, so their channels 0 and 1 are the same detectors at 32² and 16²; the
other channels are weak random filters. Classes: ``red`` (logit grows with the red detector), ``blue``,
``plain``. Grey (128) is zero after normalisation, so the background drives nothing.
"""

from __future__ import annotations

import numpy as np
import torch
from PIL import Image, ImageDraw
from torch import nn

from imagemachines.models import LoadedModel

SIZE = 64  # input side; features.2 is 16×16
CLASSES = ["red", "blue", "plain"]
RED, BLUE = (230, 20, 20), (20, 20, 230)


class PlantedNet(nn.Module):
    def __init__(self, channels: int = 8, seed: int = 0):
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        detect = nn.Conv2d(3, channels, 3, padding=1)
        avg1 = nn.Conv2d(channels, channels, 3, stride=2, padding=1)
        avg2 = nn.Conv2d(channels, channels, 3, stride=2, padding=1)
        with torch.no_grad():
            detect.weight.copy_(torch.randn(detect.weight.shape, generator=g) * 0.02)
            detect.bias.zero_()
            detect.weight[:2] = 0
            detect.weight[0, :, 1, 1] = torch.tensor([1.0, -0.5, -0.5])  # red - (green + blue) / 2
            detect.weight[1, :, 1, 1] = torch.tensor([-0.5, -0.5, 1.0])  # blue - (red + green) / 2
            detect.bias[:2] = -0.5
            for conv in (avg1, avg2):
                conv.weight.zero_()
                conv.bias.zero_()
                for c in range(channels):
                    conv.weight[c, c] = 1 / 9
        self.features = nn.Sequential(nn.Sequential(detect, nn.ReLU()), nn.Sequential(avg1, nn.ReLU()),
                                      nn.Sequential(avg2, nn.ReLU()))
        self.pool = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.classifier = nn.Linear(channels, len(CLASSES))
        with torch.no_grad():
            self.classifier.weight.zero_()
            self.classifier.weight[0, 0] = 40.0
            self.classifier.weight[1, 1] = 40.0
            self.classifier.weight[2, :2] = -40.0
            self.classifier.bias.copy_(torch.tensor([-1.0, -1.0, 0.5]))

    def forward(self, x):
        return self.classifier(self.pool(self.features(x)))


def planted_model(seed: int = 0, weights_id: str | None = None) -> LoadedModel:
    return LoadedModel.wrap("planted", PlantedNet(seed=seed), mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5),
                            input_size=SIZE, weights_id=weights_id or f"planted-seed{seed}",
                            class_names=list(CLASSES), source="test")


def painting(blobs: list[tuple[tuple[int, int], tuple[int, int, int]]] = (), size: tuple[int, int] = (SIZE, SIZE),
             radius: int = 7, seed: int = 0) -> Image.Image:
    """A grey canvas (light noise) of *size* = (width, height) with discs of the given colours at (x, y)."""
    rng = np.random.default_rng(seed)
    w, h = size
    pixels = np.clip(128 + rng.normal(0, 6, (h, w, 3)), 0, 255).astype(np.uint8)
    img = Image.fromarray(pixels, "RGB")
    draw = ImageDraw.Draw(img)
    for (x, y), colour in blobs:
        draw.ellipse([x - radius, y - radius, x + radius, y + radius], fill=colour)
    return img


def peak(heat: np.ndarray) -> tuple[int, int]:
    """(x, y) of a map's maximum."""
    r, c = np.unravel_index(int(np.argmax(heat)), heat.shape)
    return int(c), int(r)


class ClampedNet(nn.Module):
    """Two blocks shaped like MobileNetV2's last one: convolution, BatchNorm, ReLU6(inplace=True). Their weights
    are large, so most units reach the ReLU6 bound (6) on any painting, where a ranking by value ties."""

    def __init__(self, channels: int = 16, seed: int = 0):
        super().__init__()
        torch.manual_seed(seed)

        def block(cin: int, stride: int) -> nn.Sequential:
            conv = nn.Conv2d(cin, channels, 3, stride=stride, padding=1)
            with torch.no_grad():
                conv.weight.normal_(0, 3.0)
                conv.bias.normal_(0, 2.0)
            return nn.Sequential(conv, nn.BatchNorm2d(channels), nn.ReLU6(inplace=True))

        self.features = nn.Sequential(block(3, 1), block(channels, 2))
        self.pool = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.classifier = nn.Linear(channels, len(CLASSES))

    def forward(self, x):
        return self.classifier(self.pool(self.features(x)))


def clamped_model(seed: int = 0) -> LoadedModel:
    return LoadedModel.wrap("clamped", ClampedNet(seed=seed), mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5),
                            input_size=SIZE, weights_id=f"clamped-seed{seed}", class_names=list(CLASSES),
                            source="test")
