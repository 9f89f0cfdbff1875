"""One polite HTTP fetch with retries: a shared rate limit, ``Retry-After``, exponential backoff with jitter."""

from __future__ import annotations

import asyncio
import email.utils
import random
import time
from dataclasses import dataclass

import httpx

from imagemachines.wga.images import NotAnImage

RETRY_STATUS = {408, 425, 429, 500, 502, 503, 504}
MISSING_STATUS = {404, 410}


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
    data: bytes | None = None
    reason: str | None = None
    attempts: int = 0


async def fetch(client: httpx.AsyncClient, url: str, limiter: RateLimiter, policy: RetryPolicy,
                check, rng: random.Random) -> Outcome:
    """GET *url* until ``check(body)`` accepts it (in a thread), it is missing, or retries run out."""
    reason = ""
    for attempt in range(1, policy.retries + 2):
        wait = None
        await limiter.wait()
        try:
            resp = await client.get(url)
        except httpx.TimeoutException:
            reason = "timeout"
        except httpx.TransportError as exc:
            reason = f"connection error ({type(exc).__name__})"
        else:
            status = resp.status_code
            if status == 200:
                try:
                    return Outcome("ok", await asyncio.to_thread(check, resp.content), attempts=attempt)
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
        if attempt <= policy.retries:
            await asyncio.sleep(wait if wait is not None else policy.delay(attempt, rng))
    return Outcome("failed", reason=reason, attempts=policy.retries + 1)
