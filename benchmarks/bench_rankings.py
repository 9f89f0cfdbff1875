"""Which ranking keeps a unit's examples truest: ``interior``, ``reflect`` or ``full``, on the shared paintings.

The 458 paintings of ../shared/data/paintings are indexed with the genuine MobileNetV2 (ImageNet) weights once
per ranking (features.4, .7, .11, .14, .16), and once more per ranking after trimming 8 % off every side of
every painting. Per ranking and layer, over every unit's top 12 (what a unit page shows):

- ``edge``: share of the top-12 examples whose value was taken on the border of the map (chance: the border's
  share of the map's cells) — the strongest-region crop then shows the painting's edge;
- ``corner``: units with at least 6 of their top 12 peaking in a corner cell (chance: 4 cells of the map);
- ``flat``: share of the strongest-region crops (as the examples page cuts them) with less than half the
  painting's own texture (mean absolute difference of neighbouring grey pixels): sky, a black background;
- ``stable``: how many of a unit's top 12 stay in its top 12 when 8 % is trimmed off every side of every
  painting (mean share): examples about the painting survive a change of its edge;
- ``content`` / ``photo``: units whose top 12 over-represent a metadata value of the painting (label, artist,
  date, title) / of the photograph (source, image size), adjusted p < 0.05 (:mod:`imagemachines.index.enrichment`);
- ``same``: share of the top 12 shared with the ``full`` ranking.

Cost: the index's per-batch work (tapped forward pass and summaries) of each ranking on the same in-memory
batches, interleaved, best of three rounds, as a ratio to ``full``.

Run: ``.venv/bin/python -m benchmarks.bench_rankings [--keep DIR]`` (needs ../shared; ``--keep`` leaves the
indexes there, e.g. for screenshots). Writes its section of docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from benchmarks.report import machine, publish

ROOT = Path(__file__).resolve().parents[1]
PAINTINGS = ROOT.parent / "shared" / "data" / "paintings"
WEIGHTS = ROOT.parent / "shared" / "weights" / "mobilenet_v2-b0353104.pth"
LAYERS = ["features.4", "features.7", "features.11", "features.14", "features.16"]
RANKINGS = ("interior", "reflect", "full")
K = 12
TRIM = 0.08


def trimmed_copy(src: Path, dest: Path, trim: float = TRIM) -> Path:
    """Every painting with *trim* of its width and height cut off each side (same relative paths)."""
    from PIL import Image

    for path in sorted(src.rglob("*.jpg")):
        rel = path.relative_to(src)
        (dest / rel).parent.mkdir(parents=True, exist_ok=True)
        with Image.open(path) as im:
            w, h = im.size
            dx, dy = round(w * trim), round(h * trim)
            im.convert("RGB").crop((dx, dy, w - dx, h - dy)).save(dest / rel, quality=95)
    return dest


def texture(gray: np.ndarray) -> float:
    """Mean absolute difference between neighbouring pixels (0 for a flat colour)."""
    if gray.shape[0] < 2 or gray.shape[1] < 2:
        return 0.0
    return float((np.abs(np.diff(gray, axis=0)).mean() + np.abs(np.diff(gray, axis=1)).mean()) / 2)


def crop_box(size: tuple[int, int], box: tuple[int, int, int, int]) -> tuple[int, int, int, int]:
    """The strongest-region crop as the examples page cuts it (:func:`imagemachines.index.examples._crop`)."""
    from imagemachines.index.examples import crop_square

    return crop_square(size, box)


def metrics(idx, trimmed, full, layer: str, gray: dict[int, np.ndarray]) -> dict:
    from imagemachines.index.enrichment import significant
    from imagemachines.index.peaks import border_chance

    h, w = idx._shape(layer)
    corners = {(0, 0), (0, w - 1), (h - 1, 0), (h - 1, w - 1)}
    edge, flat, stable, same = [], [], [], []
    corner_units = content = photo = 0
    for c in range(idx.channels(layer)):
        examples = idx.examples(layer, c, k=K)
        edge.append(np.mean([e.on_border for e in examples]))
        corner_units += sum(e.cell in corners for e in examples) >= K // 2
        for e in examples:
            g = gray[e.image_id]
            x0, y0, x1, y1 = crop_box((g.shape[1], g.shape[0]), e.box)
            flat.append(texture(g[y0:y1, x0:x1]) < 0.5 * texture(g))
        ids = {e.image_id for e in examples}
        stable.append(len(ids & set(trimmed.example_ids(layer, c, k=K))) / K)
        same.append(len(ids & set(full.example_ids(layer, c, k=K))) / K)
        found = significant(idx.enrichment(layer, c, k=K))
        content += any(not e.provenance for e in found)
        photo += any(e.provenance for e in found)
    border = [idx.border(layer, c) for c in range(idx.channels(layer))]
    return {"units": idx.channels(layer), "map": [h, w], "chance": border_chance(h, w),
            "edge": float(np.mean(edge)), "corner": int(corner_units), "flat": float(np.mean(flat)),
            "stable": float(np.mean(stable)), "content": int(content), "photo": int(photo),
            "same": float(np.mean(same)), "flagged": sum(b.flagged for b in border),
            "border_share": float(np.mean([b.share for b in border]))}


def cost(rounds: int = 3, batch: int = 16, n_batches: int = 4) -> dict[str, float]:
    """Seconds of the index's per-batch work per ranking on the same batches (best of *rounds*, interleaved)."""
    from imagemachines.index.passes import summarise
    from imagemachines.index.peaks import network_input
    from imagemachines.models import load_model

    model = load_model("mobilenet_v2", device="cpu")
    tap = model.tap(LAYERS)
    shapes = {n: (model.layer(n).height, model.layer(n).width) for n in LAYERS}
    g = torch.Generator().manual_seed(0)
    batches = [model.normalize(torch.rand(batch, 3, 224, 224, generator=g)) for _ in range(n_batches)]

    def work(ranking: str) -> None:
        with torch.inference_mode():
            for x in batches:
                summarise(tap(network_input(x, ranking)), LAYERS, ranking, shapes)

    for r in RANKINGS:
        work(r)
    best = dict.fromkeys(RANKINGS, float("inf"))
    for _ in range(rounds):
        for r in RANKINGS:
            t = time.perf_counter()
            work(r)
            best[r] = min(best[r], time.perf_counter() - t)
    return best


