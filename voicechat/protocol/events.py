"""Typed GA server events.

Every server frame becomes one frozen dataclass. Events voicechat does not know become
``UnknownEvent`` (never an exception). Both content spellings (``audio``/``output_audio``,
``text``/``output_text``) are accepted and normalised through ``ContentPart.kind``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True, slots=True)
class ContentPart:
    type: str
    text: str | None = None
    transcript: str | None = None

    @property
    def kind(self) -> str:
        """``audio``, ``text``, ``image`` or the raw type, whatever the spelling."""
        t = self.type
        if t in ("audio", "output_audio", "input_audio"):
            return "audio"
        if t in ("text", "output_text", "input_text"):
            return "text"
        if t == "input_image":
            return "image"
        return t

    @property
    def words(self) -> str | None:
        return self.text if self.text is not None else self.transcript


@dataclass(frozen=True, slots=True)
class Item:
    id: str
    type: str
    role: str | None = None
    status: str | None = None
    content: tuple[ContentPart, ...] = ()
    name: str | None = None
    call_id: str | None = None
    arguments: str | None = None
    output: str | None = None
    server_label: str | None = None  # MCP items: the server's label
    error: str | None = None  # an MCP call that failed: why, on one line
    approval_request_id: str | None = None  # an mcp_approval_response (or the call it allowed)
    approve: bool | None = None  # an mcp_approval_response: the answer
    tools: tuple[str, ...] = ()  # an mcp_list_tools item: the names of the server's tools


@dataclass(frozen=True, slots=True)
class Usage:
    input_tokens: int = 0
    output_tokens: int = 0
    total_tokens: int = 0
    input_text: int = 0
    input_audio: int = 0
    input_image: int = 0
    input_cached: int = 0
    cached_text: int = 0
    cached_audio: int = 0
    cached_image: int = 0
    output_text: int = 0
    output_audio: int = 0

    def __add__(self, other: Usage) -> Usage:
        return Usage(*(a + b for a, b in zip(_fields(self), _fields(other), strict=True)))


def _fields(u: Usage) -> tuple[int, ...]:
    return tuple(getattr(u, name) for name in Usage.__slots__)  # type: ignore[attr-defined]


@dataclass(frozen=True, slots=True)
class Response:
    id: str
    status: str
    reason: str | None = None
    output: tuple[Item, ...] = ()
    usage: Usage | None = None
    error_message: str | None = None
    conversation_id: str | None = None


@dataclass(frozen=True, slots=True)
class ServerEvent:
    event_id: str


@dataclass(frozen=True, slots=True)
class UnknownEvent(ServerEvent):
    type: str
    raw: dict[str, Any] = field(repr=False)


@dataclass(frozen=True, slots=True)
class ErrorEvent(ServerEvent):
    type: str
    code: str | None
    message: str
    param: str | None = None
    client_event_id: str | None = None


@dataclass(frozen=True, slots=True)
class SessionCreated(ServerEvent):
    session: dict[str, Any]


@dataclass(frozen=True, slots=True)
class SessionUpdated(ServerEvent):
    session: dict[str, Any]


@dataclass(frozen=True, slots=True)
class SpeechStarted(ServerEvent):
    item_id: str
    audio_start_ms: int


@dataclass(frozen=True, slots=True)
class SpeechStopped(ServerEvent):
    item_id: str
    audio_end_ms: int


@dataclass(frozen=True, slots=True)
class BufferCommitted(ServerEvent):
    item_id: str
    previous_item_id: str | None = None


@dataclass(frozen=True, slots=True)
class BufferCleared(ServerEvent):
    pass


@dataclass(frozen=True, slots=True)
class BufferTimeoutTriggered(ServerEvent):
    item_id: str
    audio_start_ms: int
    audio_end_ms: int


@dataclass(frozen=True, slots=True)
class ItemAdded(ServerEvent):
    item: Item
    previous_item_id: str | None = None


@dataclass(frozen=True, slots=True)
class ItemDone(ServerEvent):
    item: Item
    previous_item_id: str | None = None


@dataclass(frozen=True, slots=True)
class ItemRetrieved(ServerEvent):
    item: Item


@dataclass(frozen=True, slots=True)
class ItemTruncated(ServerEvent):
    item_id: str
    content_index: int
    audio_end_ms: int


@dataclass(frozen=True, slots=True)
class ItemDeleted(ServerEvent):
    item_id: str


@dataclass(frozen=True, slots=True)
class InputTranscriptDelta(ServerEvent):
    item_id: str
    content_index: int
    delta: str


@dataclass(frozen=True, slots=True)
class InputTranscriptCompleted(ServerEvent):
    item_id: str
    content_index: int
    transcript: str


@dataclass(frozen=True, slots=True)
class InputTranscriptFailed(ServerEvent):
    item_id: str
    content_index: int
    message: str


@dataclass(frozen=True, slots=True)
class ResponseCreated(ServerEvent):
    response: Response


@dataclass(frozen=True, slots=True)
class ResponseDone(ServerEvent):
    response: Response


@dataclass(frozen=True, slots=True)
class OutputItemAdded(ServerEvent):
    response_id: str
    output_index: int
    item: Item


@dataclass(frozen=True, slots=True)
class OutputItemDone(ServerEvent):
    response_id: str
    output_index: int
    item: Item


@dataclass(frozen=True, slots=True)
class _PartEvent(ServerEvent):
    response_id: str
    item_id: str
    output_index: int
    content_index: int


@dataclass(frozen=True, slots=True)
class ContentPartAdded(_PartEvent):
    part: ContentPart


@dataclass(frozen=True, slots=True)
class ContentPartDone(_PartEvent):
    part: ContentPart


@dataclass(frozen=True, slots=True)
class AudioDelta(_PartEvent):
    audio: bytes = field(repr=False)


@dataclass(frozen=True, slots=True)
class AudioDone(_PartEvent):
    pass


@dataclass(frozen=True, slots=True)
class AudioTranscriptDelta(_PartEvent):
    delta: str


@dataclass(frozen=True, slots=True)
class AudioTranscriptDone(_PartEvent):
    transcript: str


@dataclass(frozen=True, slots=True)
class TextDelta(_PartEvent):
    delta: str


@dataclass(frozen=True, slots=True)
class TextDone(_PartEvent):
    text: str


@dataclass(frozen=True, slots=True)
class FunctionCallArgumentsDelta(ServerEvent):
    response_id: str
    item_id: str
    output_index: int
    call_id: str
    delta: str


@dataclass(frozen=True, slots=True)
class FunctionCallArgumentsDone(ServerEvent):
    response_id: str
    item_id: str
    output_index: int
    call_id: str
    name: str
    arguments: str


@dataclass(frozen=True, slots=True)
class RateLimitsUpdated(ServerEvent):
    rate_limits: tuple[dict[str, Any], ...]


@dataclass(frozen=True, slots=True)
class McpListTools(ServerEvent):
    """``mcp_list_tools.in_progress`` / ``.completed`` / ``.failed``: a server's tool list."""

    item_id: str
    status: str  # "in_progress" | "completed" | "failed"


@dataclass(frozen=True, slots=True)
class McpCallArgumentsDelta(ServerEvent):
    response_id: str
    item_id: str
    output_index: int
    delta: str


@dataclass(frozen=True, slots=True)
class McpCallArgumentsDone(ServerEvent):
    response_id: str
    item_id: str
    output_index: int
    arguments: str


@dataclass(frozen=True, slots=True)
class McpCall(ServerEvent):
    """``response.mcp_call.in_progress`` / ``.completed`` / ``.failed`` (the item says the rest)."""

    item_id: str
    output_index: int
    status: str  # "in_progress" | "completed" | "failed"
