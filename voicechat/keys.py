"""The keyboard of ``voicechat talk``: tty bytes become keys, keys become a line and actions.

Layers, pure where possible:

* :class:`KeyDecoder` (pure): bytes read from a tty in cbreak mode -> :class:`Key` values.
* :class:`LineEditor` (pure): keys -> the current input line and :data:`Action` values.
* :class:`Terminal` (I/O): the cbreak-like tty mode and bracketed paste for a ``with`` block.
* :class:`KeyReader` (I/O): keys read on the running loop with ``add_reader``, bounded queue.

Nothing here reads or changes stdin unless it is a tty: for a pipe, a file, /dev/null or a closed
fd, ``Terminal`` does nothing and ``KeyReader`` ends at once.

Key bindings of :class:`LineEditor` (editing happens at the end of the line; there is no cursor):

=======================  ==========================================================
printable keys, paste    insert (a paste's newlines and tabs become spaces)
Enter                    submit the line (a ``/name`` line is a command)
Backspace, Ctrl-H        delete the last character
Ctrl-W                   delete the last word (and the spaces after it)
Ctrl-U, Esc              clear the line
Ctrl-D                   quit, when the line is empty
PTT key (push-to-talk)   toggle talking: a printable PTT key (default space) only on
                         an empty line, a named one (``"tab"``, ``"ctrl-t"``) always
anything else            ignored: arrows, Home/End, Delete, F-keys, Alt+key, unknown
                         escape sequences, other control keys
=======================  ==========================================================

Ctrl-C is not a key: the terminal keeps ISIG, so it raises SIGINT as usual. Imports only the
standard library.
"""

from __future__ import annotations

import asyncio
import codecs
import contextlib
import os
import termios
import unicodedata
from collections import deque
from dataclasses import dataclass
from types import MappingProxyType, TracebackType
from typing import Any

ESC = "\x1b"
PASTE_START = "\x1b[200~"
PASTE_END = "\x1b[201~"
MAX_SEQ = 32  # characters kept of one escape sequence; a longer one is reported as unknown
MAX_PASTE = 65_536  # characters kept of one paste; the rest is dropped and counted
MAX_LINE = 16_384  # characters the editor keeps; further input is ignored
PTT_REPEAT_S = 0.2  # a PTT key this soon after the previous one is keyboard autorepeat

# C0 control characters (ESC excepted) by key name.
_C0 = {chr(code): f"ctrl-{chr(code + 0x60)}" for code in range(0x01, 0x1B)}
_C0 |= {
    "\x00": "ctrl-space", "\x1c": "ctrl-\\", "\x1d": "ctrl-]", "\x1e": "ctrl-^",
    "\x1f": "ctrl-_", "\r": "enter", "\n": "enter", "\t": "tab", "\x08": "backspace",
    "\x7f": "backspace",
}  # fmt: skip
_CSI_LETTER = {
    "A": "up", "B": "down", "C": "right", "D": "left", "H": "home", "F": "end",
    "Z": "backtab", "P": "f1", "Q": "f2", "R": "f3", "S": "f4",
}  # fmt: skip
_CSI_TILDE = {
    "1": "home", "2": "insert", "3": "delete", "4": "end", "5": "pageup", "6": "pagedown",
    "7": "home", "8": "end", "11": "f1", "12": "f2", "13": "f3", "14": "f4", "15": "f5",
    "17": "f6", "18": "f7", "19": "f8", "20": "f9", "21": "f10", "23": "f11", "24": "f12",
}  # fmt: skip
_SS3 = {k: v for k, v in _CSI_LETTER.items() if k != "Z"}


@dataclass(frozen=True, slots=True)
class Key:
    """One decoded key.

    ``name`` is ``"char"`` (``text``: the character), ``"paste"`` (``text``: the pasted text as
    received), ``"alt"`` (Esc and a printable ASCII character in one read; ``text``: the
    character), ``"unknown"`` (``text``: the raw sequence or control character), or a key name:
    ``enter tab backtab backspace esc up down left right home end insert delete pageup pagedown
    f1``..``f12``, ``ctrl-a``..``ctrl-z`` (Ctrl-H is ``backspace``, Ctrl-I ``tab``, Ctrl-J and
    Ctrl-M ``enter``), ``ctrl-space ctrl-\\ ctrl-] ctrl-^ ctrl-_``. Modifiers on arrows and
    F-keys are dropped (Ctrl-Up is ``up``).
    """

    name: str
    text: str = ""


