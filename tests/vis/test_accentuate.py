"""Feature accentuation on the tiny model: the regulariser holds (or lets go of) the painting, the automatic
balance makes the strength mean the same for any scale of objective, results are reproducible and batch-safe,
the numbers are what the saved PNGs give, and every bad input is a clear error."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from imagemachines.errors import UnitOutOfRange, UnknownLayer, UserError
from imagemachines.vis import Unit, read_recipe, render, save_render
from imagemachines.vis.accentuation import AccentTarget, accentuate, lr_schedule, painting_size
from imagemachines.vis.directions import ConceptDirection, load_direction, save_direction
from imagemachines.vis.param import FourierImage
from imagemachines.vis.regulariser import default_reg_layer
from imagemachines.vis.transforms import NONE, TransformSpec, draw_affine
from tests.conftest import tiny_loaded_model

UNIT = "features.1.0:3"  # a conv output of the tiny net: never dead, so there is always a gradient
FAST = {"size": 48, "steps": 24}


def painting(height: int = 40, width: int = 56) -> np.ndarray:
    """A structured, non-square 'painting' (stripes and waves in three colours)."""
    yy, xx = np.mgrid[0:height, 0:width]
    return np.stack([128 + 100 * np.sin(xx / 5), 128 + 100 * np.cos(yy / 7),
                     100 + 80 * np.sin((xx + yy) / 9)], -1).astype(np.uint8)


@pytest.fixture(scope="module")
def model():
    return tiny_loaded_model()


# -- the parameterization and transforms it relies on ----------------------------------------------------------
def test_a_fourier_image_made_from_pictures_gives_them_back_to_the_last_level():
    rng = np.random.default_rng(0)
    pixels = rng.integers(0, 256, (2, 3, 37, 50)).astype(np.float32)
    pixels[:, :, :5] = 0  # saturated black and white survive the logit
    pixels[:, :, -5:] = 255
    x = torch.from_numpy(pixels) / 255
    image = FourierImage.from_images(x)
    assert image.shape == (37, 50)
    back = (image() * 255).round()
    assert torch.equal(back, torch.from_numpy(pixels))


def test_non_square_transforms_rotate_the_picture_without_shearing_it():
    """In pixel units, the affine map of a non-square image must be a rotation (times the zoom): lengths are kept.
    Square images get exactly the matrices they always had."""
    spec = TransformSpec(pad=0, jitter=0, scales=(1.0,), degrees=10, extra_zero_angles=0, jitter_after=0)
    h, w = 30, 90
    theta = draw_affine(spec, 20, [3], (h, w))[:, 0]  # (steps, 2, 3), normalised coordinates
    to_px = torch.diag(torch.tensor([w / 2, h / 2]))
    linear = to_px @ theta[:, :, :2] @ torch.linalg.inv(to_px)  # the map in pixel units
    gram = linear @ linear.transpose(1, 2)
    assert torch.allclose(gram, torch.eye(2).expand_as(gram), atol=1e-5)
    assert (theta[:, 0, 1].abs() > 0.01).any()  # some steps really rotate
    assert torch.equal(draw_affine(TransformSpec(), 8, [0, 5], 64), draw_affine(TransformSpec(), 8, [0, 5], (64, 64)))


def test_the_learning_rate_warms_up_then_falls_to_nothing():
    f = lr_schedule(100)
    values = [f(s) for s in range(100)]
    assert values[0] == pytest.approx(0.1) and max(values) == pytest.approx(1.0)
    assert values[9] == pytest.approx(1.0) and values[-1] == pytest.approx(1 / 90)
    assert all(a <= b for a, b in zip(values[:10], values[1:10], strict=False))
    assert all(a >= b for a, b in zip(values[10:], values[11:], strict=False))


# -- the regulariser --------------------------------------------------------------------------------------------
def test_a_very_high_strength_keeps_the_painting_and_zero_lets_it_go(model):
    painted = painting()
    hold, default, free = accentuate(model, painted, UNIT, strength=[1e5, 1.0, 0.0], size=48, steps=48)
    assert hold.numbers["pixel_distance"] < 1.5, hold.numbers  # 8-bit levels, RMS: the painting still
    assert hold.numbers["activation_distance"] < 0.02
    assert hold.activation == pytest.approx(hold.before, abs=0.005)
    assert default.activation > hold.activation + 0.02
    assert default.numbers["pixel_distance"] > 4 * hold.numbers["pixel_distance"]
    assert free.activation > default.activation and free.numbers["pixel_distance"] > default.numbers["pixel_distance"]
    assert free.numbers["pixel_distance"] > 10 * hold.numbers["pixel_distance"]


def test_at_strength_zero_the_regulariser_plays_no_part(model):
    """Strength 0 is an ordinary render started from the painting: the regulariser's layer does not matter."""
    a = accentuate(model, painting(), UNIT, strength=[0.0, 1.0], reg_layer="features.0", **FAST)
    b = accentuate(model, painting(), UNIT, strength=[0.0, 1.0], reg_layer="features.3", **FAST)
    assert np.array_equal(np.asarray(a[0].image), np.asarray(b[0].image))
    assert not np.array_equal(np.asarray(a[1].image), np.asarray(b[1].image))
    assert a[0].numbers["balance"] is not None  # measured for the batch; unused at 0
    [ordinary] = render(model, UNIT, size=48, steps=24)
    assert a[0].activation > 0.5 * ordinary.activation


