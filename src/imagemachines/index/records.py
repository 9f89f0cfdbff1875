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
# the collection's paintings and at least BORDER_RATIO times as often as the border's share of the map's cells, or
# when its strongest border peak in the collection is at least EDGE_STRENGTH times its strongest value inside the
# maps (its top paintings would be border peaks, ranked over the whole map).
BORDER_SHARE = 0.5
BORDER_RATIO = 1.5
EDGE_STRENGTH = 1.25


@dataclass(frozen=True)
class BorderStats:
    """How often a unit's maximum over a painting (over all its cells, whatever the ranking) lies on the border of
    the unit's map: *paintings* of *count* images; *chance* is the border's share of the map's cells. *edge_high*:
    the highest of those border maxima (None: no painting peaks on the border); *inner_high*: the unit's highest
    value inside the maps (None: unknown)."""

    paintings: int
    count: int
    chance: float
    edge_high: float | None = None
    inner_high: float | None = None

    @property
    def share(self) -> float:
        return self.paintings / self.count if self.count else 0.0

    @property
    def strength(self) -> float | None:
        """How much stronger the unit's strongest border peak is than its strongest value inside (None: no border
        peak or nothing inside to compare with; inf when only the border is positive)."""
        if self.edge_high is None or self.inner_high is None or self.edge_high <= 0:
            return None
        return self.edge_high / self.inner_high if self.inner_high > 0 else float("inf")

    @property
    def by_share(self) -> bool:
        return self.chance > 0 and self.share >= BORDER_SHARE and self.share >= BORDER_RATIO * self.chance

    @property
    def by_strength(self) -> bool:
        return self.chance > 0 and self.strength is not None and self.strength >= EDGE_STRENGTH

    @property
    def flagged(self) -> bool:
        """A border unit: its strongest spot is on the edge of the picture far more often than position alone
        explains, or its strongest responses of all are border peaks (see BORDER_SHARE, BORDER_RATIO,
        EDGE_STRENGTH)."""
        return self.by_share or self.by_strength

    def as_dict(self) -> dict:
        return {**asdict(self), "share": self.share, "strength": self.strength, "flagged": self.flagged,
                "text": self.text()}

    def text(self) -> str:
        """``"peaks on the border in 64 % of 458 paintings (border: 49 % of the map)"``, and when its border
        peaks are its strongest responses: ``"; its strongest border peak (1.95) is 2.7× its strongest value
        inside (0.72)"``."""
        text = (f"peaks on the border in {100 * self.share:.0f} % of {self.count} paintings "
                f"(border: {100 * self.chance:.0f} % of the map)")
        if self.by_strength:
            times = "infinitely" if self.strength == float("inf") else f"{self.strength:.1f}×"
            text += (f"; its strongest border peak ({self.edge_high:.3g}) is {times} its strongest value inside "
                     f"({self.inner_high:.3g})")
        return text
