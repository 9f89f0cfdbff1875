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
  transforms, one view per step) at the same steps; and, timed too, at its own default steps (256), which is what
  a user gets.
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
SWEEP = (4.0, 2.0, 1.5, 1.4, 1.3, 1.2, 1.1, 1.0, 0.8)  # ours in one batched call: the gain at faccent's distance


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


def run_case(model, net, case, steps: int, order: int) -> tuple[np.ndarray, Side, Side, Side, Side, float]:
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

    def ours_default() -> Side:
        t = time.perf_counter()
        [a] = accentuate(model, painting, unit, size=SIZE)
        return Side(np.asarray(a.image), time.perf_counter() - t)

    first, second = (theirs, ours) if order % 2 == 0 else (ours, theirs)
    results = {first: first(), second: second(), ours_default: ours_default()}
    them, same, default = (scorer.fill(results[f], painting) for f in (theirs, ours, ours_default))
    # ours at faccent's distance: the strongest gain among SWEEP's strengths whose activation distance is at most
    # faccent's (strength 1 when none is), all strengths in one batched call at the same steps
    t = time.perf_counter()
    swept = accentuate(model, painting, unit, strength=list(SWEEP), steps=steps, size=SIZE)
    seconds = time.perf_counter() - t
    sides = [scorer.fill(Side(np.asarray(a.image), seconds), painting) for a in swept]
    within = [(side, w) for side, w in zip(sides, SWEEP, strict=True) if side.acts <= them.acts] or [(sides[0], 1.0)]
    matched, strength = max(within, key=lambda pair: pair[0].gain)
    return painting, them, same, default, matched, strength


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


def contact_sheet(rows: list[tuple[str, np.ndarray, Side, Side, Side]], steps: int, path: Path) -> None:
    """Per case: the painting, faccent's accentuation, ours at the same steps and ours at its defaults, with their
    numbers."""
    cell, label = 224, 34
    sheet = Image.new("RGB", (4 * (cell + 4), len(rows) * (cell + label + 16)), (24, 24, 24))
    draw = ImageDraw.Draw(sheet)
    for r, (title, painting, theirs, ours, default) in enumerate(rows):
        y = r * (cell + label + 16)
        draw.text((3, y + 2), title, fill=(230, 230, 230))
        y += 16
        cells = [(painting, "the painting", ""), (theirs.image, f"faccent, {steps} steps", _caption(theirs)),
                 (ours.image, f"ours, {steps} steps", _caption(ours)),
                 (default.image, "ours, defaults (256 steps)", _caption(default))]
        for c, (image, line1, line2) in enumerate(cells):
            x = c * (cell + 4)
            sheet.paste(Image.fromarray(image).resize((cell, cell), Image.LANCZOS), (x, y))
            draw.text((x + 3, y + cell + 3), line1, fill=(230, 230, 230))
            draw.text((x + 3, y + cell + 17), line2, fill=(160, 160, 160))
    path.parent.mkdir(parents=True, exist_ok=True)
    sheet.save(path)


