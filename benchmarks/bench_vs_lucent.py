"""Render speed against the real peer: our default ``lucid`` method vs Lucent 0.1.8's defaults, side by side.

    .venv/bin/python -m benchmarks.bench_vs_lucent [--units 4] [--threads 2] [--quick]

Lucent is installed for this benchmark alone (``benchmarks/lucent_peer.py``: ``pip install --target`` a
throwaway folder, never a project dependency). Both sides use MobileNetV2 with the same IMAGENET1K_V1 weights;
Lucent gets the plain torchvision network, as its users would. For each layer (features.6, .10, .14, .17,
logits) and unit, interleaved unit by unit so both see the same machine load:

- Lucent: ``render_vis`` with its defaults (128-px Fourier image, upsampled to 224 for the network, 512 Adam
  steps); the time, and the activation of its saved 8-bit image.
- Ours: ``render()`` with the default ``lucid`` recipe, images checked every few steps. Time to reach = the
  first checkpoint where the layer's units (mean) score at least Lucent's mean; a constant learning rate
  makes the image at step k a k-step render. If the default step count does not reach it, the run goes on to
  512 steps to say where it does.
- Scoring (the same for both): the 8-bit image resized to 224 px, one forward without transforms, the unit's
  mean activation. Quality guard: the same, averaged over 8 fixed random shifts of up to ±16 px (reflected
  edges), for Lucent's image, ours at the reach point and our default final image.
- Whole process: ``imagemachines visualize`` (one unit, defaults) vs a script that imports Lucent and renders
  one unit with its defaults, each a fresh Python process (start-up, weights, render, save), alternated.

``--quick`` is a smoke run (few steps, two layers) that prints and writes nothing to docs/. The full run writes
section ``vs-lucent-cpu`` of docs/benchmarks.md and the contact sheet ``docs/img/vs-lucent.png``. On CUDA
(``--device cuda``) it writes ``vs-lucent-cuda``: whole layers batched (bf16) vs Lucent one image at a time.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
import torchvision
from PIL import Image, ImageDraw

from benchmarks.lucent_peer import install, lucent_render
from benchmarks.report import machine, write_section
from imagemachines.models import LOGITS, load_model, resolve_device
from imagemachines.vis import Channel, Unit, render
from imagemachines.vis.recipes import LucidRecipe
from imagemachines.vis.transforms import resize

ROOT = Path(__file__).resolve().parents[1]
SHEET = ROOT / "docs" / "img" / "vs-lucent.png"
LAYERS = ["features.6", "features.10", "features.14", "features.17", LOGITS]
CLASSES = [1, 130, 281, 417]  # goldfish, flamingo, tabby, balloon
TARGET = {"features.6": 10, "features.10": 10, "features.14": 10, "features.17": 5, LOGITS: 5}
SHIFTS, SHIFT_PX = 8, 16


def pool(model, layer: str) -> list[int]:
    return CLASSES if layer == LOGITS else list(range(0, model.layer(layer).channels, 7))


class Scorer:
    """Mean activation of a unit on 8-bit images at 224 px, plain and averaged over fixed random shifts."""

    def __init__(self, model, layer: str):
        self.model, self.layer, self.tap = model, layer, model.tap([layer])
        g = torch.Generator().manual_seed(1234)
        self.shifts = torch.randint(-SHIFT_PX, SHIFT_PX + 1, (SHIFTS, 2), generator=g).tolist()

    @torch.no_grad()
    def __call__(self, images_u8: torch.Tensor, channels: list[int]) -> list[float]:
        return self._score(self._prepare(images_u8), channels)

    @torch.no_grad()
    def shifted(self, images_u8: torch.Tensor, channels: list[int]) -> list[float]:
        x = self._prepare(images_u8)
        size = x.shape[-1]
        padded = F.pad(x, [SHIFT_PX] * 4, mode="reflect")
        per_shift = [self._score(padded[..., SHIFT_PX + dy:SHIFT_PX + dy + size, SHIFT_PX + dx:SHIFT_PX + dx + size],
                                 channels) for dx, dy in self.shifts]
        return np.mean(per_shift, axis=0).tolist()

    def _prepare(self, images_u8: torch.Tensor) -> torch.Tensor:
        return resize(images_u8.to(self.model.device).float() / 255, self.model.input_size)

    def _score(self, x: torch.Tensor, channels: list[int]) -> list[float]:
        return Channel(self.layer, channels)(self.tap(self.model.normalize(x))).cpu().tolist()


def as_u8(hwc: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(hwc)).permute(2, 0, 1)[None]


@dataclass
class UnitRun:
    channel: int
    lucent_s: float
    lucent_act: float
    lucent_shift: float
    lucent_img: np.ndarray
    ours_stamps: list[tuple[int, float]] = field(default_factory=list)  # (step, seconds since start)
    ours_scores: list[float] = field(default_factory=list)  # score at each stamp
    ours_images: list[torch.Tensor] = field(default_factory=list)  # uint8 (1, 3, H, W) at each stamp
    ours_final_s: float = 0.0
    ours_final_act: float = 0.0
    ours_final_img: np.ndarray | None = None


def ours_run(model, layer: str, channel: int, steps: int, check_every: int, default_steps: int,
             run: UnitRun) -> None:
    """Our default recipe on one unit; checkpoints every *check_every* steps (scored after the run)."""
    t0 = time.perf_counter()
    kept: list[tuple[int, float, torch.Tensor]] = []

    def on_progress(p):
        if p.images is not None:
            kept.append((p.step, time.perf_counter() - t0, (p.images * 255).round().to(torch.uint8)))

    final = render(model, Unit(layer, channel), steps=steps, preview_every=check_every, on_progress=on_progress)
    run.ours_stamps = [(s, t) for s, t, _ in kept]
    run.ours_images = [img for _, _, img in kept]
    at_default = next(i for i, (s, _) in enumerate(run.ours_stamps) if s >= default_steps)
    run.ours_final_s = run.ours_stamps[at_default][1]
    run.ours_final_img = run.ours_images[at_default][0].permute(1, 2, 0).numpy()
    if steps == default_steps:
        run.ours_final_img = np.asarray(final[0].image)


def bench_layer(model, net, layer: str, channels: list[int], lucent_steps: int, our_steps: int, max_steps: int,
                check_every: int) -> dict:
    scorer = Scorer(model, layer)
    runs = []
    for c in channels:  # interleaved unit by unit: Lucent, then ours, same load for both
        t0 = time.perf_counter()
        img = lucent_render(net, layer, c, steps=lucent_steps)
        lucent_s = time.perf_counter() - t0
        u8 = as_u8(img)
        run = UnitRun(c, lucent_s, scorer(u8, [c])[0], scorer.shifted(u8, [c])[0], img)
        ours_run(model, layer, c, our_steps, check_every, our_steps, run)
        run.ours_scores = [scorer(im, [c])[0] for im in run.ours_images]
        runs.append(run)
        print(f"  {layer}:{c} lucent {lucent_s:.1f}s act {run.lucent_act:.2f} | ours {run.ours_final_s:.1f}s "
              f"act {run.ours_scores[-1]:.2f}", flush=True)
    lucent_mean = statistics.mean(r.lucent_act for r in runs)
    reach = _reach(runs, lucent_mean)
    if reach is None and max_steps > our_steps:  # not within the default steps: how far does it take?
        for r in runs:
            ours_run(model, layer, r.channel, max_steps, check_every, our_steps, r)
            r.ours_scores = [scorer(im, [r.channel])[0] for im in r.ours_images]
        reach = _reach(runs, lucent_mean)
    for r in runs:
        r.ours_final_act = scorer(as_u8(r.ours_final_img), [r.channel])[0]
    row = {"layer": layer, "channels": channels, "runs": runs, "lucent_act": lucent_mean,
           "lucent_s": statistics.mean(r.lucent_s for r in runs),
           "lucent_shift": statistics.mean(r.lucent_shift for r in runs),
           "ours_final_s": statistics.mean(r.ours_final_s for r in runs),
           "ours_final_act": statistics.mean(r.ours_final_act for r in runs),
           "ours_final_shift": statistics.mean(
               scorer.shifted(as_u8(r.ours_final_img), [r.channel])[0] for r in runs),
           "reach": None}
    if reach is not None:
        k, step = reach
        row["reach"] = {
            "step": step, "s": statistics.mean(r.ours_stamps[k][1] for r in runs),
            "act": statistics.mean(r.ours_scores[k] for r in runs),
            "shift": statistics.mean(scorer.shifted(r.ours_images[k], [r.channel])[0] for r in runs),
            "ratio": sum(r.lucent_s for r in runs) / sum(r.ours_stamps[k][1] for r in runs),
        }
    return row


def _reach(runs: list[UnitRun], target: float) -> tuple[int, int] | None:
    """(checkpoint index, step) where the units' mean score first reaches *target*."""
    for k, (step, _) in enumerate(runs[0].ours_stamps):
        if statistics.mean(r.ours_scores[k] for r in runs) >= target:
            return k, step
    return None


