"""The accentuation routes: a painting of a served index (or an upload) accentuated for a unit.

``POST /api/accentuations`` resolves the request (model, unit, painting, strength, size, steps, seed) against the
served models and the server's limits, and queues an accentuation job on the render scheduler: the same queue,
priority, batching, previews, cancellation, disk cache and limits as renders. The job is then followed through
the render routes (``/api/renders/{id}``, ``…/image``, ``…/events``, ``DELETE``). The painting is named by index
and image id or by upload id, never by a path: its pixels come from the index's own table or the upload store.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated

import numpy as np
from fastapi import APIRouter, HTTPException, Query, Response
from PIL import Image
from pydantic import BaseModel, ConfigDict, Field, model_validator

from imagemachines.errors import UnitOutOfRange, UserError
from imagemachines.models import LOGITS
from imagemachines.serve.accent_spec import AccentSpec
from imagemachines.serve.api import links, problem_status
from imagemachines.serve.collection import ServedIndex, Workbench
from imagemachines.serve.resolve import Catalog
from imagemachines.serve.scheduler import QueueFull, Scheduler
from imagemachines.serve.schemas import ID_PATTERN, MAX_INDEX, MAX_SEED, Problem, RenderCreated, UnitSpec
from imagemachines.serve.uploads import UploadStore

ERRORS = {404: {"model": Problem}, 422: {"model": Problem}}
SUGGESTED_STRENGTHS = (0.5, 1.0, 2.0)  # the interface's choices: strong, the default, faint


class PaintingRef(BaseModel):
    """A painting of a served index (`index` and `image`), or an upload (`upload`)."""

    model_config = ConfigDict(extra="forbid")
    index: str | None = Field(None, max_length=200, description="A served index (`GET /api/indexes`).")
    image: int | None = Field(None, ge=0, le=2**62, description="An image id of that index.")
    upload: str | None = Field(None, pattern=ID_PATTERN, description="An upload id (`POST /api/uploads`).")

    @model_validator(mode="after")
    def _one_painting(self) -> PaintingRef:
        partial = (self.index is None) != (self.image is None)
        if partial or (self.index is not None) == (self.upload is not None):
            raise ValueError("name one painting: index and image, or upload")
        return self


class AccentRequest(BaseModel):
    """What to accentuate, in which painting. Omitted fields take the defaults (`GET /api/accentuations/config`)."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [
            {"model": "mobilenet_v2", "layer": "features.16", "unit": 150,
             "painting": {"index": "paintings-index", "image": 397}, "strength": 1.0},
            {"model": "mobilenet_v2", "layer": "logits", "unit": 903,
             "painting": {"upload": "0123456789abcdef0123456789abcdef"}},
        ]},
    )
    model: str = Field(max_length=200, description="A model this server serves (`GET /api/models`).")
    layer: str = Field(max_length=200, description="A layer of that model (`GET /api/models/{model}/layers`).")
    unit: Annotated[int, Field(ge=0, le=MAX_INDEX)] | UnitSpec = Field(
        description="A channel number (a class number for the `logits` layer), or {channel, x, y} for one neuron.")
    painting: PaintingRef
    strength: float = Field(1.0, ge=0, le=1e6, allow_inf_nan=False,
                            description="How hard the painting holds: 0 not at all, 1 the default, more is fainter.")
    reg_layer: str | None = Field(None, max_length=200, description="The regulariser's layer (default: per model).")
    size: int | None = Field(None, ge=1, le=100_000, description="The painting's longer side in pixels.")
    steps: int | None = Field(None, ge=1, le=1_000_000, description="Optimization steps.")
    seed: int = Field(0, ge=0, le=MAX_SEED, description="Random seed of the transforms.")


class AccentConfigOut(BaseModel):
    steps: int
    strength: float
    strengths: list[float]
    lr: float
    models: dict[str, dict] = Field(description="Per served model: its default `reg_layer` and `size`.")


