"""The commands in README.md and docs/*.md name commands and options that exist (docs are followed word for word)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import typer

from imagemachines.cli import app

ROOT = Path(__file__).resolve().parents[1]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
TREE = typer.main.get_command(app)


def command_lines(path: Path):
    """(line number, text) of every `imagemachines …` command in the file's code blocks, continuations joined."""
    in_block, pending, start = False, "", 0
    for n, line in enumerate(path.read_text().splitlines(), 1):
        if line.lstrip().startswith("```"):
            in_block = not in_block
            continue
        if not in_block:
            continue
        text = line.split("  #")[0].split(" # ")[0].rstrip()
        if pending:
            pending += " " + text.strip()
        elif re.match(r"\s*(torchrun .*-m )?imagemachines \w", text):
            pending, start = re.sub(r"^.*?imagemachines ", "imagemachines ", text.strip()), n
        if pending and not pending.endswith("\\"):
            yield start, pending
            pending = ""
        elif pending:
            pending = pending[:-1]


CASES = [(f"{p.name}:{n}", cmd) for p in DOCS for n, cmd in command_lines(p)]


def test_the_docs_hold_commands():
    assert len(CASES) > 40


@pytest.mark.parametrize(("where", "line"), CASES, ids=[c[0] for c in CASES])
def test_documented_commands_and_options_exist(where, line):
    words = line.replace("[", " ").replace("]", " ").replace("|", " ").split()[1:]
    command = TREE
    while words and hasattr(command, "commands"):
        assert words[0] in command.commands, f"{where}: no command {words[0]!r} in {line!r}"
        command = command.commands[words.pop(0)]
    known = {o for p in command.params for o in (*p.opts, *p.secondary_opts)} | {"--help"}
    for word in words:
        if word.startswith("--"):
            option = word.split("=")[0].rstrip(",.…")
            assert option in known, f"{where}: {command.name} has no option {option} ({line!r})"