LUCENT_SCRIPT = """
import sys, time, numpy as np, torch, torchvision
from PIL import Image
sys.path.insert(0, {root!r}); sys.path.insert(0, {lucent!r})
from benchmarks.lucent_peer import shim, lucent_render
shim()
net = torchvision.models.mobilenet_v2(weights="IMAGENET1K_V1").eval()
Image.fromarray(lucent_render(net, {layer!r}, {channel}, steps={steps})).save({out!r})
"""


def whole_process(lucent_dir: Path, layer: str, channel: int, threads: int, repeats: int, lucent_steps: int,
                  our_steps: int | None) -> dict:
    """Seconds for a fresh process to render and save one unit: our CLI vs a Lucent script (alternated)."""
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "PYTHONPATH": os.pathsep.join(
        [str(ROOT / "src"), str(ROOT), os.environ.get("PYTHONPATH", "")])}
    times: dict[str, list[float]] = {"ours": [], "lucent": []}
    with tempfile.TemporaryDirectory() as tmp:
        ours = [sys.executable, "-m", "imagemachines", "visualize", "mobilenet_v2", "--layer", layer,
                "--channel", str(channel), "--device", "cpu", "--out", tmp]
        if our_steps:
            ours += ["--steps", str(our_steps)]
        script = LUCENT_SCRIPT.format(root=str(ROOT), lucent=str(lucent_dir), layer=layer, channel=channel,
                                      steps=lucent_steps, out=str(Path(tmp) / "lucent.png"))
        for _ in range(repeats):
            for name, cmd in (("lucent", [sys.executable, "-c", script]), ("ours", ours)):
                t0 = time.perf_counter()
                subprocess.run(cmd, env=env, check=True, capture_output=True)
                times[name].append(time.perf_counter() - t0)
    return {k: statistics.median(v) for k, v in times.items()} | {"runs": times}


