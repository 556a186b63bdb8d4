"""Settings: one frozen value resolved once, at the CLI boundary.

Precedence, lowest first: built-in defaults < config file (its top level, then the chosen
``[profile.NAME]`` table) < ``.env`` < environment < flags. ``resolve`` is pure: it receives every
source as a mapping and never reads ``os.environ`` or the disk itself (the CLI passes them in;
``load_instructions`` takes the file reader as an argument). Secrets never appear in ``repr``.

``Settings.sources`` keeps where each value came from, so a bad value is reported under the name
the user wrote: ``--speed`` for a flag (a usage error, exit 2), ``speed in FILE`` or
``VOICECHAT_SPEED in the environment`` for the other sources (a config error, exit 3).

Every config-file key is also a ``voicechat talk`` flag (underscores become dashes) and, when its
value is a scalar, the environment variable ``VOICECHAT_<KEY>``; the key and the base URL keep
their usual names (``OPENAI_API_KEY``, ``OPENAI_BASE_URL``; with Azure ``AZURE_OPENAI_API_KEY``
and ``AZURE_OPENAI_ENDPOINT`` take their place when set).
"""

from __future__ import annotations

import contextlib
import difflib
import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from voicechat.errors import ConfigError, UsageError, VoicechatError
from voicechat.files import MAX_TRANSCRIPT_BYTES, MAX_WAV_BYTES, check_output, regular_problem
from voicechat.protocol.constants import (
    DEFAULT_BASE_URL,
    DEFAULT_MODEL,
    DEFAULT_TRANSCRIBE_MODEL,
    DEFAULT_VOICE,
    EAGERNESS,
    VOICES,
)
from voicechat.protocol.session_config import (
    IDLE_TIMEOUT_RANGE_MS,
    MAX_OUTPUT_TOKENS,
    SPEED_RANGE,
    SessionConfig,
    TurnDetection,
)
from voicechat.redact import (
    AZURE_KEY_ENV,
    AZURE_URL_ENV,
    KEY_HINT,
    OPENAI_KEY_ENV,
    OPENAI_URL_ENV,
    has_userinfo,
    key_problem,
)
from voicechat.tools import ToolSpec, available_tools, parse_tools

BACKENDS = ("openai", "local")
VAD_MODES = ("server", "semantic", "none")
ECHO_MODES = ("auto", "aec", "gate", "half-duplex", "off")
NOISE_REDUCTION_MODES = ("near", "far", "off")
_NOISE_WIRE = {"near": "near_field", "far": "far_field"}
AZURE_HOST_SUFFIXES = (".openai.azure.com", ".cognitiveservices.azure.com")
_LANGUAGE = re.compile(r"[a-z]{2}")


@dataclass(frozen=True, slots=True)
class Settings:
    backend: str = "openai"
    base_url: str = DEFAULT_BASE_URL
    azure: bool = False
    model: str = DEFAULT_MODEL
    api_key: str | None = field(default=None, repr=False)
    voice: str = DEFAULT_VOICE
    speed: float | None = None
    instructions: str | None = None
    instructions_file: Path | None = None
    max_output_tokens: int | str | None = None
    text_only: bool = False
    vad: str = "server"
    vad_threshold: float | None = None
    prefix_padding_ms: int | None = None
    silence_duration_ms: int | None = None
    idle_timeout_ms: int | None = None
    eagerness: str | None = None
    interrupt: bool = True
    auto_response: bool = True
    noise_reduction: str = "off"
    echo: str = "auto"
    transcribe: bool = True
    transcribe_model: str | None = DEFAULT_TRANSCRIBE_MODEL
    language: str | None = None
    input_device: str | None = None
    output_device: str | None = None
    sample_rate: int | None = None
    input_file: Path | None = None
    output_file: Path | None = None
    transcript: Path | None = None
    record: Path | None = None
    log_events: Path | None = None  # debugging: the raw event stream, audio and secrets elided
    max_cost: float | None = None  # USD: stop once the estimated cost reaches it
    max_minutes: float | None = None  # stop once the conversation is this long (wall time)
    resume: Path | None = None  # --resume: a JSONL transcript whose turns the conversation continues
    fast: bool = False
    debug: bool = False
    quiet: bool = False
    tools: tuple[ToolSpec, ...] = ()  # [[tools]] tables, validated by voicechat.tools
    builtin_tools: bool = True  # also offer get_current_time
    profile: str | None = None
    config_file: Path | None = field(default=None, compare=False)
    sources: Mapping[str, str] = field(default_factory=dict, compare=False, repr=False)

    @property
    def transcribing(self) -> bool:
        return self.transcribe and bool(self.transcribe_model)

    def session_config(self) -> SessionConfig:
        turn: TurnDetection | None = None
        if self.vad != "none":
            server = self.vad == "server"
            turn = TurnDetection(
                type="server_vad" if server else "semantic_vad",
                threshold=self.vad_threshold,
                prefix_padding_ms=self.prefix_padding_ms,
                silence_duration_ms=self.silence_duration_ms,
                idle_timeout_ms=self.idle_timeout_ms if server else None,
                eagerness=None if server else self.eagerness,
                create_response=self.auto_response,
                interrupt_response=self.interrupt,
            )
        return SessionConfig(
            instructions=self.instructions,
            voice=self.voice,
            output_modalities=("text",) if self.text_only else ("audio",),
            turn_detection=turn,
            transcribe_model=self.transcribe_model if self.transcribing else None,
            language=self.language if self.transcribing else None,
            noise_reduction=_NOISE_WIRE.get(self.noise_reduction),
            speed=self.speed,
            max_output_tokens=self.max_output_tokens,
            tools=tuple(t.definition() for t in available_tools(self.tools, self.builtin_tools)),
        )

    @property
    def turn_silence_ms(self) -> int:
        """How long the server waits in silence before it ends a turn (for the quiet tail)."""
        if self.vad == "semantic":
            return 2000
        return self.silence_duration_ms if self.silence_duration_ms is not None else 500

    def source(self, key: str) -> str:
        """Where ``key`` came from: default, config file, profile NAME, .env (VAR), environment (VAR), flag."""
        return self.sources.get(key, "default")


