"""The seed's and the common architectures work end to end; the real MobileNetV2 weights give real features."""

import numpy as np
import pytest
import torch
from PIL import Image

from imagemachines.models import load_model
from imagemachines.vis import Channel, Unit, read_recipe, render, save_render, score

ARCHS = {  # architecture -> (a layer people look at, its channel count)
    "inception_v3": ("Mixed_5d", 288),
    "googlenet": ("inception4c", 512),
    "resnet50": ("layer3", 1024),
    "vgg16": ("features.28", 512),
    "mobilenet_v2": ("features.14", 160),
}


@pytest.mark.parametrize("arch", list(ARCHS))
def test_architecture_layers_and_render(arch):
    torch.manual_seed(0)
    model = load_model(arch, weights="none")
    layer, channels = ARCHS[arch]
    assert model.layer(layer).channels == channels
    assert model.layer("logits").channels == 1000
    renders = render(model, [Unit(layer, 0), Unit(layer, 1)], size=96, steps=2)
    assert len(renders) == 2 and renders[0].image.size == (96, 96)
    assert np.isfinite([r.activation for r in renders]).all()


@pytest.mark.weights
def test_real_mobilenet_features14_channel40(mobilenet_weights, tmp_path):
    model = load_model("mobilenet_v2")
    assert model.weights_id.endswith("mobilenet_v2-b0353104.pth")
    from imagemachines.vis.cli import weights_tag

    assert weights_tag(model.weights_id) == ""  # the default weights keep the short file names of the README
    unit = Unit("features.14", 40)
    start = render(model, unit, steps=1, lr=0.0, size=128)[0].activation
    [r] = render(model, unit, steps=128, size=128, seed=0)
    assert r.activation > start + 1.0 and r.activation > 5 * abs(start), (start, r.activation)
    path = save_render(r, tmp_path / "f14_40.png")
    pixels = torch.from_numpy(np.asarray(Image.open(path).convert("RGB")).copy()).permute(2, 0, 1)[None]
    tap = model.tap(["features.14"])
    rescored = score(lambda x: tap(model.normalize(x)), Channel("features.14", 40), pixels, torch.device("cpu"))
    assert rescored[0] == pytest.approx(r.activation, rel=1e-4)
    assert read_recipe(path)["activation"] == pytest.approx(r.activation)
