"""The REST API on the tiny model with the real engine: every route, every error, cache, cancel, priority,
batching, previews, server-sent events, the seed's route, CORS and path safety."""

from __future__ import annotations

import json
import re
import threading
from io import BytesIO

import numpy as np
import pytest
from PIL import Image

from imagemachines.serve.api import octave_size
from imagemachines.serve.schemas import Limits
from tests.serve.conftest import FAST, wait_for


def body(channel: int = 3, **kw) -> dict:
    return {"model": "tiny", "layer": "features.2", "unit": channel, **FAST, **kw}


def png(response) -> Image.Image:
    assert response.headers["content-type"] == "image/png"
    return Image.open(BytesIO(response.content))


# -- models, layers, config, pages --------------------------------------------------------------------------
def test_models_layers_and_config(client):
    [model] = client.get("/api/models").json()
    assert model["name"] == "tiny" and model["default"] and model["classes"] == 5 and model["device"] == "cpu"
    layers = {layer["name"]: layer for layer in client.get("/api/models/tiny/layers").json()}
    assert layers["features.1"] == {"name": "features.1", "type": "Sequential", "kind": "channel", "channels": 16,
                                    "height": 16, "width": 16, "labels": None}
    assert layers["logits"]["kind"] == "class" and layers["logits"]["labels"][2] == "class2"
    every = client.get("/api/models/tiny/layers", params={"all": True}).json()
    assert {"features.1.0", "features.1"} <= {layer["name"] for layer in every}
    config = client.get("/api/config").json()
    assert {m["name"] for m in config["methods"]} == {"lucid", "classic", "maco"}
    assert config["limits"]["max_size"] == 128 and config["default_model"] == "tiny"


def test_unknown_model_in_path_is_404_with_suggestion(client):
    r = client.get("/api/models/tyni/layers")
    assert r.status_code == 404 and "Did you mean: tiny" in r.json()["detail"]


def test_index_static_files_and_openapi(client):
    page = client.get("/")
    assert page.status_code == 200 and "/static/app.js" in page.text and "/static/style.css" in page.text
    for name in ("app.js", "style.css"):
        assert client.get(f"/static/{name}").status_code == 200
    assert "http" not in re.sub(r"https?://(127\.0\.0\.1|localhost)", "", client.get("/static/app.js").text)
    assert client.get("/docs").status_code == 200
    paths = client.get("/openapi.json").json()["paths"]
    assert {"/api/renders", "/api/renders/{render_id}/events", "/activations/{layer}/{neuron}/{octave}"} <= set(paths)


# -- the life of a render ------------------------------------------------------------------------------------
def test_render_runs_and_serves_png_with_recipe(client, spy):
    r = client.post("/api/renders", json=body(3, seed=5))
    assert r.status_code == 202 and r.json()["state"] in ("queued", "running")
    rid = r.json()["id"]
    assert re.fullmatch(r"[0-9a-f]{32}", rid) and r.headers["location"] == f"/api/renders/{rid}"
    done = wait_for(client, rid)
    assert done["state"] == "done" and done["progress"] == 1.0 and done["step"] == FAST["steps"]
    assert done["unit"] == "features.2:3" and done["recipe"]["seed"] == 5
    assert done["activation"] == pytest.approx(done["recipe"]["activation"])
    image = client.get(done["links"]["image"])
    assert image.headers["x-render-state"] == "done" and "immutable" in image.headers["cache-control"]
    picture = png(image)
    assert picture.size == (32, 32)
    assert json.loads(picture.text["imagemachines"])["unit"] == "features.2:3"
    dl = client.get(done["links"]["download"])
    assert dl.headers["content-disposition"] == 'attachment; filename="tiny_features-2_3_lucid_32px_seed5.png"'
    assert dl.content == image.content
    assert len(spy.calls) == 1


def test_same_request_again_is_the_same_render_from_cache(client, spy):
    first = client.post("/api/renders", json=body(4))
    wait_for(client, first.json()["id"])
    again = client.post("/api/renders", json=body(4))
    assert again.status_code == 200 and again.json() == {**first.json(), "state": "done"}
    assert len(spy.calls) == 1
    other_seed = client.post("/api/renders", json=body(4, seed=1))
    assert other_seed.json()["id"] != first.json()["id"]


