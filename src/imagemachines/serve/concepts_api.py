"""The concept routes: what a served model has learned about each class of an indexed collection.

A study of one class is asked for (``POST``), computed in the background (:mod:`.concept_jobs`: one at a time,
a bounded queue, cancellable, on disk), and then read (``GET …/result``) with URLs of its pictures: each
concept's render, best crops (with the painting they come from), its map over the class's paintings and over any
painting of the collection. Paintings are addressed by index and image id; studies by a key the server made.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Query, Response
from fastapi import Path as PathParam
from pydantic import BaseModel, ConfigDict, Field

from imagemachines.errors import UserError
from imagemachines.models import LoadedModel
from imagemachines.serve.collection import ServedIndex, display_meta, encode, snap_size
from imagemachines.serve.concept_jobs import VIEW, Closing, ConceptJob, ConceptJobs, QueueFull, is_key, job_key
from imagemachines.serve.guard import refuse_cross_site
from imagemachines.serve.schemas import Problem

ERRORS = {404: {"model": Problem}, 422: {"model": Problem}}
BUSY = {429: {"model": Problem, "description": "Too many studies wait (Retry-After)."},
        503: {"model": Problem, "description": "The server is stopping (Retry-After)."}}
PICTURE = {200: {"content": {"image/jpeg": {}, "image/png": {}}, "description": "JPEG or PNG"}, **ERRORS}
MAX_IMAGES = 120        # paintings per class in a server study (a seeded sample beyond)
COLLECTION_SHOWN = 8    # paintings of the whole collection shown per concept
COLLECTION_FLOOR = 0.05  # … whose peak reaches at least this share of the concept's strongest cell in its class
Key = Annotated[str, PathParam(min_length=32, max_length=32, pattern="^[0-9a-f]{32}$")]
Rank = Annotated[int, PathParam(ge=0, le=99)]
Item = Annotated[int, PathParam(ge=0, le=99)]
ImageId = Annotated[int, PathParam(ge=0, le=2**62)]


class StudyRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    concepts: int = Field(10, ge=2, le=20, description="Concepts to find.")
    seed: int = Field(0, ge=0, le=2**31 - 1, description="Seed of the factorisation, design, sample and renders.")


class StudyLinks(BaseModel):
    self: str
    result: str


class StudyStatus(BaseModel):
    key: str = Field(description="The study's id in the other /api/concepts routes.")
    index: str
    name: str = Field(description="The class.")
    concepts: int
    seed: int
    state: str = Field(description="queued, running, done, failed or cancelled.")
    stage: str
    progress: float
    queue_position: int | None = None
    error: str | None = None
    links: StudyLinks


class ClassOut(BaseModel):
    name: str
    index: int
    paintings: int | None = Field(None, description="Labelled paintings of the class (None: decided by the model).")
    study: StudyStatus | None = Field(None, description="The study with the default settings, when asked for.")


class ConceptsIndexOut(BaseModel):
    index: str
    model: str
    rule: str = Field(description="How the paintings of a class are decided.")
    defaults: StudyRequest
    max_images: int
    classes: list[ClassOut]


class _Workers:
    """Private copies of each model, one for the studies and one for map overlays, each with its lock: the
    renderer uses the served module, and forward hooks on a shared module would fire in every thread."""

    def __init__(self) -> None:
        self._copies: dict[tuple[str, str], tuple[LoadedModel, threading.Lock]] = {}
        self._lock = threading.Lock()

    def model(self, model: LoadedModel, purpose: str) -> tuple[LoadedModel, threading.Lock]:
        with self._lock:
            if (model.name, purpose) not in self._copies:
                private = dataclasses.replace(model, module=copy.deepcopy(model.module), _fast=None)
                self._copies[(model.name, purpose)] = (private, threading.Lock())
            return self._copies[(model.name, purpose)]


def build_concepts_router(indexes: Mapping[str, ServedIndex], jobs: ConceptJobs) -> APIRouter:
    router = APIRouter(tags=["concepts"])
    workers = _Workers()

    def served(index_id: str) -> ServedIndex:
        if index_id not in indexes:
            known = ", ".join(indexes) or "none (start the server with --index DIR)"
            raise HTTPException(404, f"No index {index_id!r} on this server. Indexes: {known}.")
        s = indexes[index_id]
        if not s.model.class_names:
            raise HTTPException(404, f"The model of index {index_id!r} has no class names, so it has no classes "
                                     "to study.")
        return s

    def class_name(s: ServedIndex, name: str) -> str:
        lowered = {n.lower(): n for n in s.model.class_names}
        if name.lower() not in lowered:
            from imagemachines.errors import did_you_mean

            raise HTTPException(404, f"The model of index {s.id!r} has no class {name!r}."
                                     f"{did_you_mean(name, s.model.class_names)}")
        return lowered[name.lower()]

    def key_of(s: ServedIndex, name: str, req: StudyRequest) -> str:
        return job_key({"index": str(s.index.path), "updated": s.index.manifest.get("updated"),
                        "weights": s.model.weights_id, "class": name, **req.model_dump(), "max": MAX_IMAGES})

    def status(job: ConceptJob) -> StudyStatus:
        base = f"/api/concepts/{job.key}"
        return StudyStatus(key=job.key, index=job.index, name=job.name, concepts=job.params.get("concepts", 0),
                           seed=job.params.get("seed", 0), state=job.state, stage=job.stage,
                           progress=round(job.progress, 4), queue_position=jobs.queue_position(job), error=job.error,
                           links=StudyLinks(self=base, result=f"{base}/result"))

    def job_or_404(key: str) -> ConceptJob:
        job = jobs.get(key) if is_key(key) else None
        if job is None:
            raise HTTPException(404, f"No concept study {key!r}; start one with POST "
                                     "/api/indexes/{index}/concepts/{class}.")
        return job

    def finished(key: str) -> dict:
        job = job_or_404(key)
        view = jobs.view(key) if job.state == "done" else None
        if view is None:
            raise HTTPException(404, f"The concept study {key} is {job.state} ({job.stage}); its result is not "
                                     "there yet. Poll /api/concepts/{key}.")
        return view

    def collection_of(s: ServedIndex):
        from imagemachines.concepts.selection import choose_rule, open_collection

        collection = open_collection(index=s.index)
        return collection, choose_rule(collection, s.model.class_names)

    @router.get("/api/indexes/{index_id}/concepts", response_model=ConceptsIndexOut, responses=ERRORS)
    def list_classes(index_id: str) -> ConceptsIndexOut:
        """The classes of an index's model, how many paintings each has, and the state of their studies."""
        from imagemachines.concepts.selection import labels_of

        s = served(index_id)
        collection, rule = collection_of(s)
        counts: dict[str, int] = {}
        if rule.kind != "top1":
            for label in labels_of(collection, rule).values():
                counts[label.lower()] = counts.get(label.lower(), 0) + 1
        defaults = StudyRequest()
        classes = []
        for i, name in enumerate(s.model.class_names):
            job = jobs.get(key_of(s, name, defaults))
            classes.append(ClassOut(name=name, index=i, paintings=None if rule.kind == "top1" else
                                    counts.get(name.lower(), 0), study=status(job) if job else None))
        return ConceptsIndexOut(index=s.id, model=s.model.name, rule=rule.describe(), defaults=defaults,
                                max_images=MAX_IMAGES, classes=classes)

    @router.post("/api/indexes/{index_id}/concepts/{name}", response_model=StudyStatus, status_code=202,
                 responses={200: {"model": StudyStatus, "description": "Already studied."}, **ERRORS, **BUSY})
    def start(index_id: str, name: str, response: Response, req: StudyRequest | None = None) -> StudyStatus:
        """Ask for the concepts of a class (computed in the background; poll the returned links)."""
        s = served(index_id)
        name = class_name(s, name)
        req = req or StudyRequest()
        key = key_of(s, name, req)
        try:
            job = jobs.submit(key, s.id, name, req.model_dump(), _work(s, name, req, workers, jobs))
        except QueueFull as exc:
            raise HTTPException(429, str(exc), headers={"Retry-After": str(exc.retry_after)}) from None
        except Closing as exc:
            raise HTTPException(503, str(exc), headers={"Retry-After": str(exc.retry_after)}) from None
        if job.state == "done":
            response.status_code = 200
        return status(job)

    @router.get("/api/indexes/{index_id}/concepts/{name}", response_model=StudyStatus | None, responses=ERRORS)
    def find(index_id: str, name: str,
             concepts: Annotated[int, Query(ge=2, le=20)] = StudyRequest().concepts,
             seed: Annotated[int, Query(ge=0, le=2**31 - 1)] = 0) -> StudyStatus | None:
        """The study of a class with these settings if it was asked for, else null (nothing starts: POST here)."""
        s = served(index_id)
        name = class_name(s, name)
        job = jobs.get(key_of(s, name, StudyRequest(concepts=concepts, seed=seed)))
        return status(job) if job is not None else None

    @router.get("/api/concepts/{key}", response_model=StudyStatus, responses=ERRORS)
    def study_status(key: Key) -> StudyStatus:
        """A study's state, stage and progress (0 to 1)."""
        return status(job_or_404(key))

    @router.delete("/api/concepts/{key}", response_model=StudyStatus, responses=ERRORS)
    def cancel(key: Key) -> StudyStatus:
        """Cancel a queued or running study (a finished one stays)."""
        job_or_404(key)
        return status(jobs.cancel(key) or job_or_404(key))

    @router.get("/api/concepts/{key}/result", responses=ERRORS)
    def result(key: Key) -> dict:
        """The finished study: the class's concepts ranked by importance with every number and picture URL."""
        return _public(finished(key))

    def picture(key: str, name: str | None) -> Response:
        path = jobs.file(key, name) if name else None
        if path is None:
            raise HTTPException(404, "No such picture in this study.")
        media = "image/png" if path.suffix == ".png" else "image/jpeg"
        return Response(path.read_bytes(), media_type=media, headers={"Cache-Control": "public, max-age=86400"})

    def concept_of(view: dict, rank: int) -> dict:
        if rank >= len(view["concepts"]):
            raise HTTPException(404, f"The study has {len(view['concepts'])} concepts (ranks 0 to "
                                     f"{len(view['concepts']) - 1}).")
        return view["concepts"][rank]

    def item(files: list, i: int) -> str | None:
        return files[i] if i < len(files) else None

    @router.get("/api/concepts/{key}/curves", responses=PICTURE)
    def curves_picture(key: Key) -> Response:
        """The deletion and insertion curves (PNG)."""
        return picture(key, finished(key)["_files"]["curves"])

    @router.get("/api/concepts/{key}/concepts/{rank}/render", responses=PICTURE)
    def render_picture(key: Key, rank: Rank) -> Response:
        """The concept's render (PNG)."""
        return picture(key, concept_of(finished(key), rank)["_files"]["render"])

    @router.get("/api/concepts/{key}/concepts/{rank}/crops/{i}", responses=PICTURE)
    def crop_picture(key: Key, rank: Rank, i: Item) -> Response:
        """The concept's i-th best crop (JPEG)."""
        return picture(key, item([f["file"] for f in concept_of(finished(key), rank)["_files"]["crops"]], i))

    @router.get("/api/concepts/{key}/concepts/{rank}/maps/{i}", responses=PICTURE)
    def map_picture(key: Key, rank: Rank, i: Item) -> Response:
        """The concept's map over the i-th painting of the class where it is strongest (JPEG)."""
        return picture(key, item([f["file"] for f in concept_of(finished(key), rank)["_files"]["maps"]], i))

    @router.get("/api/concepts/{key}/concepts/{rank}/overlay/{image_id}", responses=PICTURE,
                dependencies=[Depends(refuse_cross_site)])
    def overlay(key: Key, rank: Rank, image_id: ImageId,
                size: Annotated[int, Query(ge=16, le=1024, description="Longer side in pixels.")] = 384) -> Response:
        """The concept's map over any painting of the study's index (JPEG; colour scale: the concept's strongest
        cell over the class's paintings)."""
        view = finished(key)
        concept = concept_of(view, rank)
        s = served(view["index"])
        try:
            s.index.image(image_id)
        except UserError:
            raise HTTPException(404, f"Index {s.id!r} has no image {image_id}.") from None
        return Response(_overlay(s, key, view, concept, image_id, snap_size(size), workers, jobs),
                        media_type="image/jpeg")

    return router


