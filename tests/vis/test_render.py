"""The engine on a tiny model: objectives rise, batches equal single renders, results are reproducible."""

import numpy as np
import pytest
import torch

from imagemachines.vis import (
    METHODS,
    Channel,
    Direction,
    Diversity,
    Neuron,
    RenderCancelled,
    Unit,
    method_defaults,
    read_recipe,
    render,
    save_render,
    score,
)
from imagemachines.vis.engine import units_objective
from imagemachines.vis.objectives import PerImage
from tests.conftest import tiny_loaded_model

FAST = {"lucid": {"size": 32, "steps": 24}, "maco": {"size": 32, "steps": 24, "crops": 2},
        "classic": {"size": 40, "steps": 4, "octaves": 3}}
PRE_RELU = "features.1.0"  # a conv output: never dead, so every method has a gradient to climb


def start_activation(model, unit, method):
    """The objective of the image each method starts from (one step of size ~0)."""
    opts = {**FAST[method], "steps": 1}
    opts["lr" if method != "classic" else "step_size"] = 0.0
    return render(model, unit, method=method, **opts)[0].activation


@pytest.mark.parametrize("method", METHODS)
def test_each_method_raises_its_objective(method):
    model = tiny_loaded_model()
    unit = Unit(PRE_RELU, 3)
    before = start_activation(model, unit, method)
    [r] = render(model, unit, method=method, **FAST[method])
    assert r.activation > before + 0.04, (before, r.activation)
    assert r.image.mode == "RGB" and r.image.size == (FAST[method]["size"],) * 2


def test_neuron_rises():
    """Without transforms (on a 64-px image Lucid's 12-px pad and jitter move a single neuron's input around
    too much for a tiny random net), the neuron objective climbs steadily."""
    from imagemachines.vis.transforms import NONE

    model = tiny_loaded_model()
    unit = Unit(PRE_RELU, 5, 16, 16)  # the centre of the 32×32 map of a 64-px image
    before = render(model, unit, size=64, steps=1, lr=0.0)[0].activation
    after = render(model, unit, size=64, steps=40, transforms=NONE)[0].activation
    assert after > before + 1.0, (before, after)


def test_class_logit_rises_far_beyond_its_natural_spread():
    """The tiny random net's logits hardly vary over random images; optimisation must move them a lot."""
    from imagemachines.vis.transforms import NONE

    model = tiny_loaded_model()
    natural = model.tap(["logits"])(model.normalize(torch.rand(64, 3, 32, 32)))["logits"][:, 2].std().item()
    before = start_activation(model, Unit("logits", 2), "lucid")
    after = render(model, Unit("logits", 2), size=32, steps=40, transforms=NONE)[0].activation
    assert after - before > 10 * natural, (before, after, natural)


def test_batch_equals_separate_renders_with_the_same_seeds():
    model = tiny_loaded_model()
    units = [Unit(PRE_RELU, c) for c in (0, 3, 7)]
    seeds = [5, 6, 7]
    batched = render(model, units, seed=seeds, size=32, steps=12)
    for unit, seed, b in zip(units, seeds, batched, strict=True):
        [alone] = render(model, unit, seed=seed, size=32, steps=12)
        diff = np.abs(np.asarray(alone.image, dtype=int) - np.asarray(b.image, dtype=int))
        assert diff.max() <= 2, diff.max()
        assert b.activation == pytest.approx(alone.activation, rel=1e-3, abs=1e-3)


def test_batched_mixed_layers_and_kinds():
    model = tiny_loaded_model()
    units = [Unit("features.0", 1), Unit("logits", 0), Unit(PRE_RELU, 2, 1, 1)]
    renders = render(model, units, size=32, steps=3)
    assert [r.unit for r in renders] == units
    assert [r.recipe["kind"] for r in renders] == ["channel", "class", "neuron"]


def test_same_seed_same_image_other_seed_other_image():
    model = tiny_loaded_model()
    a = render(model, Unit(PRE_RELU, 1), size=32, steps=5, seed=3)[0]
    b = render(model, Unit(PRE_RELU, 1), size=32, steps=5, seed=3)[0]
    c = render(model, Unit(PRE_RELU, 1), size=32, steps=5, seed=4)[0]
    assert np.array_equal(np.asarray(a.image), np.asarray(b.image))
    assert not np.array_equal(np.asarray(a.image), np.asarray(c.image))


