"""What a unit page says beside a unit's examples, so that they can be trusted: how the examples were ranked,
whether the unit peaks on the border of its map, which metadata values its top paintings over-represent (of the
painting: label, artist, date …; of the photograph: source, image size), and each example's photograph.

One place for the examples page, the atlas and the web API (:func:`unit_notes`, :func:`photo_line`).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from imagemachines.index.enrichment import Enrichment, format_p, significant
from imagemachines.index.records import BorderStats, ImageInfo

RANKING_TEXT = {
    "interior": "ranked by the unit's maximum over the interior of its map (the cells off its border)",
    "reflect": "ranked by the unit's maximum over the painting, mirrored outward at its edges before the network "
               "saw it",
    "full": "ranked by the unit's maximum over the whole map, border included",
}
SOURCE_COLUMNS = ("source", "Source", "SOURCE")


@dataclass(frozen=True)
class UnitNotes:
    """The notes of one unit (see the module docstring). *group* paintings (the unit's top or bottom k as
    indexed) were compared with the *collection*; *tested* metadata values were tested."""

    ranking: str
    border: BorderStats | None
    legacy: str | None
    group: int
    collection: int
    tested: int
    content: list[Enrichment] = field(default_factory=list)
    provenance: list[Enrichment] = field(default_factory=list)

    @property
    def ranking_text(self) -> str:
        return RANKING_TEXT.get(self.ranking, self.ranking)

    @property
    def flagged(self) -> bool:
        return self.border is not None and self.border.flagged

    def border_text(self) -> str | None:
        """A sentence for the page: a warning for a border unit, a plain fact otherwise (None: unknown)."""
        if self.border is None:
            return None
        fact = self.border.text()
        if not self.flagged:
            return f"This unit {fact}."
        hidden = (" The examples below are ranked by the interior, so their crops show the painting; the "
                  "border peaks are left out." if self.ranking == "interior" else
                  " Its strongest-region crops may show the painting's edge or background rather than anything "
                  "painted.")
        return f"Border unit: it {fact}. Its strongest spot lies on the edge of the picture more than position alone " \
               f"explains.{hidden}"

    def provenance_text(self) -> str | None:
        """A warning when the top paintings share how they were photographed (None: they do not)."""
        if not self.provenance:
            return None
        values = "; ".join(f"{e.facet}: {e.label()}" for e in self.provenance)
        return (f"Its top {self.group} paintings are dominated by how they were photographed ({values}): the unit "
                "may answer the photographs' size or source rather than what they show.")

    def as_dict(self) -> dict:
        return {"ranking": self.ranking, "ranking_text": self.ranking_text, "legacy": self.legacy,
                "border": None if self.border is None else self.border.as_dict(), "border_text": self.border_text(),
                "group": self.group, "collection": self.collection, "tested": self.tested,
                "content": [enrichment_dict(e) for e in self.content],
                "provenance": [enrichment_dict(e) for e in self.provenance],
                "provenance_text": self.provenance_text()}


def enrichment_dict(e: Enrichment) -> dict:
    return {**e.as_dict(), "text": f"{e.facet}: {e.label()}", "p_text": format_p(e.p_adjusted)}


def unit_notes(index, layer: str, channel: int, *, negative: bool = False, alpha: float = 0.05) -> UnitNotes:
    """The notes of unit *channel* of *layer* in *index* (a :class:`~imagemachines.index.CollectionIndex`); the
    metadata statistics are about the unit's top (or, *negative*, bottom) k paintings as indexed."""
    found = index.enrichment(layer, channel, negative=negative)
    group = len(index.example_ids(layer, channel, negative=negative))
    over = significant(found, alpha)
    return UnitNotes(index.ranking, index.border(layer, channel), index.note, group, index.n_images, len(found),
                     [e for e in over if not e.provenance], [e for e in over if e.provenance])


def source_of(meta: dict[str, str]) -> str | None:
    return next((str(meta[c]) for c in SOURCE_COLUMNS if meta.get(c)), None)


# metadata columns a caption leaves out: photo_line and the file name show them already (any letter case)
SHOWN_ELSEWHERE = frozenset({"width", "height", "image_width", "image_height", "path",
                             *(c.lower() for c in SOURCE_COLUMNS)})


def caption_meta(meta: dict[str, str]) -> dict[str, str]:
    """The metadata a caption lists under :func:`photo_line`: every non-empty value but the photograph's size,
    its source and its path, which the caption shows once already."""
    return {k: v for k, v in meta.items() if v and str(k).strip().lower() not in SHOWN_ELSEWHERE}


def photo_line(info: ImageInfo) -> str:
    """The photograph beside an example: ``"320 × 211 px · github:…/paintings"`` (size, then the source when the
    metadata names one)."""
    size = f"{info.width} × {info.height} px" if info.width and info.height else "size unknown"
    source = source_of(info.meta)
    return f"{size} · {source}" if source else size

