"""Settings: one frozen value resolved once, at the CLI boundary.

The rooms: :mod:`~voicechat.config.settings` is the settings table (every setting declared once:
name, type, default, range or choices, help, panel group, when it applies, its wire field);
:mod:`~voicechat.config.table` derives the keys, environment names and flag names from it;
:mod:`~voicechat.config.file` parses the config file; :mod:`~voicechat.config.resolve` merges
the sources (defaults < config file < profile < ``.env`` < environment < flags);
:mod:`~voicechat.config.validate` and :mod:`~voicechat.config.rules` refuse what cannot work;
:mod:`~voicechat.config.naming` names a setting as the user wrote it; and
:mod:`~voicechat.config.example` writes ``config.example.toml``. Secrets never appear in
``repr``.

Every config-file key is also a ``voicechat talk`` flag (underscores become dashes) and, when its
value is a scalar, the environment variable ``VOICECHAT_<KEY>``; the key and the base URL keep
their usual names (``OPENAI_API_KEY``, ``OPENAI_BASE_URL``; with Azure ``AZURE_OPENAI_API_KEY``
and ``AZURE_OPENAI_ENDPOINT`` take their place when set).

Core: imports none of typer, rich, websockets or sounddevice and never reads the environment.
"""

from __future__ import annotations

from voicechat.config.example import EXAMPLE_CONFIG
from voicechat.config.file import ConfigFile, _has_secrets, config_path, parse_config_file
from voicechat.config.naming import mask_key
from voicechat.config.resolve import load_instructions, resolve
from voicechat.config.rules import RULES, applies
from voicechat.config.settings import (
    BACKENDS,
    ECHO_MODES,
    NOISE_REDUCTION_MODES,
    VAD_MODES,
    Settings,
)
from voicechat.config.spec import Group, Spec
from voicechat.config.table import (
    AZURE_ENV_KEYS,
    ENV_KEYS,
    FILE_KEYS,
    PROFILE_ENV,
    SPECS,
    TALK_ONLY,
    flag_name,
    kind,
)
from voicechat.config.validate import (
    AZURE_HOST_SUFFIXES,
    URL_SCHEMES,
    is_azure_host,
    unused,
    url_problem,
    validate,
)

__all__ = [
    "AZURE_ENV_KEYS", "AZURE_HOST_SUFFIXES", "BACKENDS", "ECHO_MODES", "ENV_KEYS", "EXAMPLE_CONFIG", "FILE_KEYS",
    "NOISE_REDUCTION_MODES", "PROFILE_ENV", "RULES", "SPECS", "TALK_ONLY", "URL_SCHEMES", "VAD_MODES", "ConfigFile",
    "Group", "Settings", "Spec", "_has_secrets", "applies", "config_path", "flag_name", "is_azure_host", "kind",
    "load_instructions", "mask_key", "parse_config_file", "resolve", "unused", "url_problem", "validate",
]  # fmt: skip
