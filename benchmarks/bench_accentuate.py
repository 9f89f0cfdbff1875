"""Feature accentuation against the real peer: ``imagemachines.vis.accentuate`` vs faccent 1.0.3, side by side.

    .venv/bin/python -m benchmarks.bench_accentuate [--steps 100] [--threads 2] [--quick]

faccent is Hamblin et al.'s own package; it is installed for this benchmark alone (``benchmarks/faccent_peer.py``:
``pip install --target`` a throwaway folder, never a project dependency). Both sides get MobileNetV2 with the same
IMAGENET1K_V1 weights, the same painting (the shared paintings, centre-cropped to a square at 224 px, since
faccent crops to a square), the same unit, the same regulariser layer (our default, ``features.6``) and the same
number of steps:

- faccent: ``render_vis`` as its demo calls it (Fourier image from the painting, 16 box crops + noise per step,
  the regulariser weighted by the gradient ratio at the start, ``accent_reg_alpha`` 1, Adam lr 0.05).
- ours: ``accentuate()`` with its defaults (strength 1, lr 0.02 warmed up then decayed, the engine's
  transforms, one view per step); and, untimed, strengths 0.5 and 2 in one batched call, to show where the
  gain/distance trade-off lies around the default.
- Scoring (the same for both): the final 8-bit image at 224 px without transforms; gain = the unit's mean
  activation over the painting's; distance = RMS pixel difference (8-bit levels) and the relative distance of
  the activations at ``features.6``.
- Time: each call's wall time, both in one process with the same threads, alternated painting by painting.
- Default time: one ``accentuate()`` at its defaults on a 224-px painting (aspect kept), median of 3, alternated
  with an ordinary render of the same unit and steps (the ratio holds on any machine; the seconds do not).

``--quick`` is a smoke run (few steps, one painting) that writes nothing to docs/. The full run writes section
``accentuate-cpu`` of docs/benchmarks.md and the contact sheet ``docs/img/accentuate-vs-faccent.png``.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torchvision
from PIL import Image, ImageDraw

from benchmarks.faccent_peer import faccent_accentuate, install
from benchmarks.report import machine, publish
from imagemachines.models import load_model
from imagemachines.vis import render
from imagemachines.vis.accentuation import accentuate
from imagemachines.vis.regulariser import default_reg_layer

ROOT = Path(__file__).resolve().parents[1]
PAINTINGS = ROOT.parent / "shared" / "data" / "paintings" / "images"
SHEET = ROOT / "docs" / "img" / "accentuate-vs-faccent.png"
# (painting, unit, what it is): a face unit on a portrait, a foliage unit on a landscape, a class
CASES = [
    ("portrait/B_102.jpg", "features.16:150", "face/portrait unit"),
    ("landscape/A_3_15.jpg", "features.10:47", "foliage unit"),
    ("landscape/A_6_03.jpg", "features.13:75", "tree-crown unit"),
]
SIZE = 224


@dataclass
class Side:
    image: np.ndarray
    seconds: float
    before: float = 0.0
    after: float = 0.0
    pixels: float = 0.0
    acts: float = 0.0

    @property
    def gain(self) -> float:
        return self.after / self.before if self.before > 0 else float("nan")


def square(path: Path, size: int = SIZE) -> np.ndarray:
    """The painting's centre square at *size* px (faccent crops to a square; both sides get this)."""
    with Image.open(path) as im:
        im = im.convert("RGB")
    side = min(im.size)
    left, top = (im.width - side) // 2, (im.height - side) // 2
    return np.asarray(im.crop((left, top, left + side, top + side)).resize((size, size), Image.LANCZOS))


class Scorer:
    """The unit's mean activation and the distances to the painting, the same for both sides."""

    def __init__(self, model, layer: str, channel: int, reg_layer: str):
        self.model, self.layer, self.channel, self.reg_layer = model, layer, channel, reg_layer
        self.tap = model.tap([layer, reg_layer])

    @torch.no_grad()
    def acts(self, image: np.ndarray) -> dict[str, torch.Tensor]:
        x = torch.from_numpy(np.array(image)).permute(2, 0, 1)[None].float() / 255
        return self.tap(self.model.normalize(x))

    def fill(self, side: Side, painting: np.ndarray) -> Side:
        a, a0 = self.acts(side.image), self.acts(painting)
        unit = a[self.layer][0, self.channel]
        side.after = float(unit.mean())
        side.before = float(a0[self.layer][0, self.channel].mean())
        r, r0 = a[self.reg_layer][0], a0[self.reg_layer][0]
        side.acts = float((r - r0).norm(dim=0).mean() / r0.norm(dim=0).mean())
        side.pixels = float(np.sqrt(((side.image.astype(float) - painting.astype(float)) ** 2).mean()))
        return side