class KeyDecoder:
    """Incremental decoder for bytes read from a tty; keeps state between :meth:`feed` calls.

    * UTF-8 split across reads is joined; invalid bytes become U+FFFD.
    * A CSI (``ESC [``) or SS3 (``ESC O``) sequence split across reads is finished by the next.
    * An ESC that ends a read is the Esc key: a terminal writes a whole sequence at once, so a
      bare ESC at the end of a read is a keypress, and waiting for more would need a timer.
    * Bracketed paste (``ESC[200~`` .. ``ESC[201~``) becomes one ``paste`` key when the end
      marker arrives, however many reads it spans. Characters beyond :data:`MAX_PASTE` are
      dropped and counted in :attr:`paste_dropped`.
    """

    def __init__(self) -> None:
        self._utf8 = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self._seq = ""  # an unfinished CSI/SS3 sequence, ESC included
        self._paste: list[str] | None = None  # the chunks of a paste in progress
        self._paste_len = 0
        self._paste_tail = ""  # paste text that may be the start of PASTE_END
        self.paste_dropped = 0

    def feed(self, data: bytes) -> list[Key]:
        """Decode one read's bytes into the keys they complete."""
        text = self._utf8.decode(data)
        keys: list[Key] = []
        i = 0
        while i < len(text):
            if self._paste is not None:
                i = self._paste_step(text, i, keys)
            elif self._seq:
                i = self._seq_step(text, i, keys)
            else:
                i = self._ground_step(text, i, keys)
        return keys

    def _ground_step(self, text: str, i: int, keys: list[Key]) -> int:
        ch = text[i]
        if ch != ESC:
            keys.append(_plain(ch))
            return i + 1
        if i + 1 == len(text):  # the lone-ESC rule
            keys.append(Key("esc"))
            return i + 1
        nxt = text[i + 1]
        if nxt in "[O":
            self._seq = ESC + nxt
            return i + 2
        if " " <= nxt <= "~":
            keys.append(Key("alt", nxt))
            return i + 2
        keys.append(Key("esc"))
        return i + 1

    def _seq_step(self, text: str, i: int, keys: list[Key]) -> int:
        ch, seq = text[i], self._seq
        if seq[1] == "[" and " " <= ch <= "?":  # CSI parameter or intermediate character
            if len(seq) < MAX_SEQ:
                self._seq += ch
            return i + 1
        self._seq = ""
        if not "@" <= ch <= "~":  # not a final character: give up and reread ch as a key
            keys.append(Key("unknown", seq))
            return i
        seq += ch
        if seq == PASTE_START:
            self._paste, self._paste_len = [], 0
        elif seq != PASTE_END:  # a stray end marker is dropped
            name = _SS3.get(ch) if seq[1] == "O" else _csi_name(seq)
            keys.append(Key(name) if name and len(seq) <= MAX_SEQ else Key("unknown", seq))
        return i + 1

    def _paste_step(self, text: str, i: int, keys: list[Key]) -> int:
        assert self._paste is not None
        tail = self._paste_tail
        s = tail + text[i:]
        end = s.find(PASTE_END)
        if end >= 0:
            self._paste_add(s[:end])
            keys.append(Key("paste", "".join(self._paste)))
            self._paste, self._paste_tail = None, ""
            return i + end + len(PASTE_END) - len(tail)
        keep = next((k for k in range(len(PASTE_END) - 1, 0, -1) if s.endswith(PASTE_END[:k])), 0)
        self._paste_add(s[: len(s) - keep])
        self._paste_tail = s[len(s) - keep :]
        return len(text)

    def _paste_add(self, chunk: str) -> None:
        assert self._paste is not None
        kept = chunk[: MAX_PASTE - self._paste_len]
        if kept:
            self._paste.append(kept)
        self._paste_len += len(kept)
        self.paste_dropped += len(chunk) - len(kept)


def _plain(ch: str) -> Key:
    name = _C0.get(ch)
    if name is not None:
        return Key(name)
    if unicodedata.category(ch) == "Cc":  # C1 controls
        return Key("unknown", ch)
    return Key("char", ch)


def _csi_name(seq: str) -> str | None:
    body, final = seq[2:-1], seq[-1]
    if final == "~":
        return _CSI_TILDE.get(body.split(";")[0])
    if body.strip("0123456789;"):  # private or intermediate characters: not a key
        return None
    return _CSI_LETTER.get(final)


