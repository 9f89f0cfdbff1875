"""The web interface's first grid screen, timed in headless Chromium against a live server.

    .venv/bin/python -m benchmarks.bench_grid [--repeats 3] [--threads 2] [--before REV] [--quick]

A live server (uvicorn in a thread, real MobileNetV2 weights, CPU, empty render cache) and a headless Chromium
page of 1280×800 px opening the interface with its defaults (the default layer, 64-px thumbnails). Measured
from navigation start: the first thumbnail shown, and the whole first screen — every card visible in the
gallery at the start showing its finished image. Variants (interleaved, a fresh cache each run):

- ``interface``: as ``imagemachines serve`` runs it on a CPU: renders in the render processes
  (:class:`~imagemachines.serve.render_process.RenderProcesses`, ready before the page opens; the command starts
  them with the server, and they are ready about 3 s after it prints the address), ``app.js`` and
  ``style.css`` as they are now;
- ``before`` (with ``--before REV``): the page runs ``app.js`` and ``style.css`` of git revision REV and the
  server renders in its own worker thread, as it did before the render processes;
- ``engine only``: the same thumbnails rendered by ``render()`` alone in this process (2 threads), in the
  server's batch size: no server, no browser, nothing else on the two cores.

Writes section ``grid-cpu`` of docs/benchmarks.md unless ``--quick``.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import torch

from benchmarks.report import machine, write_section
from imagemachines.models import load_model
from imagemachines.serve.app import create_app
from imagemachines.serve.schemas import Limits
from imagemachines.vis import Unit, render

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from tests.serve.conftest import live_server  # noqa: E402

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
        "--disable-sync", "--no-first-run"]
# Installed in the page before it loads: checks the first screen on every image load (and twice a second), so the
# benchmark does not itself load the two cores it measures by polling the page from outside.
WATCH = """(() => {
  const check = () => {
    if (window.__result) return;
    const gallery = document.getElementById('gallery');
    const cards = [...document.querySelectorAll('#grid .card')];
    if (!gallery || !cards.length) return;
    if (!window.__screen) {
      const box = gallery.getBoundingClientRect();
      window.__screen = cards.filter((c) => { const r = c.getBoundingClientRect();
        return r.bottom > box.top && r.top < box.bottom && r.right > box.left && r.left < box.right; });
    }
    const img = (c) => c.querySelector('img');
    const done = (c) => c.dataset.state === 'done' && img(c).complete && img(c).naturalWidth > 0 &&
      !img(c).src.includes('step=');
    if (!window.__first && window.__screen.some((c) => img(c).classList.contains('shown')))
      window.__first = performance.now();
    if (window.__screen.every(done)) window.__result = {first: window.__first || performance.now(),
      all: performance.now(), n: window.__screen.length, layer: document.getElementById('layer').value,
      info: document.getElementById('layer-info').innerText};
  };
  document.addEventListener('load', () => setTimeout(check, 0), true);
  setInterval(check, 500);
})();"""


def _serve(text: str, name: str):
    """A Playwright route handler that answers with *text* instead of the server's file *name*."""
    kind = "text/javascript" if name.endswith(".js") else "text/css"
    return lambda route, _request=None: route.fulfill(body=text, content_type=kind,
                                                      headers={"Cache-Control": "no-store"})


def interface_run(browser, model, timeout_s: float, static: dict[str, str] | None = None, render_fn=None) -> dict:
    """One first screen; *static* replaces files under /static/ (name -> text) to run an older interface."""
    with tempfile.TemporaryDirectory() as tmp:
        app = create_app({model.name: model}, cache_dir=Path(tmp) / "cache", limits=Limits(), render_fn=render_fn)
        try:
            with live_server(app) as base:
                page = browser.new_page(viewport={"width": 1280, "height": 800})
                for name, text in (static or {}).items():
                    page.route(f"**/static/{name}", _serve(text, name))
                page.add_init_script(WATCH)
                page.goto(f"{base}/")
                handle = page.wait_for_function("window.__result", polling=500, timeout=timeout_s * 1000)
                result = handle.json_value()
                page.close()
        finally:
            app.state.scheduler.close()
    return {"first": result["first"] / 1000, "all": result["all"] / 1000, "n": result["n"],
            "layer": result["layer"], "info": result["info"]}


