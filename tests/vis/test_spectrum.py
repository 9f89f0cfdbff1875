"""MACO's magnitude spectra: the built-in 1/f law, and one measured on images and saved without pickle."""

import pytest
import torch

from imagemachines.errors import UserError
from imagemachines.vis import Unit, render
from imagemachines.vis.spectrum import load_spectrum, measure_spectrum, natural_spectrum, save_spectrum
from tests.conftest import tiny_loaded_model


def test_natural_spectrum_falls_as_one_over_f():
    spec = natural_spectrum(32)
    assert spec.shape == (3, 32, 17) and spec[0, 0, 0] == 0
    assert spec[0, 0, 2] == pytest.approx(2 * spec[0, 0, 4].item(), rel=1e-5)  # amplitude ∝ 1/f


def test_measured_spectrum_round_trip_and_render(tmp_path):
    g = torch.Generator().manual_seed(0)
    stripes = torch.sin(torch.arange(48.0) * 2 * torch.pi * 6 / 48).expand(3, 48, 48) * 0.4 + 0.5
    images = [stripes + 0.05 * torch.rand(3, 48, 48, generator=g) for _ in range(3)]
    spec = measure_spectrum(images, 32)
    assert spec.shape == (3, 32, 17)
    assert spec[0, 0, 6] > 10 * spec[0, 0, 9]  # the stripes: 6 cycles per image, whatever the size
    path = save_spectrum(spec, tmp_path / "stripes.safetensors")
    torch.testing.assert_close(load_spectrum(str(path), 32), spec)
    [r] = render(tiny_loaded_model(), Unit("features.1", 1), method="maco", size=32, steps=3, crops=2,
                 spectrum=str(path))
    assert r.recipe["options"]["spectrum"] == str(path)


def test_spectrum_errors(tmp_path):
    with pytest.raises(UserError, match="No images"):
        measure_spectrum([], 32)
    with pytest.raises(UserError, match="not found"):
        load_spectrum(str(tmp_path / "missing.safetensors"), 32)
