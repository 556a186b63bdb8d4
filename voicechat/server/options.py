"""Options of the local realtime-compatible server (one frozen dataclass, all defaults).

Everything a test or the ``voicechat serve`` command can tune lives here: pacing of the
streamed reply, the brain that decides what to say, the optional speech recogniser, session
lifetime, and a handful of simple fault injections for reliability tests.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    from voicechat.server.brain import Brain

Recognizer = Callable[[bytes], str]
"""A speech recogniser: PCM16 LE mono 24 kHz bytes in, transcript out (may raise)."""

TranscriptTiming = Literal["before", "during", "after", "random"]


@dataclass(frozen=True)
class ServerOptions:
    """How the local server behaves. Every field has a default; tests override a few.

    Attributes:
        api_key: when set, ``Authorization: Bearer <api_key>`` (or Azure ``api-key``) must
            match exactly; when ``None`` any non-empty key is accepted.
        allow_remote: permit binding a non-loopback host.
        extra_models: model names accepted besides ``gpt-realtime*``.
        brain: what replies (``None``: a fresh ``EchoBrain``). One instance serves every
            connection, so a ``ScriptedBrain`` script continues across reconnects.
        recognizer: ``"auto"`` (pocketsphinx when installed), ``"none"``, or a callable.
        speed: how many times faster than real time reply audio is streamed
            (``math.inf``: as fast as possible).
        delta_ms: inclusive range of audio delta durations in ms, drawn per delta.
        seed: seed of the per-connection RNG (delta sizes, transcript timing); ``None``
            draws a random seed.
        items_per_response: 1, or 2 to split a spoken reply into two assistant items.
        transcript_timing: where input-transcription events land relative to the response
            of the same turn; ``"random"`` picks one of before/during/after per turn.
        transcript_wait_ms: how long a response whose brain wants the turn's transcript
            waits for the recogniser before replying without it (``transcript_timing``
            ``"before"`` waits without limit).
        session_seconds: session lifetime; at expiry ``session_expired`` and close 1001.
        drop_after_deltas: abort TCP (no close frame) after this many audio deltas.
        close_code_after_deltas: ``(code, reason)`` close after the Nth audio delta, N taken
            from ``drop_after_deltas`` when set, else after the first delta.
        inject_frames: raw frames sent right after ``session.created``, or with
            ``inject_after`` right after the first event of that type (once per connection).
        inject_after: a server event type, e.g. ``"response.output_audio.delta"`` to inject
            mid-reply; ``None``: at the start.
        delta_delay_ms: extra delay added before every audio delta.
        handshake_status: force this HTTP status at the handshake (401/403/404/500…).
        fault_connections: 1-based connection numbers the delta faults apply to
            (``None``: every connection).
        record_limit: bound of ``LocalServer.received`` / ``.emitted``.
    """

    api_key: str | None = None
    allow_remote: bool = False
    extra_models: tuple[str, ...] = ()
    brain: Brain | None = None
    recognizer: Literal["auto", "none"] | Recognizer = "auto"
    speed: float = 4.0
    delta_ms: tuple[int, int] = (20, 240)
    seed: int | None = None
    items_per_response: int = 1
    transcript_timing: TranscriptTiming = "random"
    transcript_wait_ms: float = 400.0
    session_seconds: float = 3600.0
    drop_after_deltas: int | None = None
    close_code_after_deltas: tuple[int, str] | None = None
    inject_frames: tuple[str | bytes, ...] = ()
    inject_after: str | None = None
    delta_delay_ms: float = 0.0
    handshake_status: int | None = None
    fault_connections: tuple[int, ...] | None = None
    record_limit: int = 10_000

    def __post_init__(self) -> None:
        if not self.speed > 0:
            raise ValueError("speed must be positive")
        lo, hi = self.delta_ms
        if not 1 <= lo <= hi:
            raise ValueError("delta_ms must be (lo, hi) with 1 <= lo <= hi")
        if self.items_per_response not in (1, 2):
            raise ValueError("items_per_response must be 1 or 2")
        if self.transcript_timing not in ("before", "during", "after", "random"):
            raise ValueError(f"unknown transcript_timing {self.transcript_timing!r}")
        if self.transcript_wait_ms < 0:
            raise ValueError("transcript_wait_ms must not be negative")
        if not self.session_seconds > 0:
            raise ValueError("session_seconds must be positive")
        if self.record_limit < 1:
            raise ValueError("record_limit must be at least 1")

    def faults_apply(self, connection_number: int) -> bool:
        """True when the delta faults are active on this (1-based) connection."""
        return self.fault_connections is None or connection_number in self.fault_connections