_FIELDS = {f.name: f for f in fields(Settings)}
_FIELD_NAMES = set(_FIELDS) - {"sources", "config_file"}
TALK_ONLY = {"api_key", "input_file", "output_file", "log_events", "resume", "fast", "debug", "profile",
             "config_file", "sources"}
"""Settings that are not config-file keys: the secret, per-run files and switches, the profile choice."""
FILE_KEYS = tuple(name for name in _FIELDS if name not in TALK_ONLY)
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


def _kind(key: str) -> str | None:
    return _KINDS.get(str(_FIELDS[key].type))


ENV_KEYS: dict[str, str] = {
    OPENAI_KEY_ENV: "api_key",
    OPENAI_URL_ENV: "base_url",
    **{f"VOICECHAT_{key.upper()}": key for key in FILE_KEYS if key != "base_url" and _kind(key)},
}
"""Environment variables (also read from ``.env``) that map onto settings."""
AZURE_ENV_KEYS = {AZURE_KEY_ENV: "api_key", AZURE_URL_ENV: "base_url"}
"""With Azure, these replace ``OPENAI_API_KEY`` / ``OPENAI_BASE_URL`` when set."""
PROFILE_ENV = "VOICECHAT_PROFILE"

_FLAG_NAMES = {"transcribe": "--no-transcribe", "interrupt": "--no-interrupt", "auto_response": "--no-auto-response"}
_LAYERS = ("default", "config file", "profile", ".env", "environment", "flag")


def flag_name(key: str, value: Any = False) -> str:
    """The ``voicechat talk`` flag of a setting (``--no-x`` for a switched-off default-on one)."""
    if key in _FLAG_NAMES and value is not True:
        return _FLAG_NAMES[key]
    return "--" + key.replace("_", "-")


def _rank(origin: str) -> int:
    """The precedence layer of an origin (``profile work`` -> that of ``profile``)."""
    return max((i for i, layer in enumerate(_LAYERS) if origin.startswith(layer)), default=0)


def _describe(key: str, origin: str, config_file: Path | None, value: Any = None) -> tuple[str, type[VoicechatError]]:
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


def _error(s: Settings, key: str, problem: str, hint: str | None = None) -> VoicechatError:
    subject, kind = _describe(key, s.source(key), s.config_file, getattr(s, key, None))
    return kind(f"{subject} {problem}", hint=hint)


# ---- the config file ----------------------------------------------------------------------


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
        if key == "tools":
            value = parse_tools(value, f"{path}: {where.strip()}" if where else str(path))
        if _kind(key) == "path" and isinstance(value, str):
            value = Path(value).expanduser()
            if key == "instructions_file" and not value.is_absolute():
                value = path.parent / value  # next to the config file, wherever talk runs
        values[key] = value
    return values


