"""The factorisation: scikit-learn's NMF on a planted factorisation, the NNLS projection, stability, shared concepts."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.optimize import nnls

from imagemachines.concepts.across import shared_concepts, similarity_matrix
from imagemachines.concepts.factorization import factorize, project, r_squared
from imagemachines.concepts.stability import cosine, match
from imagemachines.errors import UserError


def planted(n: int = 400, c: int = 64, k: int = 5, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A = U₀ W₀ with sparse non-negative U₀ and W₀ (every concept has channels of its own)."""
    rng = np.random.default_rng(seed)
    W0 = rng.random((k, c)) * (rng.random((k, c)) < 0.3)
    W0[np.arange(k), np.arange(k)] = 2.0  # an anchor channel each: the factorisation is unique up to scale
    U0 = rng.random((n, k)) * (rng.random((n, k)) < 0.5)
    return U0 @ W0, U0, W0


def test_nmf_recovers_a_planted_factorisation():
    A, _U0, W0 = planted()
    fit = factorize(A, 5, seed=0)
    m = match(fit.W, W0)
    assert min(m.similarity) > 0.999
    assert sorted(m.partner) == list(range(5))
    assert fit.r2 > 0.9999


def test_factorize_is_scikit_learns_nmf_with_a_seeded_random_start():
    from sklearn.decomposition import NMF

    A, _, _ = planted(seed=3)
    fit = factorize(A, 4, seed=7)
    ref = NMF(n_components=4, init="random", random_state=7, max_iter=500, tol=1e-5).fit(A.astype(np.float32))
    np.testing.assert_allclose(fit.W, ref.components_, rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(fit.W, factorize(A, 4, seed=7).W)


def test_the_projection_is_the_non_negative_least_squares_solution():
    rng = np.random.default_rng(1)
    W = rng.random((6, 40))
    A = rng.random((30, 40)) * 2 - 0.3  # some rows are best fitted with zero coefficients
    U = project(A, W)
    for a, u in zip(A, U, strict=True):
        expected, _ = nnls(W.T, a)
        np.testing.assert_allclose(u, expected, atol=1e-5)
    assert (U >= 0).all() and (U == 0).any()


def test_r_squared_is_one_for_an_exact_reconstruction_and_zero_for_the_mean():
    A, U0, W0 = planted(n=50)
    assert r_squared(A, U0, W0) == pytest.approx(1.0)
    mean_only = np.tile(A.mean(axis=0), (len(A), 1))
    assert r_squared(A, np.ones((len(A), 1)), mean_only[:1]) == pytest.approx(0.0, abs=1e-9)


def test_bad_inputs_get_clear_errors():
    A, _, _ = planted(n=20, c=8, k=2)
    with pytest.raises(UserError, match="at most 8"):
        factorize(A, 9)
    with pytest.raises(UserError, match="never negative"):
        factorize(A - 1, 2)
    with pytest.raises(UserError, match="at least 1"):
        factorize(A, 0)
    with pytest.raises(UserError, match="NaN"):
        factorize(np.full((4, 4), np.nan), 1)


def test_matching_undoes_a_permutation_and_scaling():
    _, _, W0 = planted()
    perm = [3, 0, 4, 1, 2]
    m = match(W0, 2.5 * W0[perm])
    assert [perm[p] for p in m.partner] == list(range(5))
    assert m.mean == pytest.approx(1.0)
    assert cosine(np.zeros((1, 3)), np.ones((1, 3)))[0, 0] == 0.0


def test_shared_concepts_are_mutual_best_matches_of_different_classes_above_the_threshold():
    a = np.array([[1.0, 0, 0], [0, 1.0, 0], [0, 1.0, 0.04]])
    b = np.array([[0, 0, 1.0], [0, 2.0, 0.1]])
    pairs = shared_concepts({"landscape": a, "religious": b}, threshold=0.9)
    # a's rows 1 and 2 are both close to b's row 1, but only row 2 is b's row 1's best match
    assert [(p.a, p.first, p.b, p.second) for p in pairs] == [("landscape", 2, "religious", 1)]
    assert pairs[0].similarity == pytest.approx(float(cosine(a[2:], b[1:])[0, 0]))
    assert shared_concepts({"landscape": a, "religious": b}, threshold=0.99999) == []
    assert similarity_matrix({"a": a, "b": b})["a"]["b"][0] == [0.0, 0.0]
