"""The scheduler's queueing, priority, batching, cancellation and memory, with a scripted fake engine.

The fake follows the engine's contract (``render(model, units, *, method, size, steps, seed, preview_every,
on_progress, stop) -> list[Render]``) but lets a test hold it mid-render; the API tests use the real engine.
"""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest
import torch
from PIL import Image

from imagemachines.errors import UserError
from imagemachines.serve.cache import RenderCache
from imagemachines.serve.scheduler import QueueFull, RenderSpec, Scheduler, failure
from imagemachines.serve.schemas import Limits
from imagemachines.vis import Progress, Render, RenderCancelled
from tests.conftest import tiny_loaded_model


class FakeEngine:
    """A render function that takes *steps* steps of *delay* seconds each and can be held before step 1."""

    def __init__(self, delay: float = 0.0, fail: Exception | None = None, pause_at: int | None = None,
                 pause_size: int | None = None):
        self.calls: list[dict] = []
        self.delay, self.fail = delay, fail
        self.gate = threading.Event()
        self.gate.set()
        self.started = threading.Event()
        # pause_at: renders (of side pause_size, if given) wait after that step, polling stop(), until `resume`
        self.pause_at, self.pause_size = pause_at, pause_size
        self.paused = threading.Event()
        self.resume = threading.Event()

    def __call__(self, model, units, *, method, size, steps, seed, preview_every, on_progress, stop):
        self.calls.append({"units": [str(u) for u in units], "size": size, "seeds": list(seed),
                           "preview_every": preview_every})
        self.started.set()
        while not self.gate.wait(0.005):
            if stop():
                raise RenderCancelled
        if self.fail is not None and len(units) > 1:
            raise self.fail
        for step in range(1, steps + 1):
            if stop():
                raise RenderCancelled
            time.sleep(self.delay)
            images = None
            if step % preview_every == 0 or step == steps:
                images = torch.full((len(units), 3, size, size), step / steps)
            on_progress(Progress(step, steps, [float(u.channel) for u in units], images))
            if step == self.pause_at and self.pause_size in (None, size) and not self.resume.is_set():
                self.paused.set()
                while not self.resume.wait(0.005):
                    if stop():
                        raise RenderCancelled
        return [Render(u, Image.new("RGB", (size, size), (s % 256, u.channel, 0)), float(u.channel),
                       {"unit": str(u), "seed": s, "activation": float(u.channel), "size": size})
                for u, s in zip(units, seed, strict=True)]


def spec(channel: int = 0, *, layer: str = "features.2", size: int = 32, steps: int = 4, seed: int = 0,
         method: str = "lucid") -> RenderSpec:
    return RenderSpec("tiny", layer, channel, None, None, method, size, steps, seed)


@pytest.fixture
def make(tmp_path):
    made = []

    def _make(engine, **kw) -> Scheduler:
        kw.setdefault("batch_window", 0)
        s = Scheduler({"tiny": tiny_loaded_model()}, RenderCache(tmp_path / "cache"), render_fn=engine, **kw)
        made.append(s)
        return s

    yield _make
    for s in made:
        s.close()


def wait(scheduler: Scheduler, job, states=("done", "failed", "cancelled"), timeout=10.0):
    deadline = time.monotonic() + timeout
    while scheduler.snapshot(job)["state"] not in states:
        assert time.monotonic() < deadline, f"job stuck in {scheduler.snapshot(job)['state']}"
        time.sleep(0.005)
    return scheduler.snapshot(job)


def test_pending_requests_with_the_same_settings_share_one_engine_call(make):
    engine = FakeEngine()
    s = make(engine)
    engine.gate.clear()
    first = s.submit(spec(0))
    assert engine.started.wait(5)
    same = [s.submit(spec(c, seed=10 + c)) for c in range(1, 5)]
    other_layer = s.submit(spec(1, layer="features.3"))
    engine.gate.set()
    for job in [first, *same, other_layer]:
        assert wait(s, job)["state"] == "done"
    assert [c["units"] for c in engine.calls] == [
        ["features.2:0"], ["features.2:1", "features.2:2", "features.2:3", "features.2:4"], ["features.3:1"]]
    assert engine.calls[1]["seeds"] == [11, 12, 13, 14]  # each request keeps its own seed inside the batch
    assert s.counts()["batches"] == 3


