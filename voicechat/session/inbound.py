"""Server events into the session's parts: one small handler per event type, found in a table.

Each handler says what one server event means for the parts it concerns (the transcript, the
microphone's view of the user's speech, responses, the speaker, calls, the handshake) and
returns the effects. It is handed the parts and the one callable of the facade it needs
(``ready``: the handshake completed, seed the earlier turns); it never sees the facade itself.
Events with no handler (rate limits, acknowledgements) change nothing.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from voicechat import effects as fx
from voicechat.audio.g711 import WireAudio
from voicechat.protocol import events as ev
from voicechat.protocol.session_config import SessionConfig
from voicechat.session import entries
from voicechat.session.calls import Calls
from voicechat.session.errorpolicy import judge
from voicechat.session.handshake import Handshake
from voicechat.session.mcp import Mcp
from voicechat.session.mic import Mic
from voicechat.session.responses import Responses
from voicechat.session.speaker import Speaker
from voicechat.session.state import Phase
from voicechat.session.transcript import Transcript

Handler = Callable[["Inbound", Any, float], list[fx.Effect]]


@dataclass(frozen=True)
class Parts:
    """The session's parts, as the inbound handlers see them."""

    handshake: Handshake
    responses: Responses
    speaker: Speaker
    transcript: Transcript
    mic: Mic
    calls: Calls
    mcp: Mcp


class Inbound:
    """Routes each server event to its handler."""

    def __init__(self, config: SessionConfig, parts: Parts,
                 ready: Callable[[dict[str, Any], float], list[fx.Effect]], *, transcript_wait_s: float) -> None:
        self.config = config
        self._wire = WireAudio(config.audio_format)  # reply audio -> PCM16 24 kHz
        self._wire_item: str | None = None  # the item whose audio the converter is in
        self._parts = parts
        self._ready = ready  # the handshake is complete: seed the earlier turns, then Ready
        self.transcript_wait_s = transcript_wait_s  # a spoken turn waits this long for its transcript

    def handle(self, event: ev.ServerEvent, now: float) -> list[fx.Effect]:
        handler = _HANDLERS.get(type(event))
        return [] if handler is None else handler(self, event, now)

    def _on_session_created(self, e: ev.SessionCreated, now: float) -> list[fx.Effect]:
        return self._parts.handshake.created(e.session)

    def _on_session_updated(self, e: ev.SessionUpdated, now: float) -> list[fx.Effect]:
        if self._parts.handshake.updated(e.session):
            return self._ready(e.session, now)  # seeds the turns of a --resume file, if any
        return []

    def _on_error(self, e: ev.ErrorEvent, now: float) -> list[fx.Effect]:
        verdict = judge(e, configuring=self._parts.handshake.phase is Phase.CONFIGURING)
        if verdict.retry_hint is not None:
            self._parts.handshake.retry_hint = verdict.retry_hint
        if verdict.busy_elsewhere:
            self._parts.responses.busy_elsewhere(e.client_event_id)
        if verdict.may_refuse_create:
            self._parts.responses.refused(e.client_event_id)
        if verdict.commit_empty:
            self._parts.mic.commit_refused()
            self._parts.responses.want = False
        return verdict.effects

    def _on_speech_started(self, e: ev.SpeechStarted, now: float) -> list[fx.Effect]:
        self._parts.mic.speech_started(e)
        if self.config.server_interrupts:
            # The server cancels the active response itself; the speaker is ours to silence.
            return self._parts.speaker.barge_in("speech", self._parts.responses.active, cancel=False)
        return []

    def _on_speech_stopped(self, e: ev.SpeechStopped, now: float) -> list[fx.Effect]:
        duration = self._parts.mic.speech_stopped(e, now)
        entry = self._parts.transcript.get(e.item_id)
        if entry is not None:
            entry.audio_ms = duration
        return []

    def _on_committed(self, e: ev.BufferCommitted, now: float) -> list[fx.Effect]:
        self._parts.mic.committed(self.config.server_responds)
        return []

    def _on_item(self, e: ev.ItemAdded | ev.ItemDone, now: float) -> list[fx.Effect]:
        if e.item.type.startswith("mcp_"):
            return self._parts.mcp.item(e.item, None, now, done=isinstance(e, ev.ItemDone))
        if e.item.role == "user" and isinstance(e, ev.ItemAdded):
            self._parts.calls.user_turn()
        entry = self._parts.transcript.entry_for(e.item, e.previous_item_id, now, added=isinstance(e, ev.ItemAdded))
        if entry is not None:
            wait = self.transcript_wait_s if self.config.transcribe_model else None
            entries.apply_item(entry, e.item, now, done=isinstance(e, ev.ItemDone),
                               user_ms=self._parts.mic.pending_user_ms, transcript_wait_s=wait)
        return []

    def _on_transcript_delta(self, e: ev.InputTranscriptDelta, now: float) -> list[fx.Effect]:
        entry = self._parts.transcript.get(e.item_id)
        if entry is not None and not entry.final:
            entry.text += e.delta
        return []

    def _on_transcript_completed(self, e: ev.InputTranscriptCompleted, now: float) -> list[fx.Effect]:
        entry = self._parts.transcript.user_placeholder(e.item_id, now)  # transcripts may overtake their item
        entry.text = e.transcript.strip()
        if entry.deadline is not None or entry.kind == "audio":
            entries.finish(entry, now, note=None if entry.text else "no transcript")
        return []

    def _on_transcript_failed(self, e: ev.InputTranscriptFailed, now: float) -> list[fx.Effect]:
        entry = self._parts.transcript.get(e.item_id)
        if entry is not None and not entry.final:
            entries.finish(entry, now, note=f"no transcript: {e.message}")
        return [fx.Notice("debug", f"transcription failed for {e.item_id}: {e.message}")]

    def _on_response_created(self, e: ev.ResponseCreated, now: float) -> list[fx.Effect]:
        self._parts.responses.created(e.response.id)
        self._parts.mic.committed_waiting = False
        return []

    def _on_output_item_added(self, e: ev.OutputItemAdded, now: float) -> list[fx.Effect]:
        if e.item.type.startswith("mcp_"):
            return self._parts.mcp.item(e.item, e.response_id, now, done=False)
        self._parts.transcript.response_entry(e.item, e.response_id, now)
        return []

    def _on_output_item_done(self, e: ev.OutputItemDone, now: float) -> list[fx.Effect]:
        if e.item.type.startswith("mcp_"):  # other items: their content events and response.done say it all
            return self._parts.mcp.item(e.item, e.response_id, now, done=True)
        return []

    def _on_mcp_list_tools(self, e: ev.McpListTools, now: float) -> list[fx.Effect]:
        return self._parts.mcp.list_tools(e)

    def _on_mcp_arguments(self, e: ev.McpCallArgumentsDelta | ev.McpCallArgumentsDone, now: float) -> list[fx.Effect]:
        return self._parts.mcp.arguments(e, now)

    def _on_mcp_call(self, e: ev.McpCall, now: float) -> list[fx.Effect]:
        return self._parts.mcp.call_failed(e, now)

    def _on_audio_delta(self, e: ev.AudioDelta, now: float) -> list[fx.Effect]:
        if e.response_id in self._parts.speaker.interrupted:
            return []  # late audio of a response the user already talked over
        entry = self._parts.transcript.assistant_entry(e.item_id, e.response_id, now)
        self._parts.mic.reply_audio(now)
        if e.item_id != self._wire_item:
            self._wire.new_reply()
            self._wire_item = e.item_id
        pcm = self._wire.incoming(e.audio)
        pcm = pcm[: len(pcm) - len(pcm) % 2]  # whole 16-bit samples: a stray byte is unplayable
        entry.audio_samples += len(pcm) // 2
        self._parts.speaker.playing(e.item_id)
        return [fx.Play(e.response_id, e.item_id, pcm)]

    def _on_text_delta(self, e: ev.AudioTranscriptDelta | ev.TextDelta, now: float) -> list[fx.Effect]:
        entry = self._parts.transcript.assistant_entry(e.item_id, e.response_id, now)
        if isinstance(e, ev.TextDelta):
            entry.kind = "text"
        entry.text += e.delta
        entry.marks.append((entry.audio_samples, len(entry.text)))
        return []

    def _on_text_done(self, e: ev.AudioTranscriptDone | ev.TextDone, now: float) -> list[fx.Effect]:
        entry = self._parts.transcript.assistant_entry(e.item_id, e.response_id, now)
        full = e.transcript if isinstance(e, ev.AudioTranscriptDone) else e.text
        if full:
            entry.text = full
        return []

    def _on_audio_done(self, e: ev.AudioDone, now: float) -> list[fx.Effect]:
        entry = self._parts.transcript.get(e.item_id)
        if entry is not None:
            entry.audio_complete = True
        return []

    def _on_function_call_done(self, e: ev.FunctionCallArgumentsDone, now: float) -> list[fx.Effect]:
        return self._parts.calls.new(e, e.response_id, e.response_id not in self._parts.speaker.interrupted, now)

    def _on_response_done(self, e: ev.ResponseDone, now: float) -> list[fx.Effect]:
        r = e.response
        for item in r.output:
            entry = self._parts.transcript.get(item.id)
            if entry is not None:
                entries.response_done(entry, r, item, now)
        last = None
        for last in self._parts.transcript.response_items(r.id):
            last.audio_complete = True
            entries.finish(last, now)
        if last is not None:
            last.usage = r.usage
        out = self._parts.mcp.response_done(r, now) + self._parts.responses.done(r)
        return out + self._parts.calls.response_done(r, self._parts.speaker.interrupted, now)


