"""The REST routes: models and layers, renders (create, status, image, events, cancel), the seed's route."""

from __future__ import annotations

import asyncio
import time
from typing import Annotated

from fastapi import APIRouter, HTTPException, Query, Request, Response
from fastapi import Path as PathParam
from fastapi.responses import FileResponse, StreamingResponse

from imagemachines.errors import UnknownLayer, UnknownModel, UserError
from imagemachines.models import LOGITS
from imagemachines.serve.cache import is_key
from imagemachines.serve.images import download_name, placeholder_png
from imagemachines.serve.resolve import Catalog
from imagemachines.serve.scheduler import Job, QueueFull, Scheduler
from imagemachines.serve.schemas import (
    TERMINAL,
    ConfigOut,
    LayerOut,
    Links,
    MethodOut,
    ModelOut,
    Problem,
    RenderBatchCreated,
    RenderBatchRequest,
    RenderCreated,
    RenderRequest,
    RenderStatus,
    SeedActivation,
)

ERRORS = {404: {"model": Problem}, 422: {"model": Problem}}
OCTAVES = 10
OCTAVE_SCALE = 1.2


def problem_status(exc: UserError) -> int:
    """404 for a well-formed request naming a model or layer that is not here, else 422."""
    return 404 if isinstance(exc, (UnknownModel, UnknownLayer)) else 422


def links(job_id: str) -> Links:
    base = f"/api/renders/{job_id}"
    return Links(self=base, image=f"{base}/image", events=f"{base}/events", download=f"{base}/image?download=1")


def octave_size(final: int, octave: int) -> int:
    """The seed's size ladder: octave n of 10 is final / 1.2^(10 - n)."""
    return round(final / OCTAVE_SCALE ** (OCTAVES - octave))


