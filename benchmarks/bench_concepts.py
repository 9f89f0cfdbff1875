"""Concept discovery: the crop pass against the bare forward pass, and whole `concepts` runs.

1. Crop throughput, interleaved, best of several rounds, on the same paintings: the crop pass of
   ``imagemachines concepts`` (decoding, cropping and squashing each crop to the input, the network cut at the
   layer with BatchNorm folded, spatial means, one whole painting per 16 crops, the cache files written) against
   the bare forward pass of the whole network over the same crops already in memory (``model.module(x)``).
   Target: at least 0.85× the bare pass's crops per second.
2. End to end with a fine-tuned MobileNetV2 run (``--model``, default ``../runs/paintings-mnv2``) on the shared
   paintings: one class capped at 120 paintings (cold cache, then warm with another K: what the cache saves),
   and every class of the run. Target: one class in at most 3 minutes on 2 CPU cores.

Run: ``.venv/bin/python -m benchmarks.bench_concepts`` (``--quick`` for a smoke run that publishes nothing;
``--part crops|one-class|all-classes`` for one part, each under ten minutes on an idle 2-core machine). Each part
writes its own block of the Concepts section of docs/benchmarks.md. The machine's load average is printed next to
every absolute time: on a shared machine compare the ratios.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import torch

from benchmarks.report import machine, publish

ROOT = Path(__file__).resolve().parents[1]
PAINTINGS = ROOT.parent / "shared" / "data" / "paintings"
RUN = ROOT.parent / "runs" / "paintings-mnv2"


def load() -> str:
    one, five, fifteen = os.getloadavg()
    return f"load average {one:.1f} / {five:.1f} / {fifteen:.1f}"


def paintings(n: int, tmp: Path) -> tuple[Path, list[str]]:
    """*n* of the shared paintings (sorted), or generated pictures when ../shared is absent."""
    if (PAINTINGS / "images").is_dir():
        from imagemachines.index.scan import scan_folder

        return PAINTINGS / "images", [f.path for f in scan_folder(PAINTINGS / "images")][:n]
    import numpy as np
    from PIL import Image

    root = tmp / "generated"
    root.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for i in range(n):
        Image.fromarray(rng.integers(0, 255, (240, 320, 3), dtype=np.uint8)).save(root / f"{i:04d}.jpg")
    return root, [f"{i:04d}.jpg" for i in range(n)]


def throughput(n_images: int, rounds: int, batch: int) -> dict:
    """Crops per second of the crop pass and of the bare forward pass over the same crops (best of *rounds*)."""
    from imagemachines.concepts.activations import collect
    from imagemachines.concepts.cache import ActivationCache
    from imagemachines.concepts.crops import CropGrid, crop_tensors, read_rgb
    from imagemachines.concepts.layer import concept_layer
    from imagemachines.models import load_model

    model = load_model("mobilenet_v2", weights="none", device="cpu")
    layer = concept_layer(model)
    grid = CropGrid()
    with tempfile.TemporaryDirectory() as tmp:
        root, paths = paintings(n_images, Path(tmp))
        crops = torch.cat([crop_tensors(im, grid.boxes(*im.size), model.input_size, model.normalize)
                           for im in (read_rgb(root / p) for p in paths)])
        batches = list(crops.split(batch))
        n_crops = len(crops)

        def bare() -> None:
            with torch.inference_mode():
                for x in batches:
                    model.module(x)

        def ours(r: int) -> None:
            collect(model, root, paths, layer, ActivationCache(Path(tmp) / f"cache-{r}"), grid=grid, batch_size=batch,
                    progress=False)

        bare()  # warm-up: first calls allocate
        ours(-1)
        times = {"bare": [], "ours": []}
        for r in range(rounds):
            for name, fn in (("bare", bare), ("ours", lambda r=r: ours(r))):
                t0 = time.perf_counter()
                fn()
                times[name].append(time.perf_counter() - t0)
    best = {k: min(v) for k, v in times.items()}
    return {"images": len(paths), "crops": n_crops, "batch": batch, "rounds": rounds, "layer": layer,
            "bare_cps": n_crops / best["bare"], "ours_cps": n_crops / best["ours"],
            "ratio": best["bare"] / best["ours"], "load": load()}


def timed_run(model, images: Path, metadata: Path | None, classes: str, cache: Path, out: Path, **options) -> dict:
    """One `concepts` study written to *out*: seconds in all, and the study."""
    from imagemachines.concepts import discover

    t0 = time.perf_counter()
    study = discover(model, images, classes, metadata=metadata, cache=cache, progress=False, **options)
    study.save(out, progress=False)
    return {"seconds": time.perf_counter() - t0, "study": study, "load": load()}


def one_class(run: Path, quick: bool) -> dict:
    """One class capped at 120 paintings: a first run (cold cache), then another K from the cache."""
    from imagemachines.models import load_model

    model = load_model(str(run), device="cpu")
    images, metadata = PAINTINGS / "images", PAINTINGS / "labels.csv"
    cls = "landscape" if "landscape" in (model.class_names or []) else (model.class_names or ["0"])[0]
    n = 12 if quick else 120
    with tempfile.TemporaryDirectory() as tmp:
        cache = Path(tmp) / "cache"
        cold = timed_run(model, images, metadata, cls, cache, Path(tmp) / "one", max_images=n)
        warm = timed_run(model, images, metadata, cls, cache, Path(tmp) / "warm", max_images=n, concepts=8)
        seed = timed_run(model, images, metadata, cls, cache, Path(tmp) / "seed", max_images=n, seed=1)
    return {"class": cls, "n": n, "cold": cold, "warm": warm, "seed": seed}


def all_classes(run: Path, quick: bool) -> dict:
    """Every class of the run (at most 200 paintings each), cold cache."""
    from imagemachines.models import load_model

    model = load_model(str(run), device="cpu")
    with tempfile.TemporaryDirectory() as tmp:
        return timed_run(model, PAINTINGS / "images", PAINTINGS / "labels.csv", "all", Path(tmp) / "cache",
                         Path(tmp) / "all", max_images=12 if quick else 200)


def crops_markdown(tp: dict) -> str:
    return "\n".join([
        "## Concept discovery (`benchmarks/bench_concepts.py`, cpu)", "",
        f"Machine: {machine()}. Rerun: `.venv/bin/python -m benchmarks.bench_concepts --part crops` (then "
        "`--part one-class` and `--part all-classes`; each part writes its own block below).", "",
        f"**Crop pass vs bare forward pass**, MobileNetV2 at {tp['layer']}, {tp['crops']} crops of {tp['images']} "
        f"paintings (16 per painting), batches of {tp['batch']}, best of {tp['rounds']} interleaved rounds "
        f"({tp['load']}):", "",
        "| | crops/s | vs bare |", "|---|---|---|",
        f"| bare forward pass of the whole network over the crops, in memory | {tp['bare_cps']:.1f} | 1.00× |",
        f"| the crop pass: decode, crop, squash, network cut at the layer, means, cache files | {tp['ours_cps']:.1f} "
        f"| **{tp['ratio']:.2f}×** |", "",
        "The crop pass also runs every whole painting (one per 16 crops) and writes the cache; it gains by stopping "
        "at the layer and folding BatchNorm into the convolutions.",
    ])


def reused(first: dict, second: dict) -> int:
    """How many paintings of the second run's class the first run had already put in the cache."""
    paths = [set(next(iter(r["study"].classes.values())).paths) for r in (first, second)]
    return len(paths[0] & paths[1])