def test_batches_respect_the_unit_and_pixel_limits(make):
    engine = FakeEngine()
    s = make(engine, limits=Limits(max_batch=3, max_batch_pixels=64 * 64 * 2), preempt=False)
    engine.gate.clear()
    s.submit(spec(0, size=16))
    assert engine.started.wait(5)
    small = [s.submit(spec(c, size=16)) for c in range(1, 8)]
    big = [s.submit(spec(c, size=64)) for c in range(4)]
    engine.gate.set()
    for job in small + big:
        wait(s, job)
    sizes = [(c["size"], len(c["units"])) for c in engine.calls[1:]]
    assert sizes == [(64, 2), (64, 2), (16, 3), (16, 2), (16, 2)]  # 7 at a cap of 3: three calls, shared out evenly


@pytest.mark.parametrize(("waiting", "cap", "first"), [
    (36, 16, 12), (32, 16, 16), (33, 16, 11), (17, 16, 9), (16, 16, 16), (5, 16, 5), (1, 1, 1), (0, 4, 0), (7, 3, 3),
])
def test_waiting_requests_are_shared_out_evenly_between_as_few_calls_as_the_cap_allows(waiting, cap, first):
    from imagemachines.serve.scheduler import even_share

    assert even_share(waiting, cap) == first
    left, calls = waiting, []
    while left:
        calls.append(even_share(left, cap))
        left -= calls[-1]
    assert len(calls) == -(-waiting // cap) and max(calls, default=0) - min(calls, default=0) <= 1


def test_larger_images_first_then_arrival_order(make):
    engine = FakeEngine()
    s = make(engine, preempt=False)
    engine.gate.clear()
    s.submit(spec(0, size=16))
    assert engine.started.wait(5)
    jobs = [s.submit(spec(1, size=32)), s.submit(spec(2, size=64)), s.submit(spec(3, size=48)),
            s.submit(spec(4, size=64, layer="features.3"))]
    assert [s.queue_position(j) for j in jobs] == [4, 1, 3, 2]
    engine.gate.set()
    for job in jobs:
        wait(s, job)
    assert [c["units"][0] for c in engine.calls[1:]] == ["features.2:2", "features.3:4", "features.2:3",
                                                         "features.2:1"]


def test_a_larger_request_preempts_a_small_render_early_in_its_run(make):
    engine = FakeEngine(delay=0.01)
    s = make(engine)
    small = s.submit(spec(0, size=16, steps=200))
    assert engine.started.wait(5)
    while s.snapshot(small)["step"] < 2:
        time.sleep(0.005)
    big = s.submit(spec(1, size=64, steps=5))
    assert wait(s, big)["state"] == "done"
    assert wait(s, small, timeout=20)["state"] == "done"
    assert [c["size"] for c in engine.calls] == [16, 64, 16]
    assert s.counts()["preempted"] == 1


def test_queue_bound_gives_retry_after_and_cancel_frees_the_slot(make):
    engine = FakeEngine()
    s = make(engine, limits=Limits(max_queue=3))
    engine.gate.clear()
    s.submit(spec(0, size=16))
    assert engine.started.wait(5)
    queued = [s.submit(spec(c)) for c in range(1, 4)]
    with pytest.raises(QueueFull) as err:
        s.submit(spec(9))
    assert err.value.retry_after >= 1
    assert f"The render queue is full (3 requests waiting). Try again in about {err.value.retry_after} s." == str(
        err.value)
    assert s.submit(queued[0].spec) is queued[0]  # asking again for a queued render is not a new request
    s.cancel(queued[1].id)
    assert s.snapshot(queued[1])["state"] == "cancelled"
    assert s.submit(spec(9)).state == "queued"
    engine.gate.set()


def test_cancelling_a_running_render_stops_the_engine_and_the_worker_goes_on(make):
    engine = FakeEngine()
    s = make(engine)
    engine.gate.clear()
    running = s.submit(spec(0, size=16))
    assert engine.started.wait(5)
    after = s.submit(spec(1, size=16, layer="features.3"))
    s.cancel(running.id)
    assert wait(s, running)["state"] == "cancelled"
    engine.gate.set()
    assert wait(s, after)["state"] == "done"
    assert s.cache.png(running.id) is None


def test_same_request_same_render_and_finished_renders_survive_a_restart(make, tmp_path):
    engine = FakeEngine()
    s = make(engine)
    job = s.submit(spec(3, seed=7))
    assert wait(s, job)["state"] == "done"
    assert s.submit(spec(3, seed=7)) is job
    assert s.submit(spec(3, seed=8)).id != job.id
    assert len(engine.calls) <= 2
    other = s.submit(spec(4))
    wait(s, other)
    fresh_engine = FakeEngine()
    fresh = make(fresh_engine)  # a restarted server on the same cache folder
    assert fresh.submit(spec(3, seed=7)).state == "done"
    assert fresh.counts()["cache_hits"] == 1
    again = fresh.get(other.id)
    assert again is not None and again.state == "done" and again.recipe["unit"] == "features.2:4"
    assert fresh_engine.calls == []


def test_previews_exist_only_while_running(make):
    engine = FakeEngine(delay=0.02)
    s = make(engine)
    job = s.submit(spec(2, size=24, steps=30))
    while s.snapshot(job)["step"] < 2:
        time.sleep(0.005)
    step, png = s.preview_png(job)
    assert png.startswith(b"\x89PNG") and step >= 1
    assert wait(s, job)["state"] == "done"
    assert s.preview_png(job) is None and job.preview is None


def test_memory_stays_flat_over_many_requests(make):
    engine = FakeEngine()
    s = make(engine, limits=Limits(max_jobs=40))
    first = s.submit(spec(0, size=16, steps=1, seed=0))
    wait(s, first)
    for seed in range(1, 1000):
        wait(s, s.submit(spec(seed % 16, size=16, steps=1, seed=seed)))
    counts = s.counts()
    assert counts["known"] <= 40 and counts["queued"] == 0
    assert all(j.preview is None for j in s._jobs.values())
    assert s.get(first.id).state == "done"  # forgotten in memory, still answered from the disk cache


def test_a_bad_unit_fails_alone_and_engine_crashes_become_failed_jobs(make):
    engine = FakeEngine(fail=UserError("no such unit"))
    s = make(engine)
    engine.gate.clear()
    s.submit(spec(0, size=16))
    assert engine.started.wait(5)
    pair = [s.submit(spec(1)), s.submit(spec(2))]
    engine.gate.set()
    assert [wait(s, j)["state"] for j in pair] == ["done", "done"]  # retried one by one

    class Boom(FakeEngine):
        def __call__(self, *a, **kw):
            raise RuntimeError("CUDA out of memory")

    broken = make(Boom())
    job = broken.submit(spec(5))
    snap = wait(broken, job)
    assert snap["state"] == "failed" and "out of memory" in snap["error"]
    assert wait(broken, broken.submit(spec(6)))["state"] == "failed"  # the worker survived


def test_close_cancels_everything_and_stops_the_worker(make):
    engine = FakeEngine()
    s = make(engine)
    engine.gate.clear()
    running = s.submit(spec(0, size=16))
    assert engine.started.wait(5)
    queued = s.submit(spec(1))
    s.close(timeout=5)
    assert s.snapshot(running)["state"] == "cancelled" and s.snapshot(queued)["state"] == "cancelled"
    assert not s._thread.is_alive()
    with pytest.raises(QueueFull):
        s.submit(spec(2))


def test_a_failure_while_storing_a_result_fails_the_job_not_the_worker(make, caplog):
    engine = FakeEngine()
    s = make(engine)

    def broken_put(key, render, request):
        raise TypeError("recipe is not JSON-able")

    s.cache.put = broken_put
    snap = wait(s, s.submit(spec(1)))
    assert snap["state"] == "failed" and "JSON-able" in snap["error"]
    [record] = [r for r in caplog.records if r.name == "imagemachines.serve"]  # with its traceback, for the operator
    assert record.getMessage() == "render batch failed" and record.exc_info[0] is TypeError
    del s.cache.put  # the real method again
    assert wait(s, s.submit(spec(2)))["state"] == "done"


def test_a_stream_of_larger_requests_preempts_a_small_render_at_most_twice(make):
    """Without the cap a small render would never finish while larger requests keep coming (starvation)."""
    engine = FakeEngine(pause_at=1, pause_size=16)
    s = make(engine)
    small = s.submit(spec(0, size=16, steps=10))
    bigs = []
    for c in (1, 2, 3):
        assert engine.paused.wait(5)  # the small render is at step 1 of 10: early enough to be preempted
        engine.paused.clear()
        bigs.append(s.submit(spec(c, size=64, steps=1)))
        if c < 3:
            assert wait(s, bigs[-1])["state"] == "done"
    engine.resume.set()
    assert wait(s, small)["state"] == "done" and wait(s, bigs[-1])["state"] == "done"
    assert [c["size"] for c in engine.calls] == [16, 64, 16, 64, 16, 64]
    assert small.preempted == 2 and s.counts()["preempted"] == 2


@pytest.mark.parametrize(("paused_at", "sizes"), [(6, [16, 64]), (5, [16, 64, 16])])
def test_a_render_past_half_its_steps_is_not_preempted(make, paused_at, sizes):
    engine = FakeEngine(pause_at=paused_at)
    s = make(engine)
    small = s.submit(spec(0, size=16, steps=10))
    assert engine.paused.wait(5)  # step 6 of 10 is past the half; step 5, at the half, may still be preempted
    big = s.submit(spec(1, size=64, steps=1))
    if paused_at == 5:
        assert wait(s, big)["state"] == "done"  # it ran while the small one went back to the queue
    engine.resume.set()
    assert wait(s, small)["state"] == "done" and wait(s, big)["state"] == "done"
    assert [c["size"] for c in engine.calls] == sizes
    assert s.counts()["preempted"] == len(sizes) - 2


def test_a_preempted_render_keeps_its_place_in_arrival_order(make):
    engine = FakeEngine(pause_at=1, pause_size=16)
    s = make(engine)
    first = s.submit(spec(0, size=16, steps=4))
    assert engine.paused.wait(5)
    second = s.submit(spec(1, size=16, steps=4, layer="features.3"))  # same size, arrived later
    big = s.submit(spec(2, size=64, steps=1))
    deadline = time.monotonic() + 10
    while s.counts()["preempted"] < 1:
        assert time.monotonic() < deadline
        time.sleep(0.005)
    assert s.queue_position(first) < s.queue_position(second)
    assert s.snapshot(first)["state"] == "queued" and s.snapshot(first)["step"] == 0  # it starts over
    engine.resume.set()
    for job in (first, second, big):
        assert wait(s, job)["state"] == "done"
    assert [c["units"] for c in engine.calls] == [["features.2:0"], ["features.2:2"], ["features.2:0"],
                                                  ["features.3:1"]]


def test_a_full_disk_fails_only_the_unit_it_hit_with_advice(make):
    import errno

    engine = FakeEngine()
    s = make(engine, preempt=False)
    engine.gate.clear()
    s.submit(spec(0, size=16))
    assert engine.started.wait(5)
    pair = [s.submit(spec(1)), s.submit(spec(2))]  # one batch of two
    real_put = s.cache.put

    def put(key, render, request):
        if request["channel"] == 1:
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_put(key, render, request)

    s.cache.put = put
    engine.gate.set()
    failed, done = (wait(s, j) for j in pair)
    assert engine.calls[-1]["units"] == ["features.2:1", "features.2:2"]
    assert failed["state"] == "failed" and failed["error"] == (
        "Could not write the render cache ([Errno 28] No space left on device); "
        "check free disk space and the --cache-dir permissions.") and failed["fault"] == "server"
    assert done["state"] == "done" and s.cache.png(pair[1].id) is not None


def test_only_finished_jobs_are_forgotten_oldest_first(make):
    """The small, fast twin of the memory test (which the mutation run leaves out for its 30 s)."""
    engine = FakeEngine()
    s = make(engine, limits=Limits(max_jobs=3), preempt=False)
    done = [wait(s, s.submit(spec(c, size=16, steps=1))) and s._jobs[s.key(spec(c, size=16, steps=1))]
            for c in range(3)]
    engine.gate.clear()
    running = s.submit(spec(5, size=16, steps=1))
    assert engine.started.wait(5)
    queued = s.submit(spec(6, size=16, steps=1, layer="features.3"))
    assert list(s._jobs) == [done[2].id, running.id, queued.id]  # the two oldest finished ones went first
    more = s.submit(spec(7, size=16, steps=1, layer="features.1"))
    assert list(s._jobs) == [running.id, queued.id, more.id]
    extra = s.submit(spec(8, size=16, steps=1, layer="features.0"))
    assert s.counts()["known"] == 4 and extra.id in s._jobs  # nothing finished left to forget: over the bound
    engine.gate.set()
    for job in (running, queued, more, extra):
        assert wait(s, job)["state"] == "done"
    assert s.get(done[0].id).state == "done"  # forgotten in memory, back from the disk cache
    assert list(s._jobs) == [more.id, extra.id, done[0].id]  # remembering it made room again


@pytest.mark.parametrize(("queued", "max_batch", "batch_seconds", "expected"), [
    (0, 4, 2.0, 2), (3, 4, 2.0, 2), (4, 4, 2.0, 4), (8, 4, 2.0, 6), (1, 1, 2.0, 4), (0, 4, 0.1, 1),
    (1000, 1, 2.0, 300),
])
def test_retry_after_is_the_batches_ahead_times_a_batch_clamped(make, queued, max_batch, batch_seconds, expected):
    s = make(FakeEngine(), limits=Limits(max_batch=max_batch))
    s._queued = {str(i): None for i in range(queued)}
    s._batch_seconds = batch_seconds
    try:
        assert s._retry_after() == expected
    finally:
        s._queued = {}


def test_counts_cancel_and_unknown_ids(make):
    engine = FakeEngine()
    s = make(engine, preempt=False)
    engine.gate.clear()
    running = s.submit(spec(0, size=16))
    assert engine.started.wait(5)
    queued = [s.submit(spec(c, layer="features.3")) for c in (1, 2)]
    assert s.counts() == {"queued": 2, "running": 1, "known": 3, "batches": 0, "units": 0, "failed": 0,
                          "cancelled": 0, "cache_hits": 0, "preempted": 0}
    assert s.cancel("no-such-job") is None and s.get("no-such-job") is None
    s.cancel(queued[0].id)
    s.cancel(queued[1].id)
    assert s.counts()["cancelled"] == 2 and s.counts()["queued"] == 0
    engine.gate.set()
    assert wait(s, running)["state"] == "done"
    assert s.cancel(running.id).state == "done"  # finished work cannot be cancelled
    assert s.counts() == {"queued": 0, "running": 0, "known": 3, "batches": 1, "units": 1, "failed": 0,
                          "cancelled": 2, "cache_hits": 0, "preempted": 0}


def test_a_render_found_only_on_disk_comes_back_with_its_spec_and_activation(make, tmp_path):
    engine = FakeEngine()
    s = make(engine)
    job = s.submit(spec(3, seed=7))
    assert wait(s, job)["state"] == "done"
    fresh = make(FakeEngine())
    again = fresh.get(job.id)
    assert again.spec == spec(3, seed=7) and again.state == "done"
    assert again.activation == 3.0 and again.recipe["activation"] == 3.0
    assert fresh.get(job.id) is again  # remembered now
    other_weights = Scheduler({"tiny": tiny_loaded_model(seed=1)}, s.cache, render_fn=FakeEngine())
    assert other_weights.get(job.id) is None  # rendered with other weights: not this server's render
    assert s._done_job("k", spec(1), {"activation": "n/a"}).activation is None


def test_a_preview_is_encoded_once_per_step(make):
    import io

    import numpy as np

    s = make(FakeEngine())
    job = s.submit(spec(1))
    wait(s, job)
    job.preview, job.preview_step = np.zeros((4, 4, 3), np.uint8), 1
    first = s.preview_png(job)
    assert s.preview_png(job) is first and first[0] == 1
    job.preview, job.preview_step = np.full((4, 4, 3), 200, np.uint8), 2
    step, data = s.preview_png(job)
    assert step == 2 and np.asarray(Image.open(io.BytesIO(data))).min() == 200


def test_a_closed_scheduler_refuses_new_work_saying_it_is_shutting_down(make):
    s = make(FakeEngine())
    s.close()
    for submit in (lambda: s.submit(spec(1)), lambda: s.submit_many([spec(1), spec(2)])):
        with pytest.raises(QueueFull) as refused:
            submit()
        assert refused.value.retry_after == 5
        assert str(refused.value) == "The server is shutting down; try again in a few seconds."
    assert s.counts()["queued"] == 0


def test_asking_again_for_a_running_or_cached_render_gives_the_same_job_and_counts_cache_hits(make, tmp_path):
    engine = FakeEngine(pause_at=1)
    s = make(engine)
    running = s.submit(spec(3))
    assert engine.paused.wait(5)
    assert s.snapshot(running)["state"] == "running" and s.submit(spec(3)) is running  # not a second render
    engine.resume.set()
    wait(s, running)
    assert len(engine.calls) == 1
    fresh = Scheduler({"tiny": tiny_loaded_model()}, RenderCache(tmp_path / "cache"), render_fn=engine)
    hits = [fresh.submit(spec(3)), fresh.submit(spec(3))]  # a new server: from the disk cache, twice
    assert hits[0].id == running.id and hits[0].spec == spec(3) and hits[0].state == "done"
    assert hits[1] is hits[0] and fresh.counts()["cache_hits"] == 1
    fresh._jobs.clear()  # forgotten in memory: the next is another cache hit, counted on top
    assert fresh.submit(spec(3)).id == running.id and fresh.counts()["cache_hits"] == 2
    assert len(engine.calls) == 1


@pytest.mark.parametrize(("steps", "device", "every"), [
    (64, "cpu", 1), (4000, "cpu", 1), (16, "cuda", 1), (64, "cuda", 2), (100, "cuda", 3), (96, "cuda", 3),
    (256, "cuda", 8), (320, "cuda", 8), (5000, "mps", 8),
])
def test_previews_come_every_step_on_a_cpu_and_up_to_every_8th_on_a_gpu(steps, device, every):
    from imagemachines.serve.scheduler import preview_every

    assert preview_every(steps, device) == every


def test_a_snapshot_holds_the_public_fields_and_the_worker_is_a_named_daemon(make):
    s = make(FakeEngine())
    job = s.submit(spec(2))
    snap = wait(s, job)
    assert snap == {"id": job.id, "state": "done", "step": 4, "total": 4, "activation": 2.0, "error": None,
                    "fault": None, "recipe": job.recipe, "version": job.version}
    # a daemon, so a render stuck in the engine never keeps the process from exiting; named for py-spy and logs
    assert (s._thread.name, s._thread.daemon) == ("imagemachines-render", True)


def test_failed_and_cancelled_renders_are_counted_once_per_unit(make, caplog):
    class Boom(FakeEngine):
        def __call__(self, *a, **kw):
            self.calls.append(kw)
            raise TypeError("'module' object is not callable")  # a bug of the server, as in issue 18

    class GivesUp(FakeEngine):  # an engine that cancels by itself, not asked to by a preemption
        def __call__(self, *a, **kw):
            self.calls.append(kw)
            raise RenderCancelled

    for engine, state in [(Boom(), "failed"), (GivesUp(), "cancelled")]:
        s = make(engine)
        caplog.clear()
        jobs, _ = s.submit_many([spec(1), spec(2)])  # queued together: one engine call of two units
        assert [wait(s, j)["state"] for j in jobs] == [state, state]
        assert len(engine.calls) == 1  # a crash is not retried unit by unit (only a UserError is)
        logged = [r.getMessage() for r in caplog.records if r.name == "imagemachines.serve"]
        if state == "failed":
            assert logged == ["render of 2 unit(s) failed"]
            assert [(s.snapshot(j)["error"], s.snapshot(j)["fault"]) for j in jobs] == [(
                "The server failed while rendering (TypeError: 'module' object is not callable). This is a fault of "
                "the server, not of the request: try again, and report it if it keeps failing.", "server")] * 2
        else:
            assert logged == [] and [s.snapshot(j)["error"] for j in jobs] == [None, None]
        other = "cancelled" if state == "failed" else "failed"
        assert (s.counts()[state], s.counts()[other], s.counts()["batches"]) == (2, 0, 0)
        assert set(s.counts()) == {"queued", "running", "known", "batches", "units", "failed", "cancelled",
                                   "cache_hits", "preempted"}


def test_an_idle_worker_waits_the_batch_window_so_simultaneous_clicks_share_a_call(make, monkeypatch):
    import types

    from imagemachines.serve import scheduler as scheduler_module

    windows, in_window, release = [], threading.Event(), threading.Event()

    def sleep(seconds):  # the window, held open until the test has sent its other clicks
        windows.append(seconds)
        in_window.set()
        assert release.wait(5)

    monkeypatch.setattr(scheduler_module, "time", types.SimpleNamespace(sleep=sleep, monotonic=time.monotonic))
    engine = FakeEngine()
    s = make(engine, batch_window=0.25)
    engine.gate.clear()
    first = s.submit(spec(0))
    assert in_window.wait(5)  # the worker, just started by this request, waits before taking a batch
    clicks = [s.submit(spec(c)) for c in (1, 2)]
    release.set()
    assert engine.started.wait(5)
    later = [s.submit(spec(c)) for c in (3, 4)]  # queued while the worker is busy: no window after that call
    engine.gate.set()
    for job in [first, *clicks, *later]:
        assert wait(s, job)["state"] == "done"
    assert [c["units"] for c in engine.calls] == [["features.2:0", "features.2:1", "features.2:2"],
                                                  ["features.2:3", "features.2:4"]]
    assert windows == [0.25]
    default = Scheduler({"tiny": tiny_loaded_model()}, s.cache, render_fn=engine)
    assert 0 < default.batch_window <= 0.05  # by default the window delays a lone click by no more than 50 ms


def test_the_batch_time_estimate_follows_each_batch(make, monkeypatch):
    import types

    from imagemachines.serve import scheduler as scheduler_module

    clock = iter([100.0, 103.0, 200.0, 201.0])  # a batch of 3 s, then one of 1 s
    fake_time = types.SimpleNamespace(sleep=time.sleep, monotonic=lambda: next(clock))
    monkeypatch.setattr(scheduler_module, "time", fake_time)
    s = make(FakeEngine())
    assert s._batch_seconds == 2.0  # the guess before any render
    wait(s, s.submit(spec(1)))
    assert s._batch_seconds == pytest.approx(0.7 * 2.0 + 0.3 * 3.0)
    wait(s, s.submit(spec(2)))
    assert s._batch_seconds == pytest.approx(0.7 * 2.3 + 0.3 * 1.0)
    assert s._retry_after() == 2  # ceil(1.91 s x one batch ahead)


def test_progress_reaches_every_running_job_with_previews_clamped_to_bytes(make):
    class Steps(FakeEngine):
        """Step 1 without activations or images, then (on `resume`) step 2 with both, then (on `gate`) done."""

        def __call__(self, model, units, *, on_progress, stop, **kw):
            images = torch.tensor([-0.5, 0.6, 1.5]).view(1, 3, 1, 1).expand(len(units), 3, 2, 2)
            on_progress(Progress(1, 3, [], None))  # nothing breaks for want of them
            self.started.set()
            assert self.resume.wait(5)
            on_progress(Progress(2, 3, [7.0, 8.0, 9.0], images))
            self.paused.set()
            assert self.gate.wait(5)
            return [Render(u, Image.new("RGB", (2, 2)), 1.0, {"unit": str(u)}) for u in units]

    engine = Steps()
    engine.gate.clear()
    s = make(engine)
    jobs, _ = s.submit_many([spec(c, size=16, steps=3) for c in (0, 1, 2)])
    assert engine.started.wait(5)
    assert [(s.snapshot(j)["step"], s.snapshot(j)["activation"], j.preview) for j in jobs] == [(1, None, None)] * 3
    s.cancel(jobs[0].id)  # the first of the batch leaves; the others still hear of every step
    engine.resume.set()
    assert engine.paused.wait(5)
    assert [s.snapshot(j)["activation"] for j in jobs] == [None, 8.0, 9.0]
    assert [(j.step, j.total) for j in jobs] == [(1, 3), (2, 3), (2, 3)]
    assert jobs[1].preview.tolist() == [[[0, 153, 255]] * 2] * 2 and jobs[1].preview.dtype == np.uint8
    engine.gate.set()
    assert [wait(s, j)["state"] for j in jobs] == ["cancelled", "done", "done"]


def test_a_user_error_for_a_single_unit_fails_it_with_the_engines_words(make):
    class Refuses(FakeEngine):
        def __call__(self, model, units, **kw):
            self.calls.append([str(u) for u in units])
            raise UserError(f"unit {units[0]} is outside the layer")

    engine = Refuses()
    s = make(engine)
    snap = wait(s, s.submit(spec(9)))
    assert (snap["state"], snap["error"]) == ("failed", "unit features.2:9 is outside the layer")
    assert snap["fault"] == "request"  # the request can change: no retry by the interface
    assert engine.calls == [["features.2:9"]] and s.counts()["failed"] == 1


@pytest.mark.parametrize("exc", [torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB"),
                                 MemoryError("OutOfMemoryError: CUDA out of memory")])  # as a render process says it
def test_only_running_out_of_memory_advises_a_smaller_size(exc):
    message, fault = failure(exc)
    assert fault == "request" and "Try a smaller size" in message and str(exc) in message
    for bug in (TypeError("'module' object is not callable"), RuntimeError("index out of range"), OSError("EIO")):
        message, fault = failure(bug)
        assert fault == "server" and "smaller" not in message and "fault of the server" in message
        assert f"{type(bug).__name__}: {bug}" in message
    assert failure(UserError("Layer 'x' has 8 channels")) == ("Layer 'x' has 8 channels", "request")


def test_cancelling_every_job_of_a_render_stops_the_engine_at_its_next_step(make):
    engine = FakeEngine(pause_at=1, pause_size=32)  # it polls stop() while paused and is never resumed
    s = make(engine, preempt=False)
    jobs, _ = s.submit_many([spec(1, steps=8), spec(2, steps=8)])
    assert engine.paused.wait(5)
    s.cancel(jobs[0].id)
    s.cancel(jobs[1].id)
    after = s.submit(spec(3, layer="features.3", steps=1, size=16))
    assert wait(s, after)["state"] == "done"  # the worker was freed by the stop, not by a resume
    assert [c["units"] for c in engine.calls] == [["features.2:1", "features.2:2"], ["features.3:3"]]


def test_the_engine_is_asked_for_previews_as_often_as_the_device_allows(make):
    engine = FakeEngine()
    s = make(engine)
    wait(s, s.submit(spec(1, steps=64)))
    gpu_like = tiny_loaded_model().to("meta")  # not a CPU: the fake engine never computes with it
    g = Scheduler({"tiny": gpu_like}, RenderCache(s.cache.root), render_fn=engine, batch_window=0)
    try:
        wait(g, g.submit(spec(2, steps=64)))
        wait(g, g.submit(spec(3, steps=320)))
    finally:
        g.close()
    assert [c["preview_every"] for c in engine.calls] == [1, 2, 8]


def test_units_the_engine_returned_no_image_for_fail_and_the_rest_are_stored(make):
    class Short(FakeEngine):  # renders all but the last unit of a batch
        def __call__(self, model, units, **kw):
            return super().__call__(model, units, **kw)[:-1]

    engine = Short()
    s = make(engine)
    jobs, _ = s.submit_many([spec(c) for c in (1, 2, 3)])
    assert [wait(s, j)["state"] for j in jobs] == ["done", "done", "failed"]
    assert (s.snapshot(jobs[2])["error"], s.snapshot(jobs[2])["fault"]) == (
        "The engine returned no image for this unit (a fault of the server); try again.", "server")
    jobs, _ = s.submit_many([spec(c, layer="features.3") for c in (1, 2)])
    assert [wait(s, j)["state"] for j in jobs] == ["done", "failed"]
    assert s.counts()["units"] == 5 and s.counts()["batches"] == 2  # units asked for, summed over the batches
    assert s.counts()["failed"] == 2


def test_each_change_to_a_job_bumps_its_version_by_one():
    from imagemachines.serve.scheduler import Job

    job = Job("k", spec(1), 0)
    versions = [job.version]
    for _ in range(3):
        job.touch()
        versions.append(job.version)
    assert versions == [0, 1, 2, 3]


def test_without_a_render_function_the_scheduler_uses_the_real_engine(tmp_path):
    s = Scheduler({"tiny": tiny_loaded_model()}, RenderCache(tmp_path / "cache"), batch_window=0)
    try:
        snap = wait(s, s.submit(spec(1, size=16, steps=2)))
    finally:
        s.close()
    assert snap["state"] == "done" and snap["recipe"]["steps"] == 2
    assert Image.open(s.cache.png(snap["id"])).size == (16, 16)


def test_close_stops_waiting_for_an_engine_that_does_not_listen_after_its_timeout(make):
    release = threading.Event()

    class Deaf(FakeEngine):  # ignores stop(): only `release` ends the call
        def __call__(self, *a, **kw):
            self.started.set()
            release.wait(30)
            raise RenderCancelled

    engine = Deaf()
    s = make(engine)
    job = s.submit(spec(1))
    assert engine.started.wait(5)
    s.close(timeout=0.2)  # returns although the worker is still inside the engine
    try:
        assert s._thread.is_alive() and s.snapshot(job)["state"] == "cancelled"
    finally:
        release.set()
    s._thread.join(5)
    assert not s._thread.is_alive()