def _has_secrets(data: Any) -> bool:
    if isinstance(data, dict):
        return any(
            (re.search(r"key|token|secret|password", str(k), re.I) and isinstance(v, str) and v)
            or _has_secrets(v)
            for k, v in data.items()
        )
    if isinstance(data, list):
        return any(_has_secrets(v) for v in data)
    return False


# ---- resolving ----------------------------------------------------------------------------


def is_azure_host(base_url: str) -> bool:
    try:
        host = (urlsplit(base_url.strip()).hostname or "").lower()
    except ValueError:  # not a URL at all: `validate` says so
        return False
    return host.endswith(AZURE_HOST_SUFFIXES)


URL_SCHEMES = ("https", "wss", "http", "ws")


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

    def entries(azure: bool) -> list[tuple[str, Any, str]]:
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
        found += [(k, v, "flag") for k, v in flags.items() if v is not None and k in _FIELD_NAMES and k != "profile"]
        return found

    def merge(found: list[tuple[str, Any, str]]) -> tuple[dict[str, Any], dict[str, str]]:
        values: dict[str, Any] = {}
        sources: dict[str, str] = {}
        for key, value, origin in found:
            if key not in _FIELD_NAMES:
                continue
            value = _coerce(key, value, origin, cfg.path)
            values[key] = _NORMALIZE[key](value) if key in _NORMALIZE and isinstance(value, str) else value
            sources[key] = origin
        return values, sources

    values, sources = merge(entries(azure=False))
    explicit_azure = values.get("azure")
    if explicit_azure or (explicit_azure is None and is_azure_host(values.get("base_url", DEFAULT_BASE_URL))):
        values, sources = merge(entries(azure=True))
        if explicit_azure is None:
            values["azure"], sources["azure"] = True, "detected from base_url"
    _one_of(values, sources, ("instructions", "instructions_file"), cfg.path)
    if profile is not None:
        values["profile"], sources["profile"] = profile, profile_origin
    settings = replace(Settings(), **values, config_file=cfg.path, sources=sources)
    validate(settings)
    return settings


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
    subject, kind = _describe("profile", origin, cfg.path)
    if origin == "config file":
        subject = f"default_profile in {cfg.path}"
    if cfg.path is None:
        raise kind(f"{subject}: no profile {name!r}: there is no config file", hint="define [profile.NAME] tables "
                   "in the config file (voicechat config init writes a starter one)")
    available = ", ".join(sorted(cfg.profiles)) or "none"
    raise kind(f"{subject}: no profile {name!r} in {cfg.path}; available: {available}",
               hint=f"define it as a [profile.{name}] table in {cfg.path}")


def _one_of(values: dict[str, Any], sources: dict[str, str], keys: tuple[str, str], path: Path | None) -> None:
    """Of two settings that exclude each other, the higher source wins; the same source is an error."""
    a, b = keys
    if values.get(a) is None or values.get(b) is None:
        return
    if _rank(sources[a]) == _rank(sources[b]):
        first, kind = _describe(a, sources[a], path)
        second, _ = _describe(b, sources[b], path)
        raise kind(f"{first} and {second} exclude each other", hint="give the text or the file, not both")
    loser = a if _rank(sources[a]) < _rank(sources[b]) else b
    del values[loser], sources[loser]


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
    kind = _kind(key)
    if kind is None:
        return value
    from_text = origin.startswith((".env", "environment")) and isinstance(value, str)
    result: Any = _BAD
    if kind == "bool":
        if isinstance(value, bool):
            result = value
        elif from_text and value.strip().lower() in _TRUE + _FALSE:
            result = value.strip().lower() in _TRUE
    elif kind in ("int", "float"):
        if from_text:
            with contextlib.suppress(ValueError):
                value = int(value) if kind == "int" else float(value)
        if isinstance(value, int | float) and not isinstance(value, bool) and (kind == "float" or isinstance(value, int)):
            result = value
    elif kind == "tokens":
        if isinstance(value, str) and value.strip().lower() in ("inf", "infinity"):
            result = "inf"
        elif isinstance(value, str) and value.strip().isdigit():
            result = int(value)
        elif isinstance(value, int) and not isinstance(value, bool):
            result = value
    elif kind == "path":
        if isinstance(value, Path):
            result = value
        elif isinstance(value, str) and value:
            result = Path(value).expanduser()
    elif isinstance(value, str):
        result = value
    if result is _BAD:
        subject, error = _describe(key, origin, config_file, value)
        raise error(f"{subject} must be {_KIND_WORDS[kind]}, not {value!r}")
    return result


