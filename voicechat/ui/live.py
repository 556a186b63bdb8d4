"""The panel's two front ends: a live panel for a terminal, plain lines for anything else.

Both take snapshots the same way, so the app drives them alike::

    status = LivePanel.for_stream(sys.stderr)   # LivePanel on a terminal, else PlainStatus
    with status:
        ...                                     # on the event loop, at most 10 times a second:
        status.update(snapshot)

The live panel is a region at the bottom of the terminal that it rewrites in place. It draws on
the caller's thread (the event loop), and only when the snapshot or the terminal's size changed;
a redraw writes only the screen lines that differ from what is on the screen, each laid out once
(``render.frame_lines``) and turned into escape codes here. Rich's ``Live`` did the same job by
laying the whole panel out twice more per redraw (splitting, cropping and measuring every
segment), which cost three times the layout itself: about 1 CPU-s a minute while a reply
streamed at ten redraws a second.

Anything else printed on the console while the panel is up (`log`, and stdout/stderr when they
are redirected to it) goes above the panel: a render hook erases the panel first and draws it
again under what was printed. All writes go through the console, which serialises them.
"""

from __future__ import annotations

import sys
import threading
from collections import deque
from collections.abc import Callable
from types import TracebackType
from typing import TextIO

from rich.console import COLOR_SYSTEMS, Console, ConsoleRenderable, RenderHook
from rich.control import Control
from rich.file_proxy import FileProxy
from rich.segment import Segment
from rich.text import Text

from voicechat.ui.render import frame_lines, safe_text
from voicechat.ui.snapshot import Snapshot


class _Raw(Control):
    """Escape codes and text written to the terminal as they are (not measured or wrapped)."""

    def __init__(self, text: str) -> None:
        self.segment = Segment(text)


def _ansi(console: Console, line: tuple[Segment, ...]) -> str:
    """One screen line as the console would write it: each styled run in its escape codes."""
    system = COLOR_SYSTEMS.get(console.color_system or "")
    segments = Segment.remove_color(line) if console.no_color and system else line
    legacy = console.legacy_windows
    return "".join(style.render(text, color_system=system, legacy_windows=legacy) if style else text
                   for text, style, _ in segments)


def _move(rows: int) -> str:
    """Move the cursor ``rows`` lines down (up when negative), to the first column."""
    if rows > 0:
        return f"\r\x1b[{rows}B"
    return f"\r\x1b[{-rows}A" if rows < 0 else "\r"


