"""Small image helpers for the API: placeholders while queued, download file names."""

from __future__ import annotations

import re
from functools import lru_cache
from io import BytesIO

from PIL import Image

from imagemachines.serve.scheduler import RenderSpec

PLACEHOLDER_RGB = (27, 27, 31)


@lru_cache(maxsize=8)
def placeholder_png(size: int) -> bytes:
    """A plain dark PNG of side *size*: what an image URL shows before the first preview."""
    buf = BytesIO()
    Image.new("RGB", (size, size), PLACEHOLDER_RGB).save(buf, format="PNG", optimize=True)
    return buf.getvalue()


def download_name(spec: RenderSpec) -> str:
    """A descriptive, file-system-safe name such as ``tiny_features-2_3_lucid_64px_seed0.png``."""
    pos = f"_x{spec.x}_y{spec.y}" if spec.x is not None else ""
    text = f"{spec.model}_{spec.layer}_{spec.channel}{pos}_{spec.method}_{spec.size}px_seed{spec.seed}"
    return re.sub(r"[^A-Za-z0-9_-]+", "-", text)[:150] + ".png"
