"""Resumable, polite image download for the artworks a query selects.

Each image goes to ``<data>/images/<store>/<id>.jpg`` only after it decoded completely, through a temporary
name and a rename; the manifest records it afterwards. A rerun first reconciles manifest and disk (a file
that was renamed but not yet recorded when the process died is adopted, not fetched again), then fetches
what is still pending or failed.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from imagemachines.errors import UserError
from imagemachines.wga import images
from imagemachines.wga.manifest import Item, Manifest
from imagemachines.wga.paths import manifest_db, store_dir, store_name
from imagemachines.wga.urls import check_variant, image_relpath, image_url


@dataclass
class DownloadOptions:
    """How to download: politeness, retries, variant and size."""

    concurrency: int = 4
    rate: float = 2.0  # request starts per second, all workers together; 0 = unlimited
    variant: str = "art"
    max_side: int | None = None
    retries: int = 5
    backoff: float = 1.0
    timeout: float = 30.0
    max_retry_after: float = 300.0
    retry_missing: bool = False
    verify: bool = False
    seed: int | None = None
    max_bytes: int = 50_000_000  # per image; WGA's largest are a few MB
    max_pixels: int = images.MAX_PIXELS
    allow_redirect_hosts: tuple[str, ...] = ()  # besides the base URL's host

    def validate(self) -> None:
        check_variant(self.variant)
        if self.concurrency < 1 or self.concurrency > 64:
            raise UserError(f"--concurrency {self.concurrency} is out of range: use 1 to 64 (a few is polite).")
        if self.rate < 0:
            raise UserError(f"--rate {self.rate} is negative: give requests per second, or 0 for no limit.")
        if self.max_side is not None and self.max_side < 16:
            raise UserError(f"--max-side {self.max_side} is too small: use at least 16 pixels, or leave it out.")
        if self.retries < 0 or self.backoff < 0 or self.timeout <= 0:
            raise UserError("--retries and --backoff must be >= 0 and --timeout > 0.")
        if self.max_bytes < 1024:
            raise UserError(f"--max-bytes {self.max_bytes} is too small: images need at least a few kB.")


@dataclass
class DownloadReport:
    """What a run did, and where the selection stands afterwards."""

    store: str
    selected: int
    fetched: int = 0
    adopted: int = 0
    already: int = 0
    bytes: int = 0
    elapsed: float = 0.0
    partials_removed: int = 0
    counts: Counter = field(default_factory=Counter)
    reasons: Counter = field(default_factory=Counter)
    stopped: str | None = None  # why the run stopped early (the server cannot be reached)
    interrupted: bool = False  # Ctrl-C

    @property
    def failed(self) -> int:
        return self.counts.get("failed", 0)


@contextlib.contextmanager
def exclusive(root: Path) -> Iterator[None]:
    """One download per data dir at a time (advisory lock; no-op where ``fcntl`` is unavailable)."""
    root.mkdir(parents=True, exist_ok=True)
    try:
        import fcntl
    except ImportError:  # Windows
        yield
        return
    with open(root / ".download.lock", "w") as fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise UserError(f"another `imagemachines wga download` is using {root}; wait for it to finish "
                            f"(or stop it) and run again.") from None
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def reconcile(manifest: Manifest, store: str, folder: Path, ids: list[str], options: DownloadOptions,
              report: DownloadReport) -> list[Item]:
    """Make the manifest agree with the disk for *ids*; return the items still to fetch."""
    report.partials_removed = images.remove_partials(folder)
    todo_states = ("pending", "failed", "missing") if options.retry_missing else ("pending", "failed")
    todo = []
    for item in manifest.items(store, ids):
        try:
            kept = _reconcile_one(manifest, store, folder / item.path, item, todo_states, options, report)
        except OSError:  # a name the filesystem refuses, say: the fetch will record why
            kept = item.state in todo_states
        if kept:
            todo.append(item)
    return todo


def _reconcile_one(manifest: Manifest, store: str, path: Path, item: Item, todo_states: tuple[str, ...],
                   options: DownloadOptions, report: DownloadReport) -> bool:
    """Bring one item's manifest state in line with its file; True when it must be fetched."""
    if item.state == "ok":
        size = path.stat().st_size if path.is_file() else None
        if size != item.bytes or (options.verify and images.file_digest(path)[1] != item.sha256):
            manifest.set_state(store, item.id, "pending", reason="file changed or vanished on disk")
            return True
        report.already += 1
        return False
    if item.state not in todo_states:
        return False
    if path.is_file():  # renamed into place, then the process died before recording it
        try:
            images.decode_check(path, options.max_pixels)
        except images.NotAnImage:
            return True
        nbytes, digest = images.file_digest(path)
        manifest.set_state(store, item.id, "ok", nbytes=nbytes, sha256=digest)
        report.adopted += 1
        return False
    return True


