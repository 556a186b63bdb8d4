"""One live conversation: its tasks, and the session's effects carried out by the adapters.

It couples the audio adapter (whose microphone pipeline feeds `_on_mic`), the playback
``Player``, the sans-I/O ``Session`` and the connection's life (``link.py``); every decision is
the session's, this module only moves data and awaits. Its tasks: the link (serving the
connection, replacing it when it drops), the audio clock, the keyboard and, with a live panel,
the panel's (`PanelFeed`). Shutdown order: stop the tasks and any running tool, cut the reply to
what was heard and write out the transcript, close the sockets with 1000, close the audio files.
Nothing already said is lost on any exit path. An `Observer` (the bench) may watch every step.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import os
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any, Protocol

from voicechat import effects as fx
from voicechat import keys
from voicechat.app.echo import aec_runs_at, make_echo_path
from voicechat.app.ending import Ending
from voicechat.app.keyboard import Keyboard, KeyboardWiring, Profiles
from voicechat.app.link import Connections, Events, Link, Reliability, Wiring
from voicechat.app.malformed import MalformedFrames
from voicechat.app.observer import QUIET, Observer
from voicechat.app.outbox import Outbox
from voicechat.app.output import Output
from voicechat.app.panel import PanelFeed
from voicechat.audio.capture import Capture
from voicechat.audio.echo import EchoPath
from voicechat.audio.outfile import AudioOutput, Recorder, TeeBuffer
from voicechat.audio.playback import PlaybackBuffer
from voicechat.audio.player import Player
from voicechat.budget import Budget
from voicechat.config import Settings
from voicechat.errors import UsageError, VoicechatError
from voicechat.pricing import Spend
from voicechat.protocol import codec
from voicechat.protocol import events as ev
from voicechat.session import Session
from voicechat.tools import ToolRunner, ToolSpec, available_tools, error_result
from voicechat.transcript import FileSink
from voicechat.transport import Connection
from voicechat.ui.view import View

log = logging.getLogger(__name__)



class AudioIO(Protocol):
    """A clocked microphone + speaker pair (files or PortAudio devices)."""

    rate: int
    input_done: bool  # a file ran out (a microphone never does)
    tail_ms: int  # quiet microphone audio sent since the input ran out
    echo: EchoPath | None  # the microphone's processing, set before run()
    capture: Capture | None  # the microphone pipeline of the running run()

    async def run(
        self, buffer: PlaybackBuffer, on_mic: Callable[[bytes], None], on_block: Callable[[], bool]
    ) -> None: ...

    def close(self) -> None: ...


class Conversation:
    """One live conversation, over one connection at a time (see ``link.py`` for their life)."""

    def __init__(  # over 40 lines: plain assignments, in the order the parts need each other
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
        observer: Observer = QUIET,
        profiles: Profiles | None = None,
    ) -> None:
        self.settings = settings
        self.actions = actions
        self.editor = editor
        self.audio = audio
        self.out = out
        self.observer = observer
        reliability = reliability or Reliability()
        self.session = Session(settings.session_config(), push_to_talk=push_to_talk,
                               recycle_margin_s=reliability.recycle_margin_s,
                               expiry_warning_s=reliability.expiry_warning_s)
        self.player = Player(audio.rate)
        self.view = view
        self.echo = self._echo_path()
        audio.echo = self.echo
        self.recorder = self._recorder()
        self.reply_audio = reply_audio  # --output-file of a file run: what the speaker took
        self.outbox = Outbox()
        self.ready = asyncio.Event()
        self.finished = asyncio.Event()
        self.error: BaseException | None = None
        self.clock: Callable[[], float] = time.time
        self.panel = PanelFeed(self.publish) if out.front is not None else None
        self.budget = budget  # --max-cost / --max-minutes, on the monotonic clock below
        self.monotonic: Callable[[], float] = time.monotonic
        self.spend = Spend.of(settings.model, self.session.usage, settings.prices)  # priced once per change of usage
        self.keyboard = Keyboard(KeyboardWiring(
            self.session, out, view, self.dispatch, lambda: self.clock(), self.finished.set, self._end_turn,
            lambda: self.spend, settings.model, profiles, self._set_tools), has_keys=actions is not None)
        self.tools = ToolRunner(available_tools(settings.tools, settings.builtin_tools), confirm=self.keyboard.confirm)
        self._tool_tasks: set[asyncio.Task[None]] = set()
        self.malformed = MalformedFrames(lambda text: out.notice("warning", text), lambda: self.monotonic())
        self.link = Connections(conn, Wiring(
            self.session, self._receive, self._send, self._lost, self._use, out.notice, lambda: self.clock(),
            self.ready, self.finished), reliability=reliability, connector=connector)
        self.ending = Ending(settings, self.session, self.player, audio, budget, dispatch=self.dispatch,
                             notice=out.notice, end_turn=self._end_turn, clock=lambda: self.clock(),
                             monotonic=lambda: self.monotonic())
        observer.started(self)

    def _echo_path(self) -> EchoPath:
        mode = self.view.header.echo
        if mode == "aec" and self.settings.echo == "auto" and not aec_runs_at(self.audio.rate):
            mode = "gate"  # the canceller does not run at this device's rate: the fallback
            self.view.header = dataclasses.replace(self.view.header, echo=mode)
        return make_echo_path(self.settings, mode, self.audio.rate, on_onset=self._on_onset)

    def _recorder(self) -> Recorder | None:
        if self.settings.record is None:
            return None
        try:
            recorder = Recorder(self.settings.record, self.audio.rate, report=self.out.file_problem)
        except OSError as exc:  # a FIFO or a device: writing it could block
            raise UsageError(f"--record {self.settings.record}: {exc.strerror or exc}") from None
        self.echo.recorder = recorder
        if self.settings.fast and self.settings.input_file is not None:
            self.echo.recorder = self._dead_air_left_out(recorder)
        return recorder

    def _dead_air_left_out(self, recorder: Recorder) -> Callable[[Any, Any], None]:
        """``--fast`` runs the file's clock 10x, but the waits for the server (its latency, the
        transcript) run on the wall clock: recorded, a 0.8 s wait became 8 s of silence. Once the
        question is spoken, a block is recorded only while the assistant is playing."""
        buffer, audio = self.player.buffer, self.audio

        def record(mic: Any, ref: Any) -> None:
            if not audio.input_done or buffer.active:
                recorder(mic, ref)

        return record

    @property
    def conn(self) -> Connection:
        """The live connection."""
        return self.link.conn

    # ---- effects ----------------------------------------------------------------------------

    def _set_tools(self, specs: tuple[ToolSpec, ...]) -> None:
        self.tools.tools = {t.name: t for t in specs}  # /profile: what the model may call from now on

    def dispatch(self, effects: list[fx.Effect]) -> None:
        for effect in effects:
            self.observer.effect(effect)
            match effect:
                case fx.Send():
                    self.observer.queued(effect, self.outbox.put(effect))
                case fx.Play(_, item_id, pcm):
                    self.player.play(item_id, pcm)
                case fx.AudioEnd():
                    self.player.end()
                case fx.Flush(_, item_ids):
                    played = self._flush(item_ids)
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
                case fx.Ready(_, expires_at):
                    self.ready.set()
                    self.view.connection = "connected"
                    self.view.expires_at = expires_at
                case fx.RunTool() | fx.AskApproval():  # a call, or an MCP server's question (the keyboard asks it)
                    work = self._run_tool(effect) if isinstance(effect, fx.RunTool) else self.keyboard.approve(effect)
                    self._tool_tasks.add(task := asyncio.create_task(work, name=f"tool {effect.name}"))
                    task.add_done_callback(self._tool_tasks.discard)
                case fx.Fatal(error):
                    self.fail(error)
                case fx.Reconnect(reason):
                    self.link.expire(reason)
                case fx.Recycle():
                    self.link.recycle()

    def _flush(self, item_ids: tuple[str, ...]) -> dict[str, int]:
        """Silence the speaker now; the wire samples each item had played."""
        played = self.player.flush(item_ids)
        self.observer.flushed(item_ids, played)
        return played

    def fail(self, error: BaseException) -> None:
        if self.error is None:
            self.error = error
        self.finished.set()

    async def _run_tool(self, call: fx.RunTool) -> None:
        """One function call, as its own task (the runner bounds how many run at once)."""
        self.out.notice("debug", f"running tool {call.name} ({call.call_id})")
        try:
            result = await self.tools.run(call.name, call.arguments)
        except Exception as exc:  # a broken tool never ends the conversation
            log.debug("tool %s failed", call.name, exc_info=True)
            result = error_result(f"the tool failed: {exc}")
        self.dispatch(self.session.tool_result(call.call_id, result, self.clock()))

    # ---- the connection's side ------------------------------------------------------------------

    async def _receive(self, events: Events) -> None:
        async for event in events:
            self.observer.received(event)
            if isinstance(event, codec.MalformedEvent):
                self.malformed(event)
                continue
            self.dispatch(self.session.handle(event, self.clock()))
            if isinstance(event, ev.ResponseDone):
                self._spent()

    def _spent(self) -> None:
        """The usage may have grown: price it once for the panel, /cost and the limits."""
        if self.session.usage is not self.spend.usage:
            self.spend = Spend.of(self.settings.model, self.session.usage, self.settings.prices)
            if self.budget is not None:
                self.budget.track(self.spend)

    async def _send(self, conn: Connection) -> None:
        while True:
            send = await self.outbox.get()
            await conn.send(send.event)
            self.observer.sent(send)

    def _lost(self, why: VoicechatError) -> None:
        """The connection is gone: silence the lost reply, write out what was in flight, show it."""
        self.view.connection = "reconnecting"
        self.out.notice("warning", f"{why.message}; reconnecting")
        for task in self._tool_tasks:
            task.cancel()  # their results could not be delivered: the calls are not in the new session
        played = self._flush(self.session.audible_items)
        self.dispatch(self.session.suspend(self.clock(), played))
        self.outbox.clear()  # queued microphone audio is stale, other events were for the old session
        capture = getattr(self.audio, "capture", None)  # an adapter of a test may have none
        if capture is not None:
            capture.drop()  # so is the piece held back for the next append

    def _use(self, link: Link) -> None:
        """A new connection is live: the session re-seeds the earlier turns into it."""
        self.outbox.clear()
        self.dispatch(self.session.reconnected(link.session, self.clock()))

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

    # ---- the audio's side -----------------------------------------------------------------------

    async def _audio(self) -> None:
        await self.ready.wait()
        buffer: Any = self.player.buffer
        if self.reply_audio is not None:
            buffer = TeeBuffer(buffer, self.reply_audio.write)
        await self.audio.run(buffer, self._on_mic, self._on_block)

    def _on_mic(self, pcm: bytes) -> None:
        self.dispatch(self.session.mic_audio(pcm, self.clock()))

    def _end_turn(self) -> None:
        """A manual turn ends: what the microphone pipeline holds back belongs to it."""
        capture = getattr(self.audio, "capture", None)  # an adapter of a test may have none
        if capture is not None:
            capture.flush()

    def _on_onset(self) -> None:
        self.dispatch(self.session.local_onset(self.clock()))

    def _on_block(self) -> bool:
        """After each audio tick: housekeeping, the panel when its period has passed (one wake-up
        of the loop serves both), then whether the audio should go on."""
        if self.player.drained and self.session.audible_items:
            self.dispatch(self.session.playback_drained())
        self.dispatch(self.session.tick(self.clock()))
        if self.panel is not None:
            self.panel.tick()
        if self.finished.is_set():
            return False
        if self.ending.due():
            self.finished.set()
            return False
        return True

    # ---- the keyboard's and the panel's side ------------------------------------------------------

    async def _keyboard(self) -> None:
        if self.actions is not None:
            await self.ready.wait()
            async for action in self.actions:
                self.keyboard.on_action(action)
                if self.finished.is_set():
                    return
        await self.finished.wait()  # no keyboard, or no more keys: the conversation goes on

    def on_action(self, action: keys.Action) -> None:
        """A typed line, a slash command or the push-to-talk key (see `Keyboard`)."""
        self.keyboard.on_action(action)

    def publish(self) -> None:
        line = self.editor.line if self.editor is not None else ""
        xruns = getattr(self.audio, "underflows", 0) + getattr(self.audio, "overflows", 0)  # a device's own
        self.out.publish(self.view.snapshot(self.session, self.player, self.echo, line, spend=self.spend,
                                            device_xruns=xruns))

    # ---- the whole ------------------------------------------------------------------------------

    async def _link(self) -> None:
        ended = await self.link.run()
        if ended is not None:
            self.fail(ended)

    async def run(self) -> None:
        tasks = [
            asyncio.create_task(self._link(), name="link"),
            asyncio.create_task(self._audio(), name="audio"),
            asyncio.create_task(self._keyboard(), name="keyboard"),
        ]
        if self.panel is not None:  # at most 10 snapshots a second for the front end
            tasks.append(asyncio.create_task(self.panel.run(self.finished), name="panel"))
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
            await self._shut_down()
        if self.error is not None:
            raise self.error

    async def _shut_down(self) -> None:
        """Cut the reply to what was heard, write out the transcript, close sockets and files."""
        audible = self.session.audible_items
        played = self._flush(audible) if audible else None
        self.dispatch(self.session.close(self.clock(), played))
        summary = self.malformed.summary()
        if summary is not None:
            self.out.notice("warning", summary)
        await self.link.close()
        if self.recorder is not None:
            self.recorder.close()
        if self.reply_audio is not None:
            self.reply_audio.close()
        self.view.connection = "closed"
        if self.panel is not None:
            self.panel.publish()


def _same_file(a: Path, b: Path) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:
        return a.expanduser().resolve() == b.expanduser().resolve()
