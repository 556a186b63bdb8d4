"""The orchestrator: one conversation's tasks, the effects they carry out, and shutdown order.

It couples the audio adapter, the playback ``Player``, the sans-I/O ``Session`` and the
WebSocket ``Connection``; every decision is the session's, this module only moves data and
awaits. Shutdown order: stop the audio clock, write out the transcript, close the socket
with 1000, close the audio files. Nothing already said is lost on any exit path.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import dataclasses
import functools
import logging
import os
import random
import signal
import sys
import time
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, TextIO

from voicechat import effects as fx
from voicechat import keys
from voicechat.audio.echo import EchoPath, threshold_db
from voicechat.audio.filedev import FileAudio
from voicechat.audio.playback import PlaybackBuffer
from voicechat.audio.player import Player
from voicechat.audio.wav import load_wav_at
from voicechat.backoff import DEFAULT as DEFAULT_BACKOFF
from voicechat.backoff import Backoff, Uniform, retryable, retryable_error_event
from voicechat.budget import Budget
from voicechat.config import Settings
from voicechat.errors import (
    AuthError,
    ConnectError,
    ExitStatus,
    Interrupted,
    SessionError,
    UsageError,
    VoicechatError,
)
from voicechat.eventlog import EventLog
from voicechat.files import read_limited
from voicechat.outputs import AudioOutput, Recorder, TeeBuffer
from voicechat.protocol import codec
from voicechat.protocol import events as ev
from voicechat.protocol.constants import WIRE_RATE
from voicechat.redact import remember_settings, scrub
from voicechat.session import EXPIRY_WARNING_S, RECYCLE_MARGIN_S, Phase, Session
from voicechat.tools import ToolRunner, ToolSpec, available_tools, describe_call, error_result
from voicechat.transcript import FileSink, Sink, StreamSink, escape_control, read_jsonl
from voicechat.transport import Connection, Endpoint, connect, realtime_url
from voicechat.ui.view import View

if TYPE_CHECKING:
    from voicechat.server import ServerOptions

log = logging.getLogger(__name__)

PANEL_PERIOD_S = 0.1  # the panel redraws at most 10 times a second (meters still look live; 15 cost a third more CPU)
AUDIO_BACKLOG = 250  # appends (~5 s of 20 ms chunks) queued before the oldest is dropped
CONTROL_BACKLOG = 2000  # control events queued before the connection is deemed stuck
TAIL_MARGIN_MS = 700  # quiet audio after the server's end-of-turn silence before we give up
MAX_TAIL_MS = 60_000  # a file conversation ends at the latest this long after the file
CONFIRM_WAIT_S = 60.0  # a tool that needs the user's yes is declined after this long unanswered
SETUP_TIMEOUT_S = 15.0  # from the WebSocket's opening to session.updated, on every connection
MALFORMED_BURST = 10  # malformed server frames warned about one by one, before the rate limit
MALFORMED_EVERY_S = 10.0  # then at most one warning this often, counting the frames held back


@dataclass(frozen=True)
class Reliability:
    """How a conversation outlives its connections: reconnects and moving to a new session.

    ``backoff`` spaces and bounds the reconnect tries (``rng`` draws its jitter; ``None``: a
    fresh ``random.Random``). The server ends a session after 60 minutes: a warning is shown
    ``expiry_warning_s`` before, and once less than ``recycle_margin_s`` is left the
    conversation moves to a new session at the first quiet moment. ``setup_timeout_s`` bounds
    every connection's ``session.created`` + ``session.updated`` (the first one's too: a server
    that never sends them ends talk with a `ConnectError`); a new session that could not be
    opened ahead of the limit is tried again ``recycle_retry_s`` later.
    """

    backoff: Backoff = DEFAULT_BACKOFF
    rng: Uniform | None = None
    recycle_margin_s: float = RECYCLE_MARGIN_S
    expiry_warning_s: float = EXPIRY_WARNING_S
    setup_timeout_s: float = SETUP_TIMEOUT_S
    recycle_retry_s: float = 10.0


RECYCLE_MARGIN_ENV = "VOICECHAT_RECYCLE_MARGIN_S"
"""A test knob (seconds): how close to the session limit the conversation moves to a new session."""


def reliability_from_env(environ: Any = os.environ) -> Reliability:
    """`Reliability` defaults, with ``VOICECHAT_RECYCLE_MARGIN_S`` (a test knob) applied."""
    raw = environ.get(RECYCLE_MARGIN_ENV)
    if not raw:
        return Reliability()
    try:
        margin = float(raw)
    except ValueError:
        margin = -1.0
    if not margin >= 0:
        from voicechat.errors import ConfigError

        raise ConfigError(f"{RECYCLE_MARGIN_ENV} must be a number of seconds, not {raw!r}")
    return Reliability(recycle_margin_s=margin)


@dataclass(frozen=True)
class Link:
    """A configured connection: its socket, its event stream, and the ``session.updated`` it got."""

    conn: Connection
    events: AsyncIterator[ev.ServerEvent | codec.MalformedEvent]
    session: dict[str, Any]


@dataclass
class Output:
    """Where the conversation is shown: transcript sinks and a status writer (stderr)."""

    sinks: list[Sink] = field(default_factory=list)
    status: TextIO | None = None
    quiet: bool = False
    front: Any = None  # the live panel (LivePanel) or the plain status log (PlainStatus), if any
    view: View | None = None  # what the front end draws; notices go there while the panel is live
    _file_problems: list[str] = field(default_factory=list, repr=False)  # said on the panel: again after it

    def __post_init__(self) -> None:
        for sink in self.sinks:
            if getattr(sink, "report", False) is None:
                sink.report = self.file_problem

    def file_problem(self, message: str) -> None:
        """An output file could not be written (and what was done instead), or can be again.

        Shown even with --quiet: it is about what the user keeps. On the live panel it is a
        notice, and said again on stderr once the panel is gone (the panel is erased at exit).
        """
        line = "warning: " + message
        if self.view is not None and self.panel_live:
            self.view.notice(line)
            self._file_problems.append(line)
        else:
            self.always(line)

    def after_panel(self) -> None:
        """The panel is gone: what it said about output files, on stderr where it stays."""
        for line in self._file_problems:
            self.always(line)
        self._file_problems.clear()

    def notice(self, level: str, message: str) -> None:
        message = scrub(message)  # server text (an error event) may echo the key
        if level == "debug":
            log.debug("%s", message)
            return
        prefix = {"error": "error: ", "warning": "warning: "}.get(level, "")
        if self.view is not None and self.panel_live:
            self.view.notice(prefix + message)
            return
        if not self.quiet or level == "error":
            self.always(prefix + message)

    def always(self, message: str) -> None:
        """A line on stderr even with --quiet: why the conversation ended, a question to answer."""
        if self.status is None:
            return
        with contextlib.suppress(OSError, ValueError):  # a closed pipe, a full disk: nowhere to say it
            self.status.write(f"voicechat: {escape_control(scrub(message))}\n")
            self.status.flush()

    @property
    def panel_live(self) -> bool:
        return self.front is not None and getattr(self.front, "is_started", False)

    def publish(self, snapshot: Any) -> None:
        if self.front is not None:
            self.front.update(snapshot)


class Outbox:
    """Ordered, bounded queue of client events for the sender task.

    Policy: audio appends beyond ``AUDIO_BACKLOG`` are dropped (oldest audio is stale anyway,
    counted in ``dropped_audio``); control events are never dropped, and a backlog beyond
    ``CONTROL_BACKLOG`` means the server stopped reading, which ends the conversation.
    """

    def __init__(self) -> None:
        self._events: deque[dict[str, Any]] = deque()
        self._audio = 0
        self._ready = asyncio.Event()
        self.dropped_audio = 0

    def clear(self) -> None:
        """Forget everything queued: it was meant for a connection that is gone."""
        self._events.clear()
        self._audio = 0

    def put(self, event: dict[str, Any]) -> None:
        if event["type"] == "input_audio_buffer.append":
            if self._audio >= AUDIO_BACKLOG:
                self.dropped_audio += 1
                return
            self._audio += 1
        elif len(self._events) >= CONTROL_BACKLOG:
            raise SessionError("the server stopped reading our events", hint="check the connection")
        self._events.append(event)
        self._ready.set()

    async def get(self) -> dict[str, Any]:
        while not self._events:
            self._ready.clear()
            await self._ready.wait()
        event = self._events.popleft()
        if event["type"] == "input_audio_buffer.append":
            self._audio -= 1
        return event


class AudioIO(Protocol):
    """A clocked microphone + speaker pair (files or PortAudio devices)."""

    rate: int
    input_done: bool  # a file ran out (a microphone never does)
    tail_ms: int  # quiet microphone audio sent since the input ran out
    echo: EchoPath | None  # the microphone's processing, set before run()

    async def run(
        self, buffer: PlaybackBuffer, on_mic: Callable[[bytes], None], on_block: Callable[[], bool]
    ) -> None: ...

    def close(self) -> None: ...


class Conversation:
    """One live conversation, over one connection at a time.

    The link task serves the current connection. When it drops it is replaced: playback of
    the lost reply stops, the session writes out what was in flight (`Session.suspend`),
    new connections are tried with backoff, and the first one configured gets the earlier
    turns re-seeded (`Session.reconnected`). Before the server's time limit a new session is
    opened and configured beside the old one and taken over at a quiet moment.
    """

    def __init__(
        self,
        settings: Settings,
        conn: Connection,
        audio: AudioIO,
        out: Output,
        *,
        actions: AsyncIterator[keys.Action] | None = None,
        push_to_talk: bool = False,
        editor: keys.LineEditor | None = None,
        view: View,
        budget: Budget | None = None,
        connector: Callable[[], Awaitable[Connection]] | None = None,
        reliability: Reliability | None = None,
        reply_audio: AudioOutput | None = None,
    ) -> None:
        self.settings = settings
        self.connector = connector  # opens a new connection (None: no reconnects)
        self.reliability = reliability or Reliability()
        self.actions = actions
        self.editor = editor
        self.conn = conn
        self.audio = audio
        self.out = out
        self.session = Session(settings.session_config())
        self.session.push_to_talk_mode = push_to_talk
        self.session.recycle_margin_s = self.reliability.recycle_margin_s
        self.session.expiry_warning_s = self.reliability.expiry_warning_s
        self.player = Player(audio.rate)
        self.view = view
        mode = view.header.echo
        if mode == "aec" and settings.echo == "auto" and not aec_runs_at(audio.rate):
            mode = "gate"  # the canceller does not run at this device's rate: the fallback
            view.header = dataclasses.replace(view.header, echo=mode)
        self.echo = make_echo_path(settings, mode, audio.rate, on_onset=self._on_onset)
        audio.echo = self.echo
        self.recorder: Recorder | None = None
        if settings.record is not None:
            try:
                self.recorder = Recorder(settings.record, audio.rate, report=out.file_problem)
            except OSError as exc:  # a FIFO or a device: writing it could block
                raise UsageError(f"--record {settings.record}: {exc.strerror or exc}") from None
            self.echo.recorder = self.recorder
        self.reply_audio = reply_audio  # --output-file of a file run: what the speaker took
        self.outbox = Outbox()
        self.ready = asyncio.Event()
        self.finished = asyncio.Event()
        self.error: BaseException | None = None
        self._committed_file = False
        self.clock: Callable[[], float] = time.time
        self.budget = budget  # --max-cost / --max-minutes, on the monotonic clock below
        self.monotonic: Callable[[], float] = time.monotonic
        self.tools = ToolRunner(available_tools(settings.tools, settings.builtin_tools), confirm=self._confirm)
        self._tool_tasks: set[asyncio.Task[None]] = set()
        self._asking = asyncio.Lock()  # one confirmation question at a time
        self._answer: asyncio.Future[bool] | None = None
        self._events: AsyncIterator[ev.ServerEvent | codec.MalformedEvent] = conn.events()
        self._expired: str | None = None  # the server ended the session (fx.Reconnect)
        self._expired_event = asyncio.Event()
        self._recycling: asyncio.Task[None] | None = None
        self._standby: Link | None = None  # a configured new session, waiting for a quiet moment
        self._standby_ready = asyncio.Event()
        self._retiring: set[asyncio.Task[None]] = set()  # old connections being closed
        self.malformed_frames = 0  # frames that were no event (see _malformed)
        self._malformed_held = 0  # of them, not warned about yet
        self._malformed_shown_at = 0.0

    # ---- effects ----------------------------------------------------------------------------

    def dispatch(self, effects: list[fx.Effect]) -> None:
        for effect in effects:
            match effect:
                case fx.Send(event):
                    self.outbox.put(event)
                case fx.Play(_, item_id, pcm):
                    self.player.play(item_id, pcm)
                case fx.AudioEnd():
                    self.player.end()
                case fx.Flush(_, item_ids):
                    played = self.player.flush(item_ids)
                    self.dispatch(self.session.playback_flushed(played, self.clock()))
                case fx.Pause():
                    self.player.pause()
                case fx.Resume():
                    self.player.resume()
                case fx.TurnFinished(turn):
                    for sink in self.out.sinks:
                        sink.write(turn)
                case fx.Notice(level, message):
                    self.out.notice(level, message)
                case fx.Ready(server_session):
                    self.ready.set()
                    self.view.connection = "connected"
                    expires = server_session.get("expires_at")
                    if isinstance(expires, int | float) and expires > 0:
                        self.view.expires_at = float(expires)
                    else:
                        self.view.expires_at = None
                case fx.RunTool(call_id, name, arguments):
                    task = asyncio.create_task(self._run_tool(call_id, name, arguments), name=f"tool {name}")
                    self._tool_tasks.add(task)
                    task.add_done_callback(self._tool_tasks.discard)
                case fx.Fatal(error):
                    self.fail(error)
                case fx.Reconnect(reason):
                    self._expired = reason
                    self._expired_event.set()
                case fx.Recycle():
                    if self.connector is not None and self._recycling is None and self._standby is None:
                        self._recycling = asyncio.create_task(self._recycle(), name="recycle")

    def fail(self, error: BaseException) -> None:
        if self.error is None:
            self.error = error
        self.finished.set()

    # ---- tools --------------------------------------------------------------------------------

    async def _run_tool(self, call_id: str, name: str, arguments: str) -> None:
        """One function call, as its own task (the runner bounds how many run at once)."""
        self.out.notice("debug", f"running tool {name} ({call_id})")
        try:
            result = await self.tools.run(name, arguments)
        except Exception as exc:  # a broken tool never ends the conversation
            log.debug("tool %s failed", name, exc_info=True)
            result = error_result(f"the tool failed: {exc}")
        self.dispatch(self.session.tool_result(call_id, result, self.clock()))

    async def _confirm(self, spec: ToolSpec, args: dict[str, Any]) -> bool:
        """Ask on the keyboard whether a ``confirm = true`` tool may run; no keyboard: no."""
        if self.actions is None:
            self.out.notice("warning", f"tool {spec.name} needs a yes from the keyboard, and there is none: declined")
            return False
        async with self._asking:
            question = f"Run tool {describe_call(spec.name, args)}? [y/N]"
            self._answer = asyncio.get_running_loop().create_future()
            status, self.view.status = self.view.status, f"{question} type y + Enter to allow"
            if self.out.panel_live:
                self.out.notice("info", question)
            else:  # asked even with --quiet: the answer is needed
                self.out.always(question)
            try:
                approved = await asyncio.wait_for(self._answer, CONFIRM_WAIT_S)
            except TimeoutError:
                approved = False
            finally:
                self._answer = None
                self.view.status = status
        self.out.notice("info", f"tool {spec.name} {'allowed' if approved else 'declined'}")
        return approved

    # ---- tasks --------------------------------------------------------------------------------

    async def _receive(self, events: AsyncIterator[ev.ServerEvent | codec.MalformedEvent]) -> None:
        async for event in events:
            if isinstance(event, codec.MalformedEvent):
                self._malformed(event)
                continue
            if self.budget is not None and isinstance(event, ev.ResponseDone):
                self.budget.add(event.response.usage)
            self.dispatch(self.session.handle(event, self.clock()))

    def _malformed(self, error: codec.MalformedEvent) -> None:
        """Warn about a frame that is no event: the first `MALFORMED_BURST` one by one, then at
        most one warning every `MALFORMED_EVERY_S` saying how many were held back since the last."""
        self.malformed_frames += 1
        now = self.monotonic()
        if self.malformed_frames > MALFORMED_BURST and now - self._malformed_shown_at < MALFORMED_EVERY_S:
            self._malformed_held += 1
            return
        held, self._malformed_held, self._malformed_shown_at = self._malformed_held, 0, now
        more = f" ({held:,} more since the last warning)" if held else ""
        if self.malformed_frames == MALFORMED_BURST:
            more += f"; further ones are reported at most every {MALFORMED_EVERY_S:g} s"
        self.out.notice("warning", f"ignored a malformed server frame: {error.message}{more}")

    async def _send(self, conn: Connection) -> None:
        while True:
            await conn.send(await self.outbox.get())

    # ---- connections ----------------------------------------------------------------------

    async def _link(self) -> None:
        """Serve one connection at a time until the conversation ends; replace dropped ones."""
        while True:
            ended = await self._serve()
            if self.finished.is_set():
                return
            if ended is None:
                continue  # moved to a new session: serve it
            if not self._worth_reconnecting():
                self.fail(ended)
                return
            self._lost(ended)
            try:
                link = await self._reconnect(ended)
            except VoicechatError as exc:
                self.fail(exc)
                return
            self._use(link)
            self.out.notice("info", "reconnected; the conversation goes on")

    async def _serve(self) -> VoicechatError | None:
        """Carry ``self.conn`` until it ends (returns why) or the conversation does (None).

        A standby session (`_recycle`) is taken over here, and only while the session is idle
        (this check and the switch happen with no await in between); returns None then too.
        """
        receive = asyncio.create_task(self._receive(self._events), name="receive")
        send = asyncio.create_task(self._send(self.conn), name="send")
        finished: asyncio.Task[Any] = asyncio.create_task(self.finished.wait(), name="finished")
        expired: asyncio.Task[Any] = asyncio.create_task(self._expired_event.wait(), name="expired")
        standby: asyncio.Task[Any] = asyncio.create_task(self._standby_ready.wait(), name="standby")
        waiting = {receive, send, finished, expired, standby}
        setup: asyncio.Task[Any] | None = None
        if not self.ready.is_set():  # the first connection (new ones are set up in _open)
            setup = asyncio.create_task(self._first_setup(), name="setup")
            waiting.add(setup)
        try:
            while True:
                done, _ = await asyncio.wait(waiting, return_when=asyncio.FIRST_COMPLETED)
                if finished in done:
                    return None
                for task in (receive, send):
                    if task in done:
                        error = task.exception()
                        if error is None:  # the server closed the connection normally
                            return SessionError("the server closed the connection")
                        if not isinstance(error, VoicechatError):
                            raise error
                        return error
                if setup is not None and setup in done:
                    waiting.discard(setup)
                    error = setup.exception()
                    if error is not None:
                        assert isinstance(error, VoicechatError)
                        return error
                if expired in done:
                    self._expired_event.clear()
                    return SessionError(self._expired or "the server ended the session")
                if standby in done:
                    self._standby_ready.clear()
                    if self._take_standby():
                        return None
                    waiting.discard(standby)
                    standby = asyncio.create_task(self._standby_ready.wait(), name="standby")
                    waiting.add(standby)
        finally:
            tasks = [*waiting, receive, send, finished, expired, standby]
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    async def _first_setup(self) -> None:
        """The first connection's ``session.created`` and ``session.updated`` arrive within
        ``setup_timeout_s``, as a new connection's must (`_open`); else a `ConnectError`."""
        timeout = self.reliability.setup_timeout_s
        try:
            await asyncio.wait_for(self.ready.wait(), timeout)
        except TimeoutError:
            missing = "session.created" if self.session.phase is Phase.CONNECTING else "session.updated"
            raise ConnectError(
                f"the server accepted the connection but did not set up the session within {timeout:g} s "
                f"(no {missing})",
                hint="check --base-url: is it a realtime server?",
            ) from None

    def _worth_reconnecting(self) -> bool:
        """A drop (no close frame, 1001, 1011, …), or any close after an error event that said a
        new connection may help (``server_error``, ``session_expired``); not a normal close."""
        if self.connector is None:
            return False
        return self.session.retry_hint is not None or self.conn.dropped

    def _lost(self, why: VoicechatError) -> None:
        """The connection is gone: silence the lost reply, write out what was in flight, show it."""
        self.view.connection = "reconnecting"
        self.out.notice("warning", f"{why.message}; reconnecting")
        for task in self._tool_tasks:
            task.cancel()  # their results could not be delivered: the calls are not in the new session
        played = self.player.flush(self.session.audible_items)
        self.dispatch(self.session.suspend(self.clock(), played))
        self.outbox.clear()  # queued microphone audio is stale, other events were for the old session
        self._drop_standby()
        self._retire(self.conn)

    async def _reconnect(self, why: VoicechatError) -> Link:
        """Open a new connection, with backoff between tries; raise when none can be had."""
        policy = self.reliability.backoff
        rng = self.reliability.rng or random.Random()
        started = time.monotonic()
        last: VoicechatError = why
        tries = 0
        for delay in policy.delays(rng):
            await asyncio.sleep(delay)
            tries += 1
            try:
                return await self._open()
            except VoicechatError as exc:
                if not retryable(exc):
                    raise
                last = exc
                self.out.notice("info", f"reconnect try {tries} of {policy.tries} failed: {exc.message}")
        seconds = time.monotonic() - started
        kind = type(last) if isinstance(last, ConnectError) else ConnectError
        raise kind(f"lost the connection and could not reconnect ({tries} tries in {seconds:.0f} s): {last.message}",
                   hint=last.hint)

    async def _open(self) -> Link:
        """A new connection, configured: ``session.created``, our ``session.update``, ``session.updated``."""
        assert self.connector is not None
        conn = await self.connector()
        events = conn.events()
        try:
            server_session = await asyncio.wait_for(self._configure(conn, events), self.reliability.setup_timeout_s)
        except TimeoutError:
            await close_quietly(conn)
            raise ConnectError(f"the new session was not ready within {self.reliability.setup_timeout_s:.0f} s") \
                from None
        except BaseException:
            await close_quietly(conn)
            raise
        return Link(conn, events, server_session)

    async def _configure(self, conn: Connection, events: AsyncIterator[Any]) -> dict[str, Any]:
        try:
            async for event in events:
                if isinstance(event, ev.SessionCreated):
                    await conn.send(self.session.update_event())
                elif isinstance(event, ev.SessionUpdated):
                    return event.session
                elif isinstance(event, ev.ErrorEvent):
                    if retryable_error_event(event.type, event.code):
                        raise ConnectError(f"the new session failed: {event.message}")
                    raise SessionError(f"the server rejected the session settings: {event.message}")
        except (ConnectError, SessionError) as exc:
            if conn.dropped and not isinstance(exc, ConnectError):
                raise ConnectError(exc.message) from None  # e.g. 1001 while setting up: try again
            raise
        raise ConnectError("the server closed the new connection before it was set up")

    def _use(self, link: Link) -> None:
        """Make ``link`` the live connection and tell the session (which re-seeds the turns)."""
        self.conn, self._events = link.conn, link.events
        self.outbox.clear()
        self._expired = None  # an expiry reported by the old session is over with it
        self._expired_event.clear()
        self.dispatch(self.session.reconnected(link.session, self.clock()))

    async def _recycle(self) -> None:
        """Open and configure a new session beside the live one; `_serve` takes it over."""
        try:
            link = await self._open()
        except VoicechatError as exc:
            self.out.notice("warning", f"could not open a new session ahead of the time limit: {exc.message}")
            self.session.recycle_later(self.clock() + self.reliability.recycle_retry_s)
            return
        finally:
            self._recycling = None
        self._standby = link
        self._standby_ready.set()

    def _take_standby(self) -> bool:
        """Switch to the standby session if nothing is going on; else keep the old one for now."""
        link, self._standby = self._standby, None
        if link is None:
            return False
        if not self.session.idle:
            self._retire(link.conn)  # its seeded turns would be stale by the next quiet moment
            self.session.recycle_later(self.clock())
            return False
        old = self.conn
        self._use(link)
        self._retire(old)  # closed with 1000 once the new session is live
        self.out.notice("info", "moved the conversation to a new server session before the time limit")
        return True

    def _drop_standby(self) -> None:
        if self._recycling is not None:
            self._recycling.cancel()
            self._recycling = None
        if self._standby is not None:
            self._retire(self._standby.conn)
            self._standby = None
        self._standby_ready.clear()

    def _retire(self, conn: Connection) -> None:
        task = asyncio.create_task(close_quietly(conn), name="close old connection")
        self._retiring.add(task)
        task.add_done_callback(self._retiring.discard)

    async def close_connections(self) -> None:
        """Close the live connection (1000), any standby and the ones still closing."""
        recycling = self._recycling
        self._drop_standby()
        if recycling is not None:
            await asyncio.gather(recycling, return_exceptions=True)  # it closes its half-open connection
        await close_quietly(self.conn)
        await asyncio.gather(*self._retiring, return_exceptions=True)

    def resume(self, turns: Sequence[fx.Turn], source: Path) -> None:
        """Continue a saved conversation: its turns come first, and go to the new session too.

        They are written to each transcript sink except the file they were read from (new
        turns are appended to it: ``--resume chat.jsonl --transcript chat.jsonl`` keeps one file).
        """
        self.session.restore(turns)
        for sink in self.out.sinks:
            if not (isinstance(sink, FileSink) and _same_file(sink.path, source)):
                for turn in turns:
                    sink.write(turn)
        self.out.notice("info", f"continuing the conversation in {source} ({len(turns)} earlier turns)")

    async def _audio(self) -> None:
        await self.ready.wait()
        buffer: Any = self.player.buffer
        if self.reply_audio is not None:
            buffer = TeeBuffer(buffer, self.reply_audio.write)
        await self.audio.run(buffer, self._on_mic, self._on_block)

    def _on_mic(self, pcm: bytes) -> None:
        self.dispatch(self.session.mic_audio(pcm, self.clock()))

    async def _keyboard(self) -> None:
        if self.actions is not None:
            await self.ready.wait()
            async for action in self.actions:
                self.on_action(action)
                if self.finished.is_set():
                    return
        await self.finished.wait()  # no keyboard, or no more keys: the conversation goes on

    async def _panel(self) -> None:
        """Publish a fresh snapshot for the front end at most 10 times a second."""
        if self.out.front is None:
            await self.finished.wait()
            return
        while not self.finished.is_set():
            self.publish()
            await asyncio.sleep(PANEL_PERIOD_S)

    def publish(self) -> None:
        line = self.editor.line if self.editor is not None else ""
        self.out.publish(self.view.snapshot(self.session, self.player, self.echo, line))

    def on_action(self, action: keys.Action) -> None:
        """A typed line, a slash command or the push-to-talk key."""
        now = self.clock()
        if self._answer is not None and not self._answer.done() and isinstance(action, keys.Submit):
            self._answer.set_result(action.text.strip().lower() in ("y", "yes"))  # a tool's question
            return
        match action:
            case keys.Submit(text):
                if not self.session.ready and text.strip():
                    self.out.notice("warning", "not connected: the message was not sent")
                self.dispatch(self.session.say(text, now))
            case keys.PushToTalk():
                self.dispatch(self.session.push_to_talk(now))
                if self.session.talking:
                    self.out.notice("info", "talking: press the key again to send")
            case keys.Quit():
                self.finished.set()
            case keys.UnknownCommand(text):
                self.out.notice("warning", f"unknown command {text.split()[0]!r}: /help lists them")
            case keys.Command(name, arg):
                self._command(name, arg, now)

    def _command(self, name: str, arg: str, now: float) -> None:
        match name:
            case "mute" | "unmute":
                self.session.muted = name == "mute"
                self.out.notice("info", "microphone muted" if self.session.muted else "microphone on")
            case "interrupt":
                self.dispatch(self.session.interrupt(now))
            case "image":
                self._send_image(arg)
            case "save":
                self._save(arg, now)
            case "cost":
                self.out.notice("info", cost_line(self.settings.model, self.session.usage))
            case "help":
                self.out.notice("info", "commands: " + "; ".join(f"{u} {d}" for u, d in keys.COMMANDS.values()))

    def _send_image(self, arg: str) -> None:
        if not arg:
            self.out.notice("warning", "/image needs a file: /image photo.png")
            return
        try:
            url = image_data_url(Path(arg).expanduser())
        except ValueError as exc:
            self.out.notice("warning", str(exc))
            return
        self.dispatch(self.session.send_image(url, self.clock()))

    def _save(self, arg: str, now: float) -> None:
        path = Path(arg).expanduser() if arg else Path(time.strftime("voicechat-%Y%m%d-%H%M%S.md"))
        try:
            sink = FileSink(path, self.out.file_problem, label="/save")
        except VoicechatError as exc:
            self.out.notice("warning", f"could not save the transcript to {path}: {exc}")
            return
        for turn in self.session.transcript():
            sink.write(turn)
        failed = sink.problem is not None  # said by the sink, with where the turns went instead
        sink.close()
        if not failed:
            self.out.notice("info", f"transcript saved to {path}")

    def _on_onset(self) -> None:
        self.dispatch(self.session.local_onset(self.clock()))

    def _on_block(self) -> bool:
        """After each audio block: housekeeping and the end-of-file-conversation check."""
        now = self.clock()
        if self.player.drained and self.session.audible_items:
            self.dispatch(self.session.playback_drained())
        self.dispatch(self.session.tick(now))
        if self.finished.is_set() or self._over_budget():
            return False
        if not self.audio.input_done:
            return True
        if self.settings.vad == "none" and not self.session.push_to_talk_mode and not self._committed_file:
            self._committed_file = True
            self.dispatch(self.session.commit(now))
        tail = self.audio.tail_ms
        quiet_enough = tail >= self.settings.turn_silence_ms + TAIL_MARGIN_MS
        if quiet_enough and self.session.ready and not self.session.busy and self.player.drained:
            self.finished.set()
            return False
        if tail >= MAX_TAIL_MS:
            self.out.notice("warning", "stopped waiting for the server after the input file ended")
            self.finished.set()
            return False
        return True

    def _over_budget(self) -> bool:
        """At a --max-cost/--max-minutes limit: mute the mic, end once the reply is heard."""
        if self.budget is None or not self.budget.active:
            return False
        now = self.monotonic()
        self.dispatch(self.budget.check(now))
        if self.budget.reached is None:
            return False
        self.session.muted = True  # no new turn, no new cost
        quiet = self.player.drained and self.session.active_response is None
        if not self.budget.should_stop(now, quiet=quiet):
            return False
        self.finished.set()
        return True

    async def run(self) -> None:
        tasks = [
            asyncio.create_task(self._link(), name="link"),
            asyncio.create_task(self._audio(), name="audio"),
            asyncio.create_task(self._keyboard(), name="keyboard"),
            asyncio.create_task(self._panel(), name="panel"),
        ]
        finished = asyncio.create_task(self.finished.wait(), name="finished")
        try:
            done, _ = await asyncio.wait([*tasks, finished], return_when=asyncio.FIRST_COMPLETED)
            for task in done:
                if task is not finished and not task.cancelled() and task.exception() is not None:
                    # An error the server explained (an error event) beats the close that follows it.
                    self.fail(task.exception())  # type: ignore[arg-type]
        finally:
            running_tools = list(self._tool_tasks)  # their commands are killed as they are cancelled
            for task in [*tasks, finished, *running_tools]:
                task.cancel()
            await asyncio.gather(*tasks, finished, *running_tools, return_exceptions=True)
            audible = self.session.audible_items
            played = self.player.flush(audible) if audible else None
            self.dispatch(self.session.close(self.clock(), played))
            if self._malformed_held:
                self.out.notice("warning", f"ignored {self._malformed_held:,} more malformed server frames "
                                           f"({self.malformed_frames:,} in all)")
            await self.close_connections()
            if self.recorder is not None:
                self.recorder.close()
            if self.reply_audio is not None:
                self.reply_audio.close()
            self.view.connection = "closed"
            if self.out.front is not None:
                self.publish()
        if self.error is not None:
            raise self.error


