"""Bytes read from a tty in cbreak mode become :class:`Key` values.

A terminal sends keys as bytes: UTF-8 text, C0 controls, CSI/SS3 escape sequences for the
arrows and F-keys, and bracketed paste markers around pasted text; one read may hold several
keys, or half of one. :class:`KeyDecoder` keeps the state between reads and yields whole keys.
Pure (no fd, no clock, no termios) so every split of every sequence is testable with bytes.
"""

from __future__ import annotations

import codecs
import unicodedata
from dataclasses import dataclass

ESC = "\x1b"
PASTE_START = "\x1b[200~"
PASTE_END = "\x1b[201~"
MAX_SEQ = 32  # characters kept of one escape sequence; a longer one is reported as unknown
MAX_PASTE = 65_536  # characters kept of one paste; the rest is dropped and counted

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
