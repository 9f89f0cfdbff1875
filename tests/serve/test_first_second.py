"""The real `imagemachines serve` (a process of its own, the genuine MobileNetV2 weights) answers the renders it is
asked for as soon as it answers at all: through the API and through the interface in Chromium.

Issue 18: every render asked for in a fresh server's first seconds failed ("'module' object is not callable": the
render processes' module shadowed the exported render() that the server uses while they start). These tests ask
while the server still says it is warming up, and no render may fail."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

from tests.serve.browsing import CHROMIUM

ROOT = Path(__file__).resolve().parents[2]
TERMINAL = ("done", "failed", "cancelled")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextmanager
def fresh_server(tmp_path: Path) -> Iterator[tuple[str, httpx.Client, dict]]:
    """`imagemachines serve mobilenet_v2` with an empty cache, from this checkout; yields its URL, a client and
    its /api/status taken right after /api/models first answered (polled every 20 ms)."""
    port = _free_port()
    log = tmp_path / "serve.log"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT / "src"), str(ROOT),
                                                                      os.environ.get("PYTHONPATH")]))}
    with open(log, "w") as out:
        proc = subprocess.Popen([sys.executable, "-m", "imagemachines", "serve", "mobilenet_v2", "--port", str(port),
                                 "--cache-dir", str(tmp_path / "cache"), "--device", "cpu"],
                                env=env, stdout=out, stderr=subprocess.STDOUT, cwd=tmp_path)
    base = f"http://127.0.0.1:{port}"
    try:
        with httpx.Client(base_url=base, timeout=30) as client:
            deadline = time.monotonic() + 240  # PyTorch and the model load first
            while True:
                try:
                    if client.get("/api/models").status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                assert proc.poll() is None, f"the server stopped:\n{log.read_text()[-3000:]}"
                assert time.monotonic() < deadline, f"the server did not answer:\n{log.read_text()[-3000:]}"
                time.sleep(0.02)
            yield base, client, client.get("/api/status").json()
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    assert "Traceback" not in log.read_text(), log.read_text()[-3000:]


def _warming_up(status: dict) -> None:
    """What these tests are about: the render processes were not ready yet, so the server rendered itself."""
    assert status["warming_up"] and status["render_processes"] == 2, status


@pytest.mark.weights
@pytest.mark.slow
def test_a_fresh_server_renders_through_the_api_at_once(mobilenet_weights, tmp_path):
    with fresh_server(tmp_path) as (_base, client, first):
        created = client.post("/api/renders", json={"model": "mobilenet_v2", "layer": "features.14", "unit": 40,
                                                    "size": 64, "steps": 8})
        _warming_up(first)
        assert created.status_code == 202, created.text
        deadline = time.monotonic() + 180
        while (status := client.get(created.json()["links"]["self"]).json())["state"] not in TERMINAL:
            assert time.monotonic() < deadline, status
            time.sleep(0.1)
        assert status["state"] == "done", status
        image = client.get(created.json()["links"]["image"])
        assert image.headers["content-type"] == "image/png" and image.headers["x-render-state"] == "done"
        assert client.get("/api/status").json()["failed"] == 0


@pytest.mark.weights
@pytest.mark.slow
@pytest.mark.browser
@pytest.mark.skipif(not CHROMIUM.exists(), reason=f"{CHROMIUM} is missing (apt-get install chromium)")
def test_a_fresh_server_fills_the_interface_s_first_screen(mobilenet_weights, tmp_path, browser):
    page = browser.new_page(viewport={"width": 760, "height": 560})  # about 15 cards on the screen
    with fresh_server(tmp_path) as (base, client, first):
        page.goto(f"{base}/#model=mobilenet_v2&layer=features.14&method=lucid&size=64&steps=4&seed=0&grid=32")
        _warming_up(first)
        page.wait_for_function("""() => {
          const box = document.getElementById('gallery').getBoundingClientRect();
          const seen = [...document.querySelectorAll('#grid .card')].filter((c) => {
            const r = c.getBoundingClientRect(); return r.bottom > box.top && r.top < box.bottom; });
          return document.querySelector('#grid .card .why') ||
            (seen.length > 4 && seen.every((c) => c.dataset.state === 'done'));
        }""", timeout=200_000)  # every card on the screen done, or one that says why it failed
        assert page.query_selector(".card .why") is None, page.inner_text(".card .why")
        assert client.get("/api/status").json()["failed"] == 0  # none failed, not even once (then retried)
        page.close()
