"""The sans-I/O conversation state machine.

Server events and user intents go in, together with the current time; effects come out
(``voicechat.effects``). It owns the handshake, response bookkeeping (exactly one active
response, queued ``response.create``), barge-in decisions (flush, truncate, cancel only when
the server will not), the transcript model keyed by item ids, and accumulated usage.
It never awaits, never reads the clock or the environment, and imports no I/O library.
"""

from __future__ import annotations

import enum
import json
import logging
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from voicechat import effects as fx
from voicechat.errors import BetaShapeError, NotFoundError, SessionError
from voicechat.protocol import client as cmd
from voicechat.protocol import events as ev
from voicechat.protocol.constants import BENIGN_ERROR_CODES, BYTES_PER_MS, MIN_COMMIT_MS, WIRE_RATE
from voicechat.protocol.session_config import SessionConfig

log = logging.getLogger(__name__)

SESSION_UPDATE_ID = "vc_session_update"
LOCAL_ONSET_WAIT_S = 1.5  # a paused reply plays on if the server hears no speech by then
MAX_REMEMBERED = 256  # interrupted response ids and finished items kept for late events
SEED_PREFIX = "vc_seed_"  # ids of the earlier turns re-created in a new server session
RESUMED_PREFIX = "vc_resumed_"  # transcript keys of turns read back from a --resume file
MAX_SEED_TURNS = 500  # the newest turns re-seeded (the server truncates an overlong context itself)
MAX_SEED_CHARS = 4000  # of one re-seeded tool result
EXPIRY_WARNING_S = 300.0  # warn when the server session has this long left
RECYCLE_MARGIN_S = 120.0  # move to a new session between turns when less than this is left
# Microphone audio goes out in appends of this many bytes (40 ms at 24 kHz). Each append costs a
# base64 encode, a JSON dump and a WebSocket frame; 40 ms halves that against 20 ms device blocks
# while adding at most one block (20 ms) before the server hears a sample.
APPEND_BYTES = 40 * BYTES_PER_MS
MIN_COMMIT_BYTES = MIN_COMMIT_MS * BYTES_PER_MS


class Phase(enum.Enum):
    CONNECTING = "connecting"  # waiting for session.created
    CONFIGURING = "configuring"  # session.update sent, waiting for session.updated
    READY = "ready"
    CLOSED = "closed"


class Activity(enum.Enum):
    IDLE = "idle"
    LISTENING = "listening"
    USER_SPEAKING = "user speaking"
    COMMITTED = "committed"
    THINKING = "thinking"
    ASSISTANT_SPEAKING = "assistant speaking"


@dataclass
class _Entry:
    """Transcript state of one conversation item."""

    item_id: str
    role: str
    kind: str
    started_at: float
    text: str = ""
    final: bool = False
    written: fx.Turn | None = None  # the turn as written out: what the transcript shows from then on
    ended_at: float = 0.0
    interrupted: bool = False
    response_id: str | None = None
    audio_samples: int = 0  # assistant audio received (wire samples)
    audio_complete: bool = False
    audio_ms: int = 0  # user speech length
    deadline: float | None = None  # user audio: give up waiting for a transcript at this time
    note: str | None = None
    marks: list[tuple[int, int]] = field(default_factory=list)  # (audio samples, text length)
    heard_chars: int | None = None
    usage: ev.Usage | None = None
    result: str | None = None  # a function call: its output, once sent (the turn waits for it)


@dataclass
class _Call:
    """One function call the model made, from its arguments until its output is sent."""

    call_id: str
    response_id: str
    item_id: str


@dataclass
class _CallGroup:
    """The calls of one response: one ``response.create`` once it is done and all have outputs."""

    calls: list[str] = field(default_factory=list)
    done: bool = False  # its response.done has arrived
    follow_up: bool = True  # ask the model to go on with the results (not after an interruption)


