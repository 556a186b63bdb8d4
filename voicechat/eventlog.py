"""``--log-events FILE``: the raw event stream, for debugging, with nothing secret or bulky in it.

One JSON object per line, written and flushed as each frame passes (nothing is held in
memory): ``{"t": 0.0123, "dir": "send"|"recv", "event": {...}}``, where ``t`` is seconds on a
monotonic clock since the log was opened. Events are logged as the codec read them (bounded
numbers, no lone surrogates: `voicechat.protocol.codec.parse_json`). Frames that are no event are
logged by kind and length (``"binary": 12`` or ``"text": "<first 200 characters>"``) with
``"malformed"`` saying why; ``connect``, ``open``, ``failed`` and ``closed`` lines mark the
connection's life.

What is elided, always: audio (``audio`` fields, and ``delta`` of audio deltas) becomes
``"<audio: N bytes>"``; ``data:`` URLs (images) become ``"<image/png data URL: N bytes>"``;
values of ``Authorization``/``api-key`` style keys become ``"<elided>"``; any long string is
cut at ``MAX_STRING`` characters; and every secret voicechat holds (`voicechat.redact`) is
elided wherever it appears (a server could echo the key in an error message): in each string
and key before it is cut or serialised, and, in case an escape made a new form of it, in the
serialised line again.

This module also holds the filter that keeps credentials out of websockets' own debug log
(``--debug`` logs every handshake header).
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from voicechat.errors import UsageError
from voicechat.files import open_output, write_all
from voicechat.protocol.codec import MalformedEvent, parse_json, safe_text
from voicechat.redact import ELIDED, SECRETS, remember
from voicechat.transcript import json_line

log = logging.getLogger(__name__)

SECRET_KEYS = frozenset({"authorization", "proxy-authorization", "api-key", "api_key", "x-api-key"})
AUDIO_DELTAS = frozenset({"response.output_audio.delta", "response.audio.delta"})
MAX_STRING = 2000


def _b64_bytes(text: str) -> int:
    """Decoded length of base64 ``text`` (without decoding it)."""
    n = len(text.rstrip())
    return max(0, n * 3 // 4 - (len(text) - len(text.rstrip("="))))


def elide(value: Any, key: str = "", event_type: str = "") -> Any:
    """A copy of a JSON value with audio, images, credentials and long strings elided."""
    if isinstance(value, dict):
        # The outermost type names the event (an audio delta); inner types name parts and items.
        etype = event_type or (value["type"] if isinstance(value.get("type"), str) else "")
        return {SECRETS.scrub(k) if isinstance(k, str) else k: elide(v, str(k), etype) for k, v in value.items()}
    if isinstance(value, list):
        return [elide(v, key, event_type) for v in value]
    if not isinstance(value, str):
        return value
    lowered = key.lower()
    if lowered in SECRET_KEYS:
        return ELIDED
    if lowered == "audio" or (lowered == "delta" and event_type in AUDIO_DELTAS):
        return f"<audio: {_b64_bytes(value)} bytes>"
    if lowered == "delta":
        # Text deltas by their length: a key a server splits across deltas would be in the file
        # piece by piece, each too short to be known. The ``.done`` event has the whole text.
        return f"<text: {len(value)} characters>"
    if value.startswith("data:") and ";base64," in value[:100]:
        mime, _, data = value[5:].partition(";base64,")
        return f"<{SECRETS.scrub(mime) or 'data'} data URL: {_b64_bytes(data)} bytes>"
    value = SECRETS.scrub(value)  # before cutting: a cut must not leave half a key behind
    if len(value) > MAX_STRING:
        return value[:MAX_STRING] + f"…<{len(value)} characters>"
    return value


class EventLog:
    """An append-only JSON-lines file of the events of one run (created private: mode 600).

    ``secrets`` are remembered (`voicechat.redact.remember`) with every other secret the
    process holds; none of them is ever written.

    A line that cannot be written (a full disk, a removed directory) ends the log: what was
    written of that line is cut off again, so the file holds whole lines only, and ``report``
    is told once, naming the file (the conversation goes on; this is a debugging aid).
    """

    def __init__(self, path: Path, *, secrets: Iterable[str | None] = (),
                 clock: Callable[[], float] = time.monotonic,
                 report: Callable[[str], None] | None = None) -> None:
        self.path = path
        self._clock = clock
        self._start = clock()
        self._report = report
        remember(*secrets)
        try:
            self._fd: int | None = open_output(path, append=True, mode=0o600)  # a FIFO is refused, not waited on
            self._size = os.fstat(self._fd).st_size  # the end of the last whole line
        except OSError as exc:
            raise UsageError(f"--log-events {path}: cannot write it ({exc.strerror or exc})") from None
        self.note("start", wall=time.strftime("%Y-%m-%dT%H:%M:%S%z"))

    def sent(self, event: dict[str, Any]) -> None:
        self._write({"dir": "send", "event": elide(event)})

    def received(self, frame: str | bytes | dict[str, Any], *, malformed: str | None = None) -> None:
        """A received message: an event the codec decoded (a dict), or the frame as it came
        (text, or bytes of a binary frame), with ``malformed`` saying why it is no event."""
        record: dict[str, Any] = {"dir": "recv"}
        parsed: Any = frame
        if isinstance(frame, str) and malformed is None:
            with contextlib.suppress(MalformedEvent):
                parsed = parse_json(frame)  # bounded and safe, as the client reads frames
        if isinstance(parsed, dict):
            record["event"] = elide(parsed)
        elif isinstance(frame, bytes | bytearray | memoryview):
            record["binary"] = len(frame)
        elif isinstance(frame, str):
            text = safe_text(frame)
            record["text"] = elide(SECRETS.scrub(text)[:200])
            record["chars"] = len(text)
        if malformed is not None:
            record["malformed"] = malformed
        self._write(record)

    def note(self, what: str, **fields: Any) -> None:
        self._write({"dir": what, **elide(fields)})

    def _write(self, record: dict[str, Any]) -> None:
        if self._fd is None:
            return
        line = SECRETS.scrub(json_line({"t": round(self._clock() - self._start, 6), **record}))
        data = (line + "\n").encode("utf-8", errors="replace")
        try:
            write_all(self._fd, data)
            self._size += len(data)
        except OSError as exc:
            with contextlib.suppress(OSError):
                os.ftruncate(self._fd, self._size)  # no half line left behind
            message = f"--log-events {self.path}: stopped writing ({exc.strerror or exc})"
            log.debug("%s", message)
            if self._report is not None:
                self._report(message)
            self.close()

    def close(self) -> None:
        fd, self._fd = self._fd, None
        if fd is not None:
            with contextlib.suppress(OSError):
                os.close(fd)


_EVENT_TYPE = re.compile(rb'"type"\s*:\s*"([a-z_.]{1,80})"')


def _frame_summary(frame: Any) -> str | None:
    """A websockets data frame as ``TEXT response.output_audio_transcript.delta [188 bytes]``:
    its event type and size, never its text (a key split across deltas would be in the log
    piece by piece, each too short to be known); None for anything else."""
    opcode, data = getattr(frame, "opcode", None), getattr(frame, "data", None)
    name = getattr(opcode, "name", None)
    if name not in ("TEXT", "BINARY", "CONT") or not isinstance(data, bytes | bytearray | memoryview):
        return None
    found = _EVENT_TYPE.search(bytes(data[:200]))
    what = f" {found.group(1).decode()}" if found and name == "TEXT" else ""
    return f"{name}{what} [{len(data)} bytes]"


class RedactHeaders(logging.Filter):
    """Hide credentials in websockets' debug lines ``> Authorization: Bearer …`` (and replies),
    and the content of every data frame (`_frame_summary`)."""

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args
        if isinstance(args, tuple) and len(args) == 1 and record.msg in ("> %s", "< %s"):
            summary = _frame_summary(args[0])
            if summary is not None:
                record.args = (summary,)
            return True
        if isinstance(args, tuple) and len(args) == 2 and record.msg in ("> %s: %s", "< %s: %s"):
            name, value = args
            if str(name).lower() in SECRET_KEYS or "api-key" in str(value).lower():
                record.args = (name, ELIDED)
        return True


def redact_websockets_log(name: str) -> None:
    """Attach `RedactHeaders` to a websockets logger (once)."""
    logger = logging.getLogger(name)
    if not any(isinstance(f, RedactHeaders) for f in logger.filters):
        logger.addFilter(RedactHeaders())
