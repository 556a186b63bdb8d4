"""The keyboard of ``voicechat talk``: tty bytes become keys, keys become a line and actions.

Layers, pure where possible, one module each:

* :mod:`~voicechat.keys.decoder` (pure): bytes read from a tty in cbreak mode -> :class:`Key`.
* :mod:`~voicechat.keys.editor` (pure): keys -> the current input line and :data:`Action` values
  (the key bindings are listed there).
* :mod:`~voicechat.keys.tty` (I/O): :class:`Terminal`, the cbreak-like tty mode and bracketed
  paste for a ``with`` block, and :class:`KeyReader`, keys read on the running loop with
  ``add_reader`` into a bounded queue; :func:`owns_terminal`, whether the process may touch
  the tty at all (it is in its foreground process group).

Imports only the standard library.
"""

from __future__ import annotations

from voicechat.keys.decoder import ESC, MAX_PASTE, MAX_SEQ, PASTE_END, PASTE_START, Key, KeyDecoder
from voicechat.keys.editor import (
    COMMANDS,
    MAX_LINE,
    PTT_REPEAT_S,
    Action,
    Command,
    LineEditor,
    PushToTalk,
    Quit,
    Submit,
    UnknownCommand,
)
from voicechat.keys.tty import KeyReader, Terminal, in_background, is_tty, owns_terminal

__all__ = [
    "COMMANDS", "ESC", "MAX_LINE", "MAX_PASTE", "MAX_SEQ", "PASTE_END", "PASTE_START", "PTT_REPEAT_S", "Action",
    "Command", "Key", "KeyDecoder", "KeyReader", "LineEditor", "PushToTalk", "Quit", "Submit", "Terminal",
    "UnknownCommand", "in_background", "is_tty", "owns_terminal",
]  # fmt: skip