class CountedStream(StreamingResponse):
    """A streaming response that gives its slot back however it ends (finished, client gone, error)."""

    def __init__(self, content, release, **kw):
        super().__init__(content, **kw)
        self._release = release

    async def __call__(self, scope, receive, send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            self._release()


def build_router(catalog: Catalog, scheduler: Scheduler) -> APIRouter:
    router = APIRouter()
    streams = {"open": 0}  # event streams being served (all on the event loop: no lock needed)

    def find(job_id: str) -> Job:
        job = scheduler.get(job_id) if is_key(job_id) else None
        if job is None:
            raise HTTPException(404, f"No render with id {job_id!r}. Ids come from POST /api/renders.")
        return job

    def status(job: Job) -> RenderStatus:
        snap = scheduler.snapshot(job)
        spec = job.spec
        total = snap["total"]
        done = snap["state"] == "done"
        return RenderStatus(
            id=job.id, state=snap["state"], model=spec.model, layer=spec.layer, unit=spec.unit_text,
            method=spec.method, size=spec.size, steps=spec.steps, seed=spec.seed, step=snap["step"],
            progress=1.0 if done else (snap["step"] / total if total else 0.0), activation=snap["activation"],
            queue_position=scheduler.queue_position(job), error=snap["error"], fault=snap["fault"],
            recipe=snap["recipe"],
            links=links(job.id),
        )

    def submit(req: RenderRequest) -> Job:
        spec = catalog.resolve(req)
        try:
            return scheduler.submit(spec)
        except QueueFull as exc:
            raise HTTPException(429, str(exc), headers={"Retry-After": str(exc.retry_after)}) from None

    # -- models -------------------------------------------------------------------------------------------
    @router.get("/api/config", response_model=ConfigOut, tags=["models"])
    def config() -> ConfigOut:
        """Methods with their defaults, the server's limits and its default model."""
        return ConfigOut(default_model=catalog.default_model, limits=catalog.limits.as_dict(),
                         methods=[MethodOut(name=k, defaults=v) for k, v in catalog.methods.items()])

    @router.get("/api/models", response_model=list[ModelOut], tags=["models"])
    def models() -> list[ModelOut]:
        """The models this server serves (requests can name only these)."""
        return [
            ModelOut(name=name, weights_id=m.weights_id, source=m.source, device=m.device.type,
                     input_size=m.input_size,
                     classes=len(m.class_names) if m.class_names else None, layers=len(m.layers()),
                     default=name == catalog.default_model)
            for name, m in catalog.models.items()
        ]

    @router.get("/api/models/{model}/layers", response_model=list[LayerOut], responses=ERRORS, tags=["models"])
    def layers(model: str, all: Annotated[bool, Query(description="Every module, not only blocks.")] = False):  # noqa: A002
        """A model's layers in forward order: name, channels and spatial size at the model's input size."""
        try:
            m = catalog.model(model)
        except UnknownModel as exc:
            raise HTTPException(404, str(exc)) from None
        out = []
        for layer in m.layers(all=all):
            is_class = layer.name == LOGITS
            out.append(LayerOut(name=layer.name, type=layer.type, kind="class" if is_class else "channel",
                                channels=layer.channels, height=layer.height, width=layer.width,
                                labels=list(m.class_names) if is_class and m.class_names else None))
        return out

    @router.get("/api/status", tags=["models"])
    def server_status() -> dict[str, int | bool]:
        """Queue length, running renders, counters since start, open event streams, the disk cache's size, and
        whether the render processes are ready (`warming_up` while they start: renders then run more slowly, in
        the server's own thread)."""
        readiness = getattr(scheduler.render_fn, "readiness", None)
        ready, processes = readiness() if callable(readiness) else (0, 0)
        return {**scheduler.counts(), "streams": streams["open"], **scheduler.cache.usage(),
                "render_processes": processes, "render_processes_ready": ready, "warming_up": ready < processes}

    # -- renders ------------------------------------------------------------------------------------------
    @router.post("/api/renders", status_code=202, response_model=RenderCreated, tags=["renders"],
                 responses={200: {"model": RenderCreated, "description": "Already rendered (cache hit)."},
                            **ERRORS, 429: {"model": Problem, "description": "Queue full; see Retry-After."}})
    def create_render(req: RenderRequest, response: Response) -> RenderCreated:
        """Queue a render (202), or return the existing one for the same request (200 once it is done)."""
        job = submit(req)
        state = scheduler.snapshot(job)["state"]
        if state == "done":
            response.status_code = 200
        response.headers["Location"] = links(job.id).self
        return RenderCreated(id=job.id, state=state, links=links(job.id))

    @router.post("/api/renders/batch", status_code=202, response_model=RenderBatchCreated, tags=["renders"],
                 responses={**ERRORS, 429: {"model": Problem, "description": "Queue full; see Retry-After."}})
    def create_renders(req: RenderBatchRequest) -> RenderBatchCreated:
        """Queue many units of one layer with one recipe at once (a grid of thumbnails), so they are rendered
        together. Each unit is answered as `POST /api/renders` would; units beyond the queue's room are null,
        with `retry_after`. Any invalid unit fails the whole request (422) naming it."""
        specs = []
        for i, one in enumerate(req.requests()):
            try:
                specs.append(catalog.resolve(one))
            except UserError as exc:
                raise HTTPException(problem_status(exc), f"units[{i}]: {exc}") from None
        try:
            jobs, retry_after = scheduler.submit_many(specs)
        except QueueFull as exc:
            raise HTTPException(429, str(exc), headers={"Retry-After": str(exc.retry_after)}) from None
        if all(job is None for job in jobs):
            raise HTTPException(429, f"The render queue is full. Try again in about {retry_after} s.",
                                headers={"Retry-After": str(retry_after)})
        created = [None if job is None else RenderCreated(id=job.id, state=scheduler.snapshot(job)["state"],
                                                            links=links(job.id)) for job in jobs]
        return RenderBatchCreated(renders=created, retry_after=retry_after)

    @router.get("/api/renders", response_model=list[RenderStatus], responses=ERRORS, tags=["renders"])
    def many_status(ids: Annotated[str, Query(max_length=33 * 200,
                                              description="Comma-separated render ids (at most 200).")]):
        """The status of several renders at once (unknown ids are left out)."""
        wanted = [i for i in ids.split(",") if i]
        if len(wanted) > 200:
            raise HTTPException(422, "Ask for at most 200 ids at once.")
        jobs = [scheduler.get(i) for i in dict.fromkeys(wanted) if is_key(i)]
        return [status(j) for j in jobs if j is not None]

    @router.get("/api/renders/{render_id}", response_model=RenderStatus, responses=ERRORS, tags=["renders"])
    def get_render(render_id: str) -> RenderStatus:
        """State, progress, steps done, activation and queue position of one render."""
        return status(find(render_id))

    @router.delete("/api/renders/{render_id}", response_model=RenderStatus, tags=["renders"],
                   responses={**ERRORS, 409: {"model": Problem}})
    def cancel_render(render_id: str) -> RenderStatus:
        """Cancel a queued or running render; its queue slot is free at once."""
        job = find(render_id)
        scheduler.cancel(job.id)
        if scheduler.snapshot(job)["state"] == "done":
            raise HTTPException(409, "This render is already finished; there is nothing to cancel.")
        return status(job)

    @router.get("/api/renders/{render_id}/image", tags=["renders"],
                responses={200: {"content": {"image/png": {}}, "description": "PNG"}, **ERRORS,
                           409: {"model": Problem}})
    def render_image(render_id: str, download: bool = False):
        """The final PNG (with its recipe as PNG text) when done; the latest preview while running."""
        job = find(render_id)
        state = scheduler.snapshot(job)["state"]
        headers = {"X-Render-State": state}
        if state == "done":
            png = scheduler.cache.png(job.id)
            if png is None:
                raise HTTPException(404, "The finished image is no longer in the cache (was the cache folder "
                                         "cleared?). POST the request again to render it anew.")
            headers["Cache-Control"] = "public, max-age=31536000, immutable"
            if download:
                headers["Content-Disposition"] = f'attachment; filename="{download_name(job.spec)}"'
            return FileResponse(png, media_type="image/png", headers=headers)
        if state in ("failed", "cancelled"):
            why = scheduler.snapshot(job)["error"] or "it was cancelled"
            raise HTTPException(409, f"This render has no image: {why}. POST the request again to retry.")
        headers["Cache-Control"] = "no-store"
        preview = scheduler.preview_png(job)
        if preview is None:
            return Response(placeholder_png(job.spec.size), media_type="image/png", headers=headers)
        headers["X-Render-Step"] = str(preview[0])
        return Response(preview[1], media_type="image/png", headers=headers)

    @router.get("/api/renders/{render_id}/events", tags=["renders"],
                responses={200: {"content": {"text/event-stream": {}}, "description": "Server-sent events"},
                           **ERRORS, 503: {"model": Problem, "description": "Too many streams; see Retry-After."}})
    async def render_events(render_id: str, request: Request):
        """Server-sent events: `progress` while queued or running, then one `done`, `failed` or `cancelled`.

        At most the server's `max_streams` are open at once; beyond that the answer is 503 with Retry-After
        (poll `GET /api/renders/{id}` instead)."""
        job = find(render_id)
        if streams["open"] >= catalog.limits.max_streams:
            raise HTTPException(503, f"Too many event streams are open ({streams['open']}). Try again later, or "
                                     "poll GET /api/renders/{id}.", headers={"Retry-After": "5"})
        streams["open"] += 1

        def release() -> None:
            streams["open"] -= 1

        async def stream():
            last, beat = None, time.monotonic()
            while True:
                current = status(job)
                mark = (scheduler.snapshot(job)["version"], current.queue_position, current.state)
                if mark != last:
                    last, beat = mark, time.monotonic()
                    event = current.state if current.state in TERMINAL else "progress"
                    yield f"event: {event}\ndata: {current.model_dump_json()}\n\n"
                    if current.state in TERMINAL:
                        return
                elif time.monotonic() - beat > 15:
                    beat = time.monotonic()
                    yield ": keep-alive\n\n"
                if await request.is_disconnected():
                    return
                await asyncio.sleep(0.1)

        return CountedStream(stream(), release, media_type="text/event-stream",
                             headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"})

    # -- the seed's route ---------------------------------------------------------------------------------
    @router.get("/activations/{layer}/{neuron}/{octave}", status_code=202, response_model=SeedActivation,
                responses={**ERRORS, 403: {"model": Problem}, 429: {"model": Problem}}, tags=["seed"])
    def seed_activation(
        layer: str,
        neuron: Annotated[int, PathParam(ge=0, le=1_000_000, description="Channel of the layer.")],
        octave: Annotated[int, PathParam(ge=1, le=OCTAVES, description="1 (smallest) to 10 (final size).")],
        model: Annotated[str | None, Query(max_length=200)] = None,
        seed: Annotated[int, Query(ge=0, le=2**31 - 1)] = 0,
    ) -> SeedActivation:
        """The seed's route: answers at once with the URL of an image (classic method) that fills in."""
        final = int(catalog.methods["classic"]["size"])
        req = RenderRequest(model=model or catalog.default_model, layer=layer, unit=neuron, method="classic",
                            size=octave_size(final, octave), seed=seed)
        job = submit(req)
        return SeedActivation(url=links(job.id).image, id=job.id, state=scheduler.snapshot(job)["state"],
                              octave=octave, size=job.spec.size, links=links(job.id))

    return router

