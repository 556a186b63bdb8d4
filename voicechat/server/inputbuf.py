"""The input audio buffer: append/commit/clear, server VAD turns, idle timeout, transcription.

Positions are samples on the session's cumulative input timeline (24 kHz after decoding),
so ``audio_start_ms``/``audio_end_ms`` are on the timeline the real service reports.
A VAD turn commits ``[onset − prefix_padding, end of the closing silence]``; audio before it
is discarded and audio after it stays buffered for the next turn. The buffer keeps at most
``MAX_BUFFER_S`` (``IDLE_KEEP_S`` while VAD hears no speech), dropping the oldest audio.
"""

from __future__ import annotations

import base64
import binascii
import logging
from typing import Any

from voicechat.protocol.constants import MIN_COMMIT_MS, WIRE_RATE
from voicechat.server import apierrors as E
from voicechat.server.items import Item
from voicechat.server.state import Event, PendingTranscript, SessionBase, TranscriptionJob
from voicechat.server.usage import transcription_usage
from voicechat.server.vad import EnergyVad, VadParams

MAX_BUFFER_S = 600
IDLE_KEEP_S = 60
SAMPLES_PER_MS = WIRE_RATE // 1000

log = logging.getLogger(__name__)


def _ms(samples: int) -> int:
    return samples // SAMPLES_PER_MS


