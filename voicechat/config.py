"""Settings: one frozen value resolved once, at the CLI boundary.

Precedence, lowest first: built-in defaults < config file < ``.env`` < environment < flags.
``resolve`` is pure: it receives every source as a mapping and never reads ``os.environ``
or the disk itself. Secrets never appear in ``repr``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from voicechat.errors import ConfigError, UsageError
from voicechat.protocol.constants import (
    DEFAULT_BASE_URL,
    DEFAULT_MODEL,
    DEFAULT_TRANSCRIBE_MODEL,
    DEFAULT_VOICE,
    VOICES,
)
from voicechat.protocol.session_config import SessionConfig, TurnDetection
from voicechat.tools import ToolSpec, available_tools, parse_tools

BACKENDS = ("openai", "local")
VAD_MODES = ("server", "semantic", "none")
ECHO_MODES = ("auto", "aec", "gate", "half-duplex", "off")

# Environment variables that map onto settings (also read from .env).
ENV_KEYS = {
    "OPENAI_API_KEY": "api_key",
    "OPENAI_BASE_URL": "base_url",
    "VOICECHAT_MODEL": "model",
    "VOICECHAT_VOICE": "voice",
    "VOICECHAT_BACKEND": "backend",
}


@dataclass(frozen=True, slots=True)
class Settings:
    backend: str = "openai"
    base_url: str = DEFAULT_BASE_URL
    model: str = DEFAULT_MODEL
    api_key: str | None = field(default=None, repr=False)
    voice: str = DEFAULT_VOICE
    instructions: str | None = None
    vad: str = "server"
    vad_threshold: float | None = None
    prefix_padding_ms: int | None = None
    silence_duration_ms: int | None = None
    interrupt: bool = True
    auto_response: bool = True
    echo: str = "auto"
    transcribe_model: str | None = DEFAULT_TRANSCRIBE_MODEL
    text_only: bool = False
    input_device: str | None = None
    output_device: str | None = None
    sample_rate: int | None = None
    input_file: Path | None = None
    output_file: Path | None = None
    transcript: Path | None = None
    record: Path | None = None
    fast: bool = False
    debug: bool = False
    quiet: bool = False
    tools: tuple[ToolSpec, ...] = ()  # [[tools]] of the config file, validated by voicechat.tools
    builtin_tools: bool = True  # offer get_current_time too
    sources: Mapping[str, str] = field(default_factory=dict, compare=False, repr=False)

    def session_config(self) -> SessionConfig:
        turn: TurnDetection | None = None
        if self.vad != "none":
            turn = TurnDetection(
                type="semantic_vad" if self.vad == "semantic" else "server_vad",
                threshold=self.vad_threshold,
                prefix_padding_ms=self.prefix_padding_ms,
                silence_duration_ms=self.silence_duration_ms,
                create_response=self.auto_response,
                interrupt_response=self.interrupt,
            )
        return SessionConfig(
            instructions=self.instructions,
            voice=self.voice,
            output_modalities=("text",) if self.text_only else ("audio",),
            turn_detection=turn,
            transcribe_model=self.transcribe_model,
            tools=tuple(t.definition() for t in available_tools(self.tools, self.builtin_tools)),
        )

    @property
    def turn_silence_ms(self) -> int:
        """How long the server waits in silence before it ends a turn (for the quiet tail)."""
        if self.vad == "semantic":
            return 2000
        return self.silence_duration_ms if self.silence_duration_ms is not None else 500


_FIELD_NAMES = {f.name for f in fields(Settings)} - {"sources"}
FILE_KEYS = _FIELD_NAMES - {"api_key", "input_file", "output_file", "fast", "debug"}


def config_path(environ: Mapping[str, str], home: Path) -> Path:
    """``$VOICECHAT_CONFIG_DIR/config.toml``, else the XDG location."""
    if environ.get("VOICECHAT_CONFIG_DIR"):
        return Path(environ["VOICECHAT_CONFIG_DIR"]) / "config.toml"
    base = Path(environ["XDG_CONFIG_HOME"]) if environ.get("XDG_CONFIG_HOME") else home / ".config"
    return base / "voicechat" / "config.toml"


def parse_config_file(path: Path, text: str) -> dict[str, Any]:
    """The settings in a config file; unknown keys and bad TOML are errors naming the file."""
    import tomllib

    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None
    values: dict[str, Any] = {}
    for key, value in data.items():
        if key == "api_key":
            raise ConfigError(f"{path}: keep the API key in OPENAI_API_KEY or .env, not in the config file")
        if key not in FILE_KEYS:
            raise ConfigError(f"{path}: unknown setting {key!r}", hint="see config.example.toml for the keys")
        if key == "tools":
            value = parse_tools(value, str(path))
        elif key == "builtin_tools" and not isinstance(value, bool):
            raise ConfigError(f"{path}: 'builtin_tools' must be true or false, not {value!r}")
        values[key] = Path(value) if key in ("transcript", "record") else value
    return values


def resolve(
    *,
    flags: Mapping[str, Any],
    environ: Mapping[str, str],
    dotenv: Mapping[str, str | None] | None = None,
    file_values: Mapping[str, Any] | None = None,
) -> Settings:
    """Merge the sources in precedence order and validate the result."""
    values: dict[str, Any] = {}
    sources: dict[str, str] = {}

    def take(mapping: Mapping[str, Any], origin: str) -> None:
        for key, value in mapping.items():
            if value is None or key not in _FIELD_NAMES:
                continue
            values[key] = value
            sources[key] = origin

    take(file_values or {}, "config file")
    take({ENV_KEYS[k]: v for k, v in (dotenv or {}).items() if k in ENV_KEYS and v}, ".env")
    take({ENV_KEYS[k]: v for k, v in environ.items() if k in ENV_KEYS and v}, "environment")
    take(flags, "flag")
    settings = replace(Settings(), **values)
    settings = replace(settings, sources=sources)
    validate(settings)
    return settings


def validate(s: Settings) -> None:
    """Reject impossible values before any connection is made (exit status 2)."""
    if s.backend not in BACKENDS:
        raise UsageError(f"--backend must be one of {', '.join(BACKENDS)}, not {s.backend!r}")
    if s.vad not in VAD_MODES:
        raise UsageError(f"--vad must be one of {', '.join(VAD_MODES)}, not {s.vad!r}")
    if s.echo not in ECHO_MODES:
        raise UsageError(f"--echo must be one of {', '.join(ECHO_MODES)}, not {s.echo!r}")
    if s.voice not in VOICES and not s.voice.startswith("voice_"):
        raise UsageError(
            f"--voice {s.voice!r} is not a known voice",
            hint=f"use one of {', '.join(VOICES)}, or a custom voice id voice_…",
        )
    _range("--vad-threshold", s.vad_threshold, 0.0, 1.0)
    _range("--prefix-padding-ms", s.prefix_padding_ms, 0, 10_000)
    _range("--silence-duration-ms", s.silence_duration_ms, 0, 10_000)
    _range("--sample-rate", s.sample_rate, 8000, 192_000)
    if not s.model.strip():
        raise UsageError("--model must not be empty")
    if s.record is not None and s.record.suffix.lower() != ".wav":
        raise UsageError(f"--record {s.record}: the recording is a WAV file; name it FILE.wav")
    if s.input_file is not None and not s.input_file.is_file():
        raise UsageError(f"--input-file {s.input_file}: no such file")


def _range(flag: str, value: float | None, lo: float, hi: float) -> None:
    if value is None:
        return
    if not (isinstance(value, int | float) and math.isfinite(value) and lo <= value <= hi):
        raise UsageError(f"{flag} must be between {lo:g} and {hi:g}, not {value!r}")