# ---- validation ---------------------------------------------------------------------------


def unused(s: Settings) -> dict[str, str]:
    """Settings given a value that has no effect with the others, and why (for ``config show``)."""
    found: dict[str, str] = {}
    for key, mode in (("eagerness", "semantic"), ("idle_timeout_ms", "server"),
                      ("prefix_padding_ms", "server"), ("silence_duration_ms", "server")):
        if getattr(s, key) is not None and s.vad != mode:
            found[key] = f"it applies to --vad {mode} only (vad is {s.vad}, from {s.source('vad')})"
    if s.vad == "none":
        for key in ("interrupt", "auto_response"):
            if key in s.sources:
                found[key] = f"there is no turn detection with --vad none (from {s.source('vad')})"
    if not s.transcribing:
        for key in ("language", "transcribe_model"):
            if key in s.sources and getattr(s, key):
                found[key] = f"input transcription is off (from {s.source('transcribe')})"
    if s.text_only and s.speed is not None:
        found["speed"] = f"the assistant answers in text only (from {s.source('text_only')})"
    return found


def validate(s: Settings) -> None:
    """Reject impossible values before any connection is made.

    A bad flag is a usage error (exit 2) naming the flag; a bad value from the config file,
    ``.env`` or the environment is a config error (exit 3) naming the key and where it is. A
    flag that would have no effect (``--eagerness`` with server VAD) is an error too; the same
    value from the config file or environment is kept and shown as unused by ``config show``.
    """
    if s.api_key is not None and (problem := key_problem(s.api_key)):
        raise _error(s, "api_key", problem, hint=KEY_HINT)  # never the key, nor any part of it
    if has_userinfo(s.base_url):
        # websockets would send it as a second (Basic) Authorization header, and it would be
        # shown wherever the URL is: never the user name or password itself.
        raise _error(s, "base_url", "must not hold a user name or password (user:password@host): voicechat "
                     "authenticates with the API key only", hint="remove the user:password@ part of the URL")
    _choice(s, "backend", BACKENDS)
    if s.backend == "openai" and (problem := url_problem(s.base_url)):
        raise _error(s, "base_url", problem, hint="expected something like https://api.openai.com/v1")
    _choice(s, "vad", VAD_MODES)
    _choice(s, "echo", ECHO_MODES)
    _choice(s, "noise_reduction", NOISE_REDUCTION_MODES)
    if s.eagerness is not None:
        _choice(s, "eagerness", EAGERNESS)
    if s.voice not in VOICES and not s.voice.startswith("voice_"):
        raise _error(s, "voice", f"{s.voice!r} is not a known voice",
                     hint=f"use one of {', '.join(VOICES)}, or a custom voice id voice_…")
    _range(s, "vad_threshold", 0.0, 1.0)
    _range(s, "prefix_padding_ms", 0, 10_000)
    _range(s, "silence_duration_ms", 0, 10_000)
    _range(s, "idle_timeout_ms", *IDLE_TIMEOUT_RANGE_MS)
    _range(s, "speed", *SPEED_RANGE)
    _range(s, "sample_rate", 8000, 192_000)
    for key in ("max_cost", "max_minutes"):
        value = getattr(s, key)
        if value is not None and not (math.isfinite(value) and value > 0):
            raise _error(s, key, f"must be a positive number, not {value!r}")
    if s.max_output_tokens != "inf":
        _range(s, "max_output_tokens", 1, MAX_OUTPUT_TOKENS, also=' or "inf"')
    if s.language is not None and not _LANGUAGE.fullmatch(s.language):
        raise _error(s, "language", f"must be a two-letter ISO-639-1 code such as en, de or ja, not {s.language!r}")
    if not s.model.strip():
        raise _error(s, "model", "must not be empty")
    if s.transcribe and s.transcribe_model is not None and s.transcribe_model != s.transcribe_model.strip():
        raise _error(s, "transcribe_model", f"must be a model name, not {s.transcribe_model!r}")
    if s.record is not None and s.record.suffix.lower() != ".wav":
        raise _error(s, "record", f"{s.record}: the recording is a WAV file; name it FILE.wav")
    # Files read whole are regular files of a bounded size; files written are regular files (or
    # /dev/null): a FIFO would block the open, /dev/zero would never end (see voicechat.files).
    for key, limit in (("input_file", MAX_WAV_BYTES), ("resume", MAX_TRANSCRIPT_BYTES)):
        path = getattr(s, key)
        if path is not None and (problem := regular_problem(path, limit)):
            raise _error(s, key, f"{path}: {problem}")
    for key in ("transcript", "record", "output_file", "log_events"):
        path = getattr(s, key)
        try:
            if path is not None:
                check_output(path)
        except OSError as exc:
            raise _error(s, key, f"{path}: {exc.strerror}", hint="name a regular file") from None
    if s.azure and s.backend == "openai" and urlsplit(s.base_url).hostname == urlsplit(DEFAULT_BASE_URL).hostname:
        raise _error(s, "azure", "needs your Azure resource endpoint",
                     hint="pass --base-url https://RESOURCE.openai.azure.com or set AZURE_OPENAI_ENDPOINT")
    for key, why in unused(s).items():
        if s.source(key) == "flag":
            raise _error(s, key, f"has no effect: {why}", hint=_UNUSED_HINTS.get(key))


