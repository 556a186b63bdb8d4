"""SIGINT, SIGTERM and SIGHUP during the whole of ``talk``: what each phase does with them.

Before a conversation exists the talk task is cancelled at once; while one runs it ends as a
quit would (the reply cut to what was heard, the transcript written, the socket closed with
1000); while shutting down the shutdown finishes first, and a second signal cuts it short. The
first signal decides the exit status (130 for SIGINT, 143 for SIGTERM, 129 for SIGHUP: the
terminal closed, which must not lose the turn being written any more than a ``kill`` does).
The guard of the running ``talk`` is found through a context variable, so a conversation
started inside it joins it.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import signal
from typing import Any, Protocol

from voicechat.errors import ExitStatus, Interrupted

# Each signal that ends talk, and the exit status it gives (128 + the signal's number).
STATUSES = (
    (signal.SIGINT, ExitStatus.SIGINT),
    (signal.SIGTERM, ExitStatus.SIGTERM),
    (signal.SIGHUP, ExitStatus.SIGHUP),
)


class Stoppable(Protocol):
    """What a signal needs of a conversation: a way to end it with an error."""

    def fail(self, error: BaseException) -> None: ...


class SignalGuard:
    """SIGINT/SIGTERM/SIGHUP during the whole of `talk`, by phase.

    * No conversation yet (starting the local server, connecting): the talk task is cancelled
      at once; talk raises `Interrupted`.
    * A conversation running: it ends cleanly, as a quit would (the reply cut to what was
      heard, the transcript written, the socket closed with 1000); talk raises `Interrupted`.
    * After it (shutting down: closing the socket and files, at most a few seconds): the
      shutdown finishes, then talk raises `Interrupted`; a second signal cuts it short.

    The first signal decides the exit status (130 for SIGINT, 143 for SIGTERM, 129 for SIGHUP: the
terminal closed, which must not lose the turn being written any more than a ``kill`` does).
    """

    def __init__(self, task: asyncio.Task[Any] | None) -> None:
        self.task = task
        self.error: Interrupted | None = None
        self.conversation: Stoppable | None = None
        self.ended = False  # a conversation ran and is over: talk is shutting down
        self._cancelled = 0

    def __call__(self, error: Interrupted) -> None:
        first = self.error is None
        if first:
            self.error = error
        if self.conversation is not None:
            self.conversation.fail(error)
        elif (not self.ended or not first) and self.task is not None:
            self._cancelled += 1
            self.task.cancel()

    def uncancel(self) -> None:
        """The cancellation was ours (a signal), not the caller's: forget it."""
        if self.task is not None:
            for _ in range(self._cancelled):
                self.task.uncancel()
        self._cancelled = 0

    @contextlib.contextmanager
    def installed(self):  # type: ignore[no-untyped-def]
        loop = asyncio.get_running_loop()
        installed = []
        for signum, status in STATUSES:
            previous = signal.getsignal(signum)
            try:
                loop.add_signal_handler(
                    signum, self, Interrupted(f"interrupted by {signal.Signals(signum).name}", status=status)
                )
                installed.append((signum, previous))
            except (NotImplementedError, RuntimeError, ValueError):
                pass  # not the main thread, or no signals here
        try:
            yield self
        finally:
            for signum, previous in installed:
                loop.remove_signal_handler(signum)
                with contextlib.suppress(TypeError, ValueError):
                    signal.signal(signum, previous)


GUARD: contextvars.ContextVar[SignalGuard | None] = contextvars.ContextVar("voicechat_signals", default=None)


@contextlib.contextmanager
def signals_end(conversation: Stoppable):  # type: ignore[no-untyped-def]
    """While ``conversation`` runs, SIGINT/SIGTERM/SIGHUP end it cleanly (transcript written, socket closed)."""
    guard = GUARD.get()
    if guard is None:
        yield
        return
    guard.conversation = conversation
    if guard.error is not None:
        conversation.fail(guard.error)
    try:
        yield
    finally:
        guard.conversation = None
        guard.ended = True
