"""What the user types during a conversation: lines, the push-to-talk key, slash commands, answers.

`Keyboard` turns each ``keys.Action`` into the session intent it stands for (a typed turn, the
push-to-talk toggle, ``/interrupt``, ``/image``, …) or answers it itself (``/cost``, ``/help``,
``/save``, ``/mute``). It also asks the user the one kind of question voicechat asks — may a
``confirm = true`` tool run? — and takes the next typed line as the answer (no keyboard, or no
answer within ``CONFIRM_WAIT_S``: no). It is handed the session, the output and the few
callables of the conversation it needs; it never sees the conversation itself.
"""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from voicechat import effects as fx
from voicechat import keys
from voicechat.app.output import Output
from voicechat.errors import VoicechatError
from voicechat.files import MAX_IMAGE_BYTES, PICTURE_KINDS, picture_type, read_limited, size_text
from voicechat.pricing import Spend
from voicechat.protocol.events import Usage
from voicechat.session import Session
from voicechat.tools import ToolSpec, available_tools, decode_arguments, describe_call
from voicechat.transcript import FileSink, session_heading
from voicechat.ui.view import View

CONFIRM_WAIT_S = 60.0  # a tool that needs the user's yes is declined after this long unanswered


@dataclass(frozen=True)
class KeyboardWiring:
    """What the keyboard is handed by the conversation it serves."""

    session: Session
    out: Output
    view: View
    dispatch: Callable[[list[fx.Effect]], None]
    clock: Callable[[], float]  # wall-clock seconds, as the session's time
    quit: Callable[[], None]
    end_turn: Callable[[], None]  # hand on the microphone audio held back (a push-to-talk turn ends)
    spend: Callable[[], Spend]
    model: str
    profiles: Profiles | None = None  # the config file's profiles (None: /profile has none to offer)
    set_tools: Callable[[tuple[ToolSpec, ...]], None] | None = None  # what a new profile's calls may run


@dataclass(frozen=True)
class Profiles:
    """The config file's profiles, for ``/profile``: their names, and the settings talk would
    resolve with ``--profile NAME`` (flags and the environment still win; raises VoicechatError)."""

    names: Callable[[], tuple[str, ...]]
    load: Callable[[str], Any]
    active: str | None = None


class Keyboard:
    """Typed actions into session intents; the tool-confirmation question and its answer."""

    def __init__(self, wiring: KeyboardWiring, *, has_keys: bool) -> None:
        self._w = wiring
        self._has_keys = has_keys  # a question can be answered only where there is a keyboard
        self._asking = asyncio.Lock()  # one confirmation question at a time
        self._answer: asyncio.Future[bool] | None = None
        self._active = wiring.profiles.active if wiring.profiles is not None else None  # /profile's last

    def on_action(self, action: keys.Action) -> None:
        """A typed line, a slash command or the push-to-talk key."""
        w = self._w
        now = w.clock()
        if self._answer is not None and not self._answer.done() and isinstance(action, keys.Submit):
            self._answer.set_result(action.text.strip().lower() in ("y", "yes"))  # a tool's question
            return
        match action:
            case keys.Submit(text):
                if not w.session.ready and text.strip():
                    w.out.notice("warning", "not connected: the message was not sent")
                w.dispatch(w.session.say(text, now))
            case keys.PushToTalk():
                w.end_turn()
                w.dispatch(w.session.push_to_talk(now))
                if w.session.talking:
                    w.out.notice("info", "talking: press the key again to send")
            case keys.Quit():
                w.quit()
            case keys.UnknownCommand(text):
                w.out.notice("warning", f"unknown command {text.split()[0]!r}: /help lists them")
            case keys.Command(name, arg):
                self._command(name, arg, now)

    def _command(self, name: str, arg: str, now: float) -> None:
        w = self._w
        match name:
            case "mute" | "unmute":
                w.session.mute(name == "mute")
                w.out.notice("info", "microphone muted" if w.session.muted else "microphone on")
            case "interrupt":
                w.dispatch(w.session.interrupt(now))
            case "reply":
                w.dispatch(w.session.reply(now))
            case "image":
                self._send_image(arg)
            case "save":
                self._save(arg)
            case "profile":
                self._profile(arg, now)
            case "cost":
                w.out.notice("info", cost_line(w.model, w.spend()))
            case "help":
                w.out.notice("info", "commands: " + "; ".join(f"{u} {d}" for u, d in keys.COMMANDS.values()))

    def _profile(self, name: str, now: float) -> None:
        """``/profile``: list the profiles; ``/profile NAME``: go on with that profile's settings."""
        w, profiles = self._w, self._w.profiles
        try:
            names = profiles.names() if profiles is not None else ()
            if not name:
                active = self._active or "none"
                w.out.notice("info", f"profiles: {', '.join(names) or 'none in the config file'} (active: {active})")
                return
            if profiles is None:
                raise VoicechatError("there is no config file to take profiles from")
            settings = profiles.load(name)
        except VoicechatError as exc:
            w.out.notice("warning", f"/profile: {exc.message}")
            return
        if w.set_tools is not None:
            w.set_tools(available_tools(settings.tools, settings.builtin_tools))
        w.dispatch(w.session.reconfigure(settings.session_config(), now))
        self._active = name
        w.view.header = dataclasses.replace(w.view.header, voice=settings.voice, profile=name,
                                            reasoning=settings.reasoning or "")
        w.out.notice("info", f"profile {name}: instructions, voice, tools, MCP servers and turn detection updated")

    def _send_image(self, arg: str) -> None:
        if not arg:
            self._w.out.notice("warning", "/image needs a file: /image photo.png")
            return
        try:
            found = picture(Path(arg).expanduser())
        except ValueError as exc:
            self._w.out.notice("warning", str(exc))
            return
        self._w.dispatch(self._w.session.send_image(found.data_url, self._w.clock(), label=found.label))

    def _save(self, arg: str) -> None:
        out = self._w.out
        path = Path(arg).expanduser() if arg else Path(time.strftime("voicechat-%Y%m%d-%H%M%S.md"))
        try:
            sink = FileSink(path, out.file_problem, label="/save", heading=session_heading(self._w.model))
        except VoicechatError as exc:
            out.notice("warning", f"could not save the transcript to {path}: {exc}")
            return
        for turn in self._w.session.transcript():
            sink.write(turn)
        failed = sink.problem is not None  # said by the sink, with where the turns went instead
        sink.close()
        if not failed:
            out.notice("info", f"transcript saved to {path}")

    async def confirm(self, spec: ToolSpec, args: dict[str, Any]) -> bool:
        """Ask on the keyboard whether a ``confirm = true`` tool may run; no keyboard: no."""
        return await self._ask(f"Run tool {describe_call(spec.name, args)}? [y/N]", f"tool {spec.name}")

    async def approve(self, ask: fx.AskApproval) -> None:
        """Ask whether the service may call an MCP server's tool, and give the session the answer
        (no keyboard, or no answer within ``CONFIRM_WAIT_S``: declined)."""
        name = f"{ask.server_label}.{ask.name}"
        approved = await self._ask(f"Allow {describe_call(name, _arguments(ask.arguments), joiner=' ')}? [y/N]",
                                   f"mcp {name}")
        self._w.dispatch(self._w.session.mcp_approval(ask.request_id, approved, self._w.clock()))

    async def _ask(self, question: str, subject: str) -> bool:
        """One y/N question on the keyboard, one at a time; no keyboard: no."""
        out, view = self._w.out, self._w.view
        if not self._has_keys:
            out.notice("warning", f"{subject} needs a yes from the keyboard, and there is none: declined")
            return False
        async with self._asking:
            self._answer = asyncio.get_running_loop().create_future()
            status, view.status = view.status, f"{question} type y + Enter to allow"
            if out.panel_live:
                out.notice("info", question)
            else:  # asked even with --quiet: the answer is needed
                out.always(question)
            try:
                approved = await asyncio.wait_for(self._answer, CONFIRM_WAIT_S)
            except TimeoutError:
                approved = False
            finally:
                self._answer = None
                view.status = status
        out.notice("info", f"{subject} {'allowed' if approved else 'declined'}")
        return approved