_UNUSED_HINTS = {
    "eagerness": "add --vad semantic",
    "idle_timeout_ms": "the idle timeout is a server VAD setting: use --vad server",
    "prefix_padding_ms": "use --vad server",
    "silence_duration_ms": "use --vad server, or --eagerness with semantic VAD",
    "interrupt": "use --vad server or --vad semantic",
    "auto_response": "use --vad server or --vad semantic",
    "language": "add --transcribe",
    "transcribe_model": "add --transcribe",
    "speed": "drop --text-only",
}


def _choice(s: Settings, key: str, allowed: tuple[str, ...]) -> None:
    value = getattr(s, key)
    if value not in allowed:
        raise _error(s, key, f"must be one of {', '.join(allowed)}, not {value!r}")


def _range(s: Settings, key: str, lo: float, hi: float, also: str = "") -> None:
    value = getattr(s, key)
    if value is None:
        return
    if not (isinstance(value, int | float) and math.isfinite(value) and lo <= value <= hi):
        raise _error(s, key, f"must be between {lo:g} and {hi:g}{also}, not {value!r}")


# ---- after resolving ----------------------------------------------------------------------


def load_instructions(s: Settings, read: Callable[[Path], str]) -> Settings:
    """Settings with the text of ``instructions_file`` (read by ``read``) as the instructions."""
    if s.instructions_file is None:
        return s
    path = s.instructions_file
    try:
        text = read(path)
    except FileNotFoundError:
        raise _error(s, "instructions_file", f"{path}: no such file") from None
    except IsADirectoryError:
        raise _error(s, "instructions_file", f"{path}: is a directory, not a text file") from None
    except UnicodeDecodeError:
        raise _error(s, "instructions_file", f"{path}: not UTF-8 text") from None
    except OSError as exc:
        raise _error(s, "instructions_file", f"{path}: cannot read it ({exc.strerror or exc})") from None
    sources = {**s.sources, "instructions": s.source("instructions_file")}
    return replace(s, instructions=text.strip(), sources=sources)


def mask_key(key: str | None) -> str:
    """An API key as ``sk-…abcd``: enough to tell keys apart, never enough to use one."""
    if not key:
        return "(not set)"
    if len(key) < 12:
        return "(set, too short to show)"
    return ("sk-" if key.startswith("sk-") else "") + "…" + key[-4:]


