"""Metadata joined to images: the ``subset.csv`` of a WGA subset or the ``split.csv`` of ``imagemachines split``
(found automatically) and any ``--metadata`` CSV.

A CSV row belongs to an image when its path column names the image relative to the image folder, relative to
the CSV's own folder, absolutely, or (when unique, and the row names no file that exists elsewhere) by file name.
Every other column travels with the image.
"""

from __future__ import annotations

import csv
import os
from collections import Counter
from pathlib import Path

from imagemachines.csvfiles import restore
from imagemachines.errors import UserError

PATH_COLUMNS = ("path", "file", "filename", "image", "FILE")
SKIP_COLUMNS = {"sha256"}  # bookkeeping of `wga subset` and `split`, not metadata
LIST_NAMES = ("subset.csv", "split.csv")  # written by `imagemachines wga subset` and `imagemachines split`


def find_subset_csv(image_root: Path, levels: int = 2) -> Path | None:
    """The ``subset.csv`` (or ``split.csv``) in the image folder or up to *levels* folders above it."""
    d = Path(image_root).resolve()
    for _ in range(levels + 1):
        for name in LIST_NAMES:
            if (d / name).is_file():
                return d / name
        d = d.parent
    return None


def folder_label(rel: str) -> str | None:
    """The class of an image in a folder of class folders: the first folder of its relative path (None at the
    top level)."""
    first, sep, _ = rel.partition("/")
    return first if sep else None


def metadata_column(name: str, columns: list[str], csv_path: Path, option: str) -> str:
    """*name* as a column of *csv_path* (exact, else the one column equal to it ignoring case), or a clear error."""
    from imagemachines.errors import did_you_mean

    if name in columns:
        return name
    folded = [c for c in columns if c.casefold() == name.casefold()]
    if len(folded) == 1:
        return folded[0]
    raise UserError(f"{option} {name!r}: {csv_path} has no such column.{did_you_mean(name, columns)} Its columns "
                    f"are: {', '.join(columns[:12])}.")


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
    candidate = p if p.is_absolute() else base / p
    # the path as written first (an image that is a symbolic link, as in a split, resolves elsewhere), then resolved
    for full in (Path(os.path.normpath(candidate)), candidate.resolve()):
        try:
            rel = full.relative_to(root).as_posix()
        except ValueError:
            rel = None
        if rel in wanted:
            return rel
    if candidate.exists():  # a file elsewhere (e.g. the val/ side of a split, indexing train/): not one of these
        return None
    return by_name.get(p.name)
