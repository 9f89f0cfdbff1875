"""The classic (2018 seed) recipe piece by piece: seeded start noise, the detail carried between octaves, the
median filter, autotone; and, for classic and MACO, reproducibility and batch == alone."""

import numpy as np
import pytest
import torch

from imagemachines.vis import Unit, render
from imagemachines.vis import classic as classic_module
from imagemachines.vis.classic import autotone, classic, median_filter, octave_sizes, seeded_noise
from imagemachines.vis.recipes import ClassicRecipe
from imagemachines.vis.transforms import resize
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
    torch.testing.assert_close(median_filter(x), torch.from_numpy(expected))  # 5×5 unless told otherwise


def test_autotone_stretches_each_channel_to_the_full_range():
    x = torch.stack([torch.linspace(0.2, 0.4, 1000), torch.linspace(0.5, 0.6, 1000), torch.linspace(0, 1, 1000)])
    out = autotone(x.view(1, 3, 10, 100))
    assert out.min() == 0 and out.max() == 1
    for c in range(3):
        assert out[0, c].min() == 0 and out[0, c].max() == 1


def test_autotone_stretches_the_whole_channel_not_each_column():
    ramp = torch.linspace(0.3, 0.6, 50)
    x = torch.stack([ramp, ramp * 0.5, 1 - ramp]).view(1, 3, 1, 50).expand(1, 3, 8, 50).contiguous()
    flat = x.flatten(2).numpy()
    lo, hi = np.quantile(flat, 0.1, axis=2, keepdims=True), np.quantile(flat, 0.9, axis=2, keepdims=True)
    expected = np.clip((flat - lo) / (hi - lo), 0, 1).reshape(x.shape)
    torch.testing.assert_close(autotone(x, 0.1), torch.from_numpy(expected).float())


class Recorder:
    """A stand-in network that is the identity (so its "activations" are the pixels it was given), and a monitor
    that keeps what it was told."""

    def __init__(self):
        self.seen, self.calls = [], []

    def forward(self, x):
        self.seen.append(x.detach().clone())
        return {"pixels": x}

    def monitor(self, step, values, images):
        self.calls.append((step, values.detach().clone(), images()))


def run_classic(rec, weight=3.0, seeds=(4,), **recipe):
    """classic() on the identity network with the objective weight × (sum of pixels): its gradient is weight
    everywhere, so a normalised step adds exactly step_size to every pixel."""
    return classic(rec.forward, lambda acts: weight * acts["pixels"].sum(dim=(1, 2, 3)), list(seeds),
                   ClassicRecipe(**recipe), torch.device("cpu"), rec.monitor)


def test_each_step_adds_step_size_times_the_gradient_over_its_mean_size():
    rec = Recorder()
    run_classic(rec, size=12, steps=4, octaves=1, step_size=0.01, median_every=0)
    start = seeded_noise([4], 12)
    torch.testing.assert_close(rec.seen[0], start)
    for k, seen in enumerate(rec.seen):
        torch.testing.assert_close(seen, start + 0.01 * k)


def test_octaves_climb_the_ladder_from_the_shrunk_start_noise():
    rec = Recorder()
    run_classic(rec, seeds=(4, 9), size=32, steps=2, octaves=3, octave_scale=2.0, median_every=0)
    assert [s.shape[-1] for s in rec.seen] == [8, 8, 16, 16, 32, 32]
    assert all(s.shape[0] == 2 for s in rec.seen)
    torch.testing.assert_close(rec.seen[0], resize(seeded_noise([4, 9], 32), 8))


def test_the_monitor_hears_every_step_with_its_values_and_an_autotoned_preview():
    rec = Recorder()
    out = run_classic(rec, size=16, steps=3, octaves=2, octave_scale=2.0, median_every=0, autotone_clip=0.2)
    assert [c[0] for c in rec.calls] == list(range(1, 7))
    for (_, values, preview), seen in zip(rec.calls, rec.seen, strict=True):
        torch.testing.assert_close(values, 3.0 * seen.sum(dim=(1, 2, 3)))
        # the preview of the image after this step, autotoned with the recipe's clip: a fifth of each tail saturates
        assert preview.shape == seen.shape and preview.min() >= 0 and preview.max() <= 1
        for c in range(3):
            assert 0.15 < (preview[0, c] == 0).float().mean() < 0.3
            assert 0.15 < (preview[0, c] == 1).float().mean() < 0.3
    for c in range(3):
        assert 0.15 < (out[0, c] == 0).float().mean() < 0.3


def test_the_median_filter_runs_every_nth_step_but_never_on_the_last(monkeypatch):
    sizes = []

    def spy(images, k=5):
        sizes.append(k)
        return images

    monkeypatch.setattr(classic_module, "median_filter", spy)
    run_classic(Recorder(), size=16, steps=5, octaves=2, octave_scale=2.0, median_every=2, median_size=3)
    assert sizes == [3, 3, 3, 3]  # steps 0 and 2 of each octave; step 4 is the octave's last


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
