"""Fuzz every route of the OpenAPI schema with schemathesis: whatever comes in, no 5xx goes out."""

from __future__ import annotations

import shutil
import tempfile
import time
from pathlib import Path

import pytest
import schemathesis
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from imagemachines.serve.app import create_app
from imagemachines.serve.schemas import Limits
from tests.conftest import tiny_loaded_model

CACHE = Path(tempfile.mkdtemp(prefix="imagemachines-fuzz-"))
# Tight limits keep every render the fuzzer manages to start a few milliseconds long.
app = create_app({"tiny": tiny_loaded_model()}, cache_dir=CACHE, limits=Limits(max_size=40, max_steps=3, max_queue=8))
schema = schemathesis.openapi.from_asgi("/openapi.json", app)


@pytest.fixture(scope="module", autouse=True)
def _close_scheduler():
    yield
    app.state.scheduler.close()
    shutil.rmtree(CACHE, ignore_errors=True)


@pytest.mark.slow
@schema.parametrize()
@settings(max_examples=30, deadline=None, suppress_health_check=list(HealthCheck))
def test_no_server_errors(case):
    response = case.call()
    assert response.status_code < 500, f"{case.method} {case.formatted_path} -> {response.status_code}: {response.text}"
    if response.status_code >= 400:
        assert response.json()["detail"], "every error says what to change"


LAYERS = [layer.name for layer in app.state.catalog.models["tiny"].layers(all=True)]
units = st.one_of(
    st.integers(-1, 25),
    st.fixed_dictionaries({"channel": st.integers(0, 25)}, optional={"x": st.integers(0, 18), "y": st.integers(0, 18)}),
)
requests = st.fixed_dictionaries(
    {"model": st.just("tiny"), "layer": st.sampled_from(LAYERS), "unit": units, "size": st.integers(14, 44),
     "steps": st.integers(1, 3)},
    optional={"method": st.sampled_from(["lucid", "classic", "maco", "x"]), "seed": st.integers(-1, 2**31)},
)


@pytest.fixture(scope="module")
def client():
    with TestClient(app) as c:  # runs the app's lifespan (schemathesis's calls may have run and ended one)
        yield c


@pytest.mark.slow
@given(req=requests)
@settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
def test_valid_looking_requests_render_or_say_why(client, req):
    """Requests aimed at real layers: each is accepted and renders (never fails in the engine), or gets a
    4xx that says what to change."""
    r = client.post("/api/renders", json=req)
    assert r.status_code in (200, 202, 422), r.text
    if r.status_code in (200, 202):
        rid = r.json()["id"]
        while (state := client.get(f"/api/renders/{rid}").json())["state"] in ("queued", "running"):
            time.sleep(0.01)
        assert state["state"] == "done", (req, state["error"])
    else:
        assert r.json()["detail"]
