"""Plain, readable ``--help`` for every command: no Rich markup, and usage lines the way users write them.

Typer's Rich help treats ``[...]`` in help texts as markup and drops it ("WGA data folder ."), and its usage
line writes required arguments as ``{name}``. :func:`plain_help` switches the whole command tree to click's
plain help (the ``[...]`` parts stay) and gives every command :class:`PlainCommand`, whose usage line reads
``imagemachines train [OPTIONS] DATA_DIR``. It runs once, after every part registered its commands, so it also
covers commands added later.
"""

from __future__ import annotations

import typer
from typer.core import TyperCommand


class PlainCommand(TyperCommand):
    """A typer command whose arguments are named in capitals: ``DATA_DIR``, ``[QUERY]``, ``IMAGES...``."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        for param in self.params:
            if param.param_type_name == "argument" and param.metavar is None:
                param.metavar = param.name.upper()
            if isinstance(param.show_default, str):  # click would print "[default: (text)]"
                param.help = f"{param.help or ''}  [default: {param.show_default}]".strip()
                param.show_default = False
            if hasattr(param, "display_type_rich"):
                param.display_type_rich = _repeatable_label(param.display_type_rich)

    def collect_usage_pieces(self, ctx) -> list[str]:
        pieces = [self.options_metavar] if self.options_metavar else []
        for param in self.get_params(ctx):
            if param.param_type_name == "argument":
                name = param.metavar or param.name.upper()
                name = name if param.required else f"[{name}]"
                pieces.append(name + ("..." if param.nargs != 1 else ""))
            else:
                pieces.extend(param.get_usage_pieces(ctx))
        return pieces


def _repeatable_label(display_type):
    """Write a list type as its element, repeated: ``<list[Path]>`` becomes ``<path>...``."""

    def label(ctx) -> str | None:
        text = display_type(ctx)
        if text and text.startswith("<list[") and text.endswith("]>"):
            return f"<{text[6:-2].lower()}>..."
        return text

    return label


def plain_help(app: typer.Typer) -> None:
    """Give *app* and every sub-app plain help, and every command of the default class :class:`PlainCommand`."""
    app.rich_markup_mode = None
    for info in app.registered_commands:
        if info.cls in (None, TyperCommand):
            info.cls = PlainCommand
    for group in app.registered_groups:
        if group.typer_instance is not None:
            plain_help(group.typer_instance)
