"""The HTTP server's settings against slow or idle clients: uvicorn with a deadline for request headers.

uvicorn closes idle keep-alive connections (``timeout_keep_alive``) and bounds open connections plus running
requests (``limit_concurrency``, then 503), but it waits for a request's headers forever, so a client that sends
half a request line holds its connection open. :class:`HeaderDeadlineH11` closes a connection whose request
headers are not complete within ``header_timeout`` seconds of its first byte (or of the connection opening).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from types import FrameType

import h11
import uvicorn
from uvicorn.protocols.http.h11_impl import H11Protocol

MAX_HEADER_BYTES = 16 * 1024  # a browser's request headers are < 8 KiB


@dataclass(frozen=True)
class ServerLimits:
    """Connection limits of the HTTP server (see the module docstring)."""

    header_timeout: float = 10.0  # seconds to send complete request headers
    keep_alive: float = 5.0  # seconds an idle keep-alive connection stays open
    max_connections: int = 256  # open connections + running requests; more get 503


class HeaderDeadlineH11(H11Protocol):
    """uvicorn's h11 protocol, plus a deadline for each request's headers."""

    header_timeout = ServerLimits.header_timeout

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        self._deadline: asyncio.TimerHandle | None = None
        super().connection_made(transport)
        self._arm()

    def _arm(self) -> None:
        if self._deadline is None:
            self._deadline = self.loop.call_later(self.header_timeout, self._too_slow)

    def _disarm(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _too_slow(self) -> None:
        self._deadline = None
        if self.conn.their_state is h11.IDLE and not self.transport.is_closing():
            self.transport.close()

    def data_received(self, data: bytes) -> None:
        if self.conn.their_state is h11.IDLE:
            self._arm()  # a new request begins (or continues): its headers are due in header_timeout
        super().data_received(data)
        if self.conn.their_state is not h11.IDLE:
            self._disarm()  # headers complete

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)


def uvicorn_options(limits: ServerLimits = ServerLimits()) -> dict:
    """Keyword arguments for ``uvicorn.run`` / ``uvicorn.Config`` that apply *limits*."""
    protocol = type("HeaderDeadline", (HeaderDeadlineH11,), {"header_timeout": limits.header_timeout})
    return {"http": protocol, "timeout_keep_alive": limits.keep_alive, "limit_concurrency": limits.max_connections,
            "h11_max_incomplete_event_size": MAX_HEADER_BYTES}


class QuietExitServer(uvicorn.Server):
    """uvicorn's server, but Ctrl+C (or SIGTERM) shuts it down without raising the signal again afterwards.

    uvicorn re-raises a captured signal once it has shut down, and that KeyboardInterrupt can race the lifespan
    task and print a traceback (a known uvicorn issue). Here the signal is remembered in :attr:`stopped_by`
    and the caller decides how to exit.
    """

    stopped_by: int | None = None

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        super().handle_exit(sig, frame)
        self.stopped_by = sig
        self._captured_signals.clear()


def run_server(app, **options) -> int | None:
    """Serve *app* with uvicorn (``options`` as for ``uvicorn.run``) until Ctrl+C or SIGTERM; the signal that
    stopped it, if any."""
    server = QuietExitServer(uvicorn.Config(app, **options))
    server.run()
    return server.stopped_by
