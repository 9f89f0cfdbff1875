"""Atlas benchmark: units/s through `atlas` (render loop, image files, records, pages, manifest) against the
same units through one `render()` call, interleaved in one process.

    .venv/bin/python -m benchmarks.bench_atlas [--device cpu] [--units 8] [--size 64] [--steps 32] [--reps 3]

MobileNetV2 with its ImageNet weights when ../shared/weights holds them (else random weights: the speed is the
same), one layer (features.14). Writes docs/benchmarks.md (section atlas-cpu or atlas-cuda).
"""

from __future__ import annotations

import argparse
import importlib
import os
import shutil
import statistics
import tempfile
import time
from pathlib import Path

from benchmarks.report import machine, write_section

SHARED_WEIGHTS = Path(__file__).resolve().parents[2] / "shared" / "weights" / "mobilenet_v2-b0353104.pth"
LAYER = "features.14"


def load(device: str, name: str = "mobilenet_v2"):
    from imagemachines.models import load_model

    if name != "mobilenet_v2":
        return load_model(name, weights="none", device=device), "random weights"
    if SHARED_WEIGHTS.is_file():
        home = Path(tempfile.mkdtemp(prefix="torch-home-"))
        (home / "hub" / "checkpoints").mkdir(parents=True)
        os.symlink(SHARED_WEIGHTS, home / "hub" / "checkpoints" / SHARED_WEIGHTS.name)
        os.environ["TORCH_HOME"] = str(home)
        return load_model("mobilenet_v2", weights="imagenet", device=device), "ImageNet weights"
    return load_model("mobilenet_v2", weights="none", device=device), "random weights"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--units", type=int, default=8)
    ap.add_argument("--size", type=int, default=64)
    ap.add_argument("--steps", type=int, default=32)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--model", default="mobilenet_v2", help="another model: random weights (speed is the same)")
    ap.add_argument("--layer", default=LAYER)
    ap.add_argument("--no-write", action="store_true", help="print only (e.g. for the InceptionV3 estimate)")
    args = ap.parse_args()

    from imagemachines.atlas import AtlasSettings, build_atlas
    from imagemachines.vis import Unit, render

    model, weights = load(args.device, args.model)
    layer = args.layer
    units = [Unit(layer, c) for c in range(args.units)]
    settings = AtlasSettings(layers=[layer], channels=f"0-{args.units - 1}", size=args.size, steps=args.steps,
                             batch=args.units)
    render(model, units[:1], size=args.size, steps=2)  # warm-up: BatchNorm folding, first allocations
    times: dict[str, list[float]] = {"render": [], "atlas": []}
    inside: list[float] = []  # seconds the atlas runs spent inside render()
    engine = importlib.import_module("imagemachines.vis.engine")

    def timed_render(*a, **kw):
        t0 = time.perf_counter()
        out = real_render(*a, **kw)
        inside.append(time.perf_counter() - t0)
        return out

    real_render = engine.render
    work = Path(tempfile.mkdtemp(prefix="bench-atlas-"))
    load_start = os.getloadavg()[0]
    for rep in range(args.reps):  # interleaved A B B A …, so both see the same machine
        for path in (("render", "atlas") if rep % 2 == 0 else ("atlas", "render")):
            t = time.perf_counter()
            if path == "render":
                render(model, units, size=args.size, steps=args.steps)
            else:
                engine.render = timed_render
                try:
                    result = build_atlas(model, work / f"site{rep}", settings, progress=False)
                finally:
                    engine.render = real_render
                assert result.rendered == args.units
            times[path].append(time.perf_counter() - t)
    shutil.rmtree(work, ignore_errors=True)
    rate = {k: args.units / statistics.median(v) for k, v in times.items()}
    ratio = rate["atlas"] / rate["render"]
    outside = 1 - sum(inside) / sum(times["atlas"])
    dev = model.device.type
    rows = "\n".join(f"| {k} | {statistics.median(v):.2f} s | {rate[k]:.2f} |" for k, v in times.items())
    md = f"""## Atlas vs one render() call (`benchmarks/bench_atlas.py`, {dev})

{args.model} ({weights}), layer {layer}, {args.units} units in one batch, lucid at {args.size} px, {args.steps}
steps; median of {args.reps} interleaved repetitions. Machine: {machine()}.
Command: `python -m benchmarks.bench_atlas --device {args.device} --model {args.model} --layer {layer}
--units {args.units} --size {args.size} --steps {args.steps} --reps {args.reps}`.

Load average at the start: {load_start:.1f} on {os.cpu_count()} cores (other work shares them, so single timings
vary a lot; the second number below does not depend on it).

| path | median time | units/s |
|---|---|---|
{rows}

- **atlas / render() units/s = {ratio:.2f}** side by side (target ≥ 0.9).
- Inside the atlas runs, **{100 * outside:.1f} %** of the time was spent outside `render()` (planning, resume
  checks, WebP files, records, pages, manifest) — the atlas's own cost, measured without the noise of the
  comparison. When the side-by-side ratio is far from 1 in either direction, the load moved between the
  runs; the share outside `render()` is the number to trust. See docs/atlas.md for the throughput model."""
    print(md)
    if not args.no_write:
        write_section(f"atlas-{dev}", md)


if __name__ == "__main__":
    main()