class Session:
    """One conversation with a realtime server, minus all I/O."""

    def __init__(self, config: SessionConfig, *, transcript_wait_s: float = 5.0) -> None:
        self.config = config
        self.transcript_wait_s = transcript_wait_s
        self.phase = Phase.CONNECTING
        self.server_session: dict[str, object] = {}
        self.usage = ev.Usage()
        self.active_response: str | None = None
        self._create_pending = False
        self._create_event_id: str | None = None
        self._want_response = False
        self._interrupted: deque[str] = deque(maxlen=MAX_REMEMBERED)
        self._entries: dict[str, _Entry] = {}
        self._order: list[str] = []
        self._by_response: dict[str, list[str]] = {}  # assistant items of unfinished responses
        self._emit_from = 0
        self._audible: list[str] = []  # assistant items whose audio may still be unplayed
        self._speech_item: str | None = None
        self._speech_start_ms = 0
        self._committed_waiting = False
        self._appended = 0  # bytes appended since the last commit or clear
        self._mic_pending = bytearray()  # captured, not yet appended (less than APPEND_BYTES)
        self._pending_user_ms = 0
        self._event_seq = 0
        self._paused_at: float | None = None  # a local onset paused the speaker at this time
        self.local_onsets = 0
        self.false_onsets = 0
        self.muted = False
        self.push_to_talk_mode = False  # live --vad none: the mic is sent only while talking
        self.last_latency_ms: float | None = None  # end of the user's turn -> first reply audio
        self._turn_ended_at: float | None = None
        self.talking = False
        self._calls: dict[str, _Call] = {}  # function calls whose output is not sent yet
        self._call_groups: dict[str, _CallGroup] = {}  # by response id, until its follow-up
        self._finished_calls: deque[str] = deque(maxlen=MAX_REMEMBERED)
        # Session lifetime: the server ends a session after 60 minutes (reference §4.8).
        self.expiry_warning_s = EXPIRY_WARNING_S
        self.recycle_margin_s = RECYCLE_MARGIN_S
        self.retry_hint: str | None = None  # an error event said a new connection may succeed
        self.connections = 1  # server sessions so far (names the re-seeded items)
        self._warned = False
        self._recycle_asked = False
        self._recycle_not_before = 0.0
        self._fresh_left: float | None = None  # time left as the session started (see _lifetime)
        self._restored = 0

    # ---- derived state --------------------------------------------------------------------

    @property
    def ready(self) -> bool:
        return self.phase is Phase.READY

    @property
    def activity(self) -> Activity:
        if self.phase is not Phase.READY:
            return Activity.IDLE
        if self._speech_item is not None or self.talking:
            return Activity.USER_SPEAKING
        if self._audible:
            return Activity.ASSISTANT_SPEAKING
        if self.active_response or self._create_pending or self._want_response or self._call_groups:
            return Activity.THINKING
        if self._committed_waiting:
            return Activity.COMMITTED
        return Activity.LISTENING

    @property
    def busy(self) -> bool:
        """True while anything of the conversation is still in flight."""
        return (
            self._speech_item is not None
            or self.active_response is not None
            or self._create_pending
            or self._want_response
            or self._committed_waiting
            or bool(self._call_groups)
            or self._emit_from < len(self._order)
        )

    @property
    def audible_items(self) -> tuple[str, ...]:
        return tuple(self._audible)

    @property
    def idle(self) -> bool:
        """Ready, and nothing at all going on: a moment to move to a new server session."""
        return self.ready and not self.busy and not self._audible and not self.talking and not self._calls

    def seconds_left(self, now: float) -> float | None:
        """Wall-clock seconds until the server ends this session (``expires_at``), when known."""
        expires = self.server_session.get("expires_at")
        if isinstance(expires, int | float) and not isinstance(expires, bool) and expires > 0:
            return float(expires) - now
        return None

    def transcript(self) -> list[fx.Turn]:
        """Every item so far in conversation order, finished or not (for the live panel)."""
        return [self._turn(self._entries[i]) for i in self._order]

    @property
    def written(self) -> int:
        """How many turns, from the start, are written out (they no longer change)."""
        return self._emit_from

    def turns_from(self, start: int) -> list[tuple[fx.Turn, bool]]:
        """Turns from index ``start`` on, each with whether it is final (for the live panel)."""
        return [(self._turn(self._entries[i]), self._entries[i].final) for i in self._order[start:]]

    # ---- inputs: server events --------------------------------------------------------------

    def handle(self, event: ev.ServerEvent, now: float) -> list[fx.Effect]:
        handler = _HANDLERS.get(type(event))
        if handler is None:
            return []
        out: list[fx.Effect] = handler(self, event, now)
        out.extend(self._emit_ready())
        return out

    def _on_session_created(self, e: ev.SessionCreated, now: float) -> list[fx.Effect]:
        self.server_session = e.session
        if self.phase is not Phase.CONNECTING:
            return []
        self.phase = Phase.CONFIGURING
        return [fx.Send(self.update_event())]

    def _on_session_updated(self, e: ev.SessionUpdated, now: float) -> list[fx.Effect]:
        self.server_session = e.session
        if self.phase is Phase.CONFIGURING:
            return self._ready(e.session, now)  # seeds the turns of a --resume file, if any
        return []

    def _on_error(self, e: ev.ErrorEvent, now: float) -> list[fx.Effect]:
        code = e.code or ""
        where = f" ({e.param})" if e.param else ""
        said = f"server error{f' [{code}]' if code else ''}: {e.message}{where}"
        if code == "beta_api_shape_disabled":
            return [fx.Fatal(BetaShapeError(f"the server refused the beta interface: {e.message}"))]
        if code == "model_not_found":
            return [fx.Fatal(NotFoundError(e.message, hint="check --model"))]
        if code == "session_expired":
            # The session is over; a new one continues the conversation (reference §4.8).
            self.retry_hint = e.message
            return [fx.Reconnect(f"the server ended the session: {e.message}")]
        if e.type == "server_error":
            # Transient: the session may go on; if the server closes the connection after it,
            # a new connection is worth a try (whatever the close code).
            self.retry_hint = e.message
            return [fx.Notice("error", said)]
        if code == "conversation_already_has_active_response":
            # Our create was refused (another response is active): ask again once it is done.
            # An error naming none of our events while none is pending is not about us.
            if self._create_pending or (e.client_event_id or "").startswith("vc_"):
                self._create_pending = False
                self._want_response = True
            return [fx.Notice("debug", e.message)]
        # A race of an honest client is never about the session settings, whenever it lands.
        if code in BENIGN_ERROR_CODES or "already shorter than" in e.message:
            return [fx.Notice("debug", e.message)]
        if self.phase is Phase.CONFIGURING or e.client_event_id == SESSION_UPDATE_ID:
            return [
                fx.Fatal(SessionError(f"the server rejected the session settings: {e.message}{where}"))
            ]
        if self._create_pending and e.client_event_id and e.client_event_id == self._create_event_id:
            # The server refused our response.create: no response is coming for it, so the next
            # turn must be free to ask again (otherwise every later reply waits forever).
            self._create_pending = False
            self._want_response = False
        if code == "input_audio_buffer_commit_empty":
            self._committed_waiting = False
            self._want_response = False
            return [fx.Notice("warning", "nothing was said: the turn had under 100 ms of audio")]
        return [fx.Notice("error", said)]

    def _on_speech_started(self, e: ev.SpeechStarted, now: float) -> list[fx.Effect]:
        self._speech_item = e.item_id
        self._speech_start_ms = e.audio_start_ms
        if self.config.server_interrupts:
            # The server cancels the active response itself; the speaker is ours to silence.
            return self._barge_in("speech", cancel=False)
        return []

    def _on_speech_stopped(self, e: ev.SpeechStopped, now: float) -> list[fx.Effect]:
        entry = self._entries.get(e.item_id)
        duration = max(0, e.audio_end_ms - self._speech_start_ms)
        if entry is not None:
            entry.audio_ms = duration
        self._pending_user_ms = duration
        self._speech_item = None
        self._turn_ended_at = now
        return []

    def _on_committed(self, e: ev.BufferCommitted, now: float) -> list[fx.Effect]:
        self._appended = 0
        self._speech_item = None
        if self.config.server_responds:
            self._committed_waiting = True
        return []

    def _on_item(self, e: ev.ItemAdded | ev.ItemDone, now: float) -> list[fx.Effect]:
        entry = self._entry_for(e.item, e.previous_item_id, now)
        if entry is None:
            return []
        return self._apply_item(entry, e.item, now, done=isinstance(e, ev.ItemDone))

    def _entry_for(self, item: ev.Item, previous_item_id: str | None, now: float) -> _Entry | None:
        """The transcript entry of ``item``, created and placed in order on first sight."""
        entry = self._entries.get(item.id)
        if entry is None:
            entry = self._new_entry(item, now)
            if entry is not None:
                self._insert(item.id, previous_item_id)
        return entry

    def _new_entry(self, item: ev.Item, now: float) -> _Entry | None:
        if item.id.startswith(SEED_PREFIX):
            return None  # an earlier turn re-created in this server session: already shown
        if item.type == "message" and item.role in ("user", "assistant"):
            kinds = {p.kind for p in item.content}
            kind = "audio" if "audio" in kinds or (item.role == "assistant" and not kinds) else "text"
            return self._remember(_Entry(item.id, item.role, kind, now))
        if item.type == "function_call":
            return self._remember(_Entry(item.id, "tool", "function_call", now))
        return None  # system messages, tool outputs and re-seeded history are not shown again

    def _remember(self, entry: _Entry) -> _Entry:
        self._entries[entry.item_id] = entry
        return entry

    def _insert(self, item_id: str, previous_item_id: str | None) -> None:
        if previous_item_id is not None and previous_item_id != item_id and previous_item_id in self._entries:
            at = self._order.index(previous_item_id) + 1
            # Never re-open what was already written out: a late item lands at the first open slot.
            self._order.insert(max(at, self._emit_from), item_id)
        else:
            self._order.append(item_id)

    def _apply_item(self, entry: _Entry, item: ev.Item, now: float, *, done: bool) -> list[fx.Effect]:
        if entry.role == "user":
            texts = [p.words for p in item.content if p.words]
            if texts and not entry.text:
                entry.text = " ".join(t for t in texts if t)
            if entry.kind == "audio" and entry.audio_ms == 0:
                entry.audio_ms = self._pending_user_ms
            if done and not entry.final:
                if entry.kind == "text" or entry.text or not self.config.transcribe_model:
                    self._finish(entry, now, note=None if entry.text else "no transcript")
                elif entry.deadline is None:
                    entry.deadline = now + self.transcript_wait_s
        elif entry.role == "tool" and done:
            if item.name or not entry.text:
                entry.text = f"{item.name or 'tool'}({item.arguments or ''})"
            self._finish(entry, now)  # only once its output is known
        elif entry.role == "assistant" and done:
            if not entry.text:
                entry.text = _words(item)
            if item.status == "incomplete":
                entry.interrupted = True
            entry.audio_complete = True
            self._finish(entry, now)
        return []

    def _on_transcript_delta(self, e: ev.InputTranscriptDelta, now: float) -> list[fx.Effect]:
        entry = self._entries.get(e.item_id)
        if entry is not None and not entry.final:
            entry.text += e.delta
        return []

    def _on_transcript_completed(self, e: ev.InputTranscriptCompleted, now: float) -> list[fx.Effect]:
        entry = self._entries.get(e.item_id)
        if entry is None:
            # Transcripts may overtake their item: keep a placeholder in arrival order.
            entry = self._remember(_Entry(e.item_id, "user", "audio", now))
            self._insert(e.item_id, None)
        entry.text = e.transcript.strip()
        if entry.deadline is not None or entry.kind == "audio":
            self._finish(entry, now, note=None if entry.text else "no transcript")
        return []

    def _on_transcript_failed(self, e: ev.InputTranscriptFailed, now: float) -> list[fx.Effect]:
        entry = self._entries.get(e.item_id)
        if entry is not None and not entry.final:
            self._finish(entry, now, note=f"no transcript: {e.message}")
        return [fx.Notice("debug", f"transcription failed for {e.item_id}: {e.message}")]

    def _on_response_created(self, e: ev.ResponseCreated, now: float) -> list[fx.Effect]:
        self.active_response = e.response.id
        self._create_pending = False
        self._committed_waiting = False
        return []

    def _on_output_item_added(self, e: ev.OutputItemAdded, now: float) -> list[fx.Effect]:
        self._response_entry(e.item, e.response_id, now)
        return []

    def _response_entry(self, item: ev.Item, response_id: str, now: float) -> _Entry | None:
        """The entry of an output item of ``response_id``, placed after the response's last one."""
        entry = self._entry_for(item, self._last_item_of(response_id), now)
        if entry is not None:
            self._attach(entry, response_id)
        return entry

    def _last_item_of(self, response_id: str) -> str | None:
        items = self._by_response.get(response_id)
        return items[-1] if items else None

    def _attach(self, entry: _Entry, response_id: str) -> None:
        if entry.response_id != response_id:
            entry.response_id = response_id
            self._by_response.setdefault(response_id, []).append(entry.item_id)

    def _on_audio_delta(self, e: ev.AudioDelta, now: float) -> list[fx.Effect]:
        if e.response_id in self._interrupted:
            return []  # late audio of a response the user already talked over
        entry = self._assistant_entry(e.item_id, e.response_id, now)
        if self._turn_ended_at is not None:
            self.last_latency_ms = (now - self._turn_ended_at) * 1000
            self._turn_ended_at = None
        pcm = e.audio[: len(e.audio) - len(e.audio) % 2]  # whole 16-bit samples: a stray byte is unplayable
        entry.audio_samples += len(pcm) // 2
        if e.item_id not in self._audible:
            self._audible.append(e.item_id)
        return [fx.Play(e.response_id, e.item_id, pcm)]

    def _assistant_entry(self, item_id: str, response_id: str, now: float) -> _Entry:
        entry = self._entries.get(item_id)
        if entry is None:  # a server that skips output_item.added
            entry = self._remember(_Entry(item_id, "assistant", "audio", now))
            self._insert(item_id, self._last_item_of(response_id))
            self._attach(entry, response_id)
        return entry

    def _on_text_delta(self, e: ev.AudioTranscriptDelta | ev.TextDelta, now: float) -> list[fx.Effect]:
        entry = self._assistant_entry(e.item_id, e.response_id, now)
        if isinstance(e, ev.TextDelta):
            entry.kind = "text"
        entry.text += e.delta
        entry.marks.append((entry.audio_samples, len(entry.text)))
        return []

    def _on_text_done(self, e: ev.AudioTranscriptDone | ev.TextDone, now: float) -> list[fx.Effect]:
        entry = self._assistant_entry(e.item_id, e.response_id, now)
        full = e.transcript if isinstance(e, ev.AudioTranscriptDone) else e.text
        if full:
            entry.text = full
        return []

    def _on_audio_done(self, e: ev.AudioDone, now: float) -> list[fx.Effect]:
        entry = self._entries.get(e.item_id)
        if entry is not None:
            entry.audio_complete = True
        return []

    def _on_function_call_done(self, e: ev.FunctionCallArgumentsDone, now: float) -> list[fx.Effect]:
        complete = e.response_id not in self._interrupted
        return self._new_call(e.call_id, e.response_id, e.item_id, e.name, e.arguments, complete, now)

    def _new_call(
        self, call_id: str, response_id: str, item_id: str, name: str, arguments: str, complete: bool, now: float
    ) -> list[fx.Effect]:
        """A call the model finished writing: run it, or answer at once when it was cut off.

        Arguments that arrive after the user interrupted their response may be cut short
        (servers close interrupted items with done events), so such a call is not run; its
        output says so, which keeps every call in the conversation answered.
        """
        if call_id in self._calls or call_id in self._finished_calls or self.phase is Phase.CLOSED:
            return []
        self._calls[call_id] = _Call(call_id, response_id, item_id)
        self._call_groups.setdefault(response_id, _CallGroup()).calls.append(call_id)
        item = ev.Item(item_id, "function_call", name=name, call_id=call_id, arguments=arguments)
        entry = self._response_entry(item, response_id, now)
        if entry is not None:
            entry.text = f"{name}({arguments})"
        if not complete:
            return self._deliver(call_id, json.dumps({"error": "not run: the user interrupted the call"}), now)
        return [fx.RunTool(call_id, name, arguments, item_id, response_id)]

    def _on_response_done(self, e: ev.ResponseDone, now: float) -> list[fx.Effect]:
        r = e.response
        out: list[fx.Effect] = []
        if r.usage is not None:
            self.usage = self.usage + r.usage
        for item in r.output:
            entry = self._entries.get(item.id)
            if entry is None:
                continue
            entry.audio_complete = True
            if r.status in ("cancelled", "incomplete") and entry.role == "assistant":
                entry.interrupted = entry.interrupted or r.status == "cancelled" or item.status == "incomplete"
            if not entry.final:
                if not entry.text:
                    entry.text = _words(item)
                self._finish(entry, now)
        last = None
        for item_id in self._by_response.pop(r.id, ()):
            last = self._entries[item_id]
            last.audio_complete = True
            self._finish(last, now)
        if last is not None:
            last.usage = r.usage
        if r.status == "failed":
            out.append(fx.Notice("error", f"the response failed: {r.error_message or 'no reason given'}"))
        if self.active_response in (r.id, None):
            self.active_response = None
            out.append(fx.AudioEnd(r.id))
            if self._want_response and not self._create_pending:  # one create in flight at a time
                out.extend(self._create_response())
        out.extend(self._calls_done(r, now))
        return out

    def _calls_done(self, r: ev.Response, now: float) -> list[fx.Effect]:
        """The response that made calls is done: the reply to their outputs may now be asked for."""
        out: list[fx.Effect] = []
        interrupted = r.id in self._interrupted or r.status in ("cancelled", "failed")
        for item in r.output:  # calls a server announced only here
            if item.type == "function_call" and item.call_id:
                complete = item.status == "completed" and not interrupted
                out += self._new_call(item.call_id, r.id, item.id, item.name or "", item.arguments or "", complete, now)
        group = self._call_groups.get(r.id)
        if group is None:
            return out
        group.done = True
        group.follow_up = group.follow_up and not interrupted
        return out + self._follow_up(r.id)

    def _follow_up(self, response_id: str) -> list[fx.Effect]:
        group = self._call_groups.get(response_id)
        if group is None or not group.done or any(c in self._calls for c in group.calls):
            return []
        del self._call_groups[response_id]
        if group.follow_up and self.phase is Phase.READY:
            return self._request_response()
        return []

    # ---- inputs: user intents -------------------------------------------------------------

    def mic_audio(self, pcm: bytes, now: float) -> list[fx.Effect]:
        """A chunk of 24 kHz PCM16 from the microphone, ready to send."""
        if not self.ready or self.muted or not pcm:
            return []
        if self.push_to_talk_mode and not self.talking:
            return []
        self._mic_pending += pcm
        if len(self._mic_pending) < APPEND_BYTES:
            return []
        return self._append_pending()

    def _append_pending(self) -> list[fx.Effect]:
        """Send what the microphone gave since the last append (none when nothing is waiting)."""
        if not self._mic_pending:
            return []
        pcm = bytes(self._mic_pending)
        self._mic_pending.clear()
        self._appended += len(pcm)
        return [fx.Send(cmd.input_audio_append(pcm))]

    def commit(self, now: float) -> list[fx.Effect]:
        """End a manual (push-to-talk) turn: commit the buffer and ask for a reply."""
        if not self.ready:
            return []
        out: list[fx.Effect] = self._append_pending()  # the turn's last few ms belong to it
        if self._appended < MIN_COMMIT_BYTES:
            ms = self._appended / BYTES_PER_MS
            return [*out, fx.Notice("warning", f"too short to send: {ms:.0f} ms of audio (100 ms minimum)")]
        self._appended = 0
        out.append(fx.Send(cmd.input_audio_commit(self._next_id())))
        return out + self._request_response()

    def push_to_talk(self, now: float) -> list[fx.Effect]:
        """The push-to-talk key (a toggle): start a turn, interrupting the assistant, or end it.

        Starting clears the server's input buffer so the turn holds only what is said now;
        ending commits it (at least 100 ms, or it is dropped with a warning) and asks for a reply.
        """
        if not self.ready:
            return []
        if not self.talking:
            self.talking = True
            out = self._barge_in("push-to-talk", cancel=True)
            self._appended = 0
            self._mic_pending.clear()  # said before the key: not part of this turn
            out.append(fx.Send(cmd.input_audio_clear(self._next_id())))
            return out
        self.talking = False
        self._turn_ended_at = now
        if self._appended + len(self._mic_pending) < MIN_COMMIT_BYTES:
            self._mic_pending.clear()
            self._appended = 0
            return [
                fx.Send(cmd.input_audio_clear(self._next_id())),
                fx.Notice("warning", "too short to send (100 ms minimum): press the key, speak, press it again"),
            ]
        return self.commit(now)

    def say(self, text: str, now: float) -> list[fx.Effect]:
        """A typed user turn: interrupts the assistant, then asks for a reply."""
        if not self.ready or not text.strip():
            return []
        out = self._barge_in("text", cancel=True)
        out.append(fx.Send(cmd.user_text(text, event_id=self._next_id())))
        out.extend(self._request_response())
        return out

    def send_image(self, data_url: str, now: float) -> list[fx.Effect]:
        """A picture from the user; the assistant answers it like a typed turn."""
        if not self.ready:
            return []
        out = self._barge_in("image", cancel=True)
        out.append(fx.Send(cmd.user_image(data_url, event_id=self._next_id())))
        out.extend(self._request_response())
        return out

    def tool_result(self, call_id: str, output: str, now: float) -> list[fx.Effect]:
        """A ``RunTool`` finished: send its output; once the calling response is done and every
        call of it is answered, ask for one reply (unless the user interrupted that response).
        """
        if call_id not in self._calls or self.phase is Phase.CLOSED:
            return []
        return self._deliver(call_id, output, now) + self._emit_ready()

    def _deliver(self, call_id: str, output: str, now: float) -> list[fx.Effect]:
        call = self._calls.pop(call_id)
        self._finished_calls.append(call_id)
        entry = self._entries.get(call.item_id)
        if entry is not None:
            entry.result = output
            self._finish(entry, now)
        out: list[fx.Effect] = [fx.Send(cmd.function_call_output(call_id, output, event_id=self._next_id()))]
        return out + self._follow_up(call.response_id)

    def local_onset(self, now: float) -> list[fx.Effect]:
        """The microphone heard the user start talking over the assistant (before the server did).

        The speaker is paused at once rather than flushed: if the server's VAD confirms with
        ``speech_started`` the usual barge-in flushes and truncates at what was heard; if it does
        not within ``LOCAL_ONSET_WAIT_S`` (a cough, a door), the reply plays on.
        """
        if not self.ready or not self._audible or self._paused_at is not None:
            return []
        if not self.config.server_interrupts:
            return []  # the server will not stop for speech, so neither do we
        self._paused_at = now
        self.local_onsets += 1
        return [fx.Pause("local onset")]

    @property
    def paused(self) -> bool:
        return self._paused_at is not None

    def interrupt(self, now: float, reason: str = "user") -> list[fx.Effect]:
        """The user asked the assistant to stop talking (and not to go on about running tools)."""
        for group in self._call_groups.values():
            group.follow_up = False
        return self._barge_in(reason, cancel=True)

    def playback_flushed(self, played: Mapping[str, int], now: float) -> list[fx.Effect]:
        """After a ``Flush``: wire samples of each item actually handed to the speaker."""
        out: list[fx.Effect] = []
        for item_id, played_samples in played.items():
            heard = self._cut(self._entries.get(item_id), played_samples)
            if heard is not None:
                out.append(fx.Send(cmd.item_truncate(item_id, heard * 1000 // WIRE_RATE, event_id=self._next_id())))
        self._audible = [i for i in self._audible if i not in played]
        out.extend(self._emit_ready())
        return out

    def playback_drained(self) -> list[fx.Effect]:
        """The speaker has played everything queued: no item is still audible (their turns are out)."""
        self._audible.clear()
        return self._emit_ready()

    def tick(self, now: float) -> list[fx.Effect]:
        """Time passes: give up waiting for late user transcripts; end unconfirmed pauses."""
        out: list[fx.Effect] = []
        if self._paused_at is not None and (not self._audible or now - self._paused_at >= LOCAL_ONSET_WAIT_S):
            self._paused_at = None
            if self._audible:
                self.false_onsets += 1
            out.append(fx.Resume())
        for item_id in self._order[self._emit_from :]:
            entry = self._entries[item_id]
            if not entry.final and entry.deadline is not None and now >= entry.deadline:
                self._finish(entry, now, note="no transcript")
        out.extend(self._lifetime(now))
        return out + self._emit_ready()

    def _lifetime(self, now: float) -> list[fx.Effect]:
        """The server session's time limit: warn once, then ask for a new session between turns."""
        left = self.seconds_left(now)
        if left is None or not self.ready:
            return []
        out: list[fx.Effect] = []
        if left <= self.expiry_warning_s and not self._warned:
            self._warned = True
            minutes, seconds = divmod(max(0, round(left)), 60)
            out.append(fx.Notice("warning", f"the server ends this session in {minutes}:{seconds:02d}; "
                                            "voicechat moves the conversation to a new one between turns"))
        # A session that started with no more than the margin left (a skewed clock, or very short
        # sessions) would be no better replaced: the server's expiry is handled as a drop instead.
        worth_it = self._fresh_left is None or self._fresh_left > self.recycle_margin_s
        due = left <= self.recycle_margin_s and now >= self._recycle_not_before
        if worth_it and due and not self._recycle_asked and self.idle:
            self._recycle_asked = True
            out.append(fx.Recycle(left))
        return out

    def recycle_later(self, not_before: float) -> None:
        """The new session could not be put in place (busy again, or it failed): ask again later."""
        self._recycle_asked = False
        self._recycle_not_before = not_before

    def close(self, now: float | None = None, played: Mapping[str, int] | None = None) -> list[fx.Effect]:
        """The conversation ends: write out everything, finished or not.

        ``played`` (wire samples the speaker was handed, per still-audible item) cuts a reply
        that was only partly heard to what was heard, as a barge-in would.
        """
        self.phase = Phase.CLOSED
        return self._write_out(now, played, "no result: the conversation ended first")

    # ---- connections: lost, replaced, resumed ------------------------------------------------

    def suspend(self, now: float, played: Mapping[str, int] | None = None) -> list[fx.Effect]:
        """The connection is gone: write out what was in flight and wait for a new one.

        Like `close`, every unfinished turn is written now (a cut reply as interrupted, with
        what ``played`` says was heard; a call with no result says so), since the old server
        session can no longer finish it. The transcript stays; everything that belonged to the
        old connection (active response, speech, calls, pause) is forgotten. The microphone is
        not sent until `reconnected`.
        """
        out = self._write_out(now, played, "no result: the connection was lost")
        self._forget_connection()
        self.phase = Phase.CONNECTING
        return out

    def reconnected(self, server_session: dict[str, Any], now: float) -> list[fx.Effect]:
        """A new connection is configured (its ``session.updated`` is ``server_session``).

        Returns the earlier turns as ``conversation.item.create`` events (see `seed_items`) and
        ``Ready``. Used after `suspend` (a reconnect) and, while `idle`, to move to a new
        session before the old one expires (its connection is then closed by the caller).
        """
        self._forget_connection()
        self.connections += 1
        return self._ready(server_session, now)

    def update_event(self) -> dict[str, Any]:
        """The ``session.update`` that configures a new connection."""
        return cmd.session_update(self.config, event_id=SESSION_UPDATE_ID)

    def restore(self, turns: Sequence[fx.Turn]) -> None:
        """Earlier turns of this conversation (from a saved transcript), before the first connection.

        They count as written (the panel shows them, nothing writes them again) and are
        re-seeded into the server session once it is configured.
        """
        for turn in turns:
            self._restored += 1
            key = f"{RESUMED_PREFIX}{self._restored}"
            entry = self._remember(_Entry(key, turn.role, turn.kind, turn.started_at, text=turn.text,
                                          final=True, written=turn, ended_at=turn.ended_at))
            self._order.insert(self._emit_from, entry.item_id)
            self._emit_from += 1

    def seed_items(self) -> list[dict[str, Any]]:
        """The written turns as text items for a fresh server session, oldest first.

        Assistant audio cannot be re-created, so every turn goes back as text (reference §7.11):
        the user's words as ``input_text``; the assistant's as ``output_text``, only what the
        user heard of an interrupted reply; a tool call as a short ``system`` note of what it
        returned (its call id means nothing to the new session). Turns with no words (speech
        that was never transcribed, a picture, a reply cut before any word) are left out.
        """
        items = []
        for item_id in self._order[: self._emit_from]:
            turn = self._entries[item_id].written
            item = seed_item(turn) if turn is not None else None
            if item is not None:
                items.append(item)
        items = items[-MAX_SEED_TURNS:]
        for n, item in enumerate(items):
            item["id"] = f"{SEED_PREFIX}{self.connections}_{n}"
        return items

    def _ready(self, server_session: dict[str, Any], now: float) -> list[fx.Effect]:
        """A server session is configured: the earlier turns go into it, then ``Ready``."""
        self.server_session = server_session
        self.phase = Phase.READY
        self._fresh_left = self.seconds_left(now)
        return [*self._seed(), fx.Ready(server_session)]

    def _seed(self) -> list[fx.Effect]:
        out: list[fx.Effect] = []
        previous = "root"
        for item in self.seed_items():
            out.append(fx.Send(cmd.item_create(item, previous_item_id=previous, event_id=self._next_id())))
            previous = item["id"]
        return out

    def _forget_connection(self) -> None:
        """Drop everything that belonged to the server session just left."""
        self.server_session = {}
        self.active_response = None
        self._create_pending = False
        self._create_event_id = None
        self._want_response = False
        self._by_response.clear()
        self._audible.clear()
        self._speech_item = None
        self._committed_waiting = False
        self._appended = 0
        self._mic_pending.clear()  # captured for the old connection: stale on the new one
        self._pending_user_ms = 0
        self._paused_at = None
        self._turn_ended_at = None
        self.talking = False
        self._calls.clear()
        self._call_groups.clear()
        self.retry_hint = None
        self._warned = False
        self._recycle_asked = False
        self._recycle_not_before = 0.0

    def _write_out(self, now: float | None, played: Mapping[str, int] | None, no_result: str) -> list[fx.Effect]:
        for item_id, samples in (played or {}).items():
            entry = self._entries.get(item_id)
            if entry is None or entry.written is not None:
                continue
            if self._cut(entry, samples) is not None and now is not None:
                entry.ended_at = now
        for item_id in self._order[self._emit_from :]:
            entry = self._entries[item_id]
            if not entry.final:
                entry.final = True
                entry.interrupted = entry.interrupted or entry.role == "assistant"
                if now is not None:
                    entry.ended_at = now
                if entry.role == "user" and not entry.text:
                    entry.note = "no transcript"
                if entry.kind == "function_call" and entry.result is None:
                    entry.note = no_result
        self._audible.clear()
        return self._emit_ready()

    # ---- internals ---------------------------------------------------------------------------

    def _next_id(self) -> str:
        self._event_seq += 1
        return f"vc_{self._event_seq}"

    def _request_response(self) -> list[fx.Effect]:
        if self.active_response or self._create_pending:
            self._want_response = True
            return []
        return self._create_response()

    def _create_response(self) -> list[fx.Effect]:
        self._want_response = False
        self._create_pending = True
        self._create_event_id = self._next_id()
        return [fx.Send(cmd.response_create(event_id=self._create_event_id))]

    def _barge_in(self, reason: str, *, cancel: bool) -> list[fx.Effect]:
        out: list[fx.Effect] = []
        if self._paused_at is not None:
            self._paused_at = None  # a flush ends the pause; with nothing to flush, lift it
            if not self._audible:
                out.append(fx.Resume())
        if self.active_response is not None:
            self._interrupted.append(self.active_response)
            if cancel:
                out.append(fx.Send(cmd.response_cancel(event_id=self._next_id())))
        if self._audible:
            out.append(fx.Flush(reason, tuple(self._audible)))
        return out

    def _cut(self, entry: _Entry | None, played_samples: int) -> int | None:
        """Cut a reply to the wire samples the speaker was handed: mark it interrupted with the
        words heard and return the samples heard; ``None`` when there is nothing to cut (no
        audio yet, or all of it arrived and was heard).
        """
        if entry is None or entry.audio_samples == 0:
            return None
        heard = max(0, min(played_samples, entry.audio_samples))
        if entry.audio_complete and heard >= entry.audio_samples:
            return None
        entry.interrupted = True
        entry.heard_chars = self._heard_chars(entry, heard)
        return heard

    def _heard_chars(self, entry: _Entry, heard_samples: int) -> int:
        """How much of the reply's text the listener heard, cut back to a whole word.

        While the audio is still arriving, text counts as heard if it arrived before audio the
        listener reached. Once all the audio is in, the text is spread over it in proportion
        (servers may send the transcript ahead of, or after, its audio, so arrival order alone
        can say "nothing" for a reply that was half heard).
        """
        chars = 0
        if entry.audio_complete and entry.audio_samples > 0:
            chars = len(entry.text) * min(heard_samples, entry.audio_samples) // entry.audio_samples
        else:
            for samples_at, length in entry.marks:
                if samples_at >= heard_samples:
                    break  # text that arrived with audio the listener never reached
                chars = length
        # Cut back to a word boundary so no half-heard word is kept.
        text = entry.text[:chars]
        if chars < len(entry.text) and text and not text[-1].isspace():
            cut = text.rfind(" ")
            chars = cut if cut >= 0 else 0
        return chars

    def _finish(self, entry: _Entry, now: float, note: str | None = None) -> None:
        if entry.final or (entry.kind == "function_call" and entry.result is None):
            return  # a call's turn is written with its result
        entry.final = True
        entry.ended_at = now
        entry.note = note
        entry.deadline = None

    def _turn(self, entry: _Entry) -> fx.Turn:
        if entry.written is not None:
            return entry.written  # late events may still touch the entry; its written turn stays
        text = entry.text.strip()
        if entry.interrupted and entry.heard_chars is not None:
            text = entry.text[: entry.heard_chars].strip()
        return fx.Turn(
            role=entry.role,
            text=text,
            item_id=entry.item_id,
            started_at=entry.started_at,
            ended_at=entry.ended_at or entry.started_at,
            interrupted=entry.interrupted,
            kind=entry.kind,
            audio_ms=entry.audio_ms if entry.role == "user" else entry.audio_samples * 1000 // WIRE_RATE,
            usage=entry.usage,
            note=entry.note,
            result=entry.result,
        )

    def _emit_ready(self) -> list[fx.Effect]:
        out: list[fx.Effect] = []
        while self._emit_from < len(self._order):
            entry = self._entries[self._order[self._emit_from]]
            if not entry.final:
                break
            if entry.item_id in self._audible and self.phase is not Phase.CLOSED:
                break  # still being played: a barge-in may yet cut it to what was heard
            self._emit_from += 1
            entry.written = self._turn(entry)
            out.append(fx.TurnFinished(entry.written))
        return out


def _words(item: ev.Item) -> str:
    """The text or transcript of an item's content parts, joined."""
    return " ".join(p.words or "" for p in item.content).strip()


def seed_item(turn: fx.Turn) -> dict[str, Any] | None:
    """One written turn as a text item for a new server session (``None``: nothing to say)."""
    text = turn.text.strip()
    if turn.role == "tool" or turn.kind == "function_call":
        if turn.result is not None:
            result = turn.result if len(turn.result) <= MAX_SEED_CHARS else turn.result[:MAX_SEED_CHARS] + "..."
            said = f"Earlier in this conversation the tool call {text} returned: {result}"
        else:
            said = f"Earlier in this conversation the tool call {text} did not complete ({turn.note or 'no result'})."
        return cmd.text_message("system", said)
    if text and turn.role in ("user", "assistant"):
        return cmd.text_message(turn.role, text)
    return None


_HANDLERS = {
    ev.SessionCreated: Session._on_session_created,
    ev.SessionUpdated: Session._on_session_updated,
    ev.ErrorEvent: Session._on_error,
    ev.SpeechStarted: Session._on_speech_started,
    ev.SpeechStopped: Session._on_speech_stopped,
    ev.BufferCommitted: Session._on_committed,
    ev.ItemAdded: Session._on_item,
    ev.ItemDone: Session._on_item,
    ev.InputTranscriptDelta: Session._on_transcript_delta,
    ev.InputTranscriptCompleted: Session._on_transcript_completed,
    ev.InputTranscriptFailed: Session._on_transcript_failed,
    ev.ResponseCreated: Session._on_response_created,
    ev.ResponseDone: Session._on_response_done,
    ev.OutputItemAdded: Session._on_output_item_added,
    ev.AudioDelta: Session._on_audio_delta,
    ev.AudioTranscriptDelta: Session._on_text_delta,
    ev.TextDelta: Session._on_text_delta,
    ev.AudioTranscriptDone: Session._on_text_done,
    ev.TextDone: Session._on_text_done,
    ev.AudioDone: Session._on_audio_done,
    ev.FunctionCallArgumentsDone: Session._on_function_call_done,
}
