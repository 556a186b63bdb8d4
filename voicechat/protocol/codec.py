"""JSON objects to typed server events. Pure: no sockets, no clock.

``decode_server`` turns one server frame into a typed event (``events.UnknownEvent`` for
types it does not know, ``MalformedEvent`` raised for frames that cannot be events at all or
lack a field voicechat needs), through one parser per type in ``_PARSERS``. The text of a frame
becomes safe Python values first, in ``voicechat.protocol.jsontext``, whose names are also
re-exported here (``codec.parse_json``, ``codec.encode``, ``codec.MalformedEvent``, …).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from typing import Any

from voicechat.protocol import events as ev
from voicechat.protocol.jsontext import (
    MAX_DEPTH,
    MAX_NUMBER,
    LimitError,
    MalformedEvent,
    b64decode_audio,
    b64encode_audio,
    decode_client,
    decode_message,
    encode,
    loads_object,
    parse_json,
    safe_text,
    text_frame,
)

__all__ = [
    "KNOWN_SERVER_TYPES", "MAX_DEPTH", "MAX_NUMBER", "LimitError", "MalformedEvent", "b64decode_audio",
    "b64encode_audio", "decode_client", "decode_message", "decode_server", "encode", "loads_object", "parse_item",
    "parse_json", "parse_server", "safe_text", "text_frame",
]  # fmt: skip

log = logging.getLogger(__name__)


def decode_server(frame: str | bytes) -> ev.ServerEvent:
    return parse_server(loads_object(frame))


def parse_server(obj: dict[str, Any]) -> ev.ServerEvent:
    etype = obj["type"]
    parser = _PARSERS.get(etype)
    event_id = obj.get("event_id")
    eid = event_id if isinstance(event_id, str) else ""
    if parser is None:
        log.debug("unknown server event %s", etype)
        return ev.UnknownEvent(eid, etype, obj)
    try:
        return parser(eid, obj)
    except MalformedEvent as exc:
        raise MalformedEvent(f"{etype}: {exc.message}") from None


# ---- field readers -------------------------------------------------------------------------


def _str(d: dict[str, Any], key: str) -> str:
    v = d.get(key)
    if not isinstance(v, str):
        raise MalformedEvent(f"field '{key}' is missing or not a string")
    return v


def _opt_str(d: dict[str, Any], key: str) -> str | None:
    v = d.get(key)
    return v if isinstance(v, str) else None


def _int(d: dict[str, Any], key: str, default: int | None = None) -> int:
    """A count, index or time in ms: a number from 0 to `MAX_NUMBER` (``parse_json`` bounds it above)."""
    v = d.get(key, default)
    if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v):
        raise MalformedEvent(f"field '{key}' is missing or not a number")
    if v < 0:
        raise MalformedEvent(f"field '{key}' is negative ({v})")
    return int(v)


def _list(d: dict[str, Any], key: str) -> list[Any]:
    v = d.get(key)
    return v if isinstance(v, list) else []


def _dict(d: dict[str, Any], key: str) -> dict[str, Any]:
    """An optional object field; empty when absent or not an object."""
    v = d.get(key)
    return v if isinstance(v, dict) else {}


def _obj(d: dict[str, Any], key: str) -> dict[str, Any]:
    v = d.get(key)
    if not isinstance(v, dict):
        raise MalformedEvent(f"field '{key}' is missing or not an object")
    return v


def parse_part(d: dict[str, Any]) -> ev.ContentPart:
    return ev.ContentPart(
        type=str(d.get("type", "")), text=_opt_str(d, "text"), transcript=_opt_str(d, "transcript")
    )


def parse_item(d: dict[str, Any]) -> ev.Item:
    parts = tuple(parse_part(p) for p in _list(d, "content") if isinstance(p, dict))
    approve = d.get("approve")
    return ev.Item(
        id=_str(d, "id"),
        type=str(d.get("type", "")),
        role=_opt_str(d, "role"),
        status=_opt_str(d, "status"),
        content=parts,
        name=_opt_str(d, "name"),
        call_id=_opt_str(d, "call_id"),
        arguments=_opt_str(d, "arguments"),
        output=_opt_str(d, "output"),
        server_label=_opt_str(d, "server_label"),
        error=_mcp_error(d.get("error")),
        approval_request_id=_opt_str(d, "approval_request_id"),
        approve=approve if isinstance(approve, bool) else None,
        tools=tuple(str(t["name"]) for t in _list(d, "tools") if isinstance(t, dict) and isinstance(t.get("name"), str)),
    )


def _mcp_error(v: Any) -> str | None:
    """An MCP call's error on one line (``HTTP 401: unauthorized``); None when there is none."""
    if not isinstance(v, dict):
        return None
    message = str(v.get("message") or "failed")
    code = v.get("code")
    kind = {"http_error": "HTTP", "protocol_error": "MCP protocol error"}.get(str(v.get("type")))
    if kind is None:
        return message
    return f"{kind} {code}: {message}" if isinstance(code, int) else f"{kind}: {message}"