def test_the_balance_makes_the_strength_independent_of_the_objective_s_scale(model):
    """A direction ten times as long has a ten times larger objective; the balance grows with it, so the same
    strength gives the same picture."""
    vector = torch.linspace(-1, 1, 16)
    small = ConceptDirection("features.1.0", vector, "d")
    large = ConceptDirection("features.1.0", vector * 10, "d10")
    a, b = accentuate(model, painting(), [small, large], strength=1.0, **FAST)
    assert b.numbers["balance"] == pytest.approx(10 * a.numbers["balance"], rel=1e-3)
    diff = np.abs(np.asarray(a.image, dtype=int) - np.asarray(b.image, dtype=int))
    assert diff.max() <= 2, diff.max()
    assert b.activation == pytest.approx(10 * a.activation, rel=0.01)


def test_a_one_hot_direction_accentuates_like_its_channel(model):
    one_hot = torch.zeros(16)
    one_hot[3] = 1.0
    [by_unit] = accentuate(model, painting(), UNIT, **FAST)
    [by_direction] = accentuate(model, painting(), ConceptDirection("features.1.0", one_hot, "three"), **FAST)
    diff = np.abs(np.asarray(by_unit.image, dtype=int) - np.asarray(by_direction.image, dtype=int))
    assert diff.max() <= 2
    assert by_direction.activation == pytest.approx(by_unit.activation, abs=1e-3)


# -- reproducibility, batching, numbers ------------------------------------------------------------------------
def test_the_same_seed_gives_the_same_image_alone_or_in_a_batch(model):
    units = [Unit("features.1.0", c) for c in (0, 3)]
    batch = accentuate(model, painting(), [AccentTarget(units[0], 0.5), AccentTarget(units[1], 2.0)],
                       seed=[4, 9], **FAST)
    for target, seed, b in zip((AccentTarget(units[0], 0.5), AccentTarget(units[1], 2.0)), (4, 9), batch,
                               strict=True):
        [alone] = accentuate(model, painting(), target, seed=seed, **FAST)
        diff = np.abs(np.asarray(alone.image, dtype=int) - np.asarray(b.image, dtype=int))
        assert diff.max() <= 1, diff.max()  # batched convolutions round differently in the last bits
        assert b.numbers["balance"] == pytest.approx(alone.numbers["balance"], rel=1e-4)
    [again] = accentuate(model, painting(), AccentTarget(units[1], 2.0), seed=9, **FAST)
    assert np.array_equal(np.asarray(again.image), np.asarray(alone.image))  # the same call: the same image
    [other] = accentuate(model, painting(), AccentTarget(units[1], 2.0), seed=10, **FAST)
    assert not np.array_equal(np.asarray(other.image), np.asarray(batch[1].image))


def test_strengths_and_targets_make_a_target_major_grid(model):
    out = accentuate(model, painting(), ["features.1.0:0", "features.2:5"], strength=[0.5, 2], size=32, steps=2)
    assert [(str(a.target), a.strength) for a in out] == [
        ("features.1.0:0", 0.5), ("features.1.0:0", 2.0), ("features.2:5", 0.5), ("features.2:5", 2.0)]


def test_the_painting_keeps_its_aspect_and_size_is_its_longer_side(model):
    [a] = accentuate(model, painting(40, 56), UNIT, size=70, steps=2)
    assert a.image.size == (70, 50) and a.painting.size == (70, 50)
    assert (a.recipe["width"], a.recipe["height"], a.recipe["size"]) == (70, 50, 70)
    assert painting_size(56, 40, 70) == (50, 70) and painting_size(10, 300, 64) == (64, 8)


