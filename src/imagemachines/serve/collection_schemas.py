"""Response bodies of the collection routes (indexes, a unit's examples, a painting's page, an upload)."""

from __future__ import annotations

from pydantic import BaseModel, Field


class IndexLayerOut(BaseModel):
    name: str
    channels: int
    border_units: list[int] | None = Field(None, description="Units flagged as border units (their maximum lies on "
                                                             "the map's border for most paintings); None: unknown "
                                                             "(an index made before border counts).")


class IndexOut(BaseModel):
    id: str = Field(description="Use this id in the other /api/indexes routes.")
    model: str = Field(description="The served model whose weights made the index.")
    weights_id: str
    folder: str = Field(description="Name of the image folder the index was built from.")
    n_images: int
    k: int = Field(description="Examples kept per unit and direction.")
    pooled: bool = Field(description="Whether similar-painting search is available.")
    ranking: str = Field(description="Where a unit's value on a painting is taken: interior | reflect | full.")
    note: str | None = Field(None, description="Set for an index made before rankings were recorded.")
    layers: list[IndexLayerOut]


class Meta(BaseModel):
    artist: str | None = None
    title: str | None = None
    date: str | None = None
    label: str | None = None
    link: str | None = Field(None, description="The painting's web page (e.g. on the WGA) when known.")


class PaintingLinks(BaseModel):
    page: str = Field(description="The painting's page in this API.")
    thumb: str = Field(description="JPEG thumbnail; ?size=96..1024.")
    overlay: str | None = Field(None, description="JPEG with the unit's activation map over the painting.")


class PaintingOut(BaseModel):
    image_id: int
    path: str = Field(description="Relative to the indexed image folder.")
    width: int
    height: int
    meta: Meta
    metadata: dict[str, str] = Field(description="Every metadata column of the painting.")
    links: PaintingLinks


class ExampleOut(PaintingOut):
    rank: int
    value: float = Field(description="The unit's maximum over the painting, taken as the index's ranking says.")
    percentile: float
    cell: tuple[int, int] = Field(description="(row, col) of the maximum in the feature map.")
    box: tuple[int, int, int, int] = Field(description="(x0, y0, x1, y1) the cell covers in image pixels.")
    on_border: bool = Field(description="The cell lies on the map's border (never with the interior ranking).")
    photo: str = Field(description="The photograph: its size in pixels and, when the metadata names it, its source.")


class StatsOut(BaseModel):
    mean: float
    std: float
    min: float
    max: float
    quantiles: dict[str, float]


class BorderOut(BaseModel):
    paintings: int = Field(description="Paintings whose maximum (over every cell) lies on the map's border.")
    count: int = Field(description="Paintings in the index.")
    chance: float = Field(description="The border's share of the map's cells.")
    edge_high: float | None = Field(description="The unit's strongest border peak in the collection (None: none).")
    inner_high: float | None = Field(description="The unit's strongest value inside the maps.")
    share: float
    strength: float | None = Field(description="edge_high / inner_high (null: no border peak, or nothing "
                                                 "positive inside).")
    flagged: bool = Field(description="A border unit: a share of at least half the paintings and 1.5× chance, or a "
                                      "strength of at least 1.25.")
    text: str


class EnrichmentOut(BaseModel):
    facet: str = Field(description="A metadata column, 'image size', or a date column in 50-year bins.")
    value: str
    in_group: int
    group: int
    in_collection: int
    collection: int
    ratio: float = Field(description="Share among the unit's paintings / share in the collection.")
    p: float = Field(description="One-sided exact (hypergeometric) p-value.")
    p_adjusted: float = Field(description="Holm-corrected over every value tested.")
    provenance: bool = Field(description="About the photograph (source, image size), not the painting.")
    text: str = Field(description="For display: 'label: portrait ×4.6, p < 0.001'.")