def _public(value):
    """The view without its private parts (keys starting with "_": the study's own file names)."""
    if isinstance(value, dict):
        return {k: _public(v) for k, v in value.items() if not k.startswith("_")}
    if isinstance(value, list):
        return [_public(v) for v in value]
    return value


def _work(s: ServedIndex, name: str, req: StudyRequest, workers: _Workers, jobs: ConceptJobs):
    """The job's computation: the study of one class, written to *folder* with its ``view.json``."""

    def work(job: ConceptJob, folder: Path, report) -> None:
        from imagemachines.concepts.cache import ActivationCache
        from imagemachines.concepts.discovery import Settings, discover
        from imagemachines.fileio import atomic_write

        model, use = workers.model(s.model, "studies")
        gpu = model.device.type != "cpu"
        settings = Settings(concepts=req.concepts, seed=req.seed, max_images=MAX_IMAGES,
                            render_steps=128 if gpu else 64)
        cache = ActivationCache(jobs.root / "activations", max_bytes=jobs.max_bytes)
        with use:
            study = discover(model, s.index, name, settings=settings, cache=cache, progress=False,
                             on_progress=lambda what, f: report(what, 0.85 * f))
            study.save(folder, progress=False)
            report("the concepts over the whole collection", 0.86)
            peaks = _collection_peaks(model, s, study, cache, report)
        doc = json.loads((folder / "concepts.json").read_text(encoding="utf-8"))
        view = _view(job, s, study, doc, peaks)
        atomic_write(folder / VIEW, lambda tmp: tmp.write_text(json.dumps(view), encoding="utf-8"))

    return work


