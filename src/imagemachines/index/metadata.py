"""Metadata joined to images: ``subset.csv`` of a WGA subset (found automatically) and any ``--metadata`` CSV.

A CSV row belongs to an image when its path column names the image relative to the image folder, relative to
the CSV's own folder, absolutely, or (when unique) by file name. Every other column travels with the image.
"""

from __future__ import annotations

import csv
from collections import Counter
from pathlib import Path

from imagemachines.csvfiles import restore
from imagemachines.errors import UserError

PATH_COLUMNS = ("path", "file", "filename", "image", "FILE")
SKIP_COLUMNS = {"sha256"}  # bookkeeping of `wga subset`, not metadata


def find_subset_csv(image_root: Path, levels: int = 2) -> Path | None:
    """The ``subset.csv`` in the image folder or up to *levels* folders above it."""
    d = Path(image_root).resolve()
    for _ in range(levels + 1):
        if (d / "subset.csv").is_file():
            return d / "subset.csv"
        d = d.parent
    return None


def read_metadata(csv_path: Path, image_root: Path, rel_paths: list[str]) -> tuple[list[str], dict[str, dict]]:
    """(columns, {relative image path: {column: value}}) for the images of *rel_paths* found in *csv_path*."""
    csv_path = Path(csv_path)
    if not csv_path.is_file():
        raise UserError(f"Metadata file {csv_path} does not exist. Give a CSV with a 'path' column.")
    root = Path(image_root).resolve()
    base = csv_path.parent.resolve()
    wanted = set(rel_paths)
    names = Counter(Path(p).name for p in rel_paths)
    by_name = {Path(p).name: p for p in rel_paths if names[Path(p).name] == 1}
    try:
        with open(csv_path, newline="", encoding="utf-8-sig", errors="replace") as f:
            reader = csv.DictReader(f)
            names = {restore(c): c for c in reader.fieldnames or [] if c}  # as written → as in the file
            fields = list(names)
            path_col = next((c for c in PATH_COLUMNS if c in fields), None)
            if path_col is None:
                raise UserError(f"{csv_path} has no path column (one of: {', '.join(PATH_COLUMNS[:4])}); its "
                                f"columns are: {', '.join(fields[:12])}.")
            columns = [c for c in fields if c != path_col and c not in SKIP_COLUMNS]
            found: dict[str, dict] = {}
            for row in reader:
                raw = restore((row.get(names[path_col]) or "").strip())
                if not raw:
                    continue
                rel = _match(raw, root, base, wanted, by_name)
                if rel is not None:
                    found[rel] = {c: restore((row.get(names[c]) or "").strip()) for c in columns}
    except (csv.Error, UnicodeError) as exc:
        raise UserError(f"{csv_path} is not a readable CSV file ({exc}).") from exc
    return columns, found


def _match(raw: str, root: Path, base: Path, wanted: set[str], by_name: dict[str, str]) -> str | None:
    p = Path(raw.replace("\\", "/"))
    if p.as_posix() in wanted:
        return p.as_posix()
    for candidate in (p if p.is_absolute() else base / p,):
        try:
            rel = candidate.resolve().relative_to(root).as_posix()
        except ValueError:
            rel = None
        if rel in wanted:
            return rel
    return by_name.get(p.name)
