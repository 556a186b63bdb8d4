"""A linear echo canceller whose output never hides the user: where a barge-in starts.

WebRTC's canceller (`voicechat.audio.aec`) follows its linear filter with a suppressor that
zeroes whatever it cannot yet tell from echo, and at a double talk's onset that is the user's
first 60-150 ms: its output cannot say quickly that the user started, and the audio it sends
has lost the first rise of their first word. This filter stops at the linear stage. Its output
is the microphone less the echo the filter predicts, so the user is there from their first
sample with only the residual of a linear fit on top (measured in the simulated rooms:
25-35 dB below the echo once converged, less where the speaker clips). `voicechat.audio.echo`
judges onsets on it and sends its output for the blocks that proved the user was talking.

The filter is a partitioned-block frequency-domain adaptive filter (overlap-save, normalised
LMS per frequency bin over the partitions): ``taps_ms`` of echo path, in partitions one block
long, so every block costs a few FFTs of twice its length however long the path. The gradient
is constrained (its second half zeroed) one partition per block, round-robin, which keeps the
cost of that step to one FFT pair per block.

It adapts only when told to (the caller knows when the speaker plays and the user does not):
adapting while the user talks would teach it to cancel them.

When the echo path moves (a sound server's buffer ran dry unseen, a device's latency changed),
the filter's prediction is suddenly off by a few milliseconds and its residual carries the
echo: at the microphone's level, as a user would be. `LinearStage` checks each block that would
pass for the user: if the prediction, slid to where it matches the microphone best, leaves
10 dB less, the block is the moved echo, and the filter keeps the slid response at once (no
re-learning). The user is independent of the reference, so no slide explains them.

Pure numpy, float64; not thread-safe (one consumer, the event loop).
"""

from __future__ import annotations

import logging
import math

import numpy as np
import numpy.typing as npt

from voicechat.audio.format import SILENCE_DBFS, float_to_pcm16, rms_dbfs
from voicechat.audio.judges import Envelope

log = logging.getLogger(__name__)

SCALE = 32768.0
DELTA_DBFS = -80.0
"""Regularisation of the step: a bin whose reference is quieter than this barely adapts."""