def _collection_peaks(model, s: ServedIndex, study, cache, report) -> list[list[tuple[int, float]]]:
    """Per concept: (image id, peak coefficient) of the collection's paintings where it is strongest."""
    from imagemachines.concepts.activations import collect
    from imagemachines.concepts.concept_maps import peak_paintings
    from imagemachines.concepts.importance import cell_coefficients

    c = next(iter(study.classes.values()))
    paths = [info.path for info in s.index.images()]
    ids = {info.path: info.id for info in s.index.images()}
    acts = collect(model, s.index.image_root, paths, study.layer, cache, progress=False,
                   on_image=lambda done, total: report("the concepts over the whole collection",
                                                       0.86 + 0.12 * done / total))
    peaks: list[list[tuple[int, float]]] = [[] for _ in range(c.k)]
    for start in range(0, len(acts.paths), 64):
        cells = cell_coefficients(acts.maps[start:start + 64], c.W)
        for j in range(c.k):
            floor = COLLECTION_FLOOR * float(c.cell_coefficients[..., j].max())
            for row, peak, _cell in peak_paintings(cells[..., j], COLLECTION_SHOWN, floor):
                peaks[j].append((ids[acts.paths[start + row]], peak))
    return [sorted(p, key=lambda t: (-t[1], t[0]))[:COLLECTION_SHOWN] for p in peaks]


