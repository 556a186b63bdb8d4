"""Resolving: every source merged in precedence order into one validated ``Settings``.

Precedence, lowest first: built-in defaults < config file (its top level, then the chosen
``[profile.NAME]`` table) < ``.env`` < environment < flags. :func:`resolve` is pure: it receives
every source as a mapping and never reads ``os.environ`` or the disk itself (the CLI passes them
in; :func:`load_instructions` takes the file reader as an argument). Each value is checked
against its setting's kind as it is merged (environment strings are parsed), and
``Settings.sources`` keeps where each came from, so an error names it as the user wrote it.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

from voicechat.config.file import ConfigFile
from voicechat.config.naming import describe, error, rank
from voicechat.config.settings import Settings
from voicechat.config.table import AZURE_ENV_KEYS, ENV_KEYS, FIELD_NAMES, PROFILE_ENV, kind
from voicechat.config.validate import is_azure_host, validate
from voicechat.protocol.constants import DEFAULT_BASE_URL
from voicechat.redact import OPENAI_KEY_ENV, OPENAI_URL_ENV

Entry = tuple[str, Any, str]
"""A value from a source: (setting, value, origin such as ``environment (VOICECHAT_SPEED)``)."""


def resolve(
    *,
    flags: Mapping[str, Any],
    environ: Mapping[str, str],
    dotenv: Mapping[str, str | None] | None = None,
    file_values: Mapping[str, Any] | None = None,
    config_file: ConfigFile | None = None,
) -> Settings:
    """Merge the sources in precedence order and validate the result.

    ``config_file`` is a parsed file with its profiles; ``file_values`` is the shorthand for a
    bare top level. The profile comes from ``flags["profile"]``, ``VOICECHAT_PROFILE``
    (environment, then ``.env``), or the file's ``default_profile``, in that order.
    """
    env = {k: v for k, v in environ.items() if v and (k in ENV_KEYS or k in AZURE_ENV_KEYS or k == PROFILE_ENV)}
    dot = {k: v for k, v in (dotenv or {}).items() if v}
    cfg = config_file or ConfigFile(path=None, values=dict(file_values or {}))
    profile, profile_origin = _choose_profile(flags, env, dot, cfg)
    layers = (cfg, profile, dot, env, flags)
    values, sources = _merge(_entries(*layers, azure=False), cfg.path)
    explicit_azure = values.get("azure")
    if explicit_azure or (explicit_azure is None and is_azure_host(values.get("base_url", DEFAULT_BASE_URL))):
        values, sources = _merge(_entries(*layers, azure=True), cfg.path)
        if explicit_azure is None:
            values["azure"], sources["azure"] = True, "detected from base_url"
    _one_of(values, sources, ("instructions", "instructions_file"), cfg.path)
    if profile is not None:
        values["profile"], sources["profile"] = profile, profile_origin
    if values.get("mcp"):
        values["mcp"] = _bind_headers(values["mcp"], environ, dotenv or {})
    settings = replace(Settings(), **values, config_file=cfg.path, sources=sources)
    validate(settings)
    return settings


def _entries(cfg: ConfigFile, profile: str | None, dot: Mapping[str, str], env: Mapping[str, str],
             flags: Mapping[str, Any], *, azure: bool) -> list[Entry]:
    """Every value given, lowest precedence first; with Azure, its variables replace the generic ones."""
    found = [(k, v, "config file") for k, v in cfg.values.items()]
    if profile is not None:
        found += [(k, v, f"profile {profile}") for k, v in cfg.profiles[profile].items()]
    for layer, mapping in ((".env", dot), ("environment", env)):
        for var, value in mapping.items():
            key = ENV_KEYS.get(var) or (AZURE_ENV_KEYS.get(var) if azure else None)
            if key is None:
                continue
            azure_var = next((a for a, k in AZURE_ENV_KEYS.items() if k == key), "")
            if azure and var in (OPENAI_KEY_ENV, OPENAI_URL_ENV) and (azure_var in env or azure_var in dot):
                continue  # the Azure variable replaces the generic one
            found.append((key, value, f"{layer} ({var})"))
    found += [(k, v, "flag") for k, v in flags.items() if v is not None and k in FIELD_NAMES and k != "profile"]
    return found


def _merge(found: list[Entry], path: Path | None) -> tuple[dict[str, Any], dict[str, str]]:
    """The values (checked and normalised) and their origins; a later entry wins."""
    values: dict[str, Any] = {}
    sources: dict[str, str] = {}
    for key, value, origin in found:
        if key not in FIELD_NAMES:
            continue
        value = _coerce(key, value, origin, path)
        values[key] = _NORMALIZE[key](value) if key in _NORMALIZE and isinstance(value, str) else value
        sources[key] = origin
    return values, sources


def _choose_profile(
    flags: Mapping[str, Any], env: Mapping[str, str], dot: Mapping[str, str], cfg: ConfigFile
) -> tuple[str | None, str]:
    if flags.get("profile"):
        name, origin = str(flags["profile"]), "flag"
    elif env.get(PROFILE_ENV):
        name, origin = env[PROFILE_ENV], f"environment ({PROFILE_ENV})"
    elif dot.get(PROFILE_ENV):
        name, origin = dot[PROFILE_ENV], f".env ({PROFILE_ENV})"
    elif cfg.default_profile:
        name, origin = cfg.default_profile, "config file"
    else:
        return None, "default"
    if name in cfg.profiles:
        return name, origin
    subject, error_kind = describe("profile", origin, cfg.path)
    if origin == "config file":
        subject = f"default_profile in {cfg.path}"
    if cfg.path is None:
        raise error_kind(f"{subject}: no profile {name!r}: there is no config file", hint="define [profile.NAME] "
                         "tables in the config file (voicechat config init writes a starter one)")
    available = ", ".join(sorted(cfg.profiles)) or "none"
    raise error_kind(f"{subject}: no profile {name!r} in {cfg.path}; available: {available}",
                     hint=f"define it as a [profile.{name}] table in {cfg.path}")


def _one_of(values: dict[str, Any], sources: dict[str, str], keys: tuple[str, str], path: Path | None) -> None:
    """Of two settings that exclude each other, the higher source wins; the same source is an error."""
    a, b = keys
    if values.get(a) is None or values.get(b) is None:
        return
    if rank(sources[a]) == rank(sources[b]):
        first, error_kind = describe(a, sources[a], path)
        second, _ = describe(b, sources[b], path)
        raise error_kind(f"{first} and {second} exclude each other", hint="give the text or the file, not both")
    loser = a if rank(sources[a]) < rank(sources[b]) else b
    del values[loser], sources[loser]


def _bind_headers(servers: Any, environ: Mapping[str, str], dotenv: Mapping[str, str | None]) -> Any:
    """The ``[[mcp]]`` servers with their header values, each named ``env:NAME`` in the file and
    read from the environment, else ``.env`` (like every other value, the environment wins)."""
    if not isinstance(servers, tuple):
        return servers  # not from a config file's [[mcp]] tables: validate refuses it
    return tuple(server.bind(lambda var: environ.get(var) or dotenv.get(var)) for server in servers)


_NORMALIZE: dict[str, Callable[[str], str]] = {
    "language": lambda v: v.strip().lower(),
    "noise_reduction": lambda v: {"near_field": "near", "far_field": "far"}.get(v.strip().lower(), v.strip().lower()),
}
_KIND_WORDS = {"bool": "true or false", "int": "a whole number", "float": "a number", "str": "text",
               "path": "a file path", "tokens": 'a whole number or "inf"'}
_TRUE, _FALSE = ("1", "true", "yes", "on"), ("0", "false", "no", "off")
_BAD = object()


def _coerce(key: str, value: Any, origin: str, config_file: Path | None) -> Any:
    """Check (and for environment strings, parse) one value against its setting's kind."""
    value_kind = kind(key)
    if value_kind is None:
        return value
    from_text = origin.startswith((".env", "environment")) and isinstance(value, str)
    result = _PARSERS[value_kind](value, from_text)
    if result is _BAD:
        subject, error_kind = describe(key, origin, config_file, value)
        raise error_kind(f"{subject} must be {_KIND_WORDS[value_kind]}, not {value!r}")
    return result