def parse_usage(d: Any) -> ev.Usage | None:
    if not isinstance(d, dict):
        return None

    def n(obj: dict[str, Any], key: str) -> int:
        """A token count: 0 when it is not a number or is negative (usage is informative only)."""
        v = obj.get(key)
        ok = isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v) and v > 0
        return int(v) if ok else 0

    ind = _dict(d, "input_token_details")
    cached = _dict(ind, "cached_tokens_details")
    outd = _dict(d, "output_token_details")
    return ev.Usage(
        input_tokens=n(d, "input_tokens"),
        output_tokens=n(d, "output_tokens"),
        total_tokens=n(d, "total_tokens"),
        input_text=n(ind, "text_tokens"),
        input_audio=n(ind, "audio_tokens"),
        input_image=n(ind, "image_tokens"),
        input_cached=n(ind, "cached_tokens"),
        cached_text=n(cached, "text_tokens"),
        cached_audio=n(cached, "audio_tokens"),
        cached_image=n(cached, "image_tokens"),
        output_text=n(outd, "text_tokens"),
        output_audio=n(outd, "audio_tokens"),
    )


def parse_response(d: dict[str, Any]) -> ev.Response:
    details = _dict(d, "status_details")
    output = tuple(parse_item(i) for i in _list(d, "output") if isinstance(i, dict) and "id" in i)
    return ev.Response(
        id=_str(d, "id"),
        status=str(d.get("status", "")),
        reason=_opt_str(details, "reason"),
        output=output,
        usage=parse_usage(d.get("usage")),
        error_message=_opt_str(_dict(details, "error"), "message"),
        conversation_id=_opt_str(d, "conversation_id"),
    )


def _part_ids(d: dict[str, Any]) -> tuple[str, str, int, int]:
    return (_str(d, "response_id"), _str(d, "item_id"), _int(d, "output_index", 0), _int(d, "content_index", 0))


def _error(eid: str, d: dict[str, Any]) -> ev.ErrorEvent:
    e = _obj(d, "error")
    return ev.ErrorEvent(
        eid,
        type=str(e.get("type") or "error"),
        code=_opt_str(e, "code"),
        message=str(e.get("message") or "(no message)"),
        param=_opt_str(e, "param"),
        client_event_id=_opt_str(e, "event_id"),
    )


Parser = Callable[[str, dict[str, Any]], ev.ServerEvent]


def _list_tools(status: str) -> Parser:
    return lambda e, d: ev.McpListTools(e, _str(d, "item_id"), status)


def _mcp_call(status: str) -> Parser:
    return lambda e, d: ev.McpCall(e, _str(d, "item_id"), _int(d, "output_index", 0), status)


