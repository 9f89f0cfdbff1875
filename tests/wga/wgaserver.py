"""A local WGA-like HTTP server on 127.0.0.1 with fault injection, for tests and the benchmark.

Images are served under ``/art/<id>.jpg`` (and ``/detail/``, ``/preview/``), files such as catalogs under
any registered path. Faults for an image are queued per id and used up one request at a time:

``500`` / ``503`` | ``429:N`` (Retry-After N s) | ``reset`` (TCP reset) | ``truncate`` (body cut short) |
``html`` (an HTML page with status 200) | ``corrupt`` (JPEG bytes cut, correct length) | ``404`` |
``sleep:S`` (answer after S s) | ``plain`` (the real image labelled text/plain, which is fine) |
``huge:N`` (the image followed by N zero bytes) | ``gzipbomb:N`` (the image and N zeros, gzip-encoded) |
``redirect:URL`` (302 to URL).
"""

from __future__ import annotations

import re
import socket
import struct
import threading
import time
from collections import Counter, defaultdict, deque
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

_IMAGE = re.compile(r"^/(art|detail|preview)/(.+)\.jpg$")


class _QuietServer(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request, client_address) -> None:
        """Clients that hang up (killed downloads) are expected; stay quiet about them."""
        import sys

        if not isinstance(sys.exc_info()[1], ConnectionError | TimeoutError):
            super().handle_error(request, client_address)


class WgaServer:
    """Serve *images* (id -> JPEG bytes) and *files* (path -> bytes); see the module docstring for faults."""

    def __init__(self, images: dict[str, bytes], files: dict[str, bytes] | None = None, latency: float = 0.0):
        self.images = images
        self.files = dict(files or {})
        self.latency = latency
        self.faults: dict[str, deque[str]] = defaultdict(deque)
        self.always: dict[str, str] = {}
        self.requests: Counter[str] = Counter()
        self.served: Counter[str] = Counter()
        self.times: dict[str, list[float]] = defaultdict(list)
        self.user_agents: set[str] = set()
        self.accept_encodings: set[str] = set()
        self.active = 0
        self.max_active = 0
        self._lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True  # else headers and body wait ~40 ms on delayed ACKs

            def log_message(self, *args) -> None:
                pass

            def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
                with server._lock:
                    server.active += 1
                    server.max_active = max(server.max_active, server.active)
                try:
                    server._handle(self)
                finally:
                    with server._lock:
                        server.active -= 1

        self.httpd = _QuietServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self._thread = threading.Thread(target=self.httpd.serve_forever, args=(0.05,), daemon=True)

    def __enter__(self) -> WgaServer:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    def inject(self, key: str, *faults: str) -> None:
        """Queue faults for the next requests of image *key*."""
        self.faults[key].extend(faults)

    # -- request handling -------------------------------------------------------------------------------
    def _send(self, h: BaseHTTPRequestHandler, status: int, body: bytes, ctype: str,
              headers: dict[str, str] | None = None, length: int | None = None) -> None:
        h.send_response(status)
        h.send_header("Content-Type", ctype)
        h.send_header("Content-Length", str(len(body) if length is None else length))
        for k, v in (headers or {}).items():
            h.send_header(k, v)
        h.end_headers()
        h.wfile.write(body)
        h.wfile.flush()

    def _handle(self, h: BaseHTTPRequestHandler) -> None:
        path = h.path.split("?", 1)[0]
        with self._lock:
            self.requests[path] += 1
            self.user_agents.add(h.headers.get("User-Agent", ""))
            self.accept_encodings.add(h.headers.get("Accept-Encoding", ""))
        if path in self.files:
            self._send(h, 200, self.files[path], "application/octet-stream")
            return
        m = _IMAGE.match(path)
        if not m:
            self._send(h, 404, b"not found", "text/plain")
            return
        key = m.group(2)
        with self._lock:
            self.times[key].append(time.monotonic())
            fault = self.faults[key].popleft() if self.faults[key] else self.always.get(key)
        if self.latency:
            time.sleep(self.latency)
        data = self.images.get(key)
        if fault and fault.startswith("sleep:"):
            time.sleep(float(fault.split(":")[1]))
            fault = None
        if data is None or fault == "404":
            self._send(h, 404, b"<html>Not Found</html>", "text/html")
        elif fault in ("500", "503"):
            self._send(h, int(fault), b"<html>Server Error</html>", "text/html")
        elif fault and fault.startswith("429:"):
            self._send(h, 429, b"slow down", "text/plain", {"Retry-After": fault.split(":")[1]})
        elif fault == "reset":
            h.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            h.connection.close()
            h.close_connection = True
        elif fault == "truncate":
            self._send(h, 200, data[: len(data) // 2], "image/jpeg", length=len(data))
            h.close_connection = True
        elif fault and fault.startswith("huge:"):
            self._send(h, 200, data + b"\x00" * int(fault.split(":")[1]), "image/jpeg")
        elif fault and fault.startswith("gzipbomb:"):
            import gzip

            packed = gzip.compress(data + b"\x00" * int(fault.split(":")[1]), compresslevel=9)
            self._send(h, 200, packed, "image/jpeg", {"Content-Encoding": "gzip"})
        elif fault and fault.startswith("redirect:"):
            self._send(h, 302, b"", "text/html", {"Location": fault.split(":", 1)[1]})
        elif fault == "html":
            self._send(h, 200, b"<html><body>Temporarily unavailable</body></html>", "text/html")
        elif fault == "corrupt":
            self._send(h, 200, data[: len(data) // 2] + b"\x00" * (len(data) - len(data) // 2), "image/jpeg")
        else:
            self._send(h, 200, data, "text/plain" if fault == "plain" else "image/jpeg")
            with self._lock:
                self.served[key] += 1
