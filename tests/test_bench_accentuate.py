"""The faccent benchmark's own logic: faccent's hook names, its input range mapped back to ImageNet's
normalisation, the painting's centre square and the scorer both sides share."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from benchmarks.bench_accentuate import Scorer, Side, square
from benchmarks.faccent_peer import RANGE, FaccentInput, faccent_layer
from PIL import Image

from tests.conftest import make_tiny_net, tiny_loaded_model


def test_layer_names_follow_faccents_hooks_on_the_wrapped_network():
    assert faccent_layer("features.16") == "net_features_16"
    assert faccent_layer("layer2.0.conv1") == "net_layer2_0_conv1"


def test_the_wrapper_feeds_the_network_what_it_was_trained_on():
    net = make_tiny_net().eval()
    x01 = torch.rand(2, 3, 32, 32)
    faccent_input = x01 * (RANGE[1] - RANGE[0]) + RANGE[0]  # what faccent's range_normalize makes
    expected = net(tiny_loaded_model().normalize(x01))
    assert torch.allclose(FaccentInput(net)(faccent_input), expected, atol=1e-5)


def test_the_painting_is_its_centre_square(tmp_path):
    pixels = np.zeros((40, 100, 3), np.uint8)
    pixels[:, 30:70] = 255  # the centre 40×40 is white, the sides black
    Image.fromarray(pixels).save(tmp_path / "p.png")
    out = square(tmp_path / "p.png", size=20)
    assert out.shape == (20, 20, 3) and out.min() >= 250


def test_the_scorer_measures_gain_and_distances_alike_for_both_sides():
    model = tiny_loaded_model()
    scorer = Scorer(model, "features.1", 3, "features.0")
    rng = np.random.default_rng(0)
    painting = rng.integers(0, 256, (32, 32, 3)).astype(np.uint8)
    same = scorer.fill(Side(painting.copy(), 1.0), painting)
    assert same.gain == pytest.approx(1.0) and same.pixels == 0 and same.acts == 0
    brighter = scorer.fill(Side(np.clip(painting.astype(int) + 10, 0, 255).astype(np.uint8), 1.0), painting)
    assert brighter.pixels == pytest.approx(np.sqrt(((np.clip(painting.astype(int) + 10, 0, 255)
                                                       - painting) ** 2).mean()))
    assert brighter.acts > 0