def engine_run(model, layer: str, n: int, size: int, steps: int, batch: int) -> float:
    """Seconds for ``render()`` alone to make the same n thumbnails in batches of *batch*."""
    t0 = time.perf_counter()
    for start in range(0, n, batch):
        render(model, [Unit(layer, c) for c in range(start, min(n, start + batch))], size=size, steps=steps)
    return time.perf_counter() - t0


def engine_in_thread(model, layer: str, n: int, size: int, steps: int, batch: int) -> float:
    """The same as :func:`engine_run` on a secondary thread, as the server's scheduler calls the engine."""
    out: list[float] = []
    thread = threading.Thread(target=lambda: out.append(engine_run(model, layer, n, size, steps, batch)))
    thread.start()
    thread.join()
    return out[0]


def engine_in_processes(processes, model, layer: str, n: int, size: int, steps: int, batch: int) -> float:
    """The same thumbnails through the render processes (each batch split between them), no server."""
    t0 = time.perf_counter()
    for start in range(0, n, batch):
        processes(model, [Unit(layer, c) for c in range(start, min(n, start + batch))], size=size, steps=steps)
    return time.perf_counter() - t0


def cpu_seconds(children: list[int]) -> dict[str, float]:
    """CPU seconds used so far by Chromium's processes, the render processes and this process (Linux /proc)."""
    tick = os.sysconf("SC_CLK_TCK")
    out = {"chromium": 0.0, "render processes": 0.0, "server and benchmark": 0.0}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            cmd = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        used = (int(stat[11]) + int(stat[12])) / tick
        pid = int(entry.name)
        if b"chrom" in cmd or b"headless_shell" in cmd:
            out["chromium"] += used
        elif pid in children:
            out["render processes"] += used
        elif pid == os.getpid():
            out["server and benchmark"] += used
    return out


