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
    on_border: bool = False  # the cell lies on the map's outer ring (never with the ``interior`` ranking)

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


# A unit is flagged as a border unit when its maximum lies on the border of its map for at least BORDER_SHARE of
# the collection's paintings and at least BORDER_RATIO times as often as the border's share of the map's cells.
BORDER_SHARE = 0.5
BORDER_RATIO = 1.5


@dataclass(frozen=True)
class BorderStats:
    """How often a unit's maximum over a painting (over all its cells, whatever the ranking) lies on the border of
    the unit's map: *paintings* of *count* images; *chance* is the border's share of the map's cells."""

    paintings: int
    count: int
    chance: float

    @property
    def share(self) -> float:
        return self.paintings / self.count if self.count else 0.0

    @property
    def flagged(self) -> bool:
        """A border unit: its strongest spot is on the edge of the picture far more often than position alone
        explains (see BORDER_SHARE, BORDER_RATIO)."""
        return self.chance > 0 and self.share >= BORDER_SHARE and self.share >= BORDER_RATIO * self.chance

    def as_dict(self) -> dict:
        return {**asdict(self), "share": self.share, "flagged": self.flagged, "text": self.text()}

    def text(self) -> str:
        """``"peaks on the border in 64 % of 458 paintings (border: 49 % of the map)"``."""
        return (f"peaks on the border in {100 * self.share:.0f} % of {self.count} paintings "
                f"(border: {100 * self.chance:.0f} % of the map)")
