"""How a setting is named to the user: in an error, by where its value came from; a key, masked.

A bad value is reported under the name the user wrote: ``--speed`` for a flag (a usage error,
exit 2), ``speed in FILE``, ``speed in [profile.NAME] of FILE`` or ``VOICECHAT_SPEED in the
environment`` for the other sources (a config error, exit 3). Pure.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from voicechat.config.table import flag_name
from voicechat.errors import ConfigError, UsageError, VoicechatError

LAYERS = ("default", "config file", "profile", ".env", "environment", "flag")
"""The sources in precedence order, lowest first."""


def rank(origin: str) -> int:
    """The precedence layer of an origin (``profile work`` -> that of ``profile``)."""
    return max((i for i, layer in enumerate(LAYERS) if origin.startswith(layer)), default=0)


def describe(key: str, origin: str, config_file: Path | None, value: Any = None) -> tuple[str, type[VoicechatError]]:
    """How to name a setting in an error (and the error's kind), by where its value came from."""
    where = str(config_file) if config_file else "the config file"
    if origin == "flag":
        return flag_name(key, value), UsageError
    if origin == "config file":
        return f"{key} in {where}", ConfigError
    if origin.startswith("profile "):
        return f"{key} in [profile.{origin[8:]}] of {where}", ConfigError
    for layer, text in ((".env", ".env"), ("environment", "the environment")):
        if origin.startswith(layer + " ("):
            return f"{origin[len(layer) + 2 : -1]} in {text}", ConfigError
    return key, UsageError


def error(s: Any, key: str, problem: str, hint: str | None = None) -> VoicechatError:
    """The error for ``key`` of the settings ``s``: ``SUBJECT PROBLEM``, of the kind its source calls for."""
    subject, kind = describe(key, s.source(key), s.config_file, getattr(s, key, None))
    return kind(f"{subject} {problem}", hint=hint)


def mask_key(key: str | None) -> str:
    """An API key as ``sk-…abcd``: enough to tell keys apart, never enough to use one."""
    if not key:
        return "(not set)"
    if len(key) < 12:
        return "(set, too short to show)"
    return ("sk-" if key.startswith("sk-") else "") + "…" + key[-4:]
