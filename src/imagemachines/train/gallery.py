"""HTML pages people look at: thumbnails with captions (misclassified images, top images of a class).

Pages are self-contained folders: thumbnails are written beside the HTML, every text is escaped, and the
metadata of ``subset.csv`` (WGA: author, title, date…) or ``split.csv`` (``imagemachines split``: the columns of
its ``--metadata`` CSV) is shown when the data folder has one.
"""

from __future__ import annotations

import csv
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from PIL import Image

from imagemachines.csvfiles import restore
from imagemachines.fileio import PictureRecord

THUMB = 200
THUMB_NAMES = re.compile(r"\d{5}\.jpg")  # the only names a gallery gives its thumbnails
META_SKIP = {"path", "split", "class", "file", "filename", "sha256", "original_path"}
META_FIRST = ("AUTHOR", "ARTIST", "TITLE", "DATE", "YEAR", "TECHNIQUE", "LOCATION", "SCHOOL", "TIMEFRAME", "TYPE",
              "FORM")

@dataclass
class Card:
    """One image on a page: its file, the caption lines (escaped by the template) and optional class scores."""

    image: Path
    lines: list[tuple[str, str]]  # (css class, text); escaped by the template
    scores: dict[str, float] = field(default_factory=dict)


def thumbnail(src: Path, dest: Path, size: int = THUMB) -> bool:
    """A JPEG thumbnail of *src*; False when the file cannot be read."""
    try:
        with Image.open(src) as im:
            im = im.convert("RGB")
            im.thumbnail((size, size))
            dest.parent.mkdir(parents=True, exist_ok=True)
            im.save(dest, quality=85)
        return True
    except Exception:  # noqa: BLE001 - a broken image gets no thumbnail, the page still renders
        return False


def write_page(path: Path, title: str, cards: Sequence[Card], note: str = "") -> Path:
    """*cards* as a grid of thumbnails (copied into ``thumbs/`` beside *path*), from ``gallery.html``."""
    from imagemachines.report import write_html

    path.parent.mkdir(parents=True, exist_ok=True)
    names = [f"{i:05d}.jpg" for i in range(len(cards))]
    record = PictureRecord(path.parent / "thumbs", THUMB_NAMES, legacy_marker=path).start(set(names))
    items, written = [], set()
    for name, card in zip(names, cards, strict=True):
        ok = thumbnail(card.image, record.folder / name)
        if ok:
            written.add(name)
        items.append({"src": f"thumbs/{name}" if ok else None, "alt": card.image.name, "lines": card.lines,
                      "scores": sorted(card.scores.items(), key=lambda kv: -kv[1])})
    record.finish(written)
    return write_html(path, "gallery.html", title=title, note=note, cards=items)


class Metadata:
    """WGA metadata from a ``subset.csv`` (``imagemachines wga subset``), looked up by image path."""

    def __init__(self, csv_path: Path | None = None):
        self.by_path: dict[str, dict[str, str]] = {}
        self.by_name: dict[str, dict[str, str]] = {}
        self.columns: list[str] = []
        if csv_path is None:
            return
        base = csv_path.parent.resolve()
        with open(csv_path, newline="", encoding="utf-8", errors="replace") as f:
            reader = csv.DictReader(f)
            names = {restore(c): c for c in reader.fieldnames or [] if c}  # as written → as in the file
            cols = [c for c in names if c.lower() not in META_SKIP]
            rank = {name: i for i, name in enumerate(META_FIRST)}
            self.columns = sorted(cols, key=lambda c: rank.get(c.upper(), len(rank)))
            for row in reader:
                raw = restore((row.get(names.get("path", "path")) or "").strip())
                if not raw:
                    continue
                p = Path(raw)
                full = (p if p.is_absolute() else base / p).resolve()
                info = {c: restore((row.get(names[c]) or "").strip()) for c in self.columns}
                self.by_path[str(full)] = info
                self.by_name.setdefault(p.name, info)

    @classmethod
    def near(cls, folder: Path, levels: int = 2) -> Metadata:
        """The ``subset.csv`` (or ``split.csv``) in *folder* or up to *levels* folders above it (empty if none)."""
        from imagemachines.index.metadata import find_subset_csv

        return cls(find_subset_csv(folder, levels))

    def __bool__(self) -> bool:
        return bool(self.by_path)

    def get(self, path: Path) -> dict[str, str]:
        return self.by_path.get(str(Path(path).resolve())) or self.by_name.get(Path(path).name) or {}

    def lines(self, path: Path, limit: int = 4) -> list[tuple[str, str]]:
        """Caption lines: AUTHOR, TITLE, DATE… (the first *limit* non-empty columns)."""
        info = self.get(path)
        return [("meta", f"{k.title()}: {v}") for k, v in info.items() if v][:limit]
