"""``discover``: concept discovery for the classes of a model on the user's own collection.

Per class: its paintings (:mod:`.selection`), their crops' activations at the layer (:mod:`.activations`,
cached), a non-negative factorisation into concepts (:mod:`.factorization`), each concept's importance for the
class logit through the rest of the network (:mod:`.importance`: total Sobol indices and ablation), concepts ranked
by it, their maps over whole paintings, deletion and insertion curves (:mod:`.faithfulness`), a second seed for
stability (:mod:`.stability`); then what the classes share (:mod:`.across`) and a render of every concept
(:mod:`.renders`). Deterministic for a given seed.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

from imagemachines.concepts.activations import Activations, collect
from imagemachines.concepts.cache import ActivationCache, default_cache_dir
from imagemachines.concepts.crops import CropGrid
from imagemachines.concepts.factorization import factorize, project
from imagemachines.concepts.result import ClassConcepts, Concept, ConceptStudy, CropRef, PaintingRef
from imagemachines.concepts.selection import (
    Collection,
    Rule,
    cap,
    choose_rule,
    class_members,
    distinct_paintings,
    open_collection,
)
from imagemachines.errors import UserError
from imagemachines.models.loaded import LoadedModel
from imagemachines.train.distributed import Dist


@dataclass(frozen=True)
class Settings:
    """Everything the numbers depend on (besides model, paintings and classes); see ``imagemachines concepts``."""

    concepts: int = 10
    crop: float = 0.3
    stride: float = 0.25
    max_images: int | None = 200
    seed: int = 0
    design: int = 32          # Sobol design points per matrix (CRAFT's 32); (k + 2) × design masked passes per image
    draws: int = 10           # random orders averaged for the random deletion and insertion curves
    crops_shown: int = 10     # best crops kept per concept (at most one per painting)
    paintings_shown: int = 3  # whole paintings with the concept's map, per concept
    render: bool = True
    render_size: int = 128
    render_steps: int = 128
    method: str = "lucid"

    def __post_init__(self) -> None:
        CropGrid(self.crop, self.stride)  # checks the fractions
        if self.concepts < 1:
            raise UserError("--concepts must be at least 1.")
        if self.concepts > 100:
            raise UserError("--concepts must be at most 100 (pages of more concepts are not readable anyway).")
        if self.design < 2 or self.draws < 1:
            raise UserError("The Sobol design needs at least 2 points and the random curves at least 1 draw.")
        if not 1 <= self.crops_shown <= 64 or not 1 <= self.paintings_shown <= 16:
            raise UserError("Show 1 to 64 crops and 1 to 16 paintings per concept.")
        if not 16 <= self.render_size <= 1024 or not 1 <= self.render_steps <= 4096:
            raise UserError("--render-size must be 16 to 1024 px and --render-steps 1 to 4096.")

    @property
    def grid(self) -> CropGrid:
        return CropGrid(self.crop, self.stride)


ProgressFn = Callable[[str, float], None]  # (what is happening, fraction done of the whole study); may raise to stop
CROPS_SHARE = 0.6  # the part of a class's progress that is the network's pass over its crops
RENDER_START = 0.95  # where the renders begin on the study's progress


def parse_classes(model: LoadedModel, classes: str | int | Sequence[str | int] | None) -> list[int] | None:
    """Class indices from names or numbers (comma-separated text too); None for all of them."""
    from imagemachines.explain.targets import parse_class

    if classes is None or (isinstance(classes, str) and classes.strip().lower() == "all"):
        parse_class(model, "0")  # a model without class scores is an error here already
        return None
    if isinstance(classes, (str, int)):
        classes = [c for c in str(classes).split(",") if c.strip()]
    out = [parse_class(model, c) for c in classes]
    if not out:
        raise UserError("Name at least one class (--class NAME), or --classes all.")
    return list(dict.fromkeys(out))


def discover(model: LoadedModel, images: Path | str | Collection | object, classes=None, *,
             layer: str | None = None, settings: Settings | None = None, metadata: Path | None = None,
             label_column: str | None = None, predicted: bool = False, cache: ActivationCache | Path | None = None,
             batch_size: int | None = None, progress: bool = True, on_progress: ProgressFn | None = None,
             dist: Dist | None = None, log: Callable[[str], None] | None = None, **options) -> ConceptStudy | None:
    """Concepts of *classes* (names or numbers, a comma list, or None / "all") of *model* on *images* (a folder,
    an opened collection index, or a :class:`Collection`). Keyword *options* override :class:`Settings` fields
    (``concepts=8, seed=1``). Returns None on torchrun ranks other than 0 (they only share the crop pass).
    """
    from imagemachines.concepts.layer import concept_layer
    from imagemachines.models.tail import network_tail

    settings = Settings(**{**asdict(settings or Settings()), **options})
    dist = dist or Dist()
    say = log or (lambda _text: None)
    started = time.perf_counter()
    chosen = parse_classes(model, classes)
    layer = concept_layer(model, layer)
    tail = network_tail(model, layer)
    collection = images if isinstance(images, Collection) else (
        open_collection(index=images, metadata=metadata) if hasattr(images, "image_root")
        else open_collection(Path(images), metadata=metadata))
    names = list(model.class_names or [str(i) for i in range(model.layer("logits").channels)])
    rule = choose_rule(collection, names, label_column, predicted)
    store = cache if isinstance(cache, ActivationCache) else ActivationCache(Path(cache) if cache else
                                                                             default_cache_dir())
    announce = on_progress or (lambda _what, _done: None)

    def report(what: str, fraction: float) -> None:  # the classes take 95 % of the way, the renders the rest
        announce(what, RENDER_START * fraction)

    predictions = _Predictions(model, collection, layer, tail, store, names, batch_size, progress, dist)
    targets = chosen if chosen is not None else list(range(len(names)))
    if chosen is None and rule.kind == "top1":
        targets = predictions.classes_present()
    say(f"Layer {layer}; classes decided by: {rule.describe()}.")
    studied: dict[str, ClassConcepts] = {}
    timings: dict[str, float] = {}
    for n, cls in enumerate(targets):
        name = names[cls]
        try:
            members = class_members(collection, rule, name, predictions.labels if rule.kind == "top1" else None)
        except UserError:
            if chosen is not None:
                raise
            say(f"{name}: no paintings ({rule.describe()}); left out.")
            continue
        members, copies = distinct_paintings(collection, members)
        used = cap(members, settings.max_images, settings.seed)
        twice = sum(len(c) for c in copies.values())
        say(f"{name}: {len(used)} paintings" + (f" (a seeded sample of {len(members)})" if len(used) < len(members)
                                                else "") + f", {len(used) * settings.grid.per_image} crops"
            + (f"; {twice} more photograph{'s' * (twice != 1)} of the same paintings left out." if twice else "."))
        report(f"{name}: crops", n / len(targets))
        t0 = time.perf_counter()
        acts = collect(model, collection.root, used, layer, store, grid=settings.grid, batch_size=batch_size,
                       progress=progress, dist=dist, desc=f"{name}: crops",
                       on_image=lambda done, total, n=n, name=name: report(
                           f"{name}: crops ({done}/{total})", (n + CROPS_SHARE * done / total) / len(targets)))
        t1 = time.perf_counter()
        if acts is None:
            continue  # another rank does the rest
        result = concepts_of_class(tail, acts, cls, name, rule, settings, side=model.input_size, progress=progress,
                                   on_step=lambda what, frac, n=n, name=name: report(
                                       f"{name}: {what}", (n + CROPS_SHARE + (1 - CROPS_SHARE) * frac) / len(targets)))
        result.candidates, result.root, result.copies = len(members), collection.root, copies
        result.meta = {p: collection.meta.get(p, {}) for p in acts.paths}
        studied[name] = result
        timings[name] = {"crops_s": t1 - t0, "analysis_s": time.perf_counter() - t1, "computed_images": acts.computed}
    if not dist.main:
        return None
    if not studied:
        raise UserError(f"No class has paintings in {collection.root} ({rule.describe()}).")
    store.trim()
    from imagemachines.concepts.across import shared_concepts, similarity_matrix
    from imagemachines.concepts.renders import render_concepts
    from imagemachines.explain.page import render_layer

    vectors = {name: c.W for name, c in studied.items()}
    rendered_at = render_layer(model, layer) if settings.render else None
    if settings.render:
        announce("rendering concepts", RENDER_START)
        t0 = time.perf_counter()
        render_concepts(model, layer, list(studied.values()), settings, progress=progress,
                        on_step=lambda f: announce("rendering concepts", RENDER_START + (1 - RENDER_START) * f))
        timings["renders_s"] = time.perf_counter() - t0
    timings["total_s"] = time.perf_counter() - started
    announce("done", 1.0)
    return ConceptStudy(model=model.name, weights_id=model.weights_id, layer=layer, render_layer=rendered_at,
                        settings={**asdict(settings), "rule": rule.describe(), "grid": settings.grid.as_dict(),
                                  "cache": str(store.folder)},
                        classes=studied, shared=shared_concepts(vectors), similarity=similarity_matrix(vectors),
                        root=collection.root, timings=timings)


class _Predictions:
    """The model's top-1 class of every painting of the collection (computed once, when the rule needs it)."""

    def __init__(self, model: LoadedModel, collection: Collection, layer: str, tail, store: ActivationCache,
                 names: list[str], batch_size: int | None, progress: bool, dist: Dist):
        self.model, self.collection, self.layer, self.tail, self.store = model, collection, layer, tail, store
        self.names, self.batch_size, self.progress, self.dist = names, batch_size, progress, dist
        self._labels: dict[str, str] | None = None

    def labels(self) -> dict[str, str]:
        if self._labels is None:
            from imagemachines.concepts.importance import _device
            from imagemachines.train import distributed

            acts = collect(self.model, self.collection.root, self.collection.paths, self.layer, self.store,
                           batch_size=self.batch_size, progress=self.progress, dist=self.dist, desc="top-1 classes")
            found = None
            if acts is not None:  # rank 0: the tail over every painting's map
                top: list[int] = []
                with torch.inference_mode():
                    for s in range(0, len(acts.maps), 64):
                        top += self.tail(acts.maps[s:s + 64].to(_device(self.tail))).argmax(dim=1).tolist()
                found = {p: self.names[t] for p, t in zip(acts.paths, top, strict=True)}
            self._labels = distributed.gather(found, self.dist)[0]  # every rank gets rank 0's answer
        return self._labels

    def classes_present(self) -> list[int]:
        present = set(self.labels().values())
        return [i for i, n in enumerate(self.names) if n in present]


