"""Keeping the assistant's own voice out of the microphone, and noticing the user talk over it.

Loop-side and pure apart from the optional canceller: each captured block is processed with the
block of speaker output handed to the device over the same stretch of time (the *reference*,
from `RefTap`), and comes out as the audio to send. Modes (``--echo``):

* ``off``: the microphone goes out untouched (headphones).
* ``gate``: a playback-relative energy gate. While the speaker is active, a block passes only if
  it is louder than the loudest recent reference block times the learned echo-path gain plus a
  margin; otherwise silence is sent in its place (the server's clock keeps running, its VAD hears
  nothing). A real barge-in is louder than the echo and gets through; once open, the gate holds
  for a short hangover so words are not chopped.
* ``aec`` (what ``auto`` picks): acoustic echo cancellation (`voicechat.audio.aec`), then a
  residual-echo suppressor (`_Suppressor`) that decides block by block whether the canceller's
  output is the user or echo it left; the canceller's output is what is sent, never the raw
  microphone unless the echo provably cannot be in it. Decisions take three blocks, and while
  the speaker plays the output runs two blocks late so those blocks go out too.
* ``half-duplex``: the microphone is silenced while the assistant is audible and for a short tail
  after; the user interrupts with a key or a typed line instead.

Every mode also runs local onset detection: when near-end speech has passed for ``onset_ms``
while the assistant is audible, ``on_onset`` is called so the app can pause the speaker at once,
without waiting for the server's VAD and a network round trip.
"""

from __future__ import annotations

import itertools
import math
import threading
from collections import deque
from collections.abc import Callable
from typing import Protocol

import numpy as np
import numpy.typing as npt

from voicechat.audio.format import SILENCE_DBFS, rms_dbfs

SPEAKER_QUIET_DB = -80.0  # reference blocks below this count as a silent speaker
LEARN_REF_DB = -60.0  # the echo-path gain is learned only while the speaker stays above this


def threshold_db(vad_threshold: float) -> float:
    """The level a server VAD threshold (0..1) stands for; the local server uses the same map."""
    return -60.0 + 50.0 * vad_threshold


class RefTap:
    """What the speaker was handed, copied in the audio callback and read in order on the loop.

    Single producer (the output callback: one copy and a counter bump), single consumer (the
    loop). A reader that falls more than the capacity behind skips the lost audio.
    """

    def __init__(self, capacity_frames: int, max_lag_frames: int | None = None) -> None:
        self._ring = np.zeros(capacity_frames, dtype=np.int16)
        self._capacity = capacity_frames
        self._written = 0  # frames ever written (only the producer changes it)
        self._read = 0
        self._started = False
        # How far the reader may fall behind the writer before it jumps forward (default: 1/20 of
        # the ring, 100 ms for the devices' 2 s ring). Reads come one per captured block, so a
        # stalled or late-starting capture stream, or two device clocks that drift apart, would
        # otherwise leave the reference behind the echo for good: behind, echo handling hears
        # the speaker before it knows what the speaker played, and lets it through.
        self._max_lag = max_lag_frames if max_lag_frames is not None else capacity_frames // 20
        self.resyncs = 0
        self._lock = threading.Lock()

    def write(self, block: npt.NDArray[np.int16]) -> None:
        n = min(block.shape[0], self._capacity)
        start = self._written % self._capacity
        first = min(n, self._capacity - start)
        self._ring[start : start + first] = block[:first]
        if n > first:
            self._ring[: n - first] = block[first:n]
        with self._lock:
            self._written += n

    def take(self, n: int) -> npt.NDArray[np.int16]:
        """The next ``n`` frames in order; zeros where the speaker has not been handed them yet.

        The first call after the speaker starts begins at the newest block handed to it, so the reference leads
        the echo of it in the microphone by the devices' latency (echo handling looks back over
        a window; it cannot look ahead), and the lead stays fixed from then on.
        """
        with self._lock:
            written = self._written
        if not self._started and written > 0:
            self._started = True
            self._read = max(0, written - n)
        elif self._started and written - self._read > n + self._max_lag:
            self._read = written - n  # fallen behind: lead the echo again, as at the start
            self.resyncs += 1
        # Keep a block of slack from the writer so it never overwrites what is being copied.
        self._read = max(self._read, written - self._capacity + 2 * n)
        avail = max(0, min(n, written - self._read))
        out = np.zeros(n, dtype=np.int16)
        if avail:
            start = self._read % self._capacity
            first = min(avail, self._capacity - start)
            out[n - avail : n - avail + first] = self._ring[start : start + first]
            if avail > first:
                out[n - avail + first :] = self._ring[: avail - first]
            self._read += avail
        return out


