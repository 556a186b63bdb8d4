"""The terminal seam of one ``talk``: transcript sinks on stdout, the panel or status on stderr.

`make_output` looks at the streams once — whether the panel can draw (stderr a terminal, not
``--quiet``) and whether stdout is a terminal under it — and builds an `Output` from what it
saw; nothing after it probes a stream again. While the live panel draws, each finished turn is
printed once above it (`PanelLog`; stdout too only when it is not that terminal, in plain
lines), and so are errors and warnings, where they stay; information is a passing notice on
the panel. `Output` is where every line for the user goes:
notices (on the live panel while it draws, else on stderr; ``--quiet`` keeps only errors), lines
that must be said even with ``--quiet`` (`always`), and problems writing output files, which are
said again on stderr once the panel is erased. Server text is scrubbed of secrets and escaped
before it reaches a terminal.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import threading
from dataclasses import dataclass, field
from typing import Any, TextIO

from voicechat.config import Settings
from voicechat.effects import Turn
from voicechat.redact import scrub
from voicechat.transcript import (
    FileSink,
    Sink,
    StreamSink,
    escape_control,
    line_role,
    plain_line,
    scrubbed,
    session_heading,
)
from voicechat.ui.view import View

log = logging.getLogger(__name__)


@dataclass
class Output:
    """Where the conversation is shown: transcript sinks and a status writer (stderr)."""

    sinks: list[Sink] = field(default_factory=list)
    status: TextIO | None = None
    quiet: bool = False
    front: Any = None  # the live panel (LivePanel) or the plain status log (PlainStatus), if any
    view: View | None = None  # what the front end draws; notices go there while the panel is live
    lines_typed: bool = False  # no panel because stdout is a pipe: typed lines are read as the tty cooks them

    def __post_init__(self) -> None:
        for sink in self.sinks:
            if getattr(sink, "report", False) is None:
                sink.report = self.file_problem

    def file_problem(self, message: str) -> None:
        """An output file could not be written (and what was done instead), or can be again.

        Shown even with --quiet: it is about what the user keeps. With the live panel it is
        printed above the panel, where it stays after the panel is erased.
        """
        line = "warning: " + message
        if self.view is not None and self.panel_live and self.logs_above:
            self._above(line)
        elif self.view is not None and self.panel_live:
            self.view.notice(line)
        else:
            self.always(line)

    def notice(self, level: str, message: str) -> None:
        message = scrub(message)  # server text (an error event) may echo the key
        if level == "debug":
            log.debug("%s", message)
            return
        prefix = {"error": "error: ", "warning": "warning: "}.get(level, "")
        if self.view is not None and self.panel_live:
            if prefix and self.logs_above:  # kept: above the panel, in the scrollback after it
                self._above(prefix + message)
            else:  # passing: on the panel until it is stale
                self.view.notice(prefix + message)
            return
        if not self.quiet or level == "error":
            self.always(prefix + message)

    def _above(self, line: str) -> None:
        from voicechat.ui.render import log_line

        self.front.log(log_line(f"voicechat: {escape_control(scrub(line))}", "notice"))

    def always(self, message: str) -> None:
        """A line on stderr even with --quiet: why the conversation ended, a question to answer."""
        if self.status is None:
            return
        with contextlib.suppress(OSError, ValueError):  # a closed pipe, a full disk: nowhere to say it
            self.status.write(f"voicechat: {escape_control(scrub(message))}\n")
            self.status.flush()

    @property
    def logs_above(self) -> bool:
        """Whether the front end prints finished lines above itself (the live panel)."""
        return self.front is not None and hasattr(self.front, "log")

    @property
    def panel_live(self) -> bool:
        return self.front is not None and getattr(self.front, "is_started", False)

    def publish(self, snapshot: Any) -> None:
        if self.front is not None:
            self.front.update(snapshot)


class PanelLog:
    """Finished turns printed above the live panel, once each, labels in their role's colour.

    The panel itself shows only what is still in progress (``View.log_above``), so a turn is on
    the terminal once while the conversation goes on, and stays in the scrollback after it.
    """

    def __init__(self, front: Any) -> None:
        self.front = front
        self.report: Any = None

    def write(self, turn: Turn) -> None:
        from voicechat.ui.render import log_line

        if getattr(self.front, "is_started", False):
            self.front.log(log_line(plain_line(scrubbed(turn)), line_role(turn)))

    def close(self) -> None:
        pass


def make_output(settings: Settings, stdout: TextIO, stderr: TextIO, *, panel: bool = True) -> Output:
    """Transcript lines to stdout (and the transcript file); the panel or a status log on stderr.

    With the live panel, finished turns are printed above it on the terminal (`PanelLog`);
    stdout gets its plain lines too only when it is not the terminal (a file). When stdout is a
    pipe (``| tee chat.txt``) its reader most likely writes to the same terminal, where the
    panel's redraws would erase its lines and be broken by them: the status log stands in for
    the panel, and what the user types is read a line at a time, echoed by the terminal itself.
    """
    from voicechat.ui.live import LivePanel, PlainStatus

    front = None
    piped = _is_pipe(stdout) and _isatty(stderr)
    if panel and not settings.quiet:
        front = PlainStatus(stderr) if piped else LivePanel.for_stream(stderr, stdout=stdout)
    sinks: list[Sink] = []
    if isinstance(front, LivePanel):
        sinks.append(PanelLog(front))
    if not (isinstance(front, LivePanel) and _isatty(stdout)):
        sinks.append(StreamSink(stdout))
    if settings.transcript is not None:
        model = settings.model if settings.backend == "openai" else f"{settings.model} (local server)"
        sinks.append(FileSink(settings.transcript, heading=session_heading(model)))
    out = Output(sinks=sinks, status=stderr, quiet=settings.quiet, front=front, lines_typed=piped)
    if piped:
        out.notice("info", "stdout is a pipe: status lines instead of the live panel (its redraws would erase "
                           "what the pipe's reader writes here); type a line and Enter to send it")
    return out


def _is_pipe(stream: Any) -> bool:
    """Whether ``stream`` is a pipe or a socket: another program reads it (never a file or a tty)."""
    import stat

    try:
        mode = os.fstat(stream.fileno()).st_mode
    except (AttributeError, ValueError, OSError):
        return False
    return stat.S_ISFIFO(mode) or stat.S_ISSOCK(mode)


def _isatty(stream: Any) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError, OSError):
        return False


class ForeignStderr:
    """File descriptor 2 kept from C libraries while voicechat draws on the terminal.

    libasound writes ``ALSA lib pcm.c:… underrun occurred`` straight to fd 2; under the live
    panel that shifts the screen and leaves copies of the panel in the scrollback, and in
    ``--quiet`` or a status log it is a raw line voicechat did not say. Inside the block fd 2 is
    a pipe read by a thread into :attr:`count`, while :attr:`stream` (also
    ``sys.stderr`` for the block, and the root logger's stream, so Python's own warnings, log and
    tracebacks) writes to the terminal fd 2 was. Leaving the block, on any path, puts fd 2 and ``sys.stderr`` back before anything
    else is said, so voicechat's one-line errors and tracebacks reach the terminal as before.
    """

    def __init__(self) -> None:
        self.count = 0
        self.stream: TextIO = sys.stderr
        self._saved: int | None = None
        self._previous: TextIO | None = None
        self._pump: threading.Thread | None = None
        self._handlers: list[logging.StreamHandler[Any]] = []

    def __enter__(self) -> ForeignStderr:
        try:
            sys.stderr.flush()
            saved = os.dup(2)
        except (OSError, ValueError, AttributeError):
            return self  # no fd 2: nothing to keep anything from
        read_end, write_end = os.pipe()
        os.dup2(write_end, 2)
        os.close(write_end)
        self._saved = saved
        self._previous = sys.stderr
        encoding = getattr(sys.stderr, "encoding", None) or "utf-8"
        self.stream = sys.stderr = open(saved, "w", encoding=encoding, errors="backslashreplace",
                                        buffering=1, closefd=False)
        self._handlers = [h for h in logging.getLogger().handlers  # --debug's log: to the terminal too
                          if isinstance(h, logging.StreamHandler) and h.stream is self._previous]
        for handler in self._handlers:
            handler.setStream(self.stream)
        self._pump = threading.Thread(target=self._read, args=(read_end,), name="foreign-stderr", daemon=True)
        self._pump.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        saved, self._saved = self._saved, None
        if saved is None:
            return
        with contextlib.suppress(OSError, ValueError):
            self.stream.flush()
        os.dup2(saved, 2)  # closes the pipe's write end: the pump sees its end
        os.close(saved)
        if self._previous is not None:
            sys.stderr = self._previous
            for handler in self._handlers:
                handler.setStream(self._previous)
        if self._pump is not None:
            self._pump.join(timeout=1.0)

    def _read(self, fd: int) -> None:
        with open(fd, "rb") as pipe:
            for raw in pipe:
                line = raw.decode("utf-8", "backslashreplace").rstrip()
                if line:  # not logged: a log handler on the old stderr would write it back here
                    self.count += 1

    def summary(self) -> str | None:
        """One line for after the conversation when libraries wrote anything, else None."""
        if not self.count:
            return None
        lines = "a line" if self.count == 1 else f"{self.count} lines"
        return f"voicechat: the sound library wrote {lines} of its own to stderr (kept off the screen)"