IMAGE_TYPES = {".png": "image/png", ".jpg": "image/jpeg", ".jpeg": "image/jpeg", ".webp": "image/webp", ".gif": "image/gif"}
MAX_IMAGE_BYTES = 10 * 1024 * 1024


def image_data_url(path: Path) -> str:
    """A picture file as a ``data:`` URL for an ``input_image`` part."""
    import base64

    mime = IMAGE_TYPES.get(path.suffix.lower())
    if mime is None:
        raise ValueError(f"{path}: not a picture voicechat can send (use {', '.join(IMAGE_TYPES)})")
    try:
        data = read_limited(path, MAX_IMAGE_BYTES)  # a regular file: never a FIFO, never /dev/zero
    except OSError as exc:
        raise ValueError(f"cannot read {path}: {exc.strerror or exc}") from None
    return f"data:{mime};base64,{base64.b64encode(data).decode('ascii')}"


def cost_line(model: str, usage: Any) -> str:
    from voicechat.pricing import cost

    tokens = f"{usage.input_tokens:,} tokens in, {usage.output_tokens:,} out"
    dollars = cost(model, usage)
    return f"{tokens}, about ${dollars:.4f}" if dollars is not None else f"{tokens} (no price known for {model})"


async def keyboard_actions(editor: keys.LineEditor, fd: int = 0) -> AsyncIterator[keys.Action]:
    """Actions typed on the terminal (nothing when ``fd`` is not a tty)."""
    async with keys.KeyReader(fd) as reader:
        async for key in reader:
            action = editor.feed(key, time.monotonic())
            if action is not None:
                yield action


