"""One polite HTTP fetch with retries: a shared rate limit, ``Retry-After``, exponential backoff with jitter.

The body streams to a file with a size cap (counted after any Content-Encoding is undone, so a compressed bomb
stops at the cap too), and redirects are followed only to the hosts allowed (:func:`redirect_guard`).
"""

from __future__ import annotations

import asyncio
import email.utils
import random
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx

from imagemachines.wga.images import NotAnImage

RETRY_STATUS = {408, 425, 429, 500, 502, 503, 504}
MISSING_STATUS = {404, 410}
CHUNK = 256 * 1024


class TooLarge(Exception):
    """A body larger than the cap: not retried (it would be as large again)."""


class ForeignRedirect(Exception):
    """A redirect to a host that is not allowed: not followed, not retried."""


def redirect_guard(base_url: str, extra_hosts: Iterable[str] = ()) -> Callable[[httpx.Request], None]:
    """An httpx request hook (for a sync client; wrap it for an async one) refusing any request, a redirect in
    practice, to a host other than *base_url*'s or *extra_hosts*."""
    allowed = {urlsplit(base_url).hostname or "", *(h.lower() for h in extra_hosts)}

    def check(request: httpx.Request) -> None:
        if request.url.host not in allowed:
            raise ForeignRedirect(f"redirected to another host ({request.url.host}); not followed "
                                  f"(allow it with --allow-redirect-host {request.url.host})")

    return check


@dataclass
class RetryPolicy:
    retries: int = 5  # extra attempts after the first
    backoff: float = 1.0  # seconds before the first retry; doubles each time
    max_backoff: float = 60.0
    max_retry_after: float = 300.0

    def delay(self, attempt: int, rng: random.Random) -> float:
        """Exponential backoff with jitter: between half and all of ``backoff * 2**(attempt-1)`` (capped)."""
        d = min(self.max_backoff, self.backoff * 2 ** (attempt - 1))
        return d / 2 + rng.uniform(0, d / 2)


class RateLimiter:
    """At most *rate* request starts per second across all workers (0 = unlimited); can be paused."""

    def __init__(self, rate: float):
        self.interval = 1.0 / rate if rate > 0 else 0.0
        self._next = 0.0
        self._paused_until = 0.0
        self._lock = asyncio.Lock()

    def pause(self, seconds: float) -> None:
        """Hold every worker back for *seconds* (a server's ``Retry-After``)."""
        self._paused_until = max(self._paused_until, time.monotonic() + seconds)

    async def wait(self) -> None:
        async with self._lock:
            start = max(time.monotonic(), self._next, self._paused_until)
            self._next = start + self.interval
        while (delay := max(start, self._paused_until) - time.monotonic()) > 0:
            await asyncio.sleep(delay)
            start = max(start, self._paused_until)


def retry_after_seconds(value: str | None) -> float | None:
    """Seconds from a ``Retry-After`` header (delta seconds or an HTTP date); None when absent or unreadable."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


@dataclass
class Outcome:
    """The end of one item's fetch: ``ok`` with the stored bytes, ``missing`` or ``failed`` with a reason."""

    state: str
    data: Any = None  # what ``check`` returned for the stored body
    reason: str | None = None
    attempts: int = 0


async def stream_to(resp: httpx.Response, dest: Path, max_bytes: int) -> int:
    """Write *resp*'s (decoded) body to *dest*; :class:`TooLarge` past *max_bytes*. Returns the byte count."""
    declared = resp.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > max_bytes and "content-encoding" not in resp.headers:
        raise TooLarge(f"larger than --max-bytes {max_bytes:,} (Content-Length {int(declared):,})")
    n = 0
    with open(dest, "wb") as out:
        async for chunk in resp.aiter_bytes(CHUNK):
            n += len(chunk)
            if n > max_bytes:
                raise TooLarge(f"larger than --max-bytes {max_bytes:,}")
            out.write(chunk)
    return n


async def fetch(client: httpx.AsyncClient, url: str, limiter: RateLimiter, policy: RetryPolicy,
                check: Callable[[Path], Any], rng: random.Random, dest: Path, max_bytes: int) -> Outcome:
    """GET *url* into the file *dest* (at most *max_bytes*) until ``check(dest)`` accepts it (in a thread), it is
    missing, or retries run out. *dest* is left behind only on success."""
    reason = ""
    for attempt in range(1, policy.retries + 2):
        wait = None
        await limiter.wait()
        try:
            async with client.stream("GET", url) as resp:
                status = resp.status_code
                if status == 200:
                    await stream_to(resp, dest, max_bytes)
        except (TooLarge, ForeignRedirect) as exc:
            dest.unlink(missing_ok=True)
            return Outcome("failed", reason=str(exc), attempts=attempt)
        except httpx.TimeoutException:
            reason = "timeout"
        except httpx.TransportError as exc:
            reason = f"connection error ({type(exc).__name__})"
        else:
            if status == 200:
                try:
                    return Outcome("ok", await asyncio.to_thread(check, dest), attempts=attempt)
                except NotAnImage as exc:
                    reason = f"not an image (Content-Type {resp.headers.get('content-type', '?')}): {exc}"
            elif status in MISSING_STATUS:
                return Outcome("missing", reason=f"HTTP {status}", attempts=attempt)
            elif status in RETRY_STATUS or status >= 500:
                reason = f"HTTP {status}"
                wait = retry_after_seconds(resp.headers.get("retry-after"))
                if wait is not None:
                    wait = min(wait, policy.max_retry_after)
                    limiter.pause(wait)
            else:
                return Outcome("failed", reason=f"HTTP {status}", attempts=attempt)
        dest.unlink(missing_ok=True)
        if attempt <= policy.retries:
            await asyncio.sleep(wait if wait is not None else policy.delay(attempt, rng))
    return Outcome("failed", reason=reason, attempts=policy.retries + 1)
