"""The jitter-buffered playback ring and the record of what the listener actually heard.

This module owns the hand-off of assistant audio from the event loop to the speaker.
`PlaybackBuffer` is a preallocated int16 mono ring at the device rate: the loop writes decoded,
resampled deltas into it, and the PortAudio callback thread reads fixed-size blocks out of it with
one short lock acquisition (index arithmetic and at most two slice copies). It holds playback
until a prebuffer target is queued, plays out a completed response below that target, writes
silence and counts it when it runs dry, drops the newest audio beyond its capacity and counts it,
and on barge-in fades out within a few milliseconds. `voicechat.audio.playout.PlayoutTracker`
maps its play positions back to per-item wire samples, so a truncate can say how much of an
assistant item was really played.

Positions. Every frame written into the ring gets a *play position*: the frames in the ring are
the play positions ``[consumed_total, write_position)``, the next frame handed to the device is
``consumed_total`` and the next frame written is ``write_position``. A flush discards frames from
the end of the ring, so the next write reuses the discarded positions; hence
``write_position == written_total - flushed_frames_total`` (equal to ``written_total`` until the
first flush that discards audio), and the tracker works in play positions.
"""

from __future__ import annotations

import threading

import numpy as np
import numpy.typing as npt

from voicechat.audio.format import ms_to_samples, peak_of_dbfs

STRETCH_QUIET_DBFS = -40.0  # a pause: every sample around the play position below this peak
STRETCH_BACK_MS = 5  # played just before the position
STRETCH_AHEAD_MS = 10  # queued just after it
STRETCH_MAX_MS = 300  # silence added before the queue reaches the cushion again
_QUIET_PEAK = peak_of_dbfs(STRETCH_QUIET_DBFS)