def _arguments(text: str) -> dict[str, Any]:
    """An MCP call's arguments to show in its question (text that is no JSON object, as it is)."""
    try:
        return decode_arguments(text)
    except ValueError:
        return {"arguments": text}


@dataclass(frozen=True, slots=True)
class Picture:
    data_url: str  # for an ``input_image`` part
    label: str  # what the transcript shows for it: ``image: photo.png, 12.3 KB``


def picture(path: Path) -> Picture:
    """A picture file for ``/image``: its type from its first bytes, whatever its name says.

    Raises ``ValueError`` with the one line to show: an unreadable, empty, oversized or
    non-picture file is never sent (a text file named ``.png`` would be billed as an image).
    """
    try:
        data = read_limited(path, MAX_IMAGE_BYTES)  # a regular file: never a FIFO, never /dev/zero
    except OSError as exc:
        raise ValueError(f"cannot read {path}: {exc.strerror or exc}") from None
    if not data:
        raise ValueError(f"{path}: the file is empty")
    mime = picture_type(data)
    if mime is None:
        raise ValueError(f"{path}: not a {PICTURE_KINDS} picture")
    url = f"data:{mime};base64,{base64.b64encode(data).decode('ascii')}"
    return Picture(url, f"image: {path.name}, {size_text(len(data))}")


def cost_line(model: str, spend: Spend | Usage) -> str:
    """``/cost``: tokens so far and what they cost (a `Usage` is priced here; a `Spend` already is)."""
    if isinstance(spend, Usage):
        spend = Spend.of(model, spend)
    tokens = f"{spend.usage.input_tokens:,} tokens in, {spend.usage.output_tokens:,} out"
    dollars = spend.cost_usd
    if dollars is None:
        return f"{tokens} (no price known for {model})"
    return f"{tokens}, about ${dollars:.4f}{spend.label}"


async def keyboard_actions(
    editor: keys.LineEditor, fd: int = 0, on_foreground: Callable[[], object] | None = None,
) -> AsyncIterator[keys.Action]:
    """Actions typed on the terminal (nothing when ``fd`` is not a tty).

    In the background of the terminal nothing is read until the process is brought to the
    foreground; then ``on_foreground`` is called first (see `keys.KeyReader`).
    """
    async with keys.KeyReader(fd, on_foreground=on_foreground) as reader:
        async for key in reader:
            action = editor.feed(key, time.monotonic())
            if action is not None:
                yield action
