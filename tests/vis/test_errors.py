"""Every user-facing error of the model registry and the engine names the problem and the fix."""

import pytest

from imagemachines.errors import UnitOutOfRange, UnknownLayer, UnknownModel, UserError, WeightsUnavailable
from imagemachines.models import load_model
from imagemachines.vis import Unit, render
from tests.conftest import tiny_loaded_model


def test_unknown_model_lists_close_names():
    with pytest.raises(UnknownModel, match=r"mobilenet_v3\b.*Did you mean: .*mobilenet_v3_small"):
        load_model("mobilenet_v3")


def test_unknown_layer_suggests_close_names():
    with pytest.raises(UnknownLayer, match=r"no layer 'feature.2'.*Did you mean: features.2"):
        tiny_loaded_model().layer("feature.2")


def test_unknown_layer_in_render():
    with pytest.raises(UnknownLayer, match="imagemachines layers"):
        render(tiny_loaded_model(), Unit("features.9", 0), steps=1, size=16)


def test_channel_out_of_range_says_the_range():
    with pytest.raises(UnitOutOfRange, match=r"16 channels; channel 16 is out of range \(use 0 to 15\)"):
        render(tiny_loaded_model(), Unit("features.2", 16), steps=1, size=16)


def test_class_out_of_range_says_the_range():
    with pytest.raises(UnitOutOfRange, match=r"5 classes; class 7 .*0 to 4"):
        render(tiny_loaded_model(), Unit("logits", 7), steps=1, size=16)


@pytest.mark.parametrize(("layer", "x", "y", "inside"), [
    ("features.2", 0, 0, True), ("features.2", 7, 7, True), ("features.2", 8, 0, False),
    ("features.2", 0, 8, False), ("features.2", 8, 8, False),
    ("logits", 0, 0, True), ("logits", 1, 0, False), ("logits", 0, 1, False),  # a vector: one position
])
def test_neuron_range_includes_both_first_and_last_position(layer, x, y, inside):
    from imagemachines.vis.engine import check_unit

    unit = Unit(layer, 1, x, y)
    if inside:
        check_unit(tiny_loaded_model(), unit, 16)
    else:
        with pytest.raises(UnitOutOfRange, match="is outside layer"):
            check_unit(tiny_loaded_model(), unit, 16)


def test_neuron_out_of_range_says_the_range():
    with pytest.raises(UnitOutOfRange, match=r"8×8 for 16-px images: use x 0\.\.7, y 0\.\.7"):
        render(tiny_loaded_model(), Unit("features.2", 1, 8, 2), steps=1, size=16)


def test_offline_weights_error_names_file_and_folder(torch_home):
    with pytest.raises(WeightsUnavailable) as info:
        load_model("resnet18")
    msg = str(info.value)
    assert "resnet18-f37072fd.pth" in msg
    assert str(torch_home / "hub" / "checkpoints") in msg


@pytest.mark.parametrize(
    ("kwargs", "pattern"),
    [
        ({"method": "dream"}, "Unknown method 'dream': choose one of lucid, classic, maco"),
        ({"size": 4}, "Size 4 is out of range"),
        ({"steps": 0}, "Steps 0 is out of range"),
        ({"lr_typo": 1.0}, "no option lr_typo"),
        ({"seed": [1, 2, 3]}, "3 seeds for 1 images"),
    ],
)
def test_bad_render_arguments(kwargs, pattern):
    with pytest.raises(UserError, match=pattern):
        render(tiny_loaded_model(), Unit("features.2", 0), **{"size": 16, "steps": 1, **kwargs})


@pytest.mark.parametrize("text", ["features.2", "features.2:x", ":3", "features.2:1@3"])
def test_bad_unit_text(text):
    with pytest.raises(UserError, match="LAYER:CHANNEL"):
        Unit.parse(text)


def test_unit_text_round_trip():
    for text in ["features.14:40", "features.14:40@3,2", "logits:281"]:
        assert str(Unit.parse(text)) == text
    assert Unit.parse("logits:1").kind == "class"
    assert Unit.parse("a:1@1,1").kind == "neuron"
