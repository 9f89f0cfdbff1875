"""Server benchmark: batching gain of the scheduler, time to first preview, and API requests per second.

    .venv/bin/python -m benchmarks.bench_serve [--model mobilenet_v2] [--device cpu] [--quick]

1. Batching: the same N render requests (one layer, N channels) through the scheduler with batching off
   (``max_batch=1``: N engine calls) and on (``max_batch=N``: one call), alternated, best of the repeats.
2. First preview: POST a default-size render to a live server (uvicorn in a thread) and time until its
   first preview image is served; the render is then cancelled.
3. Requests/s: with httpx (async, 16 connections) against the live server: status reads, cache-hit POSTs and
   final-PNG downloads. Client and server share the machine's cores, so these are lower bounds.
Writes docs/benchmarks.md (section serve-cpu or serve-cuda).
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path

import httpx

from benchmarks.report import machine, publish
from imagemachines.errors import UserError
from imagemachines.models import DEFAULT_MODEL, load_model, resolve_device
from imagemachines.serve.app import create_app
from imagemachines.serve.cache import RenderCache
from imagemachines.serve.scheduler import RenderSpec, Scheduler
from imagemachines.serve.schemas import Limits

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tests.serve.conftest import live_server  # noqa: E402


def _model(name: str, device: str):
    try:
        return load_model(name, device=device), ""
    except UserError as exc:  # offline without cached weights: the tiny test network, said so in the report
        from tests.conftest import tiny_loaded_model

        print(f"note: {exc}\nfalling back to the tiny test model")
        return tiny_loaded_model().to(resolve_device(device)), f" ({name} unavailable: tiny test model)"


def _wait_all(scheduler: Scheduler, jobs) -> None:
    while any(scheduler.snapshot(j)["state"] not in ("done", "failed", "cancelled") for j in jobs):
        time.sleep(0.005)
    assert all(scheduler.snapshot(j)["state"] == "done" for j in jobs), [scheduler.snapshot(j) for j in jobs]


def batching(model, layer: str, n: int, size: int, steps: int, repeats: int) -> dict[int, float]:
    """Seconds to finish n requests with max_batch 1 and n (best of *repeats*, alternated)."""
    times: dict[int, list[float]] = {1: [], n: []}
    for rep in range(repeats):
        for max_batch in (1, n):
            with tempfile.TemporaryDirectory() as tmp:
                s = Scheduler({model.name: model}, RenderCache(Path(tmp)), batch_window=0, preempt=False,
                              limits=Limits(max_batch=max_batch, max_batch_pixels=n * size * size, max_size=4096))
                specs = [RenderSpec(model.name, layer, c, None, None, "lucid", size, steps, rep) for c in range(n)]
                start = time.perf_counter()
                _wait_all(s, [s.submit(sp) for sp in specs])
                times[max_batch].append(time.perf_counter() - start)
                s.close()
    return {k: min(v) for k, v in times.items()}


def first_preview(base: str, model: str, layer: str, tries: int) -> list[float]:
    out = []
    with httpx.Client(base_url=base, timeout=120) as client:
        for seed in range(tries):
            start = time.perf_counter()
            r = client.post("/api/renders", json={"model": model, "layer": layer, "unit": seed, "seed": 100 + seed})
            rid = r.json()["id"]
            while True:
                image = client.get(f"/api/renders/{rid}/image")
                if image.headers.get("x-render-step") or image.headers.get("x-render-state") == "done":
                    break
                time.sleep(0.01)
            out.append(time.perf_counter() - start)
            client.delete(f"/api/renders/{rid}")
    return out


async def _rate(base: str, method: str, path: str, body: dict | None, seconds: float) -> float:
    async with httpx.AsyncClient(base_url=base, timeout=30, limits=httpx.Limits(max_connections=16)) as client:
        done = 0
        stop = time.perf_counter() + seconds

        async def worker():
            nonlocal done
            while time.perf_counter() < stop:
                r = await client.request(method, path, json=body)
                assert r.status_code < 300, r.text
                done += 1

        start = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(16)))
        return done / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=DEFAULT_MODEL)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--layer", default="features.9")
    parser.add_argument("--quick", action="store_true", help="fewer repeats and shorter runs")
    args = parser.parse_args()
    device = resolve_device(args.device)
    model, note = _model(args.model, str(device))
    layer = args.layer if any(lay.name == args.layer for lay in model.layers()) else model.layers()[-2].name
    gpu = device.type == "cuda"
    n, size, steps = (16, 224, 64) if gpu else (8, 64, 16)
    repeats = 1 if args.quick else 2

    print(f"batching: {n} units of {layer}, {size} px, {steps} steps on {device}")
    t = batching(model, layer, n, size, steps, repeats)
    print(f"  one by one {t[1]:.2f} s, batched {t[n]:.2f} s")

    app = create_app({model.name: model}, cache_dir=Path(tempfile.mkdtemp(prefix="bench-serve-")))
    with live_server(app) as base:
        tries = 2 if args.quick else 4
        previews = first_preview(base, model.name, layer, tries)
        print(f"first preview: {', '.join(f'{p:.2f}' for p in previews)} s")
        body = {"model": model.name, "layer": layer, "unit": 0, "size": 32 if not gpu else 64, "steps": 4}
        with httpx.Client(base_url=base) as client:
            rid = client.post("/api/renders", json=body).json()["id"]
            while client.get(f"/api/renders/{rid}").json()["state"] != "done":
                time.sleep(0.01)
        seconds = 1.0 if args.quick else 3.0
        rates = {
            "GET /api/renders/{id} (status)": asyncio.run(_rate(base, "GET", f"/api/renders/{rid}", None, seconds)),
            "POST /api/renders (cache hit)": asyncio.run(_rate(base, "POST", "/api/renders", body, seconds)),
            "GET /api/renders/{id}/image (final PNG)": asyncio.run(
                _rate(base, "GET", f"/api/renders/{rid}/image", None, seconds)),
        }
        for k, v in rates.items():
            print(f"  {k}: {v:.0f} req/s")
    app.state.scheduler.close()

    defaults_size = app.state.catalog.methods["lucid"]["size"]
    rows = "\n".join(f"| {k} | {v:.0f} |" for k, v in rates.items())
    md = f"""## Server (`benchmarks/bench_serve.py`, {device.type})

Measured on: {machine()}. Model: {model.name}{note}, layer {layer}.

**Batching.** {n} render requests for {n} channels ({size} px, {steps} steps, lucid), submitted together:

| scheduler | engine calls | wall time | per image |
| --- | --- | --- | --- |
| batching off (`max_batch=1`) | {n} | {t[1]:.2f} s | {t[1] / n:.3f} s |
| batching on (`max_batch={n}`) | 1 | {t[n]:.2f} s | {t[n] / n:.3f} s |

Batching gain: **{t[1] / t[n]:.1f}×** (best of {repeats}, alternated).

**First preview.** POST of a default render ({defaults_size} px, lucid) on an idle server until its first
preview image is served: median {statistics.median(previews):.2f} s (runs: {', '.join(f'{p:.2f}' for p in previews)} s).

**Requests per second** (httpx, 16 concurrent connections, {seconds:.0f} s each; client on the same machine):

| request | req/s |
| --- | --- |
{rows}
"""
    print(md)
    publish(f"serve-{device.type}", md, quick=args.quick)


if __name__ == "__main__":
    main()
