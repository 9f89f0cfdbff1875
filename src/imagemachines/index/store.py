"""The index directory on disk: a JSON manifest, a SQLite table of images, per-layer safetensors files.

    index.json                manifest (model, weights id, layers, image size, parameters, counts); written
                              last, atomically: an index without it (or with ``complete: false``) is unfinished
    images.sqlite             one row per image: path, sha256, size, metadata, state, chunk, row (WAL journal)
    chunks/chunk-NNNNNN.safetensors   the work of one chunk of images: per-layer top/bottom-k state, sums,
                              pooled activations and spatial maxima (float16) of its images
    layers/LAYER.safetensors  the merged result: top/bottom-k (values, image rows, cells), statistics, histogram,
                              per unit the number of images whose maximum lies on the map's border
    maxima/LAYER.safetensors  [n_images, channels] float16 every image's value of every unit (as ranked)
    pooled/LAYER.safetensors  [n_images, channels] float16 pooled activations, rows in image-id order

A chunk counts only once its file is written (atomically) *and* the table marks it done (one transaction),
so a killed run loses at most the chunks in flight. Never a pickle.
"""

from __future__ import annotations

import json
import re
import sqlite3
import struct
from pathlib import Path

import numpy as np

from imagemachines.fileio import atomic_write

MANIFEST = "index.json"
DATABASE = "images.sqlite"
FORMAT = 1

_SCHEMA = """
CREATE TABLE IF NOT EXISTS images (
    key INTEGER PRIMARY KEY,
    path TEXT NOT NULL UNIQUE,
    sha256 TEXT NOT NULL,
    bytes INTEGER NOT NULL,
    mtime_ns INTEGER NOT NULL,
    width INTEGER,
    height INTEGER,
    status TEXT NOT NULL CHECK (status IN ('pending', 'ok', 'bad')),
    error TEXT,
    chunk INTEGER,
    row INTEGER,
    meta TEXT NOT NULL DEFAULT '{}'
);
CREATE INDEX IF NOT EXISTS images_chunk ON images (chunk);
CREATE TABLE IF NOT EXISTS chunks (
    id INTEGER PRIMARY KEY,
    state TEXT NOT NULL CHECK (state IN ('planned', 'done'))
);
CREATE TABLE IF NOT EXISTS settings (name TEXT PRIMARY KEY, value TEXT NOT NULL);
"""


def safe_name(layer: str) -> str:
    """A file name for a layer name."""
    return re.sub(r"[^A-Za-z0-9_.-]", "_", layer)


def connect(path: Path, readonly: bool = False) -> sqlite3.Connection:
    db = Path(path) / DATABASE
    if readonly:
        conn = sqlite3.connect(f"{db.resolve().as_uri()}?mode=ro", uri=True, timeout=60, check_same_thread=False)
    else:
        conn = sqlite3.connect(str(db), timeout=60)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")
        conn.executescript(_SCHEMA)
        conn.commit()
    return conn


def chunk_file(path: Path, chunk: int) -> Path:
    return Path(path) / "chunks" / f"chunk-{chunk:06d}.safetensors"


def layer_file(path: Path, layer: str) -> Path:
    return Path(path) / "layers" / f"{safe_name(layer)}.safetensors"


def maxima_file(path: Path, layer: str) -> Path:
    return Path(path) / "maxima" / f"{safe_name(layer)}.safetensors"


def pooled_file(path: Path, layer: str) -> Path:
    return Path(path) / "pooled" / f"{safe_name(layer)}.safetensors"


def read_manifest(path: Path) -> dict:
    return json.loads((Path(path) / MANIFEST).read_text(encoding="utf-8"))


def write_manifest(path: Path, manifest: dict) -> None:
    text = json.dumps(manifest, indent=2, ensure_ascii=False)
    atomic_write(Path(path) / MANIFEST, lambda tmp: tmp.write_text(text + "\n", encoding="utf-8"))


def save_tensors(path: Path, tensors: dict, metadata: dict[str, str] | None = None) -> None:
    """Torch tensors to a safetensors file, atomically."""
    from safetensors.torch import save_file

    atomic_write(Path(path), lambda tmp: save_file(tensors, str(tmp), metadata=metadata))


def load_tensors(path: Path, names: list[str] | None = None) -> dict:
    """Torch tensors from a safetensors file (only *names* when given)."""
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as f:
        return {n: f.get_tensor(n) for n in (names if names is not None else f.keys())}


# -- one large array written row by row, never held in memory --------------------------------------------------
_DTYPES = {np.dtype(np.float16): "F16", np.dtype(np.float32): "F32"}


def write_array_streaming(path: Path, name: str, shape: tuple[int, int], dtype, fill) -> None:
    """Write a safetensors file holding one array *name* of *shape*; *fill(memmap)* writes its rows in place.

    The array lives in a memory-mapped file while it is filled, so any number of rows costs no memory.
    """
    dtype = np.dtype(dtype)
    nbytes = int(np.prod(shape)) * dtype.itemsize
    header = json.dumps({name: {"dtype": _DTYPES[dtype], "shape": list(shape), "data_offsets": [0, nbytes]}})
    header += " " * (-len(header) % 8)
    raw = header.encode()

    def write(tmp: Path) -> None:
        with open(tmp, "wb") as f:
            f.write(struct.pack("<Q", len(raw)))
            f.write(raw)
            f.truncate(8 + len(raw) + nbytes)
        if nbytes:
            arr = np.memmap(tmp, dtype=dtype, mode="r+", offset=8 + len(raw), shape=shape)
            fill(arr)
            arr.flush()
            del arr

    atomic_write(Path(path), write)


def open_array(path: Path, name: str) -> np.ndarray:
    """A read-only memory map of array *name* in a safetensors file (nothing is read until used)."""
    with open(path, "rb") as f:
        (hlen,) = struct.unpack("<Q", f.read(8))
        header = json.loads(f.read(hlen))
    info = header[name]
    dtype = {v: k for k, v in _DTYPES.items()}[info["dtype"]]
    shape = tuple(info["shape"])
    if int(np.prod(shape)) == 0:
        return np.zeros(shape, dtype=dtype)
    return np.memmap(path, dtype=dtype, mode="r", offset=8 + hlen + info["data_offsets"][0], shape=shape)
