"""Writing files so that a crash never leaves a partial file under the final name."""

from __future__ import annotations

import functools
import os
import tempfile
from collections.abc import Callable
from pathlib import Path


@functools.cache
def user_umask() -> int:
    """The process's umask, read without changing it where the system tells it (Linux), else set back at once."""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def atomic_write(path: Path, write: Callable[[Path], None]) -> None:
    """Write through *write(tmp_path)* to a temporary file beside *path*, flush it to disk, rename it over *path*.

    The file gets the permissions a plain ``open()`` would give it (0666 less the umask), not the temporary
    file's private 0600: results are meant to be shared.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        write(Path(tmp))
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        os.chmod(tmp, 0o666 & ~user_umask())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


LINK_KINDS = ("symbolic", "hard", "copy")


def link_file(src: Path, dst: Path, kinds: tuple[str, ...]) -> str:
    """Make *dst* stand for *src* by the first of *kinds* the filesystem allows; returns the kind used.

    ``symbolic`` links to the absolute path of *src*; ``hard`` shares its data (same filesystem only);
    ``copy`` copies it (with its timestamps). The last kind given is not caught: its error is the caller's.
    """
    import shutil

    for n, kind in enumerate(kinds):
        try:
            if kind == "symbolic":
                os.symlink(Path(src).resolve(), dst)
            elif kind == "hard":
                os.link(src, dst)
            elif kind == "copy":
                shutil.copy2(src, dst)
            else:
                raise ValueError(f"unknown link kind {kind!r}; use one of {', '.join(LINK_KINDS)}")
            return kind
        except OSError:
            if n == len(kinds) - 1:
                raise
    raise ValueError("link_file needs at least one kind")