class LivePanel(RenderHook):
    """A live panel redrawn from the latest published snapshot, on a terminal's stderr.

    ``transient`` defaults to true: on stop the panel is erased rather than left behind, because
    each finished turn was printed above it (`log`) as it finished, and a frozen copy of the
    panel would only repeat the end of it above the shell prompt.

    ``redirect_stdout`` should be true only when stdout is the same terminal: stray stdout lines
    are then printed above the panel instead of through it. When stdout is a pipe or a file it
    must stay false, or the transcript would be diverted to stderr.

    The cursor sits on the panel's last line between writes (its column unknown); every write
    starts from there.
    """

    def __init__(
        self,
        snapshot_fn: Callable[[], Snapshot] | None = None,
        *,
        console: Console | None = None,
        transient: bool = True,
        redirect_stdout: bool = False,
        redirect_stderr: bool = True,
    ) -> None:
        self.console = console if console is not None else Console(file=sys.stderr)
        self._latest = Snapshot()
        self._drawn: Snapshot | None = None
        self._drawn_size: tuple[int, int] | None = None
        self.redraws = 0
        self._snapshot_fn = snapshot_fn if snapshot_fn is not None else self._published
        self._transient = transient
        self._redirect = (redirect_stdout, redirect_stderr)
        self._restore: list[tuple[str, TextIO]] = []
        self._shown: list[str] = []  # the panel's lines on the screen, as written
        self._ansi: dict[tuple[Segment, ...], str] = {}  # the last frame's lines, by their segments
        self._started = False
        self._lock = threading.RLock()

    @classmethod
    def for_stream(
        cls,
        stream: TextIO | None = None,
        snapshot_fn: Callable[[], Snapshot] | None = None,
        *,
        stdout: TextIO | None = None,
    ) -> LivePanel | PlainStatus:
        """A LivePanel when ``stream`` (default stderr) is a capable terminal, else PlainStatus.

        Stdout is redirected above the panel only when ``stdout`` (default sys.stdout) is a
        terminal too.
        """
        stream = stream if stream is not None else sys.stderr
        if not _is_tty(stream):
            return PlainStatus(stream)
        console = Console(file=stream)
        if console.is_dumb_terminal:
            return PlainStatus(stream)
        out = stdout if stdout is not None else sys.stdout
        return cls(snapshot_fn, console=console, redirect_stdout=_is_tty(out))

    @property
    def redirects_stdout(self) -> bool:
        return self._redirect[0]

    # ---- the loop's side ----------------------------------------------------------------------

    def update(self, snapshot: Snapshot) -> None:
        """Publish ``snapshot`` and draw it, on the caller's thread, when it differs from the one
        last drawn or the terminal's size has changed: a quiet conversation writes nothing to the
        terminal at all."""
        self._latest = snapshot
        if not self._started:
            return
        size = self.console.size
        if snapshot == self._drawn and size == self._drawn_size:
            return
        resized = size != self._drawn_size
        self._drawn, self._drawn_size = snapshot, size
        self.redraws += 1
        self._draw(full=resized)  # resized: the old lines may have moved; erase them all

    def log(self, line: Text) -> None:
        """Print ``line`` above the panel, where it stays (in the scrollback once the panel is
        gone): a finished turn, an error. Not through markup or the highlighter: ``line`` is
        styled already."""
        self.console.print(line, highlight=False, markup=False, emoji=False)

    def start(self) -> None:
        """Show the panel (hides the cursor). Starting a started panel does nothing."""
        with self._lock:
            if self._started:
                return
            self._started = True
            self.console.show_cursor(False)
            self.console.push_render_hook(self)
            self._redirect_io()
            self._draw(full=True)

    def stop(self) -> None:
        """Erase the panel if transient, else draw it once more and leave it; show the cursor.
        Idempotent."""
        with self._lock:
            if not self._started:
                return
            self._started = False
            self._restore_io()
            self.console.pop_render_hook()
            if not self._transient:
                self._draw(full=False)  # the panel stays: as it last was
            end = self._erase() if self._transient else "\n"
            self._shown = []
            self.console.control(_Raw(end))
            self.console.show_cursor(True)

    def refresh(self) -> None:
        """Draw the latest snapshot now, every line of it."""
        if self._started:
            self._draw(full=True)

    @property
    def is_started(self) -> bool:
        return self._started

    def __enter__(self) -> LivePanel:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # ---- drawing ------------------------------------------------------------------------------

    def process_renderables(self, renderables: list[ConsoleRenderable]) -> list[ConsoleRenderable]:
        """Whatever is printed while the panel is up goes above it: the panel is erased first
        and drawn again, as it was, under what was printed."""
        with self._lock:
            if not self._shown:
                return renderables
            return [_Raw(self._erase()), *renderables, _Raw("\n".join(self._shown))]

    def _draw(self, *, full: bool) -> None:
        with self._lock:
            lines = self._lines()
            old = self._shown
            if full or not old:
                out = (self._erase() if old else "") + "\n".join(lines)
            else:
                out = self._changes(old, lines)
            self._shown = lines
            if out:
                self.console.control(_Raw(out))

    def _erase(self) -> str:
        """From the panel's last line: to its first, and erase it and everything below."""
        return _move(-(len(self._shown) - 1)) + "\x1b[J"

    @staticmethod
    def _changes(old: list[str], new: list[str]) -> str:
        """What turns the lines ``old`` on the screen into ``new``: only the lines that differ
        are written; lines gained are added below, lines lost erased."""
        parts: list[str] = []
        at = len(old) - 1  # the cursor's line
        for i in range(min(len(old), len(new))):
            if old[i] != new[i]:
                parts += (_move(i - at), new[i])
                at = i
        if len(new) > len(old):
            parts.append(_move(len(old) - 1 - at))
            parts += ("\n" + line for line in new[len(old) :])
        elif len(new) < len(old):
            parts += (_move(len(new) - at), "\x1b[J", _move(-1))
        else:
            parts.append(_move(len(old) - 1 - at))
        out = "".join(parts)
        return "" if out == "\r" else out

    def _lines(self) -> list[str]:
        """The latest snapshot as the panel's lines, with their escape codes; lines unchanged
        since the last frame are not turned into escape codes again."""
        console = self.console
        height = max(1, console.height - 1)  # a spare line keeps the top in view
        try:
            rows = frame_lines(self._snapshot_fn(), console, height=height)
        except Exception as exc:  # a panel that cannot draw says so rather than vanish
            error = Text(f"voicechat: cannot draw the panel: {exc!r}")
            error.truncate(console.width, pad=True)
            rows = [tuple(error.render(console))]
        rows = rows[:height]  # lines pushed off the top could not be rewritten
        before, now = self._ansi, {}
        for row in rows:
            now[row] = before.get(row) or _ansi(console, row)
        self._ansi = now
        return [now[row] for row in rows]

    def _published(self) -> Snapshot:
        return self._latest

    def _redirect_io(self) -> None:
        for name, wanted in zip(("stdout", "stderr"), self._redirect, strict=True):
            stream = getattr(sys, name)
            if wanted and not isinstance(stream, FileProxy):
                self._restore.append((name, stream))
                setattr(sys, name, FileProxy(self.console, stream))

    def _restore_io(self) -> None:
        for name, stream in reversed(self._restore):
            proxy = getattr(sys, name)
            if isinstance(proxy, FileProxy):
                proxy.flush()
            setattr(sys, name, stream)
        self._restore.clear()