class UnitNotesOut(BaseModel):
    ranking: str
    ranking_text: str
    legacy: str | None = Field(None, description="Set for an index made before rankings were recorded.")
    border: BorderOut | None = Field(None, description="None for an index made before border counts.")
    border_text: str | None = None
    group: int = Field(description="The unit's top (or bottom) k paintings as indexed: what the statistics are about.")
    collection: int
    tested: int = Field(description="Metadata values tested (the correction's count).")
    content: list[EnrichmentOut] = Field(description="Over-represented values of the paintings (p_adjusted < 0.05).")
    provenance: list[EnrichmentOut] = Field(description="Over-represented values of the photographs.")
    provenance_text: str | None = None


class UnitExamplesOut(BaseModel):
    index: str
    model: str
    layer: str
    channel: int
    label: str | None = Field(None, description="Class name for logits.")
    negative: bool
    stats: StatsOut
    notes: UnitNotesOut = Field(description="How the examples were ranked, whether the unit peaks on the border, "
                                            "and which metadata values its paintings over-represent.")
    examples: list[ExampleOut]


class UnitHitOut(BaseModel):
    layer: str
    channel: int
    label: str | None = None
    value: float
    percentile: float | None = Field(None, description="Where the value falls among the collection's paintings.")
    overlay: str = Field(description="JPEG of this painting with the unit's activation map.")
    examples: str | None = Field(None, description="The unit's examples in the index (when indexed).")


class ReasonOut(BaseModel):
    mode: str = Field(description="The similarity mode this reason belongs to.")
    layer: str
    channel: int | None = Field(None, description="The unit (content, composition); none for a style layer.")
    share: float = Field(description="Its part of the mode's cosine (the parts of all units or layers add to 1).")
    unit: str | None = Field(None, description="The unit's examples in the index (when the layer is indexed).")


class SimilarOut(BaseModel):
    image_id: int
    score: float = Field(description="Cosine similarity in the chosen mode (a mix: the weighted sum).")
    scores: dict[str, float] = Field(default_factory=dict, description="The cosine of each mode of the mix.")
    reasons: list[ReasonOut] = Field(default_factory=list, description="Why it is close: the units (content, "
                                     "composition) or layers (style) that add most to the cosine.")
    copies: list[int] = Field(default_factory=list, description="Other photographs of this painting in the "
                              "collection (near-duplicates, grouped here instead of listed).")
    meta: Meta
    links: PaintingLinks


class ExplainedOut(BaseModel):
    model: str
    index: str | None
    layer: str
    layers: list[str] = Field(description="Layers this painting can be explained at (?layer=).")
    units: list[UnitHitOut] = Field(description="Units ranked by their value on this painting.")
    by_percentile: list[UnitHitOut] = Field(description="Units ranked by their percentile in the collection.")
    ranked_at: str = Field("", description="The layer whose values rank the units: `layer`, or the tap before its "
                                           "closing saturating activation (`clamp`), where values do not tie.")
    clamp: str | None = Field(None, description="The closing activation ranked around (e.g. ReLU6), if any.")
    ties: list[str] = Field(default_factory=list, description="Ties left among the units shown, in words.")
    similar: list[SimilarOut]
    similar_basis: str | None = Field(None, description="What the similar paintings were compared by, in words "
                                                        "(the mode and the layers it reads).")
    mode: dict[str, float] = Field(default_factory=lambda: {"content": 1.0},
                                   description="The similarity mode of `similar` (weights of a mix).")
    modes: list[str] = Field(default_factory=list, description="The similarity modes this index offers (?mode=).")
    same_painting: list[int] = Field(default_factory=list, description="Image ids of other photographs of this "
                                     "same painting in the collection (not listed as similar).")


class ImagePageOut(ExplainedOut):
    painting: PaintingOut


class UploadOut(ExplainedOut):
    id: str = Field(description="The upload's id (a digest of its bytes); kept only briefly, in memory.")
    width: int
    height: int
    format: str
    image: str = Field(description="The upload as a JPEG; ?size=.")
