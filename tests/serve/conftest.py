"""Fixtures for the server tests: apps on the tiny model, a live uvicorn server in a thread, an engine spy."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import uvicorn
from fastapi.testclient import TestClient

from imagemachines.serve.app import create_app
from imagemachines.serve.engines import run_engine
from imagemachines.serve.schemas import Limits
from imagemachines.serve.server import ServerLimits, uvicorn_options
from tests.conftest import tiny_loaded_model

FAST = {"size": 32, "steps": 4}  # a render of the tiny model that takes a few milliseconds
BASE_URL = "http://127.0.0.1:8000"  # a Host name the server answers (loopback)


class EngineSpy:
    """Wraps the real ``render``: records every call's units and size, and can hold a call until released,
    either before it starts (``hold()``) or after its first reported step (``hold(at_step=1)``).

    While held it polls the scheduler's ``stop()`` (so a cancel or a preemption ends the wait) unless
    ``hold(heed_stop=False)``: then nothing can happen to the held call until :meth:`release`."""

    def __init__(self) -> None:
        self.calls: list[dict] = []
        self.gate = threading.Event()
        self.gate.set()
        self.entered = threading.Event()
        self.at_step: int | None = None
        self.only_size: int | None = None
        self.only_units = None
        self.heed_stop = True

    def hold(self, at_step: int | None = None, only_size: int | None = None, heed_stop: bool = True,
             only_units=None) -> None:
        """Hold the next calls (of side *only_size*, and whose units *only_units* accepts, when given) until
        :meth:`release`."""
        self.at_step, self.only_size, self.heed_stop, self.only_units = at_step, only_size, heed_stop, only_units
        self.entered.clear()
        self.gate.clear()

    def release(self) -> None:
        self.gate.set()

    def _wait(self, stop) -> None:
        self.entered.set()
        while not self.gate.wait(0.01):
            if self.heed_stop and stop():
                return

    def __call__(self, model, units, **kw):
        self.calls.append({"units": [str(u) for u in units], "size": kw["size"], "seeds": list(kw["seed"])})
        if (self.only_size is not None and kw["size"] != self.only_size) or (
                self.only_units is not None and not self.only_units(units)):
            return run_engine(model, units, **kw)
        if self.at_step is None:
            self._wait(kw["stop"])
        else:
            report = kw["on_progress"]

            def on_progress(progress):
                report(progress)
                if progress.step == self.at_step:
                    self._wait(kw["stop"])

            kw["on_progress"] = on_progress
        return run_engine(model, units, **kw)


@pytest.fixture
def spy() -> EngineSpy:
    return EngineSpy()


@pytest.fixture
def make_client(tmp_path: Path, spy: EngineSpy):
    """``make_client(**create_app kwargs)`` -> a started TestClient on the tiny model (closed at the end)."""
    clients = []

    def make(**kw) -> TestClient:
        kw.setdefault("cache_dir", tmp_path / "cache")
        kw.setdefault("render_fn", spy)
        kw.setdefault("limits", Limits(max_size=128, max_steps=64))
        models = kw.pop("models", None) or {"tiny": tiny_loaded_model()}
        client = TestClient(create_app(models, **kw), base_url=BASE_URL)
        client.__enter__()
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.__exit__(None, None, None)


@pytest.fixture
def client(make_client) -> TestClient:
    return make_client()


def wait_for(client, render_id: str, states=("done", "failed", "cancelled"), timeout: float = 30.0) -> dict:
    """Poll a render until it reaches one of *states*."""
    deadline = time.monotonic() + timeout
    while True:
        body = client.get(f"/api/renders/{render_id}").json()
        if body["state"] in states:
            return body
        if time.monotonic() > deadline:
            raise AssertionError(f"render {render_id} still {body['state']} after {timeout} s")
        time.sleep(0.02)


@contextmanager
def live_server(app, limits: ServerLimits = ServerLimits()) -> Iterator[str]:
    """Run *app* with uvicorn (the CLI's connection limits) on a free 127.0.0.1 port in a thread; yields the base
    URL."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", timeout_graceful_shutdown=2,
                                           **uvicorn_options(limits)))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(15)
        sock.close()


@pytest.fixture
def browser():
    """A headless Chromium (Debian's, driven by Playwright) for the browser tests."""
    from tests.serve.browsing import ARGS, CHROMIUM, WAIT_MS

    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        plain_new_page = b.new_page

        def new_page(*args, **kwargs):
            page = plain_new_page(*args, **kwargs)
            page.set_default_timeout(WAIT_MS)
            return page

        b.new_page = new_page
        yield b
        b.close()
