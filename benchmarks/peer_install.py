"""Installing a peer library for a side-by-side benchmark: into a throwaway folder, never into the project."""

from __future__ import annotations

import importlib
import subprocess
import sys
import tempfile
from pathlib import Path


def install_peer(packages: list[str], module: str, always: tuple[str, ...], target: Path | None = None) -> Path:
    """``pip install --no-deps --target`` *packages* into *target* (a fresh temporary folder by default) unless it
    already holds *module*: those named in *always*, and the others only when they cannot be imported already.
    The folder goes first on ``sys.path``; returns it."""
    target = target or Path(tempfile.mkdtemp(prefix=f"{module}-peer-"))
    if not (target / module).is_dir():
        missing = [p for p in packages if p.startswith(always) or not importable(p.split("==")[0])]
        subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--target", str(target),
                        *missing], check=True)
    if str(target) not in sys.path:
        sys.path.insert(0, str(target))
    return target


def importable(name: str) -> bool:
    try:
        importlib.import_module(name)
    except ImportError:
        return False
    return True
