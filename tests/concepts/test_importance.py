"""Concept importance through the rest of the network, against tails whose answers are computed by hand."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from imagemachines.concepts.faithfulness import curves, unit_importance
from imagemachines.concepts.importance import (
    ablation_importance,
    cell_coefficients,
    reconstruct,
    sobol_importance,
    without,
)


class LinearTail(nn.Module):
    """Global average pooling, then one linear layer: class c's logit = v_c · mean over cells of a + b_c."""

    def __init__(self, v: torch.Tensor, bias: float = 0.0):
        super().__init__()
        self.linear = nn.Linear(v.shape[1], v.shape[0])
        with torch.no_grad():
            self.linear.weight.copy_(v)
            self.linear.bias.fill_(bias)

    def forward(self, a):
        return self.linear(a.mean(dim=(2, 3)))


class ProductTail(nn.Module):
    """One logit: mean of channel 0 × mean of channel 1 (a pure interaction of two concepts)."""

    def forward(self, a):
        m = a.mean(dim=(2, 3))
        return (m[:, 0] * m[:, 1])[:, None]


# three concepts on disjoint channels of a 6-channel layer
W = np.array([[1.0, 1.0, 0, 0, 0, 0], [0, 0, 2.0, 0, 0, 0], [0, 0, 0, 1.0, 1.0, 1.0]], dtype=np.float32)
V = torch.tensor([[0.5, 0.5, 1.0, -0.2, 0.0, 0.0]])  # class 0 likes concepts 0 and 1, dislikes concept 2


def planted_maps(n: int = 4, h: int = 3, w: int = 3, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    u = torch.rand(n, h, w, 3, generator=g) * (torch.rand(n, h, w, 3, generator=g) < 0.7)
    return reconstruct(u, torch.from_numpy(W)), u


def test_cell_coefficients_recover_planted_ones():
    maps, u = planted_maps()
    torch.testing.assert_close(cell_coefficients(maps, W), u, atol=1e-5, rtol=1e-5)


def test_ablation_of_a_linear_tail_is_each_concepts_contribution():
    maps, u = planted_maps()
    found = ablation_importance(LinearTail(V, bias=0.3), maps, u, W, cls=0)
    # the contribution of concept j to image i's logit: (v · w_j) × mean over cells of u_j
    expected = (u.mean(dim=(1, 2)).numpy() * (V.numpy() @ W.T))
    np.testing.assert_allclose(found, expected, atol=1e-5)
    assert (found[:, 2] <= 0).all() and (found[:, 1] > 0).any()


def test_sobol_of_a_linear_tail_is_the_squared_contribution_share():
    maps, u = planted_maps()
    found = sobol_importance(LinearTail(V), u, W, cls=0, n_design=512)
    c = u.mean(dim=(1, 2)).numpy() * (V.numpy() @ W.T)  # f(m) = Σ_j m_j c_j with m_j uniform, independent
    np.testing.assert_allclose(found, c ** 2 / (c ** 2).sum(axis=1, keepdims=True), atol=0.01)


def test_sobol_counts_interactions():
    w2 = np.array([[1.0, 0.0], [0.0, 1.0]], dtype=np.float32)
    u = torch.ones(2, 2, 2, 2)
    found = sobol_importance(ProductTail(), u, w2, cls=0, n_design=2048)
    np.testing.assert_allclose(found, np.full((2, 2), 4 / 7), atol=0.01)


def test_sobol_is_deterministic_for_a_seed():
    maps, u = planted_maps()
    a = sobol_importance(LinearTail(V), u, W, cls=0, seed=3)
    np.testing.assert_array_equal(a, sobol_importance(LinearTail(V), u, W, cls=0, seed=3))
    assert not np.array_equal(a, sobol_importance(LinearTail(V), u, W, cls=0, seed=4))


def test_taking_a_concept_out_never_makes_activations_negative():
    maps, u = planted_maps()
    bigger = u * 1.5  # coefficients that overshoot the real activations
    out = without(maps, bigger, W, [0, 2])
    assert float(out.min()) == 0.0
    torch.testing.assert_close(out[:, 2], maps[:, 2])  # channel 2 belongs to concept 1 only: untouched


def test_unit_importance_of_a_linear_tail_is_the_exact_drop_of_zeroing_the_unit():
    maps, _ = planted_maps()
    tail = LinearTail(V, bias=0.1)
    found = unit_importance(tail, maps, 0)
    with torch.no_grad():
        base = tail(maps)[:, 0]
        for c in range(maps.shape[1]):
            zeroed = maps.clone()
            zeroed[:, c] = 0
            assert found[c] == pytest.approx(float((base - tail(zeroed)[:, 0]).mean()), abs=1e-6)


def test_curves_start_at_the_real_probability_and_end_where_they_must():
    maps, u = planted_maps()
    v2 = torch.cat([V, -V])  # two classes, so the probability moves
    tail = LinearTail(v2).requires_grad_(False)
    result = curves(tail, maps, u, W, 0, [1, 0, 2], draws=4)
    p_real = float(torch.softmax(tail(maps), 1)[:, 0].mean())
    p_empty = float(torch.softmax(tail(torch.zeros_like(maps)), 1)[:, 0].mean())
    for kind in ("concepts", "random", "units"):
        assert result.deletion[kind][0] == pytest.approx(p_real, abs=1e-6)
        assert result.insertion[kind][0] == pytest.approx(p_empty, abs=1e-6)
    assert result.deletion["concepts"][-1] == pytest.approx(p_empty, abs=1e-5)  # an exact factorisation: all out
    assert result.insertion["concepts"][-1] == pytest.approx(p_real, abs=1e-5)
    assert result.logit_share == pytest.approx(1.0, abs=1e-5)
    assert result.deletion["concepts"][1] < result.deletion["concepts"][0]  # concept 1 speaks for the class
    importance = unit_importance(tail, maps, 0)
    assert result.unit_order == sorted(range(6), key=lambda c: -importance[c])[:3]  # most important units first


def test_a_concepts_dual_vector_reads_its_least_squares_coefficient():
    from imagemachines.concepts.renders import dual_vectors

    rng = np.random.default_rng(0)
    w = rng.random((4, 12))
    a = rng.random((5, 4)) @ w  # exact combinations of the concepts
    dual = dual_vectors(w)
    coefficients = np.linalg.lstsq(w.T, a.T, rcond=None)[0].T
    scale = 1 / np.linalg.norm(np.linalg.pinv(w).T, axis=1)
    np.testing.assert_allclose(a @ dual.T, coefficients * scale, rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(np.linalg.norm(dual, axis=1), 1.0, rtol=1e-5)
