"""Accentuation on real networks: the regulariser's default layer per architecture, and on the real MobileNetV2
weights a real painting's face unit at least doubles at the default strength while the painting stays itself."""

from __future__ import annotations

import pytest
import torch

from imagemachines.models import load_model
from imagemachines.vis.accentuation import accentuate
from imagemachines.vis.regulariser import default_reg_layer
from tests.conftest import SHARED

PORTRAIT = SHARED / "data" / "paintings" / "images" / "portrait" / "B_102.jpg"
DEFAULT_REG = {"mobilenet_v2": "features.6", "resnet50": "layer2.3", "inception_v3": "Mixed_5d",
               "vgg16": "features.22", "googlenet": "inception3b"}


@pytest.mark.parametrize("arch", list(DEFAULT_REG))
def test_the_regulariser_sits_at_the_last_block_at_stride_8(arch):
    torch.manual_seed(0)
    model = load_model(arch, weights="none")
    layer = default_reg_layer(model)
    assert layer == DEFAULT_REG[arch]
    info = model.layer(layer)
    assert model.input_size / info.height < 12  # stride 8 (InceptionV3: 299 → 35)


@pytest.mark.weights
def test_a_face_unit_at_least_doubles_in_a_real_portrait(mobilenet_weights):
    if not PORTRAIT.is_file():
        pytest.skip(f"{PORTRAIT} is absent")
    model = load_model("mobilenet_v2", device="cpu")
    default, held = accentuate(model, PORTRAIT, "features.16:150", strength=[1.0, 1e4], size=128, steps=64)
    assert default.before > 0 and default.numbers["gain"] >= 2.0, default.numbers
    assert default.numbers["pixel_distance"] < 20  # the painting is still there: under 8 % RMS
    assert held.numbers["pixel_distance"] < 1.5 and abs(held.numbers["gain"] - 1) < 0.15, held.numbers
