"""The rest of a network after a layer: ``tail(tap(x)[layer]) == model(x)``, and layers that are no cut refused."""

from __future__ import annotations

import pytest
import torch
import torchvision
from torch import nn

from imagemachines.errors import UnknownLayer
from imagemachines.models import LoadedModel
from imagemachines.models.tail import NotACut, network_tail
from tests.conftest import tiny_loaded_model


def _wrap(name: str, module: nn.Module, size: int = 224) -> LoadedModel:
    return LoadedModel.wrap(name, module, mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225), input_size=size,
                            weights_id=f"{name}-random")


def _check(model: LoadedModel, layer: str, size: int) -> None:
    x = torch.rand(2, 3, size, size, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        head = model.tap([layer])(x)[layer]
        torch.testing.assert_close(network_tail(model, layer)(head), model.module(x), rtol=0, atol=0)


@pytest.mark.parametrize("layer", ["features.0", "features.1.2", "features.2", "features.3", "features"])
def test_tail_after_head_is_the_whole_tiny_network(layer):
    _check(tiny_loaded_model(), layer, 32)


@pytest.mark.parametrize(("arch", "layers"), [("mobilenet_v2", ["features.18", "features.14", "features.17.conv"]),
                                              ("resnet18", ["layer4.1", "layer3", "layer2.0"])])
def test_tail_after_head_is_the_whole_torchvision_network(arch, layers):
    torch.manual_seed(0)
    model = _wrap(arch, torchvision.models.get_model(arch, weights=None))
    for layer in layers:
        _check(model, layer, 64)


def test_the_tail_shares_the_model_weights():
    model = tiny_loaded_model()
    tail = network_tail(model, "features.3")
    x = torch.rand(1, 24, 8, 8)
    before = tail(x).clone()
    with torch.no_grad():
        model.module.classifier.bias += 1.0
    torch.testing.assert_close(tail(x), before + 1.0)


def test_a_layer_inside_a_residual_block_is_no_cut():
    model = _wrap("resnet18", torchvision.models.get_model("resnet18", weights=None))
    with pytest.raises(NotACut, match="skip connection"):
        network_tail(model, "layer4.1.conv1")


class _Twice(nn.Module):
    def __init__(self):
        super().__init__()
        self.block = nn.Sequential(nn.Conv2d(3, 3, 3, padding=1), nn.ReLU())
        self.head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(3, 2))

    def forward(self, x):
        return self.head(self.block(self.block(x)))


def test_a_layer_that_runs_twice_is_no_cut():
    model = _wrap("twice", _Twice(), 16)
    with pytest.raises(NotACut, match="runs 2 times"):
        network_tail(model, "block")


def test_the_logits_and_unknown_layers_are_refused():
    model = tiny_loaded_model()
    with pytest.raises(NotACut, match="nothing after them"):
        network_tail(model, "logits")
    with pytest.raises(UnknownLayer, match="features.3"):
        network_tail(model, "features.9")
