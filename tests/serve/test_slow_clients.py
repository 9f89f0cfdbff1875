"""Slow and idle clients against a real uvicorn on 127.0.0.1 (the CLI's settings): connections that never finish
their request headers, or sit idle after a response, are closed; the server keeps answering meanwhile.
Bounded: 40 connections, a 1 s deadline, at most 15 s of waiting per socket."""

from __future__ import annotations

import socket
import time

import httpx
import pytest

from imagemachines.serve.app import create_app
from imagemachines.serve.server import ServerLimits
from tests.conftest import tiny_loaded_model
from tests.serve.conftest import live_server

CONNECTIONS = 40
LIMITS = ServerLimits(header_timeout=1.0, keep_alive=1.0)


def closed_by_server(sock: socket.socket, patience: float = 15.0) -> bool:
    """True when the server closes *sock* (EOF or reset) within *patience* seconds."""
    sock.settimeout(patience)
    try:
        while sock.recv(4096):
            pass
        return True
    except ConnectionResetError:
        return True
    except TimeoutError:
        return False


@pytest.fixture
def server(tmp_path):
    app = create_app({"tiny": tiny_loaded_model()}, cache_dir=tmp_path / "cache")
    with live_server(app, LIMITS) as url:
        yield url
    app.state.scheduler.close()


def connect(url: str) -> socket.socket:
    host, port = url.removeprefix("http://").split(":")
    return socket.create_connection((host, int(port)), timeout=5)


def test_half_sent_headers_are_cut_off_and_others_are_still_served(server):
    socks = []
    for n in range(CONNECTIONS):
        sock = connect(server)
        if n % 2:  # half of them send part of a request line, the rest nothing at all
            sock.sendall(b"GET /api/models HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ")
        socks.append(sock)
    assert httpx.get(f"{server}/api/models", timeout=10).status_code == 200  # not starved meanwhile
    started = time.monotonic()
    try:
        assert all(closed_by_server(s) for s in socks)
    finally:
        for s in socks:
            s.close()
    print(f"{CONNECTIONS} slow connections closed {time.monotonic() - started:.2f} s after the last opened")


def test_idle_keep_alive_connections_are_closed(server):
    sock = connect(server)
    try:
        sock.sendall(b"GET /api/models HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        assert sock.recv(65536).startswith(b"HTTP/1.1 200")
        assert closed_by_server(sock)
    finally:
        sock.close()


def test_unfinished_headers_beyond_the_bound_are_refused_at_once(server):
    sock = connect(server)
    try:
        sock.sendall(b"GET /api/models HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Big: " + b"a" * 40_000)  # never ends
        sock.settimeout(10)
        try:
            answer = sock.recv(4096)
        except ConnectionResetError:
            answer = b""
        assert answer == b"" or answer.split(b" ")[1].startswith(b"4"), answer[:80]
        assert closed_by_server(sock)
    finally:
        sock.close()
