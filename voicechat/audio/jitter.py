"""Adaptive prebuffer target from measured arrival jitter (pure: times in, a target out).

For each response, delta ``k`` arrives at ``a_k`` carrying audio that starts ``c_k`` seconds
into the response. Its *lateness* is ``L_k = (a_k - a_0) - c_k``: how far arrival lags the
audio's own clock. Playback that starts when the earliest-arriving audio would have allowed
needs a cushion of ``r_k = L_k - min(L_j, j <= k)`` to play delta ``k`` without running dry, so
the prebuffer target is the largest ``r`` seen in the recent responses, plus a safety margin
(one device block, since the device takes audio a block at a time), within ``[floor, ceiling]``.

A server that streams faster than real time gives falling lateness and ``r == 0``: the target
stays at the floor and first audio is quick. Audio generated at real time over a jittery network
gives ``r`` of a few σ, which the target learns within the first reply (an underrun re-arms the
buffer at the raised target, so even the first reply recovers with one gap, not a stutter; and
`voicechat.audio.playback.PlaybackBuffer` rebuilds a short queue in the speech's pauses, so most
of those gaps fall where nobody hears a break).
Old responses age out, so after a bad patch the target comes back down.

The first reply has no history, and its first deltas say too little: at real time behind a
jittery network the buffer started on 60 ms and ran dry within its first words (one first reply
in three, in simulation at σ = 30 ms). So until the current response's audio has come faster
than real time (``FAST_RATE`` its own duration per second, and at least ``first_ms`` of it: a
burst after one late delta is not a fast server), and while no earlier response has shown how
much cushion it needed, the target is at least ``first_ms``. A server that streams ahead of
playback, as the real service does, gets there within a few deltas.
"""

from __future__ import annotations

from collections import deque

from voicechat.audio.format import WIRE_RATE

FAST_RATE = 1.5  # audio arriving at this many times real time (or faster) needs no first-reply prior


class JitterEstimator:
    """Learns the prebuffer a connection needs from the arrival times of audio deltas."""

    def __init__(
        self,
        *,
        floor_ms: float = 60.0,
        ceiling_ms: float = 400.0,
        margin_ms: float = 20.0,
        history: int = 8,
        rate: int = WIRE_RATE,
        first_ms: float = 160.0,
    ) -> None:
        if not 0 <= floor_ms <= ceiling_ms:
            raise ValueError(f"need 0 <= floor_ms <= ceiling_ms, got {floor_ms}, {ceiling_ms}")
        self.floor_ms = floor_ms
        self.ceiling_ms = ceiling_ms
        self.margin_ms = margin_ms
        self.rate = rate
        self.first_ms = max(floor_ms, min(ceiling_ms, first_ms))  # the target before anything is known
        self._fast = False  # the current response's audio has come faster than real time
        self._peaks: deque[float] = deque(maxlen=history)  # worst cushion of recent responses (s)
        self._t0: float | None = None  # arrival of the current response's first delta
        self._content = 0  # wire samples of the current response before the next delta
        self._min_lateness = 0.0
        self._peak = 0.0  # worst cushion so far in the current response

    def on_delta(self, now: float, samples: int) -> None:
        """A delta of ``samples`` wire samples arrived at ``now`` (seconds, monotonic)."""
        if self._t0 is None:
            self._t0 = now
            self._content = 0
            self._min_lateness = 0.0
            self._peak = 0.0
            self._fast = False
        elif self._content >= max(FAST_RATE * (now - self._t0), self.first_ms / 1000) * self.rate:
            self._fast = True  # audio that came before this delta (a burst after one late delta is not enough)
        lateness = (now - self._t0) - self._content / self.rate
        self._min_lateness = min(self._min_lateness, lateness)
        self._peak = max(self._peak, lateness - self._min_lateness)
        self._content += samples

    def end_response(self) -> None:
        """The current response's audio is complete (or was flushed): keep its worst cushion."""
        if self._t0 is not None:
            self._peaks.append(self._peak)
        self._t0 = None

    @property
    def target_ms(self) -> float:
        """The prebuffer the recent arrivals call for, in milliseconds."""
        worst = max(self._peaks, default=0.0)
        floor = self.floor_ms
        if self._t0 is not None:
            worst = max(worst, self._peak)
            if not self._peaks and not self._fast:
                floor = self.first_ms
        if worst <= 0:
            return floor
        return min(self.ceiling_ms, max(floor, worst * 1000 + self.margin_ms))