def test_saved_png_carries_recipe_and_rescores(tmp_path):
    model = tiny_loaded_model()
    [r] = render(model, Unit(PRE_RELU, 4), size=32, steps=6, seed=9)
    path = save_render(r, tmp_path / "unit.png")
    recipe = read_recipe(path)
    for key in ("model", "weights_id", "layer", "unit", "method", "size", "steps", "seed", "activation"):
        assert key in recipe
    assert recipe["seed"] == 9 and recipe["unit"] == f"{PRE_RELU}:4" and recipe["weights_id"] == "tiny-seed0"
    assert path.with_suffix(".json").is_file()
    from PIL import Image

    pixels = torch.from_numpy(np.asarray(Image.open(path).convert("RGB")).copy()).permute(2, 0, 1)[None]
    tap = model.tap([PRE_RELU])
    value = score(lambda x: tap(model.normalize(x)), Channel(PRE_RELU, 4), pixels, torch.device("cpu"))[0]
    assert value == pytest.approx(recipe["activation"], rel=1e-5, abs=1e-5)


def test_progress_previews_and_cancel():
    model = tiny_loaded_model()
    seen = []
    render(model, [Unit(PRE_RELU, 0), Unit(PRE_RELU, 1)], size=32, steps=6, preview_every=3,
           on_progress=seen.append)
    assert [p.step for p in seen] == [1, 2, 3, 4, 5, 6]
    assert [p.images is not None for p in seen] == [False, False, True, False, False, True]
    assert seen[2].images.shape == (2, 3, 32, 32) and 0 <= seen[2].images.min() <= seen[2].images.max() <= 1
    assert all(len(p.activations) == 2 for p in seen)
    calls = []
    with pytest.raises(RenderCancelled):
        render(model, Unit(PRE_RELU, 0), size=32, steps=50, stop=lambda: calls.append(1) or len(calls) > 3)
    assert len(calls) == 4


def test_objective_algebra():
    acts = {"l": torch.arange(2 * 3 * 2 * 2, dtype=torch.float32).view(2, 3, 2, 2)}
    ch = Channel("l", 1)
    torch.testing.assert_close(ch(acts), torch.tensor([5.5, 17.5]))
    torch.testing.assert_close((2 * ch - Channel("l", 0))(acts), torch.tensor([11 - 1.5, 35 - 13.5]))
    torch.testing.assert_close((-ch)(acts), -ch(acts))
    torch.testing.assert_close(Channel("l", [0, 2])(acts), torch.tensor([1.5, 21.5]))
    torch.testing.assert_close(Neuron("l", 2, 1, 0)(acts), torch.tensor([9.0, 21.0]))
    torch.testing.assert_close(Direction("l", torch.tensor([1.0, 0, -1]))(acts), torch.tensor([-8.0, -8.0]))
    assert (ch + Diversity("l")).layers == ("l",)


def test_diversity_makes_a_batch_differ():
    model = tiny_loaded_model()
    seeds = [1, 2, 3]
    plain = render(model, Channel(PRE_RELU, 2), images=3, size=32, steps=20, seed=seeds)
    diverse = render(model, Channel(PRE_RELU, 2) + 50 * Diversity("features.1"), images=3, size=32, steps=20,
                     seed=seeds)
    tap = model.tap(["features.1"])

    def similarity(renders):  # mean Gram-matrix cosine similarity between the final images
        x = torch.stack([torch.from_numpy(np.asarray(r.image).copy()).permute(2, 0, 1) for r in renders])
        return -Diversity("features.1")(tap(model.normalize(x.float() / 255))).mean().item()

    assert similarity(diverse) < similarity(plain) - 0.01, (similarity(diverse), similarity(plain))


def test_units_in_text_form():
    [r] = render(tiny_loaded_model(), "features.1.0:2", size=32, steps=2)
    assert r.unit == Unit("features.1.0", 2)


def test_units_objective_is_vectorised_for_one_layer():
    obj = units_objective([Unit("a", 1), Unit("a", 2)])
    assert isinstance(obj, Channel) and obj.channel == [1, 2] and obj.border == 0
    assert units_objective([Unit("a", 1), Unit("a", 2)], border=2).border == 2
    neurons = units_objective([Unit("a", 1, 0, 1), Unit("a", 2, 3, 2)])
    assert isinstance(neurons, Neuron) and (neurons.channel, neurons.x, neurons.y) == ([1, 2], [0, 3], [1, 2])


def test_units_objective_mixing_layers_is_one_objective_per_image_with_the_border():
    mixed = units_objective([Unit("a", 1), Unit("b", 2), Unit("c", 3, 1, 1), Unit("d", 4, 2, 0)], border=2)
    assert isinstance(mixed, PerImage) and mixed.layers == ("a", "b", "c", "d")
    a, b, c, d = mixed.objectives
    assert isinstance(a, Channel) and (a.channel, a.border) == ([1], 2) and b.channel == [2]
    assert isinstance(c, Neuron) and (c.channel, c.x, c.y) == ([3], [1], [1]) and d.layers == ("d",)
    assert isinstance(units_objective([Unit("c", 3, 1, 1), Unit("d", 4, 2, 0)]), PerImage)  # neurons, two layers


