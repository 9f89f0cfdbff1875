"""Activations kept on disk between runs: a second run with another K, seed or class reads instead of computing.

One safetensors file per painting and setting, named by a hash of everything its numbers depend on (weights,
layer, input size, crop grid, the file's absolute path, size and modification time), so a changed painting or
setting is computed again and nothing stale is read. Files are written atomically; the folder is kept under a
size bound by dropping the least recently used files. Never a pickle.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import torch

from imagemachines.fileio import atomic_write

DEFAULT_BYTES = 2 * 2**30
FLOAT16_MAX = 65504.0


def default_cache_dir() -> Path:
    from platformdirs import user_cache_dir

    return Path(user_cache_dir("imagemachines")) / "concepts"


def file_key(setting: dict, path: Path) -> str:
    """The cache key of one painting under *setting* (a JSON-able dict)."""
    st = Path(path).stat()
    text = json.dumps({**setting, "file": str(Path(path).resolve()), "bytes": st.st_size, "mtime": st.st_mtime_ns},
                      sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:40]


def storable(t: torch.Tensor) -> torch.Tensor:
    """Float tensors as float16 when that loses nothing but precision (no overflow), else float32."""
    if t.is_floating_point():
        t = t.detach().float().cpu()
        return t.half() if t.numel() == 0 or float(t.abs().max()) < FLOAT16_MAX else t
    return t.detach().cpu()


class ActivationCache:
    """``get(key)`` / ``put(key, tensors)`` under *folder*, at most *max_bytes* on disk (``trim()``)."""

    def __init__(self, folder: Path, max_bytes: int = DEFAULT_BYTES):
        self.folder = Path(folder).expanduser()
        self.max_bytes = int(max_bytes)

    def path(self, key: str) -> Path:
        if len(key) < 8 or not all(c in "0123456789abcdef" for c in key):
            raise ValueError(f"not a cache key: {key!r}")
        return self.folder / key[:2] / f"{key}.safetensors"

    def get(self, key: str) -> dict[str, torch.Tensor] | None:
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        path = self.path(key)
        try:
            tensors = load_file(str(path))
        except (OSError, SafetensorError, ValueError):
            return None  # absent, or damaged: computed again and rewritten
        os.utime(path)  # recently used: kept longest by trim()
        return tensors

    def put(self, key: str, tensors: dict[str, torch.Tensor]) -> None:
        from safetensors.torch import save_file

        data = {name: storable(t).contiguous() for name, t in tensors.items()}
        atomic_write(self.path(key), lambda tmp: save_file(data, str(tmp)))

    def usage(self) -> int:
        return sum(p.stat().st_size for p in self.folder.glob("*/*.safetensors"))

    def trim(self) -> int:
        """Drop the least recently used files until the folder is within its bound; returns the bytes freed."""
        files = []
        for p in self.folder.glob("*/*.safetensors"):
            try:
                st = p.stat()
            except OSError:
                continue
            files.append((st.st_mtime_ns, st.st_size, p))
        total = sum(size for _, size, _ in files)
        freed = 0
        for _, size, p in sorted(files):
            if total - freed <= self.max_bytes:
                break
            p.unlink(missing_ok=True)
            freed += size
        return freed
