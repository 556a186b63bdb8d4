"""The terminal seam of one ``talk``: transcript sinks on stdout, the panel or status on stderr.

`make_output` looks at the streams once — whether the panel can draw (stderr a terminal, not
``--quiet``) and whether stdout is a terminal under it — and builds an `Output` from what it
saw; nothing after it probes a stream again. `Output` is where every line for the user goes:
notices (on the live panel while it draws, else on stderr; ``--quiet`` keeps only errors), lines
that must be said even with ``--quiet`` (`always`), and problems writing output files, which are
said again on stderr once the panel is erased. Server text is scrubbed of secrets and escaped
before it reaches a terminal.
"""

from __future__ import annotations

import contextlib
import logging
import sys
from dataclasses import dataclass, field
from typing import Any, TextIO

from voicechat.config import Settings
from voicechat.redact import scrub
from voicechat.transcript import FileSink, Sink, StreamSink, escape_control
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
    _file_problems: list[str] = field(default_factory=list, repr=False)  # said on the panel: again after it

    def __post_init__(self) -> None:
        for sink in self.sinks:
            if getattr(sink, "report", False) is None:
                sink.report = self.file_problem

    def file_problem(self, message: str) -> None:
        """An output file could not be written (and what was done instead), or can be again.

        Shown even with --quiet: it is about what the user keeps. On the live panel it is a
        notice, and said again on stderr once the panel is gone (the panel is erased at exit).
        """
        line = "warning: " + message
        if self.view is not None and self.panel_live:
            self.view.notice(line)
            self._file_problems.append(line)
        else:
            self.always(line)

    def after_panel(self) -> None:
        """The panel is gone: what it said about output files, on stderr where it stays."""
        for line in self._file_problems:
            self.always(line)
        self._file_problems.clear()

    def notice(self, level: str, message: str) -> None:
        message = scrub(message)  # server text (an error event) may echo the key
        if level == "debug":
            log.debug("%s", message)
            return
        prefix = {"error": "error: ", "warning": "warning: "}.get(level, "")
        if self.view is not None and self.panel_live:
            self.view.notice(prefix + message)
            return
        if not self.quiet or level == "error":
            self.always(prefix + message)

    def always(self, message: str) -> None:
        """A line on stderr even with --quiet: why the conversation ended, a question to answer."""
        if self.status is None:
            return
        with contextlib.suppress(OSError, ValueError):  # a closed pipe, a full disk: nowhere to say it
            self.status.write(f"voicechat: {escape_control(scrub(message))}\n")
            self.status.flush()

    @property
    def panel_live(self) -> bool:
        return self.front is not None and getattr(self.front, "is_started", False)

    def publish(self, snapshot: Any) -> None:
        if self.front is not None:
            self.front.update(snapshot)


class _CurrentStdout:
    """Writes to whatever ``sys.stdout`` is now (the live panel redirects it above itself)."""

    def write(self, text: str) -> int:
        return sys.stdout.write(text)

    def flush(self) -> None:
        sys.stdout.flush()


def make_output(settings: Settings, stdout: TextIO, stderr: TextIO, *, panel: bool = True) -> Output:
    """Transcript lines to stdout (and the transcript file); the panel or a status log on stderr."""
    from voicechat.ui.live import LivePanel

    front = None
    if panel and not settings.quiet:
        front = LivePanel.for_stream(stderr, stdout=stdout, auto_refresh=False)
    live = isinstance(front, LivePanel)
    stream: Any = _CurrentStdout() if live and _isatty(stdout) else stdout
    sinks: list[Sink] = [StreamSink(stream)]
    if settings.transcript is not None:
        sinks.append(FileSink(settings.transcript))
    return Output(sinks=sinks, status=stderr, quiet=settings.quiet, front=front)


def _isatty(stream: Any) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError, OSError):
        return False
