"""Where settings come from on this machine: the ``.env`` file, the config file, the environment.

The config core resolves pure mappings; this is the I/O that gathers them for a command. Files
are read bounded and only when regular (never a FIFO, never /dev/zero), read errors name the
file and never its content (a ``.env`` holds the key), a file others can read or change is
warned about, and every credential is remembered for scrubbing before anything is checked.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import typer


def dotenv_file() -> tuple[Path | None, dict[str, str | None]]:
    """The ``.env`` file found from the working directory upwards, and its values.

    A file that cannot be read, or is not UTF-8, is a config error naming the file and the
    problem, never its content (it holds the key).
    """
    from dotenv import find_dotenv

    from voicechat.errors import ConfigError
    from voicechat.files import MAX_CONFIG_BYTES, read_limited
    from voicechat.redact import CREDENTIAL_ENV, remember_sources

    found = find_dotenv(usecwd=True)
    if not found:
        return None, {}
    path = Path(found)
    try:
        text = read_limited(path, MAX_CONFIG_BYTES).decode("utf-8")  # a regular file: never blocks
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: not valid UTF-8 at byte {exc.start}",
                          hint="save it as UTF-8 text (it holds settings such as OPENAI_API_KEY=…)") from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read it ({exc.strerror or type(exc).__name__})") from None
    values = _parse_dotenv(path, text)
    remember_sources(values)
    if any(values.get(k) for k in CREDENTIAL_ENV):
        warn_open(path, 0o077, "holds an API key and other users can read it")
    return path, values


def _parse_dotenv(path: Path, text: str) -> dict[str, str | None]:
    """The values of a ``.env`` text; a line python-dotenv cannot parse is one voicechat warning
    naming the file and the line number (never the line: it may hold the key), not its logger's."""
    import io
    import logging

    from dotenv import dotenv_values
    from dotenv.parser import parse_stream

    for binding in parse_stream(io.StringIO(text)):
        if binding.error:
            typer.echo(f"voicechat: warning: {path} line {binding.original.line}: not KEY=VALUE, ignored", err=True)
    quiet = logging.getLogger("dotenv.main")
    was = quiet.disabled
    quiet.disabled = True  # its own "could not parse statement" warnings were said above
    try:
        return dict(dotenv_values(stream=io.StringIO(text)))
    finally:
        quiet.disabled = was


def config_location(explicit: Path | None) -> Path:
    """Where the config file is: ``--config FILE``, else the default location."""
    from voicechat import config

    return explicit.expanduser() if explicit is not None else config.config_path(os.environ, Path.home())


def read_config_file(explicit: Path | None = None, *, warn: bool = True) -> Any:
    """The parsed config file (a ``config.ConfigFile``), or ``None`` when there is none.

    ``explicit`` is ``--config FILE``, which must exist; the default location may be empty.
    """
    from voicechat import config
    from voicechat.errors import ConfigError, UsageError
    from voicechat.files import MAX_CONFIG_BYTES, read_text_limited

    path = config_location(explicit)
    try:
        text = read_text_limited(path, MAX_CONFIG_BYTES)  # a regular file: never a FIFO, never /dev/zero
    except FileNotFoundError:
        if explicit is None:
            return None
        raise UsageError(f"--config {path}: no such file",
                         hint=f"voicechat config init --config {path} writes a starter one") from None
    except UnicodeDecodeError as exc:
        kind = ConfigError if explicit is None else UsageError
        raise kind(f"cannot read the config file {path}: not valid UTF-8 at byte {exc.start}") from None
    except OSError as exc:
        kind = ConfigError if explicit is None else UsageError
        raise kind(f"cannot read the config file {path}: {exc.strerror or type(exc).__name__}") from None
    parsed = config.parse_config_file(path, text)
    if warn:
        # Whoever can change the file can point base_url elsewhere and collect your key.
        warn_open(path, 0o022, "can be changed by other users (it decides where your API key is sent)")
        if parsed.has_secrets:
            warn_open(path, 0o077, "holds a secret and other users can read it")
    return parsed


def warn_open(path: Path, bits: int, problem: str) -> None:
    """A warning on stderr when ``path``'s mode has any of ``bits`` (group/other access)."""
    try:
        mode = path.stat().st_mode & 0o777
    except OSError:
        return
    if os.name == "posix" and mode & bits:
        typer.echo(f"voicechat: warning: {path} {problem} (mode {mode:04o})\n  hint: chmod 600 {path}", err=True)


def read_text(path: Path) -> str:
    """The instructions file: a regular UTF-8 file of at most 1 MB (see `voicechat.files`)."""
    from voicechat.files import MAX_INSTRUCTIONS_BYTES, read_text_limited

    return read_text_limited(path, MAX_INSTRUCTIONS_BYTES)


def resolve_sources(flags: dict[str, Any], config_file: Path | None) -> tuple[Any, Path | None, Any]:
    """Flags + config file + .env + environment -> validated ``Settings``, the ``.env`` path and
    the parsed config file. Every credential is remembered for scrubbing before it is checked."""
    from voicechat import config
    from voicechat.redact import remember_settings, remember_sources

    remember_sources(os.environ, flags)
    found = read_config_file(config_file)
    env_path, dotenv = dotenv_file()
    settings = config.resolve(flags=flags, environ=os.environ, dotenv=dotenv, config_file=found)
    remember_settings(settings)
    _azure_without_flag(settings, dotenv)
    return settings, env_path, found


def _azure_without_flag(settings: Any, dotenv: dict[str, str | None]) -> None:
    """No OpenAI key but an Azure one (environment or ``.env``) and no ``--azure``: the user most
    likely meant Azure, so say that instead of "set OPENAI_API_KEY"."""
    from voicechat.endpoint import needs_key
    from voicechat.errors import AuthError
    from voicechat.redact import AZURE_KEY_ENV, AZURE_URL_ENV

    if settings.api_key or settings.azure or not needs_key(settings):
        return
    if os.environ.get(AZURE_KEY_ENV) or dotenv.get(AZURE_KEY_ENV):
        endpoint = os.environ.get(AZURE_URL_ENV) or dotenv.get(AZURE_URL_ENV)
        raise AuthError(f"no API key: OPENAI_API_KEY is not set, but {AZURE_KEY_ENV} is",
                        hint="add --azure to use Azure OpenAI" + ("" if endpoint else
                             f" (with {AZURE_URL_ENV} or --base-url https://RESOURCE.openai.azure.com)"))


def load_settings(flags: dict[str, Any], config_file: Path | None) -> Any:
    """Flags + config file + .env + environment -> validated ``Settings`` (instructions file read)."""
    from voicechat import config

    return config.load_instructions(resolve_sources(flags, config_file)[0], read_text)
