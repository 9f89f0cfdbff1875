"""``index.html`` of a subset: counts per class and split, and a strip of sample images per class."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from imagemachines.report import write_html

SAMPLES = 12


def write_index(path: Path, name: str, records: list[dict], counts: dict[str, Counter], splits: list[str],
                warnings: list[str]) -> None:
    """Write a self-contained HTML page (images linked relatively, so the folder can be moved)."""
    strips = [(cls, [r for r in records if r["class"] == cls][:SAMPLES]) for cls in counts]
    write_html(path, "wga_subset.html", title=f"{name}: WGA subset", name=name, splits=splits,
               counts=list(counts.items()), warnings=warnings, strips=strips)
