"""`imagemachines train | evaluate | top | predict`."""

from __future__ import annotations

import typer


def register(app: typer.Typer) -> None:
    """Add the training and evaluation commands to the main app."""