def echo_mode(settings: Settings) -> str:
    """``auto`` made concrete: no echo to handle from a file; else echo cancellation, with the
    playback-relative gate only where the canceller cannot load.

    With the reply leaking into the microphone at full level, aec lets a barge-in at the echo's
    own level through and the reply's echo never (tests/test_device_echo.py, on real devices);
    the gate needs the user 6-10 dB louder than the echo, so it is the fallback, not the choice.
    """
    if settings.echo != "auto":
        return settings.echo
    if settings.input_file is not None:
        return "off"
    from voicechat.audio.aec import aec_available

    return "aec" if aec_available() else "gate"


def aec_runs_at(rate: int) -> bool:
    from voicechat.audio.aec import SUPPORTED_RATES

    return rate in SUPPORTED_RATES


def make_echo_path(settings: Settings, mode: str, rate: int, on_onset: Callable[[], None]) -> EchoPath:
    """The microphone's processing for a concrete mode (see `echo_mode`)."""
    canceller = None
    if mode == "aec":
        from voicechat.audio.aec import EchoCanceller

        canceller = EchoCanceller(rate)
    threshold = settings.vad_threshold if settings.vad_threshold is not None else 0.5
    return EchoPath(mode, rate, onset_db=threshold_db(threshold), canceller=canceller, on_onset=on_onset)


