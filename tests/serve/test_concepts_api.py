"""The concept routes on the planted colour network and an index of its paintings: a study computed in the
background, its result and pictures, the queue's bound, cancelling, the disk bound, and bad requests."""

from __future__ import annotations

import threading
import time
from io import BytesIO

import pytest
from PIL import Image

from imagemachines.serve.concept_jobs import Cancelled, ConceptJobs, QueueFull, job_key
from tests.concepts.conftest import colour_model, make_paintings


@pytest.fixture(scope="module")
def colour_index(tmp_path_factory):
    from imagemachines.index import build_index, open_index

    root = tmp_path_factory.mktemp("colours")
    painted = make_paintings(root / "paintings", n=4)
    return open_index(build_index(colour_model(), painted.root, root / "colours-index", k=4, progress=False))


@pytest.fixture
def api(make_client, colour_index):
    return make_client(models={"colournet": colour_model()}, indexes=[colour_index])


def wait(api, key: str, timeout: float = 120) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status = api.get(f"/api/concepts/{key}").json()
        if status["state"] not in ("queued", "running"):
            return status
        time.sleep(0.2)
    raise AssertionError(f"study {key} still {status}")


def image(response) -> Image.Image:
    assert response.status_code == 200, response.text
    return Image.open(BytesIO(response.content))


def test_a_study_runs_in_the_background_and_shows_every_picture(api):
    listing = api.get("/api/indexes/colours-index/concepts").json()
    classes = [(c["name"], c["paintings"], c["study"]) for c in listing["classes"]]
    assert classes == [("red", 4, None), ("blue", 4, None)]
    assert listing["rule"].startswith("paintings in a folder") and listing["defaults"]["concepts"] == 10

    started = api.post("/api/indexes/colours-index/concepts/RED", json={"concepts": 2, "seed": 0})
    assert started.status_code == 202, started.text
    key = started.json()["key"]
    assert started.json()["name"] == "red" and started.json()["state"] in ("queued", "running")
    done = wait(api, key)
    assert done["state"] == "done" and done["progress"] == 1.0, done

    result = api.get(f"/api/concepts/{key}/result").json()
    assert result["class"] == "red" and result["n_images"] == 4 and result["layer"] == "features.2"
    first, green = result["concepts"]
    assert first["sobol"] > 0.9 and green["sobol"] == 0.0
    assert not any(k.startswith("_") for k in result) and "_files" not in first
    assert image(api.get(result["curves"])).format == "PNG"
    assert image(api.get(first["render"])).format == "PNG"
    crop = first["crops"][0]
    assert crop["path"].startswith("red/") and image(api.get(crop["picture"])).format == "JPEG"
    assert api.get(crop["thumb"]).status_code == 200  # the painting it comes from, in the collection routes
    assert image(api.get(first["paintings"][0]["picture"])).format == "JPEG"
    assert [p["path"][:3] for p in first["collection"]] == ["red"] * 4  # red shows only in red paintings
    blue_id = next(p["image_id"] for p in green["collection"] if p["path"].startswith("blue/"))
    assert image(api.get(f"/api/concepts/{key}/concepts/1/overlay/{blue_id}?size=128")).size[0] <= 128

    again = api.post("/api/indexes/colours-index/concepts/red", json={"concepts": 2})
    assert again.status_code == 200 and again.json()["key"] == key and again.json()["state"] == "done"
    assert api.get("/api/indexes/colours-index/concepts/red?concepts=2").json()["key"] == key  # looked up
    assert api.get("/api/indexes/colours-index/concepts/red?concepts=3").json() is None  # never asked for


def test_a_restarted_server_finds_finished_studies(make_client, colour_index, tmp_path):
    first = make_client(models={"colournet": colour_model()}, indexes=[colour_index], cache_dir=tmp_path / "c")
    key = first.post("/api/indexes/colours-index/concepts/blue", json={"concepts": 2}).json()["key"]
    assert wait(first, key)["state"] == "done"
    second = make_client(models={"colournet": colour_model()}, indexes=[colour_index], cache_dir=tmp_path / "c")
    assert second.get(f"/api/concepts/{key}").json()["state"] == "done"
    assert second.post("/api/indexes/colours-index/concepts/blue", json={"concepts": 2}).status_code == 200
    assert second.get(f"/api/concepts/{key}/result").json()["class"] == "blue"