def run_case(model, net, case, steps: int, order: int) -> tuple[np.ndarray, Side, Side, list[Side]]:
    path, unit, _what = case
    painting = square(PAINTINGS / path)
    layer, channel = unit.split(":")
    reg = default_reg_layer(model)
    scorer = Scorer(model, layer, int(channel), reg)

    def theirs() -> Side:
        t = time.perf_counter()
        image = faccent_accentuate(net, painting, layer, int(channel), reg, steps=steps)
        return Side(image, time.perf_counter() - t)

    def ours() -> Side:
        t = time.perf_counter()
        [a] = accentuate(model, painting, unit, steps=steps, size=SIZE)
        return Side(np.asarray(a.image), time.perf_counter() - t)

    first, second = (theirs, ours) if order % 2 == 0 else (ours, theirs)
    results = {first: first(), second: second()}
    faccent_side, our_side = scorer.fill(results[theirs], painting), scorer.fill(results[ours], painting)
    strip = [scorer.fill(Side(np.asarray(a.image), 0.0), painting)
             for a in accentuate(model, painting, unit, strength=[0.5, 2.0], steps=steps, size=SIZE)]
    return painting, faccent_side, our_side, strip


def default_time(model, repeats: int, steps: int | None = None) -> tuple[list[float], list[float], dict]:
    """One accentuation at the defaults of a 224-px painting (aspect kept), and an ordinary render of the same
    unit with the same steps at 224 px, alternated *repeats* times (*steps*: only for a smoke run)."""
    path, unit, _ = CASES[0]
    accents, renders, last = [], [], None
    for _ in range(repeats):
        t = time.perf_counter()
        [last] = accentuate(model, PAINTINGS / path, unit, steps=steps)
        accents.append(time.perf_counter() - t)
        t = time.perf_counter()
        render(model, unit, steps=last.recipe["steps"], size=224)
        renders.append(time.perf_counter() - t)
    return accents, renders, last.numbers


def contact_sheet(rows: list[tuple[str, np.ndarray, Side, Side, list[Side]]], path: Path) -> None:
    """Per case: the painting, faccent's accentuation, ours (strength 1), ours at 0.5 and 2, with their numbers."""
    cell, label = 200, 34
    sheet = Image.new("RGB", (5 * (cell + 4), len(rows) * (cell + label)), (24, 24, 24))
    draw = ImageDraw.Draw(sheet)
    for r, (title, painting, theirs, ours, strip) in enumerate(rows):
        y = r * (cell + label)
        cells = [(painting, title, ""), (theirs.image, "faccent (alpha 1)", _caption(theirs)),
                 (ours.image, "ours (strength 1)", _caption(ours)),
                 (strip[0].image, "ours (strength 0.5)", _caption(strip[0])),
                 (strip[1].image, "ours (strength 2)", _caption(strip[1]))]
        for c, (image, line1, line2) in enumerate(cells):
            x = c * (cell + 4)
            sheet.paste(Image.fromarray(image).resize((cell, cell), Image.LANCZOS), (x, y))
            draw.text((x + 3, y + cell + 3), line1, fill=(230, 230, 230))
            draw.text((x + 3, y + cell + 17), line2, fill=(160, 160, 160))
    path.parent.mkdir(parents=True, exist_ok=True)
    sheet.save(path)