def _view(job: ConceptJob, s: ServedIndex, study, doc: dict, peaks) -> dict:
    """What the interface shows, with this API's URLs (and, under ``_files``, the study's own file names)."""
    c = next(iter(study.classes.values()))
    cdoc = doc["classes"][c.name]
    ids = {info.path: info.id for info in s.index.images()}
    metas = {info.path: info.meta for info in s.index.images()}
    base = f"/api/concepts/{job.key}"

    def painting(path: str) -> dict:
        image_id = ids.get(path)
        return {"image_id": image_id, "path": path, "meta": display_meta(metas.get(path) or {}),
                "thumb": f"/api/indexes/{s.id}/images/{image_id}/thumb" if image_id is not None else None}

    concepts = []
    for j, (k, kd) in enumerate(zip(c.concepts, cdoc["concepts"], strict=True)):
        boxes = {cr.path: list(cr.box) for cr in k.crops}
        concepts.append({
            "rank": j, "sobol": k.sobol, "sobol_std": k.sobol_std, "ablation": k.ablation,
            "ablation_std": k.ablation_std, "share": k.share, "stability": k.stable_similarity, "blown_up": k.blown_up,
            "resolution_warning": k.resolution_warning,
            "render_value": k.render_value, "best": k.crops[0].coefficient if k.crops else None,
            "render": f"{base}/concepts/{j}/render" if kd["files"]["render"] else None,
            "crops": [{**painting(f["path"]), "box": boxes[f["path"]], "coefficient": f["coefficient"],
                       "picture": f"{base}/concepts/{j}/crops/{i}"} for i, f in enumerate(kd["files"]["crops"])],
            "paintings": [{**painting(f["path"]), "peak": f["peak"], "picture": f"{base}/concepts/{j}/maps/{i}"}
                          for i, f in enumerate(kd["files"]["maps"])],
            "collection": [{"image_id": image_id, "peak": peak, "meta": display_meta(s.index.image(image_id).meta),
                            "path": s.index.image(image_id).path,
                            "picture": f"{base}/concepts/{j}/overlay/{image_id}"} for image_id, peak in peaks[j]],
            "_files": kd["files"],
        })
    return {"key": job.key, "index": s.id, "model": study.model, "class": c.name, "params": job.params,
            "layer": study.layer, "rule": c.rule, "n_images": len(c.paths), "candidates": c.candidates,
            "copies": sum(len(v) for v in c.copies.values()),
            "r2": c.r2, "logit_share": cdoc["faithfulness"]["logit_share"], "stability": c.stability.mean,
            "summary": c.summary(), "deletion": cdoc["faithfulness"]["deletion"],
            "insertion": cdoc["faithfulness"]["insertion"], "curves": f"{base}/curves",
            "vmax": [float(c.cell_coefficients[..., j].max()) for j in range(c.k)],
            "concepts": concepts, "_files": {"curves": cdoc["files"]["curves"]}}