def test_bad_requests_say_what_to_change(api):
    assert api.get("/api/indexes/nowhere/concepts").status_code == 404
    missing = api.post("/api/indexes/colours-index/concepts/violet")
    assert missing.status_code == 404 and "no class 'violet'" in missing.json()["detail"]
    for body in ({"concepts": 1}, {"concepts": 21}, {"seed": -1}, {"concepts": 3, "what": 1}):
        assert api.post("/api/indexes/colours-index/concepts/red", json=body).status_code == 422, body
    assert api.get("/api/concepts/" + "0" * 32).status_code == 404
    assert api.get("/api/concepts/../../etc").status_code in (404, 422)
    assert api.get("/api/concepts/XYZ/result").status_code == 422


def test_other_sites_cannot_start_or_compute(api):
    evil = {"Origin": "https://evil.example"}
    assert api.post("/api/indexes/colours-index/concepts/red", headers=evil).status_code == 403
    cross = {"Sec-Fetch-Site": "cross-site"}
    assert api.get(f"/api/concepts/{'0' * 32}/concepts/0/overlay/0", headers=cross).status_code == 403


class Gate:
    """A work function that waits until released, reporting progress (so a cancel can stop it)."""

    def __init__(self):
        self.release = threading.Event()
        self.started = threading.Event()
        self.runs = []

    def work(self, job, folder, report):
        self.runs.append(job.key)
        self.started.set()
        while not self.release.wait(0.02):
            report("waiting", 0.5)
        folder.mkdir(parents=True)
        (folder / "view.json").write_text('{"concepts": []}')


def test_the_queue_is_bounded_and_answers_429_with_retry_after(api):
    jobs: ConceptJobs = api.app.state.concept_jobs
    gate = Gate()
    jobs.max_waiting = 1
    jobs.submit(job_key({"n": 0}), "colours-index", "red", {}, gate.work)
    assert gate.started.wait(10)
    jobs.submit(job_key({"n": 1}), "colours-index", "red", {}, gate.work)  # waits: the queue is now full
    full = api.post("/api/indexes/colours-index/concepts/red")
    assert full.status_code == 429 and int(full.headers["Retry-After"]) > 0
    with pytest.raises(QueueFull):
        jobs.submit(job_key({"n": 2}), "colours-index", "red", {}, gate.work)
    gate.release.set()


def test_cancel_stops_running_and_queued_studies():
    import tempfile

    jobs = ConceptJobs(tempfile.mkdtemp())
    gate = Gate()
    running = jobs.submit(job_key({"n": 0}), "i", "red", {}, gate.work)
    assert gate.started.wait(10)
    queued = jobs.submit(job_key({"n": 1}), "i", "red", {}, gate.work)
    assert jobs.cancel(queued.key).state == "cancelled"
    jobs.cancel(running.key)
    deadline = time.monotonic() + 10
    while running.state == "running" and time.monotonic() < deadline:
        time.sleep(0.02)
    assert running.state == "cancelled" and gate.runs == [running.key]
    assert not jobs.folder(running.key).exists() and not list(jobs.folder(running.key).parent.glob(".tmp-*"))
    again = jobs.submit(running.key, "i", "red", {}, gate.work)  # a cancelled study can be asked for again
    gate.release.set()
    deadline = time.monotonic() + 10
    while again.state != "done" and time.monotonic() < deadline:
        time.sleep(0.02)
    assert again.state == "done" and jobs.view(again.key) == {"concepts": []}
    jobs.close()
    with pytest.raises(Exception, match="stopping"):
        jobs.submit(job_key({"n": 5}), "i", "red", {}, gate.work)


def test_finished_studies_stay_within_the_disk_bound(tmp_path):
    jobs = ConceptJobs(tmp_path / "concepts", max_bytes=3000)

    def work(job, folder, report):
        folder.mkdir(parents=True)
        (folder / "view.json").write_text("{}")
        (folder / "big.bin").write_bytes(b"x" * 1000)

    keys = []
    for n in range(5):
        job = jobs.submit(job_key({"n": n}), "i", "c", {}, work)
        deadline = time.monotonic() + 10
        while job.state != "done" and time.monotonic() < deadline:
            time.sleep(0.01)
        keys.append(job.key)
        time.sleep(0.02)  # distinct modification times
    kept = [k for k in keys if jobs.folder(k).exists()]
    assert kept == keys[-2:] and jobs.usage() <= 3000
    jobs.close()


def test_a_failing_study_reports_its_reason(tmp_path):
    from imagemachines.errors import UserError

    jobs = ConceptJobs(tmp_path)

    def work(job, folder, report):
        raise UserError("No painting of X belongs to class 'red'.")

    job = jobs.submit(job_key({"n": 0}), "i", "red", {}, work)
    deadline = time.monotonic() + 10
    while job.state in ("queued", "running") and time.monotonic() < deadline:
        time.sleep(0.01)
    assert job.state == "failed" and "belongs to class" in job.error
    assert Cancelled is not None
    jobs.close()
