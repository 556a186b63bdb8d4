"""Typer options made from the settings table, and commands whose signature is built from them.

Typer reads a command's options from its function signature. ``talk`` takes every setting that
has help in the table and ``doctor`` those marked for it, so their functions are generated:
:func:`table_command` gives a function an ``inspect.Signature`` of keyword parameters whose
defaults are ``typer.Option`` values made from the rows (flag names, ``--x/--no-x`` switches,
short options, metavars, help with the range filled in, help panels, shell completion). The
command receives the flags as keyword arguments; :func:`flags_of` turns them into the mapping
``config.resolve`` takes.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import typer

from voicechat.config.spec import Spec
from voicechat.config.table import SPECS, kind

_FLAG_TYPES: dict[str | None, Any] = {
    "int": int | None, "float": float | None, "str": str | None, "path": Path | None, "tokens": str | None,
}


def _switch(name: str, spec: Spec) -> bool:
    """A plain ``--x`` switch: off unless given (its value reaches the settings only when on)."""
    return kind(name) == "bool" and not spec.negatable


def option(name: str, spec: Spec) -> inspect.Parameter:
    """The keyword parameter (annotated, with a ``typer.Option`` default) of one table row."""
    dashed = name.replace("_", "-")
    decls = [f"--{dashed}/--no-{dashed}" if spec.negatable else spec.flag or f"--{dashed}"]
    if spec.short:
        decls.append(spec.short)
    info = typer.Option(
        False if _switch(name, spec) else None,
        *decls,
        help=spec.text(spec.help),
        metavar=spec.metavar,
        autocompletion=_completer(name, spec),
        rich_help_panel=spec.group.panel if spec.panel else None,
    )
    annotation = (bool if _switch(name, spec) else bool | None) if kind(name) == "bool" else _FLAG_TYPES[kind(name)]
    return inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=info, annotation=annotation)


def table_command(
    body: Callable[..., None], keep: Callable[[Spec], bool], extra: Sequence[inspect.Parameter] = ()
) -> Callable[..., None]:
    """``body`` (called with keyword arguments) as a command taking the rows ``keep`` selects as
    flags, in table order, then ``extra``. Its name and docstring are ``body``'s."""
    params = [option(name, spec) for name, spec in SPECS.items() if spec.help is not None and keep(spec)]
    params += extra

    def command(**given: Any) -> None:
        body(**given)

    command.__name__ = command.__qualname__ = body.__name__
    command.__doc__ = body.__doc__
    command.__module__ = body.__module__
    command.__signature__ = inspect.Signature(params)  # type: ignore[attr-defined]
    command.__annotations__ = {p.name: p.annotation for p in params}
    return command


def flags_of(given: dict[str, Any]) -> dict[str, Any]:
    """The flags a command received, as ``config.resolve`` takes them: a switch left off is no flag."""
    return {k: (v or None) if k in SPECS and _switch(k, SPECS[k]) else v for k, v in given.items()}


def extra_option(name: str, annotation: Any, default: Any, *decls: str, **info: Any) -> inspect.Parameter:
    """A keyword parameter for a flag of one command only (``doctor --seconds``)."""
    return inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, annotation=annotation,
                             default=typer.Option(default, *decls, **info))


def _completer(name: str, spec: Spec) -> Callable[..., list[str]] | None:
    """Shell completion: the row's choices or suggestions, or the config file's profiles."""
    if name == "profile":
        return _complete_profile
    values = spec.choices or spec.suggest
    if not values:
        return None

    def complete(incomplete: str) -> list[str]:
        return [v for v in values if v.startswith(incomplete)]

    return complete


def _complete_profile(ctx: typer.Context, incomplete: str) -> list[str]:
    from voicechat.cli.sources import read_config_file
    from voicechat.errors import VoicechatError

    try:
        found = read_config_file(ctx.params.get("config_file"), warn=False)
    except VoicechatError:
        return []
    return [name for name in sorted(found.profiles if found else ()) if name.startswith(incomplete)]