def test_neuron_and_class_units(client):
    neuron = client.post("/api/renders", json=body(unit={"channel": 1, "x": 2, "y": 3})).json()
    klass = client.post("/api/renders", json=body(layer="logits", unit=2)).json()
    n, c = wait_for(client, neuron["id"]), wait_for(client, klass["id"])
    assert n["unit"] == "features.2:1@2,3" and n["recipe"]["kind"] == "neuron"
    assert c["unit"] == "logits:2" and c["recipe"]["class_name"] == "class2"


def test_status_of_many_renders_at_once(client):
    ids = [client.post("/api/renders", json=body(c)).json()["id"] for c in range(3)]
    for rid in ids:
        wait_for(client, rid)
    listed = client.get("/api/renders", params={"ids": ",".join([*ids, "f" * 32, "../x"])}).json()
    assert [s["id"] for s in listed] == ids and {s["state"] for s in listed} == {"done"}
    assert client.get("/api/status").json()["units"] == 3


# -- errors -------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(("change", "says"), [
    ({"model": "tyni"}, "Did you mean: tiny"),
    ({"layer": "features.9"}, "Did you mean"),
    ({"layer": "../../etc/passwd"}, "has no layer"),
])
def test_an_unknown_model_or_layer_in_a_valid_request_is_404(client, change, says):
    r = client.post("/api/renders", json={**body(), **change})
    assert r.status_code == 404, r.text
    assert says in r.json()["detail"]


@pytest.mark.parametrize(("change", "says"), [
    ({"unit": 16}, "use 0 to 15"),
    ({"unit": {"channel": 1, "x": 16, "y": 0}}, "x 0..15"),
    ({"unit": {"channel": 1, "x": 2}}, "both x and y"),
    ({"layer": "logits", "unit": {"channel": 1, "x": 0, "y": 0}}, "drop x and y"),
    ({"layer": "logits", "unit": 5}, "use 0 to 4"),
    ({"method": "deepdream"}, "Choose one of: lucid, classic, maco"),
    ({"size": 4096}, "--max-size"),
    ({"size": 8}, "ask for 16 to 128"),
    ({"steps": 65}, "--max-steps"),
    ({"size": None, "steps": None}, "Size 224 (method lucid)"),
    ({"size": "big"}, "size: Input should be a valid integer"),
    ({"seed": -1}, "seed: Input should be greater than or equal to 0"),
    ({"colour": "red"}, "colour: Extra inputs are not permitted"),
    ({"unit": -3}, "unit"),
])
def test_bad_requests_get_422_saying_what_to_change(client, change, says):
    r = client.post("/api/renders", json={**body(), **change})
    assert r.status_code == 422
    assert says in r.json()["detail"]


def test_malformed_json_and_missing_fields(client):
    r = client.post("/api/renders", content=b"{not json", headers={"Content-Type": "application/json"})
    assert r.status_code == 422 and "JSON" in r.json()["detail"]
    r = client.post("/api/renders", json={"model": "tiny"})
    assert r.status_code == 422 and "layer: Field required" in r.json()["detail"]


@pytest.mark.parametrize("path", ["/api/renders/{id}", "/api/renders/{id}/image", "/api/renders/{id}/events"])
@pytest.mark.parametrize("rid", ["0" * 32, "not-an-id", "..%2F..%2Fetc%2Fpasswd"])
def test_unknown_render_ids_are_404(client, path, rid):
    r = client.get(path.format(id=rid))
    assert r.status_code == 404
    assert ("POST /api/renders" if "%" not in rid else "/docs") in r.json()["detail"]
    assert client.delete(f"/api/renders/{rid}").status_code == 404


# -- scheduling through the API --------------------------------------------------------------------------------
def test_concurrent_requests_are_batched_into_one_engine_call(client, spy):
    spy.hold()
    blocker = client.post("/api/renders", json=body(0, layer="features.1")).json()
    assert spy.entered.wait(10)
    ids = [client.post("/api/renders", json=body(c, seed=c)).json()["id"] for c in range(6)]
    spy.release()
    results = [wait_for(client, rid) for rid in [blocker["id"], *ids]]
    assert {r["state"] for r in results} == {"done"}
    assert len(spy.calls) == 2
    assert spy.calls[1]["units"] == [f"features.2:{c}" for c in range(6)] and spy.calls[1]["seeds"] == list(range(6))
    pixels = [np.asarray(png(client.get(f"/api/renders/{rid}/image"))) for rid in ids]
    assert all(not np.array_equal(pixels[0], p) for p in pixels[1:])  # six different images, not one copy


