"""The classic (2018 seed) recipe piece by piece: seeded start noise, the detail carried between octaves, the
median filter, autotone; and, for classic and MACO, reproducibility and batch == alone."""

import numpy as np
import pytest
import torch

from imagemachines.vis import Unit, render
from imagemachines.vis.classic import autotone, median_filter, octave_sizes, seeded_noise
from tests.conftest import tiny_loaded_model

PRE_RELU = "features.1.0"
CLASSIC = {"method": "classic", "size": 40, "steps": 3, "octaves": 3}
MACO = {"method": "maco", "size": 32, "steps": 4, "crops": 2}  # MACO's large steps amplify float noise: few


def pixels(r) -> np.ndarray:
    return np.asarray(r.image, dtype=int)


def test_octave_sizes_climb_by_the_scale_to_the_final_size():
    assert octave_sizes(900) == [round(900 / 1.2**i) for i in range(9, -1, -1)]
    assert octave_sizes(40, 3, 2.0) == [10, 20, 40]
    assert octave_sizes(20, 4, 2.0) == [8, 8, 10, 20]  # never below 8 px


def test_start_noise_is_grey_seeded_per_image():
    a = seeded_noise([1, 2], 16)
    assert a.shape == (2, 3, 16, 16)
    assert a.min() >= 128 / 255 and a.max() < 148 / 255
    assert torch.equal(seeded_noise([1], 16)[0], a[0]) and torch.equal(seeded_noise([2], 16)[0], a[1])
    assert not torch.equal(a[0], a[1])


def test_median_filter_matches_a_plain_median_with_reflected_edges():
    x = torch.rand(2, 3, 9, 11, generator=torch.Generator().manual_seed(0))
    padded = np.pad(x.numpy(), ((0, 0), (0, 0), (2, 2), (2, 2)), mode="reflect")
    expected = np.empty_like(x.numpy())
    for i in range(9):
        for j in range(11):
            expected[:, :, i, j] = np.median(padded[:, :, i : i + 5, j : j + 5].reshape(2, 3, 25), axis=-1)
    torch.testing.assert_close(median_filter(x, 5), torch.from_numpy(expected))


def test_autotone_stretches_each_channel_to_the_full_range():
    x = torch.stack([torch.linspace(0.2, 0.4, 1000), torch.linspace(0.5, 0.6, 1000), torch.linspace(0, 1, 1000)])
    out = autotone(x.view(1, 3, 10, 100))
    assert out.min() == 0 and out.max() == 1
    for c in range(3):
        assert out[0, c].min() == 0 and out[0, c].max() == 1


def test_without_gradient_steps_the_octaves_give_back_the_start_noise():
    """With step size 0 and no median filter, shrinking to the first octave and growing back must lose
    nothing: the detail each enlargement lost is added back, so the result is the autotoned start noise."""
    [r] = render(tiny_loaded_model(), Unit(PRE_RELU, 3), **{**CLASSIC, "octaves": 4}, step_size=0.0,
                 median_every=0, seed=5)
    expected = (autotone(seeded_noise([5], 40)).clamp(0, 1) * 255).round().to(torch.uint8)[0].permute(1, 2, 0)
    diff = np.abs(pixels(r) - expected.numpy().astype(int))
    assert diff.max() <= 1, diff.max()


def test_the_median_filter_is_part_of_the_recipe():
    model = tiny_loaded_model()
    [filtered] = render(model, Unit(PRE_RELU, 3), **CLASSIC, median_every=1, seed=2)
    [plain] = render(model, Unit(PRE_RELU, 3), **CLASSIC, median_every=0, seed=2)
    assert np.abs(pixels(filtered) - pixels(plain)).mean() > 1


@pytest.mark.parametrize("opts", [CLASSIC, MACO], ids=["classic", "maco"])
def test_same_seed_same_image_other_seed_other_image(opts):
    model = tiny_loaded_model()
    a, b, c = (render(model, Unit(PRE_RELU, 1), **opts, seed=s)[0] for s in (3, 3, 4))
    assert np.array_equal(pixels(a), pixels(b)) and a.activation == b.activation
    assert not np.array_equal(pixels(a), pixels(c))


@pytest.mark.parametrize("opts", [CLASSIC, MACO], ids=["classic", "maco"])
def test_batch_equals_separate_renders(opts):
    model = tiny_loaded_model()
    units, seeds = [Unit(PRE_RELU, c) for c in (0, 3, 7)], [5, 6, 7]
    batched = render(model, units, **opts, seed=seeds)
    for unit, seed, b in zip(units, seeds, batched, strict=True):
        [alone] = render(model, unit, **opts, seed=seed)
        assert np.abs(pixels(alone) - pixels(b)).max() <= 2
        assert b.activation == pytest.approx(alone.activation, rel=1e-3, abs=1e-3)