def build_accentuate_router(catalog: Catalog, scheduler: Scheduler, indexes: Mapping[str, ServedIndex],
                            bench: Workbench, uploads: UploadStore) -> APIRouter:
    from imagemachines.vis.accentuation import DEFAULT_LR, DEFAULT_STEPS, DEFAULT_STRENGTH, painting_size
    from imagemachines.vis.regulariser import default_reg_layer

    router = APIRouter(tags=["accentuations"])

    def painting(model_name: str, ref: PaintingRef) -> tuple[Image.Image, str, str]:
        """(picture, digest, source) of the painting *ref* names; 404 for what this server does not have."""
        if ref.upload is not None:
            up = uploads.get(ref.upload)
            return up.image, up.id, f"upload/{up.id}"
        if ref.index not in indexes:
            known = ", ".join(indexes) or "none (start the server with --index DIR)"
            raise HTTPException(404, f"No index {ref.index!r} on this server. Indexes: {known}.")
        s = indexes[ref.index]
        if s.model.name != model_name:
            raise HTTPException(422, f"Index {s.id!r} belongs to model {s.model.name!r}, not {model_name!r}.")
        try:
            info = s.index.image(ref.image)
        except (KeyError, IndexError, ValueError, UserError):
            raise HTTPException(404, f"Index {s.id!r} has no image {ref.image} (it has {s.index.n_images}).") from None
        return bench.indexed_image(s, ref.image), info.sha256[:32], f"index/{s.id}/{ref.image}"

    def resolve(req: AccentRequest) -> tuple[AccentSpec, Image.Image]:
        model = catalog.model(req.model)
        unit = req.unit if isinstance(req.unit, UnitSpec) else UnitSpec(channel=req.unit)
        model.check_channel(req.layer, unit.channel)
        if (unit.x is None) != (unit.y is None):
            raise UserError("A neuron needs both x and y; give both, or neither for the whole channel.")
        if unit.x is not None and req.layer == LOGITS:
            raise UserError("Class logits have no position: drop x and y for the logits layer.")
        reg_layer = req.reg_layer or default_reg_layer(model)
        model.layer(reg_layer)
        size = req.size if req.size is not None else model.input_size
        steps = req.steps if req.steps is not None else DEFAULT_STEPS
        catalog.check_size_steps(size, steps, "accentuate")
        picture, digest, source = painting(req.model, req.painting)
        shape = painting_size(*picture.size, size)
        if unit.x is not None:
            grid = catalog.shapes[req.model].spatial(req.layer, shape)
            height, width = grid if grid is not None else (1, 1)
            if not (unit.x < width and unit.y < height):
                raise UnitOutOfRange(f"Neuron ({unit.x}, {unit.y}) is outside layer {req.layer!r}, whose outputs are "
                                     f"{width}×{height} for this painting at {size} px (use x 0..{width - 1}, "
                                     f"y 0..{height - 1}).")
        spec = AccentSpec(req.model, req.layer, unit.channel, unit.x, unit.y, digest, source, float(req.strength),
                          reg_layer, size, steps, req.seed)
        return spec, picture.resize((shape[1], shape[0]), Image.Resampling.LANCZOS)

    @router.post("/api/accentuations", status_code=202, response_model=RenderCreated,
                 responses={200: {"model": RenderCreated, "description": "Already made (cache hit)."}, **ERRORS,
                            429: {"model": Problem, "description": "Queue full; see Retry-After."}})
    def create_accentuation(req: AccentRequest, response: Response) -> RenderCreated:
        """Queue an accentuation of a unit in a painting (202), or return the existing one (200 once it is done).
        Follow it like a render: `GET /api/renders/{id}`, `…/image` (live previews), `…/events`, `DELETE`."""
        try:
            spec, picture = resolve(req)
        except UserError as exc:
            raise HTTPException(problem_status(exc), str(exc)) from None
        try:
            job = scheduler.submit(spec, np.asarray(picture, dtype=np.uint8))
        except QueueFull as exc:
            raise HTTPException(429, str(exc), headers={"Retry-After": str(exc.retry_after)}) from None
        state = scheduler.snapshot(job)["state"]
        if state == "done":
            response.status_code = 200
        response.headers["Location"] = links(job.id).self
        return RenderCreated(id=job.id, state=state, links=links(job.id))

    @router.get("/api/accentuations/config", response_model=AccentConfigOut)
    def accentuation_config(model: Annotated[str | None, Query(max_length=200)] = None) -> AccentConfigOut:
        """The defaults: steps, strength (and the interface's choices), learning rate, and per model the
        regulariser's layer and the size (the painting's longer side)."""
        names = [catalog.model(model).name] if model else list(catalog.models)
        return AccentConfigOut(
            steps=DEFAULT_STEPS, strength=DEFAULT_STRENGTH, strengths=list(SUGGESTED_STRENGTHS), lr=DEFAULT_LR,
            models={n: {"reg_layer": default_reg_layer(catalog.models[n]), "size": catalog.models[n].input_size}
                    for n in names})

    return router
