"""Write one benchmark's results into its own section of docs/benchmarks.md (other sections are kept)."""

from __future__ import annotations

import platform
import re
from datetime import date
from pathlib import Path

import torch

DOC = Path(__file__).resolve().parents[1] / "docs" / "benchmarks.md"
HEADER = (
    "# Benchmarks\n\nEach section is written by the script it names (`benchmarks/`); ratios are measured side "
    "by side in one run on the machine described in the section.\n"
)


def machine() -> str:
    """One line describing where the numbers were measured."""
    dev = torch.cuda.get_device_name() if torch.cuda.is_available() else "no GPU"
    return (f"{platform.processor() or platform.machine()}, {torch.get_num_threads()} torch threads, {dev}, "
            f"torch {torch.__version__}, {date.today().isoformat()}")


def publish(name: str, markdown: str, *, quick: bool, doc: Path = DOC) -> None:
    """Write the section, unless this was a quick (smoke) run: its figures must not replace the published ones."""
    if quick:
        print(f"quick run: {doc.name} is left as it was")
        return
    write_section(name, markdown, doc)


def write_section(name: str, markdown: str, doc: Path = DOC) -> None:
    """Replace (or append) the section delimited by ``<!-- bench:NAME -->`` markers."""
    text = doc.read_text() if doc.exists() else HEADER
    block = f"<!-- bench:{name} -->\n{markdown.strip()}\n<!-- /bench:{name} -->"
    pattern = re.compile(rf"<!-- bench:{re.escape(name)} -->.*?<!-- /bench:{re.escape(name)} -->", re.S)
    text = pattern.sub(lambda _m: block, text) if pattern.search(text) else text.rstrip() + "\n\n" + block + "\n"
    doc.parent.mkdir(parents=True, exist_ok=True)
    doc.write_text(text)
