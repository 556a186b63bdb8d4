"""The ``voicechat`` Typer application: its name, help, ``--version``, and nothing else.

The commands live in their own modules; :mod:`voicechat.cli` registers them here, in the
order ``voicechat --help`` lists them.
"""

from __future__ import annotations

from typing import Annotated, Any

import typer
from typer.core import TyperCommand, TyperGroup

from voicechat import __version__


class _QuietHelpSwitch:
    """A switch takes no value: typer's help gives one (``--help``, ``--debug``) a ``<bool>``
    metavar unless it has one of its own, so every switch gets an empty one."""

    def get_params(self, ctx: Any) -> Any:
        params = super().get_params(ctx)  # type: ignore[misc]
        for param in params:
            if getattr(param, "is_flag", False) and param.metavar is None:
                param.metavar = ""
        return params


class Command(_QuietHelpSwitch, TyperCommand):
    """Every voicechat command (``app.command(cls=Command)``)."""


class Group(_QuietHelpSwitch, TyperGroup):
    """``voicechat`` and ``voicechat config``."""


app = typer.Typer(
    cls=Group,
    name="voicechat",
    help="Live, interruptible voice conversations with realtime speech models, in your terminal.",
    no_args_is_help=True,
    add_completion=True,
    pretty_exceptions_enable=False,
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"voicechat {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Show the version and exit.")
    ] = False,
) -> None:
    """Talk to a realtime speech model; interrupt it by talking over it."""
