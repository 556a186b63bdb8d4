"""Builds the panel's `Snapshot` from the live conversation, on the event loop.

What the session, the player and the echo path say right now is read once, in one place
(`read_status`), into a frozen `Status`; `View.draw` builds the snapshot from that and the
transcript's turns, and the view never holds a live object. Each live object is typed by the
few attributes read of it (a `Protocol`), not ``Any``. Written turns never change, so their views are built once and kept; only the unwritten
tail (the streaming reply, a user turn waiting for its transcript) is rebuilt per snapshot.
Notices (errors, warnings, command output) are kept in a short bounded list and shown among the
turns.

With ``log_above`` (the live panel, whose front end prints each finished turn above itself) the
panel holds only what is in progress: the unwritten tail, and notices for ``NOTICE_SECONDS``
after they were said. Every value is kept at the resolution the panel shows (the clock, the
meters), so a snapshot of a quiet conversation equals the last one and costs no redraw.
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections import deque
from dataclasses import dataclass
from typing import Any, Protocol

from voicechat.effects import Turn
from voicechat.pricing import Spend
from voicechat.protocol.constants import known_not_to_reason
from voicechat.protocol.events import Usage
from voicechat.redact import SECRETS
from voicechat.ui.snapshot import CLOCK_MINUTES_FROM_S, Header, Snapshot, Stats, TurnView

MAX_NOTICES = 20
NOTICE_SECONDS = 8.0  # how long a notice stays on a panel that logs finished lines above itself
METER_STEP_DB = 2.5  # one cell of the panel's level meters (60 dB over 24 cells)
TURN_MODES = {"server": "server VAD", "semantic": "semantic VAD", "none": "push-to-talk"}


NOTHING_SPENT = Spend(Usage(), None)


@dataclass(frozen=True, slots=True)
class Status:
    """The conversation's live state at one instant, as plain values."""

    activity: str = "idle"
    muted: bool = False
    talking: bool = False  # the push-to-talk key is down
    assistant_speaking: bool = False  # a reply is audible and not paused
    mic_db: float | None = None  # None: no echo path (no meters)
    out_db: float | None = None
    spend: Spend = NOTHING_SPENT
    latency_ms: float | None = None
    underruns: int = 0  # the reply ran dry, or the device's stream under/overflowed (PortAudio's flags)


class TurnSource(Protocol):
    """The transcript as the view reads it: how many turns are written, and the turns from one on."""

    @property
    def written(self) -> int: ...
    def turns_from(self, start: int) -> list[tuple[Turn, bool]]: ...


class SessionState(TurnSource, Protocol):
    """What `read_status` reads of the session core."""

    @property
    def activity(self) -> Any: ...  # an Activity; its value is shown
    @property
    def muted(self) -> bool: ...
    @property
    def talking(self) -> bool: ...
    @property
    def audible_items(self) -> tuple[str, ...]: ...
    @property
    def paused(self) -> bool: ...
    @property
    def usage(self) -> Usage: ...
    @property
    def last_latency_ms(self) -> float | None: ...


class PlayerState(Protocol):
    """What `read_status` reads of the player: its ring's underrun count."""

    @property
    def buffer(self) -> Any: ...


class Levels(Protocol):
    """What `read_status` reads of the echo path: the meters' levels."""

    mic_db: float
    out_db: float


def read_status(
    session: SessionState, player: PlayerState, echo: Levels | None, spend: Spend, device_xruns: int = 0,
) -> Status:
    """The live state, read once, as plain values: the one place the panel touches live objects.

    ``device_xruns`` are the sound device's own under/overflows (what libasound reports as
    ``underrun occurred``), counted with the playback ring's underruns.
    """
    return Status(
        activity=session.activity.value, muted=session.muted, talking=session.talking,
        assistant_speaking=bool(session.audible_items) and not session.paused,
        mic_db=echo.mic_db if echo is not None else None, out_db=echo.out_db if echo is not None else None,
        spend=spend, latency_ms=session.last_latency_ms, underruns=player.buffer.underruns + device_xruns,
    )