async def talk(
    settings: Settings,
    out: Output,
    *,
    audio: AudioIO | None = None,
    actions: AsyncIterator[keys.Action] | None = None,
    reliability: Reliability | None = None,
) -> None:
    """Run one ``voicechat talk`` from resolved settings to the end of the conversation.

    ``audio`` replaces the adapter the settings would pick (tests use a file "room" with echo);
    ``actions`` replaces the terminal keyboard (and makes ``--vad none`` push-to-talk);
    ``reliability`` tunes reconnects and session recycling (tests make them quick).
    SIGINT and SIGTERM end it with `Interrupted` (exit 130/143) in every phase (see `_SignalGuard`).
    """
    guard = _SignalGuard(asyncio.current_task())
    token = _GUARD.set(guard)
    try:
        with guard.installed():
            try:
                await _talk(settings, out, audio=audio, actions=actions, reliability=reliability)
            except asyncio.CancelledError:
                if guard.error is None:
                    raise
                guard.uncancel()
    finally:
        _GUARD.reset(token)
    if guard.error is not None:
        raise guard.error


async def _talk(
    settings: Settings,
    out: Output,
    *,
    audio: AudioIO | None = None,
    actions: AsyncIterator[keys.Action] | None = None,
    reliability: Reliability | None = None,
) -> None:
    remember_settings(settings)  # the CLI has already; a caller in-process may not have
    earlier = read_jsonl(settings.resume) if settings.resume is not None else None  # before connecting
    budget = Budget(settings.model, settings.max_cost, settings.max_minutes, started=time.monotonic())
    for notice in budget.start_notices():
        out.notice(notice.level, notice.message)
    reply_audio = None
    if audio is None and settings.input_file is not None:
        audio = FileAudio(load_wav_at(settings.input_file, WIRE_RATE), None, speed=10.0 if settings.fast else 1.0)
        if settings.output_file is not None:
            try:
                reply_audio = AudioOutput(settings.output_file, WIRE_RATE, label="--output-file",
                                          report=out.file_problem)
            except OSError as exc:  # a FIFO or a device: writing it could block
                raise UsageError(f"--output-file {settings.output_file}: {exc.strerror or exc}") from None
    elif audio is None:
        from voicechat.audio.device import DeviceAudio

        audio = DeviceAudio(
            input_device=settings.input_device,
            output_device=settings.output_device,
            sample_rate=settings.sample_rate,
        )
    async with contextlib.AsyncExitStack() as stack:
        stack.callback(out.after_panel)  # last: once the panel is gone
        stack.callback(audio.close)
        if reply_audio is not None:
            stack.callback(reply_audio.close)
        for sink in out.sinks:
            stack.callback(sink.close)  # a transcript that could not be written says so, and where it went
        view = View(settings, echo_mode(settings))
        out.view = view
        if out.front is not None:
            stack.enter_context(out.front)
            out.publish(view.snapshot_idle())
        endpoint = await open_endpoint(settings, stack)
        events = None
        if settings.log_events is not None:
            events = EventLog(settings.log_events, secrets=(settings.api_key,))  # not the local placeholder
            stack.callback(events.close)
        out.notice("info", f"connecting to {endpoint.url.split('?')[0]} (model {settings.model})")
        conn = await connect(endpoint, log=events)
        stack.push_async_callback(close_quietly, conn)
        push_to_talk = settings.vad == "none" and (actions is not None or settings.input_file is None)
        # The keyboard is taken over only where typing can be seen (the panel) or is needed (the
        # push-to-talk key); otherwise the terminal keeps echoing as usual.
        wants_keys = actions is None and (out.panel_live or push_to_talk)
        terminal = stack.enter_context(keys.Terminal(0)) if wants_keys else None
        editor = None
        if actions is None and terminal is not None and terminal.active:
            editor = keys.LineEditor(push_to_talk=push_to_talk)
            actions = keyboard_actions(editor)
            view.status = "space: talk/send · type + Enter: message · /help · ctrl-c: quit" if push_to_talk else (
                "type + Enter: message · /help · ctrl-c: quit")
        if push_to_talk:
            out.notice("info", "push-to-talk: press space to talk, again to send")
        conversation = Conversation(settings, conn, audio, out, actions=actions, push_to_talk=push_to_talk,
                                    editor=editor, view=view, budget=budget,
                                    connector=functools.partial(connect, endpoint, log=events), reliability=reliability,
                                    reply_audio=reply_audio)
        if earlier is not None and settings.resume is not None:
            conversation.resume(earlier, settings.resume)
        with _signals(conversation):
            await conversation.run()
    if budget.reached is not None:
        out.always(f"stopped: {budget.reached}")