def _caption(side: Side) -> str:
    return f"gain x{side.gain:.2f}  dist {side.acts:.2f}  {side.pixels:.1f} lv  {side.seconds:.0f} s"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=100, help="Steps on both sides (faccent's default is 100).")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3, help="Runs of the default-settings timing.")
    parser.add_argument("--cases", type=int, default=len(CASES), help="How many of the paintings (in order).")
    parser.add_argument("--quick", action="store_true", help="Smoke run: 4 steps, one painting, nothing written.")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    install()
    steps = 4 if args.quick else args.steps
    cases = CASES[:1] if args.quick else CASES[:args.cases]
    model = load_model("mobilenet_v2", device="cpu")
    net = torchvision.models.mobilenet_v2(weights="IMAGENET1K_V1").eval().requires_grad_(False)
    load_start = os.getloadavg()[0]
    rows, table, matches = [], [], []
    for i, case in enumerate(cases):
        painting, theirs, ours, default, matched, strength = run_case(model, net, case, steps, i)
        rows.append((f"{case[0]}: {case[1]} ({case[2]})", painting, theirs, ours, default))
        matches.append(f"| {case[0]} | {case[1]} | ×{theirs.gain:.2f} / {theirs.acts:.3f} | {strength:g} | "
                       f"×{matched.gain:.2f} / {matched.acts:.3f} / {matched.pixels:.1f} | "
                       f"{'**yes**' if matched.gain >= theirs.gain and matched.acts <= theirs.acts else 'no'} | "
                       f"{matched.seconds:.1f} s for all {len(SWEEP)} |")
        print(matches[-1], flush=True)
        table.append(f"| {case[0]} | {case[1]} ({case[2]}) | {theirs.before:.3f} | ×{theirs.gain:.2f} | "
                     f"{theirs.acts:.3f} | {theirs.pixels:.1f} | {theirs.seconds:.1f} s | ×{ours.gain:.2f} | "
                     f"{ours.acts:.3f} | {ours.pixels:.1f} | {ours.seconds:.1f} s | "
                     f"**{theirs.seconds / ours.seconds:.0f}×** | ×{default.gain:.2f} / {default.acts:.3f} / "
                     f"{default.pixels:.1f} / {default.seconds:.1f} s | **{theirs.seconds / default.seconds:.1f}×** |")
        print(table[-1], flush=True)
    repeats = 1 if args.quick else args.repeats
    if repeats:
        times, render_times, numbers = default_time(model, repeats, steps if args.quick else None)
        median, render_median = statistics.median(times), statistics.median(render_times)
        print(f"default accentuation: median {median:.1f} s ({', '.join(f'{t:.1f}' for t in times)}); render of "
              f"the same unit {render_median:.1f} s; {numbers}")
        default_line = f"""**One accentuation at the defaults** (`accentuate(model, painting, unit)`: 256 steps,
strength 1, the 224-px portrait `{CASES[0][0]}` with its aspect kept, {CASES[0][1]}): median **{median:.1f} s**
of {len(times)} ({', '.join(f'{t:.1f}' for t in times)} s) on {args.threads} threads; gain
×{numbers['gain']:.2f}. An ordinary render of the same unit with the same steps (224 px, alternated with it):
median {render_median:.1f} s, so an accentuation costs **{median / render_median:.2f}×** a render (the painting's
own pass to the regulariser's layer each step, the balance's two passes and the final numbers)."""
    else:
        seconds = [row[4].seconds for row in rows]
        default_line = f"""**One accentuation at the defaults** (`accentuate(model, painting, unit, size=224)`:
256 steps, strength 1, a 224-px painting): the last column's runs above, {', '.join(f'{t:.1f}' for t in seconds)} s on
{args.threads} threads (median **{statistics.median(seconds):.1f} s**; `--repeats 0`: no separate timing run)."""
    load_end = os.getloadavg()[0]
    if not args.quick:
        contact_sheet(rows, steps, SHEET)
    speedups = [float(line.split("**")[1].rstrip("×")) for line in table]
    default_speedups = [float(line.split("**")[3].rstrip("×")) for line in table]
    markdown = f"""## Feature accentuation vs faccent (`benchmarks/bench_accentuate.py`)

`python -m benchmarks.bench_accentuate --steps {steps} --threads {args.threads} --repeats {args.repeats}` —
{machine()}; load average {load_start:.1f} at the start and {load_end:.1f} at the end (other work shares these
cores: absolute seconds are slow and noisy; both sides ran in one process, alternated painting by painting, under
the same load).

faccent 1.0.3 (Hamblin et al.'s package: `render_vis` as in its demo: Fourier image from the painting, 16 box crops
+ noise per step with the painting's own pass in the same batch, regulariser weighted by the gradient ratio at the
start, `accent_reg_alpha` 1, Adam lr 0.05; its transparency map told to reuse the step's gradient, which spares it
one backward pass a step) vs our `accentuate()` at its defaults (strength 1, lr 0.02 with warm-up and decay, one
transformed view per step), {steps} steps each, then ours at its own defaults (256 steps). MobileNetV2
IMAGENET1K_V1, the painting centre-cropped to 224 px on both sides, the regulariser at `features.6` on both.
Gain: the unit's mean activation on the final 8-bit image over the painting's; distance: relative distance of the
`features.6` activations (and RMS pixel difference in 8-bit levels) to the painting.

| painting | unit | painting's value | faccent gain | faccent dist | faccent px | faccent time | our gain | our dist \
| our px | our time | speed-up, same steps | ours at defaults: gain / dist / px / time | faccent time ÷ ours at \
defaults |
|---|---|---|---|---|---|---|---|---|---|---|---|---|---|
{chr(10).join(table)}

**At faccent's distance.** Ours at strengths {', '.join(f'{w:g}' for w in SWEEP)} in one batched call with the
same steps; the row keeps the strongest gain whose activation distance is at most faccent's ("equal or higher gain
at equal or lower distance" is the last column):

| painting | unit | faccent gain / dist | our strength | our gain / dist / px | ≥ gain at ≤ dist | time |
|---|---|---|---|---|---|---|
{chr(10).join(matches)}

Speed-up at the same steps {min(speedups):.0f}–{max(speedups):.0f}×; faccent's {steps} steps take
{min(default_speedups):.1f}–{max(default_speedups):.1f}× as long as our whole default accentuation (256 steps).
Contact sheet of the pairs: `docs/img/accentuate-vs-faccent.png`.

{default_line}
"""
    publish("accentuate-cpu", markdown, quick=args.quick)


if __name__ == "__main__":
    main()