class Canceller(Protocol):
    def process(self, mic: npt.NDArray[np.int16], ref: npt.NDArray[np.int16]) -> npt.NDArray[np.int16]: ...


class _Gate:
    """A playback-relative level gate's state: the learned echo-path gain and the hangover.

    ``judge`` answers (pass the block, it is near-end speech). A block counts as speech when it
    is louder than the loudest recent reference through the echo path plus a margin, and at
    least at the onset level; the gate opens on the second such block in a row (one block can
    hold the first of a sharp reply's echo before its reference is in the window) and then holds
    open for the hangover so words are not chopped.
    """

    def __init__(self, onset_db: float, margin_db: float, hangover_blocks: int) -> None:
        self.onset_db = onset_db
        self.margin_db = margin_db
        self.hangover_blocks = hangover_blocks
        self.erl_db = 0.0  # learned echo-path gain (mic echo level minus reference level)
        self._open_for = 0
        self._loud_run = 0

    def judge(self, mic_db: float, speaker_on: bool, ref_max_db: float, learning: bool) -> tuple[bool, bool]:
        floor = ref_max_db + self.erl_db
        if not speaker_on or floor < self.onset_db - 30.0:
            self._open_for = 0
            self._loud_run = 0
            return True, mic_db >= self.onset_db
        if mic_db >= max(floor + self.margin_db, self.onset_db):
            self._loud_run += 1
            if self._loud_run >= 2 or self._open_for > 0:
                self._open_for = self.hangover_blocks
                return True, True
            return False, False
        self._loud_run = 0
        if self._open_for > 0:
            self._open_for -= 1
            return True, False
        if learning:  # a quiet mic under a loud speaker is evidence of a weak echo path too
            self._learn(max(mic_db, SILENCE_DBFS + 20) - ref_max_db)
        return False, False

    def _learn(self, ratio_db: float) -> None:
        """Track the echo-path gain from blocks judged to be echo: quick to rise, slow to fall."""
        ratio_db = min(12.0, max(-60.0, ratio_db))
        rate = 0.1 if ratio_db > self.erl_db else 0.03
        self.erl_db += rate * (ratio_db - self.erl_db)


class _Envelope:
    """A learned level ratio in dB, tracked as an upper envelope of what it is shown.

    It rises at once (half-way per block) to a louder ratio and falls slowly, quickly only for
    its first ``fast_blocks`` lessons, so one quiet stretch does not teach it that the path is
    quieter than its loud moments.
    """

    def __init__(self, prior_db: float, fast_blocks: int, fast_fall: float) -> None:
        self.db = prior_db
        self.fast_blocks = fast_blocks
        self.fast_fall = fast_fall
        self.lessons = 0

    def learn(self, ratio_db: float) -> None:
        ratio_db = min(12.0, max(-90.0, ratio_db))
        rate = 0.5 if ratio_db > self.db else self.fast_fall if self.lessons < self.fast_blocks else 0.01
        self.db += rate * (ratio_db - self.db)
        self.lessons += 1


