"""Sprite sheets: every painting of a map as a small square thumbnail, packed into JPEG sheets, so a page
draws thousands of paintings from a handful of images.

Point *i* of a map (in the map's order) is cell ``i % PER_SHEET`` of sheet ``i // PER_SHEET``, at column
``cell % COLUMNS``, row ``cell // COLUMNS``; each cell is CELL × CELL px, the painting fitted inside it on the
interface's dark ground. Files come from the index's own table (``index.image_file``), never from a request.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from io import BytesIO
from pathlib import Path

from PIL import Image, ImageOps

CELL = 32
COLUMNS = 64
PER_SHEET = COLUMNS * COLUMNS  # 4096 paintings in a 2048 × 2048 sheet
GROUND = (12, 12, 14)


def sheet_count(n: int) -> int:
    return max(1, math.ceil(n / PER_SHEET))


def geometry() -> dict:
    """What a page needs to find a point's cell."""
    return {"cell": CELL, "columns": COLUMNS, "per_sheet": PER_SHEET}


def thumbnail(path: Path, cell: int = CELL) -> Image.Image | None:
    """The picture at *path* fitted into a *cell* square (None when it cannot be read)."""
    try:
        with Image.open(path) as img:
            img.draft("RGB", (cell * 2, cell * 2))
            img = ImageOps.exif_transpose(img).convert("RGB")
            img.thumbnail((cell, cell), Image.Resampling.BILINEAR, reducing_gap=2.0)
            return img
    except (OSError, ValueError, Image.DecompressionBombError):
        return None


def make_sheet(paths: Sequence[Path], cell: int = CELL, columns: int = COLUMNS, workers: int = 2) -> Image.Image:
    """One sheet of the pictures at *paths* (at most columns² of them), in order, row by row."""
    rows = max(1, math.ceil(len(paths) / columns))
    sheet = Image.new("RGB", (columns * cell, rows * cell), GROUND)
    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        for i, small in enumerate(pool.map(lambda p: thumbnail(p, cell), paths)):
            if small is None:
                continue
            x = (i % columns) * cell + (cell - small.width) // 2
            y = (i // columns) * cell + (cell - small.height) // 2
            sheet.paste(small, (x, y))
    return sheet


def sheet_paths(index, ids: Sequence[int], sheet: int) -> list[Path]:
    """The files of sheet *sheet* of a map whose points are image *ids*."""
    part = ids[sheet * PER_SHEET:(sheet + 1) * PER_SHEET]
    return [index.image_file(int(i)) for i in part]


def sheet_jpeg(index, ids: Sequence[int], sheet: int, quality: int = 80) -> bytes:
    buf = BytesIO()
    make_sheet(sheet_paths(index, ids, sheet)).save(buf, format="JPEG", quality=quality)
    return buf.getvalue()
