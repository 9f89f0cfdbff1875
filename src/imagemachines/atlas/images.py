"""Atlas images with their recipe inside: PNG (a text chunk, as ``visualize`` writes) or WebP (EXIF
ImageDescription), so a picture copied out of the atlas still says how it was made."""

from __future__ import annotations

import json
from pathlib import Path

from PIL import Image

from imagemachines.fileio import atomic_write
from imagemachines.vis.io import RECIPE_KEY

FORMATS = ("webp", "png")
_DESCRIPTION = 0x010E  # EXIF ImageDescription


def save_image(image: Image.Image, recipe: dict, path: Path) -> Path:
    """Write *image* to *path* (format from the suffix) with *recipe* embedded; atomic."""
    path = Path(path)
    text = json.dumps(recipe, sort_keys=True)
    if path.suffix == ".png":
        from PIL import PngImagePlugin

        info = PngImagePlugin.PngInfo()
        info.add_text(RECIPE_KEY, text)
        atomic_write(path, lambda tmp: image.save(tmp, format="PNG", pnginfo=info))
    elif path.suffix == ".webp":
        exif = Image.Exif()
        exif[_DESCRIPTION] = f"{RECIPE_KEY}:{text}"
        atomic_write(path, lambda tmp: image.save(tmp, format="WEBP", quality=92, method=4, exif=exif.tobytes()))
    else:
        raise ValueError(f"unknown image format {path.suffix!r}")
    return path


def read_image_recipe(path: Path) -> dict:
    """The recipe embedded by :func:`save_image`."""
    with Image.open(path) as im:
        if im.format == "PNG":
            return json.loads(im.text[RECIPE_KEY])
        text = im.getexif().get(_DESCRIPTION, "")
    prefix = f"{RECIPE_KEY}:"
    if not text.startswith(prefix):
        raise ValueError(f"{path} carries no imagemachines recipe")
    return json.loads(text[len(prefix):])
