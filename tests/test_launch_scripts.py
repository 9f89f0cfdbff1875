"""run.sh and test.sh set up .venv through scripts/venv.sh: arguments reach the command, stamps avoid reinstalls.

The scripts run on a copy of the repo's launch files whose .venv holds a fake ``python`` (records pip calls)
and a fake ``imagemachines`` (records its arguments): nothing is installed for real.
"""

from __future__ import annotations

import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.skipif(shutil.which("bash") is None or shutil.which("sha256sum") is None,
                                reason="needs bash and sha256sum")

FAKE_PYTHON = """#!/usr/bin/env bash
echo "$*" >> "$(dirname "$0")/../pip.log"
"""
FAKE_TOOL = """#!/usr/bin/env bash
printf '%s\\n' "$(basename "$0")" "$@" > "$(dirname "$0")/../called.log"
"""


def _executable(path: Path, text: str) -> None:
    path.write_text(text)
    path.chmod(path.stat().st_mode | stat.S_IXUSR)


@pytest.fixture
def checkout(tmp_path) -> Path:
    """The launch scripts and pyproject.toml in a temporary checkout with a fake, already created .venv."""
    root = tmp_path / "repo"
    (root / "scripts").mkdir(parents=True)
    for name in ("run.sh", "test.sh", "pyproject.toml", "scripts/venv.sh"):
        shutil.copy2(ROOT / name, root / name)
    bin_dir = root / ".venv" / "bin"
    bin_dir.mkdir(parents=True)
    _executable(bin_dir / "python", FAKE_PYTHON)
    for tool in ("imagemachines", "ruff"):
        _executable(bin_dir / tool, FAKE_TOOL)
    return root


def _run(root: Path, *args: str) -> subprocess.CompletedProcess:
    """``bash ROOT/SCRIPT ARGS``; the script ``test.sh`` stands for its venv step, ``ensure_venv test``
    (the real test.sh may install chromium)."""
    env = {"PATH": "/usr/bin:/bin", "PYTHON": sys.executable, "HOME": str(root)}
    if args[0] == "test.sh":
        assert "\nensure_venv test\n" in (root / "test.sh").read_text()
        command = ["bash", "-c", 'set -euo pipefail; source scripts/venv.sh; ensure_venv test']
    else:
        command = ["bash", str(root / args[0]), *args[1:]]
    return subprocess.run(command, cwd=root, env=env, capture_output=True, text=True, timeout=60)


def _pip_calls(root: Path) -> list[str]:
    log = root / ".venv" / "pip.log"
    return [c for c in log.read_text().splitlines() if " install " in c] if log.exists() else []


def _stamp(root: Path) -> Path:
    return root / ".venv" / ".imagemachines-installed"


def test_run_sh_passes_its_arguments_to_serve_untouched(checkout):
    res = _run(checkout, "run.sh", "inception_v3", "--port", "8767")
    assert res.returncode == 0, res.stderr
    assert (checkout / ".venv" / "called.log").read_text().splitlines() == [
        "imagemachines", "serve", "inception_v3", "--port", "8767"]
    assert _pip_calls(checkout) == [f"-m pip install --quiet --editable {checkout}"]


def test_a_second_start_installs_nothing_and_keeps_the_stamp(checkout):
    assert _run(checkout, "run.sh").returncode == 0
    stamp = _stamp(checkout).read_text()
    calls = _pip_calls(checkout)
    res = _run(checkout, "run.sh", "--port", "8767")
    assert res.returncode == 0, res.stderr
    assert _pip_calls(checkout) == calls and _stamp(checkout).read_text() == stamp


def test_a_venv_with_the_test_extras_serves_run_sh_and_back(checkout):
    _run(checkout, "test.sh")
    assert _pip_calls(checkout) == [f"-m pip install --quiet --editable {checkout}[test]"]
    stamp = _stamp(checkout).read_text()
    assert stamp.split()[1] == "test"
    for script in ("run.sh", "test.sh", "run.sh"):
        res = _run(checkout, script, "--port", "1")
        assert res.returncode == 0, res.stderr
    assert len(_pip_calls(checkout)) == 1 and _stamp(checkout).read_text() == stamp


def test_asking_for_more_extras_installs_once_and_keeps_what_was_there(checkout):
    _run(checkout, "run.sh")
    _run(checkout, "test.sh")
    _run(checkout, "run.sh")
    installs = _pip_calls(checkout)
    assert installs == [f"-m pip install --quiet --editable {checkout}",
                        f"-m pip install --quiet --editable {checkout}[test]"]


def test_a_changed_pyproject_reinstalls_with_the_extras_it_had(checkout):
    _run(checkout, "test.sh")
    with open(checkout / "pyproject.toml", "a") as fh:
        fh.write("\n# changed\n")
    _run(checkout, "run.sh")
    assert _pip_calls(checkout)[-1] == f"-m pip install --quiet --editable {checkout}[test]"
