"""Shared fixtures: paths to ../shared, the real MobileNetV2 weights, and tiny models for fast tests."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
import torch
from hypothesis import HealthCheck, settings
from torch import nn

from imagemachines.models import LoadedModel

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"
MOBILENET_FILE = SHARED / "weights" / "mobilenet_v2-b0353104.pth"
WGA_CATALOG_ZIP = SHARED / "data" / "data_xls.zip"
SEED_RENDERS = SHARED / "reference" / "seed-renders"

torch.set_num_threads(min(2, torch.get_num_threads()))

# Property-based tests (hypothesis, schemathesis): the same examples on every run unless asked otherwise, so CI
# never turns red by luck. `HYPOTHESIS_PROFILE=long` explores at random with 20x the examples; keep what it finds
# as an explicit @example. See docs/security.md.
settings.register_profile("ci", derandomize=True, database=None, deadline=None, print_blob=True,
                          suppress_health_check=list(HealthCheck))
settings.register_profile("long", max_examples=2000, deadline=None, print_blob=True,
                          suppress_health_check=list(HealthCheck))
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))


def examples(n: int) -> int:
    """*n* examples under the default profile, proportionally more under ``long`` (for ``max_examples=``)."""
    return max(1, n * settings.default.max_examples // 100)


def make_tiny_net(num_classes: int = 5, seed: int = 0) -> nn.Module:
    """A small CNN shaped like torchvision's: ``features.N`` blocks, then a classifier."""
    torch.manual_seed(seed)
    return nn.Sequential(
        nn.Sequential(  # features
            nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU()),
            nn.Sequential(nn.Conv2d(8, 16, 3, stride=2, padding=1), nn.BatchNorm2d(16), nn.ReLU()),
            nn.Sequential(nn.Conv2d(16, 16, 3, padding=1), nn.ReLU()),
            nn.Sequential(nn.Conv2d(16, 24, 3, stride=2, padding=1), nn.ReLU()),
        ),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(24, num_classes),
    )


class TinyNet(nn.Module):
    """The tiny CNN with torchvision-like attribute names (``features``, ``classifier``)."""

    def __init__(self, num_classes: int = 5, seed: int = 0):
        super().__init__()
        net = make_tiny_net(num_classes, seed)
        self.features = net[0]
        self.pool = nn.Sequential(net[1], net[2])
        self.classifier = net[3]
        with torch.no_grad():  # non-trivial BatchNorm statistics, as a trained net has
            for m in self.modules():
                if isinstance(m, nn.BatchNorm2d):
                    m.running_mean.uniform_(-0.2, 0.2)
                    m.running_var.uniform_(0.5, 1.5)

    def forward(self, x):
        return self.classifier(self.pool(self.features(x)))


def tiny_loaded_model(num_classes: int = 5, seed: int = 0, input_size: int = 32) -> LoadedModel:
    """A :class:`LoadedModel` around :class:`TinyNet` (layers ``features.0``-``features.3``, ``logits``)."""
    return LoadedModel.wrap(
        "tiny", TinyNet(num_classes, seed), mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225),
        input_size=input_size, weights_id=f"tiny-seed{seed}", class_names=[f"class{i}" for i in range(num_classes)],
        source="test",
    )


@pytest.fixture
def tiny_model() -> LoadedModel:
    return tiny_loaded_model()


@pytest.fixture
def torch_home(tmp_path, monkeypatch) -> Path:
    """An empty TORCH_HOME: nothing cached, and (here) nothing downloadable."""
    home = tmp_path / "torch_home"
    (home / "hub" / "checkpoints").mkdir(parents=True)
    monkeypatch.setenv("TORCH_HOME", str(home))
    return home


@pytest.fixture
def mobilenet_weights(torch_home) -> Path:
    """The genuine MobileNetV2 IMAGENET1K_V1 file placed where torchvision looks; skips when absent."""
    if not MOBILENET_FILE.is_file():
        pytest.skip(f"{MOBILENET_FILE} is absent")
    dest = torch_home / "hub" / "checkpoints" / MOBILENET_FILE.name
    shutil.copyfile(MOBILENET_FILE, dest)
    return dest