class PlaybackBuffer:
    """Single-producer (event loop), single-consumer (audio thread) int16 mono playback ring.

    Policies:

    * Prebuffer: while not playing, `read_into` outputs silence and consumes nothing until at
      least ``prebuffer`` frames are queued (or the queued audio is released by `mark_end` or by
      a flush's fade-out).
    * End mark: `mark_end` releases the audio queued so far: it plays even below the prebuffer
      target, and running dry at its end is a normal drain, not an underrun. Audio written after
      the mark is not covered by it (a later write "clears" the mark for the new audio): at the
      mark's position, playback continues seamlessly into the new audio only if at least the
      prebuffer target of it is already queued; otherwise it stops there and the new audio waits
      for the target like a fresh start.
    * Underrun: running dry while playing, past any end mark, counts one underrun, pads the
      block with silence and re-arms the prebuffer: playback resumes only once the target is
      queued again (or the end is marked), so a slow network gives one longer gap rather than
      many short stutters. `underrun_frames` counts the silence of the whole gap, from running
      dry until audio resumes, the end is marked, or a flush.
    * Cushion (`set_cushion`): while a response plays with less than the cushion queued and more
      audio to come (no end mark over it), a pause in the speech is made longer: when the last
      ``STRETCH_BACK_MS`` played and the next ``STRETCH_AHEAD_MS`` queued are all below
      ``STRETCH_QUIET_DBFS``, the device gets a block of silence and nothing is consumed. A
      generator that sends audio at real time over a jittery network leaves the queue short; the
      gap it would have caused mid-word (an underrun) is taken in a pause instead, where a
      listener does not hear it as a break. At most ``STRETCH_MAX_MS`` is added before the
      queue has reached the cushion again (a server that stopped sending still runs dry, and
      counts its underrun). Only a pause after the reply's first sound is lengthened: its
      lead-in silence plays as it came, so first sound is never later. Positions do not move in
      the added silence, so what was heard of each item stays exact; `stretched_frames` counts it.
    * Overflow: a write that does not fit keeps the frames that fit and drops the newest rest,
      counted in `overflow_frames`.
    * Pause (a local barge-in the server has not confirmed yet): like a flush, the next
      ``fade_frames`` are faded out, but the rest stays queued and the device gets silence
      without consuming anything (no underruns are counted). `resume` fades the held audio back
      in where it stopped; a flush ends the pause and drops the held audio.
    * Flush (barge-in): if audio is playing, the next ``fade_frames`` queued frames are kept
      and faded out, everything after them is dropped; if nothing is playing (still
      prebuffering, or stopped) everything queued is dropped, since nothing is sounding that
      needs a fade. The kept fade is released like an end mark, and the prebuffer is re-armed
      for whatever is written next.

    Thread safety: `write`, `mark_end`, `flush` and `set_prebuffer` are called from one thread
    (the event loop); `read_into` from one other thread (the audio callback). The counters are
    plain ints, each safe to read from the loop without the lock (a value may be one block old).
    """

    def __init__(self, capacity_frames: int, prebuffer_frames: int, fade_frames: int, rate: int = 24_000) -> None:
        if capacity_frames <= 0:
            raise ValueError(f"capacity_frames must be positive, got {capacity_frames}")
        if fade_frames < 0:
            raise ValueError(f"fade_frames must not be negative, got {fade_frames}")
        self._ring = np.zeros(capacity_frames, dtype=np.int16)
        self._capacity = capacity_frames
        self._prebuffer = self._clamp_prebuffer(prebuffer_frames)
        self._fade_frames = fade_frames
        self._lock = threading.Lock()
        self._head = 0  # play position of the next frame for the device (== consumed_total)
        self._tail = 0  # play position of the next frame written (== write_position)
        self._release_end = 0  # frames before this play position play regardless of prebuffer
        self._playing = False
        self._in_underrun = False
        self._pause_at: int | None = None  # while paused: play position where output stops
        self._flushed_frames_total = 0
        self._overflow_frames = 0
        self._underruns = 0
        self._underrun_frames = 0
        self._cushion = 0  # frames a playing response should keep queued (0: never stretch)
        self._back = max(1, ms_to_samples(STRETCH_BACK_MS, rate))
        self._ahead = max(1, ms_to_samples(STRETCH_AHEAD_MS, rate))
        self._stretch_max = ms_to_samples(STRETCH_MAX_MS, rate)
        self._stretch_run = 0  # silence added since the queue last held the cushion
        self._stretched_frames = 0
        self._sounded_from: int | None = None  # play position of this reply's first sound

    # ---- loop side -------------------------------------------------------------------------

    def write(self, samples: npt.NDArray[np.int16]) -> int:
        """Append int16 mono frames; return how many were accepted (the rest overflowed).

        Raises:
            ValueError: ``samples`` is not a 1-D int16 array.
        """
        x = np.asarray(samples)
        if x.dtype != np.int16 or x.ndim != 1:
            raise ValueError(f"expected 1-D int16 samples, got {x.dtype} with shape {x.shape}")
        n = x.shape[0]
        first_loud = n
        if self._sounded_from is None:  # only the loop changes it: read outside the lock
            loud = np.flatnonzero(np.abs(x.astype(np.int32)) >= _QUIET_PEAK)
            first_loud = int(loud[0]) if loud.size else n
        with self._lock:
            tail = self._tail
            take = min(n, self._capacity - (tail - self._head))
            if take > 0:
                self._copy_in(tail, x[:take])
                self._tail = tail + take
                if self._sounded_from is None and first_loud < take:
                    self._sounded_from = tail + first_loud
            self._overflow_frames += n - take
        return take

    def mark_end(self) -> None:
        """Release everything queued so far: play it out even below the prebuffer target."""
        with self._lock:
            self._release_end = self._tail
            self._in_underrun = False
            self._sounded_from = None  # what is written next is another reply

    def flush(self) -> int:
        """Barge-in: fade out the next ``fade_frames`` frames, drop the rest; return frames dropped.

        The kept frames are multiplied by ``(k - i) / (k + 1)`` for ``i`` in ``0..k-1`` (``k``
        frames kept): a straight line from full level at the last frame already played down to
        zero at the first silent frame. After they play the buffer is empty and the prebuffer is
        re-armed. When nothing is playing, nothing is kept. The position where the kept fade ends
        is `write_position` right after this call (pass it to `PlayoutTracker.on_flush`).
        """
        with self._lock:
            head = self._head
            count = self._tail - head
            if self._pause_at is not None:
                keep = max(0, self._pause_at - head)  # the pause's own fade is still playing
                self._pause_at = None
            else:
                keep = min(self._fade_frames, count) if self._playing else 0
                if keep:
                    self._fade_out(head, keep)
            dropped = count - keep
            self._tail = head + keep
            self._release_end = self._tail
            self._sounded_from = None
            self._flushed_frames_total += dropped
            self._in_underrun = False
            if not keep:
                self._playing = False
        return dropped

    def pause(self) -> None:
        """Stop output within ``fade_frames`` (faded), keeping the rest queued for `resume`."""
        with self._lock:
            if self._pause_at is not None:
                return
            head = self._head
            keep = min(self._fade_frames, self._tail - head) if self._playing else 0
            if keep:
                self._fade_out(head, keep)
            self._pause_at = head + keep

    def resume(self) -> None:
        """Continue a paused stream where it stopped, fading the first ``fade_frames`` back in."""
        with self._lock:
            if self._pause_at is None:
                return
            self._pause_at = None
            head = self._head
            frames = min(self._fade_frames, self._tail - head)
            if frames:
                self._fade_in(head, frames)

    @property
    def paused(self) -> bool:
        return self._pause_at is not None

    def set_prebuffer(self, frames: int) -> None:
        """Change the prebuffer target (clamped to ``[0, capacity]``); applies from the next start."""
        with self._lock:
            self._prebuffer = self._clamp_prebuffer(frames)

    def set_cushion(self, frames: int) -> None:
        """The queue a playing response should keep (clamped to ``[0, capacity]``): below it,
        pauses are made longer (see the class notes). 0 turns that off."""
        with self._lock:
            self._cushion = self._clamp_prebuffer(frames)

    # ---- audio-thread side -----------------------------------------------------------------

    def read_into(self, out: npt.NDArray[np.int16]) -> int:
        """Fill ``out`` (1-D int16) completely; return the number of real audio frames in it.

        Real audio comes first, then zeros. Nothing is allocated beyond numpy views.
        """
        n = out.shape[0]
        if n == 0:
            return 0
        ring = self._ring
        with self._lock:
            head = self._head
            if self._stretch(head, n):
                out[:] = 0
                return 0
            take = min(n, self._available(head))
            if take:
                start = head % self._capacity
                first = min(take, self._capacity - start)
                out[:first] = ring[start : start + first]
                if take > first:
                    out[first:take] = ring[: take - first]
                head += take
                self._head = head
            self._settle(n, take, head)
        if take < n:
            out[take:] = 0
        return take

    def _available(self, head: int) -> int:
        """Frames the device may take now (under the lock)."""
        if self._pause_at is not None:
            return max(0, self._pause_at - head)
        count = self._tail - head
        released = self._release_end - head
        if released > 0:
            after = count - released
            return count if after >= max(self._prebuffer, 1) else released
        if self._playing or (count > 0 and count >= self._prebuffer):
            return count
        return 0

    def _settle(self, n: int, take: int, head: int) -> None:
        """Update play state and underrun counters after handing ``take`` of ``n`` frames."""
        if self._pause_at is not None and head >= self._pause_at:
            self._playing = False  # held, not dry: no underrun, and resume re-checks the target
            self._in_underrun = False
            return
        if take == n:
            self._playing = head != self._release_end
            self._in_underrun = False
            return
        if head > self._release_end and (take or self._playing):
            self._underruns += 1
            self._in_underrun = True
        elif take:
            self._in_underrun = False
        if self._in_underrun:
            self._underrun_frames += n - take
        self._playing = False

    def _stretch(self, head: int, n: int) -> bool:
        """Whether this block lengthens a pause instead of playing on (under the lock)."""
        queued = self._tail - head
        if queued >= self._cushion or not self._playing:
            self._stretch_run = 0
            return False
        sounded = self._sounded_from is not None and head > self._sounded_from  # never a reply's lead-in
        if (not sounded or self._pause_at is not None or head < self._release_end
                or self._stretch_run >= self._stretch_max
                or queued < self._ahead or head < self._back or queued + self._back > self._capacity
                or not self._quiet(head - self._back, head + self._ahead)):
            return False
        self._stretch_run += n
        self._stretched_frames += n
        return True

    # ---- ring helpers (called under the lock) ----------------------------------------------

    def _quiet(self, start: int, end: int) -> bool:
        """Every frame at play positions ``[start, end)`` below the pause level (no allocation)."""
        a, b = start % self._capacity, (end - 1) % self._capacity + 1
        parts = (self._ring[a:b],) if a < b else (self._ring[a:], self._ring[:b])
        return all(int(p.max()) < _QUIET_PEAK and int(p.min()) > -_QUIET_PEAK for p in parts if p.size)

    def _copy_in(self, position: int, x: npt.NDArray[np.int16]) -> None:
        start = position % self._capacity
        first = min(x.shape[0], self._capacity - start)
        self._ring[start : start + first] = x[:first]
        if x.shape[0] > first:
            self._ring[: x.shape[0] - first] = x[first:]

    def _fade_out(self, position: int, frames: int) -> None:
        self._scale(position, np.arange(frames, 0, -1, dtype=np.float32) / np.float32(frames + 1))

    def _fade_in(self, position: int, frames: int) -> None:
        self._scale(position, np.arange(1, frames + 1, dtype=np.float32) / np.float32(frames + 1))

    def _scale(self, position: int, ramp: npt.NDArray[np.float32]) -> None:
        """Multiply the ring's frames from ``position`` on by ``ramp`` (wrapping at the end)."""
        frames = ramp.shape[0]
        start = position % self._capacity
        first = min(frames, self._capacity - start)
        head_part = self._ring[start : start + first]
        head_part[:] = np.rint(head_part * ramp[:first])
        if frames > first:
            wrap_part = self._ring[: frames - first]
            wrap_part[:] = np.rint(wrap_part * ramp[first:])

    def _clamp_prebuffer(self, frames: int) -> int:
        return max(0, min(int(frames), self._capacity))

    # ---- read-only state -------------------------------------------------------------------

    @property
    def capacity(self) -> int:
        """Ring size in frames."""
        return self._capacity

    @property
    def prebuffer(self) -> int:
        """Current prebuffer target in frames."""
        return self._prebuffer

    @property
    def fade_frames(self) -> int:
        """Length of the barge-in fade-out in frames."""
        return self._fade_frames

    @property
    def written_total(self) -> int:
        """Frames accepted by `write` since creation (every flushed frame was once written)."""
        return self._tail + self._flushed_frames_total

    @property
    def consumed_total(self) -> int:
        """Frames of real audio (faded ones included, silence excluded) handed to the device."""
        return self._head

    @property
    def flushed_frames_total(self) -> int:
        """Frames discarded by `flush` since creation (the faded frames it keeps are not counted)."""
        return self._flushed_frames_total

    @property
    def write_position(self) -> int:
        """Play position of the next frame written: ``written_total - flushed_frames_total``."""
        return self._tail

    @property
    def queued(self) -> int:
        """Frames in the ring awaiting the device: written, not yet consumed, not discarded.

        ``written_total == consumed_total + queued + flushed_frames_total`` always holds.
        """
        return self._tail - self._head

    @property
    def overflow_frames(self) -> int:
        """Frames dropped by `write` because the ring was full."""
        return self._overflow_frames

    @property
    def underruns(self) -> int:
        """Times the ring ran dry while playing, past any end mark."""
        return self._underruns

    @property
    def stretched_frames(self) -> int:
        """Silence frames added to pauses to rebuild the cushion (not underruns)."""
        return self._stretched_frames

    @property
    def underrun_frames(self) -> int:
        """Silence frames output during underrun gaps."""
        return self._underrun_frames

    @property
    def active(self) -> bool:
        """Audio is queued or playing: the speaker is (about to be) sounding."""
        return self._tail > self._head or self._playing

    @property
    def playing(self) -> bool:
        """True while the device is being handed real audio with more to follow in this stream."""
        return self._playing