def test_the_numbers_are_what_the_saved_pictures_give(model, tmp_path):
    """Before: the painting's 8-bit pixels at the accentuation's size; after: the saved PNG; distances by hand."""
    [a] = accentuate(model, painting(), UNIT, painting_name="stripes.png", **FAST)
    path = save_render(a, tmp_path / "a.png")
    recipe = read_recipe(path)
    assert recipe["accentuation"]["after"] == pytest.approx(a.activation)
    assert recipe["painting"]["name"] == "stripes.png" and recipe["method"] == "accentuate"
    assert recipe["unit"] == UNIT and recipe["options"]["reg_layer"] == default_reg_layer(model)
    saved = torch.from_numpy(np.array(Image.open(path).convert("RGB"))).permute(2, 0, 1)[None].float() / 255
    original = torch.from_numpy(np.array(a.painting)).permute(2, 0, 1)[None].float() / 255
    tap = model.tap(["features.1.0"])

    def value(x):
        return float(tap(model.normalize(x))["features.1.0"][0, 3].mean())

    assert a.activation == pytest.approx(value(saved), abs=1e-4)
    assert a.before == pytest.approx(value(original), abs=1e-4)
    assert a.numbers["gain"] == pytest.approx(a.activation / a.before)
    rms = float(((saved - original) * 255).square().mean().sqrt())
    assert a.numbers["pixel_distance"] == pytest.approx(rms, rel=1e-4)
    reg = model.tap([a.numbers["reg_layer"]])
    acts, acts0 = (reg(model.normalize(x))[a.numbers["reg_layer"]][0] for x in (saved, original))
    relative = float((acts - acts0).norm(dim=0).mean() / acts0.norm(dim=0).mean())
    assert a.numbers["activation_distance"] == pytest.approx(relative, rel=1e-3)


def test_with_an_index_the_numbers_include_the_unit_s_percentile_in_the_collection(model):
    class Index:  # the parts of CollectionIndex the numbers use
        weights_id, layers, path = model.weights_id, ["features.1.0"], "idx"
        asked: list = []

        def percentile(self, layer, channel, value):
            self.asked.append((layer, channel, value))
            return 100.0 * min(1.0, value / 3)

    index = Index()
    [a] = accentuate(model, painting(), UNIT, index=index, **FAST)
    squashed = torch.nn.functional.interpolate(
        torch.from_numpy(np.array(a.painting)).permute(2, 0, 1)[None].float() / 255, size=(32, 32),
        mode="bilinear", align_corners=False, antialias=True)
    expected = float(model.tap(["features.1.0"])(model.normalize(squashed))["features.1.0"][0, 3].max())
    assert index.asked[0][:2] == ("features.1.0", 3) and index.asked[0][2] == pytest.approx(expected, abs=1e-5)
    assert a.numbers["percentile_before"] == pytest.approx(100 * min(1, expected / 3), abs=1e-3)
    assert a.numbers["percentile_after"] > a.numbers["percentile_before"]
    [d] = accentuate(model, painting(), ConceptDirection("features.1.0", torch.ones(16)), index=index, size=32,
                     steps=2)
    assert "percentile_before" not in d.numbers  # a direction has no collection statistics


def test_progress_reports_the_objective_and_stop_cancels(model):
    from imagemachines.vis import RenderCancelled

    seen = []
    accentuate(model, painting(), UNIT, strength=[0.0, 1e5], size=32, steps=6, preview_every=3,
               on_progress=seen.append)
    assert [p.step for p in seen] == list(range(1, 7)) and seen[-1].images.shape == (2, 3, 23, 32)
    # the objective on the step's transformed view, not the penalised sum (1e5 × the balance × the distance)
    assert all(-1 < value < 1 for p in seen for value in p.activations), [p.activations for p in seen]
    with pytest.raises(RenderCancelled):
        accentuate(model, painting(), UNIT, size=32, steps=6, stop=lambda: True)


def test_the_default_regulariser_layer_is_the_last_block_at_stride_8(model):
    assert default_reg_layer(model) == "features.3"  # the tiny net at 32 px: every block is that fine
    big = tiny_loaded_model(input_size=128)  # features.3 is 32×32 = 1/4, features.1 1/2: still all < 12
    assert default_reg_layer(big) == "features.3"


def test_jupyter_shows_the_painting_and_its_accentuations(model, tmp_path):
    out = accentuate(model, painting(), UNIT, strength=[0.5, 2], size=32, steps=2)
    html = out._repr_html_()
    assert html.count("<img") == 3 and "painting" in html and "strength 2" in html
    assert out[0]._repr_png_().startswith(b"\x89PNG")
    sheet = out.sheet(tmp_path / "sheet.png")
    assert Image.open(sheet).size == (3 * (round(32 * 224 / 23) + 4), 224 + 30)  # painting + 2, 224 px high


