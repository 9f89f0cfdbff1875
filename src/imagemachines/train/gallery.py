"""HTML pages people look at: thumbnails with captions (misclassified images, top images of a class).

Pages are self-contained folders: thumbnails are written beside the HTML, every text is escaped, and the
WGA metadata of ``subset.csv`` (author, title, date…) is shown when the data folder has one.
"""

from __future__ import annotations

import csv
import html
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from PIL import Image

THUMB = 200
META_SKIP = {"path", "split", "class", "file", "filename", "sha256"}
META_FIRST = ("AUTHOR", "TITLE", "DATE", "TECHNIQUE", "LOCATION", "SCHOOL", "TIMEFRAME", "TYPE", "FORM")

CSS = """
body{font-family:system-ui,sans-serif;margin:1.5rem;color:#222;background:#fafafa}
h1{font-size:1.4rem} p.note{color:#555}
.grid{display:grid;grid-template-columns:repeat(auto-fill,minmax(220px,1fr));gap:1rem}
figure{margin:0;background:#fff;border:1px solid #ddd;border-radius:6px;padding:.5rem}
figure img{width:100%;height:auto;display:block;border-radius:3px}
figcaption{font-size:.8rem;line-height:1.35;margin-top:.4rem;word-wrap:break-word}
.bad{color:#b00020;font-weight:600} .good{color:#1b5e20;font-weight:600} .meta{color:#555}
table.scores{font-size:.75rem;border-collapse:collapse;margin-top:.3rem}
table.scores td{padding:0 .4rem 0 0}
"""


@dataclass
class Card:
    """One image on a page: its file, the caption lines (HTML-escaped here) and optional class scores."""

    image: Path
    lines: list[tuple[str, str]]  # (css class, text)
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
    """*cards* as a grid of thumbnails (copied into ``thumbs/`` beside *path*)."""
    thumbs = path.parent / "thumbs"
    figures = []
    for i, card in enumerate(cards):
        rel = f"thumbs/{i:05d}.jpg"
        img = (f'<img src="{rel}" alt="{html.escape(card.image.name)}" loading="lazy">'
               if thumbnail(card.image, thumbs / f"{i:05d}.jpg") else "<p class='bad'>(unreadable)</p>")
        caption = "<br>".join(f'<span class="{c}">{html.escape(t)}</span>' for c, t in card.lines)
        if card.scores:
            rows = "".join(f"<tr><td>{html.escape(k)}</td><td>{v:.3f}</td></tr>" for k, v in
                           sorted(card.scores.items(), key=lambda kv: -kv[1]))
            caption += f'<table class="scores">{rows}</table>'
        figures.append(f"<figure>{img}<figcaption>{caption}</figcaption></figure>")
    body = "\n".join(figures) or "<p>Nothing to show.</p>"
    page = (f"<!doctype html><html lang='en'><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
            f"<style>{CSS}</style></head><body><h1>{html.escape(title)}</h1>"
            f"<p class='note'>{html.escape(note)}</p><div class='grid'>\n{body}\n</div></body></html>\n")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(page, encoding="utf-8")
    return path


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
            cols = [c for c in reader.fieldnames or [] if c and c.lower() not in META_SKIP]
            rank = {name: i for i, name in enumerate(META_FIRST)}
            self.columns = sorted(cols, key=lambda c: rank.get(c.upper(), len(rank)))
            for row in reader:
                raw = (row.get("path") or "").strip()
                if not raw:
                    continue
                p = Path(raw)
                full = (p if p.is_absolute() else base / p).resolve()
                info = {c: (row.get(c) or "").strip() for c in self.columns}
                self.by_path[str(full)] = info
                self.by_name.setdefault(p.name, info)

    @classmethod
    def near(cls, folder: Path, levels: int = 2) -> Metadata:
        """The ``subset.csv`` in *folder* or up to *levels* folders above it (empty metadata if none)."""
        d = folder.resolve()
        for _ in range(levels + 1):
            if (d / "subset.csv").is_file():
                return cls(d / "subset.csv")
            d = d.parent
        return cls()

    def __bool__(self) -> bool:
        return bool(self.by_path)

    def get(self, path: Path) -> dict[str, str]:
        return self.by_path.get(str(Path(path).resolve())) or self.by_name.get(Path(path).name) or {}

    def lines(self, path: Path, limit: int = 4) -> list[tuple[str, str]]:
        """Caption lines: AUTHOR, TITLE, DATE… (the first *limit* non-empty columns)."""
        info = self.get(path)
        return [("meta", f"{k.title()}: {v}") for k, v in info.items() if v][:limit]
