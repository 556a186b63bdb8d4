"""The session settings voicechat sends, and their GA ``session.update`` wire shape."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from voicechat.protocol.constants import DEFAULT_VOICE, WIRE_RATE

PCM_FORMAT: dict[str, Any] = {"type": "audio/pcm", "rate": WIRE_RATE}
WIRE_FORMATS: dict[str, dict[str, Any]] = {
    "pcm": PCM_FORMAT, "pcmu": {"type": "audio/pcmu"}, "pcma": {"type": "audio/pcma"},
}
"""``--audio-format`` → the session's ``audio.input.format`` and ``audio.output.format``
(G.711 μ-law and A-law are 8 kHz; the client converts, see ``voicechat.audio.g711``)."""

# Client-side limits of the session fields voicechat exposes (reference §2.1).
SPEED_RANGE = (0.25, 1.5)
IDLE_TIMEOUT_RANGE_MS = (5000, 30_000)
MAX_OUTPUT_TOKENS = 32_768
"""The docs say 1–4096, but the current models (gpt-realtime-2, -2.1) allow up to 32k out."""


@dataclass(frozen=True, slots=True)
class TurnDetection:
    """Server-side turn detection (``server_vad`` or ``semantic_vad``)."""

    type: Literal["server_vad", "semantic_vad"] = "server_vad"
    threshold: float | None = None
    prefix_padding_ms: int | None = None
    silence_duration_ms: int | None = None
    idle_timeout_ms: int | None = None
    eagerness: str | None = None
    create_response: bool = True
    interrupt_response: bool = True

    def to_wire(self) -> dict[str, Any]:
        td: dict[str, Any] = {"type": self.type}
        if self.type == "server_vad":
            for key in ("threshold", "prefix_padding_ms", "silence_duration_ms", "idle_timeout_ms"):
                value = getattr(self, key)
                if value is not None:
                    td[key] = value
        elif self.eagerness is not None:
            td["eagerness"] = self.eagerness
        td["create_response"] = self.create_response
        td["interrupt_response"] = self.interrupt_response
        return td


@dataclass(frozen=True, slots=True)
class SessionConfig:
    """Everything voicechat configures on a session; ``None`` leaves the server default."""

    instructions: str | None = None
    voice: str = DEFAULT_VOICE
    output_modalities: tuple[str, ...] = ("audio",)
    turn_detection: TurnDetection | None = field(default_factory=TurnDetection)
    transcribe_model: str | None = None
    language: str | None = None
    noise_reduction: str | None = None
    speed: float | None = None
    max_output_tokens: int | str | None = None
    """A token count, or ``"inf"`` for the model's own limit."""
    tools: tuple[dict[str, Any], ...] = ()
    audio_format: str = "pcm"
    """One of ``WIRE_FORMATS``, for both directions."""
    extra: tuple[tuple[str, Any], ...] = ()
    """Further session fields as (dotted path, value), set last: a setting the table declares
    with a wire path and no typed field here reaches the session without another edit."""

    @property
    def server_interrupts(self) -> bool:
        """True when the server cancels an active response by itself on speech."""
        return self.turn_detection is not None and self.turn_detection.interrupt_response

    @property
    def server_responds(self) -> bool:
        """True when the server creates a response by itself after a detected turn."""
        return self.turn_detection is not None and self.turn_detection.create_response

    def to_wire(self) -> dict[str, Any]:
        """The ``session`` object of a GA ``session.update``."""
        audio_in: dict[str, Any] = {
            "format": dict(WIRE_FORMATS[self.audio_format]),
            "turn_detection": self.turn_detection.to_wire() if self.turn_detection else None,
        }
        if self.transcribe_model:
            transcription: dict[str, Any] = {"model": self.transcribe_model}
            if self.language:
                transcription["language"] = self.language
            audio_in["transcription"] = transcription
        else:
            audio_in["transcription"] = None
        audio_in["noise_reduction"] = (
            {"type": self.noise_reduction} if self.noise_reduction else None
        )
        voice: Any = {"id": self.voice} if self.voice.startswith("voice_") else self.voice
        audio_out: dict[str, Any] = {"format": dict(WIRE_FORMATS[self.audio_format]), "voice": voice}
        if self.speed is not None:
            audio_out["speed"] = self.speed
        session: dict[str, Any] = {
            "type": "realtime",
            "output_modalities": list(self.output_modalities),
            "audio": {"input": audio_in, "output": audio_out},
        }
        if self.instructions is not None:
            session["instructions"] = self.instructions
        if self.max_output_tokens is not None:
            session["max_output_tokens"] = self.max_output_tokens
        if self.tools:
            session["tools"] = [dict(t) for t in self.tools]
        for path, value in self.extra:
            _put(session, path, value)
        return session


def _put(session: dict[str, Any], path: str, value: Any) -> None:
    """Set ``session[a][b]...`` for the dotted ``path``, making the containers it needs; a field
    under one that is off (``turn_detection: null``) is left out with it."""
    *parents, name = path.split(".")
    node: Any = session
    for part in parents:
        node = node.setdefault(part, {}) if isinstance(node, dict) else None
    if isinstance(node, dict):
        node[name] = value
