"""Tables derived from the settings table: keys, environment names, value kinds, flag names.

Nothing here is declared by hand: each name is computed once from the rows of
:class:`~voicechat.config.settings.Settings`, so a new row is a config-file key, an environment
variable and a ``talk`` flag without another edit.
"""

from __future__ import annotations

from dataclasses import fields
from typing import Any

from voicechat.config.settings import Settings
from voicechat.config.spec import Spec, spec_of
from voicechat.redact import AZURE_KEY_ENV, AZURE_URL_ENV

SPECS: dict[str, Spec] = {f.name: spec for f in fields(Settings) if (spec := spec_of(f)) is not None}
"""Every row by name, in table order."""
_TYPES = {f.name: str(f.type) for f in fields(Settings)}
FIELD_NAMES = set(SPECS) - {"config_file"}
"""The settings a source may give (``--config`` picks the file; it is no value of one)."""
TALK_ONLY = {name for name, spec in SPECS.items() if not spec.file} | {"sources"}
"""Settings that are not config-file keys: the secret, per-run files and switches, the profile choice."""
FILE_KEYS = tuple(name for name, spec in SPECS.items() if spec.file)
"""Every config-file key (a profile takes the same keys), in documentation order."""

# The value kind of each setting, from its annotation; a kind not listed here (a structured
# value such as a list of tables) passes through unchecked and has no environment variable.
_KINDS = {
    "bool": "bool",
    "int | None": "int",
    "float | None": "float",
    "str": "str",
    "str | None": "str",
    "Path | None": "path",
    "int | str | None": "tokens",
}


def kind(key: str) -> str | None:
    """``bool``, ``int``, ``float``, ``str``, ``path`` or ``tokens``; None for a structured value."""
    return _KINDS.get(_TYPES[key])


ENV_KEYS: dict[str, str] = {
    **{spec.env: name for name, spec in SPECS.items() if spec.env},
    **{f"VOICECHAT_{name.upper()}": name for name, spec in SPECS.items() if spec.file and not spec.env and kind(name)},
}
"""Environment variables (also read from ``.env``) that map onto settings."""
AZURE_ENV_KEYS = {AZURE_KEY_ENV: "api_key", AZURE_URL_ENV: "base_url"}
"""With Azure, these replace ``OPENAI_API_KEY`` / ``OPENAI_BASE_URL`` when set."""
PROFILE_ENV = "VOICECHAT_PROFILE"


def flag_name(key: str, value: Any = False) -> str:
    """The ``voicechat talk`` flag of a setting (``--no-x`` for a switch turned off)."""
    spec = SPECS.get(key)
    dashed = key.replace("_", "-")
    if spec is not None and spec.negatable and value is not True:
        return f"--no-{dashed}"
    return (spec.flag if spec is not None and spec.flag else None) or f"--{dashed}"
