"""The sans-I/O conversation state machine: a small facade over its parts.

Server events and user intents go in, together with the current time; effects come out
(``voicechat.effects``). Each concern is a part with its own state and its own ``reset()``:
the handshake (``handshake.py``), the error policy (``errorpolicy.py``), the transcript model
(``transcript.py``, ``entries.py``), the speaker and barge-in (``speaker.py``), responses
(``responses.py``), function calls (``calls.py``), MCP servers (``mcp.py``), the microphone and push-to-talk
(``mic.py``) and the session's lifetime (``lifetime.py``). Server events are routed to the parts
they concern by a table of small handlers (``inbound.py``); user intents arrive here. The facade
hands the parts what they need of each other as callables; a part never sees the facade, and
forgetting a connection is resetting each part. It never awaits, never reads the clock or the
environment, and imports no I/O library.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any

from voicechat import effects as fx
from voicechat.protocol import client as cmd
from voicechat.protocol import events as ev
from voicechat.protocol.session_config import SessionConfig
from voicechat.session import entries
from voicechat.session.calls import Calls
from voicechat.session.handshake import Handshake
from voicechat.session.inbound import Inbound, Parts
from voicechat.session.knobs import Knobs
from voicechat.session.lifetime import EXPIRY_WARNING_S, RECYCLE_MARGIN_S, Lifetime, expires_at
from voicechat.session.mcp import Mcp
from voicechat.session.mic import Mic
from voicechat.session.responses import Responses
from voicechat.session.speaker import Speaker
from voicechat.session.state import Activity, EventIds, Phase
from voicechat.session.transcript import Transcript


class Session(Knobs):
    """One conversation with a realtime server, minus all I/O."""

    def __init__(
        self,
        config: SessionConfig,
        *,
        transcript_wait_s: float = 5.0,
        push_to_talk: bool = False,
        expiry_warning_s: float = EXPIRY_WARNING_S,
        recycle_margin_s: float = RECYCLE_MARGIN_S,
    ) -> None:
        self.config = config
        ids = self._ids = EventIds()
        self._handshake = Handshake(config)
        self._responses = Responses(ids)
        self._speaker = Speaker(ids, cut=lambda item_id, samples: entries.cut(self._transcript.get(item_id), samples))
        self._transcript = Transcript(held=lambda item_id: self.phase is not Phase.CLOSED
                                      and self._speaker.is_audible(item_id))
        self._mic = Mic(ids, self._responses.request, push_to_talk=push_to_talk, audio_format=config.audio_format)
        self._calls = Calls(ids, self._transcript.show_call, self._transcript.answer, self._responses.request,
                            ready=lambda: self.ready, closed=lambda: self.phase is Phase.CLOSED)
        self._mcp = Mcp(ids, self._transcript, self._responses.request, closed=lambda: self.phase is Phase.CLOSED)
        self._lifetime = Lifetime(expiry_warning_s=expiry_warning_s, recycle_margin_s=recycle_margin_s)
        self._inbound = Inbound(config, Parts(self._handshake, self._responses, self._speaker, self._transcript,
                                              self._mic, self._calls, self._mcp), self._ready,
                                transcript_wait_s=transcript_wait_s)
        self._parts = (self._handshake, self._responses, self._speaker, self._transcript, self._mic, self._calls,
                       self._mcp, self._lifetime)

    # ---- derived state --------------------------------------------------------------------

    @property
    def phase(self) -> Phase:
        return self._handshake.phase

    @property
    def ready(self) -> bool:
        return self._handshake.ready

    @property
    def server_session(self) -> dict[str, Any]:
        return self._handshake.server_session

    @property
    def retry_hint(self) -> str | None:
        """An error event said a new connection may succeed (why), on this connection."""
        return self._handshake.retry_hint

    @property
    def activity(self) -> Activity:
        if not self.ready:
            return Activity.IDLE
        if self._mic.speech_item is not None or self._mic.talking:
            return Activity.USER_SPEAKING
        if self._speaker.audible:
            return Activity.ASSISTANT_SPEAKING
        if self._responses.in_flight or self._calls.pending:
            return Activity.THINKING
        if self._mic.committed_waiting:
            return Activity.COMMITTED
        return Activity.LISTENING

    @property
    def busy(self) -> bool:
        """True while anything of the conversation is still in flight."""
        return (
            self._mic.speech_item is not None
            or self._responses.in_flight
            or self._mic.committed_waiting
            or self._calls.pending
            or self._mcp.pending
            or self._transcript.unwritten
        )

    @property
    def idle(self) -> bool:
        """Ready, and nothing at all going on: a moment to move to a new server session."""
        return (self.ready and not self.busy and not self._speaker.audible and not self._mic.talking
                and not self._calls.running)

    @property
    def audible_items(self) -> tuple[str, ...]:
        return tuple(self._speaker.audible)

    @property
    def paused(self) -> bool:
        return self._speaker.paused

    @property
    def active_response(self) -> str | None:
        return self._responses.active

    @property
    def usage(self) -> ev.Usage:
        """Tokens of every finished response so far (the one sum the panel, /cost and limits read)."""
        return self._responses.usage

    @property
    def last_latency_ms(self) -> float | None:
        return self._mic.last_latency_ms

    @property
    def local_onsets(self) -> int:
        return self._speaker.local_onsets

    @property
    def false_onsets(self) -> int:
        return self._speaker.false_onsets

    @property
    def connections(self) -> int:
        return self._lifetime.connections

    @property
    def talking(self) -> bool:
        return self._mic.talking

    def mute(self, on: bool) -> None:
        """``/mute``, ``/unmute`` or a spending limit: the microphone is (not) sent."""
        self._mic.muted = on

    def seconds_left(self, now: float) -> float | None:
        """Wall-clock seconds until the server ends this session (``expires_at``), when known."""
        expires = expires_at(self.server_session)
        return None if expires is None else expires - now

    def transcript(self) -> list[fx.Turn]:
        """Every item so far in conversation order, finished or not (for the live panel)."""
        return self._transcript.turns()

    @property
    def written(self) -> int:
        """How many turns, from the start, are written out (they no longer change)."""
        return self._transcript.written

    def turns_from(self, start: int) -> list[tuple[fx.Turn, bool]]:
        """Turns from index ``start`` on, each with whether it is final (for the live panel)."""
        return self._transcript.turns_from(start)

    # ---- inputs: server events --------------------------------------------------------------

    def handle(self, event: ev.ServerEvent, now: float) -> list[fx.Effect]:
        return self._inbound.handle(event, now) + self._transcript.emit_ready()

    # ---- inputs: user intents -------------------------------------------------------------

    def mic_audio(self, pcm: bytes, now: float) -> list[fx.Effect]:
        """A block of 24 kHz PCM16 from the microphone, ready to send."""
        return self._mic.audio(pcm) if self.ready else []

    def commit(self, now: float) -> list[fx.Effect]:
        """End a manual (push-to-talk) turn: commit the buffer and ask for a reply."""
        return self._mic.commit() if self.ready else []

    def push_to_talk(self, now: float) -> list[fx.Effect]:
        """The push-to-talk key (a toggle): start a turn, interrupting the assistant, or end it."""
        if not self.ready:
            return []
        return self._mic.push_to_talk(now, lambda reason: self._barge_in(reason, cancel=True))

    def say(self, text: str, now: float) -> list[fx.Effect]:
        """A typed user turn: interrupts the assistant, then asks for a reply."""
        if not self.ready or not text.strip():
            return []
        return self._user_item("text", cmd.user_text(text, event_id=self._ids()))

    def reply(self, now: float) -> list[fx.Effect]:
        """``/reply``: ask for the assistant's answer now (``--no-auto-response`` waits for it)."""
        if not self.ready:
            return [fx.Notice("warning", "not connected: no reply can be asked for")]
        if self._responses.active or self._responses.create_pending:
            return [fx.Notice("info", "the assistant is answering already")]
        return self._responses.request()

    def send_image(self, data_url: str, now: float, label: str = "image") -> list[fx.Effect]:
        """A picture from the user; the assistant answers it like a typed turn. Its turn shows
        as ``[label]`` (the server's item says nothing of the file's name)."""
        if not self.ready:
            return []
        self._transcript.expect_picture(label)
        return self._user_item("image", cmd.user_image(data_url, event_id=self._ids()))

    def _user_item(self, reason: str, event: dict[str, Any]) -> list[fx.Effect]:
        out = self._barge_in(reason, cancel=True)
        out.append(fx.Send(event))
        return out + self._responses.request()

    def tool_result(self, call_id: str, output: str, now: float) -> list[fx.Effect]:
        """A ``RunTool`` finished: send its output; once the calling response is done and every
        call of it is answered, ask for one reply (unless the user interrupted that response).
        """
        if not self._calls.knows(call_id) or self.phase is Phase.CLOSED:
            return []
        return self._calls.deliver(call_id, output, now) + self._transcript.emit_ready()

    def mcp_approval(self, request_id: str, approve: bool, now: float) -> list[fx.Effect]:
        """The user's answer to an ``AskApproval``: an ``mcp_approval_response`` item, then a
        ``response.create`` so the model goes on (with the call, or knowing it was declined)."""
        return self._mcp.answer(request_id, approve) + self._transcript.emit_ready()

    def local_onset(self, now: float) -> list[fx.Effect]:
        """The microphone heard the user start talking over the assistant (before the server did).

        The speaker is paused at once rather than flushed: if the server's VAD confirms with
        ``speech_started`` the usual barge-in flushes and truncates at what was heard; if it does
        not within ``LOCAL_ONSET_WAIT_S`` (a cough, a door), the reply plays on.
        """
        if not self.ready or not self.config.server_interrupts:
            return []  # the server will not stop for speech, so neither do we
        return self._speaker.local_onset(now)

    def interrupt(self, now: float, reason: str = "user") -> list[fx.Effect]:
        """The user asked the assistant to stop talking (and not to go on about running tools)."""
        self._calls.stop_follow_ups()
        return self._barge_in(reason, cancel=True)

    def playback_flushed(self, played: Mapping[str, int], now: float) -> list[fx.Effect]:
        """After a ``Flush``: wire samples of each item actually handed to the speaker."""
        return self._speaker.flushed(played) + self._transcript.emit_ready()

    def playback_drained(self) -> list[fx.Effect]:
        """The speaker has played everything queued: no item is still audible (their turns are out)."""
        self._speaker.drained()
        return self._transcript.emit_ready()

    def tick(self, now: float) -> list[fx.Effect]:
        """Time passes: give up waiting for late user transcripts; end unconfirmed pauses."""
        out = self._speaker.tick(now)
        self._transcript.expire_waits(now)
        if self.ready:
            out.extend(self._lifetime.check(self.seconds_left(now), now, self.idle))
        return out + self._transcript.emit_ready()

    def recycle_later(self, not_before: float) -> None:
        """The new session could not be put in place (busy again, or it failed): ask again later."""
        self._lifetime.recycle_later(not_before)

    def close(self, now: float | None = None, played: Mapping[str, int] | None = None) -> list[fx.Effect]:
        """The conversation ends: write out everything, finished or not.

        ``played`` (wire samples the speaker was handed, per still-audible item) cuts a reply
        that was only partly heard to what was heard, as a barge-in would.
        """
        self._handshake.phase = Phase.CLOSED
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
        self._handshake.phase = Phase.CONNECTING
        return out

    def reconnected(self, server_session: dict[str, Any], now: float) -> list[fx.Effect]:
        """A new connection is configured (its ``session.updated`` is ``server_session``).

        Returns the earlier turns as ``conversation.item.create`` events (see `seed_items`) and
        ``Ready``. Used after `suspend` (a reconnect) and, while `idle`, to move to a new
        session before the old one expires (its connection is then closed by the caller).
        """
        self._forget_connection()
        self._lifetime.connections += 1
        return self._ready(server_session, now)

    def update_event(self) -> dict[str, Any]:
        """The ``session.update`` that configures a new connection."""
        return self._handshake.update_event()

    def reconfigure(self, config: SessionConfig, now: float) -> list[fx.Effect]:
        """``/profile``: go on with new settings. One ``session.update`` changes them in place;
        a new voice once the assistant has spoken cannot be, so the conversation moves to a new
        server session (re-seeded with the turns so far) at the next quiet moment. The wire audio
        format stays as it is (the converters are the connection's)."""
        config = dataclasses.replace(config, audio_format=self.config.audio_format)
        new_voice = config.voice != self.config.voice
        self.config = self._handshake.config = self._inbound.config = config
        if not self.ready:
            return []  # the next connection is configured with it
        if new_voice and any(t.role == "assistant" for t in self.transcript()):
            self._lifetime.want()
            return [fx.Notice("info", "the voice cannot change once the assistant has spoken: the conversation "
                                      "moves to a new server session at the next quiet moment")]
        return [fx.Send(cmd.session_update(config, event_id=self._ids()))]

    def restore(self, turns: Sequence[fx.Turn]) -> None:
        """Earlier turns of this conversation (from a saved transcript), before the first connection.

        They count as written (the panel shows them, nothing writes them again) and are
        re-seeded into the server session once it is configured.
        """
        self._transcript.restore(turns)

    def seed_items(self) -> list[dict[str, Any]]:
        """The written turns as text items for a fresh server session (see `Transcript.seed_items`)."""
        return self._transcript.seed_items(self._lifetime.connections)

    def _ready(self, server_session: dict[str, Any], now: float) -> list[fx.Effect]:
        """A server session is configured: the earlier turns go into it, then ``Ready``."""
        self._handshake.configured(server_session)
        self._lifetime.started(self.seconds_left(now))
        out: list[fx.Effect] = []
        previous = "root"
        for item in self.seed_items():
            out.append(fx.Send(cmd.item_create(item, previous_item_id=previous, event_id=self._ids())))
            previous = item["id"]
        return [*out, fx.Ready(server_session, expires_at(server_session))]

    def _forget_connection(self) -> None:
        """Drop everything that belonged to the server session just left."""
        for part in self._parts:
            part.reset()

    def _write_out(self, now: float | None, played: Mapping[str, int] | None, no_result: str) -> list[fx.Effect]:
        self._transcript.finish_all(now, played, no_result)
        self._speaker.drained()
        return self._transcript.emit_ready()

    def _barge_in(self, reason: str, *, cancel: bool) -> list[fx.Effect]:
        return self._speaker.barge_in(reason, self._responses.active, cancel=cancel)

