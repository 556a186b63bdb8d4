"""The ``voicechat`` Typer application: its name, help, ``--version``, and nothing else.

The commands live in their own modules; :mod:`voicechat.cli` registers them here, in the
order ``voicechat --help`` lists them.
"""

from __future__ import annotations

from typing import Annotated

import typer

from voicechat import __version__

app = typer.Typer(
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
