"""Renders in processes of their own, for the server on a CPU.

The server's scheduler calls its render function on a worker thread. On a CPU that costs twice: the same render
runs about 1.6 times slower on a secondary thread than on a process's main thread (PyTorch's OpenMP team for a
non-main thread), and every request the server answers meanwhile takes the GIL the render loop needs between its
operations. On a small CPU shared with the browser it costs more again: OpenMP's threads wait for each other at
every operation, so one of them paused by the browser stalls the others. :class:`RenderProcesses` is a drop-in
``render_fn`` that runs :func:`imagemachines.vis.render` on the main thread of child processes instead, and
splits a batch of units between them (image *i* of a batch is the same alone or in any batch), each child with
its share of the threads, so a grid of thumbnails needs no thread to wait for another.

The scheduler keeps its queue, jobs, previews and cache; the children only render. Progress comes back at most
every ``PROGRESS_SECONDS`` (previews at most every ``PREVIEW_SECONDS``), ``stop()`` is asked in the server
between messages and passed on through a shared flag, and a child that dies (killed, out of memory) fails only
the batch it was rendering: the next render starts a new one.
"""

from __future__ import annotations

import contextlib
import logging
import multiprocessing
import os
import signal
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from multiprocessing.connection import wait
from typing import Any

from imagemachines.errors import UserError
from imagemachines.models import LoadedModel

log = logging.getLogger("imagemachines.serve")

POLL_SECONDS = 0.1  # how often stop() is asked while the children are busy between messages
PROGRESS_SECONDS = 0.1  # a child reports its step at most this often (and always its last step)
PREVIEW_SECONDS = 0.3  # and sends preview images at most this often (and always at the end)


class RenderProcessDied(RuntimeError):
    """A render process ended in the middle of a render (killed, or out of memory)."""


def _child_main(conn, models: Mapping[str, LoadedModel], stop_flag) -> None:
    """A child: receive (model, units, threads, options), render, send progress and the result; exit on None/EOF."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl+C in a terminal reaches the whole group: the server decides
    if hasattr(signal, "pthread_sigmask"):
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})  # blocked by the server until now
    import torch

    from imagemachines.vis import render
    from imagemachines.vis.progress import RenderCancelled

    conn.send(("ready", os.getpid()))
    while True:
        try:
            request = conn.recv()
        except (EOFError, OSError):  # the server is gone
            return
        if request is None:
            return
        name, units, threads, options = request
        torch.set_num_threads(threads)
        try:
            result = render(models[name], units, on_progress=_reporter(conn), stop=stop_flag.is_set, **options)
        except RenderCancelled:
            conn.send(("cancelled",))
        except UserError as exc:
            conn.send(("user-error", type(exc).__name__, str(exc)))
        except Exception as exc:  # noqa: BLE001 - reported to the server, which fails the batch
            conn.send(("error", type(exc).__name__, str(exc)))
        else:
            conn.send(("done", list(result)))


def _reporter(conn) -> Callable:
    """The child's ``on_progress``: the step at most every PROGRESS_SECONDS, images at most every PREVIEW_SECONDS
    (8-bit), and always the last step with its images."""
    import torch

    sent = {"progress": 0.0, "images": 0.0}

    def on_progress(p) -> None:
        now, last = time.monotonic(), p.step >= p.total
        if not last and now - sent["progress"] < PROGRESS_SECONDS:
            return
        images = None
        if p.images is not None and (last or now - sent["images"] >= PREVIEW_SECONDS):
            images = p.images.mul(255).round().to(torch.uint8).numpy()
            sent["images"] = now
        sent["progress"] = now
        conn.send(("progress", p.step, p.total, p.activations, images))

    return on_progress


def _user_error(name: str, message: str) -> UserError:
    """The same UserError subclass as in the child (``UnitOutOfRange``…), else UserError itself."""
    from imagemachines import errors

    cls = getattr(errors, name, None)
    if isinstance(cls, type) and issubclass(cls, UserError):
        try:
            return cls(message)
        except TypeError:
            pass
    return UserError(message)


def _child_error(name: str, message: str) -> Exception:
    """A child's failure in the server: out of memory stays a MemoryError (the request can ask for less), anything
    else is a RuntimeError naming the child's exception."""
    text = f"{name}: {message}"
    return MemoryError(text) if name in ("MemoryError", "OutOfMemoryError") else RuntimeError(text)


def split(n: int, parts: int) -> list[range]:
    """*n* positions in at most *parts* contiguous, nearly equal, non-empty ranges."""
    parts = max(1, min(parts, n))
    bounds = [round(i * n / parts) for i in range(parts + 1)]
    return [range(a, b) for a, b in zip(bounds, bounds[1:], strict=False) if b > a]