def _bool(value: Any, from_text: bool) -> Any:
    if isinstance(value, bool):
        return value
    if from_text and value.strip().lower() in _TRUE + _FALSE:
        return value.strip().lower() in _TRUE
    return _BAD


def _number(whole: bool) -> Callable[[Any, bool], Any]:
    def parse(value: Any, from_text: bool) -> Any:
        if from_text:
            with contextlib.suppress(ValueError):
                value = int(value) if whole else float(value)
        if isinstance(value, int | float) and not isinstance(value, bool) and (not whole or isinstance(value, int)):
            return value
        return _BAD

    return parse


def _tokens(value: Any, from_text: bool) -> Any:
    if isinstance(value, str) and value.strip().lower() in ("inf", "infinity"):
        return "inf"
    if isinstance(value, str) and value.strip().isdigit():
        return int(value)
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    return _BAD


def _path(value: Any, from_text: bool) -> Any:
    if isinstance(value, Path):
        return value
    if isinstance(value, str) and value:
        return Path(value).expanduser()
    return _BAD


_PARSERS: dict[str, Callable[[Any, bool], Any]] = {
    "bool": _bool, "int": _number(whole=True), "float": _number(whole=False), "tokens": _tokens, "path": _path,
    "str": lambda value, from_text: value if isinstance(value, str) else _BAD,
}


# ---- after resolving ----------------------------------------------------------------------


def load_instructions(s: Settings, read: Callable[[Path], str]) -> Settings:
    """Settings with the text of ``instructions_file`` (read by ``read``) as the instructions."""
    if s.instructions_file is None:
        return s
    path = s.instructions_file
    try:
        text = read(path)
    except FileNotFoundError:
        raise error(s, "instructions_file", f"{path}: no such file") from None
    except IsADirectoryError:
        raise error(s, "instructions_file", f"{path}: is a directory, not a text file") from None
    except UnicodeDecodeError:
        raise error(s, "instructions_file", f"{path}: not UTF-8 text") from None
    except OSError as exc:
        raise error(s, "instructions_file", f"{path}: cannot read it ({exc.strerror or exc})") from None
    sources = {**s.sources, "instructions": s.source("instructions_file")}
    return replace(s, instructions=text.strip(), sources=sources)