async def open_endpoint(
    settings: Settings, stack: contextlib.AsyncExitStack, *, options: ServerOptions | None = None
) -> Endpoint:
    """Where to connect: for ``--backend local`` an in-process server (with ``options``) that
    ``stack`` stops; else ``base_url`` with the API key (`AuthError` when there is none)."""
    if settings.backend == "local":
        from voicechat.server import LocalServer, ServerOptions

        server = await stack.enter_async_context(LocalServer(options or ServerOptions(), host="127.0.0.1", port=0))
        return Endpoint(realtime_url(server.http_base_url, settings.model), api_key="local")
    if not settings.api_key:
        raise AuthError(
            f"no API key: set {'AZURE_OPENAI_API_KEY' if settings.azure else 'OPENAI_API_KEY'} in the environment or in .env",
            hint="or try the local echo server: voicechat talk --backend local",
        )
    url = realtime_url(settings.base_url, settings.model, azure=settings.azure)
    return Endpoint(url, api_key=settings.api_key, azure=settings.azure)


def _same_file(a: Path, b: Path) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:
        return a.expanduser().resolve() == b.expanduser().resolve()


async def close_quietly(conn: Connection) -> None:
    """Close ``conn`` (1000), giving up after 2 s; never raises."""
    with contextlib.suppress(Exception):
        await asyncio.wait_for(conn.close(), timeout=2.0)


