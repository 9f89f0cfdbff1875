"""Every device that is not there gets the same clear message, never a raw RuntimeError."""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch

from imagemachines.errors import UserError
from imagemachines.models import resolve_device


@pytest.mark.parametrize("device", ["mps", "cuda", "cuda:7", "xpu"])
def test_an_unavailable_device_is_a_user_error(monkeypatch, device):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    if getattr(torch.backends, "mps", None) is not None:
        monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)
    if getattr(torch, "xpu", None) is not None:
        monkeypatch.setattr(torch.xpu, "is_available", lambda: False)
    with pytest.raises(UserError, match="is not available here. Use --device cpu"):
        resolve_device(device)


def test_a_gpu_number_beyond_the_machine_is_a_user_error(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    with pytest.raises(UserError, match="only 1 cuda devices"):
        resolve_device("cuda:3")


def test_nonsense_is_a_user_error_and_cpu_is_fine():
    with pytest.raises(UserError, match="Unknown device 'gpu'"):
        resolve_device("gpu")
    assert resolve_device("cpu").type == "cpu"


def test_the_cli_says_error_once_in_one_style():
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        pytest.skip("this machine has MPS")
    proc = subprocess.run([sys.executable, "-m", "imagemachines", "visualize", "--device", "mps", "--layer",
                           "features.1", "--channel", "0"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert proc.stderr.startswith("Error: Device 'mps' asked for") and "Traceback" not in proc.stderr
    usage = subprocess.run([sys.executable, "-m", "imagemachines", "visualize", "--no-such-option"],
                           capture_output=True, text=True, timeout=120)
    assert usage.returncode == 2 and "Error: No such option" in usage.stderr
