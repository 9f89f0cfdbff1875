"""RenderProcesses: the server's CPU renders in child processes, the same images as render() in this one."""

from __future__ import annotations

import os
import signal
import time

import numpy as np
import pytest
from fastapi.testclient import TestClient
from hypothesis import given
from hypothesis import strategies as st

from imagemachines.errors import UnitOutOfRange, UserError
from imagemachines.serve.app import create_app
from imagemachines.serve.render_process import RenderProcessDied, RenderProcesses, split
from imagemachines.vis import RenderCancelled, Unit, render
from tests.conftest import tiny_loaded_model
from tests.serve.conftest import BASE_URL

UNITS = [Unit("features.2", c) for c in (0, 3, 5)]
OPTIONS = {"method": "lucid", "size": 32, "steps": 6}


def here(model, units, **kw):
    """render() in this process with one thread, as each of two children has: the same arithmetic, so the same
    bits (with two threads, reductions may differ in the last bit and the images by a few levels)."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return render(model, units, **kw)
    finally:
        torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def model():
    return tiny_loaded_model()


@pytest.fixture(scope="module")
def pool(model):
    pool = RenderProcesses({model.name: model}, processes=2, threads=2)
    pool.start()
    yield pool
    pool.close()


@given(st.integers(0, 40), st.integers(1, 8))
def test_split_covers_every_position_once_in_nearly_equal_parts(n, parts):
    ranges = split(n, parts)
    assert [i for r in ranges for i in r] == list(range(n))
    assert len(ranges) == min(n, parts) or (n == 0 and ranges == [])
    if ranges:
        assert max(map(len, ranges)) - min(map(len, ranges)) <= 1


def test_a_batch_split_between_processes_gives_render_s_own_images(pool, model):
    seeds = [7, 8, 9]
    mine = here(model, UNITS, seed=seeds, **OPTIONS)
    there = pool(model, UNITS, seed=seeds, **OPTIONS)
    assert len(pool.pids) == 2 and os.getpid() not in pool.pids
    assert [r.unit for r in there] == UNITS
    for a, b in zip(mine, there, strict=True):
        assert np.array_equal(np.asarray(a.image), np.asarray(b.image))
        assert b.activation == pytest.approx(a.activation, rel=1e-5)  # scored in a smaller batch: float sums
        assert {**a.recipe, "activation": 0} == {**b.recipe, "activation": 0}


def test_progress_is_one_report_for_the_whole_batch(pool, model):
    reports = []
    pool(model, UNITS, on_progress=reports.append, preview_every=1, **OPTIONS)
    steps = [p.step for p in reports]
    assert steps == sorted(steps) and steps[-1] == reports[-1].total == OPTIONS["steps"]
    assert all(len(p.activations) == len(UNITS) for p in reports)
    final = reports[-1].images  # the last step always carries every part's images
    assert final is not None and tuple(final.shape) == (len(UNITS), 3, 32, 32)
    assert float(final.min()) >= 0 and float(final.max()) <= 1


def test_stop_cancels_every_part_and_the_processes_render_again(pool, model):
    asked = []

    def stop():
        asked.append(time.monotonic())
        return len(asked) > 1

    with pytest.raises(RenderCancelled):
        pool(model, UNITS, stop=stop, method="lucid", size=32, steps=2000)
    again = pool(model, UNITS[:1], **OPTIONS)
    assert again[0].image.size == (32, 32)


def test_a_user_error_in_a_child_arrives_as_the_same_error_and_stops_the_other_part(pool, model):
    import threading

    raised = []

    def call():
        try:  # the good half alone would take minutes: it must be stopped when the bad half fails
            pool(model, [Unit("features.2", 99), UNITS[0]], method="lucid", size=256, steps=10_000)
        except Exception as exc:  # noqa: BLE001
            raised.append(exc)

    thread = threading.Thread(target=call)
    thread.start()
    thread.join(120)  # a liveness bound, far above the ~1 s this takes
    if thread.is_alive():
        pool._stop.set()  # let the pool go for the next tests
        thread.join()
        pytest.fail("the other part went on rendering after its batch-mate failed")
    assert isinstance(raised[0], UnitOutOfRange) and "channel 99" in str(raised[0])
    with pytest.raises(UserError, match="another model called 'tiny' \\(weights tiny-seed0, not tiny-seed1\\)"):
        pool(tiny_loaded_model(seed=1), UNITS, **OPTIONS)


def test_a_killed_child_fails_its_batch_and_the_next_render_starts_a_new_one(pool, model):
    before = set(pool.pids)

    def kill_one(_progress):
        if pool.pids:
            os.kill(pool.pids[0], signal.SIGKILL)

    with pytest.raises(RenderProcessDied, match="next render starts a new one"):
        pool(model, UNITS, on_progress=kill_one, method="lucid", size=32, steps=2000)
    fresh = pool(model, UNITS, **OPTIONS)
    assert len(fresh) == len(UNITS) and not before & set(pool.pids)


def test_children_started_without_waiting_survive_ctrl_c_a_render_waits_for_them_and_close_ends_them(model):
    pool = RenderProcesses({model.name: model}, processes=2, threads=2)
    pool.start(wait=False)  # as `serve` does: the address is printed while they import PyTorch
    pids = pool.pids
    assert len(pids) == 2
    for pid in pids:  # Ctrl+C in the terminal reaches them too, while they still import PyTorch
        os.kill(pid, signal.SIGINT)
    mine, in_this_thread = here(model, UNITS, **OPTIONS), render(model, UNITS, **OPTIONS)
    first = pool(model, UNITS, **OPTIONS)  # they take seconds to import PyTorch: this one is rendered here
    assert pool.renders_here == 1
    pool.start()  # wait for them
    second = pool(model, UNITS, **OPTIONS)
    assert pool.renders_here == 1 and pool.pids == pids  # the same two, now ready, rendered the second
    for a, b, c, d in zip(mine, first, second, in_this_thread, strict=True):
        assert np.array_equal(np.asarray(d.image), np.asarray(b.image))  # the fallback is render() itself
        assert np.array_equal(np.asarray(a.image), np.asarray(c.image))
    pool.close()
    assert pool.pids == []
    for pid in pids:
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)


def test_the_server_renders_through_the_processes(pool, model, tmp_path):
    app = create_app({model.name: model}, cache_dir=tmp_path, render_fn=pool)
    with TestClient(app, base_url=BASE_URL) as client:
        created = client.post("/api/renders", json={"model": "tiny", "layer": "features.2", "unit": 3,
                                                    "size": 32, "steps": 6, "seed": 4})
        assert created.status_code == 202
        for _ in range(300):
            status = client.get(created.json()["links"]["self"]).json()
            if status["state"] == "done":
                break
            time.sleep(0.05)
        assert status["state"] == "done"
        png = client.get(created.json()["links"]["image"])
    expected = here(model, [UNITS[1]], seed=4, **OPTIONS)[0]
    assert status["activation"] == pytest.approx(expected.activation)
    from io import BytesIO

    from PIL import Image

    assert np.array_equal(np.asarray(Image.open(BytesIO(png.content)).convert("RGB")), np.asarray(expected.image))


def test_a_child_reports_at_most_every_tenth_of_a_second_and_always_its_last_step(monkeypatch):
    import torch

    from imagemachines.serve import render_process
    from imagemachines.vis.progress import Progress

    clock = iter([10.0, 10.05, 10.12, 10.2, 10.45, 10.46])
    monkeypatch.setattr(render_process.time, "monotonic", lambda: next(clock))
    sent = []

    class Pipe:
        def send(self, message):
            sent.append(message)

    report = render_process._reporter(Pipe())
    picture = torch.full((1, 3, 2, 2), 0.5)
    for step in range(1, 7):
        report(Progress(step, 6, [float(step)], picture))
    steps = [(m[1], m[4] is not None) for m in sent]
    # 10.0 sent with images; 10.05 too soon; 10.12 step only (images 0.3 s apart); 10.2 too soon again;
    # 10.45 step + images; 10.46 too soon, but the last step: always sent, with its images
    assert steps == [(1, True), (3, False), (5, True), (6, True)]
    assert sent[-1][4].dtype == np.uint8 and int(sent[-1][4].max()) == 128


def test_a_failing_callback_stops_the_children_and_the_next_render_is_not_mixed_up(pool, model):
    def broken(_progress):
        raise ValueError("the callback broke")

    with pytest.raises(ValueError, match="the callback broke"):
        pool(model, UNITS, on_progress=broken, method="lucid", size=32, steps=2000)
    pids = pool.pids
    again = pool(model, UNITS, seed=[7, 8, 9], **OPTIONS)  # answered by the same children, not by stale messages
    mine = here(model, UNITS, seed=[7, 8, 9], **OPTIONS)
    assert pool.pids == pids
    for a, b in zip(mine, again, strict=True):
        assert np.array_equal(np.asarray(a.image), np.asarray(b.image))


def test_merged_progress_is_the_slowest_part_s_step_and_images_only_when_every_part_has_some():
    from imagemachines.serve.render_process import _merged

    latest = [(3, 6, [0.5, 0.25]), (5, 6, [2.0])]
    picture = np.full((2, 3, 2, 2), 255, np.uint8), np.zeros((1, 3, 2, 2), np.uint8)
    report = _merged(latest, list(picture))
    assert (report.step, report.total, report.activations) == (3, 6, [0.5, 0.25, 2.0])
    assert tuple(report.images.shape) == (3, 3, 2, 2) and report.images[:2].min() == 1 and report.images[2].max() == 0
    assert _merged(latest, [picture[0], None]).images is None and _merged(latest, None).images is None


def test_a_child_out_of_memory_stays_out_of_memory_and_other_errors_are_the_servers():
    from imagemachines.serve.render_process import _child_error
    from imagemachines.serve.scheduler import failure

    oom = _child_error("OutOfMemoryError", "CUDA out of memory")
    assert isinstance(oom, MemoryError) and failure(oom)[1] == "request"
    bug = _child_error("TypeError", "'module' object is not callable")
    assert type(bug) is RuntimeError and "TypeError: 'module' object" in str(bug) and failure(bug)[1] == "server"


def test_the_status_says_whether_the_processes_are_ready_even_while_a_render_runs_here(model, tmp_path):
    pool = RenderProcesses({model.name: model}, processes=2, threads=2)
    app = create_app({model.name: model}, cache_dir=tmp_path, render_fn=pool)
    try:
        with TestClient(app, base_url=BASE_URL) as client:
            status = client.get("/api/status").json()
            assert (status["render_processes"], status["render_processes_ready"], status["warming_up"]) == \
                (2, 0, True)  # none started yet
            pool.start(wait=False)
            seen = []  # asked from the render's own thread, while it holds the pool: answers, never waits
            pool(model, UNITS[:1], on_progress=lambda _p: seen.append(pool.readiness()), **OPTIONS)
            assert pool.renders_here == 1 and seen and all(total == 2 for _ready, total in seen)
            pool.start()  # wait for both
            status = client.get("/api/status").json()
            assert (status["render_processes_ready"], status["warming_up"]) == (2, False)
            os.kill(pool.pids[0], signal.SIGKILL)
            pool._children[0].process.join(10)
            status = client.get("/api/status").json()
            assert (status["render_processes_ready"], status["warming_up"]) == (1, True)  # until a new one starts
    finally:
        pool.close()
    plain = create_app({model.name: model}, cache_dir=tmp_path)  # renders in the server's thread: nothing to wait for
    with TestClient(plain, base_url=BASE_URL) as client:
        status = client.get("/api/status").json()
        assert (status["render_processes"], status["render_processes_ready"], status["warming_up"]) == (0, 0, False)