def concepts_of_class(tail, acts: Activations, cls: int, name: str, rule: Rule, settings: Settings, *,
                      side: int = 224, progress: bool = True, on_step: ProgressFn | None = None) -> ClassConcepts:
    """Everything about one class's concepts from its paintings' activations (see the module doc); *side* is the
    network's input size (crops are squashed to it)."""
    from tqdm.auto import tqdm

    from imagemachines.concepts.concept_maps import peak_paintings
    from imagemachines.concepts.faithfulness import curves
    from imagemachines.concepts.importance import ablation_importance, cell_coefficients, sobol_importance
    from imagemachines.concepts.layer import check_non_negative
    from imagemachines.concepts.stability import match

    step = on_step or (lambda _what, _frac: None)
    check_non_negative(acts.layer, float(min(acts.crops.min(), acts.maps.min())))
    k = settings.concepts
    step("factorising", 0.1)
    fit = factorize(acts.crops, k, settings.seed)
    second = factorize(acts.crops, k, settings.seed + 1)
    cells = cell_coefficients(acts.maps, fit.W)
    step("importance", 0.3)
    with tqdm(total=len(acts.paths), desc=f"{name}: Sobol indices", unit="img", disable=not progress,
              leave=False) as bar:
        def sobol_step() -> None:
            bar.update(1)
            step(f"importance ({bar.n}/{len(acts.paths)})", 0.3 + 0.4 * bar.n / len(acts.paths))

        sobol = sobol_importance(tail, cells, fit.W, cls, n_design=settings.design, seed=settings.seed,
                                 on_image=sobol_step)
    ablation = ablation_importance(tail, acts.maps, cells, fit.W, cls)
    order = sorted(range(k), key=lambda j: (-float(sobol[:, j].mean()), j))
    W = fit.W[order]
    cells = cells[..., order]
    sobol, ablation = sobol[:, order], ablation[:, order]
    crop_u = project(acts.crops, W)
    stability = match(W, second.W)
    step("faithfulness", 0.7)
    faith = curves(tail, acts.maps, cells, W, cls, list(range(k)), draws=settings.draws, seed=settings.seed)
    crop_image = acts.crop_image.numpy()
    crop_box = acts.crop_box.numpy()
    total = crop_u.sum()
    concepts = []
    base = enlarged(crop_box, side).mean() if len(crop_box) else 0.0  # the class's share of enlarged crops
    for j in range(k):
        crops = best_crops(crop_u[:, j], crop_image, crop_box, acts.paths, settings.crops_shown)
        concepts.append(Concept(
            rank=j, sobol=float(sobol[:, j].mean()), sobol_std=float(sobol[:, j].std()),
            ablation=float(ablation[:, j].mean()), ablation_std=float(ablation[:, j].std()),
            share=float(crop_u[:, j].sum() / total) if total > 0 else 0.0,
            crops=crops, blown_up=blown_up(crops, side), blown_up_base=float(base),
            paintings=[PaintingRef(i, acts.paths[i], peak, cell)
                       for i, peak, cell in peak_paintings(cells[..., j], settings.paintings_shown)],
            stable_match=stability.partner[j], stable_similarity=stability.similarity[j]))
    step("done", 1.0)
    return ClassConcepts(name=name, index=cls, rule=rule.describe(), paths=acts.paths, sizes=acts.sizes,
                         concepts=concepts, W=W, crop_coefficients=crop_u, crop_image=crop_image, crop_box=crop_box,
                         cell_coefficients=cells, r2=fit.r2, iterations=fit.iterations, curves=faith,
                         stability=stability, bad=acts.bad)