def run(keep: Path) -> dict:
    from PIL import Image

    from imagemachines.index import build_index, open_index
    from imagemachines.models import load_model

    model = load_model("mobilenet_v2", device="cpu")
    images = PAINTINGS / "images"
    trimmed_images = trimmed_copy(images, keep / "trimmed" / "images") if not (keep / "trimmed").is_dir() \
        else keep / "trimmed" / "images"
    shutil.copyfile(PAINTINGS / "labels.csv", keep / "trimmed" / "labels.csv")
    idx, trimmed = {}, {}
    for r in RANKINGS:
        for name, folder, into in (("", images, idx), ("trimmed-", trimmed_images, trimmed)):
            meta = PAINTINGS / "labels.csv" if not name else keep / "trimmed" / "labels.csv"
            out = build_index(model, folder, keep / f"{name}{r}", layers=LAYERS, k=32, metadata=meta,
                              ranking=r, progress=True)
            into[r] = open_index(out)
    gray = {}
    for info in idx["full"].images():
        with Image.open(idx["full"].image_file(info.id)) as im:
            gray[info.id] = np.asarray(im.convert("L"), dtype=np.float32)
    table = {r: {layer: metrics(idx[r], trimmed[r], idx["full"], layer, gray) for layer in LAYERS}
             for r in RANKINGS}
    return {"table": table, "cost": cost(), "images": idx["full"].n_images}


def markdown(result: dict) -> str:
    c = result["cost"]
    lines = ["## Rankings of a unit's examples (`benchmarks/bench_rankings.py`, cpu)", "",
             f"{machine()}; {result['images']} shared paintings, MobileNetV2 (ImageNet), top {K} per unit; "
             f"trimmed: {TRIM:.0%} off every side. Per-batch work as a ratio to `full`: "
             + ", ".join(f"`{r}` {c[r] / c['full']:.2f}" for r in RANKINGS) + ".", "",
             "| layer (map) | ranking | edge (chance) | corner units | flat crops | stable | content units | "
             "photo units | same as full | flagged units (border share) |", "|---|---|---|---|---|---|---|---|---|---|"]
    for layer in LAYERS:
        for r in RANKINGS:
            m = result["table"][r][layer]
            lines.append(f"| {layer} ({m['map'][0]}×{m['map'][1]}) | `{r}` | {m['edge']:.0%} ({m['chance']:.0%}) | "
                         f"{m['corner']}/{m['units']} | {m['flat']:.0%} | {m['stable']:.2f} | "
                         f"{m['content']}/{m['units']} | {m['photo']}/{m['units']} | {m['same']:.2f} | "
                         f"{m['flagged']}/{m['units']} ({m['border_share']:.0%}) |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--keep", type=Path, help="Build the indexes here and keep them (default: a temp folder).")
    args = parser.parse_args()
    if not (PAINTINGS / "labels.csv").is_file() or not WEIGHTS.is_file():
        raise SystemExit(f"needs {PAINTINGS} and {WEIGHTS}")
    torch.set_num_threads(int(os.environ.get("BENCH_THREADS", "2")))
    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp) / "torch"
        (home / "hub" / "checkpoints").mkdir(parents=True)
        (home / "hub" / "checkpoints" / WEIGHTS.name).symlink_to(WEIGHTS)
        os.environ["TORCH_HOME"] = str(home)
        keep = args.keep or Path(tmp) / "indexes"
        keep.mkdir(parents=True, exist_ok=True)
        result = run(keep)
    (keep / "rankings.json").write_text(json.dumps(result, indent=1)) if args.keep else None
    text = markdown(result)
    print(text)
    publish("rankings", text, quick=False)


if __name__ == "__main__":
    main()
