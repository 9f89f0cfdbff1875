"""Remake the README's example renders and their caption, with the real MobileNetV2 weights.

    python scripts/readme_renders.py [--methods lucid,maco,classic] [--weights-file PATH]

Runs, for each method, exactly the `imagemachines visualize` command the caption shows (on the CPU, so the
images are reproducible), copies the PNGs to docs/img/features14-40-<method>.png and rewrites the caption
between the ``<!-- readme-renders -->`` markers in README.md with each command and the settings and final
activation read from the recipe inside each PNG (so the caption always describes the images as they are).
``--methods`` remakes only some of them; ``--methods ""`` only rewrites the caption.
Run it after changing the render engine or a method's defaults. The weights come from ``--weights-file``
(default: ../shared/weights/mobilenet_v2-b0353104.pth beside the repository), placed into a temporary
$TORCH_HOME: nothing is downloaded. Takes a few minutes on a CPU.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
WEIGHTS = ROOT.parent / "shared" / "weights" / "mobilenet_v2-b0353104.pth"
README = ROOT / "README.md"
IMG = ROOT / "docs" / "img"
MODEL, LAYER, CHANNEL, SEED = "mobilenet_v2", "features.14", 40, 0
# method -> extra options; classic is made at 300 px to keep the README light (its default is 900 px)
METHODS = {"lucid": [], "maco": [], "classic": ["--size", "300"]}
MARKERS = ("<!-- readme-renders -->", "<!-- /readme-renders -->")


def command(method: str) -> list[str]:
    """The `imagemachines visualize` arguments shown in the caption."""
    return ["visualize", MODEL, "--layer", LAYER, "--channel", str(CHANNEL), "--method", method,
            *METHODS[method], "--device", "cpu"]


def image(method: str) -> Path:
    return IMG / f"features14-40-{method}.png"


def render(method: str, out: Path, env: dict) -> None:
    """Run the command for *method* into *out* and copy the PNG it wrote into docs/img."""
    before = set(out.glob("*.png"))
    subprocess.run([sys.executable, "-m", "imagemachines", *command(method), "--out", str(out)], env=env,
                   check=True)
    [png] = set(out.glob("*.png")) - before
    shutil.copyfile(png, image(method))


def recipe(method: str) -> dict:
    """The recipe inside docs/img/features14-40-<method>.png."""
    from PIL import Image

    with Image.open(image(method)) as im:
        return json.loads(im.info["imagemachines"])


def caption(recipes: dict[str, dict]) -> str:
    lines = [f"*MobileNetV2 (ImageNet weights `IMAGENET1K_V1`), layer `{LAYER}`, channel {CHANNEL}, seed {SEED}, "
             "on the CPU; made by these commands (`scripts/readme_renders.py` remakes them):*", ""]
    for method, r in recipes.items():
        steps = f"{r['steps']} steps" + (f" × {r['options']['octaves']} octaves" if method == "classic" else "")
        lines.append(f"- `{method}`: `imagemachines {' '.join(command(method))}` — {r['size']} px, {steps}, "
                     f"final activation {r['activation']:.3f}")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--weights-file", type=Path, default=WEIGHTS, help="the MobileNetV2 IMAGENET1K_V1 file")
    parser.add_argument("--methods", default=",".join(METHODS), help="which renders to remake (default: all)")
    args = parser.parse_args()
    methods = [m for m in args.methods.split(",") if m]
    if set(methods) - set(METHODS):
        sys.exit(f"Error: --methods takes {', '.join(METHODS)}.")
    if methods and not args.weights_file.is_file():
        sys.exit(f"Error: {args.weights_file} is missing; give the MobileNetV2 weights with --weights-file.")
    text = README.read_text()
    if not all(m in text for m in MARKERS):
        sys.exit(f"Error: README.md lacks the markers {MARKERS[0]} … {MARKERS[1]} around the caption.")
    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp) / "torch"
        (home / "hub" / "checkpoints").mkdir(parents=True)
        shutil.copyfile(args.weights_file, home / "hub" / "checkpoints" / args.weights_file.name)
        env = {**os.environ, "TORCH_HOME": str(home),
               "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT / "src"), os.environ.get("PYTHONPATH")]))}
        for method in methods:
            render(method, Path(tmp) / "out", env)
    block = f"{MARKERS[0]}\n{caption({method: recipe(method) for method in METHODS})}\n{MARKERS[1]}"
    README.write_text(re.sub(re.escape(MARKERS[0]) + ".*?" + re.escape(MARKERS[1]), lambda _m: block, text,
                             flags=re.S))
    print(block)


if __name__ == "__main__":
    main()
