"""How many ties `imagemachines explain` meets on a collection: for every painting of an index, the units of a
block it drives most (top 12 by value, and by percentile in the collection), ranked on the block itself (after
its closing ReLU6) and on the tap before it — the numbers in docs/explain.md.

    python scripts/explain_ties.py INDEX [--block features.18] [--k 12] [--out ties.json]

Needs an index made with the default layers (which hold the tap before a closing ReLU6) of a model that closes
*--block* with one (MobileNetV2). Copies of a painting (same SHA-256) are counted once.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from imagemachines.errors import UserError
from imagemachines.explain.lookup import ties
from imagemachines.index import open_index
from imagemachines.index.examples import load_index_model
from imagemachines.index.passes import preprocess
from imagemachines.models.clamps import ranking_layer


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("index", type=Path)
    parser.add_argument("--block", default="features.18")
    parser.add_argument("--k", type=int, default=12)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()

    idx = open_index(args.index)
    model = load_index_model(idx, device="cpu")
    before = ranking_layer(model, args.block)
    layers = [before, args.block]
    if before == args.block or any(layer not in idx.layers for layer in layers):
        raise UserError(f"{args.block} must close with a saturating activation and the index must hold {layers}.")
    channels = idx.channels(args.block)
    stats = {layer: [idx.stats(layer, c) for c in range(channels)] for layer in layers}
    mean = {layer: np.array([s.mean for s in stats[layer]]) for layer in layers}
    std = {layer: np.array([max(s.std, 1e-12) for s in stats[layer]]) for layer in layers}
    found = {layer: {"value": [], "percentile": []} for layer in layers}
    highest = np.full(channels, -np.inf)
    copies = idx.copies()
    images = [i for i in idx.images() if i.id not in copies]
    transform, tap = preprocess(model), model.tap(layers)
    for start in range(0, len(images), args.batch):
        batch = images[start:start + args.batch]
        x = torch.stack([transform(Image.open(idx.image_file(i.id)).convert("RGB")) for i in batch])
        with torch.inference_mode():
            out = tap(x)
        for layer in layers:
            flat = out[layer].flatten(2)
            maxima, means = flat.max(2).values.numpy(), flat.mean(2).numpy()
            for v, m in zip(maxima, means, strict=True):
                if layer == args.block:
                    highest = np.maximum(highest, v)
                top = np.lexsort((-m, -v))[:args.k].tolist()
                found[layer]["value"].append(max((t.units for t in ties("value", v, top)), default=0))
                p = np.array([idx.percentile(layer, c, float(v[c])) for c in range(channels)])
                order = np.lexsort((-(v - mean[layer]) / std[layer], -p))[:args.k].tolist()
                found[layer]["percentile"].append(max((t.units for t in ties("percentile", p, order)), default=0))
        print(f"{start + len(batch)} / {len(images)}", flush=True)
    summary = {"paintings": len(images), f"units of {args.block} that reach its highest value (the clamp's bound) "
               "on some painting": int((highest == highest.max()).sum()), "of units": channels}
    for layer in layers:
        for ranking, sizes in found[layer].items():
            tied = [s for s in sizes if s]
            summary[f"{layer} by {ranking}"] = {
                f"paintings with a tie in their top {args.k}": len(tied),
                "median tie size": float(np.median(tied)) if tied else 0, "largest tie": max(tied, default=0)}
    text = json.dumps(summary, indent=1)
    print(text)
    if args.out:
        args.out.write_text(text + "\n")


if __name__ == "__main__":
    main()
