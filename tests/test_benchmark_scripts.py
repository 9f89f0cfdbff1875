"""The benchmark scripts: ``--help`` only helps, and quick runs leave the published figures alone."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from benchmarks.report import publish

ROOT = Path(__file__).resolve().parents[1]
BENCHES = sorted(p.stem for p in (ROOT / "benchmarks").glob("bench_*.py"))


@pytest.mark.parametrize("bench", BENCHES)
def test_help_only_helps(bench):
    doc = ROOT / "docs" / "benchmarks.md"
    before = doc.read_bytes()
    proc = subprocess.run([sys.executable, "-m", f"benchmarks.{bench}", "--help"], cwd=ROOT, capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("usage:")
    assert doc.read_bytes() == before


def test_a_quick_run_does_not_publish(tmp_path):
    doc = tmp_path / "benchmarks.md"
    doc.write_text("# Benchmarks\n\n<!-- bench:serve-cpu -->\nold figures\n<!-- /bench:serve-cpu -->\n")
    publish("serve-cpu", "smoke figures", quick=True, doc=doc)
    assert "old figures" in doc.read_text() and "smoke" not in doc.read_text()
    publish("serve-cpu", "new figures", quick=False, doc=doc)
    assert "new figures" in doc.read_text() and "old figures" not in doc.read_text()
