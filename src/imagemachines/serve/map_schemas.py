"""Request and response bodies of the map routes (layout, clusters, sprites, the contrast of a selection)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

MAX_OUTLINE = 512
MAX_IDS = 100_000
Point = tuple[float, float]


class Selection(BaseModel):
    """A group of paintings on a map: an outline in map coordinates (the unit square; a rectangle is an outline
    of 4 points), a cluster number, or image ids. Exactly one of the three."""

    model_config = ConfigDict(extra="forbid")
    polygon: list[Point] | None = Field(None, min_length=3, max_length=MAX_OUTLINE,
                                        description="Outline [[x, y], …] in map coordinates (even-odd rule).")
    cluster: int | None = Field(None, ge=0, le=10_000, description="A cluster of the map.")
    ids: list[int] | None = Field(None, min_length=1, max_length=MAX_IDS, description="Image ids of the index.")

    @model_validator(mode="after")
    def one_kind(self) -> Selection:
        given = [k for k in ("polygon", "cluster", "ids") if getattr(self, k) is not None]
        if len(given) != 1:
            raise ValueError("give exactly one of polygon, cluster or ids")
        if self.polygon is not None and not all(-1e3 < v < 1e3 for p in self.polygon for v in p):
            raise ValueError("outline coordinates must be finite map coordinates")
        return self


class ContrastIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    selection: Selection
    against: Selection | None = Field(None, description="A second selection; default: the rest of the map.")
    k: int = Field(12, ge=1, le=100, description="Units returned.")
    examples: int = Field(6, ge=0, le=24, description="Top paintings inside the selection per unit.")
    permutations: int = Field(200, ge=0, le=2000, description="Random relabellings for the p-values (0: none).")
    seed: int = Field(0, ge=0, le=2**31 - 1)
    direction: Literal["both", "higher", "lower"] = Field(
        "both", description="Units by |d|, or only those more (higher) or less (lower) active in the selection.")


class ContrastExample(BaseModel):
    image_id: int
    value: float = Field(description="The unit's pooled (mean) activation over the painting.")
    title: str
    thumb: str


class ContrastUnit(BaseModel):
    channel: int
    d: float = Field(description="Cohen's d: (mean in the selection - mean in the rest) / pooled SD.")
    p: float | None = Field(description="Permutation p-value, adjusted over all units of the layer (max-T).")
    mean_in: float
    mean_out: float
    examples: list[ContrastExample]
    examples_link: str = Field(description="The unit's top paintings in the whole index.")


class MetadataValue(BaseModel):
    facet: str
    value: str
    in_group: int
    group: int
    share: float
    ratio: float | None = None
    p_adjusted: float | None = None
    provenance: bool = False


class ContrastOut(BaseModel):
    index: str
    map: str
    layer: str
    n_in: int
    n_out: int
    against: Literal["rest", "selection"]
    permutations: int
    seed: int
    seconds: float
    units: list[ContrastUnit]
    over_represented: list[MetadataValue] = Field(description="Metadata values over-represented in the selection "
                                                              "(hypergeometric test, Holm-adjusted p < 0.05).")
    majority: list[MetadataValue] = Field(description="Each metadata column's most common value in the selection.")
    provenance: list[MetadataValue] = Field(description="Over-represented photo sources or image sizes: the "
                                                        "selection may be about the photographs.")


class MapSummary(BaseModel):
    name: str
    layer: str
    description: str
    n: int = Field(description="Paintings on the map.")
    missing: int = Field(description="Indexed paintings not on the map yet (run `imagemachines map` again).")
    stale: bool = Field(description="The index changed since the map was made.")
    clusters: int
    neighbourhood: float | None = Field(description="Share of each painting's 10 nearest map neighbours that are "
                                                    "among its 10 nearest in the pooled space.")
    settings: dict
    updated: str | None = None
