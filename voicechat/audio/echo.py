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
* ``aec`` (what ``auto`` picks): acoustic echo cancellation (`voicechat.audio.aec`), judged
  block by block by two judges (`voicechat.audio.judges.Suppressor` on the canceller's output,
  `voicechat.audio.linear.LinearStage` on a linear canceller's residual, which shows a barge-in
  from its first syllable where the canceller's own suppressor hides it for 60-190 ms). What is
  sent is the canceller's output, or the linear residual for the opening of a barge-in until
  the canceller lets the user through; never the raw microphone unless the echo provably cannot
  be in it. Decisions take three blocks, and while the speaker plays the output runs two blocks
  late so those blocks go out too. The linear stage also notices the echo path moving under it
  (its residual then carries its own prediction, negated) and makes the other judge wary while
  the canceller follows. A canceller output well over the linear residual is echo the
  canceller let through (it does, in bursts of a few blocks, long after converging): the user
  would be in both, so it neither opens the output nor teaches the judge.
  Once nothing has played for ``rest_ms`` (2 s) the canceller rests: it is not called and the
  microphone goes out as it is (there is no echo left to take out; the canceller was half of
  the loop's time in an idle conversation). When the speaker next has audio it is first fed
  the room's last ``warm_ms`` (200 ms) with a silent reference, as if it had run all along:
  woken cold, it lost the opening of one barge-in in eight that it heard whole before (the
  offline loud-laptop room).
* ``half-duplex``: the microphone is silenced while the assistant is audible and for a short tail
  after; the user interrupts with a key or a typed line instead.

Every mode also runs local onset detection: when near-end speech has passed for ``onset_ms``
while the assistant is audible, ``on_onset`` is called so the app can pause the speaker at once,
without waiting for the server's VAD and a network round trip.
"""

from __future__ import annotations

import itertools
import logging
import math
from collections import deque
from collections.abc import Callable
from typing import Protocol

import numpy as np
import numpy.typing as npt

from voicechat.audio.format import SILENCE_DBFS, rms_dbfs
from voicechat.audio.judges import Gate, Suppressor
from voicechat.audio.linear import LinearStage

log = logging.getLogger(__name__)

SPEAKER_QUIET_DB = -80.0  # reference blocks below this count as a silent speaker
LEARN_REF_DB = -60.0  # the echo-path gain is learned only while the speaker stays above this


def threshold_db(vad_threshold: float) -> float:
    """The level a server VAD threshold (0..1) stands for; the local server uses the same map."""
    return -60.0 + 50.0 * vad_threshold


class Canceller(Protocol):
    def process(self, mic: npt.NDArray[np.int16], ref: npt.NDArray[np.int16]) -> npt.NDArray[np.int16]: ...


class EchoPath:
    """One conversation's microphone processing: echo handling, levels, and local onset."""

    def __init__(  # over 50 lines: 19 tuning parameters, then the judges built from them
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
        linear: bool = True,
        linear_margin_db: float = 10.0,
        rest_ms: float = 2000.0,
        warm_ms: float = 200.0,
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
        self._rest_blocks = blocks(rest_ms)
        self._resting: deque[npt.NDArray[np.int16]] = deque(maxlen=blocks(warm_ms) if warm_ms > 0 else 0)
        self._learn_blocks = blocks(learn_ms)
        self._refs: deque[float] = deque(maxlen=blocks(memory_ms))  # recent reference levels
        self._raw = Gate(onset_db, margin_db, self._hangover_blocks)  # judges the microphone
        # aec: judges the canceller's output; its decisions lag the audio by the lookahead
        self._suppressor = Suppressor(
            onset_db - residual_floor_db, residual_margin_db, margin_db, blocks(open_ms),
            self._hangover_blocks, blocks(converge_ms),
        )
        self._lookahead = blocks(lookahead_ms)
        # aec: the linear stage sees a barge-in start before the canceller's output shows it
        self._linear = (
            LinearStage(rate, margin_db=linear_margin_db, floor_db=onset_db - residual_floor_db,
                        converge_blocks=blocks(converge_ms))
            if linear and mode == "aec" else None
        )
        self._from_linear = True  # while open: send the linear output until the canceller catches up
        self._held: deque[tuple[npt.NDArray[np.int16], npt.NDArray[np.int16] | None]] = deque()
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
        speaker plays: it is the echo). While the speaker is on, the judges decide block by
        block whether that output is the user or what is left of the echo, and the output runs
        ``lookahead`` blocks late so that the blocks which proved the user was talking are sent
        too. Those blocks, and the ones after them until the canceller's output carries the user
        about as loud, are sent from the linear stage: the canceller's suppressor lets a word's
        first rise through only late. When the speaker falls silent the delay is dropped with
        the silence it held.
        """
        assert self.canceller is not None
        sup = self._suppressor
        if self._since_active > self._rest_blocks and not sup.is_open:
            # Nothing has played for a while: no echo, and the canceller rests. It keeps what it
            # learned of the echo path, and its reference and microphone stay in step (neither
            # is given to it); the last `warm_ms` of the room are kept for its waking.
            self._settle()
            self._resting.append(mic)
            return mic, mic_db, mic_db >= self.onset_db
        if self._resting:  # waking: the canceller hears the room's last moments, with nothing playing
            for held in self._resting:
                self.canceller.process(held, np.zeros_like(held))
            self._resting.clear()
        clean = self.canceller.process(mic, ref)
        clean_db = rms_dbfs(clean)
        lin, heard = self._linear_stage(mic, ref, mic_db, speaker_on)
        if not speaker_on and not sup.is_open:
            self._settle()
            return clean, clean_db, clean_db >= self.onset_db
        linear = self._linear if speaker_on else None  # its state is this block's only while the speaker is on
        doubt = linear is not None and linear.doubt
        leak = linear is not None and linear.leaked(clean_db)
        loud, clear = sup.judge(clean_db, mic_db, self._ref_max(), self._learning(), heard, doubt, leak)
        if self._linear is not None and lin is not None:
            self._linear.confirm(heard, sup.confirmed)
        self._held.append((mic if clear else clean, lin))
        if len(self._held) <= self._lookahead:
            return np.zeros_like(clean), SILENCE_DBFS, loud
        out, out_lin = self._held.popleft()
        if not sup.is_open:
            self._from_linear = True
            return np.zeros_like(out), SILENCE_DBFS, loud
        level = rms_dbfs(out)
        if out_lin is not None and self._from_linear:
            lin_level = rms_dbfs(out_lin)
            if level >= lin_level - 6.0:
                self._from_linear = False  # the canceller hears the user now: its output is cleaner
            else:
                out, level = out_lin, lin_level
        return out, level, loud

    def _settle(self) -> None:
        """Nothing plays and the user is not talking: the suppressor's run, the output held back
        and the hand-over from the linear stage start afresh."""
        self._suppressor.reset_run()
        self._held.clear()
        self._from_linear = True

    def _linear_stage(
        self, mic: npt.NDArray[np.int16], ref: npt.NDArray[np.int16], mic_db: float, speaker_on: bool
    ) -> tuple[npt.NDArray[np.int16] | None, bool]:
        if self._linear is None or not speaker_on:
            return None, False
        lin, heard = self._linear.judge(mic, ref, self._ref_max(), self._learning(), self._suppressor.is_open,
                                        mic_db)
        if self._linear.moved:
            self._suppressor.path_moved()
        return lin, heard

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