def _overlay(s: ServedIndex, key: str, view: dict, concept: dict, image_id: int, size: int, workers: _Workers,
             jobs: ConceptJobs) -> bytes:
    """A painting of the index with a concept's map over it."""
    from PIL import Image
    from safetensors.numpy import load_file

    from imagemachines.concepts.activations import collect
    from imagemachines.concepts.cache import ActivationCache
    from imagemachines.concepts.concept_maps import concept_overlay
    from imagemachines.concepts.crops import read_rgb
    from imagemachines.concepts.importance import cell_coefficients

    info = s.index.image(image_id)
    model, lock = workers.model(s.model, "maps")
    with lock:
        acts = collect(model, s.index.image_root, [info.path], view["layer"],
                       ActivationCache(jobs.root / "activations", max_bytes=jobs.max_bytes), progress=False)
    W = load_file(str(jobs.folder(key) / "concepts.safetensors"))[f"{view['class']}/W"]
    rank = concept["rank"]
    heat = cell_coefficients(acts.maps, W)[0, :, :, rank]
    try:
        painting = read_rgb(s.index.image_root / info.path)
    except (OSError, ValueError) as exc:
        raise UserError(f"The painting {image_id} of index {s.id!r} cannot be read any more ({exc}).") from None
    painting.thumbnail((size, size), Image.Resampling.LANCZOS)
    return encode(concept_overlay(painting, heat, view["vmax"][rank]))
