"""The tty itself: its keyboard mode for a ``with`` block, and keys read on the event loop.

The only part of :mod:`voicechat.keys` that touches a file descriptor or termios. Nothing here
reads or changes stdin unless it is a tty: for a pipe, a file, /dev/null or a closed fd,
:class:`Terminal` does nothing and :class:`KeyReader` ends at once. Ctrl-C is not a key: the
terminal keeps ISIG, so it raises SIGINT as usual.

Nor is a tty touched by a process outside its foreground process group (``voicechat talk &``,
or under ``timeout`` without ``--foreground``): there a read or a mode change would stop the
process with SIGTTIN/SIGTTOU, and a parent that continues it at once (``timeout`` does) turns
that into a busy loop. Such a process leaves the tty alone and asks :func:`owns_terminal` again
a few times a second (one cheap system call; ``fg`` on a running job sends no signal to wait for).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import termios
from collections import deque
from collections.abc import Callable
from types import TracebackType
from typing import Any

from voicechat.keys.decoder import Key, KeyDecoder


def _isatty(fd: int) -> bool:
    try:
        return os.isatty(fd)
    except (OSError, ValueError, TypeError):
        return False


def in_background(fd: int) -> bool:
    """Whether ``fd`` is this process's controlling tty with another process group in front.

    Such a tty must not be read or set (SIGTTIN/SIGTTOU would stop the process). A tty that is
    not the controlling terminal, or one that hung up, is not "in the background": job control
    does not apply, and a read reports the hangup.
    """
    if not _isatty(fd):
        return False
    try:
        return os.tcgetpgrp(fd) != os.getpgrp()
    except (OSError, ValueError, TypeError):  # ENOTTY: not our controlling terminal; EIO: hung up
        return False


def is_tty(fd: int) -> bool:
    """Whether ``fd`` is a terminal (in the foreground of it or not)."""
    return _isatty(fd)


def owns_terminal(fd: int) -> bool:
    """Whether ``fd`` is a tty this process may read and set now (see :func:`in_background`)."""
    return _isatty(fd) and not in_background(fd)


class Terminal:
    """Cbreak-like tty mode for a ``with`` block; does nothing when ``fd`` is not a tty we own.

    A process outside the tty's foreground process group leaves the mode alone; :meth:`take`
    tries again (when the process has been brought to the foreground).

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
        self.take()
        return self

    def take(self) -> bool:
        """Put the tty in the keyboard mode if this process owns it now; whether it is in it."""
        if self._saved is not None:
            return True
        if not owns_terminal(self.fd):
            return False
        try:
            saved = termios.tcgetattr(self.fd)
            termios.tcsetattr(self.fd, termios.TCSADRAIN, _keyboard_mode(self.fd, saved))
        except (termios.error, OSError):
            return False
        self._saved = saved
        if self.bracketed_paste:
            self._write(b"\x1b[?2004h")
        return True

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

FOREGROUND_CHECK_S = 0.25  # how often a reader in the background asks whether it is in front now


class KeyReader:
    """Keys from a tty fd, read on the running loop with ``add_reader``; an async iterator.

    Use as ``async with KeyReader(fd) as keys: async for key in keys: ...``. The queue holds at
    most ``maxsize`` keys: when the app stops reading, the oldest key is dropped and counted in
    :attr:`dropped`. Iteration ends after end of file or hangup on the tty, or :meth:`close`,
    once the queued keys are taken. When ``fd`` is not a tty, nothing is read and iteration
    ends at once. Combine with :class:`Terminal` for key-at-a-time input without echo.

    While the process is not in the tty's foreground process group nothing is read (a read would
    stop it): every ``FOREGROUND_CHECK_S`` the reader asks :func:`owns_terminal` again, and once
    it does, calls ``on_foreground`` (to take the keyboard mode) and starts reading.
    """

    def __init__(self, fd: int = 0, *, maxsize: int = 256,
                 on_foreground: Callable[[], object] | None = None) -> None:
        if maxsize < 1:
            raise ValueError("maxsize must be at least 1")
        self.fd = fd
        self.dropped = 0
        self._decoder = KeyDecoder()
        self._keys: deque[Key] = deque(maxlen=maxsize)
        self._ready = asyncio.Event()
        self.on_foreground = on_foreground
        self._loop: asyncio.AbstractEventLoop | None = None
        self._check: asyncio.TimerHandle | None = None  # the next look at who owns the tty
        self._done = False

    @property
    def waiting(self) -> bool:
        """Whether the reader is waiting to be brought to the foreground."""
        return self._check is not None

    def start(self) -> None:
        """Start reading on the running loop (idempotent; a no-op after close)."""
        if self._loop is not None or self._done:
            return
        if not _isatty(self.fd):
            self._finish()
            return
        self._loop = asyncio.get_running_loop()
        if owns_terminal(self.fd):
            self._loop.add_reader(self.fd, self._on_readable)
        else:
            self._wait_for_foreground()

    def close(self) -> None:
        """Stop reading and remove the reader (idempotent)."""
        loop, self._loop = self._loop, None
        if loop is not None:
            with contextlib.suppress(OSError, ValueError, RuntimeError):
                loop.remove_reader(self.fd)
        check, self._check = self._check, None
        if check is not None:
            check.cancel()
        self._finish()

    def _wait_for_foreground(self) -> None:
        if self._loop is not None and self._check is None:
            self._check = self._loop.call_later(FOREGROUND_CHECK_S, self._look_again)

    def _look_again(self) -> None:
        self._check = None
        loop = self._loop
        if loop is None:
            return
        if in_background(self.fd):
            self._wait_for_foreground()
            return
        if self.on_foreground is not None:
            self.on_foreground()
        loop.add_reader(self.fd, self._on_readable)

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
        if in_background(self.fd):  # put in the background since: a read would stop us
            if self._loop is not None:
                with contextlib.suppress(OSError, ValueError, RuntimeError):
                    self._loop.remove_reader(self.fd)
            self._wait_for_foreground()
            return
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
