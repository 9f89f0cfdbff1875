"""Groups on the map and what each one is: clusters of the 2-D layout, labelled by their most distinctive units
and by the metadata value most of their paintings share ("landscape · 78 %").

``auto`` clusters with scikit-learn's HDBSCAN on the map positions (as PixPlot does), selecting the leaves of
its cluster tree: dense regions become clusters, scattered paintings stay unclustered (-1). (Its default
"excess of mass" selection split the 458 shared paintings into just two clusters, 384 and 74 paintings; the
leaves gave 15, most of them 78-100 % one genre.) A number *K* clusters with k-means into exactly K groups.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np

from imagemachines.errors import UserError

LABEL_FACETS = ("label", "type", "school", "genre", "class", "form")  # preferred for a cluster's name
UNITS_PER_CLUSTER = 5
MAX_K = 200


def parse_clusters(text: str) -> int | None:
    """``auto`` → None (HDBSCAN); ``K`` → K (k-means, 2 … 200)."""
    text = str(text).strip().lower()
    if text == "auto":
        return None
    if not re.fullmatch(r"\d{1,4}", text) or not 2 <= int(text) <= MAX_K:
        raise UserError(f"--clusters {text[:20]!r}: give 'auto' (HDBSCAN) or a number of clusters from 2 to {MAX_K}.")
    return int(text)


def min_cluster_size(n: int) -> int:
    """HDBSCAN's smallest cluster for *n* paintings: 1/40 of the collection, at least 5."""
    return max(5, n // 40)


def cluster_xy(xy: np.ndarray, k: int | None = None, seed: int = 0) -> np.ndarray:
    """[n] cluster numbers of the map positions (0 …; -1: unclustered), numbered by size, largest first."""
    n = xy.shape[0]
    if n < 3:
        return np.full(n, -1, dtype=np.int32)
    if k is not None:
        from sklearn.cluster import KMeans

        labels = KMeans(n_clusters=min(k, n), random_state=seed, n_init=4).fit_predict(xy)
    else:
        from sklearn.cluster import HDBSCAN

        labels = HDBSCAN(min_cluster_size=min(min_cluster_size(n), n), min_samples=5 if n > 10 else 1,
                         cluster_selection_method="leaf", copy=True).fit_predict(xy)
    return renumber(labels)


def renumber(labels: np.ndarray) -> np.ndarray:
    """Cluster numbers by size (largest 0), ties by first appearance; -1 stays -1."""
    labels = np.asarray(labels)
    found = [c for c in dict.fromkeys(labels.tolist()) if c >= 0]
    sizes = {c: int((labels == c).sum()) for c in found}
    order = sorted(found, key=lambda c: -sizes[c])
    lookup = {c: i for i, c in enumerate(order)}
    return np.array([lookup.get(c, -1) for c in labels.tolist()], dtype=np.int32)


def assign(new_xy: np.ndarray, fitted_xy: np.ndarray, fitted_labels: np.ndarray, k: int = 10) -> np.ndarray:
    """Clusters of placed paintings: the most common cluster among their *k* nearest laid-out paintings on the
    map (ties: the nearer one)."""
    from imagemachines.collection_map.layout import knn

    if new_xy.shape[0] == 0:
        return np.zeros(0, dtype=np.int32)
    idx, _ = knn(new_xy, fitted_xy, k)
    out = np.empty(new_xy.shape[0], dtype=np.int32)
    for i, row in enumerate(fitted_labels[idx]):
        values, counts = np.unique(row, return_counts=True)
        best = values[counts == counts.max()]
        out[i] = next(v for v in row if v in best)
    return out


@dataclass(frozen=True)
class ClusterLabel:
    """What a cluster is: its size, centre, the units most raised in it, and its metadata majority."""

    number: int
    size: int
    x: float
    y: float
    units: list[dict]               # [{"channel": c, "d": d}], most raised first
    facet: str | None = None        # the metadata column of the majority
    value: str | None = None
    share: float | None = None      # of the cluster's paintings with a value in that column

    @property
    def text(self) -> str:
        parts = [f"{self.value} · {round(100 * self.share)} %"] if self.value is not None else []
        parts += [f"#{u['channel']}" for u in self.units[:3]]
        return " · ".join(parts) or f"cluster {self.number}"

    def as_dict(self) -> dict:
        return {**asdict(self), "text": self.text}


def label_facet(facets: Sequence) -> object | None:
    """The facet a cluster is named by: a label/type/school column when there is one, else the first that is
    about the painting (not its photograph)."""
    about = [f for f in facets if not f.provenance]
    for want in LABEL_FACETS:
        for f in about:
            if f.name.lower() == want:
                return f
    return about[0] if about else None


def label_clusters(labels: np.ndarray, xy: np.ndarray, prepared, facets: Sequence) -> list[ClusterLabel]:
    """A :class:`ClusterLabel` per cluster (not for the unclustered): units by Cohen's d against the rest
    (no permutations: a name, not a test), the majority of :func:`label_facet`."""
    from imagemachines.collection_map.contrast import contrast
    from imagemachines.index.enrichment import majority

    facet = label_facet(facets)
    out = []
    n = labels.shape[0]
    for number in sorted(c for c in set(labels.tolist()) if c >= 0):
        members = labels == number
        size = int(members.sum())
        units: list[dict] = []
        if 2 <= size <= n - 2:
            result = contrast(prepared, members, permutations=0)
            units = [{"channel": u.channel, "d": round(u.d, 3)} for u in result.top(UNITS_PER_CLUSTER, "higher")]
        top = majority(facet, members) if facet is not None else None
        cx, cy = (float(v) for v in np.median(xy[members], axis=0))
        out.append(ClusterLabel(number, size, cx, cy, units, facet.name if top else None,
                                top[0] if top else None, round(top[1], 4) if top else None))
    return out
