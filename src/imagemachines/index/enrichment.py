"""What the metadata says about a group of paintings: which values are over-represented in it.

A group is any subset of an index's images: a unit's top-k paintings, a selection on the map, a cluster. For
every *facet* of the collection (each metadata column, dates in 50-year bins, the image's size in pixels, its
photo source when the metadata has one) and every value of it, the group's share is compared with the
collection's:

- ``ratio``: (share of the group with the value) / (share of the collection with it); 4.6 reads "×4.6";
- ``p``: the one-sided exact (hypergeometric) probability of at least that many such paintings in a random group
  of the same size drawn from the collection without replacement;
- ``p_adjusted``: Holm's step-down correction over every (facet, value) pair tested, so a long list of artists
  does not produce lucky hits.

Paintings without a value for a facet are left out of that facet's counts (on both sides).

>>> facets = collection_facets(index.images())
>>> [f"{e.facet}: {e.value} ×{e.ratio:.1f}" for e in enrich(facets, top_ids) if e.p_adjusted < 0.05]
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass

import numpy as np

from imagemachines.errors import UserError

SIZE_FACET = "image size"
DATE_BIN_YEARS = 50
SIZE_BINS = ((128, "≤ 128 px"), (256, "129–256 px"), (512, "257–512 px"), (1024, "513–1024 px"))
PROVENANCE_FACETS = (SIZE_FACET, "source", "width", "height")  # how a painting was photographed, not what it shows
_DATE_COLUMN = re.compile(r"(^|[^a-z])(year|date|dated|timeframe)([^a-z]|$)", re.IGNORECASE)
_YEAR = re.compile(r"(?<!\d)(\d{3,4})(?!\d)")


@dataclass(frozen=True)
class Facet:
    """One way to group paintings: *values* (sorted), and per image the index of its value (-1: none)."""

    name: str
    values: tuple[str, ...]
    codes: np.ndarray

    @property
    def provenance(self) -> bool:
        """True for facets about the photograph (its size, its source) rather than the painting."""
        return self.name.lower() in PROVENANCE_FACETS


@dataclass(frozen=True)
class Enrichment:
    """One metadata value's over-representation in a group (see the module docstring)."""

    facet: str
    value: str
    in_group: int
    group: int
    in_collection: int
    collection: int
    ratio: float
    p: float
    p_adjusted: float
    provenance: bool = False

    def as_dict(self) -> dict:
        return asdict(self)

    def label(self) -> str:
        """Short text for pages: ``portrait ×4.6, p < 0.001``."""
        return f"{self.value} ×{self.ratio:.1f}, {format_p(self.p_adjusted)}"


def format_p(p: float) -> str:
    """``p < 0.001`` below a thousandth, else ``p = 0.012`` (two significant digits)."""
    return "p < 0.001" if p < 0.001 else f"p = {p:.2g}"


def size_bin(width: int, height: int) -> str | None:
    """The bin of an image's longer side (None when the size is unknown)."""
    side = max(int(width or 0), int(height or 0))
    if side <= 0:
        return None
    return next((label for limit, label in SIZE_BINS if side <= limit), f"> {SIZE_BINS[-1][0]} px")


def date_bin(text: str, years: int = DATE_BIN_YEARS) -> str | None:
    """The *years*-wide bin of the first year in *text* (``"c. 1655-60"`` -> ``"1650–1699"``), or None."""
    m = _YEAR.search(text or "")
    if not m:
        return None
    start = int(m.group(1)) // years * years
    return f"{start}–{start + years - 1}"


def is_date_column(name: str) -> bool:
    return bool(_DATE_COLUMN.search(name))


def make_facet(name: str, per_image: Sequence[str | None]) -> Facet:
    """A facet from one value (or None / "") per image."""
    clean = [v if v else None for v in per_image]
    values = tuple(sorted({v for v in clean if v is not None}))
    lookup = {v: i for i, v in enumerate(values)}
    codes = np.fromiter((-1 if v is None else lookup[v] for v in clean), dtype=np.int32, count=len(clean))
    return Facet(name, values, codes)


def _useful(facet: Facet) -> bool:
    """A facet can group paintings: it has at least two values and some value is shared by two paintings."""
    present = facet.codes[facet.codes >= 0]
    if len(facet.values) < 2 or present.size == 0:
        return False
    return int(np.bincount(present).max()) >= 2


def collection_facets(images: Iterable, columns: Sequence[str] | None = None) -> list[Facet]:
    """The facets of a collection, from :class:`imagemachines.index.ImageInfo`-like records (``meta``, ``width``,
    ``height``), in row order. Date columns are binned by 50 years; identifiers (a value per painting) are left
    out; the image size is always a facet. *columns* limits the metadata columns used."""
    images = list(images)
    names: list[str] = []
    for info in images:
        names.extend(k for k in info.meta if k not in names)
    if columns is not None:
        missing = [c for c in columns if c not in names]
        if missing:
            raise UserError(f"No metadata column {missing[0]!r} in this collection; its columns are: "
                            f"{', '.join(names) or 'none'}.")
        names = list(columns)
    facets = []
    for name in names:
        raw = [str(info.meta.get(name, "") or "").strip() for info in images]
        if is_date_column(name):
            facet = make_facet(f"{name} ({DATE_BIN_YEARS} years)", [date_bin(v) for v in raw])
        else:
            facet = make_facet(name, raw)
        if _useful(facet):
            facets.append(facet)
    facets.append(make_facet(SIZE_FACET, [size_bin(i.width, i.height) for i in images]))
    return facets


