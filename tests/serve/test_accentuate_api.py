"""Accentuations through the server: POST /api/accentuations queues a job on the render scheduler (the same
queue, batching, previews, cancellation and cache as renders), the painting comes from a served index or an
upload by id, and every bad request is a 4xx that says what to change."""

from __future__ import annotations

from io import BytesIO

import pytest
from PIL import Image

from imagemachines.serve.accent_spec import AccentSpec
from imagemachines.serve.app import create_app
from imagemachines.serve.scheduler import spec_from_request
from imagemachines.vis import read_recipe
from tests.conftest import tiny_loaded_model
from tests.serve.collection_fixtures import build_tiny_index, painting
from tests.serve.conftest import BASE_URL, wait_for

FAST = {"size": 48, "steps": 4}


@pytest.fixture(scope="module")
def index(tmp_path_factory):
    return build_tiny_index(tmp_path_factory.mktemp("collection"))


@pytest.fixture
def api(make_client, index):
    return make_client(indexes=[index])


def png_bytes(image: Image.Image) -> bytes:
    buf = BytesIO()
    image.save(buf, format="PNG")
    return buf.getvalue()


def body(**kw) -> dict:
    return {"model": "tiny", "layer": "features.2", "unit": 3, "painting": {"index": "paintings-index", "image": 1},
            **FAST, **kw}


def test_an_indexed_painting_is_accentuated_and_followed_like_a_render(api, index, tmp_path):
    created = api.post("/api/accentuations", json=body(strength=0.5))
    assert created.status_code == 202, created.text
    job = created.json()
    assert job["links"]["image"] == f"/api/renders/{job['id']}/image"
    done = wait_for(api, job["id"])
    assert done["state"] == "done" and done["method"] == "accentuate" and done["unit"] == "features.2:3"
    recipe = done["recipe"]
    assert recipe["accentuation"]["strength"] == 0.5 and recipe["painting"]["name"] == "index/paintings-index/1"
    assert recipe["options"]["reg_layer"] == "features.3"  # the tiny model's default
    image = api.get(job["links"]["image"])
    assert image.status_code == 200 and image.headers["content-type"] == "image/png"
    saved = tmp_path / "a.png"
    saved.write_bytes(image.content)
    assert Image.open(saved).size == (48, 36)  # the painting's aspect (64×48), longer side 48
    assert read_recipe(saved)["accentuation"]["after"] == pytest.approx(done["activation"])
    again = api.post("/api/accentuations", json=body(strength=0.5))
    assert again.status_code == 200 and again.json()["id"] == job["id"]  # cached: the same id, done


def test_an_upload_is_accentuated_by_its_id_and_the_painting_is_part_of_the_key(api):
    up = api.post("/api/uploads", params={"model": "tiny"}, content=png_bytes(painting(4))).json()
    a = api.post("/api/accentuations", json=body(painting={"upload": up["id"]})).json()
    b = api.post("/api/accentuations", json=body()).json()
    assert a["id"] != b["id"]
    done = wait_for(api, a["id"])
    assert done["state"] == "done" and done["recipe"]["painting"]["name"] == f"upload/{up['id']}"


def test_jobs_of_one_painting_share_an_engine_call_and_renders_do_not_join_them(api, spy):
    spy.hold()
    blocker = api.post("/api/renders", json={"model": "tiny", "layer": "features.1", "unit": 0, **FAST}).json()
    spy.entered.wait(10)
    ids = [api.post("/api/accentuations", json=body(unit=u, strength=s)).json()["id"]
           for u, s in ((1, 0.5), (2, 1.0), (3, 2.0))]
    other_painting = api.post("/api/accentuations", json=body(painting={"index": "paintings-index", "image": 2}))
    spy.release()
    for job_id in [blocker["id"], *ids, other_painting.json()["id"]]:
        assert wait_for(api, job_id)["state"] == "done"
    sizes = [(sorted(c["units"]), c["size"]) for c in spy.calls]
    assert sizes[0] == (["features.1:0"], 48)
    accent_calls = [c for c in spy.calls[1:]]
    assert len(accent_calls) == 2  # the three of image 1 together, image 2 alone
    assert sorted(len(c["units"]) for c in accent_calls) == [1, 3]


def test_a_running_accentuation_can_be_cancelled_and_lets_go_of_its_painting(api, spy):
    spy.hold(at_step=1)
    job = api.post("/api/accentuations", json=body(steps=40)).json()
    spy.entered.wait(10)
    scheduler = api.app.state.scheduler
    running = scheduler.get(job["id"])
    assert running.payload is not None and running.payload.shape == (36, 48, 3)
    assert api.delete(f"/api/renders/{job['id']}").json()["state"] == "cancelled"
    spy.release()
    assert wait_for(api, job["id"])["state"] == "cancelled"
    assert scheduler.get(job["id"]).payload is None


