"""`imagemachines serve --index`: indexes opened at start, and refused with a clear message when they do not fit."""

from __future__ import annotations

import socket

import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

import imagemachines.models
from imagemachines.cli import app
from imagemachines.errors import UserError
from tests.conftest import tiny_loaded_model
from tests.serve.collection_fixtures import build_tiny_index
from tests.serve.conftest import BASE_URL

runner = CliRunner()


def free_port() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return str(sock.getsockname()[1])


@pytest.fixture(scope="module")
def index(tmp_path_factory):
    return build_tiny_index(tmp_path_factory.mktemp("collection"))


@pytest.fixture
def start(monkeypatch, tmp_path):
    """``start(seed, *args)``: run `serve` on a tiny model of *seed* without a network server; the app or the error."""
    from imagemachines.serve import server

    seen: dict = {}
    monkeypatch.setattr(server, "run_server", lambda app, **kw: seen.update(app=app))

    def run(seed: int, *args: str):
        monkeypatch.setattr(imagemachines.models, "load_model", lambda name, device=None: tiny_loaded_model(seed=seed))
        result = runner.invoke(app, ["serve", "--cache-dir", str(tmp_path / "cache"), "--port", free_port(), *args])
        return seen.get("app"), result

    yield run
    if "app" in seen:
        seen["app"].state.scheduler.close()


def test_indexes_given_at_start_are_served(start, index):
    served, result = start(0, "--index", str(index.path), "--max-upload-mb", "3")
    assert result.exit_code == 0, result.output
    assert "paintings-index" in result.output.replace("\n", "")
    with TestClient(served, base_url=BASE_URL) as client:
        assert [i["id"] for i in client.get("/api/indexes").json()] == ["paintings-index"]
        r = client.post("/api/uploads", content=b"\0" * (3 * 2**20 + 1))
        assert r.status_code == 413  # --max-upload-mb reached the upload route


def test_an_index_of_other_weights_is_refused_with_both_weights_named(start, index):
    served, result = start(1, "--index", str(index.path))
    assert served is None
    assert isinstance(result.exception, UserError)
    assert "tiny-seed0" in str(result.exception) and "tiny-seed1" in str(result.exception)


def test_a_missing_index_is_a_clear_error(start, tmp_path):
    served, result = start(0, "--index", str(tmp_path / "nowhere"))
    assert served is None and isinstance(result.exception, UserError)
    assert "nowhere" in str(result.exception)