class _Child:
    """One render process and the server's end of its pipe; :meth:`ready` waits for its first message."""

    def __init__(self, context, models: Mapping[str, LoadedModel], stop_flag):
        parent, child = context.Pipe()
        self.process = context.Process(target=_child_main, args=(child, models, stop_flag),
                                       name="imagemachines-render", daemon=True)
        # Ctrl+C in a terminal goes to the whole process group: the child must not die of it while it imports
        # PyTorch, before it can ignore it itself. A blocked signal stays blocked across exec, from any thread.
        masking = hasattr(signal, "pthread_sigmask")
        mask = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT}) if masking else None
        try:
            self.process.start()
        finally:
            if masking:
                signal.pthread_sigmask(signal.SIG_SETMASK, mask)
        child.close()
        self.conn = parent
        self.confirmed = False  # its "ready" message has been read
        self._reading = threading.Lock()  # the "ready" message is read once, by the renders or by a status request

    def started(self) -> bool:
        """Whether the child is ready now (its "ready" message has come), without waiting."""
        if not self.confirmed and self.alive and self.conn.poll(0):
            self.ready(0)
        return self.confirmed

    def looks_ready(self) -> bool:
        """:meth:`started` for other threads (a status request): never waits, never discards the child."""
        if self.confirmed or not self._reading.acquire(blocking=False):
            return self.confirmed
        try:
            if not self.confirmed and self.conn.poll(0):
                self.conn.recv()
                self.confirmed = True
        except (EOFError, OSError, ValueError):  # died or being discarded: not ready
            pass
        finally:
            self._reading.release()
        return self.confirmed

    def ready(self, timeout: float) -> None:
        with self._reading:
            self._ready(timeout)

    def _ready(self, timeout: float) -> None:
        if self.confirmed:
            return
        if not self.conn.poll(timeout):
            self.discard()
            raise RenderProcessDied(f"A render process did not start within {timeout:.0f} s.")
        try:
            self.conn.recv()
        except (EOFError, OSError):
            code = self.process.exitcode
            self.discard()
            raise RenderProcessDied(f"A render process failed to start (exit code {code}).") from None
        self.confirmed = True

    @property
    def alive(self) -> bool:
        return self.process.is_alive()

    def discard(self) -> None:
        if self.process.is_alive():
            self.process.kill()
        self.process.join(5)
        self.conn.close()


