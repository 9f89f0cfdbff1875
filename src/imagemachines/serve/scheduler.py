"""The render scheduler: one worker thread owns the device, a bounded priority queue feeds it.

Larger images are served first (the seed rendered high resolutions first), then arrival order. Pending
requests that differ only in their unit and seed (same model, layer, method, size, steps) are rendered together
in one engine call, so ten people clicking ten units cost about one render (more than one call's worth are
shared out evenly between as few calls as the limit allows). Previews live in memory only while a
job runs; finished images go to the disk cache and are answered from there.
"""

from __future__ import annotations

import itertools
import logging
import math
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import torch

from imagemachines.errors import UserError
from imagemachines.models import LoadedModel
from imagemachines.serve.cache import RenderCache, render_key
from imagemachines.serve.schemas import TERMINAL, Limits

log = logging.getLogger("imagemachines.serve")


class UnitOfSpec:
    """The unit a job's spec names by its fields ``layer``, ``channel``, ``x`` and ``y`` (renders and
    accentuations alike)."""

    layer: str
    channel: int
    x: int | None
    y: int | None

    @property
    def unit_text(self) -> str:
        pos = f"@{self.x},{self.y}" if self.x is not None else ""
        return f"{self.layer}:{self.channel}{pos}"

    def unit(self):
        from imagemachines.vis import Unit

        return Unit(self.layer, self.channel, self.x, self.y)


@dataclass(frozen=True)
class RenderSpec(UnitOfSpec):
    """A fully resolved render request (defaults filled in): what the cache key is computed from."""

    model: str
    layer: str
    channel: int
    x: int | None
    y: int | None
    method: str
    size: int
    steps: int
    seed: int

    @property
    def batch_key(self) -> tuple:
        """Requests with equal batch keys can share one engine call."""
        return (self.model, self.layer, self.method, self.size, self.steps)

    def as_dict(self) -> dict:
        return asdict(self)

    def engine_call(self, specs: list[RenderSpec], payload: Any) -> tuple[list, dict]:
        """The engine's arguments for a batch of *specs* (all with this batch key): the units, the shared options."""
        return [s.unit() for s in specs], {"method": self.method, "size": self.size, "steps": self.steps}


def spec_from_request(request: dict):
    """The spec stored with a cached result: a render's, or an accentuation's; TypeError for anything else."""
    from imagemachines.serve.accent_spec import KIND, AccentSpec

    if request.get("kind") == KIND:
        return AccentSpec.from_request(request)
    return RenderSpec(**request)


@dataclass(eq=False)
class Job:
    """One render request and where it stands. Guarded by the scheduler's lock."""

    id: str
    spec: RenderSpec
    seq: int
    state: str = "queued"
    step: int = 0
    total: int = 0  # engine steps in all (classic: steps x octaves); known once the render starts
    activation: float | None = None
    error: str | None = None
    fault: str | None = None  # a failed job's: "server" (a fault of the server) or "request" (see failure())
    recipe: dict | None = None
    preview: np.ndarray | None = field(default=None, repr=False)  # HxWx3 uint8, running jobs only
    preview_step: int = 0
    preview_png: tuple[int, bytes] | None = field(default=None, repr=False)
    version: int = 0
    preempted: int = 0  # times this job was put back in the queue for a larger one
    created: float = field(default_factory=time.time)
    payload: Any = field(default=None, repr=False)  # what the engine needs beyond the spec (a painting); kept
    # only while the job waits or runs

    def touch(self) -> None:
        self.version += 1


class QueueFull(Exception):
    """The queue is at its bound; try again after *retry_after* seconds."""

    def __init__(self, retry_after: int, queued: int, message: str | None = None):
        super().__init__(message or
                         f"The render queue is full ({queued} requests waiting). Try again in about {retry_after} s.")
        self.retry_after = retry_after


RenderFn = Callable[..., list]


def _default_render(*args, **kwargs):
    from imagemachines.serve.engines import run_engine

    return run_engine(*args, **kwargs)


def _is_cancelled(exc: BaseException) -> bool:
    from imagemachines.vis import RenderCancelled

    return isinstance(exc, RenderCancelled)


def _out_of_memory(exc: BaseException) -> bool:
    return isinstance(exc, (MemoryError, torch.OutOfMemoryError))


def failure(exc: BaseException) -> tuple[str, str]:
    """What a failed render's status says, and whose fault it is: ``"request"`` when asking differently helps (a
    bad unit, an image too large for the device's memory; the advice says what to change), else ``"server"``: a
    fault of the server (a bug, a render process that died), which the request cannot avoid. Trying the same
    request again may then work, and no advice about the request is given."""
    if isinstance(exc, UserError):
        return str(exc), "request"
    if _out_of_memory(exc):
        return (f"The device ran out of memory for this render ({type(exc).__name__}: {exc}). Try a smaller size, "
                "or start the server with a smaller --max-batch."), "request"
    return (f"The server failed while rendering ({type(exc).__name__}: {exc}). This is a fault of the server, not "
            "of the request: try again, and report it if it keeps failing."), "server"


