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


def _conv_bn_net(track_running_stats: bool = True):
    from torch import nn

    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.BatchNorm2d(4, track_running_stats=track_running_stats),
                        nn.ReLU(), nn.Sequential(nn.Conv2d(4, 4, 1), nn.BatchNorm2d(4)))
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.weight.uniform_(0.5, 2)
                m.bias.uniform_(-1, 1)
                if m.track_running_stats:
                    m.running_mean.uniform_(-0.5, 0.5)
                    m.running_var.uniform_(0.5, 2)
    return net.eval()


def test_fold_batchnorm_folds_each_conv_bn_pair_and_keeps_the_function():
    from imagemachines.models.fuse import fold_batchnorm

    net = _conv_bn_net()
    folded, names = fold_batchnorm(net, 8)
    assert names == {"0", "3.0"} and folded is not net
    assert [type(m).__name__ for m in folded.modules() if not isinstance(m, torch.nn.Sequential)] == [
        "Conv2d", "Identity", "ReLU", "Conv2d", "Identity"]
    x = torch.rand(2, 3, 8, 8)
    torch.testing.assert_close(folded(x), net(x), rtol=1e-4, atol=1e-5)
    assert isinstance(net[1], torch.nn.BatchNorm2d)  # the original is untouched
    assert not folded.training and not any(p.requires_grad for p in folded.parameters())  # frozen, like a render's


def test_batchnorm_without_running_statistics_is_not_folded():
    """Such a BatchNorm normalises with each batch's own statistics: no fixed affine map to fold."""
    from imagemachines.models.fuse import fold_batchnorm

    net = _conv_bn_net(track_running_stats=False)
    folded, names = fold_batchnorm(net, 8)
    assert names == {"3.0"}
    assert isinstance(folded[1], torch.nn.BatchNorm2d) and isinstance(folded[3][1], torch.nn.Identity)


def test_a_fold_that_fails_its_check_is_discarded(monkeypatch):
    from imagemachines.models import fuse

    def wrong_fuse(conv, bn):
        fused = torch.nn.utils.fusion.fuse_conv_bn_eval(conv, bn)
        with torch.no_grad():
            fused.bias.add_(0.01)  # off by more than the check's tolerance
        return fused

    monkeypatch.setattr(fuse, "fuse_conv_bn_eval", wrong_fuse)
    net = _conv_bn_net()
    assert fuse.fold_batchnorm(net, 8) == (net, set())


def test_nothing_to_fold_returns_the_model_itself():
    from torch import nn

    from imagemachines.models.fuse import fold_batchnorm

    net = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.BatchNorm2d(4), nn.Conv2d(4, 2, 1), nn.BatchNorm2d(3))
    assert fold_batchnorm(net.eval(), 8) == (net, set())  # BN after a ReLU, or of another width, stays


def test_a_tap_without_call_counts_takes_each_module_once():
    from imagemachines.models.taps import LayerTap

    model = tiny_loaded_model()
    x = torch.rand(1, 3, 32, 32)
    out = LayerTap(model.module, ["features.1"])(x)
    torch.testing.assert_close(out["features.1"], _full_forward_capture(model, "features.1", x))


@pytest.mark.parametrize("fast", [False, True])
def test_an_output_the_network_changes_in_place_later_is_tapped_as_the_layer_computed_it(fast):
    """MobileNetV2's blocks end in BatchNorm → ReLU6(inplace=True): tapping the BatchNorm together with a later
    layer must give the BatchNorm's output (negative values and values above 6 included), not the clamped tensor
    the in-place ReLU6 leaves behind."""
    from torch import nn

    from imagemachines.models import LoadedModel

    torch.manual_seed(0)
    net = nn.Sequential(nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU6(inplace=True)),
                        nn.Sequential(nn.Conv2d(8, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU6(inplace=True)))
    with torch.no_grad():
        net[0][0].weight.mul_(20)  # values well beyond 0 … 6 before the clamp
    model = LoadedModel.wrap("clamped", net, mean=(0.5,) * 3, std=(0.25,) * 3, input_size=16, weights_id="t")
    x = torch.rand(2, 3, 16, 16)
    with torch.no_grad():
        expected = net[0][1](net[0][0](x))
        out = model.tap(["0.1", "1"], fast=fast)(x)
        alone = model.tap(["0.1"], fast=fast)(x)["0.1"]  # the pass ends at the layer: nothing changes it
    assert expected.min() < 0 and expected.max() > 6
    torch.testing.assert_close(out["0.1"], expected, rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(alone, expected, rtol=1e-4, atol=1e-4)
    assert out["1"].min() >= 0 and out["1"].max() <= 6  # the later layer is still the clamped block


def test_the_layer_table_is_made_even_when_first_asked_for_under_inference_mode():
    """The first tap of a fresh model may come from inside torch.inference_mode (activation maps, explain): the
    dry run that finds in-place changes still works there and finds them."""
    from torch import nn

    from imagemachines.models import LoadedModel

    net = nn.Sequential(nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.ReLU6(inplace=True)),
                        nn.Conv2d(4, 2, 1))
    model = LoadedModel.wrap("fresh", net, mean=(0.5,) * 3, std=(0.25,) * 3, input_size=16, weights_id="t")
    with torch.inference_mode():
        out = model.tap(["0.1", "1"])(torch.rand(1, 3, 16, 16))
    assert model._changed_later == {"0.1"} and set(out) == {"0.1", "1"}
