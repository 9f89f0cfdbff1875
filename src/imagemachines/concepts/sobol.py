"""Total Sobol indices with a quasi-Monte-Carlo design and Jansen's estimator, as CRAFT estimates them.

For f(x₁…x_k) with independent inputs, the total index of xᵢ is the share of f's variance that involves xᵢ, alone
or with others: ``S_Tᵢ = E[Var(f | x₋ᵢ)] / Var(f)``. The design has 2k-dimensional quasi-random points split into
two matrices A and B (n rows each) and, for every i, Cᵢ = A with column i taken from B. Jansen's estimator:
``S_Tᵢ ≈ mean((f(A) − f(Cᵢ))²) / (2 Var(f))`` with the variance over f(A) and f(B). The points come from a
scrambled Sobol sequence, so the design is deterministic for a given seed.

References: Saltelli et al., *Variance based sensitivity analysis of model output*, Comput. Phys. Commun. 2010;
Jansen 1999; Fel et al., *CRAFT*, CVPR 2023 (masks over concept coefficients, n = 32).
"""

from __future__ import annotations

import numpy as np

from imagemachines.errors import UserError


def design(k: int, n: int = 32, seed: int = 0) -> np.ndarray:
    """``[(k + 2) · n, k]`` points in [0, 1): the rows of A, then B, then C₁ … C_k (*n* rows each)."""
    from scipy.stats import qmc

    if k < 1 or n < 2:
        raise UserError("A Sobol design needs at least one input and two points.")
    ab = qmc.Sobol(d=2 * k, scramble=True, seed=int(seed)).random(n)
    a, b = ab[:, :k], ab[:, k:]
    c = np.repeat(a[None], k, axis=0)
    for i in range(k):
        c[i, :, i] = b[:, i]
    return np.concatenate([a, b, c.reshape(k * n, k)]).astype(np.float32)


def total_indices(outputs: np.ndarray, k: int, n: int) -> np.ndarray:
    """Jansen's total indices from f over :func:`design`'s rows: ``[k]`` (or ``[k, m]`` for *m* outputs per row).
    A function that does not vary gives zeros."""
    y = np.asarray(outputs, dtype=np.float64)
    if y.shape[0] != (k + 2) * n:
        raise ValueError(f"expected {(k + 2) * n} outputs for k={k}, n={n}; got {y.shape[0]}")
    f_a, f_b, f_c = y[:n], y[n:2 * n], y[2 * n:].reshape(k, n, *y.shape[1:])
    var = np.var(np.concatenate([f_a, f_b]), axis=0)
    spread = np.mean((f_a[None] - f_c) ** 2, axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(var > 0, spread / (2 * np.where(var > 0, var, 1)), 0.0)
