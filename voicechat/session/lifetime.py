"""The server session's time limit: warn once, then move to a new session at a quiet moment.

The server ends a session after 60 minutes (reference §4.8) and says when in ``expires_at``.
``expiry_warning_s`` before that a warning is shown; once less than ``recycle_margin_s`` is left
and nothing is going on, a ``Recycle`` asks the caller to open a new session and move the
conversation to it (it calls back `recycle_later` when it could not). A session that started
with no more than the margin left (a skewed clock, very short sessions) would be no better
replaced, so its expiry is handled as a drop instead. ``expires_at`` is read from the server's
session here, once, for the session and the panel alike (`expires_at`).
"""

from __future__ import annotations

from collections.abc import Mapping

from voicechat import effects as fx

EXPIRY_WARNING_S = 300.0  # warn when the server session has this long left
RECYCLE_MARGIN_S = 120.0  # move to a new session between turns when less than this is left


def expires_at(server_session: Mapping[str, object]) -> float | None:
    """When the server ends this session (wall-clock seconds), if it said so sensibly."""
    expires = server_session.get("expires_at")
    if isinstance(expires, int | float) and not isinstance(expires, bool) and expires > 0:
        return float(expires)
    return None


class Lifetime:
    """The warning and the recycle request of the current server session, and how many so far."""

    def __init__(self, *, expiry_warning_s: float = EXPIRY_WARNING_S,
                 recycle_margin_s: float = RECYCLE_MARGIN_S) -> None:
        self.expiry_warning_s = expiry_warning_s
        self.recycle_margin_s = recycle_margin_s
        self.connections = 1  # server sessions so far (names the re-seeded items)
        self._warned = False
        self._recycle_asked = False
        self._recycle_not_before = 0.0
        self._fresh_left: float | None = None  # time left as the session started
        self._wanted = False  # a new session is wanted whatever the time left (/profile, a new voice)

    def reset(self) -> None:
        """The server session is gone; nothing is known of the next one yet."""
        self._warned = False
        self._recycle_asked = False
        self._recycle_not_before = 0.0
        self._wanted = False

    def want(self) -> None:
        """Move to a new session at the next quiet moment, however long this one has left."""
        self._wanted = True
        self._recycle_asked = False

    def started(self, left: float | None) -> None:
        """A server session is configured with ``left`` seconds to go (None: not said)."""
        self._fresh_left = left

    def check(self, left: float | None, now: float, idle: bool) -> list[fx.Effect]:
        """Warn once near the limit; ask for a new session once inside the margin and ``idle``."""
        if left is None and not self._wanted:
            return []
        out: list[fx.Effect] = []
        if left is not None and left <= self.expiry_warning_s and not self._warned:
            self._warned = True
            minutes, seconds = divmod(max(0, round(left)), 60)
            out.append(fx.Notice("warning", f"the server ends this session in {minutes}:{seconds:02d}; "
                                            "voicechat moves the conversation to a new one between turns"))
        worth_it = self._wanted or self._fresh_left is None or self._fresh_left > self.recycle_margin_s
        due = (self._wanted or (left is not None and left <= self.recycle_margin_s)) and now >= self._recycle_not_before
        if worth_it and due and not self._recycle_asked and idle:
            self._recycle_asked = True
            out.append(fx.Recycle(left if left is not None else 0.0))
        return out

    def recycle_later(self, not_before: float) -> None:
        """The new session could not be put in place (busy again, or it failed): ask again later."""
        self._recycle_asked = False
        self._recycle_not_before = not_before