def plateau(model, layer: str, n: int, size: int, steps: int, every: int) -> list[tuple[int, float]]:
    """Mean activation of n thumbnails' 8-bit images (scored at *size*, no transforms) every *every* steps."""
    from imagemachines.vis.objectives import Channel

    tap, channels, curve = model.tap([layer]), list(range(n)), []

    def on_progress(p):
        if p.images is not None:
            with torch.no_grad():
                x = (p.images * 255).round() / 255
                curve.append((p.step, Channel(layer, channels)(tap(model.normalize(x))).mean().item()))

    render(model, [Unit(layer, c) for c in channels], size=size, steps=steps, preview_every=every,
           on_progress=on_progress)
    return curve


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--timeout", type=float, default=600)
    ap.add_argument("--before", default=None,
                    help="git revision whose app.js and style.css to compare with, rendering in the server's thread")
    ap.add_argument("--quick", action="store_true", help="one run, nothing written")
    args = ap.parse_args()
    if args.quick:
        args.repeats = 1
    torch.set_num_threads(args.threads)
    from playwright.sync_api import sync_playwright

    from imagemachines.serve.render_process import RenderProcesses

    model = load_model("mobilenet_v2", device="cpu")
    limits = Limits()
    times: dict[str, list[float]] = {"first": [], "all": [], "engine": [], "before first": [], "before all": [],
                                     "thread": [], "processes": []}
    cpu: dict[str, list[float]] = {}
    old = None if args.before is None else {name: subprocess.run(
        ["git", "show", f"{args.before}:src/imagemachines/serve/static/{name}"], cwd=ROOT, check=True,
        capture_output=True, text=True).stdout for name in ("app.js", "style.css")}
    meta: dict = {}
    processes = RenderProcesses({model.name: model}, threads=args.threads)
    processes.start()
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        try:
            for rep in range(args.repeats):
                if old is not None:
                    b = interface_run(browser, model, args.timeout, old)
                    times["before first"].append(b["first"])
                    times["before all"].append(b["all"])
                    print(f"run {rep}, {args.before}: first {b['first']:.1f}s, all {b['all']:.1f}s", flush=True)
                before = cpu_seconds(processes.pids)
                r = interface_run(browser, model, args.timeout, render_fn=processes)
                after = cpu_seconds(processes.pids)
                for k in after:
                    cpu.setdefault(k, []).append(after[k] - before[k])
                meta = r
                steps = int(r["info"].split(" steps")[0].rsplit(" ", 1)[-1])
                meta["steps"] = steps
                same = (model, r["layer"], r["n"], 64, steps, limits.batch_for(64))
                e = engine_run(*same)
                times["thread"].append(engine_in_thread(*same))
                times["processes"].append(engine_in_processes(processes, *same))
                times["first"].append(r["first"])
                times["all"].append(r["all"])
                times["engine"].append(e)
                print(f"run {rep}: {r['layer']} {r['n']} cards, first {r['first']:.1f}s, all {r['all']:.1f}s; "
                      f"engine alone {e:.1f}s, in a thread {times['thread'][-1]:.1f}s, in the render processes "
                      f"{times['processes'][-1]:.1f}s; cpu " + ", ".join(f"{k} {v[-1]:.1f}s" for k, v in cpu.items()),
                      flush=True)
        finally:
            browser.close()
            processes.close()
    med = {k: statistics.median(v) for k, v in times.items() if v}
    curve = plateau(model, meta["layer"], 8, 64, 4 * meta["steps"], meta["steps"] // 4)
    load = __import__("os").getloadavg()[0]
    text = "\n".join([
        "## Interface: first grid screen (`benchmarks/bench_grid.py`, cpu)",
        "",
        f"{machine()}; load average {load:.1f} at the end (the benchmark's own browser and render processes "
        "included). Headless Chromium, "
        f"1280×800 px, the interface's defaults: layer {meta['layer']} of mobilenet_v2, 64-px thumbnails, "
        f"{meta['steps']} steps, seed 0; the first screen is the {meta['n']} cards visible at the start. "
        f"Median of {args.repeats} runs (each with an empty render cache), from navigation start:",
        "",
        "| | seconds | runs |",
        "|---|---|---|",
        *([f"| before ({args.before}: its app.js and style.css, renders in the server's thread): first "
           f"thumbnail shown | {med['before first']:.1f} | {', '.join(f'{t:.1f}' for t in times['before first'])} |",
           f"| before ({args.before}): whole first screen finished | {med['before all']:.1f} | "
           f"{', '.join(f'{t:.1f}' for t in times['before all'])} |"] if old is not None else []),
        f"| this checkout: first thumbnail shown | {med['first']:.1f} | "
        f"{', '.join(f'{t:.1f}' for t in times['first'])} |",
        f"| this checkout: whole first screen finished | **{med['all']:.1f}** | "
        f"{', '.join(f'{t:.1f}' for t in times['all'])} |",
        f"| the same thumbnails by `render()` alone (no server, no browser), main thread | {med['engine']:.1f} | "
        f"{', '.join(f'{t:.1f}' for t in times['engine'])} |",
        f"| the same by `render()` on a secondary thread (how the server called it before) | {med['thread']:.1f} | "
        f"{', '.join(f'{t:.1f}' for t in times['thread'])} |",
        f"| the same through the render processes (no server, no browser) | {med['processes']:.1f} | "
        f"{', '.join(f'{t:.1f}' for t in times['processes'])} |",
        "",
        "Where the two cores went during the interface's first screen (CPU seconds, median): "
        + ", ".join(f"{k} {statistics.median(v):.1f}" for k, v in cpu.items())
        + f" — {sum(statistics.median(v) for v in cpu.values()):.1f} CPU-seconds in all, "
        f"{sum(statistics.median(v) for v in cpu.values()) / 2:.1f} s of both cores.",
        "",
        f"Do thumbnails need their {meta['steps']} steps? Mean activation of 8 thumbnails of {meta['layer']} (64 px, "
        "8-bit, no transforms) by step:",
        "",
        "| step | " + " | ".join(str(s) for s, _ in curve) + " |",
        "|---|" + "---|" * len(curve),
        "| activation | " + " | ".join(f"{a:.2f}" for _, a in curve) + " |",
    ])
    print(text)
    if not args.quick:
        write_section("grid-cpu", text)


if __name__ == "__main__":
    main()
