"""The image folder as the index sees it: relative paths, sizes, sha256 and pixel dimensions.

Hashes are cached by (size, mtime): an unchanged file is not read again on the next run.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path, PurePosixPath, PureWindowsPath

from PIL import Image

from imagemachines.errors import UserError
from imagemachines.train.data import list_images


class OutsideImageFolder(UserError):
    """An index row whose file would lie outside the index's image folder (an absolute path, a ``..`` part, or a
    link that leads out to a file the index did not record): an index is input like any other."""


def image_path(root: Path, rel: str, sha256: str | None = None) -> Path:
    """The file of the image *rel* (a path from an index's table) inside the image folder *root*, links resolved.

    Every reader of indexed images goes through this. An absolute *rel*, one with a ``..`` part (in POSIX or
    Windows spelling), or an empty one is refused with :class:`OutsideImageFolder`. A path that resolves outside
    the resolved *root* — through a symbolic link in the folder (a WGA subset made with ``--link symbolic``, a
    folder of links) — is read only when the file it leads to has the SHA-256 the index recorded for it
    (*sha256*): the index pass hashed what the link led to, whereas an index made elsewhere cannot name a file
    of yours without knowing its contents. Otherwise it is refused too.
    """
    text = str(rel)
    posix, windows = PurePosixPath(text), PureWindowsPath(text)
    why = None
    if not text or "\0" in text:
        why = "is empty or holds a NUL character"
    elif posix.is_absolute() or windows.is_absolute() or windows.drive or windows.root:
        why = "is absolute"
    elif ".." in posix.parts or ".." in windows.parts:
        why = "climbs out with '..'"
    else:
        base = Path(root).resolve()
        target = (base / posix).resolve()
        if target.is_relative_to(base) or (sha256 and target.is_file() and sha256_file(target) == sha256):
            return target
        why = "leads out of it through a symbolic link, to a file that is not the one the index recorded"
    raise OutsideImageFolder(
        f"The index names the image {text!r}, which {why}: an index only reads the files inside its image folder "
        f"{root} (and those its links led to when it was made). Refused. If you did not make this index, do not use "
        "it; else index the folder again (`imagemachines index MODEL IMAGE_DIR`).")


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
