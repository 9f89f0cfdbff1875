"""Similarity modes: each vector against a hand-computed case, the layer choice, finishing, the mode parser."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from imagemachines.errors import UserError
from imagemachines.index.similarity_vectors import (
    SimilaritySpec,
    arrangement,
    composition_grid,
    fit_finish,
    mode_finish,
    parse_mode,
    raw_vectors,
    similarity_spec,
    style_projection,
    style_statistics,
)


def two_channels() -> torch.Tensor:
    """One painting, 2 channels on a 2 × 2 map: [[1, 2], [3, 4]] and [[0, 0], [0, 4]]."""
    return torch.tensor([[[[1.0, 2.0], [3.0, 4.0]], [[0.0, 0.0], [0.0, 4.0]]]])


def test_style_is_the_channel_covariance_upper_triangle():
    # channel 0: mean 2.5, deviations -1.5 -0.5 0.5 1.5 → variance 5/4; channel 1: mean 1, deviations -1 -1 -1 3
    # → variance 12/4; covariance (1.5 + 0.5 - 0.5 + 4.5) / 4 = 1.5. Order: (0,0), (0,1), (1,1).
    s = style_statistics(two_channels())
    assert s.shape == (1, 3)
    assert s[0].tolist() == pytest.approx([1.25, 1.5, 3.0])


def test_style_ignores_where_things_are_and_a_constant_shift():
    a = two_channels()
    moved = torch.flip(a, dims=(2, 3))  # the same values elsewhere: the same statistics
    assert torch.allclose(style_statistics(moved), style_statistics(a))
    assert torch.allclose(style_statistics(a + 7.0), style_statistics(a))  # means removed (not a plain Gram)


def test_style_projection_is_fixed_and_maps_the_channels_first():
    p = style_projection("features.13", 96, 32)
    assert p.shape == (96, 32)
    assert torch.equal(p, style_projection("features.13", 96, 32))  # the same in every process
    assert not torch.equal(p, style_projection("features.12", 96, 32))  # each layer its own
    assert style_projection("features.3", 24, 32) is None  # narrow layers are kept as they are
    a = torch.randn(2, 96, 5, 5, generator=torch.Generator().manual_seed(0))
    projected = torch.einsum("bchw,ck->bkhw", a, p)
    assert torch.allclose(style_statistics(a, p), style_statistics(projected), atol=1e-5)
    assert style_statistics(a, p).shape == (2, 32 * 33 // 2)


def test_composition_grid_averages_each_cell_unit_by_unit():
    a = torch.arange(32, dtype=torch.float32).view(1, 2, 4, 4)  # unit 1 = unit 0 + 16
    g = composition_grid(a, 2)
    # unit 0's quadrants: mean of [0,1,4,5] = 2.5, [2,3,6,7] = 4.5, [8,9,12,13] = 10.5, [10,11,14,15] = 12.5
    assert g[0].tolist() == [2.5, 4.5, 10.5, 12.5, 18.5, 20.5, 26.5, 28.5]


def test_arrangement_keeps_where_and_drops_what():
    g = np.array([[2.5, 4.5, 10.5, 12.5, 18.5, 20.5, 26.5, 28.5]])
    # each unit minus its own mean over the 4 cells (7.5 and 23.5): the two units are arranged alike
    assert arrangement(g, 2)[0].tolist() == [-5.0, -3.0, 3.0, 5.0, -5.0, -3.0, 3.0, 5.0]


def test_the_layers_are_the_ends_of_the_resolution_stages():
    blocks = [("features.0", 32, 112, 112), ("features.1", 16, 112, 112), ("features.2", 24, 56, 56),
              ("features.3", 24, 56, 56), ("features.4", 32, 28, 28), ("features.6", 32, 28, 28),
              ("features.7", 64, 14, 14), ("features.13", 96, 14, 14), ("features.14", 160, 7, 7),
              ("features.18", 1280, 7, 7), ("logits", 1000, 1, 1)]
    spec = similarity_spec(blocks, ("features.18", 1280))
    assert spec.style == ("features.1", "features.3", "features.6", "features.13")
    assert spec.style_channels == (16, 24, 32, 96)
    assert spec.composition == "features.13"
    assert spec.style_sizes() == [136, 300, 528, 528]
    assert [spec.width(r) for r in ("content", "style", "grid")] == [1280, 1492, 96 * 16]
    assert spec.layers == ["features.18", "features.1", "features.3", "features.6", "features.13"]
    assert SimilaritySpec.from_dict(spec.as_dict()) == spec
    one_stage = similarity_spec([("a", 8, 4, 4), ("b", 8, 4, 4)], ("b", 8))
    assert (one_stage.style, one_stage.composition) == (("b",), "b")
    with pytest.raises(UserError, match="spatial map"):
        similarity_spec([("logits", 10, 1, 1)], ("logits", 10))


def test_raw_vectors_of_a_tapped_batch():
    spec = SimilaritySpec("c", ("s",), "c", (2,), 2, 2, grid=2)
    outputs = {"s": two_channels(), "c": torch.arange(32, dtype=torch.float32).view(1, 2, 4, 4)}
    raw = raw_vectors(outputs, spec, {})
    assert raw["style"][0].tolist() == pytest.approx([1.25, 1.5, 3.0])
    assert raw["grid"][0].tolist() == [2.5, 4.5, 10.5, 12.5, 18.5, 20.5, 26.5, 28.5]


def test_finishing_standardises_and_weighs_each_block_equally():
    raw = np.array([[1.0, 2.0, 10.0], [3.0, 2.0, 30.0], [5.0, 2.0, 20.0]])
    f = fit_finish(raw, [2, 1], standardise=True)
    assert f.center.tolist() == pytest.approx([3.0, 2.0, 20.0])
    assert f.scale.tolist() == pytest.approx([np.sqrt(8 / 3), 1.0, np.sqrt(200 / 3)])  # a constant value: 1
    rows = f.apply(raw)
    # row 0: z = (-1.22, 0) → block 1 = (-1, 0)/√2; z = -1.22 → block 2 = -1/√2
    assert rows[0].tolist() == pytest.approx([-1 / np.sqrt(2), 0.0, -1 / np.sqrt(2)])
    # row 1 is the mean in block 1 and row 2 the mean in block 2: a zero block stays zero
    assert np.linalg.norm(rows, axis=1) == pytest.approx([1.0, 1.0 / np.sqrt(2), 1.0 / np.sqrt(2)])
    # a memory map read in steps gives the same finish
    g = fit_finish(raw, [2, 1], standardise=True, step=1)
    assert np.allclose(g.center, f.center) and np.allclose(g.scale, f.scale)
    with pytest.raises(ValueError, match="add up"):
        fit_finish(raw, [2, 2], standardise=True)


def test_mode_finishes():
    spec = SimilaritySpec("c", ("s",), "c", (2,), 2, 2, grid=2)
    pooled = np.array([[1.0, 0.0], [3.0, 2.0]])
    content = mode_finish("content", pooled, spec)  # as the network gives it: only made unit length
    assert content.center.tolist() == [0.0, 0.0] and content.scale.tolist() == [1.0, 1.0]
    assert np.allclose(content.apply(pooled), [[1.0, 0.0], [3 / np.sqrt(13), 2 / np.sqrt(13)]])
    centred = fit_finish(pooled, [2], standardise=False)
    assert centred.center.tolist() == [2.0, 1.0] and centred.scale.tolist() == [1.0, 1.0]
    grids = np.array([[2.5, 4.5, 10.5, 12.5, 18.5, 20.5, 26.5, 28.5], [0, 0, 0, 4, 1, 1, 1, 1.0]])
    comp = mode_finish("composition", grids, spec)
    assert comp.arrange == 2
    assert comp.center.tolist() == pytest.approx((arrangement(grids, 2)[0] + arrangement(grids, 2)[1]) / 2)
    with pytest.raises(UserError, match="Unknown similarity mode"):
        mode_finish("colour", pooled, spec)


@pytest.mark.parametrize(("text", "weights"), [
    ("style", {"style": 1.0}),
    ("Content", {"content": 1.0}),
    ("content+style", {"content": 0.5, "style": 0.5}),
    ("content:3, composition:1", {"content": 0.75, "composition": 0.25}),
    ("style:1,content:0", {"style": 1.0}),
])
def test_parse_mode(text, weights):
    assert parse_mode(text) == pytest.approx(weights)


@pytest.mark.parametrize(("text", "message"), [
    ("", "Give a similarity mode"),
    ("colour", "Unknown similarity mode 'colour'"),
    ("style:x", "must be a number"),
    ("style:-1", "≥ 0"),
    ("style:nan", "≥ 0"),
    ("style,style", "named twice"),
    ("style:0", "add up to 0"),
])
def test_parse_mode_refuses_bad_input(text, message):
    with pytest.raises(UserError, match=message):
        parse_mode(text)
