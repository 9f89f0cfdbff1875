"""Writing files so that a crash never leaves a partial file under the final name."""

from __future__ import annotations

import functools
import json
import os
import re
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


class PictureRecord:
    """The pictures a page writer put into its folder (*folder*), listed in ``.written.json`` there.

    A new page deletes only the pictures the earlier one wrote (the user's own files there stay), and refuses to
    write over a file of that folder that it did not write. Only names matching *own_names* are ever deleted. A
    page written before this record existed is recognised by *legacy_marker* (a file the writer always makes, e.g.
    its CSV): then its pictures are the files named as the writer names them.
    """

    NAME = ".written.json"

    def __init__(self, folder: Path, own_names: re.Pattern[str], legacy_marker: Path | None = None):
        self.folder = Path(folder)
        self.path = self.folder / self.NAME
        self.own_names = own_names
        self.legacy_marker = legacy_marker

    def earlier(self) -> set[str]:
        try:
            names = json.loads(self.path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            legacy = self.legacy_marker is not None and self.legacy_marker.is_file() and self.folder.is_dir()
            names = [p.name for p in self.folder.iterdir()] if legacy else []
        except (OSError, ValueError):
            names = []
        return {n for n in names if isinstance(n, str) and self.own_names.fullmatch(n)} if isinstance(names, list) \
            else set()

    def _write(self, names: set[str]) -> None:
        text = json.dumps(sorted(names))
        atomic_write(self.path, lambda tmp: tmp.write_text(text + "\n", encoding="utf-8"))

    def start(self, planned: set[str]) -> PictureRecord:
        """Check that *planned* overwrites nothing of the user's, delete the earlier pictures, and record what
        may be written (so an interrupted run is cleaned up by the next)."""
        from imagemachines.errors import UserError

        self.folder.mkdir(parents=True, exist_ok=True)
        earlier = self.earlier()
        theirs = sorted(n for n in planned - earlier if (self.folder / n).exists())
        if theirs:
            raise UserError(f"{self.folder} holds files this command did not write ({', '.join(theirs[:5])}"
                            f"{' …' if len(theirs) > 5 else ''}); it will not write over them. Give another --out, "
                            "or move them away.")
        self._write(earlier | planned)
        for name in earlier:
            (self.folder / name).unlink(missing_ok=True)
        return self

    def finish(self, written: set[str]) -> None:
        """Record exactly the pictures written."""
        self._write(written)
