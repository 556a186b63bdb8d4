"""Adaptive prebuffer target from measured arrival jitter (pure: times in, a target out).

For each response, delta ``k`` arrives at ``a_k`` carrying audio that starts ``c_k`` seconds
into the response. Its *lateness* is ``L_k = (a_k - a_0) - c_k``: how far arrival lags the
audio's own clock. Playback that starts when the earliest-arriving audio would have allowed
needs a cushion of ``r_k = L_k - min(L_j, j <= k)`` to play delta ``k`` without running dry, so
the prebuffer target is the largest ``r`` seen in the recent responses, plus a safety margin
(one device block, since the device takes audio a block at a time), within ``[floor, ceiling]``.

A server that streams faster than real time gives falling lateness and ``r == 0``: the target
stays at the floor and first audio is quick. Audio generated at real time over a jittery network
gives ``r`` of a few σ, which the target learns within the first reply. Before anything has been
learned (a connection's first response) the target is ``provisional_ms`` plus the longest delta
seen so far: a server generating at real time sends each piece once it is made, so a piece can
arrive up to a piece late on top of the network's jitter. A stream faster than real time fills
that cushion in a moment, so its first audio is still quick; a stream paced at real time starts
with a cushion that rides out σ = 30 ms of arrival jitter with pieces of up to 240 ms (the
target alone started at the floor and ran dry once or twice in every first reply of
``bench.device_cpu``, re-armed at the learned target after each gap). Old responses age out, so after a bad patch the target comes
back down.
"""

from __future__ import annotations

from collections import deque

from voicechat.audio.format import WIRE_RATE

PROVISIONAL_MS = 150.0  # the cushion of a connection's first response, before any arrivals were seen


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
        provisional_ms: float = PROVISIONAL_MS,
    ) -> None:
        if not 0 <= floor_ms <= ceiling_ms:
            raise ValueError(f"need 0 <= floor_ms <= ceiling_ms, got {floor_ms}, {ceiling_ms}")
        self.floor_ms = floor_ms
        self.ceiling_ms = ceiling_ms
        self.margin_ms = margin_ms
        self.rate = rate
        self.provisional_ms = provisional_ms
        self._peaks: deque[float] = deque(maxlen=history)  # worst cushion of recent responses (s)
        self._t0: float | None = None  # arrival of the current response's first delta
        self._content = 0  # wire samples of the current response before the next delta
        self._min_lateness = 0.0
        self._peak = 0.0  # worst cushion so far in the current response
        self._longest = 0.0  # the longest delta of the current response (s)

    def on_delta(self, now: float, samples: int) -> None:
        """A delta of ``samples`` wire samples arrived at ``now`` (seconds, monotonic)."""
        if self._t0 is None:
            self._t0 = now
            self._content = 0
            self._min_lateness = 0.0
            self._peak = 0.0
            self._longest = 0.0
        self._longest = max(self._longest, samples / self.rate)
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
        if self._t0 is not None:
            worst = max(worst, self._peak)
            if not self._peaks:  # the first response: no arrivals learned from yet
                # A server generating at real time sends each piece once it is made: a piece
                # can arrive a whole piece late, on top of the network's jitter.
                worst = max(worst, (self.provisional_ms - self.margin_ms) / 1000 + self._longest)
        if worst <= 0:
            return self.floor_ms
        return min(self.ceiling_ms, max(self.floor_ms, worst * 1000 + self.margin_ms))