async def _run(todo: list[Item], folder: Path, manifest: Manifest, store: str, base: str,
               options: DownloadOptions, report: DownloadReport, on_done: Callable[[str], None]) -> None:
    import httpx

    from imagemachines.wga.fetch import RateLimiter, RetryPolicy, fetch, redirect_guard
    from imagemachines.wga.reachability import ReachabilityWatch
    from imagemachines.wga.terms import user_agent

    limiter = RateLimiter(options.rate)
    policy = RetryPolicy(options.retries, options.backoff, max_retry_after=options.max_retry_after)
    rng = random.Random(options.seed)
    queue: asyncio.Queue[Item] = asyncio.Queue()
    for item in todo:
        queue.put_nowait(item)

    def check(part: Path) -> tuple[int, str]:
        return images.prepare_file(part, options.max_side, options.max_pixels)

    async def one(client: httpx.AsyncClient, item: Item) -> str:
        path = folder / item.path
        part = images.part_path(path)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            out = await fetch(client, image_url(item.id, base, options.variant), limiter, policy, check, rng,
                              part, options.max_bytes)
            if out.state == "ok":
                await asyncio.to_thread(images.commit, part, path)
                nbytes, digest = out.data
                manifest.set_state(store, item.id, "ok", nbytes=nbytes, sha256=digest, attempts=out.attempts)
                report.fetched += 1
                report.bytes += nbytes
            else:
                manifest.set_state(store, item.id, out.state, reason=out.reason, attempts=out.attempts)
            return out.state
        except Exception as exc:  # noqa: BLE001 - one bad item (a name too long, a full disk) must not stop the rest
            reason = f"{type(exc).__name__}: {exc}"
            manifest.set_state(store, item.id, "failed", reason=reason[:300])
            return "failed"
        finally:
            with contextlib.suppress(OSError):
                part.unlink(missing_ok=True)

    async def worker(client: httpx.AsyncClient) -> None:
        while True:
            try:
                item = queue.get_nowait()
            except asyncio.QueueEmpty:
                return
            on_done(await one(client, item))

    limits = httpx.Limits(max_connections=options.concurrency, max_keepalive_connections=options.concurrency)
    same_host = redirect_guard(base, options.allow_redirect_hosts)

    async def guard(request: httpx.Request) -> None:
        same_host(request)

    watch = ReachabilityWatch(httpx.AsyncHTTPTransport(limits=limits))
    async with httpx.AsyncClient(headers={"User-Agent": user_agent(), "Accept-Encoding": "identity"},
                                 timeout=options.timeout, transport=watch, follow_redirects=True,
                                 event_hooks={"request": [guard]}) as client:
        workers = asyncio.gather(*(worker(client) for _ in range(min(options.concurrency, len(todo)) or 1)))
        await watch.guard(workers, base)


def download(root: Path, ids: list[str], base: str, options: DownloadOptions,
             progress: bool = True) -> DownloadReport:
    """Download the images of *ids* into the data dir *root*; resumable, see the module docstring."""
    options.validate()
    if not ids:
        raise UserError("the query selects no artwork, so there is nothing to download; check it with "
                        "`imagemachines wga query QUERY --count`.")
    store = store_name(options.variant, options.max_side)
    folder = store_dir(root, store)
    report = DownloadReport(store, len(ids))
    started = time.monotonic()
    with exclusive(root), Manifest(manifest_db(root)) as manifest:
        manifest.add(store, [(i, image_url(i, base, options.variant), image_relpath(i)) for i in ids])
        todo = reconcile(manifest, store, folder, ids, options, report)
        if todo:
            from tqdm import tqdm

            bar = tqdm(total=len(ids), initial=len(ids) - len(todo), unit="img", desc=f"wga {store}",
                       disable=not progress, dynamic_ncols=True)
            tally: Counter = Counter()

            def on_done(state: str) -> None:
                tally[state] += 1
                bar.update(1)
                bar.set_postfix(failed=tally["failed"], missing=tally["missing"], refresh=False)

            from imagemachines.wga.reachability import ServerUnreachable

            try:
                asyncio.run(_run(todo, folder, manifest, store, base, options, report, on_done))
            except ServerUnreachable as exc:
                report.stopped = str(exc)
            except KeyboardInterrupt:
                report.interrupted = True
            finally:
                bar.close()
        report.counts = manifest.counts(store, ids)
        report.reasons = manifest.reasons(store, ids)
    report.elapsed = time.monotonic() - started
    return report
