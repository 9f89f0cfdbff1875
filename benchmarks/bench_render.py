"""Render benchmark: the engine against the naive reference renderer, side by side in one process.

    .venv/bin/python -m benchmarks.bench_render [--units 4] [--device cpu] [--quick]

For each layer of mobilenet_v2 (features.6, .10, .14, .17 and class logits) it renders the same units with
the reference (one unit per run, 512 steps) and with the engine (all units in one batch, previews every few
steps), interleaved layer by layer. Every image is scored the same way: the 8-bit image (re-loaded from its
PNG for final images), resized to 224 px, one forward without transforms, mean activation of the unit. The
headline number is the time the engine needs to reach the activation the reference reached in 512 steps
(mean over the layer's units), as a ratio to the reference's time. Writes docs/benchmarks.md (section
render-cpu or render-cuda).
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from benchmarks.naive_reference import naive_render
from benchmarks.report import machine, write_section
from imagemachines.models import LOGITS, load_model, resolve_device
from imagemachines.vis import Channel, Unit, render, save_render
from imagemachines.vis.transforms import resize

NOTE = """\
Where the engine gains: cutting the network (features.6 needs a fraction of MobileNetV2's convolutions),
BatchNorm folded into the convolutions and channels_last (about 2× less per step on this CPU, measured with
the network alone), one `grid_sample` for the whole batch's transforms, and fewer steps to the same
activation (the engine optimises a 224-px image directly; the reference's 128-px image is upsampled). The
last block and the logits cannot be cut, and on a 2-core CPU a batch of 4 costs nearly 4 times one image,
so there the gain is smaller (the per-step part, about 2×, and somewhat fewer steps): the 5× target holds
for features.6–14 and not for features.17 or the logits on this CPU. On a GPU, batching a whole layer is where the large
factor comes from (section render-cuda, written when a GPU run is made)."""

LAYERS = ["features.6", "features.10", "features.14", "features.17", LOGITS]
# goldfish, flamingo, tabby, balloon, basketball, golf ball, strawberry, volcano
CLASSES = [1, 130, 281, 417, 430, 574, 949, 980]


def scorer(model, layer: str):
    """(N, 3, H, W) uint8 images -> mean activation of each image's unit at 224 px, no transforms."""
    tap = model.tap([layer])

    @torch.no_grad()
    def score(images_u8: torch.Tensor, channels: list[int]) -> list[float]:
        x = resize(images_u8.to(model.device).float() / 255, model.input_size)
        return Channel(layer, channels)(tap(model.normalize(x))).cpu().tolist()

    return score


def load_png(path: Path) -> torch.Tensor:
    return torch.from_numpy(np.asarray(Image.open(path).convert("RGB")).copy()).permute(2, 0, 1)


def bench_layer(model, layer: str, channels: list[int], ref_steps: int, engine_steps: int, check_every: int,
                out: Path, device: torch.device) -> dict:
    score = scorer(model, layer)
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    # --- reference: one unit per run
    ref_times, ref_acts = [], []
    for c in channels:
        sync()
        t0 = time.perf_counter()
        img = naive_render(model, layer, c, steps=ref_steps)
        sync()
        ref_times.append(time.perf_counter() - t0)
        path = out / f"ref-{layer}-{c}.png"
        Image.fromarray((img.clamp(0, 1) * 255).round().byte().permute(1, 2, 0).cpu().numpy()).save(path)
        ref_acts.append(score(load_png(path)[None], [c])[0])
    # --- engine: all units in one batch, checkpoints every `check_every` steps
    stamps: list[tuple[int, float, torch.Tensor]] = []
    sync()
    t0 = time.perf_counter()

    def on_progress(p):
        if p.images is not None:
            stamps.append((p.step, time.perf_counter() - t0, (p.images * 255).round().to(torch.uint8)))

    renders = render(model, [Unit(layer, c) for c in channels], steps=engine_steps, preview_every=check_every,
                     on_progress=on_progress)
    sync()
    engine_time = time.perf_counter() - t0
    final_acts = []
    for r, c in zip(renders, channels, strict=True):
        path = save_render(r, out / f"engine-{layer}-{c}.png")
        final_acts.append(score(load_png(path)[None], [c])[0])
    reach = None  # the first checkpoint where the units' mean activation is at least the reference's
    for step, elapsed, images in stamps:
        if np.mean(score(images, channels)) >= np.mean(ref_acts):
            reach = (step, elapsed)
            break
    return {"layer": layer, "channels": channels, "ref_s": float(np.mean(ref_times)), "ref_total": sum(ref_times),
            "ref_act": float(np.mean(ref_acts)), "engine_s": engine_time / len(channels), "engine_total": engine_time,
            "engine_act": float(np.mean(final_acts)), "reach": reach}


def whole_layer_rate(model, layer: str, steps: int) -> float:
    """Units per second when a whole layer is rendered in one batch (GPU section)."""
    n = model.layer(layer).channels
    torch.cuda.synchronize()
    t0 = time.perf_counter()
    render(model, [Unit(layer, c) for c in range(n)], steps=steps)
    torch.cuda.synchronize()
    return n / (time.perf_counter() - t0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--units", type=int, default=4, help="units per layer")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--ref-steps", type=int, default=512)
    ap.add_argument("--engine-steps", type=int, default=512)
    ap.add_argument("--check-every", type=int, default=16)
    ap.add_argument("--quick", action="store_true", help="a smoke run: few steps, no report")
    args = ap.parse_args()
    if args.quick:
        args.ref_steps, args.engine_steps, args.check_every, args.units = 16, 16, 4, 2
    device = resolve_device(args.device)
    model = load_model("mobilenet_v2", device=device)
    out = Path(tempfile.mkdtemp(prefix="bench-render-"))
    rows = []
    for layer in LAYERS:
        pool = CLASSES if layer == LOGITS else list(range(0, model.layer(layer).channels, 7))
        row = bench_layer(model, layer, pool[: args.units], args.ref_steps, args.engine_steps, args.check_every,
                          out, device)
        rows.append(row)
        reach = row["reach"]
        print(f"{layer:12s} ref {row['ref_s']:.1f}s/img act {row['ref_act']:.2f} | engine {row['engine_s']:.1f}s/img "
              f"act {row['engine_act']:.2f} | reach {reach}", flush=True)
    lines = [
        f"## Render engine vs naive reference ({device.type})",
        "",
        f"`python -m benchmarks.bench_render --units {args.units} --device {args.device}` — {machine()}.",
        f"mobilenet_v2 (IMAGENET1K_V1), {args.units} units per layer; reference: whole network every step, one unit "
        f"per run, {args.ref_steps} steps at 128 px upsampled to 224; engine: `lucid` method, network cut at the "
        f"layer, units batched, 224 px, {args.engine_steps} steps, images checked every {args.check_every} steps. "
        "Activation: mean over units of the unit's mean activation on the saved 8-bit image at 224 px.",
        "",
        "| layer | reference s/image | reference activation | engine s/image | engine activation "
        "| engine reaches reference at | time to reach, ratio |",
        "|---|---|---|---|---|---|---|",
    ]
    total_ref = total_reach = 0.0
    for r in rows:
        if r["reach"]:
            step, elapsed = r["reach"]
            ratio = r["ref_total"] / elapsed
            total_ref += r["ref_total"]
            total_reach += elapsed
            reach_txt, ratio_txt = f"step {step} ({elapsed / len(r['channels']):.1f} s/image)", f"**{ratio:.1f}×**"
        else:
            reach_txt, ratio_txt = "not within the run", "—"
        lines.append(f"| {r['layer']} | {r['ref_s']:.1f} | {r['ref_act']:.2f} | {r['engine_s']:.1f} | "
                     f"{r['engine_act']:.2f} | {reach_txt} | {ratio_txt} |")
    if total_reach:
        lines += ["", f"Overall: the engine reached the reference's activations in {total_ref / total_reach:.1f}× "
                      "less time (sum over the layers where it reached them)."]
    lines += ["", NOTE]
    if device.type == "cuda":
        lines += ["", "Whole layers batched on the GPU (bf16 autocast, channels_last), 256 steps at 224 px:", "",
                  "| layer | units | units/second |", "|---|---|---|"]
        for layer in ("features.6", "features.14", "features.17"):
            lines.append(f"| {layer} | {model.layer(layer).channels} | {whole_layer_rate(model, layer, 256):.1f} |")
    text = "\n".join(lines)
    print(text)
    if not args.quick:
        write_section(f"render-{device.type}", text)
    if os.environ.get("BENCH_KEEP"):
        print(f"images in {out}")


if __name__ == "__main__":
    main()