class View:
    """The conversation as the panel sees it. ``snapshot()`` is cheap enough for 15 Hz."""

    def __init__(self, settings: Any, echo_mode: str) -> None:
        self.settings = settings
        self.header = Header(
            model=settings.model,
            voice=settings.voice,
            turn_mode=TURN_MODES.get(settings.vad, settings.vad),
            echo=echo_mode,
            reasoning=_reasoning(settings),
            profile=getattr(settings, "profile", None) or "",
            audio_format=_FORMAT_NAMES.get(getattr(settings, "audio_format", "pcm"), ""),
        )
        self.connection = "connecting"
        self._written: list[TurnView] = []
        self._notices: deque[tuple[int, TurnView, float]] = deque(maxlen=MAX_NOTICES)
        self.log_above = False  # finished turns are printed above the panel: it shows only the rest
        self.status: str | None = None
        self.expires_at: float | None = None  # wall-clock time the server session ends

    def notice(self, text: str) -> None:
        """A line of voicechat's own (an error, a warning, a command's answer) for the panel."""
        self._notices.append((len(self._written), TurnView(role="notice", text=SECRETS.scrub(text)),
                              time.monotonic()))

    def snapshot_idle(self) -> Snapshot:
        """Before there is a conversation: the header and any notices."""
        return Snapshot(header=self.header, turns=self._fresh_notices(), status=self.status)

    def _fresh_notices(self) -> tuple[TurnView, ...]:
        """The notices to show: all of them, or with ``log_above`` those not yet stale."""
        if not self.log_above:
            return tuple(view for _, view, _ in self._notices)
        stale = time.monotonic() - NOTICE_SECONDS
        return tuple(view for _, view, said in self._notices if said > stale)

    def snapshot(self, session: SessionState, player: PlayerState, echo: Levels | None, line: str = "", *,
                 spend: Spend | None = None, device_xruns: int = 0) -> Snapshot:
        """The panel now: the live state read once (`read_status`), then drawn from plain values.

        ``spend`` is the conversation's priced usage; without it the session's usage is priced here.
        """
        if spend is None:
            spend = Spend.of(self.settings.model, session.usage, self.settings.prices)
        return self.draw(read_status(session, player, echo, spend, device_xruns), session, line)

    def draw(self, status: Status, transcript: TurnSource, line: str = "") -> Snapshot:
        """The panel for a frozen `Status` and the transcript's turns."""
        written = transcript.written
        if written < len(self._written):  # cannot shrink; rebuild if it ever does
            self._written.clear()
        fresh = transcript.turns_from(len(self._written))  # everything not yet cached, built once
        newly_written = written - len(self._written)
        self._written.extend(TurnView.from_turn(turn) for turn, _ in fresh[:newly_written])
        tail = [TurnView.from_turn(turn, final=final) for turn, final in fresh[newly_written:]]
        seconds_left = None
        if self.expires_at is not None:
            seconds_left = _shown_seconds(max(0.0, self.expires_at - time.time()))
        return Snapshot(
            header=dataclasses.replace(self.header, connection=self.connection, seconds_left=seconds_left),
            turns=(*tail, *self._fresh_notices()) if self.log_above else self._merge(tail),
            activity=status.activity,
            muted=status.muted,
            ptt_talking=status.talking,
            user_speaking=status.activity == "user speaking",
            assistant_speaking=status.assistant_speaking,
            mic_dbfs=_level(status.mic_db) if status.mic_db is not None else None,
            output_dbfs=_level(status.out_db) if status.out_db is not None else None,
            stats=Stats.from_spend(status.spend, latency_ms=status.latency_ms, underruns=status.underruns),
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
    """Levels in steps of one meter cell: a steady level does not force a redraw."""
    return None if db <= -100 or math.isnan(db) else METER_STEP_DB * round(db / METER_STEP_DB)


def _shown_seconds(seconds: float) -> float:
    """Time left at the clock's resolution (see ``render._clock``): whole minutes above ten, else
    whole seconds, so the snapshot changes only when the clock does."""
    if seconds > CLOCK_MINUTES_FROM_S:
        return 60.0 * math.ceil(seconds / 60)
    return float(int(seconds))


_FORMAT_NAMES = {"pcmu": "G.711 μ-law 8 kHz", "pcma": "G.711 A-law 8 kHz"}  # pcm, the usual: not named


def _reasoning(settings: Any) -> str:
    """The effort the session asks for, or "" when none is (unset, or a model that does not reason)."""
    effort = getattr(settings, "reasoning", None)
    return effort if effort and not known_not_to_reason(settings.model.strip()) else ""
