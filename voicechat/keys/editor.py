"""Keys become the input line and actions: the line editor of ``voicechat talk``.

:class:`LineEditor` is pure: it is fed :class:`~voicechat.keys.decoder.Key` values (and, for
push-to-talk autorepeat, the time as an argument) and returns the :data:`Action` each key
completes; the app shows :attr:`LineEditor.line` in the panel. Key bindings (editing happens at
the end of the line; there is no cursor):

=======================  ==========================================================
printable keys, paste    insert (a paste's newlines and tabs become spaces)
Enter                    submit the line (a ``/name`` line is a command); on an empty
                         line, ``/reply`` when ``reply_on_enter`` (``--no-auto-response``)
Backspace, Ctrl-H        delete the last character
Ctrl-W                   delete the last word (and the spaces after it)
Ctrl-U, Esc              clear the line
Ctrl-D                   quit, when the line is empty
PTT key (push-to-talk)   toggle talking: a printable PTT key (default space) only on
                         an empty line, a named one (``"tab"``, ``"ctrl-t"``) always
anything else            ignored: arrows, Home/End, Delete, F-keys, Alt+key, unknown
                         escape sequences, other control keys
=======================  ==========================================================
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass
from types import MappingProxyType

from voicechat.keys.decoder import Key

MAX_LINE = 16_384  # characters the editor keeps; further input is ignored
PTT_REPEAT_S = 0.2  # a PTT key this soon after the previous one is keyboard autorepeat


@dataclass(frozen=True, slots=True)
class Submit:
    """A typed line to send as a user text turn (stripped, never empty)."""

    text: str


@dataclass(frozen=True, slots=True)
class Command:
    """A known slash command (a name in :data:`COMMANDS` other than ``quit``).

    ``arg`` is the rest of the line, stripped (``""`` when absent); the app checks it.
    """

    name: str
    arg: str = ""


@dataclass(frozen=True, slots=True)
class UnknownCommand:
    """A line starting with ``/`` that names no command; ``text`` is the whole line."""

    text: str


@dataclass(frozen=True, slots=True)
class PushToTalk:
    """The push-to-talk key was pressed: toggle talking (terminals report no key release)."""


@dataclass(frozen=True, slots=True)
class Quit:
    """End the conversation: Ctrl-D on an empty line, or ``/quit``."""


Action = Submit | Command | UnknownCommand | PushToTalk | Quit

COMMANDS: MappingProxyType[str, tuple[str, str]] = MappingProxyType({
    "mute": ("/mute", "stop sending the microphone"),
    "unmute": ("/unmute", "send the microphone again"),
    "interrupt": ("/interrupt", "stop the assistant's answer"),
    "reply": ("/reply", "ask for the answer now (with --no-auto-response; or Enter on an empty line)"),
    "image": ("/image FILE", "send a picture (PNG, JPEG, GIF or WebP, up to 10 MB)"),
    "save": ("/save [FILE]", "write the transcript so far"),
    "profile": ("/profile [NAME]", "go on with the config file's [profile.NAME]; alone: list the profiles"),
    "cost": ("/cost", "show token use and cost"),
    "help": ("/help", "list the commands"),
    "quit": ("/quit", "end the conversation"),
})  # fmt: skip
"""Slash commands by name: (usage, description), for the app's help text."""

_PASTE_SPACES = str.maketrans("\r\n\t", "   ")
_EDITING_KEYS = frozenset({"enter", "backspace", "esc", "ctrl-d", "ctrl-u", "ctrl-w"})


class LineEditor:
    """The input line: feed keys, get actions. Pure; the app shows :attr:`line` in the panel.

    Args:
        push_to_talk: whether the PTT key toggles talking (``--vad none``).
        ptt_key: one character (toggles only on an empty line, so typed text can contain it)
            or a :class:`Key` name such as ``"tab"`` or ``"ctrl-t"`` (toggles on any line).
        reply_on_enter: Enter on an empty line asks for the assistant's reply (``/reply``): with
            ``--no-auto-response`` a spoken turn waits for it.

    Raises:
        ValueError: for an empty ``ptt_key`` or one of the editing keys.
    """

    def __init__(self, *, push_to_talk: bool = False, ptt_key: str = " ", reply_on_enter: bool = False) -> None:
        if not ptt_key or ptt_key in _EDITING_KEYS or ptt_key in ("char", "paste"):
            raise ValueError(f"{ptt_key!r} cannot be the push-to-talk key")
        self.push_to_talk = push_to_talk
        self.ptt_key = ptt_key
        self.reply_on_enter = reply_on_enter
        self._line = ""
        self._last_ptt: float | None = None

    @property
    def line(self) -> str:
        """The text typed so far (no control characters)."""
        return self._line

    def feed(self, key: Key, now: float | None = None) -> Action | None:
        """Apply one key; return the action it completes, if any.

        ``now`` (seconds, any clock) lets the editor swallow keyboard autorepeat of the PTT key:
        a PTT key within :data:`PTT_REPEAT_S` of the previous one toggles nothing.
        """
        if self.push_to_talk and self._is_ptt(key):
            return self._ptt(now)
        match key.name:
            case "char":
                self._insert(key.text)
            case "paste":
                self._insert(key.text.replace("\r\n", " ").translate(_PASTE_SPACES))
            case "backspace":
                self._line = self._line[:-1]
            case "ctrl-w":
                kept = self._line.rstrip()
                self._line = kept[: len(kept) - len(kept.split()[-1])] if kept else ""
            case "ctrl-u" | "esc":
                self._line = ""
            case "enter":
                text, self._line = self._line.strip(), ""
                if not text:
                    return Command("reply") if self.reply_on_enter else None
                return _parse(text)
            case "ctrl-d" if not self._line:
                return Quit()
        return None

    def _is_ptt(self, key: Key) -> bool:
        if len(self.ptt_key) == 1:
            return key.name == "char" and key.text == self.ptt_key and not self._line
        return key.name == self.ptt_key

    def _ptt(self, now: float | None) -> PushToTalk | None:
        last, self._last_ptt = self._last_ptt, now
        if now is not None and last is not None and 0 <= now - last < PTT_REPEAT_S:
            return None
        return PushToTalk()

    def _insert(self, text: str) -> None:
        text = "".join(ch for ch in text if unicodedata.category(ch) != "Cc")
        self._line += text[: MAX_LINE - len(self._line)]


def _parse(text: str) -> Action:
    """A stripped, non-empty line -> its action. ``//text`` sends ``/text`` as a message."""
    if not text.startswith("/"):
        return Submit(text)
    if text.startswith("//"):
        return Submit(text[1:])
    head = text[1:]
    if not head or head[0].isspace():
        return UnknownCommand(text)
    name, _, arg = head.partition(" ")
    name = name.lower()
    if name == "quit":
        return Quit()
    if name in COMMANDS:
        return Command(name, arg.strip())
    return UnknownCommand(text)
