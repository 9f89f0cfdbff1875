"""Saving renders: PNGs that carry their recipe (PNG text + JSON sidecar) and contact sheets."""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from pathlib import Path

from PIL import Image, ImageDraw, PngImagePlugin

from imagemachines.fileio import atomic_write

RECIPE_KEY = "imagemachines"


def save_render(render, path: Path) -> Path:
    """Write *render* as a PNG with its recipe in a text chunk, and the recipe as ``path.with_suffix('.json')``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    text = json.dumps(render.recipe, sort_keys=True)
    info = PngImagePlugin.PngInfo()
    info.add_text(RECIPE_KEY, text)
    info.add_text("Software", f"imagemachines {render.recipe.get('imagemachines', '')}".strip())
    atomic_write(path, lambda tmp: render.image.save(tmp, format="PNG", pnginfo=info))
    sidecar = path.with_suffix(".json")
    atomic_write(sidecar, lambda tmp: tmp.write_text(json.dumps(render.recipe, indent=2, sort_keys=True) + "\n"))
    return path


def read_recipe(path: Path) -> dict:
    """The recipe stored in a PNG written by :func:`save_render`."""
    with Image.open(path) as im:
        return json.loads(im.text[RECIPE_KEY])


def contact_sheet(renders: Sequence, path: Path, thumb: int = 160, columns: int | None = None) -> Path:
    """A grid of thumbnails labelled with unit and activation, saved as PNG."""
    path = Path(path)
    n = len(renders)
    cols = columns or min(n, max(1, math.ceil(math.sqrt(n * 1.5))))
    rows = math.ceil(n / cols)
    label_h = 28
    sheet = Image.new("RGB", (cols * thumb, rows * (thumb + label_h)), (24, 24, 24))
    draw = ImageDraw.Draw(sheet)
    for i, r in enumerate(renders):
        x, y = (i % cols) * thumb, (i // cols) * (thumb + label_h)
        sheet.paste(r.image.resize((thumb, thumb), Image.LANCZOS), (x, y))
        name = str(r.unit) if r.unit is not None else f"#{i}"
        draw.text((x + 4, y + thumb + 2), name, fill=(230, 230, 230))
        draw.text((x + 4, y + thumb + 14), f"act {r.activation:.2f}", fill=(160, 160, 160))
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path, lambda tmp: sheet.save(tmp, format="PNG"))
    from imagemachines.vis.display import ImagePath

    return ImagePath(path)  # a Path that shows itself in Jupyter
