"""Are renders reproducible across thread counts? The same units, seed and recipe rendered on the CPU with 1
thread, with N threads, and with N threads again; prints how far the images and activations differ (the
numbers in docs/visualize.md, "Reproducibility").

    python scripts/render_threads.py [--model mobilenet_v2] [--layer features.14] [--channels 40-43]
                                     [--size 224] [--steps 16,64] [--threads 2]
"""

from __future__ import annotations

import argparse
import json

import numpy as np
import torch

from imagemachines.models import load_model
from imagemachines.vis import Unit, render


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="mobilenet_v2")
    parser.add_argument("--layer", default="features.14")
    parser.add_argument("--channels", default="40-43")
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--steps", default="16,64")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    lo, _, hi = args.channels.partition("-")
    units = [Unit(args.layer, c) for c in range(int(lo), int(hi or lo) + 1)]
    model = load_model(args.model, device="cpu")
    summary = {"torch": torch.__version__, "units": [str(u) for u in units], "size": args.size}
    for steps in (int(s) for s in args.steps.split(",")):
        runs = {}
        for tag, threads in (("1", 1), (str(args.threads), args.threads), ("again", args.threads)):
            torch.set_num_threads(threads)
            renders = render(model, units, size=args.size, steps=steps, seed=args.seed)
            runs[tag] = ([np.asarray(r.image, dtype=np.int16) for r in renders], [r.activation for r in renders])
        for a, b in (("1", str(args.threads)), (str(args.threads), "again")):
            (ia, aa), (ib, ab) = runs[a], runs[b]
            summary[f"{steps} steps, {a} vs {b} threads" if b != "again" else f"{steps} steps, {a} threads twice"] = {
                "largest pixel difference (of 255)": int(max(np.abs(x - y).max() for x, y in zip(ia, ib, strict=True))),
                "mean pixel difference": round(float(np.mean([np.abs(x - y).mean() for x, y in zip(ia, ib,
                                                                                               strict=True)])), 2),
                "largest activation difference (%)": round(100 * max(abs(x - y) / max(abs(x), 1e-9)
                                                                     for x, y in zip(aa, ab, strict=True)), 2)}
        print(json.dumps(summary, indent=1), flush=True)


if __name__ == "__main__":
    main()
