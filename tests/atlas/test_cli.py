"""`imagemachines atlas` on the command line: a small site that resumes, and bad input as a clear UserError."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from imagemachines.cli import app
from imagemachines.errors import UserError

BASE = ["atlas", "mobilenet_v3_small", "--weights", "none", "--device", "cpu", "--out"]


def atlas(*args: str):
    return CliRunner().invoke(app, [*BASE, *args])


def test_cli_writes_a_site_and_resumes(tmp_path):
    args = [str(tmp_path / "site"), "--layers", "features.1", "--channels", "0-1", "--size", "32", "--steps", "2"]
    first = atlas(*args)
    assert first.exit_code == 0, first.output
    assert "2 images rendered, 0 already there" in first.output
    assert (tmp_path / "site" / "mobilenet_v3_small" / "features.1" / "1.html").is_file()
    assert "0 images rendered, 2 already there" in atlas(*args).output


@pytest.mark.parametrize(("args", "message"), [(["--format", "gif"], "webp or png"),
                                               (["--seeds", "a,b"], "Cannot read --seeds"),
                                               (["--layers", "nope"], "no layer 'nope'")])
def test_cli_bad_input_is_a_clear_user_error(tmp_path, args, message):
    result = atlas(str(tmp_path / "site"), *args)
    assert isinstance(result.exception, UserError) and message in str(result.exception)
    assert not (tmp_path / "site").exists()
