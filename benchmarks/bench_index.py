"""Index throughput and memory: ``imagemachines index`` against the bare forward pass and a naive reference.

1. Throughput, on the same in-memory batches, interleaved, best of several rounds: the bare forward pass of
   MobileNetV2 (``model.module(x)``); the index's per-batch work for all top-level blocks and logits (one tapped
   pass, each unit's value as the default ranking takes it, its cell, border flag and mean, top/bottom-k and
   statistics, pooled rows to the CPU); and the naive
   reference (hooks keep every block's full activations, sorted at the end; :mod:`benchmarks.index_naive`).
2. End to end: ``build_index`` over generated JPEGs (decoding, hashing, SQLite, chunk files and merge included).
3. Peak memory (resident set of a fresh process) of ``build_index`` and of the naive reference at 1k and 10k
   generated images.
4. With ../shared: precision@k of a fine-tuned MobileNetV2's class logits on held-out real paintings.

Run: ``.venv/bin/python -m benchmarks.bench_index`` (``--quick`` for a smaller run; ``--device cuda`` for the
GPU section). Writes its sections of docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

from benchmarks.report import machine, publish

ROOT = Path(__file__).resolve().parents[1]


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def throughput(device: str, batch: int, n_batches: int, rounds: int, size: int = 224) -> dict:
    """images/s of bare forward, index work and naive reference on the same batches (best of *rounds*)."""
    from benchmarks.index_naive import HookEverything
    from imagemachines.index.build import default_layers
    from imagemachines.index.passes import _ChunkState, summarise
    from imagemachines.index.peaks import DEFAULT_RANKING
    from imagemachines.models import load_model

    dev = torch.device(device)
    model = load_model("mobilenet_v2", weights="none", device=dev)
    layers = default_layers(model)
    channels = {n: model.layer(n).channels for n in layers}
    g = torch.Generator().manual_seed(0)
    batches = [model.normalize(torch.rand(batch, 3, size, size, generator=g)).to(dev) for _ in range(n_batches)]
    keys = [torch.arange(i * batch, (i + 1) * batch) for i in range(n_batches)]
    tap = model.tap(layers)
    shapes = {n: (model.layer(n).height, model.layer(n).width) for n in layers}

    def bare():
        with torch.inference_mode():
            for x in batches:
                model.module(x)

    def ours():
        state = _ChunkState(channels, 32, dev)
        with torch.inference_mode():
            for x, kk in zip(batches, keys, strict=True):
                state.add(summarise(tap(x), layers, DEFAULT_RANKING, shapes), kk.to(dev), pooled=True)

    def naive():
        ref = HookEverything(model, layers)
        try:
            ref.run(batches)
            ref.finish(32)
        finally:
            ref.close()

    runs = {"bare": bare, "index": ours, "naive": naive}
    for fn in runs.values():  # warm-up
        fn()
    best = dict.fromkeys(runs, float("inf"))
    for _ in range(rounds):
        for name, fn in runs.items():
            sync(dev)
            t = time.perf_counter()
            fn()
            sync(dev)
            best[name] = min(best[name], time.perf_counter() - t)
    n = batch * n_batches
    return {"layers": layers, "images": n, "batch": batch, "size": size,
            **{f"{name}_ips": n / t for name, t in best.items()}}


def make_images(root: Path, n: int, side: int) -> Path:
    """*n* generated JPEGs (noise with a few shapes), in folders of 1000."""
    from PIL import Image, ImageDraw

    g = torch.Generator().manual_seed(1)
    for i in range(n):
        folder = root / f"{i // 1000:03d}"
        folder.mkdir(parents=True, exist_ok=True)
        px = (torch.rand(side, side, 3, generator=g) * 255).to(torch.uint8).numpy()
        img = Image.fromarray(px)
        d = ImageDraw.Draw(img)
        c = [int(v) for v in torch.randint(0, side, (4,), generator=g)]
        d.ellipse([min(c[0], c[2]), min(c[1], c[3]), max(c[0], c[2]), max(c[1], c[3])], fill=(200, 40, 40))
        img.save(folder / f"{i:05d}.jpg", quality=85)
    return root


def child(mode: str, images: str, size: int, out: str) -> None:
    """Run in a fresh process: index (or the naive reference) over *images*; print peak RSS and seconds."""
    import resource

    from benchmarks.index_naive import HookEverything
    from imagemachines.index import build_index
    from imagemachines.index.build import default_layers
    from imagemachines.models import load_model

    torch.set_num_threads(int(os.environ.get("BENCH_THREADS", "2")))
    model = load_model("mobilenet_v2", weights="none", device="cpu")
    model.input_size = size
    layers = default_layers(model)
    import threading

    def rss_mb() -> float:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * resource.getpagesize() / 2**20

    start_rss = rss_mb()
    peak = [start_rss]
    done = threading.Event()

    def sample() -> None:
        while not done.wait(0.01):
            peak[0] = max(peak[0], rss_mb())

    threading.Thread(target=sample, daemon=True).start()
    t = time.perf_counter()
    if mode == "index":
        build_index(model, Path(images), Path(out), layers=layers, progress=False, batch_size=32)
    else:
        from imagemachines.index.passes import preprocess
        from imagemachines.train.data import ImageFiles, Sample, collate, list_images

        files = [Sample(p, 0) for p in list_images(Path(images))]
        loader = torch.utils.data.DataLoader(ImageFiles(files, preprocess(model)), batch_size=32,
                                             collate_fn=collate)
        ref = HookEverything(model, layers)
        ref.run(b.images for b in loader)
        ref.finish(32)
    seconds = time.perf_counter() - t
    done.set()
    peak[0] = max(peak[0], rss_mb())
    print(json.dumps({"peak_mb": peak[0], "start_mb": start_rss, "growth_mb": peak[0] - start_rss,
                      "seconds": seconds}))


def memory(counts: list[int], side: int, size: int) -> list[dict]:
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        for n in counts:
            images = make_images(root / f"img{n}", n, side)
            for mode in ("index", "naive"):
                env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), str(ROOT)])}
                proc = subprocess.run([sys.executable, "-m", "benchmarks.bench_index", "--child", mode, str(images),
                                       str(size), str(root / f"idx-{mode}-{n}")], capture_output=True, text=True,
                                      cwd=ROOT, env=env)
                if proc.returncode != 0:
                    raise RuntimeError(proc.stderr[-2000:])
                rows.append({"mode": mode, "images": n, **json.loads(proc.stdout.strip().splitlines()[-1])})
                print(rows[-1], flush=True)
    return rows


def end_to_end(n: int, side: int) -> dict:
    """build_index over *n* JPEGs at the model's own 224 px: images/s of the whole command."""
    from imagemachines.index import build_index
    from imagemachines.models import load_model

    model = load_model("mobilenet_v2", weights="none", device="cpu")
    with tempfile.TemporaryDirectory() as tmp:
        images = make_images(Path(tmp) / "img", n, side)
        t = time.perf_counter()
        build_index(model, images, Path(tmp) / "idx", progress=False, batch_size=16)
        return {"images": n, "side": side, "ips": n / (time.perf_counter() - t)}


