"""The cut network computes exactly what the full network computes, and no more."""

import pytest
import torch

from imagemachines.models import LOGITS
from tests.conftest import tiny_loaded_model


def _full_forward_capture(model, layer, x):
    captured = {}
    module = dict(model.module.named_modules())[layer]
    handle = module.register_forward_hook(lambda _m, _i, out: captured.setdefault("out", out))
    try:
        model.module(x)
    finally:
        handle.remove()
    return captured["out"]


@pytest.mark.parametrize("layer", ["features.0", "features.2", "features.3", "pool"])
def test_tap_matches_full_forward_activation_and_gradient(layer):
    model = tiny_loaded_model()
    x1 = torch.rand(2, 3, 32, 32, requires_grad=True)
    x2 = x1.detach().clone().requires_grad_(True)
    cut = model.tap([layer])(x1)[layer]
    full = _full_forward_capture(model, layer, x2)
    torch.testing.assert_close(cut, full)
    (g1,) = torch.autograd.grad(cut[:, 1].mean(), x1)
    (g2,) = torch.autograd.grad(full[:, 1].mean(), x2)
    torch.testing.assert_close(g1, g2)
    assert g1.abs().sum() > 0


def test_tap_stops_after_the_target_layer():
    model = tiny_loaded_model()
    model.layers()  # the dry run that builds the layer table runs everything once
    ran = []
    for name, module in model.module.named_modules():
        if name in ("features.1", "features.3", "classifier"):
            module.register_forward_hook(lambda _m, _i, _o, name=name: ran.append(name))
    model.tap(["features.1"])(torch.rand(1, 3, 32, 32))
    assert ran == ["features.1"]


def test_logits_tap_returns_the_network_output():
    model = tiny_loaded_model()
    x = torch.rand(3, 3, 32, 32)
    out = model.tap([LOGITS, "features.2"])(x)
    torch.testing.assert_close(out[LOGITS], model.module(x))
    assert out["features.2"].shape == (3, 16, 16, 16)


def test_module_called_twice_is_tapped_at_its_last_call():
    """Modules reused in one forward (like ResNet's shared ReLU) report their last output."""
    from torch import nn

    from imagemachines.models import LoadedModel

    class Twice(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(3, 4, 3, padding=1)
            self.act = nn.ReLU()
            self.conv2 = nn.Conv2d(4, 4, 3, padding=1)

        def forward(self, x):
            return self.act(self.conv2(self.act(self.conv(x))))

    model = LoadedModel.wrap("twice", Twice(), mean=(0, 0, 0), std=(1, 1, 1), input_size=16, weights_id="t")
    x = torch.rand(1, 3, 16, 16)
    out = model.tap(["act"])(x)["act"]
    torch.testing.assert_close(out, model.module(x))


def test_layer_table_lists_blocks_with_shapes():
    model = tiny_loaded_model()
    table = {layer.name: layer for layer in model.layers()}
    assert [n for n in table if n.startswith("features.")] == [f"features.{i}" for i in range(4)]
    assert (table["features.1"].channels, table["features.1"].height, table["features.1"].width) == (16, 16, 16)
    assert table[LOGITS].channels == 5
    assert "features.0.0" not in table
    assert "features.0.0" in {layer.name for layer in model.layers(all=True)}


def test_folded_batchnorm_fast_tap_matches_the_original():
    model = tiny_loaded_model()
    x1 = torch.rand(2, 3, 32, 32, requires_grad=True)
    x2 = x1.detach().clone().requires_grad_(True)
    fast = model.tap(["features.1"], fast=True)(x1)["features.1"]
    plain = model.tap(["features.1"])(x2)["features.1"]
    torch.testing.assert_close(fast, plain, rtol=1e-4, atol=1e-5)
    (g1,) = torch.autograd.grad(fast[:, 2].mean(), x1)
    (g2,) = torch.autograd.grad(plain[:, 2].mean(), x2)
    torch.testing.assert_close(g1, g2, rtol=1e-4, atol=1e-6)
    _, folded_module, folded = model._fast
    assert folded == {"features.0.0", "features.1.0"}
    assert model.tap(["features.1"], fast=True).model is folded_module
    assert sum(isinstance(m, torch.nn.BatchNorm2d) for m in folded_module.modules()) == 0
    assert sum(isinstance(m, torch.nn.BatchNorm2d) for m in model.module.modules()) == 2  # original untouched


def test_fast_tap_on_a_folded_conv_uses_the_original_network():
    model = tiny_loaded_model()
    x = torch.rand(1, 3, 32, 32)
    tap = model.tap(["features.1.0"], fast=True)
    assert tap.model is model.module
    torch.testing.assert_close(tap(x)["features.1.0"], model.tap(["features.1.0"])(x)["features.1.0"])


def test_the_fast_tap_leaves_the_global_random_stream_alone():
    model = tiny_loaded_model()
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    model.tap(["features.1"], fast=True)
    assert torch.equal(torch.rand(3), expected)