def test_a_render_in_a_batch_equals_the_same_render_alone(make_client, spy, tmp_path):
    spy.hold()
    batched = make_client()
    batched.post("/api/renders", json=body(0, layer="features.1"))
    assert spy.entered.wait(10)
    ids = [batched.post("/api/renders", json=body(c, seed=c)).json()["id"] for c in range(4)]
    spy.release()
    alone = make_client(cache_dir=tmp_path / "other-cache")
    solo = alone.post("/api/renders", json=body(2, seed=2)).json()["id"]
    assert solo == ids[2]  # same request, same key, whichever server renders it
    a = np.asarray(png(batched.get(f"/api/renders/{wait_for(batched, ids[2])['id']}/image")), dtype=int)
    b = np.asarray(png(alone.get(f"/api/renders/{wait_for(alone, solo)['id']}/image")), dtype=int)
    assert np.abs(a - b).mean() < 1.0


def grid(units, **kw) -> dict:
    return {"model": "tiny", "layer": "features.2", "units": units, **FAST, **kw}


def test_a_batch_request_queues_every_unit_at_once_for_one_engine_call(make_client, spy):
    client = make_client(batch_window=0)  # no waiting for more requests: the units must arrive together
    r = client.post("/api/renders/batch", json=grid([4, 1, {"channel": 2, "x": 1, "y": 1}, 7], seed=3))
    assert r.status_code == 202 and r.json()["retry_after"] is None
    created = r.json()["renders"]
    alone = client.post("/api/renders", json=body(1, seed=3)).json()
    assert created[1]["id"] == alone["id"]  # each unit is the render POST /api/renders would name
    results = [wait_for(client, c["id"]) for c in created]
    assert [x["unit"] for x in results] == ["features.2:4", "features.2:1", "features.2:2@1,1", "features.2:7"]
    assert {x["state"] for x in results} == {"done"} and {x["seed"] for x in results} == {3}
    # the channels went to the engine together (the neuron has another objective but the same batch key)
    assert spy.calls[0]["units"] == ["features.2:4", "features.2:1", "features.2:2@1,1", "features.2:7"]
    again = client.post("/api/renders/batch", json=grid([4, 1])).json()
    assert [c["state"] for c in client.post("/api/renders/batch", json=grid([4, 1], seed=3)).json()["renders"]] \
        == ["done", "done"] and len(again["renders"]) == 2


def test_a_batch_beyond_the_queue_gets_nulls_and_retry_after(make_client, spy):
    client = make_client(limits=Limits(max_size=128, max_steps=64, max_queue=3))
    spy.hold()
    client.post("/api/renders", json=body(0, layer="features.1"))
    assert spy.entered.wait(10)
    r = client.post("/api/renders/batch", json=grid([0, 1, 2, 3, 4]))
    assert r.status_code == 202
    renders, wait = r.json()["renders"], r.json()["retry_after"]
    assert [x is None for x in renders] == [False, False, False, True, True] and wait >= 1
    full = client.post("/api/renders/batch", json=grid([5, 6]))
    assert full.status_code == 429 and int(full.headers["retry-after"]) >= 1 and "Try again" in full.json()["detail"]
    spy.release()
    assert all(wait_for(client, x["id"])["state"] == "done" for x in renders[:3])


@pytest.mark.parametrize(("change", "status", "says"), [
    ({"units": [0, 99]}, 422, "units[1]: Layer 'features.2' of 'tiny' has 16 channels; channel 99"),
    ({"layer": "features.9"}, 404, "units[0]: "),
    ({"units": []}, 422, "units"),
    ({"units": list(range(257))}, 422, "units"),
    ({"size": 4096}, 422, "Size 4096"),
])
def test_a_bad_batch_fails_whole_naming_the_unit(client, spy, change, status, says):
    r = client.post("/api/renders/batch", json={**grid([0, 1]), **change})
    assert r.status_code == status and says in r.json()["detail"], r.json()
    assert spy.calls == [] and client.get("/api/status").json()["queued"] == 0


def test_larger_sizes_are_rendered_first(client, spy):
    # the held render must not look at the queue (and be preempted) before all three requests are in it
    spy.hold(heed_stop=False)
    blocker = client.post("/api/renders", json=body(0, size=32)).json()
    assert spy.entered.wait(10)
    sizes = [48, 128, 64]
    ids = [client.post("/api/renders", json=body(c + 1, size=s)).json()["id"] for c, s in enumerate(sizes)]
    positions = [client.get(f"/api/renders/{rid}").json()["queue_position"] for rid in ids]
    assert positions == [3, 1, 2]
    spy.release()
    for rid in [blocker["id"], *ids]:
        assert wait_for(client, rid)["state"] == "done"
    # the small render that was running when the large ones came is put back and finishes last
    assert [c["size"] for c in spy.calls] == [32, 128, 64, 48, 32]


