"""Noticing that the image server cannot be reached at all, so that a download stops in seconds, not hours.

Every image gets its retries; without a network each would fail after minutes of backoff, for hours. A
:class:`ReachabilityWatch` sits between the HTTP client and its transport and counts connection attempts that
fail before any answer (refused, name not resolved, connect timeout). When the last
:data:`UNREACHABLE_AFTER` attempts all failed that way, :meth:`ReachabilityWatch.guard` stops the download.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable
from typing import TypeVar

import httpx

from imagemachines.errors import UserError

UNREACHABLE_AFTER = 8  # consecutive connection failures, over all workers, that stop a download
CONNECTION_FAILURES = (httpx.ConnectError, httpx.ConnectTimeout)
T = TypeVar("T")


class ServerUnreachable(UserError):
    """No connection to the image server could be made at all."""


def unreachable_message(base: str, failures: int, last_error: str) -> str:
    return (f"Cannot reach the image server {base}: the last {failures} connection attempts all failed "
            f"({last_error}). Check that this machine is online (and any proxy settings) and that the address "
            "is right; to use a mirror, give --base-url URL (or set IMAGEMACHINES_WGA_BASE_URL). Nothing is "
            "lost: run the same command again when the server can be reached.")


class ReachabilityWatch(httpx.AsyncBaseTransport):
    """A transport wrapper that notices when every recent connection attempt failed."""

    def __init__(self, inner: httpx.AsyncBaseTransport, after: int | None = None):
        self.inner = inner
        self.after = after if after is not None else UNREACHABLE_AFTER
        self.failures = 0  # consecutive, since the last answer of any kind
        self.last_error = ""
        self.unreachable = asyncio.Event()

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        try:
            response = await self.inner.handle_async_request(request)
        except CONNECTION_FAILURES as exc:
            self.failures += 1
            self.last_error = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
            if self.failures >= self.after:
                self.unreachable.set()
            raise
        except httpx.TransportError:  # connected, then the exchange failed: the server is there
            self.failures = 0
            raise
        self.failures = 0
        return response

    async def aclose(self) -> None:
        await self.inner.aclose()

    async def guard(self, work: Awaitable[T], base: str) -> T:
        """Await *work*; cancel it and raise :class:`ServerUnreachable` as soon as the server is unreachable."""
        task = asyncio.ensure_future(work)
        alarm = asyncio.ensure_future(self.unreachable.wait())
        try:
            await asyncio.wait({task, alarm}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            alarm.cancel()
        if task.done():
            return task.result()
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        raise ServerUnreachable(unreachable_message(base, self.failures, self.last_error))
