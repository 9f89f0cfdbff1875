"""`imagemachines models | layers | visualize`."""

from __future__ import annotations

import typer


def register(app: typer.Typer) -> None:
    """Add the visualization commands to the main app."""
