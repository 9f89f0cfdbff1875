"""The train command line: options reach the trainer, bad input exits 2 with advice."""

from __future__ import annotations

import json
import subprocess
import sys

from typer.testing import CliRunner

from imagemachines.cli import app
from imagemachines.errors import UserError

from .conftest import make_dataset


def test_train_command_then_resume(tmp_path):
    data = make_dataset(tmp_path / "data", {"train": 4, "val": 2}, size=32)
    base = ["train", str(data), "--arch", "resnet18", "--weights", "none", "--image-size", "32",
            "--optimizer", "adamw", "--lr", "0.001", "--batch-size", "12", "--workers", "0",
            "--head", "linear", "--augment", "light", "--balance", "sampler", "--no-keep-epochs",
            "--out", str(tmp_path / "run")]
    result = CliRunner().invoke(app, [*base, "--epochs", "1"])
    assert result.exit_code == 0, result.output
    meta = json.loads((tmp_path / "run" / "run.json").read_text())
    assert meta["head"] == "linear" and meta["config"]["balance"] == "sampler" and meta["config"]["augment"] == "light"
    result = CliRunner().invoke(app, ["train", str(data), "--out", str(tmp_path / "run"), "--epochs", "3",
                                      "--resume"])
    assert result.exit_code == 0, result.output
    meta = json.loads((tmp_path / "run" / "run.json").read_text())
    assert meta["last_epoch"] == 3 and meta["config"]["head"] == "linear"
    # --no-keep-epochs: only the best and the last epoch remain
    kept = sorted(p.name for p in (tmp_path / "run" / "epochs").iterdir())
    assert kept == sorted({f"{meta['best_epoch']:02d}", "03"})
    result = CliRunner().invoke(app, [*base, "--epochs", "1"])
    assert isinstance(result.exception, UserError) and "--resume" in str(result.exception)


def test_bad_input_exits_2_with_advice(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "imagemachines", "train", str(tmp_path / "missing"),
                           "--out", str(tmp_path / "run")], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert "does not exist" in proc.stderr and "wga subset" in proc.stderr
    assert "Traceback" not in proc.stderr
