"""Would another seed find the same concepts? Two factorisations matched one to one by cosine similarity.

The concept vectors of two runs (rows of W) are compared by cosine similarity, the best one-to-one matching is
found with the Hungarian method (``scipy.optimize.linear_sum_assignment``), and the mean similarity of the matched
pairs is the stability: 1 = the same concepts, in some order; a concept whose best match is low is one the seed
made up. (Dictionary-learning toolboxes such as ``overcomplete`` report the same measure.)
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


def cosine(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``[len(a), len(b)]`` cosine similarities of the rows (a zero row is similar to nothing)."""
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    na = np.linalg.norm(a, axis=1, keepdims=True)
    nb = np.linalg.norm(b, axis=1, keepdims=True)
    return (a / np.where(na > 0, na, 1)) @ (b / np.where(nb > 0, nb, 1)).T


@dataclass
class Matching:
    """Concept i of the first run ↔ concept ``partner[i]`` of the second, with their similarity."""

    partner: list[int]
    similarity: list[float]

    @property
    def mean(self) -> float:
        return float(np.mean(self.similarity)) if self.similarity else float("nan")

    def as_dict(self) -> dict:
        return {"partner": self.partner, "similarity": self.similarity, "mean": self.mean}


def match(first: np.ndarray, second: np.ndarray) -> Matching:
    """The one-to-one matching of the rows of *first* and *second* with the largest total cosine similarity."""
    from scipy.optimize import linear_sum_assignment

    sim = cosine(first, second)
    rows, cols = linear_sum_assignment(-sim)
    partner = [-1] * len(first)
    similarity = [0.0] * len(first)
    for r, c in zip(rows, cols, strict=True):
        partner[int(r)] = int(c)
        similarity[int(r)] = float(sim[r, c])
    return Matching(partner, similarity)