def test_method_defaults_are_documented_numbers():
    assert method_defaults("classic")["size"] == 900
    assert method_defaults("classic")["octaves"] == 10 and method_defaults("classic")["steps"] == 100
    assert method_defaults("lucid")["lr"] == 0.05


@pytest.mark.parametrize("method", METHODS)
def test_render_leaves_the_global_random_stream_alone(method):
    """Every random draw of a render comes from its own seeded generators: a render must neither depend on
    nor move the caller's global stream (a server renders while other threads draw from it)."""
    model = tiny_loaded_model()
    opts = {**FAST[method], "steps": 2}
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    [r] = render(model, Unit(PRE_RELU, 1), method=method, **opts, seed=3)
    assert torch.equal(torch.rand(3), expected)
    torch.manual_seed(999)
    [again] = render(model, Unit(PRE_RELU, 1), method=method, **opts, seed=3)
    assert np.array_equal(np.asarray(r.image), np.asarray(again.image))


def test_maco_keeps_the_magnitude_spectrum_it_is_given(tmp_path):
    """MACO fixes the Fourier magnitude: with a measured spectrum of 6-cycle stripes the image is striped."""
    from imagemachines.vis.spectrum import measure_spectrum, save_spectrum

    g = torch.Generator().manual_seed(0)
    stripes = torch.sin(torch.arange(32.0) * 2 * torch.pi * 6 / 32).expand(3, 32, 32) * 0.4 + 0.5
    path = save_spectrum(measure_spectrum([stripes + 0.02 * torch.rand(3, 32, 32, generator=g)], 32),
                         tmp_path / "stripes.safetensors")
    model = tiny_loaded_model()

    def stripe_share(r) -> float:
        x = torch.from_numpy(np.asarray(r.image, dtype=np.float32)).permute(2, 0, 1)
        amp = torch.fft.rfft2(x - x.mean(dim=(1, 2), keepdim=True)).abs().sum(0)
        return float(amp[0, 6] / amp.sum())

    [measured] = render(model, Unit(PRE_RELU, 1), method="maco", size=32, steps=4, crops=2, spectrum=str(path))
    [natural] = render(model, Unit(PRE_RELU, 1), method="maco", size=32, steps=4, crops=2)
    assert stripe_share(measured) > 0.2 > 0.02 > stripe_share(natural), (stripe_share(measured),
                                                                         stripe_share(natural))


def test_the_recipe_lists_every_option_but_size_and_steps():
    from dataclasses import asdict

    from imagemachines.vis.recipes import make_recipe

    [r] = render(tiny_loaded_model(), Unit(PRE_RELU, 4), size=32, steps=2, lr=0.07)
    expected = asdict(make_recipe("lucid", 32, 2, lr=0.07))
    del expected["size"], expected["steps"]
    assert r.recipe["options"] == expected and r.recipe["options"]["lr"] == 0.07
    assert isinstance(r.recipe["options"]["transforms"], dict)  # nested settings as plain data
    assert (r.recipe["size"], r.recipe["steps"]) == (32, 2)


def test_lucid_starts_from_the_parameterization_it_is_asked_for(monkeypatch):
    from imagemachines.errors import UserError
    from imagemachines.vis import engine as render_module

    made = []
    for name in ("FourierImage", "PixelImage"):
        real = getattr(render_module, name)

        def spy(*args, _real=real, _name=name, **kwargs):
            made.append((_name, kwargs))
            return _real(*args, **kwargs)

        monkeypatch.setattr(render_module, name, spy)
    model = tiny_loaded_model()
    render(model, Unit(PRE_RELU, 4), size=32, steps=1, parameterization="pixel")
    render(model, Unit(PRE_RELU, 4), size=32, steps=1, parameterization="fourier", decay_power=0.5)
    assert made == [("PixelImage", {}), ("FourierImage", {"decay_power": 0.5})]
    with pytest.raises(UserError, match="Unknown parameterization 'hsv': use fourier or pixel"):
        render(model, Unit(PRE_RELU, 4), size=32, steps=1, parameterization="hsv")


def _render_module():
    from imagemachines.vis import engine

    return engine


