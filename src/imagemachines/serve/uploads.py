"""Uploaded paintings: read the body under a byte limit, decode it safely, keep it only in a bounded memory cache.

An upload never touches the disk. It is decoded by Pillow from the bytes (only common raster formats), its
header is checked against a pixel bound *before* the pixels are decoded (no decompression bombs), and the
decoded image is shrunk to a working size. Uploads are addressed by a digest of their bytes.
"""

from __future__ import annotations

import hashlib
import warnings
from dataclasses import dataclass
from io import BytesIO

from fastapi import HTTPException, Request
from PIL import Image, UnidentifiedImageError

from imagemachines.serve.lru import BoundedLRU

FORMATS = ("JPEG", "PNG", "WEBP", "GIF", "BMP", "TIFF")
WORKING_SIDE = 1024  # uploads are kept at most this large (longer side)


@dataclass(frozen=True)
class UploadLimits:
    max_bytes: int = 20 * 1024 * 1024       # request body
    max_pixels: int = 50_000_000           # width × height in the file's header
    cache_entries: int = 32                # decoded uploads kept in memory (each at most 1024² RGB = 3 MB)


@dataclass(frozen=True)
class Upload:
    id: str                   # 32 hex digits of the bytes' sha256
    image: Image.Image        # RGB, longer side at most WORKING_SIDE
    width: int                # the original size
    height: int
    format: str


def upload_id(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()[:32]


async def read_limited(request: Request, max_bytes: int) -> bytes:
    """The request body, or 413 as soon as it is longer than *max_bytes* (checked before and while reading)."""
    too_big = HTTPException(413, f"The upload is larger than this server accepts ({max_bytes // 2**20} MB). "
                                 "Send a smaller or more compressed image (JPEG or PNG).")
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > max_bytes:
        raise too_big
    chunks, total = [], 0
    async for chunk in request.stream():
        total += len(chunk)
        if total > max_bytes:
            raise too_big
        chunks.append(chunk)
    if not total:
        raise HTTPException(422, "The upload is empty: send the image file's bytes as the request body.")
    return b"".join(chunks)


def decode_upload(data: bytes, limits: UploadLimits) -> Upload:
    """Decode *data* into an :class:`Upload`; 415 for what is not an image, 413 for too many pixels."""
    not_image = HTTPException(415, f"This is not an image this server can read. Send a {', '.join(FORMATS[:-1])} "
                                   f"or {FORMATS[-1]} file.")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            img = Image.open(BytesIO(data), formats=FORMATS)  # reads the header only
            width, height = img.size
            if width < 1 or height < 1:
                raise not_image
            if width * height > limits.max_pixels:
                raise HTTPException(413, f"The image has {width}×{height} pixels; this server decodes at most "
                                         f"{limits.max_pixels:,} pixels. Send a smaller version.")
            fmt = img.format or "?"
            img.draft("RGB", (WORKING_SIDE, WORKING_SIDE))  # JPEG: decode at a reduced scale when it can
            img = img.convert("RGB")
    except HTTPException:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise HTTPException(413, "The image has more pixels than this server decodes. Send a smaller version.") \
            from None
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError, EOFError):
        raise not_image from None
    img.thumbnail((WORKING_SIDE, WORKING_SIDE), Image.Resampling.LANCZOS)
    return Upload(upload_id(data), img, width, height, fmt)


class UploadStore:
    """The last few decoded uploads, in memory only."""

    def __init__(self, limits: UploadLimits) -> None:
        self.limits = limits
        self._lru: BoundedLRU[Upload] = BoundedLRU(
            limits.cache_entries, limits.cache_entries * WORKING_SIDE * WORKING_SIDE * 3,
            size_of=lambda u: u.image.width * u.image.height * 3)

    def add(self, data: bytes) -> Upload:
        known = self._lru.get(upload_id(data))
        return known if known is not None else self._lru.put(upload_id(data), decode_upload(data, self.limits))

    def get(self, upload: str) -> Upload:
        found = self._lru.get(upload)
        if found is None:
            raise HTTPException(404, f"No upload {upload!r} here: uploads are kept only briefly and in memory. "
                                     "Upload the painting again.")
        return found
