"""What an index hands out: images, examples of a unit, and a unit's statistics over the collection."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field


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
