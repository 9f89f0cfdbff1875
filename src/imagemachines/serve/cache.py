"""Finished renders on disk, keyed by a hash of the weights and the full request.

File names are ``<key>.png`` (with the recipe as PNG text) and ``<key>.json`` (the recipe), where the key is a
hex digest: no request text ever becomes part of a path.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

_KEY = re.compile(r"^[0-9a-f]{32}$")


def render_key(weights_id: str, request: dict[str, Any]) -> str:
    """32 hex digits identifying *request* (a JSON-able dict) on the weights *weights_id*."""
    text = json.dumps({"weights_id": weights_id, "request": request}, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def is_key(text: str) -> bool:
    return bool(_KEY.match(text))


class RenderCache:
    """A folder of finished renders. Writes are atomic: a PNG present means a complete render."""

    def __init__(self, root: Path, save: Callable[[Any, Path], Path] | None = None):
        self.root = Path(root).expanduser()
        self.root.mkdir(parents=True, exist_ok=True)
        self._save = save

    def _path(self, key: str, suffix: str) -> Path:
        if not is_key(key):  # defence in depth: keys come from render_key, never from a request
            raise ValueError(f"not a cache key: {key!r}")
        return self.root / f"{key}{suffix}"

    def png(self, key: str) -> Path | None:
        """The finished PNG for *key*, or None."""
        path = self._path(key, ".png")
        return path if path.is_file() else None

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
        self._path(key, ".request.json").write_text(json.dumps(request, sort_keys=True))
        os.replace(part.with_suffix(".json"), self._path(key, ".json"))
        os.replace(part, self._path(key, ".png"))  # last: the PNG's presence marks completion
        return dict(render.recipe)

    def size_bytes(self) -> int:
        return sum(p.stat().st_size for p in self.root.glob("*") if p.is_file())
