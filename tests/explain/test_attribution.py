"""Attribution maps with known answers: the planted net's class evidence is the disc of its colour."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from imagemachines.attribution import METHODS, attribute, attribute_low, check_method
from imagemachines.attribution.inputs import model_input
from imagemachines.attribution.integrated import integrated_gradients
from imagemachines.errors import UnitOutOfRange, UnknownLayer, UserError
from imagemachines.models import LoadedModel
from tests.explain.planted import BLUE, RED, painting, peak, planted_model


@pytest.fixture(scope="module")
def model():
    return planted_model()


def near(point, target, tolerance=5) -> bool:
    return abs(point[0] - target[0]) <= tolerance and abs(point[1] - target[1]) <= tolerance


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize(("red_at", "blue_at"), [((16, 20), (46, 44)), ((48, 14), (14, 50))])
def test_each_class_map_peaks_on_its_own_object(model, method, red_at, blue_at):
    img = painting([(red_at, RED), (blue_at, BLUE)])
    red, blue = (attribute(model, img, t, method=method) for t in (0, 1))
    assert near(peak(red), red_at) and near(peak(blue), blue_at)
    # and the other object gets (almost) nothing
    assert red[blue_at[1], blue_at[0]] < 0.2 and blue[red_at[1], red_at[0]] < 0.2


@pytest.mark.parametrize("method", METHODS)
def test_map_has_the_paintings_size_and_range(model, method):
    img = painting([((70, 20), RED)], size=(96, 40))  # not square: the map follows the squash back
    heat = attribute(model, img, 0, method=method)
    assert heat.shape == (40, 96) and heat.dtype == np.float32
    assert heat.min() >= 0 and heat.max() == pytest.approx(1, abs=0.02)
    assert near(peak(heat), (70, 20), tolerance=7)


def test_no_evidence_gives_an_empty_map(model):
    heat = attribute(model, painting([]), 0, method="gradcam")
    assert heat.shape == (64, 64) and float(heat.max()) == 0.0


def test_integrated_gradients_are_complete(model):
    """Attributions add up to score(painting) - score(baseline) (the axiom IG is chosen for)."""
    img = painting([((30, 30), RED)])
    x = model_input(model, img)
    result = integrated_gradients(model, x, 0, steps=64, baseline="black")
    with torch.no_grad():
        gap = model.module(model.normalize(x))[0, 0] - model.module(model.normalize(torch.zeros_like(x)))[0, 0]
    assert float(result.attributions.sum()) == pytest.approx(float(gap), rel=0.02)
    assert result.delta < 0.05 * abs(float(gap))


def test_blur_baseline_also_finds_the_object(model):
    heat = attribute(model, painting([((20, 40), RED)]), 0, method="ig", baseline="blur")
    assert near(peak(heat), (20, 40))


def test_cam_layer_can_be_chosen(model):
    fine = attribute_low(model, painting([((20, 40), RED)]), 0, method="gradcam", layer="features.1")
    assert fine.shape == (32, 32) and near(peak(fine), (10, 20), tolerance=3)


@pytest.mark.parametrize("layer", ["features.2", "features.3"])
def test_cams_match_pytorch_grad_cam(layer):
    """Grad-CAM and Grad-CAM++ agree with the reference implementation (pytorch-grad-cam) on a random net.

    Its classifier is scaled up so that the reference's 1e-6 denominator constant is negligible; on such a net
    Grad-CAM and Grad-CAM++ differ clearly, so a swapped or simplified formula fails here.
    """
    pytest.importorskip("pytorch_grad_cam")
    from pytorch_grad_cam import GradCAM, GradCAMPlusPlus
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

    from tests.conftest import tiny_loaded_model

    model = tiny_loaded_model(input_size=32)
    with torch.no_grad():
        model.module.classifier.weight.mul_(100)
    img = painting([((8, 10), RED), ((20, 22), RED), ((25, 6), BLUE)], radius=3, size=(32, 32))
    x = model.normalize(model_input(model, img)).requires_grad_(True)  # the model itself is frozen
    module = dict(model.module.named_modules())[layer]
    for target in (1, 2):
        ours, reference = {}, {}
        for name, cls in (("gradcam", GradCAM), ("gradcam++", GradCAMPlusPlus)):
            with cls(model=model.module, target_layers=[module]) as cam:
                reference[name] = cam(input_tensor=x, targets=[ClassifierOutputTarget(target)])[0]
            heat = attribute(model, img, target, method=name, layer=layer)
            # the reference min-max scales at feature resolution, then resizes bilinearly as we do
            ours[name] = (heat - heat.min()) / max(heat.max() - heat.min(), 1e-12)
        for name in ours:
            assert np.abs(ours[name] - reference[name]).max() < 2e-3, (name, target)
        if layer == "features.2":
            assert np.corrcoef(ours["gradcam"].ravel(), reference["gradcam++"].ravel())[0, 1] < 0.9


def test_bad_requests_are_clear(model):
    img = painting([])
    with pytest.raises(UserError, match="Unknown attribution method"):
        attribute(model, img, 0, method="saliency")
    assert check_method("Grad-CAM++") == "gradcam++" and check_method("integrated_gradients") == "ig"
    with pytest.raises(UnitOutOfRange, match="3 classes"):
        attribute(model, img, 3)
    with pytest.raises(UnknownLayer, match="no layer"):
        attribute(model, img, 0, layer="features.9")
    with pytest.raises(UnknownLayer, match="no spatial map"):
        attribute(model, img, 0, layer="pool")
    with pytest.raises(UserError, match="takes no layer"):
        attribute(model, img, 0, method="ig", layer="features.1")
    with pytest.raises(UserError, match="baseline"):
        attribute(model, img, 0, method="ig", baseline="white")


def test_model_without_class_scores_is_refused():
    headless = LoadedModel.wrap("headless", planted_model().module.features, mean=(0.5,) * 3, std=(0.5,) * 3,
                                input_size=64, weights_id="x", source="test")
    with pytest.raises(UserError, match="no class scores"):
        attribute(headless, painting([]), 0)
