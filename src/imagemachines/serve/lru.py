"""A small thread-safe least-recently-used cache bounded by entries and by total bytes."""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

V = TypeVar("V")


class BoundedLRU(Generic[V]):
    """``get``/``put`` with eviction of the least recently used entries once *max_entries* or *max_bytes*
    (measured by *size_of*) is exceeded. An entry larger than *max_bytes* on its own is not kept."""

    def __init__(self, max_entries: int, max_bytes: int, size_of: Callable[[V], int] = len) -> None:
        self.max_entries, self.max_bytes, self._size_of = max_entries, max_bytes, size_of
        self._items: OrderedDict[Hashable, tuple[V, int]] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()

    def get(self, key: Hashable) -> V | None:
        with self._lock:
            hit = self._items.get(key)
            if hit is None:
                return None
            self._items.move_to_end(key)
            return hit[0]

    def put(self, key: Hashable, value: V) -> V:
        size = self._size_of(value)
        with self._lock:
            old = self._items.pop(key, None)
            if old is not None:
                self._bytes -= old[1]
            if size <= self.max_bytes:
                self._items[key] = (value, size)
                self._bytes += size
            while self._items and (len(self._items) > self.max_entries or self._bytes > self.max_bytes):
                _, (_, dropped) = self._items.popitem(last=False)
                self._bytes -= dropped
        return value

    def pop(self, key: Hashable) -> V | None:
        """Remove *key*; its value, or None."""
        with self._lock:
            hit = self._items.pop(key, None)
            if hit is None:
                return None
            self._bytes -= hit[1]
            return hit[0]

    def drop_where(self, predicate: Callable[[Hashable], bool]) -> int:
        """Remove every entry whose key satisfies *predicate*; how many."""
        with self._lock:
            keys = [k for k in self._items if predicate(k)]
            for key in keys:
                self._bytes -= self._items.pop(key)[1]
            return len(keys)

    def cached_keys(self) -> list[Hashable]:
        with self._lock:
            return list(self._items)

    def get_or_make(self, key: Hashable, make: Callable[[], V]) -> V:
        """The cached value, or ``make()`` stored (two threads may both make it; the last one is kept)."""
        hit = self.get(key)
        return hit if hit is not None else self.put(key, make())

    def __len__(self) -> int:
        return len(self._items)

    @property
    def nbytes(self) -> int:
        return self._bytes
