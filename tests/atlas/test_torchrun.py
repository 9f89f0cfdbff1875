"""Scale-out: `torchrun --nproc_per_node=2 -m imagemachines atlas` (gloo on CPU) writes exactly the site a
single process writes."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

TORCHRUN = Path(sys.executable).with_name("torchrun")


def tree(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.mark.slow
@pytest.mark.skipif(not TORCHRUN.is_file(), reason="torchrun is not installed beside python")
def test_two_gloo_processes_write_the_same_site_as_one(tmp_path):
    import torchvision
    from safetensors.torch import save_file

    torch.manual_seed(0)
    net = torchvision.models.get_model("mobilenet_v3_small", weights=None)
    weights = tmp_path / "small.safetensors"
    save_file({k: v.contiguous() for k, v in net.state_dict().items()}, weights)
    args = ["-m", "imagemachines", "atlas", "mobilenet_v3_small", f"--weights={weights}", "--layers",
            "features.1,features.3", "--channels", "0-4", "--size", "32", "--steps", "2", "--format", "png",
            "--batch", "2", "--device", "cpu"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    one = subprocess.run([sys.executable, *args, "--out", str(tmp_path / "one")], capture_output=True, text=True,
                         timeout=240, env=env)
    assert one.returncode == 0, one.stderr[-3000:]
    two = subprocess.run([str(TORCHRUN), "--standalone", "--nproc_per_node=2", *args, "--out",
                          str(tmp_path / "two")], capture_output=True, text=True, timeout=240, env=env)
    assert two.returncode == 0, two.stderr[-3000:]
    a, b = tree(tmp_path / "one"), tree(tmp_path / "two")
    assert len([k for k in a if k.endswith(".png")]) == 2 * 5
    assert a.keys() == b.keys()
    assert [k for k in a if a[k] != b[k]] == []
    assert two.stdout.count("images rendered") == 1  # rank 0 alone reports