class LinearEcho:
    """Predicts the echo of ``ref`` in ``mic`` with a linear filter; returns ``mic`` less it."""

    def __init__(self, block: int, *, rate: int, taps_ms: float = 300.0, mu: float = 1.0) -> None:
        if block < 1:
            raise ValueError(f"block must be positive, got {block}")
        self.block = block
        self.partitions = max(1, math.ceil(taps_ms * rate / 1000 / block))
        self.mu = mu
        n, p, bins = block, self.partitions, block + 1
        self._x = np.zeros(2 * n)  # the last two reference blocks (overlap-save input)
        # Reference spectra, newest first through `_recent`; each written twice (rows i and
        # i + P) so the newest P are one strided view with no copy.
        self._spectra = np.zeros((2 * p, bins), dtype=np.complex128)
        self._powers = np.zeros((p, bins))  # each partition's power, by the row it is written at
        # Their sum over the newest P, kept up to date as one comes and one goes (summed afresh
        # once every P blocks, so rounding cannot build up) instead of summed in every `learn`.
        self._power_sum = np.zeros(bins)
        # `learn`'s step for every partition, computed in place: as two new arrays per block
        # (212 KB each at 44.1 kHz, past the size malloc maps fresh pages for) it cost about 100
        # page faults a block and most of the stage's time.
        self._update = np.zeros((p, bins), dtype=np.complex128)
        self._weights = np.zeros((p, bins), dtype=np.complex128)
        self._delta = p * 2 * n * 10 ** (DELTA_DBFS / 10)
        self._k = 0  # blocks seen
        self._pad = np.zeros(2 * n)
        self._residual = np.zeros(n)
        self._predicted = np.zeros(n)
        self._mic = np.zeros(n)
        # The reference over the filter's span and this block, a ring of blocks (`_oldest`
        # says where it starts): where a moved echo is looked for (`misalignment`).
        self._history = np.zeros((p + 1) * n)
        self._oldest = 0
        self._trial = self._weights  # the filter `try_shift` tried last
        self.echo_dbfs = -120.0  # level of the last block's predicted echo

    def _recent(self) -> npt.NDArray[np.complex128]:
        i = self._k % self.partitions
        return self._spectra[i + self.partitions : i : -1]

    def process(self, mic: npt.NDArray[np.int16], ref: npt.NDArray[np.int16]) -> npt.NDArray[np.int16]:
        """One block of microphone and reference (int16, ``block`` samples): the residual.

        Call `learn` next if the block held only echo.
        """
        n = self.block
        if mic.shape[0] != n or ref.shape[0] != n:
            raise ValueError(f"blocks must be {n} samples, got {mic.shape[0]} and {ref.shape[0]}")
        self._k += 1
        x = self._x
        x[:n] = x[n:]
        x[n:] = ref
        x[n:] /= SCALE
        self._history[self._oldest : self._oldest + n] = x[n:]
        self._oldest = (self._oldest + n) % self._history.size
        spectrum = np.fft.rfft(x)
        i, p = self._k % self.partitions, self.partitions
        self._spectra[i] = self._spectra[i + p] = spectrum
        power = spectrum.real**2 + spectrum.imag**2
        if i == 0:
            self._powers[0] = power
            self._powers.sum(axis=0, out=self._power_sum)
        else:
            self._power_sum += power
            self._power_sum -= self._powers[i]  # the partition leaving the window
            self._powers[i] = power
        predicted = self._predict(self._weights)
        self._mic = mic / SCALE
        residual = self._mic - predicted
        energy = float(np.dot(predicted, predicted)) / n
        self.echo_dbfs = 10 * math.log10(energy) if energy > 1e-12 else -120.0
        self._residual = residual
        self._predicted = predicted
        return float_to_pcm16(residual)

    def _predict(self, weights: npt.NDArray[np.complex128]) -> npt.NDArray[np.float64]:
        """The echo of the reference heard so far in this block, through the filter ``weights``."""
        n = self.block
        return np.fft.irfft(np.einsum("pb,pb->b", weights, self._recent()), 2 * n)[n:]

    def misalignment(self, span: int) -> tuple[int, float, float]:
        """Where the last microphone block matches the filter's prediction best, within ``span``
        samples either way: (how many samples later the echo came than the filter has it, the
        normalised correlation there, and where the filter has it). The prediction is made
        from the reference heard so far, ``span`` past the block's end too: the echo of those
        samples comes later than that."""
        n, p = self.block, self.partitions
        taps = self._taps()
        h = np.roll(self._history, -self._oldest)  # oldest first
        size = 1 << math.ceil(math.log2(h.size + taps.size))
        y = np.fft.irfft(np.fft.rfft(h, size) * np.fft.rfft(taps, size), size)
        window = y[p * n - span : p * n + n + span]
        m = self._mic
        c = np.correlate(window, m, "valid")  # c[k]: the prediction k - span samples on
        energy = np.cumsum(np.concatenate(([0.0], window * window)))
        r = c / np.sqrt(np.maximum(energy[n:] - energy[:-n], 1e-20) * max(float(m @ m), 1e-20))
        k = int(np.argmax(r))
        return span - k, float(r[k]), float(r[span])

    def try_shift(self, lag: int) -> float:
        """The last block's residual level in dBFS, had the filter's impulse response been
        ``lag`` samples later (earlier if negative); `shift` then keeps that filter."""
        self._trial = self._shifted(lag)
        return rms_dbfs(float_to_pcm16(self._mic - self._predict(self._trial)))

    def shift(self) -> None:
        """Keep the filter `try_shift` tried last."""
        self._weights[:] = self._trial

    def _taps(self) -> npt.NDArray[np.float64]:
        """The filter's impulse response, one partition after another (delays 0 on)."""
        n = self.block
        return np.fft.irfft(self._weights, 2 * n, axis=1)[:, :n].reshape(-1)

    def _shifted(self, lag: int) -> npt.NDArray[np.complex128]:
        """The weights with the impulse response slid by ``lag`` samples (what slides past
        either end is dropped)."""
        n, p = self.block, self.partitions
        taps = np.roll(self._taps(), lag)
        if lag > 0:
            taps[:lag] = 0.0
        elif lag < 0:
            taps[lag:] = 0.0
        padded = np.zeros((p, 2 * n))
        padded[:, :n] = taps.reshape(p, n)
        return np.fft.rfft(padded, axis=1)

    def correlation(self) -> float:
        """Normalised correlation of the last block's residual with its predicted echo."""
        r, p = self._residual, self._predicted
        den = math.sqrt(float(np.dot(r, r)) * float(np.dot(p, p)))
        return float(np.dot(r, p)) / den if den > 0 else 0.0

    def learn(self) -> None:
        """Adapt to the last block `process` took: it held only echo (the user was silent)."""
        n = self.block
        self._pad[n:] = self._residual
        error = np.fft.rfft(self._pad)
        step = self.mu * error / (self._power_sum + self._delta)
        update = np.conjugate(self._recent(), out=self._update)
        update *= step
        self._weights += update
        # Constrain one partition's gradient per block: its impulse response is one block long.
        j = self._k % self.partitions
        w = np.fft.irfft(self._weights[j], 2 * n)
        w[n:] = 0.0
        self._weights[j] = np.fft.rfft(w)

    def reset(self) -> None:
        """Forget the echo path (a new device)."""
        self._weights[:] = 0
        self._spectra[:] = 0
        self._powers[:] = 0
        self._power_sum[:] = 0
        self._x[:] = 0