def even_share(waiting: int, cap: int) -> int:
    """How many of *waiting* equal requests the next engine call takes, at most *cap*: as many calls as the cap
    needs, each as large as the others (36 with a cap of 16: 12 + 12 + 12, not 16 + 16 + 4, whose small last
    call costs nearly as much per unit as a full one on a CPU)."""
    return math.ceil(waiting / math.ceil(waiting / cap)) if waiting else 0


def preview_every(steps: int, device_type: str) -> int:
    """Engine steps between preview images: often enough to watch the image grow, rarely enough to cost
    nothing. A CPU step takes long, so every step there (the first preview then comes after one step)."""
    return 1 if device_type == "cpu" else max(1, min(8, steps // 32))


class Scheduler:
    """Queue, batch and run renders on one worker thread; see the module docstring."""

    def __init__(
        self,
        models: Mapping[str, LoadedModel],
        cache: RenderCache,
        *,
        limits: Limits = Limits(),
        render_fn: RenderFn | None = None,
        batch_window: float = 0.02,
        preempt: bool = True,
    ):
        self.models = dict(models)
        self.cache = cache
        self.limits = limits
        self.render_fn = render_fn or _default_render
        self.batch_window = batch_window
        self.preempt = preempt
        self._preempting = False
        self._cond = threading.Condition()
        self._jobs: OrderedDict[str, Job] = OrderedDict()
        self._queued: dict[str, Job] = {}
        self._running: list[Job] = []
        self._seq = itertools.count()
        self._thread: threading.Thread | None = None
        self._closing = False
        self._batch_seconds = 2.0  # running estimate, for Retry-After
        self.stats = {"batches": 0, "units": 0, "failed": 0, "cancelled": 0, "cache_hits": 0, "preempted": 0}

    # -- requests -----------------------------------------------------------------------------------------
    def key(self, spec: RenderSpec) -> str:
        return render_key(self.models[spec.model].weights_id, spec.as_dict())

    def submit(self, spec: RenderSpec, payload: Any = None) -> Job:
        """The job for *spec*: an existing one (queued, running or cached) or a newly queued one (with *payload*,
        what the engine needs beyond the spec)."""
        with self._cond:
            job = self._submit(spec, payload)
            self._cond.notify_all()
            return job

    def submit_many(self, specs: Sequence[RenderSpec]) -> tuple[list[Job | None], int | None]:
        """Jobs for *specs*, in order, queued at once (so one engine call can take them together); None for
        each that did not fit in the queue, and then the seconds to wait before asking again for those."""
        jobs: list[Job | None] = []
        retry_after = None
        with self._cond:
            for spec in specs:
                try:
                    jobs.append(self._submit(spec))
                except QueueFull as exc:
                    if self._closing:
                        raise
                    jobs.append(None)
                    retry_after = exc.retry_after
            self._cond.notify_all()
        return jobs, retry_after

    def _submit(self, spec: RenderSpec, payload: Any = None) -> Job:
        key = self.key(spec)
        if self._closing:
            raise QueueFull(5, 0, "The server is shutting down; try again in a few seconds.")
        job = self._jobs.get(key)
        if job is not None and (job.state in ("queued", "running") or
                                (job.state == "done" and self.cache.png(key))):
            self._jobs.move_to_end(key)
            return job
        recipe = self.cache.recipe(key)
        if recipe is not None:
            self.stats["cache_hits"] += 1
            return self._remember(self._done_job(key, spec, recipe))
        if len(self._queued) >= self.limits.max_queue:
            raise QueueFull(self._retry_after(), len(self._queued))
        job = Job(key, spec, next(self._seq), payload=payload)
        self._queued[key] = job
        self._remember(job)
        self._ensure_worker()
        return job

    def get(self, job_id: str) -> Job | None:
        """The job *job_id*, from memory or (finished renders of earlier sessions) from the disk cache."""
        with self._cond:
            job = self._jobs.get(job_id)
            if job is not None:
                return job
            stored = self.cache.stored(job_id)
            if stored is None:
                return None
            recipe, request = stored
            try:
                spec = spec_from_request(request)
            except TypeError:
                return None
            if spec.model not in self.models or self.key(spec) != job_id:
                return None  # rendered by a model (or weights) this server does not serve
            return self._remember(self._done_job(job_id, spec, recipe))

    def cancel(self, job_id: str) -> Job | None:
        """Cancel a queued or running job (a queued one leaves the queue at once). Finished jobs stay."""
        with self._cond:
            job = self._jobs.get(job_id)
            if job is None or job.state in TERMINAL:
                return job
            self._queued.pop(job_id, None)
            job.state, job.preview, job.preview_png, job.payload = "cancelled", None, None, None
            job.touch()
            self.stats["cancelled"] += 1
            self._cond.notify_all()
            return job

    def queue_position(self, job: Job) -> int | None:
        """1 for the next job to run; None unless queued."""
        with self._cond:
            if job.state != "queued":
                return None
            mine = (-job.spec.size, job.seq)
            return 1 + sum((-j.spec.size, j.seq) < mine for j in self._queued.values())

    def snapshot(self, job: Job) -> dict[str, Any]:
        """A consistent copy of the job's public fields."""
        with self._cond:
            return {"id": job.id, "state": job.state, "step": job.step, "total": job.total,
                    "activation": job.activation, "error": job.error, "fault": job.fault,
                    "recipe": job.recipe, "version": job.version}

    def preview_png(self, job: Job) -> tuple[int, bytes] | None:
        """(step, PNG bytes) of the latest preview of a running job, encoded once per preview."""
        with self._cond:
            if job.preview is None:
                return None
            if job.preview_png is not None and job.preview_png[0] == job.preview_step:
                return job.preview_png
            array, step = job.preview, job.preview_step
        from io import BytesIO

        from PIL import Image

        buf = BytesIO()
        Image.fromarray(array).save(buf, format="PNG", compress_level=1)
        encoded = (step, buf.getvalue())
        with self._cond:
            if job.preview_step == step and job.preview is not None:
                job.preview_png = encoded
        return encoded

    def counts(self) -> dict[str, int]:
        with self._cond:
            return {"queued": len(self._queued), "running": len(self._running), "known": len(self._jobs),
                    **self.stats}

    # -- lifecycle ----------------------------------------------------------------------------------------
    def open(self) -> None:
        """Take work again after :meth:`close` (an app's lifespan may start more than once, as in tests)."""
        with self._cond:
            self._closing = False

    def close(self, timeout: float = 30.0) -> None:
        """Stop taking work, cancel what is queued or running, and wait for the worker to finish."""
        with self._cond:
            self._closing = True
            for job in list(self._queued.values()):
                job.state, job.payload = "cancelled", None
                job.touch()
            self._queued.clear()
            for job in self._running:
                job.state, job.payload = "cancelled", None
                job.touch()
            self._cond.notify_all()
            thread = self._thread
        if thread is not None:
            thread.join(timeout)

    def _ensure_worker(self) -> None:
        if self._thread is None or not self._thread.is_alive():
            self._thread = threading.Thread(target=self._work, name="imagemachines-render", daemon=True)
            self._thread.start()

    # -- internals (call with the lock held) --------------------------------------------------------------
    def _done_job(self, key: str, spec: RenderSpec, recipe: dict) -> Job:
        activation = recipe.get("activation")
        return Job(key, spec, next(self._seq), state="done", recipe=recipe,
                   activation=float(activation) if isinstance(activation, (int, float)) else None)

    def _remember(self, job: Job) -> Job:
        self._jobs[job.id] = job
        self._jobs.move_to_end(job.id)
        while len(self._jobs) > self.limits.max_jobs:
            oldest = next((k for k, j in self._jobs.items() if j.state in TERMINAL), None)
            if oldest is None:
                break
            del self._jobs[oldest]
        return job

    def _retry_after(self) -> int:
        batches = math.ceil((len(self._queued) + 1) / max(1, self.limits.max_batch))
        return int(min(300, max(1, math.ceil(self._batch_seconds * batches))))

    def _take_batch(self) -> list[Job]:
        if not self._queued:
            return []
        first = min(self._queued.values(), key=lambda j: (-j.spec.size, j.seq))
        same = sorted((j for j in self._queued.values() if j.spec.batch_key == first.spec.batch_key),
                      key=lambda j: j.seq)
        batch = same[: even_share(len(same), self.limits.batch_for(first.spec.size))]
        for job in batch:
            del self._queued[job.id]
            job.state = "running"
            job.touch()
        self._running = batch
        return batch

    # -- the worker ---------------------------------------------------------------------------------------
    def _work(self) -> None:
        fresh = True  # started by a request that just arrived: like a wake from idle, others may be on their way
        while True:
            with self._cond:
                idle, fresh = fresh or not self._queued, False
                while not self._queued and not self._closing:
                    self._cond.wait()
                if self._closing:
                    return
            if idle and self.batch_window > 0:
                time.sleep(self.batch_window)  # let simultaneous clicks arrive and join one batch
            with self._cond:
                batch = self._take_batch()
            if batch:
                started = time.monotonic()
                try:
                    self._render(batch)
                except Exception as exc:  # noqa: BLE001 - the worker must outlive any one batch
                    log.exception("render batch failed")
                    self._finish(batch, "failed", *failure(exc))
                finally:
                    with self._cond:
                        self._running = []
                        self._batch_seconds = 0.7 * self._batch_seconds + 0.3 * (time.monotonic() - started)
                        self._cond.notify_all()

    def _render(self, batch: list[Job]) -> None:
        spec = batch[0].spec
        model = self.models[spec.model]

        def on_progress(progress) -> None:
            array = None
            if progress.images is not None:
                images = progress.images.detach().float().clamp(0, 1).mul(255).round()
                array = images.to("cpu", dtype=torch.uint8).permute(0, 2, 3, 1).numpy()
            with self._cond:
                for i, job in enumerate(batch):
                    if job.state != "running":
                        continue
                    job.step, job.total = int(progress.step), int(progress.total)
                    if i < len(progress.activations):
                        job.activation = float(progress.activations[i])
                    if array is not None:
                        job.preview, job.preview_step = array[i].copy(), job.step
                    job.touch()

        def stop() -> bool:
            with self._cond:
                if self._closing or all(job.state != "running" for job in batch):
                    return True
                self._preempting = self._should_preempt(batch)
                return self._preempting

        try:
            payload = next((job.payload for job in batch if job.payload is not None), None)  # one batch key: one
            units, options = spec.engine_call([job.spec for job in batch], payload)      # painting for all
            renders = self.render_fn(
                model, units, **options, seed=[job.spec.seed for job in batch], on_progress=on_progress, stop=stop,
                preview_every=preview_every(spec.steps, model.device.type),
            )
        except Exception as exc:  # noqa: BLE001 - every failure must end in a job state, never a dead worker
            if _is_cancelled(exc) and self._preempting:
                self._requeue(batch)
            elif _is_cancelled(exc):
                self._finish(batch, "cancelled", None)
            elif isinstance(exc, UserError) and len(batch) > 1:
                for job in batch:  # one bad unit must not fail its batch-mates: render them one by one
                    if job.state == "running":
                        self._render([job])
            else:
                if not isinstance(exc, UserError):
                    log.exception("render of %d unit(s) failed", len(batch))
                self._finish(batch, "failed", *failure(exc))
            return
        with self._cond:
            self.stats["batches"] += 1
            self.stats["units"] += len(batch)
        for job, result in zip(batch, renders, strict=False):
            if job.state != "running":
                continue
            try:
                recipe = self.cache.put(job.id, result, job.spec.as_dict())
            except OSError as exc:
                self._finish([job], "failed", f"Could not write the render cache ({exc}); "
                                              "check free disk space and the --cache-dir permissions.",
                             "server")
                continue
            with self._cond:
                if job.state == "running":
                    job.state, job.recipe = "done", recipe
                    job.step = job.total = max(job.total, job.step)
                    job.activation = float(result.activation)
                    job.preview, job.preview_png, job.payload = None, None, None
                    job.touch()
        missing = [job for job in batch[len(renders):] if job.state == "running"]
        self._finish(missing, "failed", "The engine returned no image for this unit (a fault of the server); "
                                        "try again.", "server")

    def _should_preempt(self, batch: list[Job]) -> bool:
        """Stop a small render early in its run when a larger one waits (the seed: big images first).

        Only in the first half of a batch's steps, and at most twice per job, so small renders still finish.
        """
        if not self.preempt or not self._queued:
            return False
        lead = next((j for j in batch if j.state == "running"), None)
        if lead is None or lead.preempted >= 2 or (lead.total and lead.step * 2 > lead.total):
            return False
        return max(j.spec.size for j in self._queued.values()) > lead.spec.size

    def _requeue(self, batch: list[Job]) -> None:
        """Put a preempted batch back in the queue, keeping its place in arrival order."""
        with self._cond:
            self._preempting = False
            for job in batch:
                if job.state == "running":
                    job.state, job.step, job.preempted = "queued", 0, job.preempted + 1
                    job.preview, job.preview_png = None, None
                    job.touch()
                    self._queued[job.id] = job
                    self.stats["preempted"] += 1

    def _finish(self, jobs: list[Job], state: str, error: str | None, fault: str | None = None) -> None:
        with self._cond:
            for job in jobs:
                if job.state == "running":
                    job.state, job.error, job.fault = state, error, fault
                    job.preview, job.preview_png, job.payload = None, None, None
                    job.touch()
                    self.stats["failed" if state == "failed" else "cancelled"] += 1