class PlainStatus:
    """Status for a stderr that is not a terminal: one flushed line per meaningful change.

    Lines look like ``voicechat: assistant speaking``. They are written for a change of
    connection state, of activity (except to ``idle``), of mute, for each newly interrupted
    reply, for each new ``notice`` turn and for a new status message; redraw-only changes
    (levels, streaming text, the clock) write nothing. A closed pipe ends it quietly.
    """

    PREFIX = "voicechat: "
    _TAIL = 16  # interruptions happen near the end of the conversation
    _REMEMBER = 64

    def __init__(self, file: TextIO | None = None) -> None:
        self.file = file if file is not None else sys.stderr
        self.closed = False
        self._last: Snapshot | None = None
        self._told_interrupted: deque[str] = deque(maxlen=self._REMEMBER)

    def start(self) -> None:
        pass

    def stop(self) -> None:
        pass

    def __enter__(self) -> PlainStatus:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def update(self, snapshot: Snapshot) -> None:
        if self.closed:
            return
        lines = self._changes(snapshot)
        self._last = snapshot
        for line in lines:
            try:
                self.file.write(self.PREFIX + line + "\n")
                self.file.flush()
            except BrokenPipeError:
                self.closed = True
                return

    def _changes(self, new: Snapshot) -> list[str]:
        """Lines (without the prefix) for what changed since the last update; notes what was told."""
        old = self._last
        out: list[str] = []
        if old is None or new.header.connection != old.header.connection:
            out.append(safe_text(new.header.connection))
        if old is not None and new.muted != old.muted:
            out.append("muted" if new.muted else "unmuted")
        start = max(0, len(new.turns) - self._TAIL)
        for index in range(start, len(new.turns)):
            turn = new.turns[index]
            key = turn.item_id or f"#{index}"
            if turn.interrupted and key not in self._told_interrupted:
                self._told_interrupted.append(key)
                out.append("interrupted")
        if (old is None or new.activity != old.activity) and new.activity != "idle":
            out.append(safe_text(new.activity))
        seen = len(old.turns) if old is not None and len(old.turns) <= len(new.turns) else 0
        for turn in new.turns[max(seen, len(new.turns) - self._TAIL) :]:
            if turn.role == "notice":
                out.append(safe_text(turn.text))
        if new.status and (old is None or new.status != old.status):
            out.append(safe_text(new.status))
        return out


def _is_tty(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False
