"""The echo reference: what the speaker was handed, copied in the output callback and read on the
loop in step with the microphone.

The reader is anchored once, a block of slack behind the newest audio handed to the speaker,
and from then on it moves with the microphone: one block of reference per captured block. It
does not wait for the writer. An output callback that runs late (a busy machine) moves nothing
the listener hears: the device's buffer covers it, and the speaker plays on in time. The reader
follows only what really moves the speaker: a *break* in its timeline, which the output
callback's DAC time shows on a callback PortAudio flags as an underrun. When the device ran dry,
the blocks after it play later by the gap, and the reader puts that much silence into the
reference at that frame (the speaker played nothing there). When the device recovered by
dropping audio, the blocks after it play earlier, and the reader skips that much.

Why not simply wait for the writer when it is late: each wait slid the reference a block later
against the echo for good. In a room whose echo comes soon after the speaker's writes (the
speaker is the microphone), two slides left the echo ahead of its reference for the rest of the
call, and no canceller can take out an echo that comes before its reference.
"""

from __future__ import annotations

import logging
import threading
from collections import deque

import numpy as np
import numpy.typing as npt

log = logging.getLogger(__name__)

STARVED_LIMIT = 10  # reads in a row the speaker had not reached before the reader re-anchors (200 ms of blocks)
# A DAC-time step this far from the block's own length, on a callback flagged as an underrun,
# is a break in the speaker's timeline. Without an underrun the steps are steady to 0.05 ms here.
BREAK_MIN_S = 0.002
BREAKS_KEPT = 64  # breaks written but not yet reached by the reader (a bounded queue)


