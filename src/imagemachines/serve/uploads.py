"""Uploaded paintings: read the body under a byte limit, decode it safely, keep it only briefly and in memory.

An upload never touches the disk. It is decoded by Pillow from the bytes (only common raster formats) under a
fixed ceiling on memory across all requests:

* its header is checked against a pixel bound *before* any pixel is decoded (no decompression bombs);
* a JPEG is decoded at a reduced scale (``draft``: 1/2 to 1/8, still at least the working size);
* the memory the decode will take (pixels × bytes per pixel, plus one full-size RGB copy for modes that must be
  converted before they can be shrunk) must fit in ``decode_memory / decoders``, else 413 naming the largest size
  that fits;
* at most ``decoders`` uploads are decoded at once; one more gets 503 with ``Retry-After`` (it is never queued,
  so waiting bodies cannot pile up either);
* the decoded image is shrunk by whole factors first (``reduce``, no full-size copy for RGB and greyscale) and then
  resampled to the working size; when the last decode of a burst ends, freed memory goes back to the system
  (glibc keeps it otherwise).

Uploads are addressed by a digest of their bytes, kept for ``ttl`` seconds after they were last used and at most
``cache_entries`` of them; what the server computed from an upload is forgotten with it.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import hashlib
import math
import threading
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from io import BytesIO

from fastapi import HTTPException, Request
from PIL import Image, UnidentifiedImageError

from imagemachines.serve.lru import BoundedLRU

FORMATS = ("JPEG", "PNG", "WEBP", "GIF", "BMP", "TIFF")
WORKING_SIDE = 1024  # uploads are kept at most this large (longer side)
SHRINKS_AS_IS = ("RGB", "L")  # modes reduced and resampled without a full-size conversion first


@dataclass(frozen=True)
class UploadLimits:
    max_bytes: int = 20 * 1024 * 1024       # request body
    max_pixels: int = 50_000_000           # width × height in the file's header
    cache_entries: int = 32                # decoded uploads kept in memory (each at most 1024² RGB = 3 MB)
    ttl: float = 30 * 60                   # seconds an upload is kept after it was last used
    decoders: int = 2                      # uploads decoded at once, across all requests
    decode_memory: int = 256 * 2**20       # bytes all decodes at once may take (each: decode_memory / decoders)

    @property
    def decode_bytes(self) -> int:
        """The most one decode may take."""
        return self.decode_memory // self.decoders


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


def bytes_per_pixel(mode: str) -> int:
    """What Pillow allocates per pixel for *mode* (RGB is stored in 4 bytes)."""
    return 1 if mode in ("1", "L", "P") else 2 if mode.startswith("I;16") else 4


def decode_need(mode: str, width: int, height: int) -> int:
    """Bytes a decode of a *width* × *height* image in *mode* takes at its peak (see the module docstring)."""
    pixels = width * height
    return pixels * bytes_per_pixel(mode) + (0 if mode in SHRINKS_AS_IS else pixels * 4)


def decode_upload(data: bytes, limits: UploadLimits) -> Upload:
    """Decode *data* into an :class:`Upload`; 415 for what is not an image, 413 for too many pixels or bytes to
    decode."""
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
            need = decode_need(img.mode, *img.size)
            if need > limits.decode_bytes:
                side = math.isqrt(limits.decode_bytes // (need // (img.size[0] * img.size[1])))
                raise HTTPException(413, f"Decoding this {width}×{height} {fmt} ({img.mode}) would take "
                                         f"{need / 2**20:.0f} MB; this server decodes at most "
                                         f"{limits.decode_bytes / 2**20:.0f} MB per image. Send a smaller version "
                                         f"(about {side}×{side} pixels at most), or a JPEG.")
            if img.mode not in SHRINKS_AS_IS:
                img = img.convert("RGB")  # the one full-size copy, counted in decode_need
            img.thumbnail((WORKING_SIDE, WORKING_SIDE), Image.Resampling.LANCZOS)  # reduce(), then resample
            img = img.convert("RGB")
    except HTTPException:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise HTTPException(413, "The image has more pixels than this server decodes. Send a smaller version.") \
            from None
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError, EOFError):
        raise not_image from None
    return Upload(upload_id(data), img, width, height, fmt)


def _glibc_trim() -> Callable[[], object]:
    """``malloc_trim(0)``: glibc keeps freed memory for the process unless asked; a no-op elsewhere."""
    name = ctypes.util.find_library("c")
    try:
        trim = ctypes.CDLL(name).malloc_trim if name else None
    except (OSError, AttributeError):
        trim = None
    return (lambda: trim(0)) if trim is not None else (lambda: None)


return_memory = _glibc_trim()


class UploadStore:
    """The last few decoded uploads, in memory only, each for at most ``limits.ttl`` seconds after its last use.

    *forget* is called with the id of each upload that is dropped (to drop what was computed from it); *clock*
    (monotonic seconds) and *decode* can be replaced by tests."""

    def __init__(self, limits: UploadLimits, *, forget: Callable[[str], object] = lambda _id: None,
                 clock: Callable[[], float] = time.monotonic,
                 decode: Callable[[bytes, UploadLimits], Upload] = decode_upload) -> None:
        self.limits = limits
        self._forget, self.clock, self.decode = forget, clock, decode
        self._lru: BoundedLRU[Upload] = BoundedLRU(
            limits.cache_entries, limits.cache_entries * WORKING_SIDE * WORKING_SIDE * 3,
            size_of=lambda u: u.image.width * u.image.height * 3)
        self._used: dict[str, float] = {}  # id -> last use (clock)
        self._lock = threading.Lock()
        self._decoding = 0  # decodes running now

    def add(self, data: bytes) -> Upload:
        """The upload of *data*: a kept one, or decoded now (503 with Retry-After when ``decoders`` are busy)."""
        self.purge()
        key = upload_id(data)
        known = self._lru.get(key)
        if known is None:
            with self._lock:
                if self._decoding >= self.limits.decoders:
                    raise HTTPException(503, f"The server is decoding {self._decoding} other uploads; try again in "
                                             "a second.", headers={"Retry-After": "1"})
                self._decoding += 1
            try:
                known = self._lru.put(key, self.decode(data, self.limits))
            finally:
                with self._lock:
                    self._decoding -= 1
                    last = self._decoding == 0
                if last:
                    return_memory()  # the burst is over: give its memory back
        self._touch(key)
        return known

    def get(self, upload: str) -> Upload:
        self.purge()
        found = self._lru.get(upload)
        if found is None:
            minutes = f"{self.limits.ttl / 60:g}"
            raise HTTPException(404, f"No upload {upload!r} here: uploads are kept only in memory, for {minutes} "
                                     f"minutes after their last use and at most the last {self.limits.cache_entries}."
                                     " Upload the painting again.")
        self._touch(upload)
        return found

    def purge(self) -> list[str]:
        """Drop the uploads unused for longer than the time to live, and forget what was computed from them and
        from those that newer uploads pushed out; the ids dropped."""
        now = self.clock()
        with self._lock:
            kept = set(self._lru.cached_keys())
            gone = [k for k, t in self._used.items() if now - t > self.limits.ttl or k not in kept]
            for key in gone:
                del self._used[key]
        for key in gone:
            self._lru.pop(key)
            self._forget(key)
        return gone

    def _touch(self, key: str) -> None:
        with self._lock:
            self._used[key] = self.clock()
