"""Sprite sheets of maps on disk, bounded: files named by a hash of what they show (never request text), written
atomically (mode 0600), least recently used removed past *max_bytes*."""

from __future__ import annotations

import contextlib
import hashlib
import os
import threading
from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path

from imagemachines.fileio import atomic_write

PRIVATE = 0o600


class SpriteCache:
    def __init__(self, root: Path, max_bytes: int = 512 * 2**20):
        self.root = Path(root)  # made with the first sheet: a server that never draws a map adds no folder
        self.max_bytes = max_bytes
        self._sizes: OrderedDict[str, int] = OrderedDict()
        self._lock = threading.Lock()
        self._making: dict[str, threading.Lock] = {}
        found = []
        for path in self.root.glob("*.jpg") if self.root.is_dir() else ():
            with contextlib.suppress(OSError):
                st = path.stat()
                found.append((st.st_mtime, path.stem, st.st_size))
        for _, key, size in sorted(found):
            self._sizes[key] = size
        self._evict()

    @staticmethod
    def key(*parts: object) -> str:
        return hashlib.sha256(repr(parts).encode()).hexdigest()[:40]

    @property
    def total(self) -> int:
        with self._lock:
            return sum(self._sizes.values())

    def get_or_make(self, key: str, make: Callable[[], bytes]) -> bytes:
        """The sheet *key*, made by *make* (once, however many requests ask at the same time) when absent."""
        path = self.root / f"{key}.jpg"
        with self._lock:
            lock = self._making.setdefault(key, threading.Lock())
        with lock:
            try:
                data = path.read_bytes()
                with contextlib.suppress(OSError):
                    os.utime(path)
                with self._lock:
                    if key in self._sizes:
                        self._sizes.move_to_end(key)
                return data
            except FileNotFoundError:
                pass
            data = make()

            atomic_write(path, lambda tmp: tmp.write_bytes(data))
            os.chmod(path, PRIVATE)  # as the render cache's files
            with self._lock:
                self._sizes[key] = len(data)
                self._sizes.move_to_end(key)
                self._making.pop(key, None)
            self._evict(keep=key)
            return data

    def _evict(self, keep: str | None = None) -> None:
        with self._lock:
            total = sum(self._sizes.values())
            for key in list(self._sizes):
                if total <= self.max_bytes:
                    break
                if key == keep:
                    continue
                total -= self._sizes.pop(key)
                (self.root / f"{key}.jpg").unlink(missing_ok=True)