EXAMPLE_CONFIG = '''\
# voicechat configuration.
#
# Where it lives: ~/.config/voicechat/config.toml ($XDG_CONFIG_HOME/voicechat/config.toml), or
# $VOICECHAT_CONFIG_DIR/config.toml; `voicechat talk --config FILE` reads FILE instead.
# `voicechat config init` writes this starter file, `voicechat config path` prints where it is,
# and `voicechat config show` prints every effective setting and where it came from.
#
# Precedence, lowest first: built-in defaults < this file's top level < the chosen profile
# < .env < environment < flags. Each key is also the `voicechat talk` flag of the same name
# (underscores become dashes) and the environment variable VOICECHAT_<KEY>, for example
# VOICECHAT_SPEED=1.2 (base_url is OPENAI_BASE_URL). The commented lines show the default, or
# an example where there is none; uncomment one to change it.
#
# The API key never goes here: set OPENAI_API_KEY (or, for Azure, AZURE_OPENAI_API_KEY) in the
# environment or in a .env file that only you can read (chmod 600 .env).

# --- profile -------------------------------------------------------------------------------
# default_profile = "work"      # the [profile.NAME] used when neither --profile nor
#                               # VOICECHAT_PROFILE names one (profiles are at the end)

# --- where to connect ----------------------------------------------------------------------
# backend = "openai"                      # openai (the Realtime API) or local (built-in echo server)
# base_url = "https://api.openai.com/v1"  # any GA-compatible server
# azure = false                 # Azure OpenAI: api-key header, /openai/v1/realtime path; turns on
#                               # by itself for *.openai.azure.com and *.cognitiveservices.azure.com
# model = "gpt-realtime-2.1"    # with Azure: the deployment name

# --- the assistant -------------------------------------------------------------------------
# voice = "marin"               # alloy ash ballad coral echo sage shimmer verse marin cedar, or voice_…
# speed = 1.0                   # speaking speed, 0.25 to 1.5
# instructions = "Be brief."    # system instructions; unset: the model's default
#                               # (or instructions_file, relative to this file; not both at one level)
# max_output_tokens = "inf"     # a limit per reply, 1 to 32768 tokens, or "inf"
# text_only = false             # answer in text only, no audio

# --- turn detection ------------------------------------------------------------------------
# vad = "server"                # server | semantic | none (push-to-talk)
# vad_threshold = 0.5           # server: 0.0 to 1.0, higher needs louder speech
# prefix_padding_ms = 300       # server: audio kept before speech starts, 0 to 10000
# silence_duration_ms = 500     # server: the silence that ends a turn, 0 to 10000
# idle_timeout_ms = 10000       # server: prompt the assistant after 5000 to 30000 ms of quiet; unset: never
# eagerness = "auto"            # semantic: low | medium | high | auto (medium)
# interrupt = true              # talking over the assistant cuts it off (flag: --no-interrupt)
# auto_response = true          # the assistant answers each turn by itself (flag: --no-auto-response)

# --- audio ---------------------------------------------------------------------------------
# noise_reduction = "off"       # near (headset or close mic) | far (laptop or room mic) | off
# echo = "auto"                 # auto | aec | gate | half-duplex | off (headphones)
# transcribe = true             # transcribe what you say (flag: --no-transcribe)
# transcribe_model = "gpt-4o-mini-transcribe"   # with Azure: a transcription deployment
# language = "en"               # ISO-639-1 code of the language you speak; unset: detected
# input_device = "USB"          # microphone: index or name substring; unset: the system default
# output_device = "USB"         # speaker: index or name substring; unset: the system default
# sample_rate = 48000           # device sample rate; unset: the device's own

# --- output --------------------------------------------------------------------------------
# transcript = "chat.md"        # append the transcript (.txt, .md or .jsonl), relative to where talk runs
# record = "chat.wav"           # record both sides: microphone left, assistant right
# quiet = false                 # only errors on stderr

# --- budgets -------------------------------------------------------------------------------
# At 80 % a warning; at the limit the microphone stops, the reply being spoken may finish
# (15 s at most), and talk ends with status 0 and "stopped: --max-… reached". Unset: no limit.
# max_cost = 0.50               # US dollars, estimated from the usage each reply reports and the
#                               # model's published prices (a model with no known price: not enforced)
# max_minutes = 30              # wall-clock minutes of the conversation

# --- tools ---------------------------------------------------------------------------------
# builtin_tools = true          # offer the model the built-in get_current_time
#
# Each [[tools]] table is a function the model may call. voicechat runs `command` (a list of
# arguments; never a shell) with the call's arguments as one JSON object on stdin and gives
# the model what it prints. Tables go after every plain key above; a profile takes them too,
# as [[profile.NAME.tools]].
# [[tools]]
# name = "weather"
# description = "Today's weather forecast for a city."
# parameters = { type = "object", properties = { city = { type = "string" } }, required = ["city"] }
# command = ["/usr/local/bin/weather", "--json"]
# timeout = 10                  # seconds, 0.1 to 300
# confirm = false               # true: ask y/N on the keyboard before each run

# --- profiles ------------------------------------------------------------------------------
# A profile takes the same keys as the top level; its values replace the top level's, and
# .env, environment and flags still win. Pick one with `voicechat talk --profile NAME`,
# VOICECHAT_PROFILE=NAME, or default_profile above.

# [profile.work]
# voice = "cedar"
# vad = "semantic"
# eagerness = "low"
# transcript = "work.md"

# [profile.pirate]
# instructions_file = "pirate.txt"
# speed = 1.2

# [profile.azure]
# azure = true
# base_url = "https://my-resource.openai.azure.com"   # or AZURE_OPENAI_ENDPOINT
# model = "my-realtime-deployment"
'''
