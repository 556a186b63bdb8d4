"""When a conversation ends by itself: a file ran out and the reply was heard, or a limit was hit.

A microphone never runs out, but a ``--input-file`` does: once it has (and, with ``--vad none``
and no push-to-talk, its one turn is committed), the conversation ends when the server's
end-of-turn silence plus a margin has passed quietly, nothing is in flight and the speaker is
done — or, at the latest, ``MAX_TAIL_MS`` after the file, counted while a session is up (while
reconnecting, the link's success or failure decides). A ``--max-cost``/``--max-minutes``
limit mutes the microphone (no new turn, no new cost) and ends the conversation once the reply
being spoken is heard, or after a grace period (``voicechat.budget``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from voicechat import effects as fx
from voicechat.audio.player import Player
from voicechat.budget import Budget
from voicechat.config import Settings
from voicechat.session import Session

TAIL_MARGIN_MS = 700  # quiet audio after the server's end-of-turn silence before we give up
MAX_TAIL_MS = 60_000  # a file conversation ends at the latest this long after the file


class Ending:
    """Asked after every audio block whether the conversation is over."""

    def __init__(self, settings: Settings, session: Session, player: Player, audio: Any, budget: Budget | None, *,
                 dispatch: Callable[[list[fx.Effect]], None], notice: Callable[[str, str], None],
                 end_turn: Callable[[], None], clock: Callable[[], float], monotonic: Callable[[], float]) -> None:
        self._settings = settings
        self._session = session
        self._player = player
        self._audio = audio  # its input_done and tail_ms
        self._budget = budget
        self._dispatch = dispatch
        self._notice = notice
        self._end_turn = end_turn  # hand on the microphone audio held back
        self._clock = clock
        self._monotonic = monotonic
        self._committed_file = False

    def due(self) -> bool:
        """True when the conversation should end now."""
        return self._over_budget() or self._file_done()

    def _file_done(self) -> bool:
        if not self._audio.input_done:
            return False
        s = self._session
        if self._settings.vad == "none" and not s.push_to_talk_mode and not self._committed_file:
            self._committed_file = True
            self._end_turn()
            self._dispatch(s.commit(self._clock()))
        if not s.ready:
            # No session (reconnecting): the link decides the end, a new session or the last
            # try's error and its status. The tail is audio time, and a fast file run spends
            # MAX_TAIL_MS of it in a few seconds: giving up here ended with 0 after every
            # reconnect had failed.
            return False
        tail = self._audio.tail_ms
        quiet_enough = tail >= self._settings.turn_silence_ms + TAIL_MARGIN_MS
        if quiet_enough and s.ready and not s.busy and self._player.drained:
            return True
        if tail >= MAX_TAIL_MS:
            self._notice("warning", "stopped waiting for the server after the input file ended")
            return True
        return False

    def _over_budget(self) -> bool:
        """At a --max-cost/--max-minutes limit: mute the mic, end once the reply is heard."""
        budget = self._budget
        if budget is None or not budget.active:
            return False
        now = self._monotonic()
        self._dispatch(budget.check(now))
        if budget.reached is None:
            return False
        self._session.mute(True)  # no new turn, no new cost
        quiet = self._player.drained and self._session.active_response is None
        return budget.should_stop(now, quiet=quiet)