def one_class_markdown(runs: dict) -> str:
    cold, warm, seed = runs["cold"], runs["warm"], runs["seed"]
    return "\n".join([
        f"**One class** ({runs['class']}, {runs['n']} paintings), `concepts` with the fine-tuned MobileNetV2 of "
        f"`../runs/paintings-mnv2` on the shared paintings, renders 128 px × 128 steps, page written "
        f"({machine()}):", "",
        "| run | seconds | vs first run | load average |", "|---|---|---|---|",
        f"| first run (cold cache) | {cold['seconds']:.0f} | 1.00× | {cold['load']} |",
        f"| again with another K (8; activations from the cache) | {warm['seconds']:.0f} | "
        f"**{cold['seconds'] / max(warm['seconds'], 1e-9):.1f}× faster** | {warm['load']} |",
        f"| again with another seed (1; it also draws another sample of the class: {reused(cold, seed)} of its "
        f"{runs['n']} paintings' activations from the cache) | {seed['seconds']:.0f} | "
        f"**{cold['seconds'] / max(seed['seconds'], 1e-9):.1f}× faster** | {seed['load']} |",
    ])


def all_classes_markdown(every: dict) -> str:
    study = every["study"]
    return "\n".join([
        f"**Every class** of the same run, at most 200 paintings each, cold cache ({machine()}):", "",
        "| run | paintings | seconds | load average |", "|---|---|---|---|",
        f"| every class ({', '.join(study.classes)}) | {sum(len(c.paths) for c in study.classes.values())} | "
        f"{every['seconds']:.0f} | {every['load']} |",
    ])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a small smoke run; publishes nothing")
    parser.add_argument("--part", choices=("crops", "one-class", "all-classes"), action="append",
                        help="run only this part (repeatable); default: all three")
    parser.add_argument("--model", type=Path, default=RUN, help="a run of `imagemachines train` on the paintings")
    parser.add_argument("--threads", type=int, default=2, help="torch threads (2: the target machine)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    parts = args.part or ["crops", "one-class", "all-classes"]
    if "crops" in parts:
        tp = throughput(8 if args.quick else 40, 2 if args.quick else 4, 32)
        print(f"crop pass {tp['ours_cps']:.1f} crops/s, bare {tp['bare_cps']:.1f} crops/s: {tp['ratio']:.2f}× "
              f"({tp['load']})")
        publish("concepts-cpu", crops_markdown(tp), quick=args.quick)
    runs = [p for p in parts if p != "crops"]
    if runs and not (args.model.is_dir() and (PAINTINGS / "images").is_dir()):
        print(f"no run at {args.model} or no ../shared paintings: the whole runs are left out")
        return
    if "one-class" in runs:
        one = one_class(args.model, args.quick)
        for name in ("cold", "warm", "seed"):
            print(f"{name}: {one[name]['seconds']:.0f} s ({one[name]['load']})")
        publish("concepts-one-class-cpu", one_class_markdown(one), quick=args.quick)
    if "all-classes" in runs:
        every = all_classes(args.model, args.quick)
        print(f"all classes: {every['seconds']:.0f} s ({every['load']})")
        publish("concepts-all-classes-cpu", all_classes_markdown(every), quick=args.quick)


if __name__ == "__main__":
    main()
