"""`imagemachines serve`: safe defaults, clear errors, light imports."""

from __future__ import annotations

import socket
import subprocess
import sys

import pytest
from typer.testing import CliRunner

import imagemachines.models
from imagemachines.cli import app
from imagemachines.errors import UserError
from tests.conftest import tiny_loaded_model

runner = CliRunner()


def free_port() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return str(sock.getsockname()[1])


@pytest.fixture
def started(monkeypatch):
    """Run `serve` without a network server: capture what the HTTP server would get; tiny models instead of real."""
    from imagemachines.serve import server

    seen: dict = {}
    monkeypatch.setattr(server, "run_server", lambda app, **kw: seen.update(app=app, **kw))
    monkeypatch.setattr(imagemachines.models, "load_model", lambda name, device=None: tiny_loaded_model())
    from imagemachines.serve.render_process import RenderProcesses

    monkeypatch.setattr(RenderProcesses, "start",
                        lambda self, wait=True: seen.update(started_processes=self.processes, waited=wait))
    yield seen
    if "app" in seen:
        seen["app"].state.scheduler.close()


def test_help_lists_the_options():
    result = runner.invoke(app, ["serve", "--help"])
    assert result.exit_code == 0
    for option in ("--host", "--port", "--device", "--cache-dir", "--allow-origin", "--max-size", "--max-queue"):
        assert option in result.output


def test_the_cli_module_imports_nothing_heavy():
    code = ("import sys, imagemachines.serve.cli; "
            "print(sorted(m for m in ('torch', 'fastapi', 'uvicorn', 'torchvision') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_binds_loopback_with_cors_closed_by_default(started, tmp_path):
    port = free_port()
    result = runner.invoke(app, ["serve", "--cache-dir", str(tmp_path), "--port", port])
    assert result.exit_code == 0, result.output
    assert started["host"] == "127.0.0.1" and started["port"] == int(port)
    served = started["app"]
    assert list(served.state.catalog.models) == ["tiny"]
    assert served.state.scheduler.cache.root == tmp_path
    assert not any("CORS" in str(m) for m in served.user_middleware)


def test_options_reach_the_app(started, tmp_path):
    args = ["serve", "--cache-dir", str(tmp_path), "--port", free_port(), "--allow-origin", "http://gallery.example",
            "--max-size", "300", "--max-queue", "5", "--host", "0.0.0.0"]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "there is no login" in result.output  # a warning when listening beyond this machine
    served = started["app"]
    limits = served.state.catalog.limits
    assert (limits.max_size, limits.max_queue) == (300, 5)
    assert any("CORS" in str(m) for m in served.user_middleware)


def test_a_busy_port_is_a_clear_error():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        port = sock.getsockname()[1]
        result = runner.invoke(app, ["serve", "--port", str(port)])
    assert isinstance(result.exception, UserError)
    assert f"--port {port + 1}" in str(result.exception)


def test_two_models_with_one_name_are_refused(started, tmp_path):
    result = runner.invoke(app, ["serve", "a", "b", "--cache-dir", str(tmp_path), "--port", free_port()])
    assert isinstance(result.exception, UserError) and "both called 'tiny'" in str(result.exception)


def test_host_names_and_cache_size_reach_the_app(started, tmp_path):
    args = ["serve", "--cache-dir", str(tmp_path), "--port", free_port(), "--host", "0.0.0.0",
            "--allowed-host", "studio.local", "--cache-size", "500M"]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    served = started["app"]
    assert served.state.scheduler.cache.max_bytes == 500 * 1024**2
    from fastapi.testclient import TestClient

    client = TestClient(served, base_url="http://studio.local:8000")
    assert client.get("/api/config").status_code == 200
    assert client.get("/api/config", headers={"Host": "evil.example"}).status_code == 400
    assert started["timeout_keep_alive"] == 5.0 and started["limit_concurrency"] == 256


@pytest.mark.parametrize("size", ["lots", "10K", "-1G"])
def test_a_bad_cache_size_is_a_clear_error(size):
    result = runner.invoke(app, ["serve", "--port", free_port(), "--cache-size", size])
    assert isinstance(result.exception, UserError) and "--cache-size" in str(result.exception)


def test_cpu_renders_run_in_their_own_processes_unless_told_otherwise(started, tmp_path):
    from imagemachines.serve.render_process import RenderProcesses

    result = runner.invoke(app, ["serve", "--cache-dir", str(tmp_path), "--port", free_port(), "--device", "cpu"])
    assert result.exit_code == 0, result.output
    engine = started["app"].state.scheduler.render_fn
    assert isinstance(engine, RenderProcesses) and engine.processes == 2 == started["started_processes"]
    assert started["waited"] is False  # the address is printed while they import PyTorch
    assert engine.pids == []  # closed when the server stopped
    started["app"].state.scheduler.close()
    result = runner.invoke(app, ["serve", "--cache-dir", str(tmp_path), "--port", free_port(),
                                 "--render-processes", "0"])
    assert result.exit_code == 0, result.output
    assert not isinstance(started["app"].state.scheduler.render_fn, RenderProcesses)


STOP_SCRIPT = """
import sys
from imagemachines.serve.app import create_app
from imagemachines.serve.server import run_server, uvicorn_options
from tests.conftest import tiny_loaded_model
app = create_app({"tiny": tiny_loaded_model()}, cache_dir=sys.argv[2])
print("serving", flush=True)
stopped = run_server(app, host="127.0.0.1", port=int(sys.argv[1]), log_level="warning", **uvicorn_options())
print("stopped by", stopped, flush=True)
"""


def test_ctrl_c_stops_the_server_quietly_and_says_which_signal(tmp_path):
    import signal
    import time
    import urllib.request
    from pathlib import Path

    port = free_port()
    proc = subprocess.Popen([sys.executable, "-c", STOP_SCRIPT, port, str(tmp_path)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, cwd=Path(__file__).resolve().parents[2])
    try:
        for _ in range(300):
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/api/config", timeout=1)
                break
            except OSError:
                time.sleep(0.1)
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == 0, err
    assert f"stopped by {int(signal.SIGINT)}" in out
    assert "Traceback" not in err and "KeyboardInterrupt" not in err
