"""State shared by the parts of one sans-I/O realtime session, and what a step returns.

``RealtimeSession`` (session.py) is assembled from ``SessionBase`` plus three mixins:
``InputAudioMixin`` (input buffer, VAD, commits, transcription), ``ResponsesMixin``
(response lifecycle) and ``McpMixin`` (emulated MCP servers). Every step takes ``now`` (monotonic seconds) and returns an ``Output``:
server events to send, recognition jobs to run off the event loop, and maybe a close.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from voicechat.protocol.codec import b64encode_audio as b64
from voicechat.server import apierrors as E
from voicechat.server.audioformat import InputDecoder, encode_output
from voicechat.server.brain import Brain, Turn
from voicechat.server.config import default_session
from voicechat.server.ids import IdFactory
from voicechat.server.items import Conversation, Item
from voicechat.server.options import ServerOptions
from voicechat.server.stream import PlannedOutput, ResponseStream
from voicechat.server.usage import RateLimits, Tokens
from voicechat.server.vad import EnergyVad

Event = dict[str, Any]


@dataclass(frozen=True)
class TranscriptionJob:
    """Recognise ``pcm`` (PCM16 24 kHz) and report back with ``transcription_done``."""

    item_id: str
    pcm: bytes


@dataclass
class Output:
    events: list[Event] = field(default_factory=list)
    jobs: list[TranscriptionJob] = field(default_factory=list)
    close: tuple[int, str] | None = None
    received: Event | None = None


@dataclass
class PendingTranscript:
    """A committed user audio item waiting for (or holding) its recognised transcript."""

    mode: str  # before | during | after
    emit: bool  # session asked for transcription events
    model: str
    audio_ms: float
    done: bool = False
    text: str | None = None


@dataclass
class ActiveResponse:
    id: str
    base: Event  # the response object as response.created shows it
    params: dict[str, Any]
    turn_item_id: str | None
    waiting_for: str | None = None  # user item whose transcript must arrive first
    wait_deadline: float | None = None  # stop waiting then (None: wait for it)
    created_sent: bool = False
    stream: ResponseStream | None = None
    started_at: float = 0.0
    audio_seconds: float = 0.0


class SessionBase:
    """Fields and emit helpers every part of the session uses."""

    def __init__(
        self,
        opts: ServerOptions,
        model: str,
        *,
        now: float,
        wall_time: float,
        brain: Brain,
        recognizer_available: bool,
        rng: random.Random,
    ) -> None:
        self.opts = opts
        self.brain = brain
        self.recognizer_available = recognizer_available
        self.rng = rng
        self.ids = IdFactory(rng)
        self.conversation_id = self.ids.make("conv")
        self.config = default_session(self.ids.make("sess"), model, int(wall_time + opts.session_seconds))
        self.expires_at = now + opts.session_seconds
        self.conversation = Conversation()
        self.closed = False
        self._out = Output()
        # input audio
        self.decoder = InputDecoder()
        self.buffer = bytearray()  # internal PCM16 24 kHz since ``buffer_start``
        self.buffer_start = 0  # session timeline sample of buffer[0]
        self.total_in = 0  # samples appended this session
        self.vad: EnergyVad | None = None
        self.speech_item_id: str | None = None
        self.speech_start = 0
        self.idle_deadline: float | None = None
        self.pending_tx: dict[str, PendingTranscript] = {}
        # responses
        self.active: ActiveResponse | None = None
        self.voice_locked = False
        self.rate_limits = RateLimits()
        self.cached = Tokens()
        self.timed: list[tuple[float, int, list[Event]]] = []
        self.after_response: dict[str, list[Event]] = {}
        self._seq = 0
        # MCP servers (mcp.py)
        self.mcp_listed: dict[str, list[str]] = {}  # server label -> its tool names (listed fine)
        self.mcp_answered: set[str] = set()  # approval responses a response has acted on

    # ---- emitting ---------------------------------------------------------------------

    def emit(self, event: Event) -> None:
        """Queue one server event, stamping a fresh ``event_id`` right after ``type``."""
        stamped: Event = {"type": event["type"], "event_id": self.ids.make("event")}
        stamped.update((k, v) for k, v in event.items() if k != "type")
        if stamped["type"] == "response.output_audio.delta":
            self.voice_locked = True
        self._out.events.append(stamped)

    def emit_all(self, events: list[Event]) -> None:
        for event in events:
            self.emit(event)

    def emit_error(self, error: E.ApiError, client_event_id: str | None = None) -> None:
        self.emit({"type": "error", "error": error.body(client_event_id)})

    def take_output(self) -> Output:
        if self._out.events:  # audio only enters the conversation with an event (committed, added, delta)
            self.conversation.bound_audio()
        out, self._out = self._out, Output()
        return out

    def schedule(self, due: float, events: list[Event]) -> None:
        self._seq += 1
        self.timed.append((due, self._seq, events))
        self.timed.sort(key=lambda t: (t[0], t[1]))

    # ---- implemented by the mixins (session.py assembles them) -------------------------

    def request_response(self, params: dict[str, Any], now: float) -> None:
        raise NotImplementedError

    def cancel_active(self, reason: str, now: float) -> None:
        raise NotImplementedError

    def arm_idle(self, playback_end: float) -> None:
        raise NotImplementedError

    def on_transcript_ready(self, item_id: str, events: list[Event], now: float) -> None:
        raise NotImplementedError

    def plan_mcp(self, turn: Turn, modality: str) -> list[PlannedOutput] | None:
        raise NotImplementedError

    # ---- audio helpers ----------------------------------------------------------------

    @staticmethod
    def turn_audio(item: Item) -> np.ndarray | None:
        """The item's first audio content as int16 samples, if it has audio."""
        if 0 not in item.audio:
            return None
        return np.frombuffer(bytes(item.audio[0]), dtype=np.int16)

    @property
    def input_format(self) -> dict[str, Any]:
        fmt: dict[str, Any] = self.config["audio"]["input"]["format"]
        return fmt

    @property
    def output_format(self) -> dict[str, Any]:
        fmt: dict[str, Any] = self.config["audio"]["output"]["format"]
        return fmt

    def encode_for(self, fmt: dict[str, Any]) -> Any:
        def encode(pcm: bytes) -> str:
            return b64(encode_output(fmt, np.frombuffer(pcm, dtype=np.int16)))

        return encode
