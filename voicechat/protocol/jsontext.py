"""JSON text frames as Python values that are safe everywhere. Pure: no sockets, no clock.

This is the one place where text from the other side becomes Python values, so everything
past it can trust them (`parse_json`):

* a text frame is UTF-8 or it is a malformed frame (`text_frame`), never a dropped connection;
* no string holds a lone UTF-16 surrogate (``"\\ud83d"`` alone is valid JSON, yet no UTF-8
  writer can write it): each becomes U+FFFD, in values and keys alike;
* no number is beyond ±2**53 (`MAX_NUMBER`) or not finite (``NaN``, ``Infinity``, ``1e999``,
  300 digits): such a number is read as ``null``, which every reader already takes as absent;
* nothing is nested deeper than `MAX_DEPTH` objects and arrays: such a frame is malformed.

``loads_object`` gives one frame as a JSON object with a string ``type`` (``MalformedEvent``
otherwise); ``decode_client`` is what the local server reads a client frame with. Turning an
object into a typed server event is ``voicechat.protocol.codec``'s job.
"""

from __future__ import annotations

import base64
import binascii
import json
import math
import re
from typing import Any

from voicechat.errors import ProtocolError

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


def decode_message(data: bytes, *, binary: bool) -> dict[str, Any]:
    """A WebSocket message as received (undecoded bytes; ``binary``: it came as a binary frame)
    as a JSON object with a string ``type``; `MalformedEvent` otherwise."""
    return loads_object(bytes(data) if binary else text_frame(data))


def _preview(frame: str, limit: int = 60) -> str:
    text = frame if len(frame) <= limit else frame[:limit] + "…"
    return repr(text)