def holm(p: np.ndarray) -> np.ndarray:
    """Holm's step-down adjusted p-values (same order as *p*), capped at 1."""
    p = np.asarray(p, dtype=np.float64)
    m = p.size
    if m == 0:
        return p
    order = np.argsort(p, kind="stable")
    stepped = np.maximum.accumulate(p[order] * (m - np.arange(m)))
    out = np.empty(m)
    out[order] = np.minimum(stepped, 1.0)
    return out


def _members(group: Sequence[int] | np.ndarray, n: int) -> np.ndarray:
    group = np.asarray(group)
    if group.dtype == bool:
        if group.shape != (n,):
            raise UserError(f"A group mask must have one entry per image ({n}); got {group.shape[0]}.")
        return group
    ids = group.astype(np.int64, copy=False).ravel()
    if ids.size and (ids.min() < 0 or ids.max() >= n):
        raise UserError(f"Image ids must lie in 0…{n - 1}.")
    mask = np.zeros(n, dtype=bool)
    mask[ids] = True
    return mask


def enrich(facets: Sequence[Facet], group: Sequence[int] | np.ndarray, *,
           against: Sequence[int] | np.ndarray | None = None) -> list[Enrichment]:
    """Every value's over-representation in *group* (image ids, or a boolean mask), most significant first.

    *against* compares with other images instead of the whole collection (two selections on a map: the
    collection is then both selections together). The correction counts every value present in that
    collection, of every facet (values absent from the group have p = 1).
    """
    from scipy.stats import hypergeom

    if not facets:
        return []
    n = facets[0].codes.shape[0]
    in_group = _members(group, n)
    universe = np.ones(n, dtype=bool) if against is None else _members(against, n) | in_group
    rows: list[tuple[Facet, int, int, int, int, int]] = []
    for facet in facets:
        known = universe & (facet.codes >= 0)
        size = len(facet.values)
        coll = np.bincount(facet.codes[known], minlength=size)
        grp = np.bincount(facet.codes[known & in_group], minlength=size)
        n_coll, n_grp = int(known.sum()), int((known & in_group).sum())
        rows.extend((facet, v, int(grp[v]), n_grp, int(coll[v]), n_coll) for v in range(size) if coll[v] > 0)
    if not rows:
        return []
    k = np.array([r[2] for r in rows])
    n_grp = np.array([r[3] for r in rows])
    k_coll = np.array([r[4] for r in rows])
    n_coll = np.array([r[5] for r in rows])
    p = np.where(k > 0, hypergeom.sf(k - 1, n_coll, k_coll, n_grp), 1.0)
    p_adj = holm(p)
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where(n_grp > 0, (k / np.maximum(n_grp, 1)) / (k_coll / n_coll), 0.0)
    out = [Enrichment(f.name, f.values[v], kg, ng, kc, nc, float(ratio[i]), float(p[i]), float(p_adj[i]),
                      f.provenance)
           for i, (f, v, kg, ng, kc, nc) in enumerate(rows)]
    out.sort(key=lambda e: (e.p, -e.ratio, e.facet, e.value))
    return out


def significant(enrichments: Iterable[Enrichment], alpha: float = 0.05, min_count: int = 2) -> list[Enrichment]:
    """Over-represented values: adjusted p below *alpha*, at least *min_count* paintings in the group, ratio > 1."""
    return [e for e in enrichments if e.p_adjusted < alpha and e.in_group >= min_count and e.ratio > 1]


def majority(facet: Facet, group: Sequence[int] | np.ndarray) -> tuple[str, float] | None:
    """The most common value of *facet* in *group* and its share of the group's known values (None: no values)."""
    mask = _members(group, facet.codes.shape[0])
    codes = facet.codes[mask & (facet.codes >= 0)]
    if codes.size == 0:
        return None
    counts = np.bincount(codes, minlength=len(facet.values))
    best = int(np.argmax(counts))
    return facet.values[best], float(counts[best] / codes.size)


def provenance_warnings(enrichments: Iterable[Enrichment], alpha: float = 0.05) -> list[Enrichment]:
    """Significant over-representations of a photo source or image size: the group may be about how the
    paintings were photographed rather than what they show."""
    return [e for e in significant(enrichments, alpha) if e.provenance]


def facet_by_name(facets: Sequence[Facet]) -> Mapping[str, Facet]:
    return {f.name: f for f in facets}
