"""Scale-out: torchrun with two CPU processes (gloo) trains one model; rank 0 alone writes and reports."""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from .conftest import FAST, make_dataset

TORCHRUN = Path(sys.executable).with_name("torchrun")


@pytest.mark.slow
@pytest.mark.skipif(not TORCHRUN.is_file(), reason="torchrun is not installed beside python")
def test_torchrun_two_cpu_processes(tmp_path):
    data = make_dataset(tmp_path / "data", {"train": 8, "val": 5}, size=32)
    for rank in (0, 1):
        (tmp_path / f"rank{rank}").mkdir()
    args = [f"--{k.replace('_', '-')}={v}" for k, v in FAST.items()]
    train = [sys.executable, "-m", "imagemachines", "train", str(data), *args, "--epochs=2", "--device=cpu",
             "--out=run"]
    # each process runs `python -m imagemachines train … --out run` in its own folder (rank0/, rank1/), so
    # anything rank 1 wrote would show up in rank1/
    script = f'cd "{tmp_path}/rank$RANK" && exec {shlex.join(train)}'
    cmd = [str(TORCHRUN), "--standalone", "--nproc_per_node=2", "--no-python", "sh", "-c", script]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=240, env=env, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    run = tmp_path / "rank0" / "run"
    meta = json.loads((run / "run.json").read_text())
    assert meta["world_size"] == 2 and meta["status"] == "finished"
    # every image trained once per epoch (12 per process); validation split 8 + 7 between the ranks
    assert [(r["train_images"], r["val_images"]) for r in meta["epochs"]] == [(24, 15), (24, 15)]
    assert sorted(p.name for p in run.iterdir()) == [
        "curves.png", "epochs", "metrics.csv", "metrics.json", "run.json", "skipped.json"]
    assert list((tmp_path / "rank1").iterdir()) == []  # rank 1 wrote nothing
    out = proc.stderr  # and reported nothing: one announcement, one line per epoch
    assert out.count("Training resnet18") == 1 and out.count("epoch 2/2: train loss") == 1