class LinearStage:
    """The filter and its judge, while the speaker plays: the residual, and whether it is the user.

    The residual's level is judged against the loudest recent reference block through a learned
    *coupling* (an `Envelope` of residual over reference on blocks holding only echo), as
    `voicechat.audio.judges.Suppressor` judges the canceller's output: *loud* when it stands
    ``margin_db`` above that and at least at ``floor_db``. The filter learns only from blocks
    well inside what the echo leaves (below half the margin), so a user's soft start does not
    teach it to cancel them, and never while the user is heard; before it has converged, from
    every block the other judges hold to be echo.

    Until the coupling has had ``converge_blocks`` lessons and sits at `CONVERGED_DB` or below,
    the stage answers nothing (``None``): a filter still finding the path, or one that never can
    (a speaker that distorts: the echo is not a linear function of what it was handed), would
    take echo for the user.
    """

    CONVERGED_DB = -20.0
    MOVED_CORRELATION = 0.4
    MOVED_BLOCKS = 3
    UNCONFIRMED_BLOCKS = 15
    LEAK_DB = 6.0  # another canceller's output this far over the residual is echo it let through
    FOLLOW_SPAN_MS = 25.0  # how far the echo may move from one block to the next and be followed
    FOLLOW_CORRELATION = 0.5  # the slid prediction must match the microphone this well
    FOLLOW_DB = 10.0  # ... and leave this much less than the filter did
    FITTED_DB = -6.0  # an unconverged filter whose coupling is this low still knows the path
    LOST_DB = 3.0  # ... and has lost it when its residual comes within this of the microphone

    def __init__(self, rate: int, *, margin_db: float, floor_db: float, converge_blocks: int) -> None:
        self.rate = rate
        self.margin_db = margin_db
        self.floor_db = floor_db
        self.converge_blocks = converge_blocks
        self.coupling = Envelope(0.0, converge_blocks, 0.15)
        self.filter: LinearEcho | None = None  # built at the first block, whose length it takes
        self.run = 0  # loud blocks in a row
        self.moved = False  # the last blocks showed the echo path moved under the filter
        self._adding = 0  # blocks in a row whose residual added to the microphone
        self.doubt = False  # the last block's residual added to the microphone
        self.level = SILENCE_DBFS  # the last block's residual level, converged or not
        self._unconfirmed = 0  # loud blocks since the canceller's judge last agreed
        self.follows = 0  # moves of the echo path followed

    @property
    def converged(self) -> bool:
        return self.coupling.lessons >= self.converge_blocks and self.coupling.db <= self.CONVERGED_DB

    def judge(
        self, mic: npt.NDArray[np.int16], ref: npt.NDArray[np.int16], ref_max_db: float, learning: bool,
        user_heard: bool, mic_db: float | None = None,
    ) -> tuple[npt.NDArray[np.int16] | None, bool]:
        """One block while the speaker plays: (the residual, loud), or (None, False) until converged.

        ``learning``: the speaker has sounded long enough for its echo to be in the block;
        ``user_heard``: another judge holds the user talking (nothing is learned then).
        """
        if self.filter is None or self.filter.block != mic.shape[0]:
            self.filter = LinearEcho(mic.shape[0], rate=self.rate)
        residual = self.filter.process(mic, ref)
        level = self.level = rms_dbfs(residual)
        mic_db = rms_dbfs(mic) if mic_db is None else mic_db
        expected = ref_max_db + self.coupling.db
        # A user is independent of the echo, so a residual holding the user is uncorrelated with
        # the filter's prediction. A filter that has lost the path (the echo moved against the
        # reference: a device's latency changed) leaves the prediction in its residual, negated.
        # Judged only where the microphone is loud enough to matter.
        adds = (self.converged and mic_db >= self.floor_db and self.filter.echo_dbfs >= mic_db - 10.0
                and self.filter.correlation() <= -self.MOVED_CORRELATION)
        self.doubt = adds
        self._adding = self._adding + 1 if adds else 0
        self.moved = self._adding >= self.MOVED_BLOCKS
        loud = level >= max(expected + self.margin_db, self.floor_db) and not adds and self.converged
        followed = (loud or self._lost(level, mic_db)) and self._follow(level)
        if followed:  # echo, not the user: the path moved and the filter has followed it
            loud = False
            adds = self.moved = self.doubt = True
        quiet = learning and not user_heard
        # Well inside what the echo leaves, or echo the filter misfits (a distorting speaker, a
        # move): lessons. Between that and loud may be a user's soft start: no lesson.
        echo_only = not self.converged or adds or (self.run == 0 and level < expected + self.margin_db / 2)
        if quiet and echo_only and not followed:  # its residual was the unmoved filter's
            self.filter.learn()
        if loud:
            self.run += 1
        else:
            self.run = 0
            if quiet and echo_only:
                self.coupling.learn(max(level, SILENCE_DBFS + 20) - ref_max_db)
        if not self.converged:
            return None, False
        return residual, loud

    def _lost(self, level: float, mic_db: float) -> bool:
        """Before it has converged (a speaker that distorts may keep it there): a filter that
        fitted the echo well enough whose residual now stands at the microphone's own level."""
        return (not self.converged and self.coupling.lessons >= self.converge_blocks
                and self.coupling.db <= self.FITTED_DB and level >= max(mic_db - self.LOST_DB, self.floor_db))

    def _follow(self, level: float) -> bool:
        """Whether the echo moved against the filter (a device's latency changed): the filter's
        prediction, slid by where it matches the microphone best, leaves `FOLLOW_DB` less. If
        so the filter keeps the slid response, and the user, who no slide explains, stays heard.
        Run only on blocks that would otherwise pass for the user, so rarely."""
        assert self.filter is not None
        lag, fit, unmoved = self.filter.misalignment(int(self.rate * self.FOLLOW_SPAN_MS / 1000))
        if abs(lag) < self.rate // 2000 or fit < self.FOLLOW_CORRELATION or fit <= unmoved:
            return False
        if self.filter.try_shift(lag) > level - self.FOLLOW_DB:
            return False
        self.filter.shift()
        self.follows += 1
        log.debug("echo path moved by %+.1f ms: the linear filter followed it", 1000 * lag / self.rate)
        return True

    def leaked(self, out_db: float) -> bool:
        """Whether another canceller's output at ``out_db`` over the block last judged is echo it
        let through: it stands `LEAK_DB` over this filter's residual, where a user would be in
        both (the residual hides nothing). Where the filter cannot fit the echo its residual is
        loud, and nothing is."""
        return out_db > self.level + self.LEAK_DB

    def confirm(self, loud: bool, confirmed: bool) -> None:
        """What the canceller's judge made of the block this stage judged ``loud``.

        A user it heard shows in the canceller's output within a few blocks too. A stretch of
        loud blocks it never confirms was the path changing under the filter: the stage stops
        answering until it has converged again.
        """
        if confirmed:
            self._unconfirmed = 0
        elif loud:
            self._unconfirmed += 1
            if self._unconfirmed >= self.UNCONFIRMED_BLOCKS:
                self.distrust()

    def distrust(self) -> None:
        """Answer nothing until the coupling has been learned afresh (the filter keeps its path)."""
        self.coupling = Envelope(0.0, self.converge_blocks, 0.15)
        self.run = 0
        self._unconfirmed = 0
