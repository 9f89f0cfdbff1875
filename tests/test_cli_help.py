"""Every command's ``--help`` reads cleanly: nothing eaten as markup, usage lines and defaults as users write them.

The test walks the whole command tree, so commands added later are checked too.
"""

from __future__ import annotations

import re

import pytest
import typer
from typer.testing import CliRunner

from imagemachines.cli import app

runner = CliRunner()


def _walk(command, path=()):
    yield path, command
    for name, sub in sorted(getattr(command, "commands", {}).items()):
        yield from _walk(sub, (*path, name))


COMMANDS = list(_walk(typer.main.get_command(app)))


def _squash(text: str) -> str:
    return re.sub(r"\s+", "", text)


def test_the_tree_holds_every_part():
    names = {" ".join(path) for path, _ in COMMANDS}
    assert {"visualize", "serve", "train", "predict", "wga download", "wga subset"} <= names


@pytest.mark.parametrize(("path", "command"), COMMANDS, ids=[" ".join(p) or "imagemachines" for p, _ in COMMANDS])
def test_help_reads_cleanly(path, command):
    result = runner.invoke(app, [*path, "--help"], terminal_width=100)
    assert result.exit_code == 0, result.output
    text = result.output
    usage = text.splitlines()[0]
    assert usage.startswith("Usage:")
    assert not re.search(r"\{\w+\}", usage), usage  # typer's {name} for required arguments
    assert "[[" not in usage and "<bool>" not in text and "<list[" not in text
    assert "(default: (" not in text and "[default: (" not in text
    assert not re.search(r"\w \.(\s|$)", text), text  # "WGA data folder ." : a [...] part eaten as markup
    squashed = _squash(text)
    for param in command.params:  # every help text in full, [...] parts included
        if param.help and not getattr(param, "hidden", False):
            assert _squash(param.help) in squashed, (param.name, param.help)
        if param.param_type_name == "argument":
            name = param.metavar or param.name
            assert name == name.upper(), f"argument {param.name} is shown as {name}"