class _Suppressor:
    """Behind the canceller, while the speaker plays: is this block the user, or echo left over?

    Two learned ratios, both against the loudest recent reference block: the *coupling* (the
    canceller's output level, on blocks holding only echo) predicts the residual echo; the
    *echo path* (the raw microphone's level) predicts the echo itself.

    A block is *loud* when the output stands the margin above the predicted residual and at
    least at the floor (quieter output cannot start a turn at the server anyway). Until the
    canceller has converged (a coupling below ``CONVERGED_DB`` after ``converge_blocks`` lessons),
    the raw microphone must also stand the raw margin above the predicted echo: a canceller
    still finding its filter passes the echo nearly whole, and no residual learned so far says
    how loud that will be. So early in the first reply a barge-in must be louder than the echo;
    from then on, at the echo's own level is enough.

    The gate opens on ``open_blocks`` loud blocks in a row (a canceller's leaks at a reply's
    peaks, or while it re-adapts, last a block or two; the user's syllables longer) and then
    holds open for the hangover so words are not chopped. Loud blocks and open ones teach nothing.
    """

    CONVERGED_DB = -20.0
    CLEAR_DB = 20.0
    EARLY_CLEAR_DB = 8.0
    OVERSUPPRESSED_DB = 12.0

    def __init__(
        self, floor_db: float, margin_db: float, raw_margin_db: float, open_blocks: int,
        hangover_blocks: int, converge_blocks: int,
    ) -> None:
        self.floor_db = floor_db
        self.margin_db = margin_db
        self.raw_margin_db = raw_margin_db
        self.open_blocks = open_blocks
        self.hangover_blocks = hangover_blocks
        self.converge_blocks = converge_blocks
        self.coupling = _Envelope(0.0, converge_blocks, 0.15)
        # The echo path itself barely changes; learning it as slowly as this keeps it near the
        # loud moments' ratio (quiet stretches inside words would pull a faster one down).
        self.path = _Envelope(6.0, converge_blocks, 0.02)
        self._run = 0
        self._open_for = 0

    @property
    def converged(self) -> bool:
        return self.coupling.lessons >= self.converge_blocks and self.coupling.db <= self.CONVERGED_DB

    @property
    def is_open(self) -> bool:
        return self._open_for > 0

    def reset_run(self) -> None:
        self._run = 0
        self._open_for = 0

    def judge(self, out_db: float, mic_db: float, ref_max_db: float, learning: bool) -> tuple[bool, bool]:
        """Take one block's output and microphone levels: (loud, clear), see the class docstring.

        *clear*: the canceller swallowed a block (its output ``OVERSUPPRESSED_DB`` below its
        input) whose microphone level the echo cannot explain: ``CLEAR_DB`` above the loudest
        echo the path could carry, or, before the canceller has converged, the raw margin. A
        canceller that has found no echo path (headphones), or none yet (the first seconds of
        the first reply), suppresses the user outright while the speaker plays; such a block is
        sent from the microphone instead, and counts as loud.
        """
        raw_over = mic_db - (ref_max_db + self.path.db)
        clear = mic_db >= self.floor_db and out_db < mic_db - self.OVERSUPPRESSED_DB and (
            raw_over >= (self.CLEAR_DB if self.converged else self.EARLY_CLEAR_DB)
        )
        loud = clear or (
            out_db >= max(ref_max_db + self.coupling.db + self.margin_db, self.floor_db)
            and (self.converged or raw_over >= self.raw_margin_db)
        )
        if loud:
            self._run += 1
            if self._run >= self.open_blocks:
                self._open_for = self.hangover_blocks
            return True, clear
        self._run = 0
        if self._open_for > 0:
            self._open_for -= 1
        elif learning:
            self.coupling.learn(max(out_db, SILENCE_DBFS + 20) - ref_max_db)
            if raw_over < self.raw_margin_db:  # a sudden jump is the user, not the path
                self.path.learn(max(mic_db, SILENCE_DBFS + 20) - ref_max_db)
        return False, clear


