"""A pseudo-terminal whose output is read on a thread (so a writer never blocks on a full
terminal) and counted: the bench's stand-in for a user's terminal, and proof the panel drew."""

from __future__ import annotations

import contextlib
import fcntl
import os
import struct
import termios
import threading


class TerminalSink:
    """A ``rows`` x ``cols`` pseudo-terminal: write to ``slave``, call `start` to begin draining.

    ``bytes`` counts what was written to it; ``tail`` keeps the last 4000 bytes.
    """

    def __init__(self, rows: int = 32, cols: int = 100) -> None:
        self.master, self.slave = os.openpty()
        fcntl.ioctl(self.slave, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))
        self.bytes = 0
        self.tail = b""
        self._thread = threading.Thread(target=self._drain, daemon=True)

    def start(self) -> None:
        self._thread.start()

    def _drain(self) -> None:
        while True:
            try:
                data = os.read(self.master, 65536)
            except OSError:  # EIO: every writer closed
                break
            if not data:
                break
            self.bytes += len(data)
            self.tail = (self.tail + data)[-4000:]

    def close(self) -> None:
        self._thread.join(5)
        with contextlib.suppress(OSError):
            os.close(self.master)
