"""The panel's two front ends: a Rich ``Live`` panel for a terminal, plain lines for anything else.

Both take snapshots the same way, so the app drives them alike::

    status = LivePanel.for_stream(sys.stderr)   # LivePanel on a terminal, else PlainStatus
    with status:
        ...                                     # on the event loop, at most every ~66 ms:
        status.update(snapshot)

Threading contract (LivePanel): ``rich.live.Live`` redraws from its own thread, up to
``refresh_per_second`` times a second, by calling ``snapshot_fn`` and rendering the result. The
event loop therefore never shares mutable state with the panel: it builds a new frozen
:class:`Snapshot` and publishes it by rebinding one attribute (``update`` does exactly that);
the refresh thread only reads that attribute. A custom ``snapshot_fn`` must keep to the same rule:
return an already-built immutable snapshot, never build one from live objects.
"""

from __future__ import annotations

import sys
from collections import deque
from collections.abc import Callable
from types import TracebackType
from typing import TextIO

from rich.console import Console, RenderableType
from rich.live import Live
from rich.text import Text

from voicechat.ui.render import render, safe_text
from voicechat.ui.snapshot import Snapshot

MAX_REFRESH_PER_SECOND = 15.0


class LivePanel:
    """A live panel redrawn from the latest published snapshot, on a terminal's stderr.

    ``transient`` defaults to true: on stop the panel is erased rather than left behind, because
    each finished turn was printed above it (`log`) as it finished, and a frozen copy of the
    panel would only repeat the end of it above the shell prompt.

    ``redirect_stdout`` should be true only when stdout is the same terminal: Rich then prints
    stray stdout lines above the panel instead of through it. When stdout is a pipe or a file it
    must stay false, or the transcript would be diverted to stderr.
    """

    def __init__(
        self,
        snapshot_fn: Callable[[], Snapshot] | None = None,
        *,
        console: Console | None = None,
        refresh_per_second: float = MAX_REFRESH_PER_SECOND,
        transient: bool = True,
        redirect_stdout: bool = False,
        redirect_stderr: bool = True,
        auto_refresh: bool = True,
    ) -> None:
        if not 0 < refresh_per_second <= MAX_REFRESH_PER_SECOND:
            raise ValueError(f"refresh_per_second must be in (0, {MAX_REFRESH_PER_SECOND:g}]")
        self.console = console if console is not None else Console(file=sys.stderr)
        self._latest = Snapshot()
        self._drawn: Snapshot | None = None
        self._drawn_size: tuple[int, int] | None = None
        self.redraws = 0
        self._snapshot_fn = snapshot_fn if snapshot_fn is not None else self._published
        self._live = Live(
            console=self.console,
            get_renderable=self._renderable,
            auto_refresh=auto_refresh,
            refresh_per_second=refresh_per_second,
            transient=transient,
            redirect_stdout=redirect_stdout,
            redirect_stderr=redirect_stderr,
        )

    @classmethod
    def for_stream(
        cls,
        stream: TextIO | None = None,
        snapshot_fn: Callable[[], Snapshot] | None = None,
        *,
        stdout: TextIO | None = None,
        auto_refresh: bool = True,
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
        return cls(snapshot_fn, console=console, redirect_stdout=_is_tty(out), auto_refresh=auto_refresh)

    # ---- the loop's side ----------------------------------------------------------------------

    def update(self, snapshot: Snapshot) -> None:
        """Publish ``snapshot``; the next redraw shows it. One attribute store, no locking.

        Without auto refresh (the app's choice: it publishes at most 10 times a second), the
        panel is redrawn here, on the caller's thread, only when the snapshot differs from the
        one last drawn or the terminal's size has changed: a quiet conversation writes nothing
        to the terminal at all.
        """
        self._latest = snapshot
        if self._live.auto_refresh or not self._live.is_started:
            return
        size = self.console.size
        if snapshot == self._drawn and size == self._drawn_size:
            return
        self._drawn, self._drawn_size = snapshot, size
        self.redraws += 1
        self._live.refresh()

    def log(self, line: Text) -> None:
        """Print ``line`` above the panel, where it stays (in the scrollback once the panel is
        gone): a finished turn, an error. Not through markup or the highlighter: ``line`` is
        styled already. On the loop's thread, as `update` is."""
        self.console.print(line, highlight=False, markup=False, emoji=False)

    def start(self) -> None:
        """Show the panel (hides the cursor). Starting a started panel does nothing."""
        self._live.start(refresh=True)

    def stop(self) -> None:
        """Draw once more, erase the panel if transient, show the cursor. Idempotent."""
        self._live.stop()

    def refresh(self) -> None:
        """Redraw now, without waiting for the refresh thread."""
        self._live.refresh()

    @property
    def is_started(self) -> bool:
        return self._live.is_started

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

    # ---- the refresh thread's side -------------------------------------------------------------

    def _published(self) -> Snapshot:
        return self._latest

    def _renderable(self) -> RenderableType:
        try:
            height = max(1, self.console.height - 1)  # a spare line keeps the top in view
            return render(self._snapshot_fn(), height=height)
        except Exception as exc:  # a dead refresh thread would freeze the panel silently
            return Text(f"voicechat: cannot draw the panel: {exc!r}")


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