def test_cancel_queued_and_running_renders(client, spy):
    spy.hold()
    running = client.post("/api/renders", json=body(0)).json()["id"]
    assert spy.entered.wait(10)
    queued = client.post("/api/renders", json=body(1)).json()["id"]
    r = client.delete(f"/api/renders/{queued}")
    assert r.status_code == 200 and r.json()["state"] == "cancelled"
    gone = client.get(f"/api/renders/{queued}/image")
    assert gone.status_code == 409 and "POST the request again" in gone.json()["detail"]
    assert client.delete(f"/api/renders/{running}").json()["state"] == "cancelled"
    spy.release()
    assert wait_for(client, running)["state"] == "cancelled"
    again = client.post("/api/renders", json=body(1))
    assert again.json()["id"] == queued and wait_for(client, queued)["state"] == "done"
    finished = client.delete(f"/api/renders/{queued}")
    assert finished.status_code == 409 and "already finished" in finished.json()["detail"]
    assert client.get("/api/status").json()["cancelled"] == 2


def test_full_queue_answers_429_with_retry_after(make_client, spy):
    client = make_client(limits=Limits(max_size=128, max_steps=64, max_queue=2))
    spy.hold()
    client.post("/api/renders", json=body(0))
    assert spy.entered.wait(10)
    assert [client.post("/api/renders", json=body(c)).status_code for c in (1, 2)] == [202, 202]
    r = client.post("/api/renders", json=body(3))
    assert r.status_code == 429 and int(r.headers["retry-after"]) >= 1 and "Try again" in r.json()["detail"]
    spy.release()


def test_image_is_a_placeholder_then_a_growing_preview_then_the_final_png(client, spy):
    spy.hold(at_step=1)
    rid = client.post("/api/renders", json=body(5, size=40, steps=6)).json()["id"]
    queued = client.get(f"/api/renders/{rid}/image")
    assert queued.headers["x-render-state"] in ("queued", "running") and png(queued).size == (40, 40)
    assert spy.entered.wait(10)
    status = client.get(f"/api/renders/{rid}").json()
    assert status["state"] == "running" and status["step"] == 1 and 0 < status["progress"] < 1
    preview = client.get(f"/api/renders/{rid}/image")
    assert preview.headers["x-render-state"] == "running" and preview.headers["x-render-step"] == "1"
    assert preview.headers["cache-control"] == "no-store" and png(preview).size == (40, 40)
    spy.release()
    wait_for(client, rid)
    final = client.get(f"/api/renders/{rid}/image")
    assert final.headers["x-render-state"] == "done" and final.content != preview.content


def test_events_stream_progress_then_done(client, spy):
    spy.hold()
    rid = client.post("/api/renders", json=body(6, steps=8)).json()["id"]
    threading.Timer(0.3, spy.release).start()
    events = []
    with client.stream("GET", f"/api/renders/{rid}/events") as stream:
        assert stream.headers["content-type"].startswith("text/event-stream")
        for block in stream.iter_text():
            for chunk in block.strip().split("\n\n"):
                name, data = chunk.split("\n", 1)
                events.append((name.removeprefix("event: "), json.loads(data.removeprefix("data: "))))
    names = [n for n, _ in events]
    assert names[0] == "progress" and names[-1] == "done" and set(names) == {"progress", "done"}
    steps = [d["step"] for _, d in events]
    assert steps == sorted(steps) and events[-1][1]["progress"] == 1.0


def test_cleared_cache_is_reported_and_rendered_again(client, tmp_path):
    rid = client.post("/api/renders", json=body(7)).json()["id"]
    wait_for(client, rid)
    for f in (tmp_path / "cache").glob(f"{rid}*"):
        f.unlink()
    r = client.get(f"/api/renders/{rid}/image")
    assert r.status_code == 404 and "POST the request again" in r.json()["detail"]
    assert client.post("/api/renders", json=body(7)).status_code == 202
    assert wait_for(client, rid)["state"] == "done"


