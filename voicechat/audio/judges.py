"""Block-by-block judges for `voicechat.audio.echo`: is this block the user, or the speaker's echo?

Each keeps a little learned state (a level ratio, a run of loud blocks, a hangover) and answers
from block levels in dBFS; none touches audio. `Gate` judges the raw microphone (``--echo
gate``); `Suppressor` judges what WebRTC's canceller left (``--echo aec``); `Envelope` is the
learned ratio both of the canceller's judges use.
"""

from __future__ import annotations

from voicechat.audio.format import SILENCE_DBFS


class Gate:
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


class Envelope:
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


class Suppressor:
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
        self.coupling = Envelope(0.0, converge_blocks, 0.15)
        # The echo path itself barely changes; learning it as slowly as this keeps it near the
        # loud moments' ratio (quiet stretches inside words would pull a faster one down).
        self.path = Envelope(6.0, converge_blocks, 0.02)
        self._run = 0
        self._open_for = 0
        self.confirmed = False  # the last block was loud on this judge's own evidence

    @property
    def converged(self) -> bool:
        return self.coupling.lessons >= self.converge_blocks and self.coupling.db <= self.CONVERGED_DB

    def path_moved(self) -> None:
        """The echo moved against the reference: the canceller leaks while it finds it again, so
        judge as before convergence (the raw margin too) until the coupling is learned afresh."""
        self.coupling = Envelope(0.0, self.converge_blocks, 0.15)

    @property
    def is_open(self) -> bool:
        return self._open_for > 0

    def reset_run(self) -> None:
        self._run = 0
        self._open_for = 0

    def judge(self, out_db: float, mic_db: float, ref_max_db: float, learning: bool,
              heard: bool = False, doubt: bool = False, leak: bool = False) -> tuple[bool, bool]:
        """Take one block's output and microphone levels: (loud, clear), see the class docstring.

        ``heard``: another judge (`voicechat.audio.linear.LinearStage`) heard the user in this
        block; it counts as loud. `confirmed` says whether this judge's own evidence did.
        ``doubt``: that judge saw signs of the echo path moving; this block is judged as before
        convergence (the canceller leaks while it follows a move).
        ``leak``: that judge's filter explains the block as echo the canceller let through (its
        residual is well below the canceller's output, where a user would be in both): the
        output is no evidence of the user, and no lesson about what the canceller leaves.

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
        self.confirmed = clear or (
            not leak and out_db >= max(ref_max_db + self.coupling.db + self.margin_db, self.floor_db)
            and ((self.converged and not doubt) or raw_over >= self.raw_margin_db)
        )
        loud = self.confirmed or heard
        if loud:
            self._run += 1
            if self._run >= self.open_blocks:
                self._open_for = self.hangover_blocks
            return True, clear
        self._run = 0
        if self._open_for > 0:
            self._open_for -= 1
        elif learning and not leak:
            self.coupling.learn(max(out_db, SILENCE_DBFS + 20) - ref_max_db)
            if raw_over < self.raw_margin_db:  # a sudden jump is the user, not the path
                self.path.learn(max(mic_db, SILENCE_DBFS + 20) - ref_max_db)
        return False, clear
