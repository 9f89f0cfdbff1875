"""Scale-out: `torchrun --nproc_per_node=2 -m imagemachines concepts` (gloo on CPU) shares the crop pass between
the processes and writes exactly the study one process writes with the same thread count."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from tests.concepts.conftest import make_paintings

TORCHRUN = Path(sys.executable).with_name("torchrun")


def _study(folder: Path) -> dict:
    doc = json.loads((folder / "concepts.json").read_text())
    doc.pop("timings")
    doc["settings"].pop("cache")
    return doc


@pytest.mark.slow
@pytest.mark.skipif(not TORCHRUN.is_file(), reason="torchrun is not installed beside python")
def test_two_gloo_processes_write_the_same_study_as_one(tmp_path):
    import torchvision
    from safetensors.torch import load_file, save_file

    torch.manual_seed(0)
    net = torchvision.models.get_model("mobilenet_v2", weights=None, num_classes=2)
    weights = tmp_path / "mnv2.safetensors"
    save_file({k: v.contiguous() for k, v in net.state_dict().items()}, weights)
    painted = make_paintings(tmp_path / "paintings", n=3)
    for old, new in (("red", "0"), ("blue", "1")):  # a weights file has no class names: classes are numbers
        (painted.root / old).rename(painted.root / new)
    args = ["-m", "imagemachines", "concepts", "mobilenet_v2", str(painted.root), f"--weights={weights}",
            "--classes", "all", "--concepts", "3", "--no-render", "--batch-size", "1", "--design", "8",
            "--draws", "2", "--device", "cpu"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    one = subprocess.run([sys.executable, *args, "--out", str(tmp_path / "one"), "--cache", str(tmp_path / "c1")],
                         capture_output=True, text=True, timeout=600, env=env)
    assert one.returncode == 0, one.stderr[-3000:]
    two = subprocess.run([str(TORCHRUN), "--standalone", "--nproc_per_node=2", *args, "--out", str(tmp_path / "two"),
                          "--cache", str(tmp_path / "c2")], capture_output=True, text=True, timeout=600, env=env)
    assert two.returncode == 0, two.stderr[-3000:]
    a, b = _study(tmp_path / "one"), _study(tmp_path / "two")
    assert set(a["classes"]) == {"0", "1"} and a["classes"]["0"]["n_images"] == 3
    assert a == b
    ta, tb = (load_file(str(tmp_path / d / "concepts.safetensors")) for d in ("one", "two"))
    assert ta.keys() == tb.keys() and all(ta[k].equal(tb[k]) for k in ta)  # bit for bit
    assert two.stdout.count("concepts.html") == 1  # rank 0 alone writes and reports
    assert "2 paintings went through" not in two.stderr  # both ranks' shares are counted: 6 in all
    assert "6 paintings went through the network" in two.stderr and "6 paintings went through" in one.stderr
