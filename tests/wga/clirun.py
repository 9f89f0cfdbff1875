"""Run the real `imagemachines` entry point in-process and capture its exit code and output."""

from __future__ import annotations

import sys

import pytest

from imagemachines.cli import main


def run_cli(capsys, monkeypatch, *args: str) -> tuple[int, str, str]:
    """(exit code, stdout, stderr) of ``imagemachines ARGS`` (user errors exit 2, as for users)."""
    monkeypatch.setattr(sys, "argv", ["imagemachines", *args])
    capsys.readouterr()
    with pytest.raises(SystemExit) as exc:
        main()
    out, err = capsys.readouterr()
    code = exc.value.code
    return (0 if code is None else int(code)), out, err
