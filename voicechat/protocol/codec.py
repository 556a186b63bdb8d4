"""JSON text frames to typed events and back. Pure: no sockets, no clock.

``decode_server`` turns one server frame into a typed event (``events.UnknownEvent`` for
types it does not know, ``MalformedEvent`` raised for frames that cannot be events at all or
lack a field voicechat needs). ``decode_client`` is the server-side counterpart for frames
the local server receives.

This is the one place where text from the other side becomes Python values, so everything
past it can trust them (`parse_json`):

* a text frame is UTF-8 or it is a malformed frame (`text_frame`), never a dropped connection;
* no string holds a lone UTF-16 surrogate (``"\\ud83d"`` alone is valid JSON, yet no UTF-8
  writer can write it): each becomes U+FFFD, in values and keys alike;
* no number is beyond ±2**53 (`MAX_NUMBER`) or not finite (``NaN``, ``Infinity``, ``1e999``,
  300 digits): such a number is read as ``null``, which every reader already takes as absent;
* nothing is nested deeper than `MAX_DEPTH` objects and arrays: such a frame is malformed.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
import math
import re
from collections.abc import Callable
from typing import Any

from voicechat.errors import ProtocolError
from voicechat.protocol import events as ev

log = logging.getLogger(__name__)


MAX_DEPTH = 64
"""Objects and arrays nested in one frame, at most (real events nest about 6 deep; a session's
tool schemas a few more). Deeper frames are malformed: walking them would exhaust the stack."""
MAX_NUMBER = 2**53
"""The largest magnitude of a number in a frame (the integers a double holds exactly)."""
_MAX_DIGITS = len(str(MAX_NUMBER))

_SURROGATE = re.compile("[\ud800-\udfff]")
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89abcdefABCDEF]")  # how a surrogate gets into JSON text


class MalformedEvent(ProtocolError):
    """A frame that is not a valid event (bad JSON, binary, missing or mistyped field)."""


class LimitError(ValueError):
    """Valid JSON beyond what voicechat accepts (nested too deeply)."""


def encode(event: dict[str, Any]) -> str:
    return json.dumps(event, separators=(",", ":"), ensure_ascii=False)


def b64encode_audio(pcm: bytes) -> str:
    return base64.b64encode(pcm).decode("ascii")


def b64decode_audio(data: str, *, what: str = "audio") -> bytes:
    try:
        return base64.b64decode(data, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise MalformedEvent(f"{what} is not valid base64") from exc


def safe_text(text: str) -> str:
    """``text`` with every lone UTF-16 surrogate replaced by U+FFFD (writable as UTF-8)."""
    return _SURROGATE.sub("\ufffd", text)


def text_frame(data: bytes | bytearray | memoryview) -> str:
    """The text of a text frame as it arrived (bytes), or `MalformedEvent` if it is not UTF-8."""
    try:
        return bytes(data).decode("utf-8")
    except UnicodeDecodeError as exc:
        raise MalformedEvent(f"text frame is not valid UTF-8 (byte {exc.start} of {len(data)})") from exc


def _int_token(token: str) -> int | None:
    if len(token) - token.startswith("-") > _MAX_DIGITS:
        return None  # never int() of a long token: quadratic, and past 4300 digits a ValueError
    value = int(token)
    return value if -MAX_NUMBER <= value <= MAX_NUMBER else None


def _float_token(token: str) -> float | None:
    value = float(token)
    return value if math.isfinite(value) and -MAX_NUMBER <= value <= MAX_NUMBER else None


def _constant(token: str) -> None:
    return None  # NaN, Infinity, -Infinity: not JSON numbers


def parse_json(text: str) -> Any:
    """One JSON text as Python values that are safe everywhere (see the module docstring).

    Raises `MalformedEvent` for text that is not JSON or nests deeper than `MAX_DEPTH`.
    """
    try:
        value = json.loads(text, parse_int=_int_token, parse_float=_float_token, parse_constant=_constant)
    except RecursionError as exc:  # deeper than the parser's own stack allows
        raise MalformedEvent(f"frame is nested more than {MAX_DEPTH} levels deep") from LimitError(str(exc))
    except ValueError as exc:
        raise MalformedEvent(f"frame is not JSON: {_preview(text)}") from exc
    # Both checks cost a walk over every container; cheap tests decide whether one is needed.
    deep = text.count("{") + text.count("[") > MAX_DEPTH
    if deep or _SURROGATE_ESCAPE.search(text):
        try:
            value = _sanitised(value)
        except LimitError as exc:
            raise MalformedEvent(f"frame is nested more than {MAX_DEPTH} levels deep") from exc
    return value


def _sanitised(root: Any) -> Any:
    """``root`` with lone surrogates replaced in every string (in place); `LimitError` past `MAX_DEPTH`.

    Iterative, so no depth of nesting can exhaust the stack.
    """
    if isinstance(root, str):
        return safe_text(root)
    stack: list[tuple[Any, int]] = [(root, 1)]
    while stack:
        node, depth = stack.pop()
        if depth > MAX_DEPTH:
            raise LimitError(f"nested more than {MAX_DEPTH} levels deep")
        if isinstance(node, dict):
            if any(_SURROGATE.search(key) for key in node):
                fixed = {safe_text(key): value for key, value in node.items()}
                node.clear()
                node.update(fixed)
            pairs: Any = node.items()
        elif isinstance(node, list):
            pairs = enumerate(node)
        else:
            continue
        for key, value in list(pairs):
            if isinstance(value, str):
                if _SURROGATE.search(value):
                    node[key] = safe_text(value)
            elif isinstance(value, dict | list):
                stack.append((value, depth + 1))
    return root


def loads_object(frame: str | bytes) -> dict[str, Any]:
    """Parse one text frame into a JSON object with a string ``type`` (bytes: a binary frame)."""
    if isinstance(frame, bytes | bytearray | memoryview):
        raise MalformedEvent(f"unexpected binary frame ({len(frame)} bytes); events are JSON text")
    obj = parse_json(frame)
    if not isinstance(obj, dict):
        raise MalformedEvent(f"frame is not a JSON object: {_preview(frame)}")
    if not isinstance(obj.get("type"), str):
        raise MalformedEvent("the 'type' field is missing")
    return obj


def decode_client(frame: str | bytes) -> dict[str, Any]:
    """Server side: one client frame as a dict (validated in depth by the server)."""
    return loads_object(frame)


def decode_server(frame: str | bytes) -> ev.ServerEvent:
    return parse_server(loads_object(frame))


def decode_message(data: bytes, *, binary: bool) -> dict[str, Any]:
    """A WebSocket message as received (undecoded bytes; ``binary``: it came as a binary frame)
    as a JSON object with a string ``type``; `MalformedEvent` otherwise."""
    return loads_object(bytes(data) if binary else text_frame(data))


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
    )


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


def _preview(frame: str, limit: int = 60) -> str:
    text = frame if len(frame) <= limit else frame[:limit] + "…"
    return repr(text)
