"""One realtime session as a sans-I/O state machine (no sockets, no clock, no asyncio).

The WebSocket layer drives it::

    session = RealtimeSession(opts, model, now=..., wall_time=..., brain=..., ...)
    out = session.start(now)                 # session.created
    out = session.receive(frame, now)        # one client frame
    out = session.tick(now)                  # timers: streaming, expiry, idle timeout
    out = session.transcription_done(item_id, text_or_None, now)
    session.next_deadline()                  # when to call tick() next

Each call returns an ``Output`` (events to send, recognition jobs, maybe a close).
Every client event is validated strictly; a bad one yields an ``error`` event echoing its
``event_id`` and leaves the session as it was.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable

from voicechat.protocol.codec import LimitError, MalformedEvent, decode_client
from voicechat.server import apierrors as E
from voicechat.server import config as C
from voicechat.server import schema as S
from voicechat.server.audioformat import decode_whole
from voicechat.server.inputbuf import InputAudioMixin
from voicechat.server.items import item_from_create
from voicechat.server.mcp import McpMixin
from voicechat.server.responses import ResponsesMixin
from voicechat.server.state import Event, Output

log = logging.getLogger(__name__)

Handler = Callable[["RealtimeSession", Event, float], None]

# Top-level fields each client event may carry (besides ``type`` and ``event_id``).
_FIELDS: dict[str, tuple[str, ...]] = {
    "session.update": ("session",),
    "input_audio_buffer.append": ("audio",),
    "input_audio_buffer.commit": (),
    "input_audio_buffer.clear": (),
    "conversation.item.create": ("previous_item_id", "item"),
    "conversation.item.retrieve": ("item_id",),
    "conversation.item.truncate": ("item_id", "content_index", "audio_end_ms"),
    "conversation.item.delete": ("item_id",),
    "response.create": ("response",),
    "response.cancel": ("response_id",),
    "output_audio_buffer.clear": (),
}
CLIENT_TYPES = tuple(_FIELDS)


class RealtimeSession(InputAudioMixin, ResponsesMixin, McpMixin):
    """Client events and time in, server events out. See the module docstring."""

    def start(self, now: float) -> Output:
        self.refresh_vad()
        self.emit({"type": "session.created", "session": self.config})
        return self.take_output()

    def receive(self, frame: str | bytes, now: float) -> Output:
        event = self._parse(frame)
        if event is not None and not self.closed:
            self._out.received = event
            client_event_id = event.get("event_id") if isinstance(event.get("event_id"), str) else None
            try:
                self._dispatch(event, now)
            except E.ApiError as err:
                self.emit_error(err, client_event_id)
        self._timers(now)
        return self.take_output()

    def tick(self, now: float) -> Output:
        self._timers(now)
        return self.take_output()

    def transcription_done(self, item_id: str, text: str | None, now: float) -> Output:
        if not self.closed:
            self.apply_transcript(item_id, text, now)
            self._timers(now)
        return self.take_output()

    def next_deadline(self) -> float | None:
        if self.closed:
            return None
        times = [self.expires_at]
        responses = self.responses_deadline()
        if responses is not None:
            times.append(responses)
        if self.idle_deadline is not None and self.active is None:
            times.append(self.idle_deadline)
        return min(times)

    # ---- plumbing ---------------------------------------------------------------------

    def _timers(self, now: float) -> None:
        if self.closed:
            return
        if now >= self.expires_at:
            self.emit_error(E.session_expired())
            self._out.close = (1001, E.SESSION_EXPIRED_REASON)
            self.closed = True
            return
        self.tick_responses(now)
        self.check_idle(now)

    def _parse(self, frame: str | bytes) -> Event | None:
        if isinstance(frame, bytes | bytearray | memoryview):
            self.emit_error(E.invalid_event("Binary frames are not supported; send each event as a JSON text frame."))
            return None
        try:
            return decode_client(frame)
        except MalformedEvent as exc:
            self.emit_error(self._malformed(frame, exc))
            return None

    @staticmethod
    def _malformed(frame: str, exc: MalformedEvent) -> E.ApiError:
        if isinstance(exc.__cause__, LimitError):
            return E.ApiError("invalid_json", f"The event is {exc.message.removeprefix('frame is ')}.")
        if isinstance(exc.__cause__, json.JSONDecodeError | RecursionError):
            return E.ApiError("invalid_json", f"The event is not valid JSON: {exc.__cause__}.")
        try:
            obj = json.loads(frame)
        except (ValueError, RecursionError):
            obj = None
        if isinstance(obj, dict) and "type" in obj:
            return E.invalid_type("type", "string", obj["type"])
        if isinstance(obj, dict):
            return E.invalid_event("The 'type' field is missing.")
        return E.invalid_event("Each event must be a JSON object.")

    def _dispatch(self, event: Event, now: float) -> None:
        etype = event["type"]
        if etype not in _FIELDS:
            raise E.invalid_value("type", etype, CLIENT_TYPES)
        if "event_id" in event and not isinstance(event["event_id"], str):
            raise E.invalid_type("event_id", "string", event["event_id"])
        for key in event:
            if key not in _FIELDS[etype] and key not in ("type", "event_id"):
                raise E.unknown_parameter(key)
        _HANDLERS[etype](self, event, now)

    # ---- session ----------------------------------------------------------------------

    def handle_session_update(self, event: Event, now: float) -> None:
        old_td = self.turn_detection
        self.config = C.apply_update(self.config, event.get("session"), voice_locked=self.voice_locked)
        if self.turn_detection != old_td:
            self.refresh_vad()
        self.emit({"type": "session.updated", "session": self.config})
        self.list_mcp_tools()  # the service lists a newly declared MCP server's tools

    def handle_output_clear(self, event: Event, now: float) -> None:
        raise E.ApiError(
            "invalid_value",
            "output_audio_buffer.clear is only supported on WebRTC and SIP connections.",
            "type",
        )

    # ---- conversation items -----------------------------------------------------------

    def _item_id_param(self, event: Event) -> str:
        if "item_id" not in event:
            raise E.missing_parameter("item_id")
        return str(S.string()(event["item_id"], "item_id"))

    def handle_item_create(self, event: Event, now: float) -> None:
        previous = event.get("previous_item_id")
        if previous is not None:
            S.string()(previous, "previous_item_id")
            if previous != "root" and previous not in self.conversation:
                raise E.ApiError("invalid_value", f"Previous item with id '{previous}' not found.",
                                 "previous_item_id")
        item = item_from_create(
            event.get("item"), self.ids.make("item"), self.conversation,
            lambda wire: decode_whole(self.input_format, wire).astype("<i2").tobytes(),
        )
        actual_previous = self.conversation.insert(item, previous)
        self.emit({"type": "conversation.item.added", "previous_item_id": actual_previous, "item": item.wire()})
        self.emit({"type": "conversation.item.done", "previous_item_id": actual_previous, "item": item.wire()})

    def handle_item_retrieve(self, event: Event, now: float) -> None:
        item_id = self._item_id_param(event)
        item = self.conversation.get(item_id)
        if item is None:
            raise E.item_not_found(item_id)
        fmt = self.output_format if item.role == "assistant" else self.input_format
        self.emit({"type": "conversation.item.retrieved", "item": item.wire(self.encode_for(fmt))})

    def handle_item_delete(self, event: Event, now: float) -> None:
        item_id = self._item_id_param(event)
        if item_id not in self.conversation:
            raise E.item_not_found(item_id)
        self.conversation.delete(item_id)
        self.emit({"type": "conversation.item.deleted", "item_id": item_id})

    def handle_item_truncate(self, event: Event, now: float) -> None:
        item_id = self._item_id_param(event)
        for key in ("content_index", "audio_end_ms"):
            if key not in event:
                raise E.missing_parameter(key)
        content_index = S.integer(0)(event["content_index"], "content_index")
        end_ms = S.integer(0)(event["audio_end_ms"], "audio_end_ms")
        item = self.conversation.get(item_id)
        if item is None:
            raise E.item_not_found(item_id)
        if item.role != "assistant" or not item.content or item.content[0]["type"] != "output_audio" \
                or 0 not in item.audio:
            raise E.truncate_not_audio()
        if content_index != 0:
            raise E.invalid_value("content_index", content_index)
        have_ms = int(item.audio_ms(0))
        if end_ms > have_ms:
            raise E.truncate_too_long(have_ms, end_ms)
        del item.audio[0][end_ms * 48 :]
        item.content[0]["transcript"] = ""
        self.emit({"type": "conversation.item.truncated", "item_id": item_id, "content_index": content_index,
                   "audio_end_ms": end_ms})


_HANDLERS: dict[str, Handler] = {
    "session.update": RealtimeSession.handle_session_update,
    "input_audio_buffer.append": RealtimeSession.handle_append,
    "input_audio_buffer.commit": RealtimeSession.handle_commit,
    "input_audio_buffer.clear": RealtimeSession.handle_clear,
    "conversation.item.create": RealtimeSession.handle_item_create,
    "conversation.item.retrieve": RealtimeSession.handle_item_retrieve,
    "conversation.item.truncate": RealtimeSession.handle_item_truncate,
    "conversation.item.delete": RealtimeSession.handle_item_delete,
    "response.create": RealtimeSession.handle_response_create,
    "response.cancel": RealtimeSession.handle_response_cancel,
    "output_audio_buffer.clear": RealtimeSession.handle_output_clear,
}

