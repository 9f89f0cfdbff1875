"""The server's sprite-sheet cache: files named by a hash, private, made once, and bounded (least recently used
first, also across a restart)."""

from __future__ import annotations

import os
import threading

from imagemachines.serve.sprite_cache import SpriteCache


def test_sheets_are_private_made_once_and_the_folder_stays_within_its_bound(tmp_path):
    cache = SpriteCache(tmp_path, max_bytes=2500)
    calls: list[str] = []

    def maker(name):
        return lambda: calls.append(name) or name.encode() * 1000

    a, b, c = (SpriteCache.key("index", "map", n) for n in "abc")
    assert cache.get_or_make(a, maker("a")) == b"a" * 1000
    assert cache.get_or_make(a, maker("a")) == b"a" * 1000 and calls == ["a"]
    cache.get_or_make(b, maker("b"))
    cache.get_or_make(a, maker("a"))                 # a is used again: b is now the oldest
    cache.get_or_make(c, maker("c"))                 # 3000 bytes > 2500: b goes
    names = sorted(p.stem for p in tmp_path.glob("*.jpg"))
    assert names == sorted([a, c]) and cache.total == 2000
    assert all(len(n) == 40 and set(n) <= set("0123456789abcdef") for n in names)
    assert all(os.stat(p).st_mode & 0o777 == 0o600 for p in tmp_path.glob("*.jpg"))
    smaller = SpriteCache(tmp_path, max_bytes=1500)  # a restart with a smaller bound trims the oldest
    assert [p.stem for p in tmp_path.glob("*.jpg")] == [c] and smaller.total == 1000


def test_concurrent_requests_for_one_sheet_make_it_once(tmp_path):
    cache = SpriteCache(tmp_path)
    gate = threading.Event()
    made: list[int] = []

    def slow():
        gate.wait(5)
        made.append(1)
        return b"x" * 10

    key = SpriteCache.key("one")
    threads = [threading.Thread(target=cache.get_or_make, args=(key, slow)) for _ in range(4)]
    for t in threads:
        t.start()
    gate.set()
    for t in threads:
        t.join(10)
    assert made == [1]