BLOWN_UP = 5.0  # crops enlarged more than this to reach the input (the longest side of the painting below ~180 px)


def enlarged(boxes: np.ndarray, side: int, factor: float = BLOWN_UP) -> np.ndarray:
    """Per crop box (left, top, right, bottom): whether it is enlarged more than *factor* times (geometric mean of
    both sides) to reach the *side* × *side* input."""
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    area = np.maximum((boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1]), 1.0)
    return side / np.sqrt(area) > factor


def blown_up(crops: Sequence[CropRef], side: int, factor: float = BLOWN_UP) -> float:
    """The share of *crops* enlarged more than *factor* times to reach the input: a concept carried by such crops
    may be about the photographs' resolution (blur, JPEG blocks), not the paintings."""
    return float(enlarged([c.box for c in crops], side, factor).mean()) if crops else 0.0


def best_crops(coefficients: np.ndarray, crop_image: np.ndarray, crop_box: np.ndarray, paths: Sequence[str],
               limit: int) -> list[CropRef]:
    """The crops with the largest coefficients, at most one per painting (its best), best first; ties by row."""
    order = np.lexsort((np.arange(len(coefficients)), -coefficients))
    seen: set[int] = set()
    out = []
    for r in order:
        image = int(crop_image[r])
        if image in seen or coefficients[r] <= 0:
            continue
        seen.add(image)
        out.append(CropRef(image, paths[image], tuple(int(v) for v in crop_box[r]), float(coefficients[r])))
        if len(out) >= limit:
            break
    return out
