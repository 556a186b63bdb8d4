"""Builds the panel's `Snapshot` from the live conversation, on the event loop.

Written turns never change, so their views are built once and kept; only the unwritten tail
(the streaming reply, a user turn waiting for its transcript) is rebuilt per snapshot. Notices
(errors, warnings, command output) are kept in a short bounded list and shown among the turns.
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections import deque
from typing import Any

from voicechat.redact import SECRETS
from voicechat.ui.snapshot import Header, Snapshot, Stats, TurnView

MAX_NOTICES = 20
TURN_MODES = {"server": "server VAD", "semantic": "semantic VAD", "none": "push-to-talk"}


class View:
    """The conversation as the panel sees it. ``snapshot()`` is cheap enough for 15 Hz."""

    def __init__(self, settings: Any, echo_mode: str) -> None:
        self.settings = settings
        self.header = Header(
            model=settings.model,
            voice=settings.voice,
            turn_mode=TURN_MODES.get(settings.vad, settings.vad),
            echo=echo_mode,
        )
        self.connection = "connecting"
        self._written: list[TurnView] = []
        self._notices: deque[tuple[int, TurnView]] = deque(maxlen=MAX_NOTICES)
        self.status: str | None = None
        self.expires_at: float | None = None  # wall-clock time the server session ends

    def notice(self, text: str) -> None:
        """A line of voicechat's own (an error, a warning, a command's answer) for the panel."""
        self._notices.append((len(self._written), TurnView(role="notice", text=SECRETS.scrub(text))))

    def snapshot_idle(self) -> Snapshot:
        """Before there is a conversation: the header and any notices."""
        return Snapshot(header=self.header, turns=tuple(view for _, view in self._notices), status=self.status)

    def snapshot(self, session: Any, player: Any, echo: Any, line: str = "") -> Snapshot:
        written = session.written
        if written < len(self._written):  # cannot shrink; rebuild if it ever does
            self._written.clear()
        fresh = session.turns_from(len(self._written))  # everything not yet cached, built once
        newly_written = written - len(self._written)
        self._written.extend(TurnView.from_turn(turn) for turn, _ in fresh[:newly_written])
        tail = [TurnView.from_turn(turn, final=final) for turn, final in fresh[newly_written:]]
        turns = self._merge(tail)
        activity = session.activity.value
        seconds_left = None
        if self.expires_at is not None:
            seconds_left = max(0.0, self.expires_at - time.time())
        return Snapshot(
            header=dataclasses.replace(self.header, connection=self.connection, seconds_left=seconds_left),
            turns=turns,
            activity=activity,
            muted=session.muted,
            ptt_talking=session.talking,
            user_speaking=activity == "user speaking",
            assistant_speaking=bool(session.audible_items) and not session.paused,
            mic_dbfs=_level(echo.mic_db) if echo is not None else None,
            output_dbfs=_level(echo.out_db) if echo is not None else None,
            stats=Stats.from_usage(
                self.settings.model, session.usage, latency_ms=session.last_latency_ms,
                underruns=player.buffer.underruns,
            ),
            input_line=line,
            status=self.status,
        )

    def _merge(self, tail: list[TurnView]) -> tuple[TurnView, ...]:
        """Written turns, then the tail, with each notice after the turns written before it."""
        if not self._notices:
            return (*self._written, *tail)
        out: list[TurnView] = []
        notices = iter(self._notices)
        pending = next(notices, None)
        for index, view in enumerate(self._written):
            while pending is not None and pending[0] <= index:
                out.append(pending[1])
                pending = next(notices, None)
            out.append(view)
        out.extend(tail)
        while pending is not None:
            out.append(pending[1])
            pending = next(notices, None)
        return tuple(out)


def _level(db: float) -> float | None:
    """Levels in 2 dB steps (about one meter cell): a steady level does not force a redraw."""
    return None if db <= -100 or math.isnan(db) else 2.0 * round(db / 2.0)
