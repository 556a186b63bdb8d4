"""The settings table: every setting of ``voicechat talk``, declared once, as one frozen value.

Each field of :class:`Settings` is a row: its name, type and default, and (through
:func:`~voicechat.config.spec.setting`) its help, panel group, range or choices, when it applies
and its ``session.update`` field. The flags of ``talk`` and ``doctor``, the environment names,
the config-file keys, ``config show``, validation and ``config.example.toml`` are all derived
from these rows (see :mod:`voicechat.config.table` for the derived tables). The field order is
the order of the flags in ``talk --help`` and of the keys in ``config show`` and the example.

Adding a wire setting: a row here with ``wire="path.in.session"`` (it reaches the wire through
``SessionConfig.extra`` when it applies and is set), then regenerate ``config.example.toml``
with ``voicechat config init --config config.example.toml --force``.

Core: imports no I/O library, reads no environment and no clock.
"""

# ruff: noqa: RUF009 - every default is a call to `setting`: the field's default and its row
from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from voicechat.config.rules import applies
from voicechat.config.spec import Group, setting, spec_of
from voicechat.pricing import ModelPrice
from voicechat.protocol.constants import (
    DEFAULT_BASE_URL,
    DEFAULT_MODEL,
    DEFAULT_TRANSCRIBE_MODEL,
    DEFAULT_VOICE,
    EAGERNESS,
    REASONING_EFFORTS,
    REASONING_MODELS,
    TRANSCRIBE_MODELS,
    VOICES,
)
from voicechat.protocol.session_config import (
    IDLE_TIMEOUT_RANGE_MS,
    MAX_OUTPUT_TOKENS,
    SPEED_RANGE,
    WIRE_FORMATS,
    SessionConfig,
    TurnDetection,
)
from voicechat.redact import OPENAI_KEY_ENV, OPENAI_URL_ENV
from voicechat.tools.mcp import McpServer
from voicechat.tools.spec import MAX_TIMEOUT_S, MIN_TIMEOUT_S, ToolSpec, available_tools

BACKENDS = ("openai", "local")
VAD_MODES = ("server", "semantic", "none")
ECHO_MODES = ("auto", "aec", "gate", "half-duplex", "off")
NOISE_REDUCTION_MODES = ("near", "far", "off")

CONNECTION = Group("Connection", "where to connect")
ASSISTANT = Group("Assistant", "the assistant")
TURNS = Group("Turn detection", "turn detection")
AUDIO = Group("Audio", "audio")
FILES = Group("Files and output", "output")
BUDGETS = Group("Budgets", "budgets", intro="""\
At 80 % a warning; at the limit the microphone stops, the reply being spoken may finish
(15 s at most), and talk ends with status 0 and "stopped: --max-… reached". Unset: no limit.""")
RUN = Group(None, "run")
TOOLS = Group(None, "tools", outro="""\

Each [[tools]] table is a function the model may call. voicechat runs `command` (a list of
arguments; never a shell) with the call's arguments as one JSON object on stdin and gives
the model what it prints. Tables go after every plain key above; a profile takes them too,
as [[profile.NAME.tools]].
[[tools]]
name = "weather"
description = "Today's weather forecast for a city."
parameters = { type = "object", properties = { city = { type = "string" } }, required = ["city"] }
command = ["/usr/local/bin/weather", "--json"]
""" f"timeout = 10                  # seconds, {MIN_TIMEOUT_S:g} to {MAX_TIMEOUT_S:g}\n"
"confirm = false               # true: ask y/N on the keyboard before each run\n"
"""
Each [[mcp]] table is a remote MCP server the model calls by itself (the service talks to
it). A header value never sits in this file: "env:NAME" reads it from the environment or .env.
[[mcp]]
label = "docs"                                  # server_label: calls show as docs.TOOL
url = "https://mcp.example.com/mcp"             # or connector_id = "connector_googledrive"
allowed_tools = ["search"]                      # optional: only these tools
require_approval = "always"                     # "always": ask y/N before each call | "never"
headers = { Authorization = "env:DOCS_TOKEN" }  # optional""")
PRICES = Group(None, "prices", intro="""\
--max-cost and the panel's cost use each model's published price, USD per million tokens.
A realtime model with none of its own (gpt-realtime-2.1) is estimated from its family's
dearest (gpt-realtime-2, or gpt-realtime-2.1-mini for a mini), and shown "(estimated)".
A [prices."MODEL"] table sets a model's price (with Azure, MODEL is the deployment name):
text_in, text_cached, text_out, audio_in, audio_cached and audio_out are needed, image_in
and image_cached optional. Tables go after every plain key; the end of this file has one.""")
CONFIG = Group("Config", "config")