_PARSERS: dict[str, Parser] = {
    "error": _error,
    "session.created": lambda e, d: ev.SessionCreated(e, _obj(d, "session")),
    "session.updated": lambda e, d: ev.SessionUpdated(e, _obj(d, "session")),
    "input_audio_buffer.speech_started": lambda e, d: ev.SpeechStarted(
        e, _str(d, "item_id"), _int(d, "audio_start_ms", 0)
    ),
    "input_audio_buffer.speech_stopped": lambda e, d: ev.SpeechStopped(
        e, _str(d, "item_id"), _int(d, "audio_end_ms", 0)
    ),
    "input_audio_buffer.committed": lambda e, d: ev.BufferCommitted(
        e, _str(d, "item_id"), _opt_str(d, "previous_item_id")
    ),
    "input_audio_buffer.cleared": lambda e, d: ev.BufferCleared(e),
    "input_audio_buffer.timeout_triggered": lambda e, d: ev.BufferTimeoutTriggered(
        e, _str(d, "item_id"), _int(d, "audio_start_ms", 0), _int(d, "audio_end_ms", 0)
    ),
    "conversation.item.added": lambda e, d: ev.ItemAdded(
        e, parse_item(_obj(d, "item")), _opt_str(d, "previous_item_id")
    ),
    "conversation.item.done": lambda e, d: ev.ItemDone(
        e, parse_item(_obj(d, "item")), _opt_str(d, "previous_item_id")
    ),
    "conversation.item.retrieved": lambda e, d: ev.ItemRetrieved(e, parse_item(_obj(d, "item"))),
    "conversation.item.truncated": lambda e, d: ev.ItemTruncated(
        e, _str(d, "item_id"), _int(d, "content_index", 0), _int(d, "audio_end_ms")
    ),
    "conversation.item.deleted": lambda e, d: ev.ItemDeleted(e, _str(d, "item_id")),
    "conversation.item.input_audio_transcription.delta": lambda e, d: ev.InputTranscriptDelta(
        e, _str(d, "item_id"), _int(d, "content_index", 0), str(d.get("delta") or "")
    ),
    "conversation.item.input_audio_transcription.completed": lambda e, d: ev.InputTranscriptCompleted(
        e, _str(d, "item_id"), _int(d, "content_index", 0), str(d.get("transcript") or "")
    ),
    "conversation.item.input_audio_transcription.failed": lambda e, d: ev.InputTranscriptFailed(
        e,
        _str(d, "item_id"),
        _int(d, "content_index", 0),
        str(_dict(d, "error").get("message") or "transcription failed"),
    ),
    "response.created": lambda e, d: ev.ResponseCreated(e, parse_response(_obj(d, "response"))),
    "response.done": lambda e, d: ev.ResponseDone(e, parse_response(_obj(d, "response"))),
    "response.output_item.added": lambda e, d: ev.OutputItemAdded(
        e, _str(d, "response_id"), _int(d, "output_index", 0), parse_item(_obj(d, "item"))
    ),
    "response.output_item.done": lambda e, d: ev.OutputItemDone(
        e, _str(d, "response_id"), _int(d, "output_index", 0), parse_item(_obj(d, "item"))
    ),
    "response.content_part.added": lambda e, d: ev.ContentPartAdded(
        e, *_part_ids(d), parse_part(_obj(d, "part"))
    ),
    "response.content_part.done": lambda e, d: ev.ContentPartDone(
        e, *_part_ids(d), parse_part(_obj(d, "part"))
    ),
    "response.output_audio.delta": lambda e, d: ev.AudioDelta(
        e, *_part_ids(d), b64decode_audio(_str(d, "delta"))
    ),
    "response.output_audio.done": lambda e, d: ev.AudioDone(e, *_part_ids(d)),
    "response.output_audio_transcript.delta": lambda e, d: ev.AudioTranscriptDelta(
        e, *_part_ids(d), str(d.get("delta") or "")
    ),
    "response.output_audio_transcript.done": lambda e, d: ev.AudioTranscriptDone(
        e, *_part_ids(d), str(d.get("transcript") or "")
    ),
    "response.output_text.delta": lambda e, d: ev.TextDelta(e, *_part_ids(d), str(d.get("delta") or "")),
    "response.output_text.done": lambda e, d: ev.TextDone(e, *_part_ids(d), str(d.get("text") or "")),
    "response.function_call_arguments.delta": lambda e, d: ev.FunctionCallArgumentsDelta(
        e, _str(d, "response_id"), _str(d, "item_id"), _int(d, "output_index", 0),
        _str(d, "call_id"), str(d.get("delta") or ""),
    ),
    "response.function_call_arguments.done": lambda e, d: ev.FunctionCallArgumentsDone(
        e, _str(d, "response_id"), _str(d, "item_id"), _int(d, "output_index", 0),
        _str(d, "call_id"), str(d.get("name") or ""), str(d.get("arguments") or ""),
    ),
    **{f"mcp_list_tools.{status}": _list_tools(status) for status in ("in_progress", "completed", "failed")},
    "response.mcp_call_arguments.delta": lambda e, d: ev.McpCallArgumentsDelta(
        e, _str(d, "response_id"), _str(d, "item_id"), _int(d, "output_index", 0), str(d.get("delta") or ""),
    ),
    "response.mcp_call_arguments.done": lambda e, d: ev.McpCallArgumentsDone(
        e, _str(d, "response_id"), _str(d, "item_id"), _int(d, "output_index", 0), str(d.get("arguments") or ""),
    ),
    **{f"response.mcp_call.{status}": _mcp_call(status) for status in ("in_progress", "completed", "failed")},
    "rate_limits.updated": lambda e, d: ev.RateLimitsUpdated(
        e, tuple(r for r in _list(d, "rate_limits") if isinstance(r, dict))
    ),
}

# Beta event names that some compatible servers still emit: same payloads, GA meaning.
for _beta, _ga in {
    "conversation.item.created": "conversation.item.added",  # still in the SDK's union
    "response.audio.delta": "response.output_audio.delta",
    "response.audio.done": "response.output_audio.done",
    "response.audio_transcript.delta": "response.output_audio_transcript.delta",
    "response.audio_transcript.done": "response.output_audio_transcript.done",
    "response.text.delta": "response.output_text.delta",
    "response.text.done": "response.output_text.done",
}.items():
    _PARSERS[_beta] = _PARSERS[_ga]

KNOWN_SERVER_TYPES = frozenset(_PARSERS)