def test_defaults_seed_0_one_image_and_a_preview_only_at_the_end():
    model = tiny_loaded_model()
    seen = []
    [plain] = render(model, Unit(PRE_RELU, 4), size=32, steps=2, on_progress=seen.append)
    [seeded] = render(model, Unit(PRE_RELU, 4), size=32, steps=2, seed=0)
    assert np.array_equal(np.asarray(plain.image), np.asarray(seeded.image)) and plain.recipe["seed"] == 0
    assert [p.images is not None for p in seen] == [False, True]
    assert len(render(model, Channel(PRE_RELU, 1), size=32, steps=1)) == 1


def test_classic_progress_counts_every_step_of_every_octave():
    seen = []
    render(tiny_loaded_model(), Unit(PRE_RELU, 4), method="classic", size=24, steps=2, octaves=3,
           on_progress=seen.append)
    assert [(p.step, p.total) for p in seen] == [(s, 6) for s in range(1, 7)]
    assert seen[-1].images is not None


def test_classic_objectives_ignore_the_recipes_border_and_others_none(monkeypatch):
    module = _render_module()
    borders = []
    real = module.units_objective

    def spy(units, border=0):
        borders.append(border)
        return real(units, border)

    monkeypatch.setattr(module, "units_objective", spy)
    model = tiny_loaded_model()
    render(model, Unit(PRE_RELU, 4), method="classic", size=24, steps=1, octaves=1)
    render(model, Unit(PRE_RELU, 4), method="classic", size=24, steps=1, octaves=1, border=3)
    render(model, Unit(PRE_RELU, 4), size=24, steps=1)
    assert set(borders[:1]) == {2} and borders[-1] == 0 and 3 in borders


def test_a_render_takes_one_to_max_batch_units(monkeypatch):
    from imagemachines.errors import UserError

    monkeypatch.setattr(_render_module(), "MAX_BATCH", 3)
    model = tiny_loaded_model()
    assert len(render(model, [Unit(PRE_RELU, c) for c in range(3)], size=16, steps=1)) == 3
    for n in (0, 4):
        with pytest.raises(UserError, match=f"A render takes 1 to 3 units at once; got {n}"):
            render(model, [Unit(PRE_RELU, c) for c in range(n)], size=16, steps=1)


def test_the_final_picture_is_rounded_and_clamped_to_8_bits(monkeypatch):
    module = _render_module()
    values = torch.tensor([-0.5, 0.0, 0.3, 0.5, 1.0, 1.5])
    monkeypatch.setattr(module, "_run", lambda *args: values.repeat(2).view(1, 1, 1, 12).expand(1, 3, 12, 12).clone())
    [r] = render(tiny_loaded_model(), Unit(PRE_RELU, 4), size=12, steps=1)
    assert np.asarray(r.image)[0, :6, 0].tolist() == [0, 0, 76, 128, 255, 255]


def test_the_recipe_names_the_unit_its_position_the_device_version_and_class():
    from imagemachines import __version__

    model = tiny_loaded_model()
    unit = Unit(PRE_RELU, 4, 1, 2)
    [n] = render(model, unit, size=32, steps=1)
    assert {k: n.recipe[k] for k in ("unit", "layer", "channel", "kind", "x", "y", "device", "imagemachines")} == {
        "unit": str(unit), "layer": PRE_RELU, "channel": 4, "kind": "neuron", "x": 1, "y": 2, "device": "cpu",
        "imagemachines": __version__}
    assert "options" in n.recipe and "class_name" not in n.recipe
    [c] = render(model, Unit("logits", 3), size=32, steps=1)
    assert (c.recipe["kind"], c.recipe["class_name"]) == ("class", "class3")


def test_maco_reports_one_value_per_image_and_uses_its_noise_option():
    model = tiny_loaded_model()
    opts = {"method": "maco", "size": 32, "steps": 2, "crops": 3}
    seen = []
    [quiet] = render(model, Unit(PRE_RELU, 4), **opts, noise=0.0, on_progress=seen.append)
    assert all(len(p.activations) == 1 for p in seen)  # the crops' values averaged per image
    [noisy] = render(model, Unit(PRE_RELU, 4), **opts, noise=0.3)
    assert not np.array_equal(np.asarray(quiet.image), np.asarray(noisy.image))


def test_the_recipe_records_the_thread_count_and_torch_version_it_was_rendered_with():
    """On a CPU the thread count decides the last bits (and, over many steps, visible pixels): every recipe says
    which it was, with the library version (docs/visualize.md, Reproducibility)."""
    import torch

    model = tiny_loaded_model()
    threads = torch.get_num_threads()
    try:
        for n in (1, 2):
            torch.set_num_threads(n)
            [r] = render(model, Unit(PRE_RELU, 4), size=32, steps=1)
            assert (r.recipe["threads"], r.recipe["torch"]) == (n, torch.__version__)
    finally:
        torch.set_num_threads(threads)
