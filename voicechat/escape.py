"""Text from outside (the server, a file, an exception) made safe to show on a terminal.

A terminal obeys the control characters in what it is handed: an escape sequence in a
transcript, an error message or a doctor detail could move the cursor, retitle the window or
hide the line it sits on. Every place that writes such text to a terminal passes it through
:func:`escape_control` first, which turns C0 controls (newline and tab excepted), DEL and C1
controls into visible ``\\xNN`` escapes. It lives here, apart from the transcript sinks, because
the command line, the panel and the doctor need it too and import nothing else of theirs.

Pure; imports only the standard library.
"""

from __future__ import annotations

import re

_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def escape_control(text: str) -> str:
    """Make server text safe to print: control characters become visible escapes."""
    return _CONTROL.sub(lambda m: f"\\x{ord(m.group()):02x}", text)