def _caption(side: Side) -> str:
    return f"gain x{side.gain:.2f}  dist {side.acts:.2f}  {side.pixels:.1f} lv"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=100, help="Steps on both sides (faccent's default is 100).")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3, help="Runs of the default-settings timing.")
    parser.add_argument("--quick", action="store_true", help="Smoke run: 4 steps, one painting, nothing written.")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    install()
    steps = 4 if args.quick else args.steps
    cases = CASES[:1] if args.quick else CASES
    model = load_model("mobilenet_v2", device="cpu")
    net = torchvision.models.mobilenet_v2(weights="IMAGENET1K_V1").eval().requires_grad_(False)
    load_start = os.getloadavg()[0]
    rows, table = [], []
    for i, case in enumerate(cases):
        painting, theirs, ours, strip = run_case(model, net, case, steps, i)
        rows.append((f"{case[1]} ({case[2]})", painting, theirs, ours, strip))
        table.append(f"| {case[0]} | {case[1]} ({case[2]}) | {theirs.before:.3f} | ×{theirs.gain:.2f} | "
                     f"{theirs.acts:.3f} | {theirs.pixels:.1f} | {theirs.seconds:.1f} s | ×{ours.gain:.2f} | "
                     f"{ours.acts:.3f} | {ours.pixels:.1f} | {ours.seconds:.1f} s | "
                     f"**{theirs.seconds / ours.seconds:.1f}×** | ×{strip[0].gain:.2f} / {strip[0].acts:.3f} | "
                     f"×{strip[1].gain:.2f} / {strip[1].acts:.3f} |")
        print(table[-1], flush=True)
    times, render_times, numbers = default_time(model, 1 if args.quick else args.repeats,
                                                steps if args.quick else None)
    median, render_median = statistics.median(times), statistics.median(render_times)
    print(f"default accentuation: median {median:.1f} s ({', '.join(f'{t:.1f}' for t in times)}); render of the "
          f"same unit {render_median:.1f} s; {numbers}")
    load_end = os.getloadavg()[0]
    if not args.quick:
        contact_sheet(rows, SHEET)
    speedups = [float(line.split("**")[1].rstrip("×")) for line in table]
    markdown = f"""## Feature accentuation vs faccent (`benchmarks/bench_accentuate.py`)

`python -m benchmarks.bench_accentuate --steps {steps} --threads {args.threads}` — {machine()}; load average
{load_start:.1f} at the start and {load_end:.1f} at the end (other work shares these cores: absolute seconds are
slow and noisy; both sides ran in one process, alternated painting by painting, under the same load).

faccent 1.0.3 (Hamblin et al.'s package: `render_vis` as in its demo: Fourier image from the painting, 16 box crops
+ noise per step, regulariser weighted by the gradient ratio at the start, `accent_reg_alpha` 1, Adam lr 0.05) vs
our `accentuate()` at its defaults (strength 1, lr 0.02 with warm-up and decay, one transformed view per step),
{steps} steps each, MobileNetV2 IMAGENET1K_V1, the painting centre-cropped to 224 px on both sides, the
regulariser at `features.6` on both. Gain: the unit's mean activation on the final 8-bit image over the
painting's; distance: relative distance of the `features.6` activations (and RMS pixel difference in 8-bit
levels) to the painting. The last two columns are ours at strengths 0.5 and 2 (gain / distance), one batched call.

| painting | unit | painting's value | faccent gain | faccent dist | faccent px | faccent time | our gain | our dist \
| our px | our time | speed-up | ours s=0.5 | ours s=2 |
|---|---|---|---|---|---|---|---|---|---|---|---|---|---|
{chr(10).join(table)}

Speed-up {min(speedups):.1f}–{max(speedups):.1f}× (median {statistics.median(speedups):.1f}×). Contact sheet of the
pairs: `docs/img/accentuate-vs-faccent.png`.

**One accentuation at the defaults** (`accentuate(model, painting, unit)`: 256 steps, strength 1, the 224-px
portrait `{CASES[0][0]}` with its aspect kept, {CASES[0][1]}): median **{median:.1f} s** of {len(times)}
({', '.join(f'{t:.1f}' for t in times)} s) on {args.threads} threads; gain ×{numbers['gain']:.2f}. An ordinary
render of the same unit with the same steps (224 px, alternated with it): median {render_median:.1f} s, so an
accentuation costs **{median / render_median:.2f}×** a render (the painting's own pass to the regulariser's layer
each step, the balance's two passes and the final numbers).
"""
    publish("accentuate-cpu", markdown, quick=args.quick)


if __name__ == "__main__":
    main()
