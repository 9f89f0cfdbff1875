"""Concepts as a non-negative factorisation of crop activations: ``A ≈ U W``, U ≥ 0, W ≥ 0.

A is crops × channels (each crop's activations, spatially averaged), W holds one concept vector per row
(concepts × channels) and U each crop's coefficients on them. The factorisation is scikit-learn's NMF
(coordinate descent, Frobenius loss, as CRAFT uses it), started from a seeded random point so that two seeds give
two independent solutions (:mod:`.stability` compares them). Coefficients of anything else on a fixed W (a
feature-map cell, a render) are its non-negative least-squares fit, :func:`project`; crops get theirs the same
way, so every coefficient on a page is on one scale.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from imagemachines.errors import UserError

MAX_ITER = 500
TOL = 1e-5


@dataclass
class Factorization:
    """W (concepts × channels) and how well U W reconstructs the activations it was fitted on."""

    W: np.ndarray          # [k, C] float32, rows ≥ 0
    r2: float              # 1 - ‖A - UW‖² / ‖A - mean(A)‖² on the fitted activations
    iterations: int
    seed: int

    @property
    def k(self) -> int:
        return int(self.W.shape[0])


def factorize(activations: np.ndarray | torch.Tensor, k: int, seed: int = 0) -> Factorization:
    """NMF of *activations* (rows ≥ 0) into *k* concepts; deterministic for a given *seed*."""
    from sklearn.decomposition import NMF

    A = _matrix(activations)
    if k < 1:
        raise UserError("--concepts must be at least 1.")
    if k > min(A.shape):
        raise UserError(f"{k} concepts cannot be found in {A.shape[0]} crops of {A.shape[1]} channels; ask for at most "
                        f"{min(A.shape)} (--concepts), or use more images.")
    nmf = NMF(n_components=k, init="random", random_state=int(seed), max_iter=MAX_ITER, tol=TOL)
    import warnings

    from sklearn.exceptions import ConvergenceWarning

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)  # the R² on the page says how good the fit is
        nmf.fit(A)
    W = nmf.components_.astype(np.float32)
    return Factorization(W=W, r2=r_squared(A, project(A, W), W), iterations=int(nmf.n_iter_), seed=int(seed))


def _matrix(activations) -> np.ndarray:
    A = activations.detach().cpu().numpy() if isinstance(activations, torch.Tensor) else np.asarray(activations)
    A = np.ascontiguousarray(A, dtype=np.float32)
    if A.ndim != 2 or not A.size:
        raise UserError(f"The factorisation needs a non-empty matrix of crops × channels; got shape {A.shape}.")
    if not np.isfinite(A).all():
        raise UserError("The activations hold NaN or infinite values; the network or the images are broken.")
    if float(A.min()) < 0:
        raise UserError(f"The activations go down to {float(A.min()):.3g}; a non-negative factorisation needs a layer "
                        "whose output is never negative.")
    return A


def project(activations: np.ndarray | torch.Tensor, W: np.ndarray) -> np.ndarray:
    """Non-negative least squares coefficients of each row of *activations* on the rows of *W*:
    ``argmin_{u ≥ 0} ‖a - u W‖``, [n, k] float32.

    Solved through the k × k Gram matrix (``‖a - uW‖² = ‖Rᵀu - R⁻¹Wa‖² + const`` with ``W Wᵀ = R Rᵀ``), so each
    row costs a k-dimensional problem whatever the number of channels.
    """
    from scipy.linalg import cholesky, solve_triangular
    from scipy.optimize import nnls

    A = activations.detach().cpu().numpy() if isinstance(activations, torch.Tensor) else np.asarray(activations)
    A = np.asarray(A, dtype=np.float64).reshape(-1, W.shape[1])
    Wd = np.asarray(W, dtype=np.float64)
    gram = Wd @ Wd.T
    gram += np.eye(len(gram)) * 1e-10 * max(float(np.trace(gram)), 1e-30)  # W's rows are independent; guard anyway
    R = cholesky(gram, lower=True)
    rhs = solve_triangular(R, Wd @ A.T, lower=True)  # [k, n]
    Rt = np.ascontiguousarray(R.T)
    out = np.empty((A.shape[0], len(Wd)), dtype=np.float32)
    for i in range(A.shape[0]):
        out[i] = nnls(Rt, rhs[:, i])[0]
    return out


def r_squared(A: np.ndarray, U: np.ndarray, W: np.ndarray) -> float:
    """The share of the activations' variance (around each channel's mean) that U W reproduces."""
    A = np.asarray(A, dtype=np.float64)
    residual = float(((A - np.asarray(U, dtype=np.float64) @ np.asarray(W, dtype=np.float64)) ** 2).sum())
    total = float(((A - A.mean(axis=0, keepdims=True)) ** 2).sum())
    return 1.0 - residual / total if total > 0 else 0.0