# -- the seed's route ------------------------------------------------------------------------------------------
def test_seed_route_sizes_follow_the_octave_ladder_and_big_ones_go_first(make_client, spy):
    client = make_client(limits=Limits(max_size=1024, max_steps=200))
    spy.hold()
    final = client.get("/api/config").json()["methods"][1]["defaults"]["size"]
    answers = {n: client.get(f"/activations/features.2/3/{n}") for n in (1, 5, 10)}
    for n, r in answers.items():
        assert r.status_code == 202
        assert r.json()["size"] == octave_size(final, n) == round(final / 1.2 ** (10 - n))
        assert r.json()["url"] == f"/api/renders/{r.json()['id']}/image"
        assert png(client.get(r.json()["url"])).size == (r.json()["size"],) * 2
    positions = {n: client.get(f"/api/renders/{r.json()['id']}").json() for n, r in answers.items()}
    queued = {n: s["queue_position"] for n, s in positions.items() if s["state"] == "queued"}
    assert list(queued) == sorted(queued, key=queued.get, reverse=True)  # octave 10 before 5 before 1
    assert all(s["method"] == "classic" for s in positions.values())
    for n in (0, 11):
        assert client.get(f"/activations/features.2/3/{n}").status_code == 422
    assert "has no layer" in client.get("/activations/nope/3/5").json()["detail"]
    assert "use 0 to 15" in client.get("/activations/features.2/99/5").json()["detail"]
    for r in answers.values():
        client.delete(f"/api/renders/{r.json()['id']}")
    spy.release()


# -- safety -------------------------------------------------------------------------------------------------
def test_cors_is_closed_unless_an_origin_is_allowed(make_client):
    closed = make_client()
    r = closed.get("/api/models", headers={"Origin": "http://evil.example"})
    assert "access-control-allow-origin" not in r.headers
    opened = make_client(allow_origins=("http://gallery.example",))
    ok = opened.get("/api/models", headers={"Origin": "http://gallery.example"})
    assert ok.headers["access-control-allow-origin"] == "http://gallery.example"
    other = opened.get("/api/models", headers={"Origin": "http://evil.example"})
    assert "access-control-allow-origin" not in other.headers


def test_cache_files_are_named_by_hash_only(client, tmp_path):
    ids = [client.post("/api/renders", json=body(c, layer=layer)).json()["id"]
           for c, layer in [(1, "features.0"), (2, "logits")]]
    for rid in ids:
        wait_for(client, rid)
    names = sorted(p.name for p in (tmp_path / "cache").iterdir())
    assert len(names) == 6
    assert all(re.fullmatch(r"[0-9a-f]{32}(\.request)?\.(png|json)", n) for n in names), names


def test_every_failure_says_whose_fault_it_is(make_client, spy):
    from fastapi.testclient import TestClient

    from tests.serve.conftest import BASE_URL

    def broken(*_a, **_kw):  # issue 18: the server's first renders failed like this
        raise TypeError("'module' object is not callable")

    client = make_client(render_fn=broken, limits=Limits(max_size=128, max_steps=64, max_queue=1))
    failed = wait_for(client, client.post("/api/renders", json=body(1)).json()["id"])
    assert (failed["state"], failed["fault"]) == ("failed", "server")
    assert "TypeError" in failed["error"] and "smaller" not in failed["error"]  # no advice that cannot help
    image = client.get(f"/api/renders/{failed['id']}/image")
    assert image.status_code == 409 and "TypeError" in image.json()["detail"]
    answers = {
        "request": [client.post("/api/renders", json=body(99)),  # 422: no such channel
                    client.post("/api/renders", json=body(layer="features.9")),  # 404
                    client.post("/api/renders", content="{", headers={"Content-Type": "application/json"}),
                    client.post("/api/renders", json=body(), headers={"Origin": "http://evil.example"}),  # guard
                    client.get("/api/config", headers={"Host": "evil.example"})],
    }
    spy_client = make_client(limits=Limits(max_size=128, max_steps=64, max_queue=1))
    spy.hold()
    spy_client.post("/api/renders", json=body(0))
    assert spy.entered.wait(10)
    spy_client.post("/api/renders", json=body(1))
    answers["busy"] = [spy_client.post("/api/renders", json=body(2))]  # 429: the queue is full
    spy.release()

    app = client.app
    app.add_api_route("/api/boom", lambda: 1 / 0)  # a route with a bug
    answers["server"] = [TestClient(app, base_url=BASE_URL, raise_server_exceptions=False).get("/api/boom")]
    for fault, responses in answers.items():
        for r in responses:
            assert r.status_code >= 400 and r.json()["fault"] == fault, (r.status_code, r.text)
    assert answers["server"][0].status_code == 500 and "ZeroDivisionError" in answers["server"][0].json()["detail"]
