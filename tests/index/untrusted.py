"""Helpers for the tests of untrusted indexes: a secret picture outside the image folder, rows pointed at it."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from imagemachines.index import build_index
from imagemachines.index.store import DATABASE
from tests.index.conftest import blob_model, make_collection

SECRET = (0, 255, 0)  # a colour no painting of the collection has


@pytest.fixture
def secret(tmp_path) -> Path:
    """A picture outside the image folder, readable by the process, that no reader may touch."""
    path = tmp_path / "private" / "secret.png"
    path.parent.mkdir()
    Image.new("RGB", (96, 64), SECRET).save(path)
    return path


@pytest.fixture
def built(tmp_path):
    col = make_collection(tmp_path / "images", n_red=3, n_tint=2, n_grey=2)
    return col, build_index(blob_model(), col.root, tmp_path / "idx", k=4, progress=False)


def tamper(index_dir: Path, kind: str, col, secret: Path, rows: list[int] | None = None) -> None:
    """Point the given rows (default: every row) of the index's table at copies of *secret*, each the *kind* way."""
    conn = sqlite3.connect(index_dir / DATABASE)
    with conn:
        ids = rows if rows is not None else [r[0] for r in conn.execute("SELECT row FROM images WHERE row >= 0")]
        for row in ids:
            conn.execute("UPDATE images SET path = ? WHERE row = ?", (bad_row(kind, col, secret, row), row))
    conn.close()


def bad_row(kind: str, col, secret: Path, n: int = 0) -> str:
    """A table path of *kind* that leads to a copy of *secret* (the n-th)."""
    copy = secret.with_name(f"secret-{n}.png")
    copy.write_bytes(secret.read_bytes())
    if kind == "absolute":
        return str(copy)
    if kind == "dotdot":
        return f"../{secret.parent.name}/{copy.name}"
    link = col.root / "red" / f"innocent-{n}.png"
    link.symlink_to(copy)
    return f"red/{link.name}"


KINDS = ["absolute", "dotdot", "symlink"]


def shows_secret(folder: Path) -> bool:
    """Whether any picture written under *folder* is (mostly) the secret's colour."""
    for f in folder.rglob("*") if folder.exists() else []:
        if f.suffix.lower() in (".jpg", ".png", ".webp"):
            a = np.asarray(Image.open(f).convert("RGB"), dtype=float)
            if np.abs(a - np.array(SECRET)).mean() < 60:
                return True
    return False