class EchoPath:
    """One conversation's microphone processing: echo handling, levels, and local onset."""

    def __init__(
        self,
        mode: str,
        rate: int,
        *,
        block_ms: float = 20.0,
        onset_db: float = -35.0,
        onset_ms: float = 60.0,
        margin_db: float = 6.0,
        hangover_ms: float = 300.0,
        memory_ms: float = 400.0,
        tail_ms: float = 300.0,
        learn_ms: float = 160.0,
        open_ms: float = 60.0,
        lookahead_ms: float = 40.0,
        converge_ms: float = 1000.0,
        residual_margin_db: float = 10.0,
        residual_floor_db: float = 5.0,
        canceller: Canceller | None = None,
        on_onset: Callable[[], None] | None = None,
    ) -> None:
        if mode not in ("aec", "gate", "half-duplex", "off"):
            raise ValueError(f"unknown echo mode {mode!r}")
        if mode == "aec" and canceller is None:
            raise ValueError("echo mode 'aec' needs a canceller")
        self.mode = mode
        self.rate = rate
        self.onset_db = onset_db
        self.margin_db = margin_db
        self.canceller = canceller
        self.on_onset = on_onset
        blocks = lambda ms: max(1, math.ceil(ms / block_ms))  # noqa: E731
        self._onset_blocks = blocks(onset_ms)
        self._hangover_blocks = blocks(hangover_ms)
        self._tail_blocks = blocks(tail_ms)
        self._learn_blocks = blocks(learn_ms)
        self._refs: deque[float] = deque(maxlen=blocks(memory_ms))  # recent reference levels
        self._raw = _Gate(onset_db, margin_db, self._hangover_blocks)  # judges the microphone
        # aec: judges the canceller's output; its decisions lag the audio by the lookahead
        self._suppressor = _Suppressor(
            onset_db - residual_floor_db, residual_margin_db, margin_db, blocks(open_ms),
            self._hangover_blocks, blocks(converge_ms),
        )
        self._lookahead = blocks(lookahead_ms)
        self._held: deque[npt.NDArray[np.int16]] = deque()
        self._talk = 0  # consecutive blocks of near-end speech
        self._quiet = 0  # consecutive blocks without it
        self._onset_fired = False
        self._since_active = 1 << 30  # blocks since the speaker was last active
        self.recorder: Callable[[npt.NDArray[np.int16], npt.NDArray[np.int16]], None] | None = None
        # Exposed for the panel and the bench.
        self.mic_db = SILENCE_DBFS
        self.out_db = SILENCE_DBFS
        self.gated_blocks = 0
        self.onsets = 0

    @property
    def erl_db(self) -> float:
        """The learned gain of the speaker-to-microphone echo path, in dB."""
        return self._raw.erl_db

    def process(
        self, mic: npt.NDArray[np.int16], ref: npt.NDArray[np.int16], active: bool
    ) -> npt.NDArray[np.int16]:
        """One captured block (int16, ``rate``) and the reference over the same time; the audio to send.

        ``active`` says whether assistant audio is queued or playing (the reference alone cannot
        tell a pause between words from the end of a reply).
        """
        if self.recorder is not None:
            self.recorder(mic, ref)
        ref_db = rms_dbfs(ref)
        self.out_db = ref_db
        self._refs.append(ref_db)
        sounding = active or ref_db > SPEAKER_QUIET_DB  # a block that drained the queue still sounded
        self._since_active = 0 if sounding else self._since_active + 1
        speaker_on = self._since_active <= self._tail_blocks
        mic_db = rms_dbfs(mic)
        out, out_db = mic, mic_db
        if self.mode == "off":
            passed = True
            speech = mic_db >= self.onset_db
        elif self.mode == "half-duplex":
            passed = not speaker_on
            speech = False  # nothing the user says over the assistant is heard
        elif self.mode == "gate":
            passed, speech = self._gate(mic_db, speaker_on)
        else:
            out, out_db, speech = self._cancel(mic, ref, mic_db, speaker_on)
            passed = True
        self.mic_db = out_db
        self._onset(speech, active)
        if passed:
            return out
        self.gated_blocks += 1
        return np.zeros_like(mic)

    def _cancel(
        self, mic: npt.NDArray[np.int16], ref: npt.NDArray[np.int16], mic_db: float, speaker_on: bool
    ) -> tuple[npt.NDArray[np.int16], float, bool]:
        """Echo cancellation with a residual-echo suppressor behind it: the audio to send, its
        level, and whether it is near-end speech.

        The canceller's output always stands (the raw microphone is never sent while the
        speaker plays: it is the echo). While the speaker is on, `_Suppressor` decides block by
        block whether that output is the user or what is left of the echo, and the output runs
        ``lookahead`` blocks late so that the blocks which proved the user was talking are sent
        too (the barge-in's first word reaches the server). When the speaker falls silent the
        delay is dropped with the silence it held.
        """
        assert self.canceller is not None
        clean = self.canceller.process(mic, ref)
        clean_db = rms_dbfs(clean)
        sup = self._suppressor
        if not speaker_on and not sup.is_open:
            sup.reset_run()
            self._held.clear()
            return clean, clean_db, clean_db >= self.onset_db
        loud, clear = sup.judge(clean_db, mic_db, self._ref_max(), self._learning())
        self._held.append(mic if clear else clean)
        if len(self._held) <= self._lookahead:
            return np.zeros_like(clean), SILENCE_DBFS, loud
        out = self._held.popleft()
        if not sup.is_open:
            return np.zeros_like(out), SILENCE_DBFS, loud
        return out, rms_dbfs(out), loud

    def _gate(self, mic_db: float, speaker_on: bool) -> tuple[bool, bool]:
        return self._raw.judge(mic_db, speaker_on, self._ref_max(), self._learning())

    def _ref_max(self) -> float:
        return max(self._refs, default=SILENCE_DBFS)

    def _learning(self) -> bool:
        """Learn only while the speaker has sounded throughout the recent past, so the echo of
        what it played has had time to arrive (not at a reply's first words or after its last)."""
        if len(self._refs) < self._learn_blocks:
            return False
        return min(itertools.islice(reversed(self._refs), self._learn_blocks)) > LEARN_REF_DB

    def _onset(self, speech: bool, active: bool) -> None:
        """Fire once per stretch of talk: re-armed only after a hangover of quiet (words have gaps)."""
        if speech:
            self._talk += 1
            self._quiet = 0
        else:
            self._talk = 0
            self._quiet += 1
            if self._quiet >= self._hangover_blocks:
                self._onset_fired = False
        if active and self._talk >= self._onset_blocks and not self._onset_fired:
            self._onset_fired = True
            self.onsets += 1
            if self.on_onset is not None:
                self.on_onset()
