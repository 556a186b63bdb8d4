"""The config file: where it is, and its settings and ``[profile.NAME]`` tables, parsed.

Parsing checks the shape (TOML, known keys, profiles as tables, ``[[tools]]``, ``[[mcp]]`` and
``[prices."MODEL"]`` tables, no API key, no literal header secret) and names the file and the
key in every error; value types and ranges are checked by ``resolve``, which knows which values
are used. Pure: the caller reads the file (bounded, a regular file) and hands over its text;
:func:`config_path` is handed the environment.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from voicechat.config.table import FILE_KEYS, kind
from voicechat.errors import ConfigError
from voicechat.pricing import parse_prices
from voicechat.tools.mcp import REFERENCE_RE, parse_mcp
from voicechat.tools.spec import parse_tools


@dataclass(frozen=True, slots=True)
class ConfigFile:
    """A parsed config file: its top-level settings and its ``[profile.NAME]`` tables."""

    path: Path | None
    values: Mapping[str, Any] = field(default_factory=dict)
    profiles: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    default_profile: str | None = None
    has_secrets: bool = False
    """True when some value looks like a credential (a ``…key``/``…token``/``…secret`` entry)."""


def config_path(environ: Mapping[str, str], home: Path) -> Path:
    """``$VOICECHAT_CONFIG_DIR/config.toml``, else the XDG location."""
    if environ.get("VOICECHAT_CONFIG_DIR"):
        return Path(environ["VOICECHAT_CONFIG_DIR"]).expanduser() / "config.toml"
    base = Path(environ["XDG_CONFIG_HOME"]) if environ.get("XDG_CONFIG_HOME") else home / ".config"
    return base / "voicechat" / "config.toml"


def parse_config_file(path: Path, text: str) -> ConfigFile:
    """The settings in a config file; unknown keys and bad TOML are errors naming the file.

    Value types and ranges are checked by ``resolve``, which knows which values are used.
    """
    import tomllib

    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None
    profiles = data.pop("profile", {})
    if not isinstance(profiles, dict) or not all(isinstance(t, dict) for t in profiles.values()):
        raise ConfigError(
            f"{path}: profiles are tables, one per name: [profile.NAME]",
            hint='to pick a profile by default, set default_profile = "NAME" at the top level',
        )
    default = data.pop("default_profile", None)
    if default is not None and not isinstance(default, str):
        raise ConfigError(f"{path}: default_profile must be a profile name, not {default!r}")
    return ConfigFile(
        path=path,
        values=_table(path, data, ""),
        profiles={name: _table(path, table, f"[profile.{name}] ") for name, table in profiles.items()},
        default_profile=default,
        has_secrets=_has_secrets(data) or _has_secrets(profiles),
    )


def _table(path: Path, data: Mapping[str, Any], where: str) -> dict[str, Any]:
    values: dict[str, Any] = {}
    for key, value in data.items():
        if key == "api_key":
            raise ConfigError(
                f"{path}: {where}keep the API key in OPENAI_API_KEY (or AZURE_OPENAI_API_KEY) or .env, "
                "not in the config file"
            )
        if key not in FILE_KEYS:
            close = difflib.get_close_matches(key, [*FILE_KEYS, "default_profile"], n=1)
            hint = f"did you mean {close[0]}?" if close else "see config.example.toml for the keys"
            raise ConfigError(f"{path}: {where}unknown setting {key!r}", hint=hint)
        if key in ("tools", "mcp", "prices"):
            parse = {"tools": parse_tools, "mcp": parse_mcp, "prices": parse_prices}[key]
            value = parse(value, f"{path}: {where.strip()}" if where else str(path))
        if kind(key) == "path" and isinstance(value, str):
            value = Path(value).expanduser()
            if key == "instructions_file" and not value.is_absolute():
                value = path.parent / value  # next to the config file, wherever talk runs
        values[key] = value
    return values


def _has_secrets(data: Any) -> bool:
    if isinstance(data, dict):
        return any(
            (re.search(r"key|token|secret|password", str(k), re.I) and isinstance(v, str) and v
             and not REFERENCE_RE.match(v))  # "env:NAME" names where a secret is; it is none
            or _has_secrets(v)
            for k, v in data.items()
        )
    if isinstance(data, list):
        return any(_has_secrets(v) for v in data)
    return False
