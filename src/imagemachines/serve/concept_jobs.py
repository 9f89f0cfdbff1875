"""Concept studies for the server: computed in the background, one at a time, kept on disk, bounded.

A study of one class of a served index takes minutes on a CPU, so it is a job: ``submit`` answers at once with
its state, a worker thread computes the jobs one after the other (a bounded queue: :class:`QueueFull` beyond
it, :class:`Closing` while the server stops), ``cancel`` stops a queued or running job at its next painting, and
``snapshot`` reports the stage and the fraction done. A finished study is written to ``ROOT/results/KEY/``
(``concepts.json`` and the pictures of :func:`imagemachines.concepts.page.write_study`, plus ``view.json`` for
the interface), first into a temporary folder that is renamed into place, so a folder present is a complete
study; a restarted server finds it again. The results are kept under a size bound, least recently used first;
the activations the studies share are cached beside them under their own bound. The key is a hash of the index,
its weights, the class and the settings: no request text reaches the file system.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from imagemachines.errors import UserError

KEY_LENGTH = 32
RESULTS = "results"
ACTIVATIONS = "activations"
VIEW = "view.json"


class QueueFull(Exception):
    """Too many studies wait; try again after *retry_after* seconds."""

    def __init__(self, retry_after: int, waiting: int):
        super().__init__(f"{waiting} concept studies are waiting already (one runs at a time). Try again in about "
                         f"{retry_after} s.")
        self.retry_after = retry_after


class Closing(Exception):
    """The server is stopping; no new study starts."""

    retry_after = 30


class Cancelled(Exception):
    """Raised inside a running study when its job was cancelled."""


def is_key(text: str) -> bool:
    return len(text) == KEY_LENGTH and all(c in "0123456789abcdef" for c in text)


def job_key(parts: dict) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()[:KEY_LENGTH]


@dataclass
class ConceptJob:
    key: str
    index: str
    name: str                 # the class
    params: dict              # concepts, seed, …
    state: str = "queued"     # queued, running, done, failed, cancelled
    stage: str = "waiting"
    progress: float = 0.0
    error: str | None = None
    created: float = field(default_factory=time.time)
    cancel: threading.Event = field(default_factory=threading.Event, repr=False)
    work: Callable | None = field(default=None, repr=False)  # (job, folder, report) -> None: writes the study


class ConceptJobs:
    """The queue, the worker thread and the results folder (see the module doc)."""

    def __init__(self, root: Path, *, max_bytes: int = 1024**3, max_waiting: int = 4, seconds_per_job: int = 180):
        self.root = Path(root).expanduser()  # made with the first study: a server that never studies adds nothing
        self.max_bytes = int(max_bytes)
        self.max_waiting = int(max_waiting)
        self.seconds_per_job = int(seconds_per_job)
        self._jobs: OrderedDict[str, ConceptJob] = OrderedDict()
        self._queue: list[str] = []
        self._lock = threading.Lock()
        self._wake = threading.Condition(self._lock)
        self._closing = False
        self._thread: threading.Thread | None = None
        self._clean_leftovers()

    # -- results on disk --------------------------------------------------------------------------------------
    def folder(self, key: str) -> Path:
        if not is_key(key):  # keys come from job_key, never from a request; checked anyway
            raise ValueError(f"not a job key: {key!r}")
        return self.root / RESULTS / key

    def view(self, key: str) -> dict | None:
        """The finished study's ``view.json``, or None (marks it as just used)."""
        path = self.folder(key) / VIEW
        try:
            doc = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        with contextlib.suppress(OSError):
            os.utime(self.folder(key))
        return doc

    def file(self, key: str, relative: str) -> Path | None:
        """A picture of the finished study, *relative* as its own ``view.json`` names it (never request text)."""
        folder = self.folder(key).resolve()
        path = (folder / relative).resolve()
        return path if path.is_relative_to(folder) and path.is_file() else None

    def usage(self) -> int:
        return sum(p.stat().st_size for p in (self.root / RESULTS).rglob("*") if p.is_file())

    def _folders(self) -> list[Path]:
        return list((self.root / RESULTS).iterdir()) if (self.root / RESULTS).is_dir() else []

    def _trim(self, keep: str) -> None:
        """Delete the least recently used studies until the results are within their bound (never *keep*)."""
        folders = []
        for path in self._folders():
            if path.is_dir() and is_key(path.name):
                size = sum(p.stat().st_size for p in path.rglob("*") if p.is_file())
                folders.append((path.stat().st_mtime, path.name, size))
        total = sum(size for _, _, size in folders)
        for _, name, size in sorted(folders):
            if total <= self.max_bytes:
                break
            if name == keep:
                continue
            shutil.rmtree(self.root / RESULTS / name, ignore_errors=True)
            total -= size

    def _clean_leftovers(self) -> None:
        for path in self._folders():  # half-written studies of a server that was killed
            if path.name.startswith(".tmp-"):
                shutil.rmtree(path, ignore_errors=True)

    # -- jobs -------------------------------------------------------------------------------------------------
    def submit(self, key: str, index: str, name: str, params: dict, work: Callable) -> ConceptJob:
        """The job for *key*: a finished study, the queued or running one, or a new one queued now."""
        with self._lock:
            job = self._jobs.get(key)
            if job is not None and job.state in ("queued", "running"):
                return job
            if (self.folder(key) / VIEW).is_file():
                done = ConceptJob(key, index, name, params, state="done", stage="done", progress=1.0)
                self._remember(done)
                return done
            if self._closing:
                raise Closing("The server is stopping; start the study again after it restarts.")
            if len(self._queue) >= self.max_waiting:
                raise QueueFull(self.seconds_per_job * (len(self._queue) + 1), len(self._queue))
            job = ConceptJob(key, index, name, params, work=work)
            self._remember(job)
            self._queue.append(key)
            self._start()
            self._wake.notify_all()
            return job

    def _remember(self, job: ConceptJob) -> None:
        self._jobs[job.key] = job
        self._jobs.move_to_end(job.key)
        while len(self._jobs) > 256:  # finished jobs are on disk; forget the oldest records
            oldest = next(k for k, j in self._jobs.items() if j.state not in ("queued", "running"))
            del self._jobs[oldest]

    def get(self, key: str) -> ConceptJob | None:
        with self._lock:
            job = self._jobs.get(key)
        if job is None and is_key(key) and (self.folder(key) / VIEW).is_file():
            view = self.view(key) or {}
            job = ConceptJob(key, view.get("index", ""), view.get("class", ""), view.get("params", {}), state="done",
                             stage="done", progress=1.0)
        return job

    def queue_position(self, job: ConceptJob) -> int | None:
        with self._lock:
            return self._queue.index(job.key) + 1 if job.key in self._queue else None

    def cancel(self, key: str) -> ConceptJob | None:
        """Stop a queued job now, a running one at its next painting; a finished one stays."""
        with self._lock:
            job = self._jobs.get(key)
            if job is None or job.state not in ("queued", "running"):
                return job
            job.cancel.set()
            if job.state == "queued":
                self._queue.remove(key)
                job.state, job.stage = "cancelled", "cancelled"
            return job

    def counts(self) -> dict[str, int]:
        with self._lock:
            running = sum(j.state == "running" for j in self._jobs.values())
            return {"waiting": len(self._queue), "running": running}

    # -- the worker -------------------------------------------------------------------------------------------
    def _start(self) -> None:
        if self._thread is None or not self._thread.is_alive():
            self._thread = threading.Thread(target=self._work, name="concept-studies", daemon=True)
            self._thread.start()

    def _work(self) -> None:
        while True:
            with self._lock:
                while not self._queue and not self._closing:
                    self._wake.wait()
                if self._closing:
                    return
                job = self._jobs[self._queue.pop(0)]
                job.state, job.stage = "running", "starting"
            self._run(job)

    def _run(self, job: ConceptJob) -> None:
        tmp = self.root / RESULTS / f".tmp-{job.key}"
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.parent.mkdir(parents=True, exist_ok=True)

        def report(stage: str, fraction: float) -> None:
            if job.cancel.is_set() or self._closing:
                raise Cancelled
            job.stage, job.progress = stage, max(job.progress, min(float(fraction), 0.999))

        try:
            job.work(job, tmp, report)
            shutil.rmtree(self.folder(job.key), ignore_errors=True)
            os.replace(tmp, self.folder(job.key))
            job.state, job.stage, job.progress = "done", "done", 1.0
            self._trim(keep=job.key)
        except Cancelled:
            job.state, job.stage = "cancelled", "cancelled"
        except UserError as exc:
            job.state, job.error = "failed", str(exc)
        except Exception as exc:  # noqa: BLE001 - a failed study is reported on its job, the server goes on
            job.state, job.error = "failed", f"{type(exc).__name__}: {exc}"
        finally:
            shutil.rmtree(tmp, ignore_errors=True)

    def close(self, timeout: float = 30) -> None:
        """Stop: queued jobs are cancelled, the running one stops at its next painting."""
        with self._lock:
            self._closing = True
            for key in self._queue:
                self._jobs[key].state = "cancelled"
            self._queue.clear()
            self._wake.notify_all()
            thread = self._thread
        if thread is not None:
            thread.join(timeout)
