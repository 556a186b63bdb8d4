"""Text from outside (the server, a file, an exception) made safe to show on a terminal.

A terminal obeys the control characters in what it is handed: an escape sequence in a
transcript, an error message or a doctor detail could move the cursor, retitle the window or
hide the line it sits on. Every place that writes such text to a terminal passes it through
:func:`escape_control` first, which turns C0 controls (newline and tab excepted), DEL and C1
controls into visible ``\\xNN`` escapes. Characters that reorder or hide text without
moving the cursor are as dangerous on a panel: bidi overrides, embeddings, isolates and marks
(which can reverse the rest of a line, "Trojan Source"), invisible separators and the byte-order
mark (which make the terminal's idea of a line's width differ from the panel's, garbling it),
and the line and paragraph separators; they become visible ``\\uNNNN`` escapes. The joiners
(U+200C, U+200D) stay: scripts and emoji sequences need them, and they reorder nothing. It
lives here, apart from the transcript sinks, because the command line, the panel and the
doctor need it too and import nothing else of theirs.

Pure; imports only the standard library.
"""

from __future__ import annotations

import re

_CONTROL = re.compile(
    "[\x00-\x08\x0b-\x1f\x7f-\x9f"  # C0 (but tab and newline), DEL, C1
    "\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069"  # bidi: marks, embeddings, overrides, isolates
    "\u00ad\u180e\u200b\u2028\u2029\u2060-\u2064\ufeff\ufff9-\ufffb]"  # invisible; line separators
)


def _visible(match: re.Match[str]) -> str:
    code = ord(match.group())
    return f"\\x{code:02x}" if code <= 0xFF and code != 0xAD else f"\\u{code:04x}"


def escape_control(text: str) -> str:
    """Make server text safe to print: control, bidi and invisible characters become visible
    escapes (``\\x1b``, ``\\u202e``)."""
    return _CONTROL.sub(_visible, text)