def test_a_restarted_server_answers_a_finished_accentuation_from_its_cache(make_client, index, tmp_path):
    first = make_client(indexes=[index], cache_dir=tmp_path / "shared-cache")
    job = first.post("/api/accentuations", json=body()).json()
    assert wait_for(first, job["id"])["state"] == "done"
    from fastapi.testclient import TestClient

    app = create_app({"tiny": tiny_loaded_model()}, cache_dir=tmp_path / "shared-cache", indexes=[index])
    with TestClient(app, base_url=BASE_URL) as second:
        status = second.get(f"/api/renders/{job['id']}").json()
        assert status["state"] == "done" and status["method"] == "accentuate"
        assert second.get(f"/api/renders/{job['id']}/image").status_code == 200


def test_a_spec_round_trips_through_its_stored_request():
    spec = AccentSpec("tiny", "features.2", 3, None, None, "ab" * 16, "upload/x", 1.5, "features.3", 48, 4, 0)
    assert spec_from_request(spec.as_dict()) == spec
    assert spec.batch_key != AccentSpec(*[*spec.__dict__.values()][:5], "cd" * 16, "upload/y", 1.5, "features.3",
                                        48, 4, 0).batch_key
    with pytest.raises(TypeError):
        spec_from_request({"kind": "accentuation", "model": "tiny"})


def test_the_defaults_are_listed(api):
    config = api.get("/api/accentuations/config").json()
    assert config["strength"] == 1.0 and config["strengths"] == [0.5, 1.0, 2.0] and config["steps"] == 256
    assert config["models"] == {"tiny": {"reg_layer": "features.3", "size": 32}}
    assert api.get("/api/accentuations/config", params={"model": "nope"}).status_code == 404


@pytest.mark.parametrize("change, status, message", [
    ({"painting": {"index": "nope", "image": 1}}, 404, "No index 'nope'"),
    ({"painting": {"index": "paintings-index", "image": 999}}, 404, "has no image 999"),
    ({"painting": {"upload": "0" * 32}}, 404, "No upload"),
    ({"painting": {"index": "paintings-index"}}, 422, "name one painting"),
    ({"painting": {"index": "paintings-index", "image": 1, "upload": "0" * 32}}, 422, "name one painting"),
    ({"painting": {"upload": "../../etc/passwd"}}, 422, "painting.upload"),
    ({"painting": {"path": "/etc/passwd"}}, 422, "Extra inputs are not permitted"),
    ({"model": "nope"}, 404, "does not serve model 'nope'"),
    ({"layer": "features.9"}, 404, "has no layer 'features.9'"),
    ({"unit": 99}, 422, "channel 99 is out of range"),
    ({"unit": {"channel": 3, "x": 30, "y": 0}}, 422, "outside layer 'features.2'"),
    ({"unit": {"channel": 3, "x": 1}}, 422, "needs both x and y"),
    ({"layer": "logits", "unit": {"channel": 1, "x": 0, "y": 0}}, 422, "no position"),
    ({"reg_layer": "features.7"}, 404, "has no layer 'features.7'"),
    ({"strength": -1}, 422, "strength"),
    ({"strength": 1e7}, 422, "strength"),
    ({"size": 4096}, 422, "outside this server's range"),
    ({"steps": 65}, 422, "outside this server's range"),
    ({"seed": -1}, 422, "seed"),
    ({"extra": 1}, 422, "extra"),
])
def test_bad_requests_say_what_to_change(api, change, status, message):
    response = api.post("/api/accentuations", json=body(**change))
    assert response.status_code == status, response.text
    assert message in response.json()["detail"]


def test_non_finite_strengths_are_422_not_500(api):
    for text in ("NaN", "Infinity", "-Infinity"):
        raw = '{"model":"tiny","layer":"features.2","unit":3,"painting":{"upload":"' + "0" * 32 + \
              '"},"strength":' + text + "}"
        response = api.post("/api/accentuations", content=raw, headers={"Content-Type": "application/json"})
        assert response.status_code == 422, (text, response.text)


def test_an_index_of_another_model_is_refused(make_client, index):
    other = make_client(indexes=[index], models={"tiny": tiny_loaded_model(), "tiny2": tiny_loaded_model(seed=0)})
    response = other.post("/api/accentuations", json=body(model="tiny2"))
    assert response.status_code == 422 and "belongs to model 'tiny'" in response.json()["detail"]


def test_other_sites_cannot_queue_accentuations(api):
    response = api.post("/api/accentuations", json=body(), headers={"Origin": "https://evil.example"})
    assert response.status_code == 403
    assert api.get("/api/status").json()["queued"] == 0


def test_a_full_queue_is_429_with_retry_after(make_client, index, spy):
    from imagemachines.serve.schemas import Limits

    small = make_client(indexes=[index], limits=Limits(max_size=128, max_steps=64, max_queue=1))
    spy.hold()
    small.post("/api/renders", json={"model": "tiny", "layer": "features.1", "unit": 0, **FAST})
    spy.entered.wait(10)
    assert small.post("/api/accentuations", json=body(unit=1)).status_code == 202
    full = small.post("/api/accentuations", json=body(unit=2))
    spy.release()
    assert full.status_code == 429 and int(full.headers["Retry-After"]) >= 1