# -- directions -------------------------------------------------------------------------------------------------
def test_a_direction_file_round_trips_with_its_layer_and_weights(model, tmp_path):
    path = save_direction(tmp_path / "haloes.safetensors", torch.arange(16.0), "features.1.0", model="tiny",
                          weights_id=model.weights_id)
    d = load_direction(path)
    assert (d.layer, d.name, d.model, d.weights_id) == ("features.1.0", "haloes", "tiny", model.weights_id)
    assert torch.equal(d.vector, torch.arange(16.0))
    d.check(model)


@pytest.mark.parametrize("case, message", [
    ("missing", "No such direction file"), ("garbage", "Cannot read"), ("no-tensor", "no tensor 'direction'"),
    ("matrix", "non-empty float vector"), ("zeros", "is all zero"), ("nan", "not finite"),
    ("no-layer", "does not say its layer"),
])
def test_bad_direction_files_are_clear_errors(tmp_path, case, message):
    from safetensors.torch import save_file

    path = tmp_path / "d.safetensors"
    if case == "garbage":
        path.write_bytes(b"not a safetensors file at all")
    elif case != "missing":
        tensors = {"no-tensor": {"other": torch.ones(3)}, "matrix": {"direction": torch.ones(2, 3)},
                   "zeros": {"direction": torch.zeros(3)}, "nan": {"direction": torch.tensor([1.0, float("nan")])},
                   "no-layer": {"direction": torch.ones(3)}}[case]
        save_file(tensors, str(path), metadata={} if case == "no-layer" else {"layer": "features.1.0"})
    with pytest.raises(UserError, match=message):
        load_direction(path)


# -- every input error ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("kwargs, error, message", [
    ({"targets": "features.9:0"}, UnknownLayer, "has no layer 'features.9'"),
    ({"targets": "features.1.0:99"}, UnitOutOfRange, "channel 99 is out of range"),
    ({"targets": "features.1.0:3@40,1"}, UnitOutOfRange, "outside layer 'features.1.0'"),
    ({"targets": "logits:1@0,0"}, UserError, "no position"),
    ({"targets": "nonsense"}, UserError, "Cannot read unit"),
    ({"targets": []}, UserError, "Say what to accentuate"),
    ({"targets": [3]}, UserError, "Cannot accentuate 3"),
    ({"strength": -1.0}, UserError, "Strength -1.0 is out of range"),
    ({"strength": float("nan")}, UserError, "out of range"),
    ({"strength": []}, UserError, "at least one strength"),
    ({"steps": 0}, UserError, "Steps 0 is out of range"),
    ({"size": 4}, UserError, "Size 4 is out of range"),
    ({"size": 5000}, UserError, "Size 5000 is out of range"),
    ({"lr": float("inf")}, UserError, "learning rate"),
    ({"reg_layer": "features.7"}, UnknownLayer, "has no layer 'features.7'"),
    ({"seed": [1, 2]}, UserError, "2 seeds for 1 images"),
    ({"targets": ConceptDirection("features.1.0", torch.ones(5))}, UserError, "has 5 values but layer"),
    ({"targets": ConceptDirection("features.1.0", torch.ones(16), weights_id="other")}, UserError,
     "made with weights other"),
    ({"image": "/nonexistent/painting.jpg"}, UserError, "No such image file"),
    ({"image": np.zeros((4, 4), dtype=np.uint8)}, UserError, "must be \\(height, width, 3\\) uint8"),
])
def test_bad_input_is_a_clear_error(model, kwargs, error, message):
    args = {"image": painting(), "targets": UNIT, "size": 32, "steps": 2, **kwargs}
    image, targets = args.pop("image"), args.pop("targets")
    with pytest.raises(error, match=message):
        accentuate(model, image, targets, **args)


def test_an_index_of_other_weights_and_an_unreadable_file_are_refused(model, tmp_path):
    class Other:
        weights_id, layers, path = "someone-else", [], "elsewhere"

    with pytest.raises(UserError, match="percentiles would mean nothing"):
        accentuate(model, painting(), UNIT, index=Other(), size=32, steps=2)
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"\xff\xd8 not really a jpeg")
    with pytest.raises(UserError, match="Cannot read"):
        accentuate(model, broken, UNIT, size=32, steps=2)


def test_batches_beyond_the_engine_s_limit_are_refused(model):
    with pytest.raises(UserError, match="1 to 1024 images"):
        accentuate(model, painting(), UNIT, strength=[1.0] * 1025, size=32, steps=1)


def test_without_transforms_the_image_rises_smoothly(model):
    [a] = accentuate(model, painting(), UNIT, strength=0.5, transforms=NONE, **FAST)
    assert a.recipe["options"]["transforms"]["pad"] == 0 and a.activation > a.before