class _SignalGuard:
    """SIGINT/SIGTERM during the whole of `talk`, by phase.

    * No conversation yet (starting the local server, connecting): the talk task is cancelled
      at once; talk raises `Interrupted`.
    * A conversation running: it ends cleanly, as a quit would (the reply cut to what was
      heard, the transcript written, the socket closed with 1000); talk raises `Interrupted`.
    * After it (shutting down: closing the socket and files, at most a few seconds): the
      shutdown finishes, then talk raises `Interrupted`; a second signal cuts it short.

    The first signal decides the exit status (130 for SIGINT, 143 for SIGTERM).
    """

    def __init__(self, task: asyncio.Task[Any] | None) -> None:
        self.task = task
        self.error: Interrupted | None = None
        self.conversation: Conversation | None = None
        self.ended = False  # a conversation ran and is over: talk is shutting down
        self._cancelled = 0

    def __call__(self, error: Interrupted) -> None:
        first = self.error is None
        if first:
            self.error = error
        if self.conversation is not None:
            self.conversation.fail(error)
        elif (not self.ended or not first) and self.task is not None:
            self._cancelled += 1
            self.task.cancel()

    def uncancel(self) -> None:
        """The cancellation was ours (a signal), not the caller's: forget it."""
        if self.task is not None:
            for _ in range(self._cancelled):
                self.task.uncancel()
        self._cancelled = 0

    @contextlib.contextmanager
    def installed(self):  # type: ignore[no-untyped-def]
        loop = asyncio.get_running_loop()
        installed = []
        for signum, status in ((signal.SIGINT, ExitStatus.SIGINT), (signal.SIGTERM, ExitStatus.SIGTERM)):
            previous = signal.getsignal(signum)
            try:
                loop.add_signal_handler(
                    signum, self, Interrupted(f"interrupted by {signal.Signals(signum).name}", status=status)
                )
                installed.append((signum, previous))
            except (NotImplementedError, RuntimeError, ValueError):
                pass  # not the main thread, or no signals here
        try:
            yield self
        finally:
            for signum, previous in installed:
                loop.remove_signal_handler(signum)
                with contextlib.suppress(TypeError, ValueError):
                    signal.signal(signum, previous)