# ---- the line editor ----------------------------------------------------------------------


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
    "image": ("/image FILE", "send an image file"),
    "save": ("/save [FILE]", "write the transcript so far"),
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

    Raises:
        ValueError: for an empty ``ptt_key`` or one of the editing keys.
    """

    def __init__(self, *, push_to_talk: bool = False, ptt_key: str = " ") -> None:
        if not ptt_key or ptt_key in _EDITING_KEYS or ptt_key in ("char", "paste"):
            raise ValueError(f"{ptt_key!r} cannot be the push-to-talk key")
        self.push_to_talk = push_to_talk
        self.ptt_key = ptt_key
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
                return _parse(text) if text else None
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


# ---- the terminal -------------------------------------------------------------------------


def _isatty(fd: int) -> bool:
    try:
        return os.isatty(fd)
    except (OSError, ValueError, TypeError):
        return False


class Terminal:
    """Cbreak-like tty mode for a ``with`` block; does nothing when ``fd`` is not a tty.

    On a tty: no echo, no canonical line editing, no implementation-defined input processing
    (IEXTEN) and no XON/XOFF flow control (Ctrl-S would freeze the panel); one byte per read.
    ISIG stays on, so Ctrl-C and Ctrl-\\ still raise signals, but the suspend character is
    disabled (Ctrl-Z arrives as a key), because a suspended voice session leaves a dead socket
    and a terminal without echo. Bracketed paste is switched on (written to the tty fd, or to
    stderr when that is the same tty and the fd is read-only).

    Leaving the block, or :meth:`restore`, puts back the exact saved attributes and switches
    bracketed paste off, discarding typed-ahead input the app never read so it cannot reach the
    shell. :meth:`restore` is idempotent and never raises, so a signal path may call it too.
    """

    def __init__(self, fd: int = 0, *, bracketed_paste: bool = True) -> None:
        self.fd = fd
        self.bracketed_paste = bracketed_paste
        self._saved: list[Any] | None = None

    @property
    def active(self) -> bool:
        """Whether the tty is in the keyboard mode now."""
        return self._saved is not None

    def __enter__(self) -> Terminal:
        if self._saved is not None or not _isatty(self.fd):
            return self
        try:
            saved = termios.tcgetattr(self.fd)
            termios.tcsetattr(self.fd, termios.TCSADRAIN, _keyboard_mode(self.fd, saved))
        except (termios.error, OSError):
            return self
        self._saved = saved
        if self.bracketed_paste:
            self._write(b"\x1b[?2004h")
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.restore()

    def restore(self) -> None:
        """Put the saved tty attributes back and switch bracketed paste off (once)."""
        saved, self._saved = self._saved, None
        if saved is None:
            return
        if self.bracketed_paste:
            self._write(b"\x1b[?2004l")
        with contextlib.suppress(termios.error, OSError):
            termios.tcsetattr(self.fd, termios.TCSAFLUSH, saved)

    def _write(self, seq: bytes) -> None:
        try:
            os.write(self.fd, seq)
        except OSError:
            with contextlib.suppress(OSError):
                if os.path.samestat(os.fstat(self.fd), os.fstat(2)):
                    os.write(2, seq)


def _keyboard_mode(fd: int, attrs: list[Any]) -> list[Any]:
    iflag, oflag, cflag, lflag, ispeed, ospeed, cc = attrs
    cc = list(cc)
    cc[termios.VMIN] = 1
    cc[termios.VTIME] = 0
    try:
        vdisable = os.fpathconf(fd, "PC_VDISABLE")
    except (OSError, ValueError):
        vdisable = 0
    cc[termios.VSUSP] = bytes([vdisable & 0xFF])
    lflag = (lflag & ~(termios.ECHO | termios.ICANON | termios.IEXTEN)) | termios.ISIG
    return [iflag & ~termios.IXON, oflag, cflag, lflag, ispeed, ospeed, cc]


# ---- reading keys on the loop ---------------------------------------------------------------


class KeyReader:
    """Keys from a tty fd, read on the running loop with ``add_reader``; an async iterator.

    Use as ``async with KeyReader(fd) as keys: async for key in keys: ...``. The queue holds at
    most ``maxsize`` keys: when the app stops reading, the oldest key is dropped and counted in
    :attr:`dropped`. Iteration ends after end of file or hangup on the tty, or :meth:`close`,
    once the queued keys are taken. When ``fd`` is not a tty, nothing is read and iteration
    ends at once. Combine with :class:`Terminal` for key-at-a-time input without echo.
    """

    def __init__(self, fd: int = 0, *, maxsize: int = 256) -> None:
        if maxsize < 1:
            raise ValueError("maxsize must be at least 1")
        self.fd = fd
        self.dropped = 0
        self._decoder = KeyDecoder()
        self._keys: deque[Key] = deque(maxlen=maxsize)
        self._ready = asyncio.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._done = False

    def start(self) -> None:
        """Start reading on the running loop (idempotent; a no-op after close)."""
        if self._loop is not None or self._done:
            return
        if not _isatty(self.fd):
            self._finish()
            return
        loop = asyncio.get_running_loop()
        loop.add_reader(self.fd, self._on_readable)
        self._loop = loop

    def close(self) -> None:
        """Stop reading and remove the reader (idempotent)."""
        loop, self._loop = self._loop, None
        if loop is not None:
            with contextlib.suppress(OSError, ValueError, RuntimeError):
                loop.remove_reader(self.fd)
        self._finish()

    async def __aenter__(self) -> KeyReader:
        self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        self.close()

    def __aiter__(self) -> KeyReader:
        self.start()
        return self

    async def __anext__(self) -> Key:
        while not self._keys:
            if self._done:
                raise StopAsyncIteration
            self._ready.clear()
            await self._ready.wait()
        return self._keys.popleft()

    def _on_readable(self) -> None:
        try:
            data = os.read(self.fd, 4096)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:  # EIO: the terminal hung up
            data = b""
        if not data:
            self.close()
            return
        for key in self._decoder.feed(data):
            if len(self._keys) == self._keys.maxlen:
                self.dropped += 1  # the deque drops the oldest key
            self._keys.append(key)
        self._ready.set()

    def _finish(self) -> None:
        self._done = True
        self._ready.set()