def contact_sheet(rows: list[dict], path: Path, thumb: int = 128) -> None:
    """Per layer one row: for each unit Lucent's image and ours (default), labelled with their activations."""
    n = max(len(r["runs"]) for r in rows)
    label_h, head_w = 30, 96
    sheet = Image.new("RGB", (head_w + 2 * n * thumb, len(rows) * (thumb + label_h) + 18), (24, 24, 24))
    draw = ImageDraw.Draw(sheet)
    for i in range(n):
        draw.text((head_w + 2 * i * thumb + 4, 3), "Lucent 0.1.8", fill=(200, 200, 200))
        draw.text((head_w + (2 * i + 1) * thumb + 4, 3), "imagemachines", fill=(200, 200, 200))
    for j, row in enumerate(rows):
        y = 18 + j * (thumb + label_h)
        draw.text((4, y + thumb // 2), row["layer"], fill=(230, 230, 230))
        for i, r in enumerate(row["runs"]):
            x = head_w + 2 * i * thumb
            for k, (img, act) in enumerate(((r.lucent_img, r.lucent_act), (r.ours_final_img, r.ours_final_act))):
                sheet.paste(Image.fromarray(img).resize((thumb, thumb), Image.LANCZOS), (x + k * thumb, y))
                draw.text((x + k * thumb + 4, y + thumb + 2), f"{row['layer']}:{r.channel}", fill=(220, 220, 220))
                draw.text((x + k * thumb + 4, y + thumb + 15), f"act {act:.2f}", fill=(160, 160, 160))
    path.parent.mkdir(parents=True, exist_ok=True)
    sheet.save(path)


def report(args, rows: list[dict], proc: dict | None, our_steps: int) -> str:
    lines = [
        "## Render speed vs Lucent itself (cpu)",
        "",
        f"`python -m benchmarks.bench_vs_lucent --units {args.units} --threads {args.threads} --layers "
        f"{args.layers}` — {machine()}; "
        f"load average {os.getloadavg()[0]:.1f} at the end (other work shares these two cores, so the absolute "
        "seconds are slow and noisy; both sides ran interleaved unit by unit under the same load).",
        "",
        f"Lucent 0.1.8 defaults (`render_vis`: 128-px Fourier image upsampled to 224, standard transforms, Adam "
        f"lr 0.05, {args.lucent_steps} steps, plain torchvision network) vs our default `lucid` recipe "
        f"({our_steps} steps at 224 px, network cut at the layer, BatchNorm folded), one unit per call on both "
        "sides, MobileNetV2 IMAGENET1K_V1, units "
        f"{', '.join(str(c) for c in rows[0]['channels'])} … of each layer (classes {CLASSES} for the logits). "
        "Activation: the unit's mean on the saved 8-bit image at 224 px, no transforms; *shifted*: the same "
        f"averaged over {SHIFTS} fixed random shifts of up to ±{SHIFT_PX} px. Ours is checked every "
        f"{args.check_every} steps.",
        "",
        "| layer | Lucent s/image | Lucent act. | Lucent shifted | ours: reaches Lucent at | ours s/image there "
        "| act. | shifted | **ratio** | target | ours default: s/image | act. | shifted |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        reach = r["reach"]
        if reach:
            ok = "met" if reach["ratio"] >= TARGET[r["layer"]] else "**not met**"
            mid = (f"step {reach['step']} | {reach['s']:.1f} | {reach['act']:.2f} | {reach['shift']:.2f} | "
                   f"**{reach['ratio']:.2f}×** | {TARGET[r['layer']]}× {ok}")
        else:
            mid = f"not within {args.max_steps} steps | — | — | — | — | {TARGET[r['layer']]}× **not met**"
        lines.append(f"| {r['layer']} | {r['lucent_s']:.1f} | {r['lucent_act']:.2f} | {r['lucent_shift']:.2f} | "
                     f"{mid} | {r['ours_final_s']:.1f} | {r['ours_final_act']:.2f} | {r['ours_final_shift']:.2f} |")
    if proc:
        lines += ["", process_line(args, proc)]
    sheet = sheet_path(args).name
    lines += ["", f"Contact sheet of every benchmarked unit, Lucent's image next to ours: "
                  f"[docs/img/{sheet}](img/{sheet}).", "", NOTE]
    return "\n".join(lines)


def sheet_path(args) -> Path:
    return SHEET if args.section == "vs-lucent-cpu" else SHEET.with_name(f"{args.section}.png")


def process_line(args, proc: dict) -> str:
    return (f"**Whole process** (fresh Python, start-up, weights, render, save; one unit, "
            f"{args.proc_layer}:{args.proc_channel}, {args.threads} thread(s); median of {args.repeats}, "
            f"alternated): `imagemachines visualize` with its defaults {proc['ours']:.1f} s vs a script running "
            f"Lucent's defaults {proc['lucent']:.1f} s: **{proc['lucent'] / proc['ours']:.1f}×**.")


def process_report(args, proc: dict) -> str:
    return "\n".join(["## Render speed vs Lucent itself: whole process (cpu)", "",
                      f"`python -m benchmarks.bench_vs_lucent --process-only --threads {args.threads} --repeats "
                      f"{args.repeats}` — {machine()}; load average {os.getloadavg()[0]:.1f} at the end.", "",
                      process_line(args, proc)])


NOTE = """\
How to read it: *ratio* = Lucent's time for its 512 steps / our time to reach the same mean activation
(sum over the layer's units). The quality guard compares the shifted columns: a render that only works
pixel-exact scores much lower there."""


def cuda_section(model, net, threads: int) -> str:
    """GPU: units/s for whole layers batched (bf16 autocast) vs Lucent one image at a time."""
    lines = ["## Render speed vs Lucent itself (cuda)", "", f"{machine()}. Our default `lucid` recipe with a whole "
             "layer in one batch (bf16 autocast, channels_last) vs Lucent's defaults, one image per call.", "",
             "| layer | units | ours units/s | Lucent units/s | ratio |", "|---|---|---|---|---|"]
    for layer in ("features.6", "features.14", "features.17", LOGITS):
        n = 64 if layer == LOGITS else model.layer(layer).channels
        units = [Unit(layer, c) for c in (range(n) if layer != LOGITS else range(0, 1000, 1000 // n))][:n]
        render(model, units[:2], steps=8)
        torch.cuda.synchronize()
        t0 = time.perf_counter()
        render(model, units)
        torch.cuda.synchronize()
        ours = len(units) / (time.perf_counter() - t0)
        lucent_render(net, layer, units[0].channel, steps=16)
        torch.cuda.synchronize()
        t0 = time.perf_counter()
        for u in units[:4]:
            lucent_render(net, layer, u.channel)
        torch.cuda.synchronize()
        peer = 4 / (time.perf_counter() - t0)
        lines.append(f"| {layer} | {len(units)} | {ours:.2f} | {peer:.2f} | **{ours / peer:.0f}×** |")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--units", type=int, default=4, help="units per layer")
    ap.add_argument("--layers", default=",".join(LAYERS))
    ap.add_argument("--threads", type=int, default=2, help="torch threads, the same for both sides")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--lucent-steps", type=int, default=512)
    ap.add_argument("--max-steps", type=int, default=512, help="how far ours may go when the default falls short")
    ap.add_argument("--check-every", type=int, default=16)
    ap.add_argument("--repeats", type=int, default=3, help="whole-process runs per side")
    ap.add_argument("--proc-layer", default="features.14")
    ap.add_argument("--proc-channel", type=int, default=40)
    ap.add_argument("--lucent-dir", type=Path, default=None, help="reuse an install folder (default: a new one)")
    ap.add_argument("--process-only", action="store_true",
                    help="only the whole-process comparison (section vs-lucent-process-cpu)")
    ap.add_argument("--no-process", action="store_true", help="skip the whole-process comparison")
    ap.add_argument("--section", default="vs-lucent-cpu", help="docs/benchmarks.md section (and contact sheet) name")
    ap.add_argument("--quick", action="store_true", help="smoke run: 2 layers, 1 unit, few steps, no report")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    our_steps = LucidRecipe().steps
    if args.quick:
        args.units, args.lucent_steps, args.max_steps, args.check_every, args.repeats = 1, 16, 16, 4, 1
        args.layers, our_steps = "features.6,logits", 8
    lucent_dir = install(args.lucent_dir)
    device = resolve_device(args.device)
    model = load_model("mobilenet_v2", device=device)
    net = torchvision.models.mobilenet_v2(weights="IMAGENET1K_V1").eval().to(device)
    if device.type == "cuda":
        text = cuda_section(model, net, args.threads)
        print(text)
        write_section("vs-lucent-cuda", text)
        return
    if args.process_only:
        proc = whole_process(lucent_dir, args.proc_layer, args.proc_channel, args.threads, args.repeats,
                             args.lucent_steps, our_steps if args.quick else None)
        text = process_report(args, proc)
        print(text)
        if not args.quick:
            write_section("vs-lucent-process-cpu", text)
        return
    lucent_render(net, "features.14", 0, steps=16)  # warm both sides: first calls build kernels for new shapes
    render(model, Unit("features.14", 0), steps=4)
    rows = []
    for layer in args.layers.split(","):
        rows.append(bench_layer(model, net, layer, pool(model, layer)[: args.units], args.lucent_steps,
                                min(our_steps, args.max_steps), args.max_steps, args.check_every))
        r = rows[-1]
        print(f"{layer}: lucent {r['lucent_s']:.1f}s act {r['lucent_act']:.2f} shifted {r['lucent_shift']:.2f} | "
              f"reach {r['reach']}", flush=True)
        if not args.quick:  # partial results survive an interrupted run
            contact_sheet(rows, sheet_path(args))
            write_section(args.section, report(args, rows, None, our_steps))
    proc = None
    if not args.no_process:
        proc = whole_process(lucent_dir, args.proc_layer, args.proc_channel, args.threads, args.repeats,
                             args.lucent_steps, our_steps if args.quick else None)
    text = report(args, rows, proc, our_steps)
    print(text)
    if not args.quick:
        contact_sheet(rows, sheet_path(args))
        write_section(args.section, text)


if __name__ == "__main__":
    main()
