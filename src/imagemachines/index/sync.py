"""Bring the image table in line with the folder: new, changed (by sha256) and removed images, and chunk plans.

A changed or removed image invalidates the chunk that holds it: the chunk's file is deleted and its other
images are queued again, so nothing stale survives into the merged index.
"""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass
from pathlib import Path

from imagemachines.index.scan import FileState, image_size, path_key, sha256_file
from imagemachines.index.store import chunk_file


@dataclass
class SyncReport:
    new: int = 0
    changed: int = 0
    removed: int = 0
    unchanged: int = 0


def invalidate_chunk(conn: sqlite3.Connection, index_dir: Path, chunk: int | None) -> None:
    """Forget a chunk's results: its images are queued again (no commit here)."""
    if chunk is None:
        return
    conn.execute("UPDATE images SET status = 'pending', error = NULL, chunk = NULL WHERE chunk = ?", (chunk,))
    conn.execute("DELETE FROM chunks WHERE id = ?", (chunk,))
    chunk_file(index_dir, chunk).unlink(missing_ok=True)


def sync_images(conn: sqlite3.Connection, index_dir: Path, root: Path, files: list[FileState],
                rehash: bool = False, progress: bool = True) -> SyncReport:
    """Update the table from *files* (a scan of *root*); hashes only files whose size or mtime changed."""
    from tqdm.auto import tqdm

    rows = {r[0]: r[1:] for r in conn.execute("SELECT path, key, sha256, bytes, mtime_ns, chunk FROM images")}
    report = SyncReport()
    for f in tqdm(files, desc="checking images", unit="img", disable=not progress or len(files) < 2,
                  dynamic_ncols=True, leave=False):
        old = rows.get(f.path)
        if old is not None and not rehash and (old[2], old[3]) == (f.bytes, f.mtime_ns):
            report.unchanged += 1
            continue
        sha = sha256_file(root / f.path)
        if old is not None and old[1] == sha:
            conn.execute("UPDATE images SET bytes = ?, mtime_ns = ? WHERE key = ?", (f.bytes, f.mtime_ns, old[0]))
            report.unchanged += 1
            continue
        size = image_size(root / f.path)
        status, error, (w, h) = ("bad", size, (None, None)) if isinstance(size, str) else ("pending", None, size)
        if old is not None:
            invalidate_chunk(conn, index_dir, old[4])
            conn.execute("UPDATE images SET sha256 = ?, bytes = ?, mtime_ns = ?, width = ?, height = ?, status = ?, "
                         "error = ?, chunk = NULL, row = NULL WHERE key = ?",
                         (sha, f.bytes, f.mtime_ns, w, h, status, error, old[0]))
            report.changed += 1
        else:
            conn.execute("INSERT INTO images (key, path, sha256, bytes, mtime_ns, width, height, status, error) "
                         "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                         (path_key(f.path), f.path, sha, f.bytes, f.mtime_ns, w, h, status, error))
            report.new += 1
    present = {f.path for f in files}
    for path, (key, _sha, _b, _m, chunk) in rows.items():
        if path not in present:
            invalidate_chunk(conn, index_dir, chunk)
            conn.execute("DELETE FROM images WHERE key = ?", (key,))
            report.removed += 1
    conn.commit()
    return report


def set_metadata(conn: sqlite3.Connection, meta: dict[str, dict]) -> None:
    """Store each image's joined metadata (images without any get ``{}``)."""
    paths = [r[0] for r in conn.execute("SELECT path FROM images")]
    conn.executemany("UPDATE images SET meta = ? WHERE path = ?",
                     [(json.dumps(meta.get(p, {}), ensure_ascii=False), p) for p in paths])
    conn.commit()


def plan_chunks(conn: sqlite3.Connection, index_dir: Path, chunk_size: int) -> list[int]:
    """Group queued images (by path) into new chunks; returns every chunk still to do, in order.

    Chunks planned by an interrupted run are kept as they were, so a resumed run does the same work.
    """
    for (cid,) in conn.execute("SELECT id FROM chunks WHERE state = 'planned'").fetchall():
        chunk_file(index_dir, cid).unlink(missing_ok=True)  # written but never marked done: redo it
    done = {r[0] for r in conn.execute("SELECT id FROM chunks WHERE state = 'done'")}
    folder = Path(index_dir) / "chunks"
    for stray in folder.glob("chunk-*.safetensors") if folder.is_dir() else []:
        if int(stray.stem.split("-")[1]) not in done:
            stray.unlink()
    pending = [r[0] for r in conn.execute(
        "SELECT key FROM images WHERE status = 'pending' AND chunk IS NULL ORDER BY path")]
    (next_id,) = conn.execute("SELECT COALESCE(MAX(id), 0) + 1 FROM chunks").fetchone()
    for start in range(0, len(pending), chunk_size):
        cid = next_id + start // chunk_size
        conn.execute("INSERT INTO chunks (id, state) VALUES (?, 'planned')", (cid,))
        conn.executemany("UPDATE images SET chunk = ? WHERE key = ?",
                         [(cid, key) for key in pending[start:start + chunk_size]])
    conn.commit()
    return [r[0] for r in conn.execute("SELECT id FROM chunks WHERE state = 'planned' ORDER BY id")]
