"""Crash safety and scale-out: kill -9 and resume == uninterrupted; torchrun with 2 processes == 1 process."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from imagemachines.index import build_index, open_index
from imagemachines.index.store import MANIFEST, chunk_file

from .conftest import assert_same_index, make_collection

ROOT = Path(__file__).resolve().parents[2]
TORCHRUN = Path(sys.executable).with_name("torchrun")


def _done_chunks(out: Path) -> list[int]:
    try:
        conn = sqlite3.connect(f"{(out / 'images.sqlite').as_uri()}?mode=ro", uri=True, timeout=5)
        try:
            return [r[0] for r in conn.execute("SELECT id FROM chunks WHERE state = 'done' ORDER BY id")]
        finally:
            conn.close()
    except sqlite3.Error:
        return []


@pytest.mark.slow
def test_kill_9_then_resume_equals_an_uninterrupted_build(blobnet, tmp_path):
    images = make_collection(tmp_path / "images", n_red=10, n_tint=10, n_grey=10).root
    out = tmp_path / "idx"
    path = [str(ROOT / "src"), str(ROOT), os.environ.get("PYTHONPATH", "")]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(path)}
    proc = subprocess.Popen([sys.executable, "-m", "tests.index.slow_build", str(images), str(out)], cwd=ROOT,
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 120
    while len(_done_chunks(out)) < 3 and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    done = _done_chunks(out)
    assert 3 <= len(done) < 10, proc.stderr.read().decode()[-2000:]  # killed half-way: 10 chunks in all
    assert not (out / MANIFEST).exists()
    stamps = {c: chunk_file(out, c).stat().st_mtime_ns for c in done}
    resumed = open_index(build_index(blobnet, images, out, k=4, chunk_size=3, batch_size=1, progress=False))
    assert {c: chunk_file(out, c).stat().st_mtime_ns for c in done} == stamps  # finished chunks were kept
    assert _done_chunks(out) == list(range(1, 11))
    fresh = open_index(build_index(blobnet, images, tmp_path / "fresh", k=4, chunk_size=3, batch_size=1,
                                   progress=False))
    assert_same_index(resumed, fresh)


@pytest.mark.slow
@pytest.mark.skipif(not TORCHRUN.is_file(), reason="torchrun is not installed beside python")
def test_torchrun_two_processes_equal_one(tmp_path):
    from safetensors.torch import save_file
    from torchvision.models import mobilenet_v3_small

    torch.manual_seed(0)
    weights = tmp_path / "w.safetensors"
    save_file(mobilenet_v3_small().state_dict(), str(weights))
    images = make_collection(tmp_path / "images", n_red=5, n_tint=4, n_grey=4).root
    (images / "broken.jpg").write_bytes(b"garbage")
    args = ["index", "mobilenet_v3_small", str(images), f"--weights={weights}", "--layers=features.3,features.9,logits",
            "--k=3", "--chunk=2", "--batch-size=2", "--device=cpu"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    single = subprocess.run([sys.executable, "-m", "imagemachines", *args, f"--out={tmp_path / 'one'}"],
                            capture_output=True, text=True, timeout=300, env=env, cwd=tmp_path)
    assert single.returncode == 0, single.stderr[-3000:]
    two = subprocess.run([str(TORCHRUN), "--standalone", "--nproc_per_node=2", "-m", "imagemachines", *args,
                          f"--out={tmp_path / 'two'}"], capture_output=True, text=True, timeout=300, env=env,
                         cwd=tmp_path)
    assert two.returncode == 0, two.stderr[-3000:]
    assert two.stdout.count(str(tmp_path / "two")) == 1  # rank 0 alone reports
    a, b = open_index(tmp_path / "one"), open_index(tmp_path / "two")
    assert a.n_images == 13 and a.manifest["n_unreadable"] == 1
    assert_same_index(a, b)
    conn = sqlite3.connect(tmp_path / "two" / "images.sqlite")
    assert conn.execute("SELECT COUNT(*) FROM chunks WHERE state = 'done'").fetchone()[0] == 7
