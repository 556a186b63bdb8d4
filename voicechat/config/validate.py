"""Validation: impossible values are refused before any connection is made.

The table's columns are checked for every row (choices, ranges, positive numbers, where a
setting applies); what no column can say (the key's shape, a URL, a voice id, a language code,
files that must be regular, Azure without an endpoint, ``--max-cost`` on a model with no
price) is checked here by name. A bad flag is a usage error (exit 2) naming the flag; a bad
value from the config file, ``.env`` or the environment is a config error (exit 3) naming the
key and where it is. A flag that would have
no effect (``--eagerness`` with server VAD) is an error too; the same value from the config
file or environment is kept and shown as unused by ``config show``. Pure, but for the files:
a path is checked with ``stat`` so that a FIFO never blocks ``talk`` later.
"""

from __future__ import annotations

import math
import re
from typing import Any
from urllib.parse import urlsplit

from voicechat.config.naming import error
from voicechat.config.rules import RULES
from voicechat.config.table import SPECS, kind
from voicechat.files import MAX_TRANSCRIPT_BYTES, MAX_WAV_BYTES, check_output, regular_problem
from voicechat.pricing import price_for
from voicechat.protocol.constants import DEFAULT_BASE_URL, VOICES
from voicechat.redact import KEY_HINT, has_userinfo, key_problem

AZURE_HOST_SUFFIXES = (".openai.azure.com", ".cognitiveservices.azure.com")
URL_SCHEMES = ("https", "wss", "http", "ws")
_LANGUAGE = re.compile(r"[a-z]{2}")


def is_azure_host(base_url: str) -> bool:
    try:
        host = (urlsplit(base_url.strip()).hostname or "").lower()
    except ValueError:  # not a URL at all: `validate` says so
        return False
    return host.endswith(AZURE_HOST_SUFFIXES)


def url_problem(url: str) -> str | None:
    """What is wrong with a base URL (never quoting a password in it); None if nothing is."""
    try:
        parts = urlsplit(url.strip())
        port = parts.port  # ValueError when out of range or not a number
        host = parts.hostname
    except ValueError as exc:
        return f"is not a valid URL ({str(exc).rstrip('.')})"
    if parts.scheme.lower() not in URL_SCHEMES:
        return "must start with https:// (or http:// for a server on this machine)"
    if not host:
        return "has no host name"
    if port == 0:
        return "has port 0, which cannot be connected to"
    return None


def unused(s: Any) -> dict[str, str]:
    """Settings given a value that has no effect with the others, and why (for ``config show``)."""
    found: dict[str, str] = {}
    for key, spec in SPECS.items():
        if spec.applies is None or key not in s.sources or getattr(s, key) in (None, ""):
            continue
        rule = RULES[spec.applies]
        if not rule.active(s):
            found[key] = rule.why(s)
    return found


def validate(s: Any) -> None:
    """Reject impossible values before any connection is made (see the module docstring)."""
    _connection(s)
    for key in SPECS:
        _columns(s, key)
    if s.voice not in VOICES and not s.voice.startswith("voice_"):
        raise error(s, "voice", f"{s.voice!r} is not a known voice",
                    hint=f"use one of {', '.join(VOICES)}, or a custom voice id voice_…")
    if s.language is not None and not _LANGUAGE.fullmatch(s.language):
        raise error(s, "language", f"must be a two-letter ISO-639-1 code such as en, de or ja, not {s.language!r}")
    if not s.model.strip():
        raise error(s, "model", "must not be empty")
    if s.max_cost is not None and price_for(s.model, s.prices) is None:
        raise error(s, "max_cost", f"cannot be held: no price is known for model {s.model!r}",
                    hint=f'give it one in the config file: [prices."{s.model}"] (see config.example.toml), '
                    "or use --max-minutes")
    if s.transcribe and s.transcribe_model is not None and s.transcribe_model != s.transcribe_model.strip():
        raise error(s, "transcribe_model", f"must be a model name, not {s.transcribe_model!r}")
    _files(s)
    if s.azure and s.backend == "openai" and urlsplit(s.base_url).hostname == urlsplit(DEFAULT_BASE_URL).hostname:
        raise error(s, "azure", "needs your Azure resource endpoint",
                    hint="pass --base-url https://RESOURCE.openai.azure.com or set AZURE_OPENAI_ENDPOINT")
    for key, why in unused(s).items():
        if s.source(key) == "flag":
            raise error(s, key, f"has no effect: {why}", hint=SPECS[key].hint)


def _connection(s: Any) -> None:
    """The key, and a base URL that is a URL and carries no credentials."""
    if s.api_key is not None and (problem := key_problem(s.api_key)):
        raise error(s, "api_key", problem, hint=KEY_HINT)  # never the key, nor any part of it
    if has_userinfo(s.base_url):
        # websockets would send it as a second (Basic) Authorization header, and it would be
        # shown wherever the URL is: never the user name or password itself.
        raise error(s, "base_url", "must not hold a user name or password (user:password@host): voicechat "
                    "authenticates with the API key only", hint="remove the user:password@ part of the URL")
    if s.backend == "openai" and (problem := url_problem(s.base_url)):
        raise error(s, "base_url", problem, hint="expected something like https://api.openai.com/v1")


def _columns(s: Any, key: str) -> None:
    """What the table says of one value: one of its choices, within its range, positive."""
    spec, value = SPECS[key], getattr(s, key)
    if value is None:
        return
    if spec.choices and value not in spec.choices:
        raise error(s, key, f"must be one of {', '.join(spec.choices)}, not {value!r}")
    if spec.positive and not (math.isfinite(value) and value > 0):
        raise error(s, key, f"must be a positive number, not {value!r}")
    if spec.range is not None and value != "inf":
        lo, hi = spec.range
        if not (isinstance(value, int | float) and math.isfinite(value) and lo <= value <= hi):
            also = ' or "inf"' if kind(key) == "tokens" else ""
            raise error(s, key, f"must be between {lo:g} and {hi:g}{also}, not {value!r}")


TRANSCRIPT_FORMATS = (".txt", ".md", ".jsonl")
"""The transcript formats, by file suffix (a name without one is plain text, as .txt)."""


def transcript_format_problem(path: Any) -> str | None:
    """Why ``path`` cannot name a transcript (an unknown suffix such as .html), or None."""
    suffix = path.suffix.lower()
    if suffix and suffix not in TRANSCRIPT_FORMATS:
        return f"{path}: a transcript is written as .txt, .md or .jsonl, not {suffix}"
    return None


def _files(s: Any) -> None:
    """Files read whole are regular files of a bounded size; files written are regular files (or
    /dev/null): a FIFO would block the open, /dev/zero would never end (see voicechat.files)."""
    if s.record is not None and s.record.suffix.lower() != ".wav":
        raise error(s, "record", f"{s.record}: the recording is a WAV file; name it FILE.wav")
    if s.transcript is not None and (problem := transcript_format_problem(s.transcript)):
        raise error(s, "transcript", problem, hint="name it chat.txt, chat.md or chat.jsonl")
    for key, limit in (("input_file", MAX_WAV_BYTES), ("resume", MAX_TRANSCRIPT_BYTES)):
        path = getattr(s, key)
        if path is not None and (problem := regular_problem(path, limit)):
            raise error(s, key, f"{path}: {problem}")
    for key in ("transcript", "record", "output_file", "log_events"):
        path = getattr(s, key)
        try:
            if path is not None:
                check_output(path)
        except OSError as exc:
            raise error(s, key, f"{path}: {exc.strerror}", hint="name a regular file") from None