class RefTap:
    """Single producer (the output callback: one copy, one DAC-time check, a counter bump),
    single consumer (the loop). A reader that falls more than the capacity behind skips the
    lost audio."""

    def __init__(
        self, capacity_frames: int, max_lag_frames: int | None = None, slack_blocks: int = 1, rate: int = 0
    ) -> None:
        self._ring = np.zeros(capacity_frames, dtype=np.int16)
        self._capacity = capacity_frames
        self._rate = rate  # frames per second; 0: the writes carry no DAC time to follow
        self._written = 0  # frames ever written (only the producer changes it)
        self._next_dac = 0.0  # when the next block plays if the speaker runs on unbroken (producer only)
        # (frame, shift): from that frame on the speaker plays `shift` frames later (earlier if < 0).
        self._breaks: deque[tuple[int, int]] = deque(maxlen=BREAKS_KEPT)
        self._read = 0
        self._owed = 0  # silent frames the reader still owes to a break it reached
        self._started = False
        self._starved = 0  # reads in a row the writer had not reached
        # How far the reader may fall behind the writer before it jumps forward (default: 1/20 of
        # the ring, 100 ms for the devices' 2 s ring). Reads come one per captured block, so a
        # stalled or late-starting capture stream, or two device clocks that drift apart, would
        # otherwise leave the reference behind the echo for good: behind, echo handling hears
        # the speaker before it knows what the speaker played, and lets it through.
        self._max_lag = max_lag_frames if max_lag_frames is not None else capacity_frames // 20
        # Blocks the reader starts behind the newest one, beyond the one it reads: the reference
        # then leads its echo by the devices' latency less this slack. One: with two, in the
        # worst room the lead was 0-25 ms, and at 0 the canceller lost the echo for a whole call.
        self._slack = slack_blocks
        self.resyncs = 0
        self.breaks = 0  # breaks in the speaker's timeline the reader has followed
        self.holes = 0  # reads that reached frames the speaker had not been handed yet
        self._lock = threading.Lock()

    def write(self, block: npt.NDArray[np.int16], dac_time: float = 0.0, underflow: bool = False) -> None:
        """In the output callback: ``block`` as handed to the device, the time PortAudio says its
        first frame reaches the DAC (0: not known), and whether PortAudio flagged an underrun.

        Only a DAC-time step on a flagged callback is a break. Without the flag, steps of 2-5 ms
        came and went on a busy machine while the echo stayed where it was (following them
        moved the reference off it by as much)."""
        n = min(block.shape[0], self._capacity)
        start = self._written % self._capacity
        first = min(n, self._capacity - start)
        self._ring[start : start + first] = block[:first]
        if n > first:
            self._ring[: n - first] = block[first:n]
        shift = 0
        if dac_time > 0.0 and self._rate:
            if underflow and self._next_dac > 0.0 and abs(dac_time - self._next_dac) > BREAK_MIN_S:
                shift = round((dac_time - self._next_dac) * self._rate)
            self._next_dac = dac_time + n / self._rate
        with self._lock:
            if shift:
                self._breaks.append((self._written, shift))
            self._written += n

    @property
    def written(self) -> int:
        """Frames handed to the speaker so far: the capture callback marks its block with it."""
        return self._written

    def take(self, n: int, mark: int | None = None) -> npt.NDArray[np.int16]:
        """The next ``n`` frames in step with the microphone; zeros where the speaker has not
        been handed them yet, or played nothing.

        The first call after the speaker starts begins ``slack_blocks`` before the newest block
        handed to it, so the reference leads the echo of it in the microphone by the devices'
        latency less that slack (echo handling looks back over a window; it cannot look ahead).
        The reader re-anchors the same way when the microphone has fallen behind, or when the
        speaker has not reached it for `STARVED_LIMIT` reads in a row (its clock runs slower).

        ``mark``: `written` when the microphone block was captured. How far the reader is behind
        is judged against it, not against now: a loop that drains the microphone late (a busy
        machine) has not fallen behind the speaker.
        """
        with self._lock:
            written = self._written
        at = written if mark is None else min(mark, written)
        lead = n * (1 + self._slack)
        if not self._started:
            if at <= 0:
                return np.zeros(n, dtype=np.int16)  # the speaker has not started
            self._started = True
            self._anchor(at - lead)
        elif at - self._read > lead + self._max_lag or self._starved >= STARVED_LIMIT:
            # The microphone fell behind the speaker, or the speaker stopped reaching the reader.
            log.debug("echo reference resynchronised: %d frames from the read to the speaker's newest, "
                      "%d reads in a row not yet written", at - self._read, self._starved)
            self._anchor(at - lead)
            self.resyncs += 1
        # Keep a block of slack from the writer so it never overwrites what is being copied.
        self._read = max(self._read, written - self._capacity + 2 * n)
        out = np.zeros(n, dtype=np.int16)
        pos = 0
        while pos < n:
            if self._owed:  # the speaker played nothing here
                k = min(self._owed, n - pos)
                self._owed -= k
                pos += k
                continue
            at_break = self._breaks[0][0] if self._breaks else None
            if at_break is not None and at_break <= self._read:
                shift = self._breaks.popleft()[1]
                log.debug("echo reference: the speaker's timeline broke by %+.1f ms", 1000 * shift / max(1, self._rate))
                self.breaks += 1
                if shift > 0:
                    self._owed = shift
                else:
                    self._read -= shift
                continue
            k = n - pos if at_break is None else min(n - pos, at_break - self._read)
            self._copy(out[pos : pos + k], min(k, max(0, written - self._read)))
            self._read += k
            pos += k
        hole = self._read > written
        self.holes += hole
        self._starved = self._starved + 1 if hole else 0
        return out

    def _anchor(self, at: int) -> None:
        """Read from ``at`` on, with the breaks before it already behind the reader."""
        self._read = max(0, at)
        self._owed = 0
        self._starved = 0
        while self._breaks and self._breaks[0][0] < self._read:
            self._breaks.popleft()

    def _copy(self, out: npt.NDArray[np.int16], count: int) -> None:
        """The first ``count`` frames of ``out`` from the ring at the read position."""
        if count <= 0:
            return
        start = self._read % self._capacity
        first = min(count, self._capacity - start)
        out[:first] = self._ring[start : start + first]
        if count > first:
            out[first:count] = self._ring[: count - first]
