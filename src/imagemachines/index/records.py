"""What an index hands out: images, examples of a unit, and a unit's statistics over the collection."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field


def percentile_label(p: float) -> str:
    """A percentile (0 … 100) as every page, the CLI and the web interface write it — one rule (the web
    interface's ``collection.js`` has the same): one decimal, rounded half up; ``100`` only for a value at or above
    the collection's maximum and ``0`` only at or below its minimum, so a value that would round to them reads
    ``>99.9`` or ``<0.1``. Add "th percentile" (or "th pct") after it."""
    p = float(p)
    if p >= 100:
        return "100"
    if p <= 0:
        return "0"
    rounded = math.floor(p * 10 + 0.5) / 10
    if rounded >= 100:
        return ">99.9"
    if rounded <= 0:
        return "<0.1"
    return f"{rounded:.1f}"


@dataclass(frozen=True)
class ImageInfo:
    """One indexed image: *id* is its row (0..n-1, images sorted by path), *path* is relative to the image root."""

    id: int
    path: str
    sha256: str
    width: int
    height: int
    meta: dict[str, str] = field(default_factory=dict)

    def as_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class Example:
    """A top (or bottom) image of a unit: its spatial maximum, where it is, and where it lies in the collection.

    *cell* is (row, col) in the layer's feature map; *box* = (x0, y0, x1, y1) is the part of the original image
    that cell covers (images are squashed to the network's input square, as in training and evaluation).
    """

    rank: int
    image_id: int
    value: float
    cell: tuple[int, int]
    box: tuple[int, int, int, int]
    percentile: float

    def as_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class UnitStats:
    """A unit's distribution over the collection: of each image's spatial maximum (*count* images)."""

    mean: float
    std: float
    min: float
    max: float
    quantiles: dict[float, float]
    count: int = 0

    def as_dict(self) -> dict:
        return asdict(self)
