"""Kill -9 a download in the middle, twice, and resume: nothing partial, nothing complete fetched again."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
from PIL import Image
from wgacheck import check_store_matches_manifest
from wgafake import NOT_ON_SERVER

from imagemachines.wga.paths import manifest_db, store_dir

ROOT = Path(__file__).resolve().parents[2]


def _ok_ids(root: Path) -> set[str]:
    path = manifest_db(root)
    if not path.exists():
        return set()
    try:
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5)
        try:
            return {r[0] for r in conn.execute("SELECT id FROM items WHERE store='art' AND state='ok'")}
        finally:
            conn.close()
    except sqlite3.OperationalError:  # created but not yet initialised
        return set()


def _start(server, root: Path) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "imagemachines", "wga", "download", "", "--base-url", server.url,
           "--data-dir", str(root), "--rate", "0", "--concurrency", "3", "--backoff", "0.01"]
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    return subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def _kill_after(proc: subprocess.Popen, root: Path, at_least: int) -> None:
    deadline = time.monotonic() + 60
    while len(_ok_ids(root)) < at_least:
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, "download made no progress"
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.communicate()


def _final_files_are_whole(root: Path) -> set[str]:
    """Ids whose file exists under its final name; each must decode completely."""
    folder = store_dir(root, "art")
    ids = set()
    for p in folder.rglob("*.jpg"):
        Image.open(p).load()  # raises on a partial or corrupt file
        ids.add(p.relative_to(folder).as_posix()[: -len(".jpg")])
    return ids


@pytest.mark.slow
def test_kill_and_resume(server, data_dir, keys, jpegs):
    server.latency = 0.03
    served_when_complete: dict[str, int] = {}
    for at_least in (25, 90):
        proc = _start(server, data_dir)
        _kill_after(proc, data_dir, at_least)
        ok = _ok_ids(data_dir)
        on_disk = _final_files_are_whole(data_dir)
        assert ok <= on_disk and len(ok) < len(jpegs)  # killed mid-run; everything recorded is there
        served_when_complete |= {k: server.served[k] for k in on_disk}
    server.latency = 0
    proc = _start(server, data_dir)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err.decode()
    check_store_matches_manifest(data_dir, "art", jpegs)
    refetched = {k for k, n in served_when_complete.items() if server.served[k] != n}
    assert not refetched, f"fetched again although complete: {sorted(refetched)[:5]}"
    assert f"missing on the server: {NOT_ON_SERVER}" in out.decode()
