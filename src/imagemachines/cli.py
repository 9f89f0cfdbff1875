"""The `imagemachines` command line: one entry point, one sub-module per part of the product.

Each part registers its own commands (``vis/cli.py``, ``wga/cli.py``, ``train/cli.py``, ``serve/cli.py``);
they import torch and friends inside the command functions so that ``--help`` stays instant.
"""

from __future__ import annotations

import sys

import typer
from rich.console import Console

from imagemachines.cli_help import plain_help
from imagemachines.errors import UserError

app = typer.Typer(
    name="imagemachines",
    help="Look inside image-recognition networks: feature visualization, WGA data, training, web interface.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)


def _register() -> None:
    from imagemachines.atlas.cli import register as register_atlas
    from imagemachines.collection_map.cli import register as register_map
    from imagemachines.concepts.cli import register as register_concepts
    from imagemachines.explain.cli import register as register_explain
    from imagemachines.index.cli import register as register_index
    from imagemachines.serve.cli import register as register_serve
    from imagemachines.train.cli import register as register_train
    from imagemachines.vis.cli import register as register_vis
    from imagemachines.wga.cli import app as wga_app

    register_vis(app)
    app.add_typer(wga_app, name="wga", help="Web Gallery of Art: catalog, query, download, subsets.")
    register_train(app)
    register_serve(app)
    register_index(app)
    register_explain(app)
    register_atlas(app)
    register_map(app)
    register_concepts(app)
    plain_help(app)  # last: covers every command registered above


_register()


def main() -> None:
    """Console-script entry point: user errors become one clear message and exit status 2."""
    try:
        app()
    except UserError as exc:
        Console(stderr=True).print(f"[bold red]Error:[/] {exc}", highlight=False, soft_wrap=True)
        sys.exit(2)
    except KeyboardInterrupt:
        Console(stderr=True).print("interrupted")
        sys.exit(130)
