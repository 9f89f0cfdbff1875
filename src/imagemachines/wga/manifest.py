"""The download manifest: one SQLite row per (store, artwork) with its state, size, sha256 and last error.

States: ``pending`` (to do), ``ok`` (the file is on disk and decodes), ``missing`` (the server said 404/410),
``failed`` (gave up after retries; ``reason`` says why). Every change is committed at once (WAL journal), so
killing the process loses at most the item in flight.
"""

from __future__ import annotations

import sqlite3
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

STATES = ("pending", "ok", "missing", "failed")
_SCHEMA = """
CREATE TABLE IF NOT EXISTS items (
    store TEXT NOT NULL,
    id TEXT NOT NULL,
    url TEXT NOT NULL,
    path TEXT NOT NULL,
    state TEXT NOT NULL CHECK (state IN ('pending', 'ok', 'missing', 'failed')),
    reason TEXT,
    bytes INTEGER,
    sha256 TEXT,
    attempts INTEGER NOT NULL DEFAULT 0,
    updated REAL NOT NULL,
    PRIMARY KEY (store, id)
)
"""


@dataclass(frozen=True)
class Item:
    store: str
    id: str
    url: str
    path: str
    state: str
    reason: str | None
    bytes: int | None
    sha256: str | None
    attempts: int


class Manifest:
    """Access to ``manifest.sqlite``; use one instance per thread."""

    def __init__(self, path: Path, readonly: bool = False):
        self.path = path
        if readonly:
            self.conn = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True, timeout=30)
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            self.conn = sqlite3.connect(str(path), timeout=30)
            self.conn.execute("PRAGMA journal_mode=WAL")
            self.conn.execute("PRAGMA synchronous=NORMAL")
            self.conn.execute(_SCHEMA)
            self.conn.commit()

    def close(self) -> None:
        self.conn.close()

    def __enter__(self) -> Manifest:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def add(self, store: str, entries: list[tuple[str, str, str]]) -> int:
        """Register ``(id, url, path)`` entries as pending unless known; known ones get the current URL."""
        now = time.time()
        before = self.conn.total_changes
        self.conn.executemany(
            "INSERT INTO items (store, id, url, path, state, updated) VALUES (?, ?, ?, ?, 'pending', ?) "
            "ON CONFLICT (store, id) DO UPDATE SET url = excluded.url WHERE url != excluded.url",
            [(store, i, u, p, now) for i, u, p in entries])
        self.conn.commit()
        return self.conn.total_changes - before

    def items(self, store: str, ids: list[str] | None = None, states: tuple[str, ...] = STATES) -> list[Item]:
        """Items of a store (optionally only *ids*, in their order) in the given states."""
        marks = ", ".join("?" * len(states))
        rows = self.conn.execute(
            f"SELECT store, id, url, path, state, reason, bytes, sha256, attempts FROM items "
            f"WHERE store = ? AND state IN ({marks}) ORDER BY id", [store, *states]).fetchall()
        found = {r[1]: Item(*r) for r in rows}
        if ids is None:
            return list(found.values())
        return [found[i] for i in ids if i in found]

    def set_state(self, store: str, id_: str, state: str, *, reason: str | None = None,
                  nbytes: int | None = None, sha256: str | None = None, attempts: int | None = None) -> None:
        """Record an item's new state (committed immediately)."""
        self.conn.execute(
            "UPDATE items SET state = ?, reason = ?, bytes = ?, sha256 = ?, "
            "attempts = COALESCE(?, attempts), updated = ? WHERE store = ? AND id = ?",
            (state, reason, nbytes, sha256, attempts, time.time(), store, id_))
        self.conn.commit()

    def counts(self, store: str, ids: list[str] | None = None) -> Counter:
        """How many items are in each state (optionally among *ids*)."""
        return Counter(item.state for item in self.items(store, ids))

    def reasons(self, store: str, ids: list[str] | None = None) -> Counter:
        """Failure reasons, counted."""
        return Counter(item.reason or "?" for item in self.items(store, ids, states=("failed",)))
