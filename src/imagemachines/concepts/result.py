"""What concept discovery hands back: per class, its concepts ranked by importance, with every number.

:class:`ConceptStudy` (all classes asked for) holds one :class:`ClassConcepts` per class and the concepts they
share; both show themselves in Jupyter (``_repr_html_``, pictures inline) and the study writes the output folder
(:meth:`ConceptStudy.save`: ``concepts.html``, ``concepts.json``, ``concepts.safetensors``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from imagemachines.concepts.across import SharedConcept
from imagemachines.concepts.faithfulness import Curves
from imagemachines.concepts.stability import Matching


@dataclass(frozen=True)
class CropRef:
    """A crop of a painting that carries a concept: the painting (row and path), its box in the painting's pixels
    (left, top, right, bottom) and the crop's coefficient on the concept."""

    image: int
    path: str
    box: tuple[int, int, int, int]
    coefficient: float


@dataclass(frozen=True)
class PaintingRef:
    """A whole painting where a concept is strong: its row, path and the concept's strongest cell."""

    image: int
    path: str
    peak: float
    cell: tuple[int, int]


@dataclass
class Concept:
    """One concept of a class, at its rank (0 = the most important)."""

    rank: int
    sobol: float            # total Sobol index for the class logit, mean over the class's paintings
    sobol_std: float
    ablation: float         # class logit drop when the concept is taken out, mean over the paintings
    ablation_std: float
    share: float            # the concept's share of the crops' coefficients (how common it is)
    blown_up: float = 0.0   # share of its shown crops enlarged more than 5× to the input (small photographs)
    blown_up_base: float = 0.0  # … the same share over all the class's crops

    @property
    def resolution_warning(self) -> bool:
        """Its best crops come from small pictures far more often than the class's crops do (at least half of
        them, and 30 points above the class): it may be about the photographs' resolution."""
        return self.blown_up >= max(0.5, self.blown_up_base + 0.3)
    crops: list[CropRef] = field(default_factory=list)
    paintings: list[PaintingRef] = field(default_factory=list)
    render: Image.Image | None = None
    render_value: float | None = None   # the render's coefficient on this concept (same scale as the crops')
    stable_match: int = -1              # its partner in the second seed's factorisation, and how alike
    stable_similarity: float = float("nan")

    def as_dict(self, meta: dict[str, dict] | None = None) -> dict:
        meta = meta or {}
        return {"rank": self.rank, "importance": {"sobol_total": self.sobol, "sobol_total_std": self.sobol_std,
                                                  "ablation": self.ablation, "ablation_std": self.ablation_std},
                "share": self.share, "blown_up": self.blown_up, "blown_up_class": self.blown_up_base,
                "resolution_warning": self.resolution_warning, "render_value": self.render_value,
                "best_crop_coefficient": self.crops[0].coefficient if self.crops else None,
                "stability": {"partner": self.stable_match, "similarity": self.stable_similarity},
                "crops": [{"path": c.path, "box": list(c.box), "coefficient": c.coefficient,
                           "metadata": meta.get(c.path, {})} for c in self.crops],
                "paintings": [{"path": p.path, "peak": p.peak, "cell": list(p.cell), "metadata": meta.get(p.path, {})}
                              for p in self.paintings]}


@dataclass
class ClassConcepts:
    """The concepts of one class: W, the coefficients of crops and cells, importances and faithfulness."""

    name: str
    index: int
    rule: str
    paths: list[str]                   # the paintings used (relative to the image folder)
    sizes: list[tuple[int, int]]       # their (width, height)
    concepts: list[Concept]
    W: np.ndarray                      # [k, C]: concept vectors, rows in rank order
    crop_coefficients: np.ndarray      # [n_crops, k]
    crop_image: np.ndarray             # [n_crops]: row of paths
    crop_box: np.ndarray               # [n_crops, 4]
    cell_coefficients: torch.Tensor    # [n, h, w, k]: every painting's concept map at feature-map resolution
    r2: float
    iterations: int
    curves: Curves
    stability: Matching
    candidates: int = 0                # paintings of the class before --max-images
    copies: dict[str, list[str]] = field(default_factory=dict)  # kept painting → its other photographs, left out
    bad: list[tuple[str, str]] = field(default_factory=list)
    root: Path | None = None
    meta: dict[str, dict] = field(default_factory=dict)

    @property
    def k(self) -> int:
        return len(self.concepts)

    def summary(self) -> dict:
        """The headline numbers: removing the 3 most important concepts vs 3 random ones vs 3 units (fewer when
        there are fewer than 4 concepts: all of them out would be the same in every order)."""
        steps = max(1, min(3, self.k - 1))
        return {"steps": steps, "probability": self.curves.probability,
                "drop_top": self.curves.drop("concepts", steps), "drop_random": self.curves.drop("random", steps),
                "drop_units": self.curves.drop("units", steps)}

    def as_dict(self) -> dict:
        return {"name": self.name, "index": self.index, "rule": self.rule, "n_images": len(self.paths),
                "candidates": self.candidates, "images": self.paths, "unreadable": [list(b) for b in self.bad],
                "left_out_copies": {k: list(v) for k, v in self.copies.items()},
                "n_crops": int(len(self.crop_image)), "r2": self.r2, "nmf_iterations": self.iterations,
                "summary": self.summary(), "faithfulness": self.curves.as_dict(),
                "stability": self.stability.as_dict(),
                "concepts": [c.as_dict({p: self.meta.get(p, {}) for p in self.paths}) for c in self.concepts]}

    def _repr_html_(self) -> str:
        from imagemachines.concepts.page import notebook_html

        return notebook_html([self], [], title=f"Concepts of {self.name}")


@dataclass
class ConceptStudy:
    """Concepts of several classes of one model at one layer, and the concepts the classes share."""

    model: str
    weights_id: str
    layer: str
    render_layer: str | None
    settings: dict
    classes: dict[str, ClassConcepts]
    shared: list[SharedConcept]
    similarity: dict
    root: Path
    timings: dict = field(default_factory=dict)

    def __getitem__(self, name: str) -> ClassConcepts:
        return self.classes[name]

    def as_dict(self) -> dict:
        return {"format": "imagemachines-concepts", "version": 1, "model": self.model, "weights_id": self.weights_id,
                "layer": self.layer, "render_layer": self.render_layer, "image_root": str(self.root),
                "settings": self.settings, "timings": self.timings,
                "classes": {name: c.as_dict() for name, c in self.classes.items()},
                "shared": [s.as_dict() for s in self.shared], "similarity": self.similarity}

    def save(self, out: Path, *, progress: bool = True) -> Path:
        """Write ``concepts.html``, ``concepts.json`` and ``concepts.safetensors`` (and the pictures) to *out*."""
        from imagemachines.concepts.page import write_study

        return write_study(self, Path(out), progress=progress)

    def _repr_html_(self) -> str:
        from imagemachines.concepts.page import notebook_html

        return notebook_html(list(self.classes.values()), self.shared, title=f"Concepts of {self.model}")
