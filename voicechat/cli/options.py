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
import re
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import typer

from voicechat.config.spec import Spec
from voicechat.config.table import SPECS, flag_name, kind

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
        help=flag_help(name, spec),
        metavar=metavar(name, spec),
        autocompletion=_completer(name, spec),
        rich_help_panel=spec.group.panel if spec.panel else None,
    )
    annotation = (bool if _switch(name, spec) else bool | None) if kind(name) == "bool" else _FLAG_TYPES[kind(name)]
    return inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=info, annotation=annotation)


_LOOKS_LIKE_A_TAG = re.compile(r"\[(?=[a-z#/@][^\[]*?\])")


def plain(text: str) -> str:
    """Help text as it is: typer reads help as Rich markup, where ``[profile.NAME]`` or
    ``[default: marin]`` would be taken for a style and vanish. A backslash before such a
    bracket (only there: elsewhere it would show) makes it literal."""
    return _LOOKS_LIKE_A_TAG.sub(r"\\[", text)


def metavar(name: str, spec: Spec) -> str:
    """What a flag's value is called in help, in one style (upper case, or the choices):
    nothing for a switch, which takes no value."""
    if spec.metavar is not None:
        return spec.metavar
    what = kind(name)
    if what == "bool":
        return ""
    if spec.choices:  # the help text names them
        return {"backend": "BACKEND", "eagerness": "LEVEL"}.get(name, "MODE")
    if what == "path":
        return "FILE"
    if what == "int":
        return "MS" if name.endswith("_ms") else "HZ" if name.endswith("_rate") else "N"
    if what == "float":
        return "NUMBER"
    return name.rsplit("_", 1)[-1].upper()  # model: MODEL, base_url: URL, input_device: DEVICE


def flag_help(name: str, spec: Spec) -> str:
    """The row's help, then what the flag stands in for when not given: its environment variable
    where that is not ``VOICECHAT_<NAME>`` (the epilog says so once) and its default."""
    from voicechat.config.settings import Settings
    from voicechat.config.table import ENV_KEYS, PROFILE_ENV

    said = []
    env = PROFILE_ENV if name == "profile" else next((v for v, k in ENV_KEYS.items() if k == name), None)
    if env is not None and env != f"VOICECHAT_{name.upper()}":
        said.append(f"env {env}")
    default = Settings.__dataclass_fields__[name].default
    if spec.negatable:
        said.append(f"default: {flag_name(name, default)}")
    elif default is not None and default is not False and default != ():
        said.append(f"default: {default}")
    text = spec.text(spec.help) or ""
    return plain(text + (f" [{'; '.join(said)}]" if said else ""))


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