def paintings_section(quick: bool) -> str | None:
    from benchmarks.paintings_precision import PAINTINGS, run

    weights = ROOT.parent / "shared" / "weights" / "mobilenet_v2-b0353104.pth"
    if not (PAINTINGS / "labels.csv").is_file() or not weights.is_file():
        return None
    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp) / "torch"
        (home / "hub" / "checkpoints").mkdir(parents=True)
        (home / "hub" / "checkpoints" / weights.name).symlink_to(weights)
        os.environ["TORCH_HOME"] = str(home)
        settings = dict(n_train=24, n_val=6, image_size=96, epochs=4, freeze="features.18", lr=3e-3)
        precision, _, facts = run(Path(tmp), ks=(5, 10, 20), **settings)
    lines = [f"MobileNetV2 (ImageNet) fine-tuned on {settings['n_train']} paintings per label of "
             f"{', '.join(facts['labels'])} ({settings['n_val']} for validation), {settings['image_size']} px, "
             f"{settings['epochs']} epochs, frozen through {settings['freeze']} (a linear head): "
             f"{facts['train_s']:.0f} s. Indexed: the {facts['n_indexed']} held-out paintings of all seven labels "
             f"({', '.join(f'{k} {v}' for k, v in sorted(facts['counts'].items(), key=lambda kv: -kv[1]))}) in "
             f"{facts['index_s']:.0f} s. Precision@k = share of the k top examples of the class logit whose "
             "label is that class:", "",
             "| class | share of collection | precision@5 | precision@10 | precision@20 |", "|---|---:|---:|---:|---:|"]
    for label, at in precision.items():
        share = facts["counts"].get(label, 0) / facts["n_indexed"]
        lines.append(f"| {label} | {share:.2f} | {at[5]:.2f} | {at[10]:.2f} | {at[20]:.2f} |")
    lines += ["", f"Machine: {machine()}."]
    return "## Index: top examples on real paintings (`benchmarks/bench_index.py`)\n\n" + "\n".join(lines)


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--quick", action="store_true", help="a smoke run: nothing is written to docs/benchmarks.md")
    p.add_argument("--device", default="cpu")
    p.add_argument("--child", nargs=4, metavar=("MODE", "IMAGES", "SIZE", "OUT"))
    p.add_argument("--skip", default="", help="comma list of: throughput,e2e,memory,paintings")
    p.add_argument("--memory-counts", default="1000,10000", help="image counts of the memory runs")
    p.add_argument("--e2e-images", type=int, default=160, help="JPEGs of the end-to-end run")
    p.add_argument("--memory-size", type=int, default=32, help="network input side of the memory runs")
    p.add_argument("--batches", type=int, default=4, help="CPU: in-memory batches of 16 per throughput round")
    a = p.parse_args()
    if a.child:
        child(a.child[0], a.child[1], int(a.child[2]), a.child[3])
        return
    skip = set(a.skip.split(","))
    torch.set_num_threads(min(2, torch.get_num_threads()) if a.device == "cpu" else torch.get_num_threads())
    parts = [f"## Index throughput and memory (`benchmarks/bench_index.py`, {a.device})", ""]
    if "throughput" not in skip:
        gpu = a.device != "cpu"
        t = throughput(a.device, batch=64 if gpu else 16, n_batches=8 if gpu else a.batches,
                       rounds=5 if gpu else 3)
        print(t, flush=True)
        parts += [
            f"MobileNetV2, all {len(t['layers'])} default layers (top-level blocks features.0-18 and logits), "
            f"{t['images']} images of {t['size']} px in batches of {t['batch']}, the same in-memory batches for "
            "each, interleaved, best of several rounds:", "",
            "| pass | images/s | fraction of bare forward |", "|---|---:|---:|",
            f"| bare forward (`model.module(x)`) | {t['bare_ips']:.1f} | 1.00 |",
            f"| index (one tapped pass, per-unit max/argmax/mean, top/bottom-32, stats, pooled rows) | "
            f"{t['index_ips']:.1f} | **{t['index_ips'] / t['bare_ips']:.2f}** |",
            f"| naive reference (hooks keep full activations, sort at the end) | {t['naive_ips']:.1f} | "
            f"{t['naive_ips'] / t['bare_ips']:.2f} |", ""]
    if "e2e" not in skip and a.device == "cpu":
        e = end_to_end(a.e2e_images, 320)
        print(e, flush=True)
        parts += [f"End to end, `build_index` over {e['images']} generated {e['side']} px JPEGs at 224 px (decoding, "
                  f"sha256, SQLite, chunk files, merge): **{e['ips']:.1f} images/s**.", ""]
    parts.append(f"Machine: {machine()}; load average {os.getloadavg()[0]:.1f} at the end (shared machine).")
    name = "index-" + ("gpu" if a.device != "cpu" else "cpu")
    if {"throughput", "e2e"} - skip:
        publish(name, "\n".join(parts), quick=a.quick)
    parts = ["## Index memory (`benchmarks/bench_index.py`)", ""]
    if "memory" not in skip and a.device == "cpu":
        size = a.memory_size
        counts = [int(c) for c in a.memory_counts.split(",")]
        rows = memory(counts, 48, size)
        parts += [f"Memory growth during the pass: the largest resident set (sampled every 10 ms) minus the resident "
                  f"set before it, in a fresh process with the model loaded (about {rows[0]['start_mb']:.0f} MB). To "
                  f"fit this shared 2-core machine the images are small: 48 px JPEGs, indexed at **{size} px** input "
                  f"(all default layers), so the naive reference's activations are ({size}/224)² of what they would "
                  "be at 224 px, where it needs about 5 MB per image (50 GB for 10k)." + ("" if counts[-1] >= 10000
                  else f" The counts are {' and '.join(map(str, counts))}, not 1k and 10k: the machine (load "
                  "average near 18 from other work) was too slow for more in the time."), "",
                  "| images | index: growth MB | index: s | naive: growth MB | naive: s |",
                  "|---:|---:|---:|---:|---:|"]
        for n in sorted({r["images"] for r in rows}):
            i = next(r for r in rows if r["images"] == n and r["mode"] == "index")
            r = next(r for r in rows if r["images"] == n and r["mode"] == "naive")
            parts.append(f"| {n} | {i['growth_mb']:.0f} | {i['seconds']:.0f} | {r['growth_mb']:.0f} | "
                         f"{r['seconds']:.0f} |")
        parts += ["", f"Machine: {machine()}; load average {os.getloadavg()[0]:.1f} at the end (shared machine)."]
        publish("index-memory", "\n".join(parts), quick=a.quick)
    if "paintings" not in skip:
        section = paintings_section(a.quick)
        if section:
            publish("index-paintings", section, quick=a.quick)


if __name__ == "__main__":
    main()
