"""Finished renders on disk, keyed by a hash of the weights and the full request.

File names are ``<key>.png`` (with the recipe as PNG text), ``<key>.json`` (the recipe) and
``<key>.request.json``, where the key is a hex digest: no request text ever becomes part of a path. Every file
is written atomically with mode 0600. The folder is bounded: past *max_bytes*, the least recently used renders
(by last write or answer; across restarts, by file time) are deleted.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import threading
from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path
from typing import Any

from imagemachines.fileio import atomic_write

_KEY = re.compile(r"^[0-9a-f]{32}$")
SUFFIXES = (".png", ".json", ".request.json")  # the files of one render
PRIVATE = 0o600


def render_key(weights_id: str, request: dict[str, Any]) -> str:
    """32 hex digits identifying *request* (a JSON-able dict) on the weights *weights_id*."""
    text = json.dumps({"weights_id": weights_id, "request": request}, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def is_key(text: str) -> bool:
    return bool(_KEY.match(text))


class RenderCache:
    """A folder of finished renders. Writes are atomic: a PNG present means a complete render."""

    def __init__(self, root: Path, save: Callable[[Any, Path], Path] | None = None, max_bytes: int = 2 * 1024**3):
        self.root = Path(root).expanduser()
        self.root.mkdir(parents=True, exist_ok=True)
        self._save = save
        self.max_bytes = max_bytes
        self._lock = threading.Lock()
        self._sizes: OrderedDict[str, int] = OrderedDict()  # key -> bytes of its files, least recently used first
        self._total = 0
        self._scan()
        self._evict()

    def _scan(self) -> None:
        found: dict[str, list[int | float]] = {}
        for path in self.root.iterdir():
            key = path.name[:32]
            if not is_key(key) or path.name[32:] not in SUFFIXES:
                continue
            try:
                stat = path.stat()
            except OSError:
                continue
            entry = found.setdefault(key, [0, 0.0])
            entry[0] += stat.st_size
            if path.name.endswith(".png"):
                entry[1] = stat.st_mtime
        for key, (size, _) in sorted(found.items(), key=lambda kv: kv[1][1]):
            self._sizes[key] = int(size)
            self._total += int(size)

    def _used(self, key: str) -> None:
        """Mark *key* as just used (memory, and the PNG's time for the next start)."""
        with self._lock:
            if key in self._sizes:
                self._sizes.move_to_end(key)
        with contextlib.suppress(OSError):
            os.utime(self._path(key, ".png"))

    def _evict(self, keep: str | None = None) -> None:
        """Delete least recently used renders until the folder is within its bound (never *keep*)."""
        while True:
            with self._lock:
                if self._total <= self.max_bytes:
                    return
                victim = next((k for k in self._sizes if k != keep), None)
                if victim is None:
                    return
                self._total -= self._sizes.pop(victim)
            for suffix in (".png", ".json", ".request.json"):  # the PNG first: it marks the render complete
                with contextlib.suppress(OSError):
                    self._path(victim, suffix).unlink()

    def usage(self) -> dict[str, int]:
        """Bytes, renders and the bound of the cache, for the status route."""
        with self._lock:
            return {"cache_bytes": self._total, "cache_renders": len(self._sizes), "cache_limit": self.max_bytes}

    def _path(self, key: str, suffix: str) -> Path:
        if not is_key(key):  # defence in depth: keys come from render_key, never from a request
            raise ValueError(f"not a cache key: {key!r}")
        return self.root / f"{key}{suffix}"

    def png(self, key: str) -> Path | None:
        """The finished PNG for *key*, or None."""
        path = self._path(key, ".png")
        if not path.is_file():
            return None
        self._used(key)
        return path

    def recipe(self, key: str) -> dict | None:
        """The recipe stored with *key*, or None when the render is not (completely) cached."""
        stored = self.stored(key)
        return None if stored is None else stored[0]

    def stored(self, key: str) -> tuple[dict, dict] | None:
        """(recipe, request) stored with *key*, or None when the render is not (completely) cached."""
        if not is_key(key) or self.png(key) is None:
            return None
        try:
            recipe = json.loads(self._path(key, ".json").read_text())
            request = json.loads(self._path(key, ".request.json").read_text())
        except (OSError, ValueError):
            return None
        return (recipe, request) if isinstance(recipe, dict) and isinstance(request, dict) else None

    def put(self, key: str, render: Any, request: dict[str, Any]) -> dict:
        """Store an engine ``Render`` made for *request* under *key*; returns its recipe."""
        save = self._save
        if save is None:
            from imagemachines.vis import save_render as save
        part = self._path(key, ".part.png")
        save(render, part)
        text = json.dumps(request, sort_keys=True)
        atomic_write(self._path(key, ".request.json"), lambda tmp: tmp.write_text(text))
        os.replace(part.with_suffix(".json"), self._path(key, ".json"))
        os.replace(part, self._path(key, ".png"))  # last: the PNG's presence marks completion
        size = 0
        for suffix in SUFFIXES:
            path = self._path(key, suffix)
            os.chmod(path, PRIVATE)  # one mode for every file, whoever wrote it
            size += path.stat().st_size
        with self._lock:
            self._total += size - self._sizes.pop(key, 0)
            self._sizes[key] = size
        self._evict(keep=key)
        return dict(render.recipe)

    def size_bytes(self) -> int:
        return self.usage()["cache_bytes"]