_GUARD: contextvars.ContextVar[_SignalGuard | None] = contextvars.ContextVar("voicechat_signals", default=None)


@contextlib.contextmanager
def _signals(conversation: Conversation):  # type: ignore[no-untyped-def]
    """While ``conversation`` runs, SIGINT/SIGTERM end it cleanly (transcript written, socket closed)."""
    guard = _GUARD.get()
    if guard is None:
        yield
        return
    guard.conversation = conversation
    if guard.error is not None:
        conversation.fail(guard.error)
    try:
        yield
    finally:
        guard.conversation = None
        guard.ended = True


class _CurrentStdout:
    """Writes to whatever ``sys.stdout`` is now (the live panel redirects it above itself)."""

    def write(self, text: str) -> int:
        return sys.stdout.write(text)

    def flush(self) -> None:
        sys.stdout.flush()


def make_output(settings: Settings, stdout: TextIO, stderr: TextIO, *, panel: bool = True) -> Output:
    """Transcript lines to stdout (and the transcript file); the panel or a status log on stderr."""
    from voicechat.ui.live import LivePanel

    front = None
    if panel and not settings.quiet:
        front = LivePanel.for_stream(stderr, stdout=stdout, auto_refresh=False)
    live = isinstance(front, LivePanel)
    stream: Any = _CurrentStdout() if live and _isatty(stdout) else stdout
    sinks: list[Sink] = [StreamSink(stream)]
    if settings.transcript is not None:
        sinks.append(FileSink(settings.transcript))
    return Output(sinks=sinks, status=stderr, quiet=settings.quiet, front=front)


def _isatty(stream: Any) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError, OSError):
        return False
