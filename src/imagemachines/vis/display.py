"""Inline display in Jupyter: renders, lists of renders and contact sheets show themselves as pictures."""

from __future__ import annotations

import base64
import io
from html import escape
from pathlib import Path

from PIL import Image


def png_bytes(image: Image.Image) -> bytes:
    buf = io.BytesIO()
    image.save(buf, format="PNG")
    return buf.getvalue()


def figure_html(image: Image.Image, caption: str, width: int = 160) -> str:
    """One ``<figure>`` with the picture inline (base64 PNG) and an escaped caption."""
    data = base64.b64encode(png_bytes(image)).decode("ascii")
    return (f'<figure style="display:inline-block;margin:4px;text-align:center;font-size:11px">'
            f'<img src="data:image/png;base64,{data}" width="{width}" style="image-rendering:auto">'
            f"<figcaption>{escape(caption)}</figcaption></figure>")


class Renders(list):
    """The list ``render()`` returns; in Jupyter it shows as a row of pictures captioned with unit, method and
    final activation (renders of one unit by several methods are told apart)."""

    def _repr_html_(self) -> str:
        parts = []
        for i, r in enumerate(self):
            name = str(r.unit) if getattr(r, "unit", None) is not None else f"#{i}"
            method = (getattr(r, "recipe", None) or {}).get("method")
            parts.append(figure_html(r.image, " · ".join([name, *([method] if method else []),
                                                          f"{r.activation:.2f}"])))
        return "<div>" + "".join(parts) + "</div>"


class ImagePath(type(Path())):
    """A path to a picture written to disk (a contact sheet); in Jupyter it shows as the picture."""

    def _repr_png_(self) -> bytes:
        return self.read_bytes() if self.suffix.lower() == ".png" else png_bytes(Image.open(self))
