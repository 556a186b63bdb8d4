"""The speaker as the session sees it: which replies are audible, barge-in, and the local pause.

A barge-in (the server heard speech, a typed turn, the push-to-talk key, ``/interrupt``) flushes
what is audible, remembers the response it talked over (so its late deltas and calls are
ignored) and cancels it only when the server will not cancel by itself. A local onset (the
microphone heard the user before the server did) only *pauses* the speaker: the server's
``speech_started`` turns the pause into a barge-in; if none comes within ``LOCAL_ONSET_WAIT_S``
(a cough, a door) the reply plays on and the onset counts as false. After a flush the player
reports the samples each item actually played, and the reply is cut at that point
(``conversation.item.truncate``); the cutting itself is the transcript's (``cut`` is handed in).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Mapping

from voicechat import effects as fx
from voicechat.protocol import client as cmd
from voicechat.protocol.constants import WIRE_RATE

LOCAL_ONSET_WAIT_S = 1.5  # a paused reply plays on if the server hears no speech by then
MAX_REMEMBERED = 256  # interrupted response ids kept for late events


class Speaker:
    """Audible replies, the responses talked over, and a pending local-onset pause."""

    def __init__(self, next_id: Callable[[], str], cut: Callable[[str, int], int | None]) -> None:
        self._next_id = next_id
        self._cut = cut  # cut an item to the samples played; the samples heard, or None
        self.interrupted: deque[str] = deque(maxlen=MAX_REMEMBERED)  # response ids: outlive connections
        self.audible: list[str] = []  # assistant items whose audio may still be unplayed
        self._paused_at: float | None = None
        self.local_onsets = 0
        self.false_onsets = 0

    def reset(self) -> None:
        """A new server session: nothing of the old one is audible or paused any more."""
        self.audible.clear()
        self._paused_at = None

    @property
    def paused(self) -> bool:
        return self._paused_at is not None

    def is_audible(self, item_id: str) -> bool:
        return item_id in self.audible

    def playing(self, item_id: str) -> None:
        """Audio of ``item_id`` went to the player."""
        if item_id not in self.audible:
            self.audible.append(item_id)

    def barge_in(self, reason: str, active_response: str | None, *, cancel: bool) -> list[fx.Effect]:
        """Stop the reply: lift a pause, remember the response, cancel it if asked, flush the speaker."""
        out: list[fx.Effect] = []
        if self._paused_at is not None:
            self._paused_at = None  # a flush ends the pause; with nothing to flush, lift it
            if not self.audible:
                out.append(fx.Resume())
        if active_response is not None:
            self.interrupted.append(active_response)
            if cancel:
                out.append(fx.Send(cmd.response_cancel(event_id=self._next_id())))
        if self.audible:
            out.append(fx.Flush(reason, tuple(self.audible)))
        return out

    def local_onset(self, now: float) -> list[fx.Effect]:
        """Pause the speaker for a local onset (the caller checked the session may)."""
        if not self.audible or self._paused_at is not None:
            return []
        self._paused_at = now
        self.local_onsets += 1
        return [fx.Pause("local onset")]

    def tick(self, now: float) -> list[fx.Effect]:
        """End a pause the server never confirmed, or one with nothing left to hold."""
        if self._paused_at is None or (self.audible and now - self._paused_at < LOCAL_ONSET_WAIT_S):
            return []
        self._paused_at = None
        if self.audible:
            self.false_onsets += 1
        return [fx.Resume()]

    def flushed(self, played: Mapping[str, int]) -> list[fx.Effect]:
        """After a ``Flush``: truncate each reply cut short at the wire samples it played."""
        out: list[fx.Effect] = []
        for item_id, played_samples in played.items():
            heard = self._cut(item_id, played_samples)
            if heard is not None:
                out.append(fx.Send(cmd.item_truncate(item_id, heard * 1000 // WIRE_RATE, event_id=self._next_id())))
        self.audible = [i for i in self.audible if i not in played]
        return out

    def drained(self) -> None:
        """The speaker played everything queued."""
        self.audible.clear()
