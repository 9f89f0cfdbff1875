"""Concepts shared between classes: pairs of concepts of different classes whose vectors point the same way.

Each class's concepts are found separately; a landscape's "sky" and a religious scene's "sky" are then two
vectors in the same channel space, and their cosine similarity says how alike they are for the network. Vectors
of a layer after a ReLU are non-negative, so their cosines run high even for unrelated concepts (over the 600
pairs of concepts of four classes of the shared paintings at MobileNetV2's ``features.18``: median 0.26, 90th
percentile 0.77, 95th 0.91). The table therefore lists a pair only when the two are each other's most similar
concept in the other class (mutual nearest neighbours) and their similarity reaches 0.95, most
similar first.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from imagemachines.concepts.stability import cosine

THRESHOLD = 0.95


@dataclass(frozen=True)
class SharedConcept:
    """Concept *first* of class *a* and concept *second* of class *b* (ranks, 0 = most important), alike."""

    a: str
    first: int
    b: str
    second: int
    similarity: float

    def as_dict(self) -> dict:
        return {"class_a": self.a, "concept_a": self.first, "class_b": self.b, "concept_b": self.second,
                "similarity": self.similarity}


def shared_concepts(vectors: Mapping[str, np.ndarray], threshold: float = THRESHOLD) -> list[SharedConcept]:
    """Pairs of concepts of two different classes that are each other's most similar concept in the other class,
    with cosine similarity ≥ *threshold*, most similar first. *vectors* maps a class name to its concept vectors
    (rows, in the order of the class's ranking)."""
    names = list(vectors)
    pairs = []
    for i, a in enumerate(names):
        for b in names[i + 1:]:
            sim = cosine(vectors[a], vectors[b])
            for r, c in zip(*np.nonzero(sim >= threshold), strict=True):
                if sim[r].argmax() == c and sim[:, c].argmax() == r:
                    pairs.append(SharedConcept(a, int(r), b, int(c), float(sim[r, c])))
    return sorted(pairs, key=lambda p: (-p.similarity, p.a, p.first, p.b, p.second))


def similarity_matrix(vectors: Mapping[str, np.ndarray]) -> dict[str, dict[str, list[list[float]]]]:
    """{class a: {class b: cosine matrix of their concepts}} for every ordered pair a < b (in the given order)."""
    names = list(vectors)
    return {a: {b: np.round(cosine(vectors[a], vectors[b]), 6).tolist() for b in names[i + 1:]}
            for i, a in enumerate(names)}
