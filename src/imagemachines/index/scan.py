"""The image folder as the index sees it: relative paths, sizes, sha256 and pixel dimensions.

Hashes are cached by (size, mtime): an unchanged file is not read again on the next run.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

from PIL import Image

from imagemachines.errors import UserError
from imagemachines.train.data import list_images


@dataclass(frozen=True)
class FileState:
    path: str  # relative to the image root, POSIX
    bytes: int
    mtime_ns: int


def path_key(rel: str) -> int:
    """A stable 63-bit key for a relative path: the tie-breaker of the top-k order, the same in every build."""
    return int.from_bytes(hashlib.sha256(rel.encode()).digest()[:8], "big") >> 1


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def image_size(path: Path) -> tuple[int, int] | str:
    """(width, height) from the file's header, or the reason it cannot be read."""
    try:
        with Image.open(path) as im:
            return int(im.width), int(im.height)
    except Exception as exc:  # noqa: BLE001 - any unreadable file is reported, never fatal
        return f"{type(exc).__name__}: {exc}"


def scan_folder(root: Path) -> list[FileState]:
    """Every image under *root* (recursively, as ``train`` lists them), sorted by relative path."""
    root = Path(root)
    if not root.is_dir():
        raise UserError(f"Image folder {root} does not exist (or is not a folder). Give a folder of images; "
                        "sub-folders are searched too.")
    files = []
    for p in list_images(root):
        st = p.stat()
        files.append(FileState(p.relative_to(root).as_posix(), st.st_size, st.st_mtime_ns))
    if not files:
        raise UserError(f"{root} holds no images (.jpg, .png, .tif, .webp …, searched recursively).")
    return sorted(files, key=lambda f: f.path)