class InputAudioMixin(SessionBase):
    # ---- configuration ----------------------------------------------------------------

    @property
    def turn_detection(self) -> dict[str, Any] | None:
        td: dict[str, Any] | None = self.config["audio"]["input"]["turn_detection"]
        return td

    def refresh_vad(self) -> None:
        """Rebuild the detector after ``turn_detection`` changed (drops a turn in progress)."""
        td = self.turn_detection
        self.speech_item_id = None
        self.vad = EnergyVad(VadParams.from_turn_detection(td), self.total_in) if td else None
        if not td or td.get("type") != "server_vad" or td.get("idle_timeout_ms") is None:
            self.idle_deadline = None

    # ---- client events ----------------------------------------------------------------

    def handle_append(self, event: Event, now: float) -> None:
        audio = event.get("audio")
        if not isinstance(audio, str):
            raise E.missing_parameter("audio") if audio is None else E.invalid_type("audio", "string", audio)
        try:
            wire = base64.b64decode(audio, validate=True)
        except (binascii.Error, ValueError):
            raise E.ApiError("invalid_value", "Invalid 'audio': expected base64-encoded audio bytes.", "audio") from None
        samples = self.decoder.decode(self.input_format, wire)
        if samples.size == 0:
            return
        self.buffer.extend(samples.astype("<i2").tobytes())
        self.total_in += samples.size
        if self.vad is not None:
            for vad_event in self.vad.process(samples):
                if vad_event.kind == "start":
                    self._speech_started(vad_event.sample, now)
                else:
                    self._speech_stopped(vad_event.sample, now)
        self._trim()

    def handle_commit(self, event: Event, now: float) -> None:
        buffered_ms = len(self.buffer) / 2 / SAMPLES_PER_MS
        if buffered_ms < MIN_COMMIT_MS:
            raise E.commit_empty(buffered_ms)
        item_id = self.speech_item_id or self.ids.make("item")
        if self.vad is not None:
            self.vad.reset(self.total_in)
        self.speech_item_id = None
        self.commit_range(item_id, self.buffer_start, self.total_in)

    def handle_clear(self, event: Event, now: float) -> None:
        self.buffer.clear()
        self.buffer_start = self.total_in
        if self.vad is not None:
            self.vad.reset(self.total_in)
        self.speech_item_id = None
        self.emit({"type": "input_audio_buffer.cleared"})

    # ---- VAD turns --------------------------------------------------------------------

    def _speech_started(self, onset: int, now: float) -> None:
        assert self.vad is not None
        start = max(self.buffer_start, onset - self.vad.params.prefix_padding_ms * SAMPLES_PER_MS)
        self.speech_item_id = self.ids.make("item")
        self.speech_start = start
        self.idle_deadline = None
        self.emit({"type": "input_audio_buffer.speech_started", "audio_start_ms": _ms(start),
                   "item_id": self.speech_item_id})
        td = self.turn_detection or {}
        if td.get("interrupt_response", True) and self.active is not None:
            self.cancel_active("turn_detected", now)

    def _speech_stopped(self, end: int, now: float) -> None:
        item_id = self.speech_item_id or self.ids.make("item")
        self.speech_item_id = None
        self.emit({"type": "input_audio_buffer.speech_stopped", "audio_end_ms": _ms(end), "item_id": item_id})
        self.commit_range(item_id, self.speech_start, end)
        self._auto_respond(now)

    def _auto_respond(self, now: float) -> None:
        """VAD's own ``response.create``; skipped while a response is still active."""
        td = self.turn_detection or {}
        if not td.get("create_response", True):
            return
        if self.active is not None:
            log.debug("turn ended while %s is active: no automatic response", self.active.id)
            return
        self.request_response({}, now)

    def commit_range(self, item_id: str, start: int, end: int) -> Item:
        """Commit timeline samples ``[start, end)`` as a user audio item (emits §4.2 events)."""
        lo = max(0, (start - self.buffer_start) * 2)
        hi = max(lo, (end - self.buffer_start) * 2)
        pcm = bytes(self.buffer[lo:hi])
        del self.buffer[:hi]
        self.buffer_start = max(self.buffer_start, end)
        item = Item(item_id, "message", role="user", status="completed",
                    content=[{"type": "input_audio", "transcript": None}], audio={0: bytearray(pcm)})
        previous = self.conversation.insert(item)
        self.emit({"type": "input_audio_buffer.committed", "previous_item_id": previous, "item_id": item_id})
        self.emit({"type": "conversation.item.added", "previous_item_id": previous, "item": item.wire()})
        self.emit({"type": "conversation.item.done", "previous_item_id": previous, "item": item.wire()})
        self._start_transcription(item, pcm)
        return item

    def _trim(self) -> None:
        in_speech = self.vad is not None and self.vad.in_speech
        keep_s = MAX_BUFFER_S if (self.vad is None or in_speech) else IDLE_KEEP_S
        excess = len(self.buffer) - keep_s * WIRE_RATE * 2
        if excess > 0:
            del self.buffer[:excess]
            self.buffer_start += excess // 2

    # ---- idle timeout -----------------------------------------------------------------

    def arm_idle(self, playback_end: float) -> None:
        td = self.turn_detection
        if td and td.get("type") == "server_vad" and td.get("idle_timeout_ms") is not None:
            self.idle_deadline = playback_end + td["idle_timeout_ms"] / 1000

    def check_idle(self, now: float) -> None:
        if self.idle_deadline is None or now < self.idle_deadline or self.active is not None:
            return
        if self.vad is not None and self.vad.in_speech:
            return
        td = self.turn_detection or {}
        self.idle_deadline = None
        end = self.total_in
        start = max(self.buffer_start, end - int(td.get("idle_timeout_ms") or 0) * SAMPLES_PER_MS)
        item_id = self.ids.make("item")
        self.emit({"type": "input_audio_buffer.timeout_triggered", "audio_start_ms": _ms(start),
                   "audio_end_ms": _ms(end), "item_id": item_id})
        if self.vad is not None:
            self.vad.reset(self.total_in)
        self.commit_range(item_id, start, end)
        self._auto_respond(now)

    # ---- transcription ----------------------------------------------------------------

    def _start_transcription(self, item: Item, pcm: bytes) -> None:
        transcription = self.config["audio"]["input"]["transcription"]
        if not self.recognizer_available or (transcription is None and not self.brain.wants_transcript):
            return
        timing = self.opts.transcript_timing
        mode = self.rng.choice(("before", "during", "after")) if timing == "random" else timing
        model = transcription["model"] if transcription else ""
        self.pending_tx[item.id] = PendingTranscript(mode, transcription is not None, model, item.audio_ms())
        self._out.jobs.append(TranscriptionJob(item.id, pcm))

    def apply_transcript(self, item_id: str, text: str | None, now: float) -> None:
        """The recogniser finished (``text`` is ``None`` when it failed)."""
        pending = self.pending_tx.get(item_id)
        if pending is None:
            return
        pending.done = True
        pending.text = text
        item = self.conversation.get(item_id)
        if item is None:
            self.pending_tx.pop(item_id, None)
            self.on_transcript_ready(item_id, [], now)
            return
        if text is not None and pending.emit:
            item.content[0]["transcript"] = text
        events = self._transcription_events(item_id, pending) if pending.emit else []
        self.on_transcript_ready(item_id, events, now)

    def _transcription_events(self, item_id: str, pending: PendingTranscript) -> list[Event]:
        if pending.text is None:
            return [{"type": "conversation.item.input_audio_transcription.failed", "item_id": item_id,
                     "content_index": 0, "error": {"type": "transcription_error", "code": "audio_unintelligible",
                                                   "message": "The audio could not be transcribed.", "param": None}}]
        events: list[Event] = []
        words = pending.text.split(" ")
        for i, word in enumerate(words):
            delta = word if i == 0 else " " + word
            if delta:
                events.append({"type": "conversation.item.input_audio_transcription.delta", "item_id": item_id,
                               "content_index": 0, "delta": delta})
        events.append({"type": "conversation.item.input_audio_transcription.completed", "item_id": item_id,
                       "content_index": 0, "transcript": pending.text,
                       "usage": transcription_usage(pending.model, pending.audio_ms, pending.text)})
        return events
