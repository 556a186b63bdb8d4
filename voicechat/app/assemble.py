"""``voicechat talk`` from resolved settings to the end of the conversation, in setup order.

`talk` guards the whole run against SIGINT/SIGTERM (``signals.py``); `_talk` builds what one
conversation needs, each on an exit stack so that every exit path undoes it in reverse: the
audio adapter (a WAV file or the devices), the transcript sinks, the panel, the endpoint (a
local server, or the real one with its key), the event log, the first connection, and the
keyboard (taken over only where typing can be seen or is needed). The conversation itself is
``conversation.py``; this module only assembles it.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import time
from collections.abc import AsyncIterator, Awaitable, Callable

from voicechat import keys
from voicechat.app.conversation import AudioIO, Conversation
from voicechat.app.echo import echo_mode
from voicechat.app.keyboard import Profiles, keyboard_actions
from voicechat.app.link import Reliability
from voicechat.app.observer import QUIET, Observer
from voicechat.app.output import Output
from voicechat.app.signals import GUARD, SignalGuard, signals_end
from voicechat.audio.filedev import FileAudio
from voicechat.audio.outfile import AudioOutput
from voicechat.audio.wav import load_wav_at
from voicechat.budget import Budget
from voicechat.config import Settings
from voicechat.endpoint import close_quietly, open_endpoint
from voicechat.errors import UsageError
from voicechat.eventlog import EventLog
from voicechat.protocol.constants import WIRE_RATE
from voicechat.redact import remember_settings
from voicechat.transcript import read_jsonl
from voicechat.transport import Connection, connect
from voicechat.ui.view import View

PUSH_TO_TALK_HELP = "space: talk/send · type + Enter: message · /help · ctrl-c: quit"
TYPING_HELP = "type + Enter: message · /help · ctrl-c: quit"
REPLY_HELP = "Enter: the reply · type + Enter: message · /help · ctrl-c: quit"
BACKGROUND_HELP = "in the background of the terminal: fg to type here"


async def talk(
    settings: Settings,
    out: Output,
    *,
    audio: AudioIO | None = None,
    actions: AsyncIterator[keys.Action] | None = None,
    reliability: Reliability | None = None,
    observer: Observer = QUIET,
    profiles: Profiles | None = None,
) -> None:
    """Run one ``voicechat talk`` from resolved settings to the end of the conversation.

    ``audio`` replaces the adapter the settings would pick (tests use a file "room" with echo);
    ``actions`` replaces the terminal keyboard (and makes ``--vad none`` push-to-talk);
    ``reliability`` tunes reconnects and session recycling (tests make them quick);
    ``observer`` watches the conversation (the bench).
    SIGINT and SIGTERM end it with `Interrupted` (exit 130/143) in every phase (see `SignalGuard`).
    """
    guard = SignalGuard(asyncio.current_task())
    token = GUARD.set(guard)
    try:
        with guard.installed():
            try:
                await _talk(settings, out, audio=audio, actions=actions, reliability=reliability, observer=observer,
                            profiles=profiles)
            except asyncio.CancelledError:
                if guard.error is None:
                    raise
                guard.uncancel()
    finally:
        GUARD.reset(token)
    if guard.error is not None:
        raise guard.error


async def _talk(
    settings: Settings,
    out: Output,
    *,
    audio: AudioIO | None,
    actions: AsyncIterator[keys.Action] | None,
    reliability: Reliability | None,
    observer: Observer,
    profiles: Profiles | None = None,
) -> None:  # a little over 40 lines: one exit stack in setup order, whose undo order is the point
    remember_settings(settings)  # the CLI has already; a caller in-process may not have
    earlier = None
    if settings.resume is not None:  # before connecting
        earlier = read_jsonl(settings.resume, on_torn=lambda message: out.notice("warning", message))
    budget = Budget(settings.model, settings.max_cost, settings.max_minutes, started=time.monotonic(),
                    prices=settings.prices)
    for notice in budget.start_notices():
        out.notice(notice.level, notice.message)
    audio, reply_audio = _audio_for(settings, out, audio)
    async with contextlib.AsyncExitStack() as stack:
        stack.callback(audio.close)
        if reply_audio is not None:
            stack.callback(reply_audio.close)
        for sink in out.sinks:
            stack.callback(sink.close)  # a transcript that could not be written says so, and where it went
        view = View(settings, echo_mode(settings))
        view.log_above = out.logs_above
        out.view = view
        if out.front is not None:
            stack.enter_context(out.front)
            out.publish(view.snapshot_idle())
        conn, connector = await _connect(stack, settings, out)
        push_to_talk = settings.vad == "none" and (actions is not None or settings.input_file is None)
        manual = not settings.auto_response and settings.vad != "none"
        actions, editor = _keyboard(stack, out, view, actions, push_to_talk, manual)
        if push_to_talk:
            out.notice("info", "push-to-talk: press space to talk, again to send")
        elif manual:
            out.notice("info", "--no-auto-response: the assistant answers when asked: Enter on an empty line, "
                               "or /reply")
        conversation = Conversation(settings, conn, audio, out, actions=actions, push_to_talk=push_to_talk,
                                    editor=editor, view=view, budget=budget,
                                    connector=connector, reliability=reliability,
                                    reply_audio=reply_audio, observer=observer, profiles=profiles)
        if earlier is not None and settings.resume is not None:
            conversation.resume(earlier, settings.resume)
        with signals_end(conversation):
            await conversation.run()
    if budget.reached is not None:
        out.always(f"stopped: {budget.reached}")


async def _connect(
    stack: contextlib.AsyncExitStack, settings: Settings, out: Output
) -> tuple[Connection, Callable[[], Awaitable[Connection]]]:
    """The first connection (closed by ``stack``), and how to open the next ones (same endpoint and log)."""
    endpoint = await open_endpoint(settings, stack)
    events = None
    if settings.log_events is not None:
        events = EventLog(settings.log_events, secrets=(settings.api_key,),  # not the local placeholder
                          report=out.file_problem)
        stack.callback(events.close)
    # Where and with which model (the state line already says "connecting": not twice).
    out.notice("info", f"server {endpoint.url.split('?')[0]}, model {settings.model}")
    conn = await connect(endpoint, log=events)
    stack.push_async_callback(close_quietly, conn)
    return conn, functools.partial(connect, endpoint, log=events)


def _audio_for(settings: Settings, out: Output, audio: AudioIO | None) -> tuple[AudioIO, AudioOutput | None]:
    """The audio adapter the settings pick (unless one is given), and the --output-file of a file run."""
    if audio is not None:
        return audio, None
    if settings.input_file is None:
        from voicechat.audio.device import DeviceAudio, describe_device

        device = DeviceAudio(input_device=settings.input_device, output_device=settings.output_device,
                             sample_rate=settings.sample_rate)
        out.notice("info", f"microphone {describe_device(device.input_device, 'input')}, "
                           f"speaker {describe_device(device.output_device, 'output')}, {device.rate} Hz")
        device.report = out.notice  # "device lost" / "device back" on the panel and the status log
        return device, None
    files = FileAudio(load_wav_at(settings.input_file, WIRE_RATE), None, speed=10.0 if settings.fast else 1.0)
    if settings.output_file is None:
        return files, None
    try:
        reply_audio = AudioOutput(settings.output_file, WIRE_RATE, label="--output-file", report=out.file_problem)
    except OSError as exc:  # a FIFO or a device: writing it could block
        raise UsageError(f"--output-file {settings.output_file}: {exc.strerror or exc}") from None
    return files, reply_audio


def _keyboard(
    stack: contextlib.AsyncExitStack, out: Output, view: View, actions: AsyncIterator[keys.Action] | None,
    push_to_talk: bool, manual: bool = False,
) -> tuple[AsyncIterator[keys.Action] | None, keys.LineEditor | None]:
    """The actions to read, and the line editor when they come from the terminal.

    The keyboard is taken over only where typing can be seen (the panel) or is needed (the
    push-to-talk key, Enter for the reply with ``--no-auto-response``); otherwise the terminal
    keeps echoing as usual. Started in the background
    of its terminal (``voicechat talk &``), voicechat leaves the tty alone until it is brought to
    the foreground, and takes the keyboard then.
    """
    wants_keys = actions is None and (out.panel_live or push_to_talk or manual)
    if actions is None and not wants_keys and out.lines_typed and keys.is_tty(0):
        # stdout is a pipe, so no panel: the tty stays as it is (it echoes and cooks the line)
        # and each line typed is read whole, as it would be by the panel's editor.
        return keyboard_actions(keys.LineEditor()), None
    terminal = stack.enter_context(keys.Terminal(0)) if wants_keys else None
    if actions is not None or terminal is None:
        return actions, None
    help_line = PUSH_TO_TALK_HELP if push_to_talk else REPLY_HELP if manual else TYPING_HELP
    if not terminal.active:
        if not keys.in_background(0):  # not a tty, or a tty that refused the mode
            return None, None
        view.status = BACKGROUND_HELP

        def on_foreground() -> None:
            if terminal.take():
                view.status = help_line

        editor = keys.LineEditor(push_to_talk=push_to_talk, reply_on_enter=manual)
        return keyboard_actions(editor, on_foreground=on_foreground), editor
    editor = keys.LineEditor(push_to_talk=push_to_talk, reply_on_enter=manual)
    view.status = help_line
    return keyboard_actions(editor), editor