class RenderProcesses:
    """A ``render_fn`` for :class:`~imagemachines.serve.scheduler.Scheduler` that renders in child processes.

    *processes* children (default 2, at most *threads*) share *threads* CPU threads (default: this process's
    torch thread count): a batch of n units goes to min(n, processes) children, each with its share of the
    threads. *models* are sent to each child once, when it starts (:meth:`start`, or the first render). One
    render at a time; :meth:`close` ends the children (they also end when this process does).
    """

    def __init__(self, models: Mapping[str, LoadedModel], *, processes: int | None = None,
                 threads: int | None = None, start_timeout: float = 300.0):
        import torch

        self.models = dict(models)
        self.threads = max(1, threads or torch.get_num_threads())
        self.processes = max(1, min(processes or 2, self.threads))
        self.start_timeout = start_timeout
        self._context = multiprocessing.get_context("spawn")  # a fresh interpreter: no threads or locks forked
        self._children: list[_Child | None] = [None] * self.processes
        self._stop = self._context.Event()
        self._lock = threading.Lock()
        self.renders_here = 0  # renders done in this process while the children were starting

    def readiness(self) -> tuple[int, int]:
        """(processes ready to render, processes): until they are all ready, renders run in the server's thread.
        Safe to ask from any thread, also while a render runs."""
        ready = sum(c is not None and c.alive and c.looks_ready() for c in list(self._children))
        return ready, self.processes

    @property
    def pids(self) -> list[int]:
        return [c.process.pid for c in self._children if c is not None and c.alive]

    def start(self, wait: bool = True) -> None:
        """Start every child that is not running; with *wait*, until each has the models. Without, the first
        render waits for them (a server can answer its first pages while they import PyTorch)."""
        with self._lock:
            self._spawn(self.processes)
            if wait:
                self._start(self.processes)

    def _spawn(self, count: int) -> None:
        import torch.multiprocessing  # noqa: F401 - pickles the models' tensors through shared memory

        for i in range(count):
            child = self._children[i]
            if child is None or not child.alive:
                if child is not None:
                    child.discard()
                self._children[i] = _Child(self._context, self.models, self._stop)

    def _start(self, count: int) -> list[_Child]:
        self._spawn(count)  # start them all, then wait: they import PyTorch side by side
        children = self._children[:count]
        try:
            for child in children:
                child.ready(self.start_timeout)
        except RenderProcessDied:
            for i, child in enumerate(children):
                if not child.confirmed:
                    child.discard()
                    self._children[i] = None
            raise
        return children

    def close(self, timeout: float = 10.0) -> None:
        """End the children: stop a render in progress, ask each to exit, then make sure it has."""
        self._stop.set()
        with self._lock:
            for child in self._children:
                if child is not None:
                    with contextlib.suppress(OSError):
                        child.conn.send(None)
            for i, child in enumerate(self._children):
                if child is not None:
                    child.process.join(timeout)
                    child.discard()
                    self._children[i] = None

    def __call__(
        self,
        model: LoadedModel,
        units: Sequence,
        *,
        seed: int | Sequence[int] = 0,
        on_progress: Callable | None = None,
        stop: Callable[[], bool] | None = None,
        **options: Any,
    ) -> list:
        """Render like :func:`imagemachines.vis.render` (same arguments and result), in the children."""
        from imagemachines.vis.display import Renders

        mine = self.models.get(model.name)
        if mine is None:
            raise UserError(f"The render processes do not serve model {model.name!r}; they serve "
                            f"{', '.join(self.models)}.")
        if mine is not model:
            raise UserError(f"The render processes serve another model called {model.name!r} (weights "
                            f"{mine.weights_id}, not {model.weights_id}): give them the models the server serves.")
        from imagemachines.vis.engine import seeds_for

        units = list(units)
        seeds = seeds_for(seed, len(units))
        parts = split(len(units), self.processes) if units else [range(0)]
        with self._lock:
            self._spawn(len(parts))
            if not all(child.started() for child in self._children[: len(parts)]):
                # Still importing PyTorch (the first seconds after the server started): render here meanwhile,
                # so the first renders do not wait for them.
                from imagemachines.vis import render

                self.renders_here += 1
                return render(model, units, seed=seeds, on_progress=on_progress, stop=stop, **options)
            children = self._start(len(parts))
            self._stop.clear()
            share = max(1, self.threads // len(parts))
            try:
                for child, part in zip(children, parts, strict=True):
                    child.conn.send((model.name, [units[i] for i in part], share,
                                     {**options, "seed": [seeds[i] for i in part]}))
                results, failure = self._collect(children, on_progress, stop)
            except (EOFError, OSError) as exc:
                dead = [c for c in children if not c.alive]
                codes = ", ".join(str(c.process.exitcode) for c in dead) or "unknown"
                self._discard(children)  # a batch is all or nothing: the others' halves are discarded too
                log.error("a render process ended during a render (exit code %s)", codes)
                raise RenderProcessDied(f"A render process stopped during this render (exit code {codes}); "
                                        "the next render starts a new one.") from exc
            except BaseException:  # left before every child answered: its answer would reach the next render
                self._discard(children)
                raise
            if failure is not None:
                raise failure
            return Renders(results)

    def _discard(self, children: list[_Child]) -> None:
        """End *children* (the first ones) for good; the next render starts new ones."""
        for child in children:
            child.discard()
        self._children[: len(children)] = [None] * len(children)

    def _collect(self, children: list[_Child], on_progress, stop) -> tuple[list, BaseException | None]:
        """Wait for every child's answer, merging their progress into one report for the whole batch; the
        renders, or what went wrong (raised by the caller once every child has answered)."""
        from imagemachines.vis.progress import RenderCancelled

        latest: list[tuple | None] = [None] * len(children)  # (step, total, activations)
        pictures: list = [None] * len(children)  # each part's latest preview (uint8, N×3×H×W)
        results: list[list | None] = [None] * len(children)
        failure: BaseException | None = None
        pending = {child.conn: i for i, child in enumerate(children)}
        while pending:
            try:
                if stop is not None and not self._stop.is_set() and stop():
                    self._stop.set()
            except Exception as exc:  # noqa: BLE001 - raised once the children have answered (see below)
                failure = failure or exc
                self._stop.set()
            for conn in wait(list(pending), POLL_SECONDS):
                i = pending[conn]
                message = conn.recv()
                kind = message[0]
                if kind == "progress":
                    latest[i] = message[1:4]
                    fresh = message[4] is not None
                    if fresh:
                        pictures[i] = message[4]
                    if on_progress is not None and failure is None and all(p is not None for p in latest):
                        try:
                            on_progress(_merged(latest, pictures if fresh else None))
                        except Exception as exc:  # noqa: BLE001 - a callback failed: stop the children, drain
                            failure = exc  # their answers (the pipes must be empty for the next render), raise
                            self._stop.set()
                    continue
                del pending[conn]
                if kind == "done":
                    results[i] = message[1]
                    continue
                self._stop.set()  # one part failed: the others stop too
                if kind == "cancelled":
                    failure = failure or RenderCancelled()
                elif kind == "user-error":
                    failure = failure if failure is not None and not isinstance(failure, RenderCancelled) else \
                        _user_error(message[1], message[2])
                else:
                    failure = failure or _child_error(message[1], message[2])
        return [r for part in results for r in part or ()], failure


def _merged(latest: list[tuple], pictures: list | None):
    """One :class:`~imagemachines.vis.progress.Progress` for the batch from each part's latest report: the
    slowest part's step, every activation, and images (float in [0, 1]) when *pictures* has every part's."""
    import numpy as np
    import torch

    from imagemachines.vis.progress import Progress

    images = None
    if pictures is not None and all(p is not None for p in pictures):
        images = torch.from_numpy(np.concatenate(pictures)).float().div(255)
    return Progress(min(p[0] for p in latest), max(p[1] for p in latest), [a for p in latest for a in p[2]], images)