_HANDLERS: dict[type, Handler] = {
    ev.SessionCreated: Inbound._on_session_created,
    ev.SessionUpdated: Inbound._on_session_updated,
    ev.ErrorEvent: Inbound._on_error,
    ev.SpeechStarted: Inbound._on_speech_started,
    ev.SpeechStopped: Inbound._on_speech_stopped,
    ev.BufferCommitted: Inbound._on_committed,
    ev.ItemAdded: Inbound._on_item,
    ev.ItemDone: Inbound._on_item,
    ev.InputTranscriptDelta: Inbound._on_transcript_delta,
    ev.InputTranscriptCompleted: Inbound._on_transcript_completed,
    ev.InputTranscriptFailed: Inbound._on_transcript_failed,
    ev.ResponseCreated: Inbound._on_response_created,
    ev.ResponseDone: Inbound._on_response_done,
    ev.OutputItemAdded: Inbound._on_output_item_added,
    ev.AudioDelta: Inbound._on_audio_delta,
    ev.AudioTranscriptDelta: Inbound._on_text_delta,
    ev.TextDelta: Inbound._on_text_delta,
    ev.AudioTranscriptDone: Inbound._on_text_done,
    ev.TextDone: Inbound._on_text_done,
    ev.AudioDone: Inbound._on_audio_done,
    ev.FunctionCallArgumentsDone: Inbound._on_function_call_done,
    ev.OutputItemDone: Inbound._on_output_item_done,
    ev.McpListTools: Inbound._on_mcp_list_tools,
    ev.McpCallArgumentsDelta: Inbound._on_mcp_arguments,
    ev.McpCallArgumentsDone: Inbound._on_mcp_arguments,
    ev.McpCall: Inbound._on_mcp_call,
}
