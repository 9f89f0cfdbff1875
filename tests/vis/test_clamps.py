"""The rule that finds the tap before a block's closing saturating activation: by the modules, for every
architecture (MobileNetV2's ReLU6 blocks; not MobileNetV3's Hardswish, which does not saturate above)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from imagemachines.models import LoadedModel, load_model
from imagemachines.models.clamps import before_closing, closing_clamp, ranking_layer


def wrap(net: nn.Module) -> LoadedModel:
    return LoadedModel.wrap("net", net, mean=(0.5,) * 3, std=(0.25,) * 3, input_size=16, weights_id="t")


@pytest.mark.parametrize(("clamp", "name"), [(nn.ReLU6(), "ReLU6"), (nn.Hardtanh(-1, 1), "Hardtanh"),
                                             (nn.Hardsigmoid(), "Hardsigmoid"), (nn.Sigmoid(), "Sigmoid"),
                                             (nn.Tanh(), "Tanh")])
def test_every_activation_bounded_above_moves_the_ranking_before_it(clamp, name):
    model = wrap(nn.Sequential(nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), clamp)))
    assert ranking_layer(model, "0") == "0.1" and closing_clamp(model, "0") == name


@pytest.mark.parametrize("act", [nn.ReLU(), nn.Hardswish(), nn.SiLU(), nn.GELU(), nn.Identity()])
def test_activations_that_do_not_saturate_above_keep_the_layer(act):
    model = wrap(nn.Sequential(nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), act)))
    assert ranking_layer(model, "0") == "0" and closing_clamp(model, "0") is None


def test_the_rule_follows_last_children_down_and_needs_the_same_channels():
    nested = wrap(nn.Sequential(nn.Sequential(nn.Conv2d(3, 4, 1), nn.Sequential(nn.Conv2d(4, 4, 3), nn.ReLU6()))))
    assert ranking_layer(nested, "0") == "0.1.0" and ranking_layer(nested, "0.1") == "0.1.0"
    assert ranking_layer(nested, "0.1.1") == "0.1.1"  # the activation itself, asked for, is kept
    assert ranking_layer(nested, "0.0") == "0.0"  # a leaf
    alone = wrap(nn.Sequential(nn.Sequential(nn.ReLU6()), nn.Conv2d(3, 2, 1)))
    assert ranking_layer(alone, "0") == "0"  # nothing before the clamp inside the block
    assert before_closing(wrap(nn.Sequential(nn.Conv2d(3, 4, 1), nn.ReLU6())), "", (nn.ReLU6,)) is None

    class Both(nn.Module):  # ends in ReLU6 by its children, but its output is not the clamp of the conv alone
        def __init__(self):
            super().__init__()
            self.conv, self.act = nn.Conv2d(3, 4, 1), nn.ReLU6()

        def forward(self, x):
            y = self.conv(x)
            return torch.cat([self.act(y), y], 1)

    assert ranking_layer(wrap(nn.Sequential(Both())), "0") == "0"


def test_mobilenet_v2_ranks_its_relu6_blocks_before_the_clamp_and_mobilenet_v3_keeps_its_blocks():
    v2 = load_model("mobilenet_v2", weights="none")
    moved = {b.name: ranking_layer(v2, b.name) for b in v2.layers() if ranking_layer(v2, b.name) != b.name}
    # the inverted residuals are linear bottlenecks (they end in BatchNorm, no clamp); `features` ends in features.18
    assert moved == {"features.0": "features.0.1", "features.18": "features.18.1", "features": "features.18.1"}
    assert closing_clamp(v2, "features.18") == "ReLU6"
    v3 = load_model("mobilenet_v3_small", weights="none")
    assert all(ranking_layer(v3, b.name) == b.name for b in v3.layers())  # Hardswish is unbounded above