_TD = "audio.input.turn_detection."
_NOISE_WIRE = {"near": "near_field", "far": "far_field"}
_SHAPED = frozenset({
    "voice", "speed", "instructions", "max_output_tokens", "text_only", "vad", "vad_threshold", "prefix_padding_ms",
    "silence_duration_ms", "idle_timeout_ms", "eagerness", "interrupt", "auto_response", "noise_reduction",
    "transcribe", "transcribe_model", "language", "tools", "builtin_tools", "audio_format", "mcp",
})  # fmt: skip
"""The wire rows ``session_config`` shapes itself (typed fields of ``SessionConfig``); every
other row with a ``wire`` path reaches the session as it is, through ``SessionConfig.extra``."""


@dataclass(frozen=True, slots=True)
class Settings:
    backend: str = setting(
        "openai", group=CONNECTION, choices=BACKENDS, doctor=True,
        help="openai (the Realtime API) or local (built-in echo server).",
        note="openai (the Realtime API) or local (built-in echo server)")
    model: str = setting(
        DEFAULT_MODEL, group=CONNECTION, doctor=True,
        help="Realtime model id; with Azure, the deployment name.",
        note="with Azure: the deployment name")
    base_url: str = setting(
        DEFAULT_BASE_URL, group=CONNECTION, env=OPENAI_URL_ENV, doctor=True,
        help="API base URL (http:// only to loopback, e.g. voicechat serve: no key needed).",
        note="any GA-compatible server")
    azure: bool = setting(
        False, group=CONNECTION, negatable=True,
        help="Azure OpenAI: api-key header, /openai/v1/realtime; key from AZURE_OPENAI_API_KEY, endpoint from "
        "AZURE_OPENAI_ENDPOINT. On by itself for *.openai.azure.com and *.cognitiveservices.azure.com.",
        note="Azure OpenAI: api-key header, /openai/v1/realtime path; turns on\n"
        "by itself for *.openai.azure.com and *.cognitiveservices.azure.com")
    api_key: str | None = setting(None, repr=False, group=CONNECTION, file=False, env=OPENAI_KEY_ENV)
    voice: str = setting(
        DEFAULT_VOICE, group=ASSISTANT, suggest=VOICES, wire="audio.output.voice",
        help="Assistant voice (marin, cedar, alloy, …) or a custom voice_… id.",
        note=f"{' '.join(VOICES)}, or voice_…")
    speed: float | None = setting(
        None, group=ASSISTANT, range=SPEED_RANGE, applies="audio output", hint="drop --text-only",
        wire="audio.output.speed", example=1.0,
        help="Speaking speed, {range} (1.0 is normal).", note="speaking speed, {range}")
    instructions: str | None = setting(
        None, group=ASSISTANT, wire="instructions", example="Be brief.", metavar="TEXT",
        help="System instructions for the assistant.",
        note="system instructions; unset: the model's default\n"
        "(or instructions_file, relative to this file; not both at one level)")
    instructions_file: Path | None = setting(
        None, group=ASSISTANT, metavar="FILE", in_example=False,
        help="Read the system instructions from a UTF-8 text file (not with --instructions).")
    max_output_tokens: int | str | None = setting(
        None, group=ASSISTANT, range=(1, MAX_OUTPUT_TOKENS), suggest=("inf",), metavar="N|inf",
        wire="max_output_tokens", example="inf",
        help="Limit each reply to N tokens ({range}), or inf.", note='a limit per reply, {range} tokens, or "inf"')
    reasoning: str | None = setting(
        None, group=ASSISTANT, choices=REASONING_EFFORTS, wire="reasoning.effort", example="low",
        applies="reasoning model", hint=f"use a model that reasons ({', '.join(REASONING_MODELS)}), or drop it",
        help="How hard a reasoning model thinks before it answers: minimal, low, medium, high or xhigh "
        "(lower effort answers sooner; gpt-realtime-2 and 2.1 only).",
        note="minimal | low | medium | high | xhigh; lower answers sooner\n"
        "(reasoning models only: gpt-realtime-2, -2.1, -2.1-mini); unset: the model's default")
    text_only: bool = setting(
        False, group=ASSISTANT, wire="output_modalities",
        help="The assistant answers in text only.", note="answer in text only, no audio")
    vad: str = setting(
        "server", group=TURNS, choices=VAD_MODES, wire=_TD + "type",
        help="Turn detection: server, semantic or none (push-to-talk).",
        note="server | semantic | none (push-to-talk)")
    vad_threshold: float | None = setting(
        None, group=TURNS, range=(0.0, 1.0), wire=_TD + "threshold", example=0.5,
        help="Server VAD threshold, {range}.", note="server: {range}, higher needs louder speech")
    prefix_padding_ms: int | None = setting(
        None, group=TURNS, range=(0, 10_000), applies="server vad", hint="use --vad server",
        wire=_TD + "prefix_padding_ms", example=300,
        help="Server VAD: audio kept before speech starts (ms).",
        note="server: audio kept before speech starts, {range}")
    silence_duration_ms: int | None = setting(
        None, group=TURNS, range=(0, 10_000), applies="server vad",
        hint="use --vad server, or --eagerness with semantic VAD", wire=_TD + "silence_duration_ms", example=500,
        help="Server VAD: silence that ends a turn (ms).", note="server: the silence that ends a turn, {range}")
    idle_timeout_ms: int | None = setting(
        None, group=TURNS, range=IDLE_TIMEOUT_RANGE_MS, applies="server vad",
        hint="the idle timeout is a server VAD setting: use --vad server", wire=_TD + "idle_timeout_ms",
        example=10_000,
        help="Server VAD: prompt the assistant after this much quiet, {range} ms.",
        note="server: prompt the assistant after {range} ms of quiet; unset: never")
    eagerness: str | None = setting(
        None, group=TURNS, choices=EAGERNESS, applies="semantic vad", hint="add --vad semantic",
        wire=_TD + "eagerness", example="auto",
        help="Semantic VAD: how soon a turn ends: low, medium, high or auto.",
        note="semantic: low | medium | high | auto (medium)")
    interrupt: bool = setting(
        True, group=TURNS, negatable=True, applies="turn detection", hint="use --vad server or --vad semantic",
        wire=_TD + "interrupt_response",
        help="Talking over the assistant cuts it off on the server (interrupt_response).",
        note="talking over the assistant cuts it off (flag: --no-interrupt)")
    auto_response: bool = setting(
        True, group=TURNS, negatable=True, applies="turn detection", hint="use --vad server or --vad semantic",
        wire=_TD + "create_response",
        help="The assistant answers each turn by itself (create_response).",
        note="the assistant answers each turn by itself (flag: --no-auto-response)")
    noise_reduction: str = setting(
        "off", group=AUDIO, choices=NOISE_REDUCTION_MODES, wire="audio.input.noise_reduction.type",
        help="Input noise reduction: near (headset), far (laptop or room mic) or off.",
        note="near (headset or close mic) | far (laptop or room mic) | off")
    audio_format: str = setting(
        "pcm", group=AUDIO, choices=tuple(WIRE_FORMATS), wire="audio.input.format",
        help="Audio on the wire: pcm (16-bit 24 kHz), or G.711 pcmu (μ-law) / pcma (A-law) at 8 kHz, a sixth "
        "of the bytes for slow or metered links.",
        note="pcm (16-bit 24 kHz) | pcmu | pcma (G.711 at 8 kHz: a sixth of the bytes)")
    echo: str = setting(
        "auto", group=AUDIO, choices=ECHO_MODES,
        help="Keep the assistant's voice out of the mic: auto (aec, or gate where the canceller cannot load; "
        "off for --input-file), aec, gate, half-duplex, or off (headphones).",
        note="auto | aec | gate | half-duplex | off (headphones)")
    transcribe: bool = setting(
        True, group=AUDIO, negatable=True, wire="audio.input.transcription",
        help="Transcribe what you say.", note="transcribe what you say (flag: --no-transcribe)")
    transcribe_model: str | None = setting(
        DEFAULT_TRANSCRIBE_MODEL, group=AUDIO, suggest=TRANSCRIBE_MODELS, metavar="NAME", applies="transcription",
        hint="add --transcribe", wire="audio.input.transcription.model",
        help="Model that transcribes what you say (with Azure, a deployment).",
        note="with Azure: a transcription deployment")
    language: str | None = setting(
        None, group=AUDIO, metavar="CODE", applies="transcription", hint="add --transcribe",
        wire="audio.input.transcription.language", example="en",
        help="The language you speak, as an ISO-639-1 code (en, de, ja): better transcription.",
        note="ISO-639-1 code of the language you speak; unset: detected")
    input_device: str | None = setting(
        None, group=AUDIO, doctor=True, example="USB", help="Microphone: index or name substring.",
        note="microphone: index or name substring; unset: the system default")
    output_device: str | None = setting(
        None, group=AUDIO, doctor=True, example="USB", help="Speaker: index or name substring.",
        note="speaker: index or name substring; unset: the system default")
    sample_rate: int | None = setting(
        None, group=AUDIO, range=(8000, 192_000), doctor=True, example=48_000,
        help="Device sample rate (default: the device's own).", note="device sample rate; unset: the device's own")
    input_file: Path | None = setting(
        None, group=FILES, file=False,
        help="Speak from a WAV file (any rate/channels) instead of a microphone.")
    output_file: Path | None = setting(
        None, group=FILES, file=False, applies="audio output", hint="drop --text-only, or use --transcript",
        help="Write the assistant's audio, as played, to a 24 kHz WAV file.")
    transcript: Path | None = setting(
        None, group=FILES, example="chat.md", help="Append the transcript to FILE (.txt, .md or .jsonl).",
        note="append the transcript (.txt, .md or .jsonl), relative to where talk runs")
    record: Path | None = setting(
        None, group=FILES, example="chat.wav",
        help="Record the conversation to FILE.wav: microphone left, assistant right.",
        note="record both sides: microphone left, assistant right")
    log_events: Path | None = setting(  # debugging: the raw event stream, audio and secrets elided
        None, group=FILES, file=False, metavar="FILE",
        help="Debugging: append every event, both directions, to FILE as JSON lines with a monotonic time; "
        "audio and images elided, the API key never written.")
    max_cost: float | None = setting(  # USD: stop once the estimated cost reaches it
        None, group=BUDGETS, positive=True, metavar="DOLLARS", example=0.5,
        help="Stop once the estimated cost of the replies reaches DOLLARS (a warning at 80 %). A model with no "
        "known price refuses to start: give it one in the config file's [prices.\"MODEL\"].",
        note="US dollars, estimated from the usage each reply reports and the\n"
        "model's price (see prices below; a model with none: talk refuses)")
    max_minutes: float | None = setting(  # stop once the conversation is this long (wall time)
        None, group=BUDGETS, positive=True, metavar="N", example=30,
        help="Stop once the conversation has lasted N minutes (a warning at 80 %).",
        note="wall-clock minutes of the conversation")
    resume: Path | None = setting(  # a JSONL transcript whose turns the conversation continues
        None, group=FILES, file=False, metavar="FILE.jsonl",
        help="Continue a conversation saved with --transcript FILE.jsonl: its turns are shown and given to the "
        "model first.")
    fast: bool = setting(
        False, group=FILES, file=False, help="With --input-file: run the audio clock 10x faster than real time.")
    quiet: bool = setting(
        False, group=FILES, panel=False, short="-q", help="Only errors on stderr.", note="only errors on stderr")
    debug: bool = setting(False, group=RUN, file=False, doctor=True, help="Debug logging and full tracebacks.")
    tools: tuple[ToolSpec, ...] = setting((), group=TOOLS, in_example=False, wire="tools")  # [[tools]] tables
    builtin_tools: bool = setting(
        True, group=TOOLS, wire="tools", note="offer the model the built-in get_current_time")
    mcp: tuple[McpServer, ...] = setting((), group=TOOLS, in_example=False, wire="tools")  # [[mcp]] tables
    prices: tuple[ModelPrice, ...] = setting((), group=PRICES, in_example=False)  # [prices."MODEL"] tables
    config_file: Path | None = setting(
        None, compare=False, group=CONFIG, file=False, flag="--config", metavar="FILE", doctor=True,
        help="Read FILE instead of ~/.config/voicechat/config.toml ($VOICECHAT_CONFIG_DIR/config.toml).")
    profile: str | None = setting(
        None, group=CONFIG, file=False, metavar="NAME", doctor=True,
        help="Layer the config file's [profile.NAME] over its top level.")
    sources: Mapping[str, str] = field(default_factory=dict, compare=False, repr=False)

    @property
    def transcribing(self) -> bool:
        return self.transcribe and bool(self.transcribe_model)

    @property
    def turn_silence_ms(self) -> int:
        """How long the server waits in silence before it ends a turn (for the quiet tail)."""
        if self.vad == "semantic":
            return 2000
        return self.silence_duration_ms if self.silence_duration_ms is not None else 500

    def session_config(self) -> SessionConfig:
        """What ``session.update`` carries: the shaped fields, then every other wire row that applies."""
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
            audio_format=self.audio_format,
            tools=(*(t.definition() for t in available_tools(self.tools, self.builtin_tools)),
                   *(server.definition() for server in self.mcp)),
            extra=tuple((spec.wire, value) for name, spec, value in self._wire_rows() if name not in _SHAPED),
        )

    def _wire_rows(self) -> Iterator[tuple[str, Any, Any]]:
        """(name, spec, value) of every wire row that is set and applies."""
        for f in fields(self):
            spec = spec_of(f)
            value = getattr(self, f.name)
            if spec is not None and spec.wire and value is not None and applies(self, spec.applies):
                yield f.name, spec, value

    def source(self, key: str) -> str:
        """Where ``key`` came from: default, config file, profile NAME, .env (VAR), environment (VAR), flag."""
        return self.sources.get(key, "default")
