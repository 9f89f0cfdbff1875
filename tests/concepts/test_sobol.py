"""Total Sobol indices against functions whose indices are known in closed form."""

from __future__ import annotations

import numpy as np
import pytest

from imagemachines.concepts.sobol import design, total_indices


def _indices(f, k: int, n: int, seed: int = 0) -> np.ndarray:
    return total_indices(f(design(k, n, seed)), k, n)


def test_a_linear_function_has_indices_proportional_to_its_squared_weights():
    a = np.array([1.0, 2.0, 3.0])
    found = _indices(lambda x: x @ a, 3, 1024)
    np.testing.assert_allclose(found, a ** 2 / (a ** 2).sum(), atol=2e-3)


def test_the_ishigami_function_reproduces_its_published_total_indices():
    """Ishigami (a=7, b=0.1) on [-π, π]³: total indices 0.5576, 0.4424, 0.2437 (Saltelli et al. 2010)."""
    def ishigami(x):
        z = (2 * x.astype(np.float64) - 1) * np.pi
        return np.sin(z[:, 0]) + 7 * np.sin(z[:, 1]) ** 2 + 0.1 * z[:, 2] ** 4 * np.sin(z[:, 0])

    np.testing.assert_allclose(_indices(ishigami, 3, 4096), [0.5576, 0.4424, 0.2437], atol=0.01)


def test_a_pure_interaction_gives_both_inputs_four_sevenths():
    """f = x₁x₂: Var f = 7/144, E[Var(f | x₂)] = E[x₂²]/12 = 4/144, so both total indices are 4/7."""
    found = _indices(lambda x: x[:, 0] * x[:, 1], 2, 4096)
    np.testing.assert_allclose(found, [4 / 7, 4 / 7], atol=0.01)


def test_an_input_the_function_ignores_gets_exactly_zero():
    found = _indices(lambda x: np.exp(x[:, 0]) + x[:, 2] ** 2, 3, 32)
    assert found[1] == 0.0
    assert found[0] > 0 and found[2] > 0


def test_a_constant_function_gives_zeros_not_nan():
    assert _indices(lambda x: np.full(len(x), 3.0), 4, 32).tolist() == [0.0] * 4


def test_the_design_is_deterministic_per_seed_and_has_the_jansen_layout():
    k, n = 3, 32
    d = design(k, n, seed=5)
    assert d.shape == ((k + 2) * n, k)
    np.testing.assert_array_equal(d, design(k, n, seed=5))
    assert not np.array_equal(d, design(k, n, seed=6))
    a, b, c = d[:n], d[n:2 * n], d[2 * n:].reshape(k, n, k)
    for i in range(k):  # Cᵢ is A with column i from B
        expected = a.copy()
        expected[:, i] = b[:, i]
        np.testing.assert_array_equal(c[i], expected)
    assert ((d >= 0) & (d < 1)).all()


def test_outputs_of_the_wrong_length_are_refused():
    with pytest.raises(ValueError, match="expected 160"):
        total_indices(np.zeros(100), 3, 32)
