"""Check that downloaded bytes are an image, optionally downscale them, and write them atomically."""

from __future__ import annotations

import hashlib
import io
import os
from pathlib import Path

PART_SUFFIX = ".part"
# WGA's images are made for the web (the largest are a few thousand pixels a side); 50 Mpx is far above them and
# keeps a decode check under ~150 MB per worker. A larger image is refused before it is decoded.
MAX_PIXELS = 50_000_000


class NotAnImage(ValueError):
    """Bytes that do not decode completely as an image."""


def decode_check(data: bytes | Path, max_pixels: int = MAX_PIXELS) -> tuple[int, int]:
    """Fully decode *data* (bytes or a file; truncated files fail); return the image size. Images of more than
    *max_pixels* are refused before decoding."""
    from PIL import Image

    try:
        with Image.open(io.BytesIO(data) if isinstance(data, bytes) else data) as img:
            width, height = img.size
            if width * height > max_pixels:
                raise NotAnImage(f"{width}×{height} pixels is more than the bound of {max_pixels:,} pixels")
            img.load()
            return img.size
    except NotAnImage:
        raise
    except Exception as exc:  # PIL raises OSError, SyntaxError, DecompressionBombError …
        raise NotAnImage(f"does not decode as an image ({type(exc).__name__}: {exc})") from exc


def downscale(data: bytes, max_side: int, quality: int = 90) -> bytes:
    """A JPEG no larger than *max_side* on its longer side (the bytes unchanged when already small enough)."""
    from PIL import Image

    with Image.open(io.BytesIO(data)) as img:
        if max(img.size) <= max_side:
            return data
        img = img.convert("RGB")
        img.thumbnail((max_side, max_side), Image.Resampling.LANCZOS)
        out = io.BytesIO()
        img.save(out, "JPEG", quality=quality, optimize=True)
        return out.getvalue()


def prepare(data: bytes, max_side: int | None = None) -> bytes:
    """The bytes to store: checked to decode, downscaled when asked."""
    decode_check(data)
    return downscale(data, max_side) if max_side else data


def prepare_file(path: Path, max_side: int | None = None, max_pixels: int = MAX_PIXELS) -> tuple[int, str]:
    """Check that the file *path* decodes (within *max_pixels*), downscale it in place when asked; return its size
    and sha256."""
    decode_check(path, max_pixels)
    if max_side:
        data = path.read_bytes()
        small = downscale(data, max_side)
        if small is not data:
            path.write_bytes(small)
    return file_digest(path)


def part_path(path: Path) -> Path:
    """The temporary name a download of *path* is written under until it is complete and checked."""
    return path.with_name(f"{path.name}.{os.getpid()}{PART_SUFFIX}")


def commit(part: Path, path: Path) -> None:
    """Flush *part* to disk and rename it to *path* (the final name never holds a partial file)."""
    with open(part, "rb") as f:
        os.fsync(f.fileno())
    os.replace(part, path)


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def write_atomic(path: Path, data: bytes) -> None:
    """Write to ``<name>.<pid>.part``, flush to disk, then rename: the final name never holds a partial file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f"{path.name}.{os.getpid()}{PART_SUFFIX}")
    try:
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def file_digest(path: Path) -> tuple[int, str]:
    """Size and sha256 of a file on disk."""
    h = hashlib.sha256()
    size = 0
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
            size += len(chunk)
    return size, h.hexdigest()


def remove_partials(folder: Path) -> int:
    """Delete leftover ``*.part`` files of interrupted runs; how many there were."""
    n = 0
    if folder.is_dir():
        for p in folder.rglob(f"*{PART_SUFFIX}"):
            if p.is_file():
                p.unlink()
                n += 1
    return n
