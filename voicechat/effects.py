"""What the session core asks the outside world to do. Plain data; ``voicechat.app`` carries them out.

Outbound client events come in two types so that whoever carries them decides by type, never by
sniffing a ``type`` string: ``SendAudio`` (a microphone append: droppable when the socket falls
behind, counted apart) and ``Send`` (every other event: never dropped). A function call's name
and arguments travel as a ``ToolCall`` beside the turn's text, so nothing parses ``name(args)``
back apart.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from voicechat.errors import VoicechatError
from voicechat.protocol.events import Usage


@dataclass(frozen=True, slots=True)
class ToolCall:
    """A function call as the model wrote it: its name and its JSON arguments (maybe invalid)."""

    name: str
    arguments: str
    server: str | None = None  # an MCP call: the label of the server the service called (name: label.tool)

    @property
    def text(self) -> str:
        """The call on one line, as the transcript has always shown it: ``name(arguments)``."""
        return f"{self.name}({self.arguments})"

    @classmethod
    def parse(cls, text: str) -> ToolCall | None:
        """The call a ``name(arguments)`` line stands for (a turn read back from a file), if any."""
        name, paren, rest = text.partition("(")
        return cls(name, rest[:-1]) if paren and rest.endswith(")") else None


@dataclass(frozen=True, slots=True)
class Turn:
    """One finished line of the conversation, in conversation order."""

    role: str  # "user" | "assistant" | "tool"
    text: str
    item_id: str
    started_at: float
    ended_at: float
    interrupted: bool = False
    kind: str = "text"  # "audio" | "text" | "function_call"
    audio_ms: int = 0
    usage: Usage | None = None
    note: str | None = None  # e.g. "no transcript"
    result: str | None = None  # a tool turn: what the call returned to the model
    call: ToolCall | None = None  # a tool turn: the call (its ``text`` is the turn's text)

    @property
    def tool_call(self) -> ToolCall | None:
        """A tool turn's call: as the session made it, or (a turn from elsewhere) read from its text."""
        if self.role != "tool" and self.kind != "function_call":
            return None
        return self.call if self.call is not None else ToolCall.parse(self.text)


@dataclass(frozen=True, slots=True)
class Send:
    """A client event that must reach the server, in order with the others."""

    event: dict[str, Any]


@dataclass(frozen=True, slots=True)
class SendAudio(Send):
    """A microphone append (``input_audio_buffer.append``): stale once late, so it may be dropped.

    A ``Send`` too (it is a client event like any other), so code that only sends never cares;
    the outbox, the event log and the bench tell it apart with ``isinstance``.
    """

    pcm_bytes: int = 0  # how much audio it carries


@dataclass(frozen=True, slots=True)
class Play:
    response_id: str
    item_id: str
    pcm: bytes = field(repr=False)


@dataclass(frozen=True, slots=True)
class AudioEnd:
    """No more audio is coming for now: play out what is queued, even below the prebuffer."""

    response_id: str


@dataclass(frozen=True, slots=True)
class Flush:
    """Silence the speaker now, then report played samples via ``Session.playback_flushed``."""

    reason: str
    item_ids: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Pause:
    """Hold the speaker (short fade), keeping queued audio: a local barge-in awaiting the server."""

    reason: str


@dataclass(frozen=True, slots=True)
class Resume:
    """The held audio plays on: the server did not hear the user start a turn."""


@dataclass(frozen=True, slots=True)
class TurnFinished:
    turn: Turn


@dataclass(frozen=True, slots=True)
class Notice:
    level: str  # "debug" | "info" | "warning" | "error"
    message: str


@dataclass(frozen=True, slots=True)
class Ready:
    """A server session is configured: the microphone may be sent."""

    session: dict[str, Any]
    expires_at: float | None = None  # when the server ends it (wall-clock seconds), if it said


@dataclass(frozen=True, slots=True)
class RunTool:
    """Run a function call the model made; report its output via ``Session.tool_result``."""

    call_id: str
    name: str
    arguments: str  # JSON text, as the model wrote it (may be invalid)
    item_id: str
    response_id: str


@dataclass(frozen=True, slots=True)
class AskApproval:
    """Ask the user whether the service may call an MCP server's tool; answer with
    ``Session.mcp_approval`` (no keyboard, or no answer in time: declined)."""

    request_id: str
    server_label: str
    name: str
    arguments: str  # JSON text, as the model wrote it


@dataclass(frozen=True, slots=True)
class Fatal:
    error: VoicechatError


@dataclass(frozen=True, slots=True)
class Reconnect:
    """This connection's server session is over (it expired): go on in a new connection."""

    reason: str


@dataclass(frozen=True, slots=True)
class Recycle:
    """The server session ends soon and nothing is going on: move to a new one now.

    Open and configure a new connection, then (if still ``Session.idle``) call
    ``Session.reconnected`` and close the old one with 1000.
    """

    seconds_left: float


Effect = (
    Send | Play | AudioEnd | Flush | Pause | Resume | TurnFinished | Notice | Ready | RunTool | AskApproval | Fatal
    | Reconnect | Recycle
)
