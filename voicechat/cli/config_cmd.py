"""``voicechat config show | path | init``: the settings as resolved, the file's place, a starter file.

``show`` prints every config-file key (the table's order, the connection first) with its value,
where it came from and, when it has no effect with the others, why; the API key masked, text
escaped and cut short. ``init`` writes ``config.example.toml``'s text, readable only by you.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Any

import typer

from voicechat.cli import sources
from voicechat.cli.boundary import guarded
from voicechat.cli.options import option, plain
from voicechat.cli.root import Command, Group
from voicechat.config.table import SPECS

config_app = typer.Typer(
    name="config",
    cls=Group,
    help=plain("Show, locate or create the config file (defaults and [profile.NAME] tables for talk)."),
    no_args_is_help=True,
)

# --config and --profile as talk has them (the table's rows), as defaults: typer copies them.
CONFIG_OPTION: Any = option("config_file", SPECS["config_file"]).default
PROFILE_OPTION: Any = option("profile", SPECS["profile"]).default
DebugOption = Annotated[bool, typer.Option("--debug", help="Full tracebacks.")]

_SHOWN_FIRST = ("profile", "backend", "base_url", "azure", "model", "api_key")


def shown(key: str, value: Any) -> str:
    """A value as ``config show`` prints it: masked, escaped, on one line, at most 48 characters."""
    from voicechat import config
    from voicechat.escape import escape_control
    from voicechat.redact import mask_url

    if key == "api_key":
        return config.mask_key(value)
    if key == "base_url" and isinstance(value, str):
        value = mask_url(value)  # refused by talk anyway; never shown
    if value is None:
        return "(not set)"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, tuple | list):  # tables such as [[tools]]: their names
        return ", ".join(str(getattr(v, "name", v)) for v in value) or "(none)"
    text = escape_control(str(value).replace("\n", " "))
    return text if len(text) <= 48 else text[:47] + "…"


@config_app.command("show", cls=Command)
@guarded()
def config_show(
    config_file: Path | None = CONFIG_OPTION, profile: str | None = PROFILE_OPTION, debug: DebugOption = False
) -> None:
    """Print every effective setting and where it came from (the API key masked)."""
    from voicechat import config
    from voicechat.redact import scrub

    settings, env_path, found = sources.resolve_sources({"profile": profile}, config_file)
    typer.echo(f"config file: {sources.config_location(config_file)}{'' if found else ' (none)'}")
    typer.echo(f".env: {env_path or '(none)'}")
    unused = config.unused(settings)
    keys = [*_SHOWN_FIRST, *(k for k in config.FILE_KEYS if k not in _SHOWN_FIRST)]
    rows = [(k, shown(k, getattr(settings, k)), settings.source(k), unused.get(k)) for k in keys]
    wide_key = max(len(r[0]) for r in rows)
    wide_value = max(len(r[1]) for r in rows)
    for key, value, source, why in rows:
        line = f"{key:<{wide_key}}  {value:<{wide_value}}  {source}"
        typer.echo(scrub(line + (f"  (unused: {why})" if why else "")))


@config_app.command("path", cls=Command)
@guarded()
def config_path(config_file: Path | None = CONFIG_OPTION) -> None:
    """Print the path of the config file talk reads (and config init writes)."""
    path = sources.config_location(config_file)
    typer.echo(str(path))
    if not path.exists():
        typer.echo("voicechat: no file there yet; voicechat config init writes a starter one", err=True)


@config_app.command("init", cls=Command)
@guarded()
def config_init(
    config_file: Path | None = CONFIG_OPTION,
    force: Annotated[bool, typer.Option("--force", help="Overwrite an existing file.")] = False,
    debug: DebugOption = False,
) -> None:
    """Write a commented starter config file (every key with its default), readable only by you."""
    from voicechat import config
    from voicechat.errors import ConfigError, UsageError
    from voicechat.files import open_output

    path = sources.config_location(config_file)
    if path.exists() and not force:
        raise UsageError(f"{path} already exists", hint="voicechat config init --force overwrites it")
    try:
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd = open_output(path, append=False, mode=0o600)  # a FIFO is refused, not waited on
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            os.fchmod(f.fileno(), 0o600)  # also when --force replaces a more open file
            f.write(config.EXAMPLE_CONFIG)
    except OSError as exc:
        raise ConfigError(f"cannot write {path}: {exc.strerror or exc}") from None
    typer.echo(f"wrote {path}")
