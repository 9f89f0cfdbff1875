"""Similarity modes: each vector against a hand-computed case, the layer choice, finishing, the mode parser."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from imagemachines.errors import UserError
from imagemachines.index.similarity_vectors import (
    COVARIANCE,
    LOG_COVARIANCE,
    STYLE_FLOOR,
    STYLE_RIDGE,
    Finish,
    SimilaritySpec,
    arrangement,
    composition_grid,
    finish_options,
    fit_finish,
    log_covariance,
    mode_finish,
    parse_mode,
    raw_vectors,
    shrunk_whitening,
    similarity_spec,
    style_projection,
    style_statistics,
)


def two_channels() -> torch.Tensor:
    """One painting, 2 channels on a 2 × 2 map: [[1, 2], [3, 4]] and [[0, 0], [0, 4]]."""
    return torch.tensor([[[[1.0, 2.0], [3.0, 4.0]], [[0.0, 0.0], [0.0, 4.0]]]])


def test_the_plain_statistic_is_the_channel_covariance_upper_triangle():
    # channel 0: mean 2.5, deviations -1.5 -0.5 0.5 1.5 → variance 5/4; channel 1: mean 1, deviations -1 -1 -1 3
    # → variance 12/4; covariance (1.5 + 0.5 - 0.5 + 4.5) / 4 = 1.5. Order: (0,0), (0,1), (1,1).
    s = style_statistics(two_channels(), statistic=COVARIANCE)
    assert s.shape == (1, 3)
    assert s[0].tolist() == pytest.approx([1.25, 1.5, 3.0])


def uncorrelated() -> torch.Tensor:
    """2 channels on a 2 × 2 map: [[1, -1], [1, -1]] (variance 1) and [[2, 2], [-2, -2]] (variance 4), whose
    covariance is 0: the covariance matrix is diag(1, 4)."""
    return torch.tensor([[[[1.0, -1.0], [1.0, -1.0]], [[2.0, 2.0], [-2.0, -2.0]]]])


def test_style_is_the_logarithm_of_the_covariance():
    # diag(1, 4) plus the ridge (0.1 % of the mean variance 2.5) on the diagonal; the logarithm of a diagonal
    # matrix is the logarithm of each diagonal value: (log 1.0025, 0, log 4.0025)
    ridge = STYLE_RIDGE * 2.5
    s = style_statistics(uncorrelated())
    assert s[0].tolist() == pytest.approx([np.log(1 + ridge), 0.0, np.log(4 + ridge)], abs=1e-6)
    # a covariance with correlated channels: V diag(log λ) Vᵀ of [[1.25, 1.5], [1.5, 3]] + ridge
    c = np.array([[1.25, 1.5], [1.5, 3.0]]) + STYLE_RIDGE * (1.25 + 3.0) / 2 * np.eye(2)
    w, v = np.linalg.eigh(c)
    want = v @ np.diag(np.log(w)) @ v.T
    assert style_statistics(two_channels())[0].tolist() == pytest.approx([want[0, 0], want[0, 1], want[1, 1]],
                                                                         abs=1e-6)
    # scaling the map by 10 scales the covariance by 100: every log variance moves by log 100, nothing else does
    moved = style_statistics(uncorrelated() * 10)[0] - s[0]
    assert moved.tolist() == pytest.approx([np.log(100), 0.0, np.log(100)], abs=1e-5)


def test_a_flat_map_has_a_finite_style():
    flat = torch.full((1, 3, 4, 4), 0.5)  # no variance at all: every eigenvalue is raised to the floor
    s = style_statistics(flat)
    assert torch.isfinite(s).all()
    assert s[0].tolist() == pytest.approx([np.log(STYLE_FLOOR), 0, 0, np.log(STYLE_FLOOR), 0, np.log(STYLE_FLOOR)])
    assert log_covariance(torch.zeros(2, 3, 3)).shape == (2, 3, 3)
    with pytest.raises(ValueError, match="unknown style statistic"):
        style_statistics(flat, statistic="gram")


@pytest.mark.parametrize("statistic", [LOG_COVARIANCE, COVARIANCE])
def test_style_ignores_where_things_are_and_a_constant_shift(statistic):
    a = two_channels()
    moved = torch.flip(a, dims=(2, 3))  # the same values elsewhere: the same statistics
    assert torch.allclose(style_statistics(moved, statistic=statistic), style_statistics(a, statistic=statistic))
    # means removed (not a plain Gram)
    assert torch.allclose(style_statistics(a + 7.0, statistic=statistic), style_statistics(a, statistic=statistic),
                          atol=1e-5)


def test_style_projection_is_fixed_and_maps_the_channels_first():
    p = style_projection("features.13", 96, 32)
    assert p.shape == (96, 32)
    assert torch.equal(p, style_projection("features.13", 96, 32))  # the same in every process
    assert not torch.equal(p, style_projection("features.12", 96, 32))  # each layer its own
    assert style_projection("features.3", 24, 32) is None  # narrow layers are kept as they are
    a = torch.randn(2, 96, 5, 5, generator=torch.Generator().manual_seed(0))
    projected = torch.einsum("bchw,ck->bkhw", a, p)
    assert torch.allclose(style_statistics(a, p), style_statistics(projected), atol=1e-4)
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


def test_the_layers_are_the_blocks_of_the_resolution_stages():
    blocks = [("features.0", 32, 112, 112), ("features.1", 16, 112, 112), ("features.2", 24, 56, 56),
              ("features.3", 24, 56, 56), ("features.4", 32, 28, 28), ("features.6", 32, 28, 28),
              ("features.7", 64, 14, 14), ("features.13", 96, 14, 14), ("features.14", 160, 7, 7),
              ("features.18", 1280, 7, 7), ("logits", 1000, 1, 1)]
    spec = similarity_spec(blocks, ("features.18", 1280))
    # style: every block of every stage but the deepest (7 × 7); composition: the end of the second-deepest
    assert spec.style == ("features.0", "features.1", "features.2", "features.3", "features.4", "features.6",
                          "features.7", "features.13")
    assert spec.style_channels == (32, 16, 24, 24, 32, 32, 64, 96)
    assert spec.composition == "features.13"
    assert (spec.statistic, spec.keep) == (LOG_COVARIANCE, 16)
    assert spec.style_sizes() == [136] * 8  # every layer kept at 16 channels: 16 · 17 / 2 values
    assert [spec.width(r) for r in ("content", "style", "grid")] == [1280, 8 * 136, 96 * 16]
    assert spec.layers == ["features.18", "features.0", "features.1", "features.2", "features.3", "features.4",
                           "features.6", "features.7", "features.13"]
    assert SimilaritySpec.from_dict(spec.as_dict()) == spec
    one_stage = similarity_spec([("a", 8, 4, 4), ("b", 8, 4, 4)], ("b", 8))
    assert (one_stage.style, one_stage.composition) == (("a", "b"), "b")
    with pytest.raises(UserError, match="spatial map"):
        similarity_spec([("logits", 10, 1, 1)], ("logits", 10))


def test_a_manifest_from_before_the_logarithm_reads_as_plain_covariances_of_32_channels():
    old = {"content": "features.18", "style": ["features.1", "features.3"], "composition": "features.13",
           "style_channels": [16, 24], "content_channels": 1280, "composition_channels": 96, "grid": 4, "keep": 32}
    spec = SimilaritySpec.from_dict(old)
    assert (spec.statistic, spec.keep) == (COVARIANCE, 32)
    assert spec.style_sizes() == [136, 300]
    older = SimilaritySpec.from_dict({k: v for k, v in old.items() if k != "keep"})
    assert (older.statistic, older.keep) == (COVARIANCE, 32)
    raw = raw_vectors({"features.1": two_channels(), "features.3": two_channels(),
                       "features.13": torch.zeros(1, 2, 4, 4)},
                      SimilaritySpec("features.18", ("features.1",), "features.13", (2,), 2, 2, grid=2,
                                     statistic=COVARIANCE), {})
    assert raw["style"][0].tolist() == pytest.approx([1.25, 1.5, 3.0])
    with pytest.raises(UserError, match="update imagemachines"):
        SimilaritySpec.from_dict(old | {"statistic": "wasserstein"})


def test_raw_vectors_of_a_tapped_batch():
    spec = SimilaritySpec("c", ("s",), "c", (2,), 2, 2, grid=2)
    outputs = {"s": two_channels(), "c": torch.arange(32, dtype=torch.float32).view(1, 2, 4, 4)}
    raw = raw_vectors(outputs, spec, {})
    assert raw["style"][0].tolist() == pytest.approx(style_statistics(two_channels())[0].tolist())
    assert raw["style"][0, 1] != pytest.approx(1.5)  # the logarithm, not the plain covariance
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


def test_shrunk_whitening_of_a_hand_computed_covariance():
    # eigenvalues 9, 1 and 0 (a direction the collection does not span): λ̄ = (9 + 1) / 2 over the 2 it spans;
    # with shrink 1 the scales are 1/√(9 + 5), 1/√(1 + 5), 1/√(0 + 5)
    w = shrunk_whitening(np.diag([9.0, 1.0, 0.0]), shrink=1.0, rank=2)
    assert np.allclose(w, np.diag([1 / np.sqrt(14), 1 / np.sqrt(6), 1 / np.sqrt(5)]))
    # the same in another basis: W = R diag(…) Rᵀ for a rotated covariance R diag(9, 1, 0) Rᵀ
    r = np.linalg.qr(np.random.default_rng(0).standard_normal((3, 3)))[0]
    assert np.allclose(shrunk_whitening(r @ np.diag([9.0, 1.0, 0.0]) @ r.T, 1.0, 2), r @ w @ r.T, atol=1e-6)
    # rank defaults to every dimension: λ̄ = 10 / 3
    assert np.allclose(shrunk_whitening(np.diag([9.0, 1.0, 0.0]), 1.0), np.diag(1 / np.sqrt([9 + 10 / 3, 1 + 10 / 3,
                                                                                           10 / 3])))
    assert shrunk_whitening(np.zeros((3, 3))) is None  # nothing varies: nothing to whiten


def test_whitening_damps_the_direction_that_dominates_the_collection(monkeypatch):
    rng = np.random.default_rng(1)
    n = 200
    loud = rng.standard_normal(n) * 20  # one value that varies 20 × more than the other 49 (say, exposure)
    raw = np.column_stack([loud, rng.standard_normal((n, 49))])
    plain = fit_finish(raw, [50], standardise=False, centre=True)
    white = fit_finish(raw, [50], standardise=False, centre=True, whiten=1.0)
    assert plain.whiten is None and white.whiten.shape == (50, 50) and white.whiten_center.shape == (50,)
    # two paintings alike in everything but the loud value: opposed before, alike after whitening
    rest = rng.standard_normal(49)
    a, b = np.r_[20.0, rest][None], np.r_[-20.0, rest][None]
    before = float((plain.apply(a) @ plain.apply(b).T)[0, 0])
    after = float((white.apply(a) @ white.apply(b).T)[0, 0])
    assert before < -0.5 and after > 0.3
    mild = fit_finish(raw, [50], standardise=False, centre=True, whiten=10.0)  # more shrinkage: damped less
    assert after > float((mild.apply(a) @ mild.apply(b).T)[0, 0]) > before
    assert np.linalg.norm(white.apply(raw), axis=1) == pytest.approx(np.ones(n), abs=1e-5)  # unit rows
    again = Finish.from_tensors(white.tensors())
    assert np.array_equal(again.whiten, white.whiten) and np.allclose(again.apply(raw[:5]), white.apply(raw[:5]))
    assert Finish.from_tensors(plain.tensors()).whiten is None
    # a memory map read in steps gives the same whitening; one painting alone is not whitened
    assert np.allclose(fit_finish(raw, [50], standardise=False, whiten=1.0, step=7).whiten, white.whiten, atol=1e-5)
    assert fit_finish(raw[:1], [50], standardise=False, whiten=1.0).whiten is None
    import imagemachines.index.similarity_vectors as sv

    monkeypatch.setattr(sv, "WHITEN_UP_TO", 49)  # rows wider than the bound are not whitened: memory stays bounded
    assert fit_finish(raw, [50], standardise=False, whiten=1.0).whiten is None


def test_style_rows_are_whitened_only_with_the_logarithm():
    spec = SimilaritySpec("c", ("s",), "c", (2,), 2, 2, grid=2)
    assert finish_options("style", 3, spec)["whiten"] == 10.0
    legacy = SimilaritySpec("c", ("s",), "c", (2,), 2, 2, grid=2, keep=32, statistic=COVARIANCE)
    assert finish_options("style", 3, legacy)["whiten"] is None  # an older index's rows stay as they were
    assert "whiten" not in finish_options("composition", 8, spec) and "whiten" not in finish_options("content", 2,
                                                                                                    spec)


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
