"""The doctor's measurements and verdicts: pure functions on numpy arrays.

What a microphone level means (:func:`levels`, :func:`judge_levels`), the test signals the
speaker plays (:func:`tone`, :func:`chirp`), where and how loud the speaker comes back in the
microphone (:func:`measure_echo`, :func:`isolate`), what echo cancellation makes of it
(:func:`measure_cancellation`) and the ``--echo`` advice that follows (:func:`echo_advice`).
No device, no clock, no network: each is tested on synthetic signals, and the device probes in
:mod:`voicechat.doctor.devices` only record what these judge.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from voicechat.audio.format import SILENCE_DBFS, rms_dbfs
from voicechat.audio.format import peak as peak_ratio
from voicechat.doctor.report import ECHO, FAIL, MIC, OK, WARN, Check

QUIET_RMS_DB = -70.0  # a microphone below this RMS level hears (almost) nothing
CLIP_SAMPLES = 3  # this many samples at full scale: the input clips

DETECT_SNR_DB = 20.0  # a correlation peak this far above the correlation's noise: the echo is real
FAINT_ECHO_DB = -40.0  # quieter echo than this needs no handling
LOUD_ECHO_DB = -10.0  # louder than this: the user has to shout over the assistant; headphones
GOOD_ERLE_DB = 25.0  # echo cancellation that removes this much keeps the assistant from hearing itself
QUIET_RESIDUAL_DBFS = -60.0  # ...as does a residual this quiet, whatever the echo was

TONE_HZ, TONE_S, TONE_LEVEL = 440.0, 0.5, 0.25
CHIRP_F0, CHIRP_F1, CHIRP_S, CHIRP_LEVEL = 300.0, 3000.0, 1.0, 0.5
TAIL_MS = 800.0  # recorded after the chirp has played: longer than any sound device's delay
# Where the echo may sit relative to the app's reference for the echo handling to line them up:
# the canceller searches 0-500 ms behind the reference, and cannot look ahead of it.
ALIGNED_MIN_MS, ALIGNED_MAX_MS = -50.0, 500.0


# ---- microphone level -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Levels:
    peak_db: float
    rms_db: float
    clipped: int  # samples at full scale
    seconds: float


def _db(amplitude_ratio: float) -> float:
    return max(SILENCE_DBFS, 20.0 * math.log10(amplitude_ratio)) if amplitude_ratio > 0 else SILENCE_DBFS


def levels(x: npt.NDArray[np.int16], rate: int) -> Levels:
    """Peak and RMS level of int16 audio in dBFS (full scale = 32768), and clipped samples."""
    if x.size == 0:
        return Levels(SILENCE_DBFS, SILENCE_DBFS, 0, 0.0)
    clipped = int(np.count_nonzero((x >= 32767) | (x <= -32768)))
    return Levels(_db(peak_ratio(x)), rms_dbfs(x), clipped, x.size / rate)


def judge_levels(lv: Levels) -> Check:
    figures = f"peak {lv.peak_db:.1f} dBFS, RMS {lv.rms_db:.1f} dBFS over {lv.seconds:.1f} s"
    fix_silent = (
        "check the input device or its mute/volume (list devices: voicechat devices; "
        "pick one with --input-device)"
    )
    if lv.seconds == 0:
        return Check(MIC, FAIL, "the microphone delivered no audio", fix=fix_silent)
    if lv.peak_db <= SILENCE_DBFS:
        return Check(MIC, WARN, f"{figures}: digital silence (muted, or not a microphone)", fix=fix_silent)
    if lv.rms_db < QUIET_RMS_DB:
        return Check(MIC, WARN, f"{figures}: almost silent", fix=fix_silent)
    if lv.clipped >= CLIP_SAMPLES:
        return Check(
            MIC, WARN, f"{figures}: clipping ({lv.clipped} samples at full scale)",
            fix="turn the microphone's input volume/gain down",
        )
    return Check(MIC, OK, figures)


# ---- test signals ---------------------------------------------------------------------------------


def _fade(x: npt.NDArray[np.float64], rate: int, ms: float = 10.0) -> npt.NDArray[np.float64]:
    n = min(x.size // 2, int(rate * ms / 1000))
    if n:
        ramp = np.linspace(0.0, 1.0, n)
        x[:n] *= ramp
        x[x.size - n :] *= ramp[::-1]
    return x


def tone(rate: int, seconds: float = TONE_S, hz: float = TONE_HZ, level: float = TONE_LEVEL) -> npt.NDArray[np.int16]:
    t = np.arange(int(rate * seconds)) / rate
    x = _fade(level * np.sin(2 * np.pi * hz * t), rate)
    return np.round(x * 32767).astype(np.int16)


def chirp(
    rate: int, seconds: float = CHIRP_S, f0: float = CHIRP_F0, f1: float = CHIRP_F1, level: float = CHIRP_LEVEL
) -> npt.NDArray[np.int16]:
    """A linear sweep from ``f0`` to ``f1`` (flat spectrum in the band: a sharp correlation peak)."""
    t = np.arange(int(rate * seconds)) / rate
    phase = 2 * np.pi * (f0 * t + (f1 - f0) * t * t / (2 * seconds))
    x = _fade(level * np.sin(phase), rate)
    return np.round(x * 32767).astype(np.int16)


# ---- echo measurement -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class EchoMeasurement:
    """How much of what the speaker played comes back in the microphone.

    ``echo_db``: the echo's energy relative to the played signal (in the chirp's band), 0 dB for
    an echo as loud as what was played; the echo return loss is ``-echo_db``. ``delay_ms``: where
    the echo's strongest path sits after the reference (what the echo handling has to bridge).
    ``snr_db``: the correlation peak over the correlation's noise floor.
    """

    found: bool
    delay_ms: float
    echo_db: float
    snr_db: float

    @property
    def erl_db(self) -> float:
        return -self.echo_db


def measure_echo(  # over 50 lines with its docstring: one computation, read top to bottom
    ref: npt.ArrayLike,
    mic: npt.ArrayLike,
    rate: int,
    *,
    band: tuple[float, float] = (CHIRP_F0, CHIRP_F1),
    min_delay_ms: float | None = None,
    max_delay_ms: float | None = None,
    window_ms: float = 50.0,
) -> EchoMeasurement:
    """Find ``ref`` (what the speaker played) in ``mic`` (what the microphone heard, same timeline).

    Where: the peak of the cross-correlation with the microphone's spectrum whitened within
    ``band`` (the reference's band), which keeps speech, hum or noise in the room from making
    peaks of their own; it is judged against the median of the same correlation elsewhere.
    How loud: the plain cross-correlation is the echo path's impulse response smeared by the
    reference's autocorrelation, so the echo's energy ratio is its energy around the peak
    (``window_ms`` of reflections after it, early ones a little before) divided by the
    autocorrelation energy of the part of the reference that overlaps the microphone at that
    delay, less the correlation noise the window would hold anyway. Works for any gain, delay
    or several paths. Delays are searched wherever at least half the reference overlaps the
    microphone unless ``min_delay_ms``/``max_delay_ms`` narrow it: a reference that is far off
    its echo is a finding, not a reason to miss the echo.
    """
    r = np.asarray(ref, dtype=np.float64)
    m = np.asarray(mic, dtype=np.float64)
    if r.size == 0 or m.size == 0 or not np.any(r):
        raise ValueError("measure_echo needs a reference that is not silent")
    lo = -(r.size - 1) if min_delay_ms is None else max(-(r.size - 1), math.floor(min_delay_ms * rate / 1000))
    hi = m.size - 1 if max_delay_ms is None else min(m.size - 1, math.ceil(max_delay_ms * rate / 1000))
    lags, overlap, w2, c2 = _correlations(r, m, rate, band, np.arange(lo, hi + 1))
    peak = int(np.argmax(w2))
    lag = int(lags[peak])
    delay_ms = lag * 1000 / rate
    if w2[peak] == 0.0:
        return EchoMeasurement(False, delay_ms, SILENCE_DBFS, 0.0)
    before = max(1, int(rate * 0.002))
    after = max(1, int(rate * window_ms / 1000))
    inside = (lags >= lag - before) & (lags <= lag + after)
    away = (lags < lag - 4 * before) | (lags > lag + 2 * after)  # past its sidelobes and reverberation
    chi2_median = 0.4549  # the median of a chi-squared variable with one degree of freedom
    noise = float(np.median(w2[away])) / chi2_median if np.any(away) else 0.0
    snr_db = 10 * math.log10(w2[peak] / noise) if noise > 0 else math.inf
    # The plain correlation's noise grows with the overlapping reference energy: per unit of it.
    raw_noise = float(np.median(c2[away] / overlap[away])) / chi2_median if np.any(away) else 0.0
    heard = r[max(0, -lag) : min(r.size, m.size - lag)]  # the reference whose echo the mic could hold
    acf = np.fft.irfft(np.abs(np.fft.rfft(heard, 1 << (2 * heard.size).bit_length())) ** 2)
    window = float(np.sum(c2[inside])) - raw_noise * float(np.sum(overlap[inside]))
    energy = max(0.0, window) / float(np.dot(acf, acf))
    echo_db = max(SILENCE_DBFS, 10 * math.log10(energy)) if energy > 0 else SILENCE_DBFS
    return EchoMeasurement(snr_db >= DETECT_SNR_DB, delay_ms, echo_db, snr_db)


Floats = npt.NDArray[np.float64]


def _correlations(
    r: Floats, m: Floats, rate: int, band: tuple[float, float], lags: npt.NDArray[np.int64]
) -> tuple[npt.NDArray[np.int64], Floats, Floats, Floats]:
    """At each of ``lags`` where at least half the reference overlaps the microphone (or, when
    none does, any of it): the lag, the overlapping reference energy, and the squared
    band-whitened and plain cross-correlations of ``m`` with ``r``."""
    size = 1 << (r.size + m.size).bit_length()
    spec_r = np.fft.rfft(r, size)
    spec_m = np.fft.rfft(m, size)
    cross = spec_m * np.conj(spec_r)  # irfft: out[k] = sum(mic[n + k] * ref[n]), negative k wrapped
    freqs = np.fft.rfftfreq(size, 1 / rate)
    in_band = (freqs >= band[0]) & (freqs <= band[1])
    whitened = np.where(in_band, cross / np.maximum(np.abs(spec_m), 1e-9), 0.0)
    power = np.concatenate([[0.0], np.cumsum(r * r)])
    overlap = power[np.clip(m.size - lags, 0, r.size)] - power[np.clip(-lags, 0, r.size)]
    keep = overlap >= 0.5 * power[-1]
    if not np.any(keep):
        keep = overlap > 0
    lags, overlap = lags[keep], overlap[keep]
    w2 = np.fft.irfft(whitened, size)[lags % size] ** 2
    c2 = np.fft.irfft(cross, size)[lags % size] ** 2
    return lags, overlap, w2, c2


def isolate(ref: npt.ArrayLike, template: npt.ArrayLike) -> npt.NDArray[np.float64]:
    """``ref`` with everything but its best match of ``template`` zeroed (a copy, float).

    The reference the doctor records is what the speaker was handed over the echo phase; when it
    lags the microphone, it also holds the end of the tone played before the sweep, which must
    not be mistaken for the sweep's echo.
    """
    r = np.asarray(ref, dtype=np.float64)
    t = np.asarray(template, dtype=np.float64)
    size = 1 << (r.size + t.size).bit_length()
    xc = np.fft.irfft(np.fft.rfft(r, size) * np.conj(np.fft.rfft(t, size)), size)
    lags = np.arange(-(t.size - 1), r.size)
    start = int(lags[int(np.argmax(np.abs(xc[lags % size])))])
    out = np.zeros_like(r)
    lo, hi = max(0, start), min(r.size, start + t.size)
    out[lo:hi] = r[lo:hi]
    return out


@dataclass(frozen=True, slots=True)
class Cancellation:
    """What echo cancellation made of the recorded sweep's echo: how much it removed (ERLE, in dB)
    and the level left over (dBFS), on the median of several replays after the first (which
    converges)."""

    erle_db: float
    residual_dbfs: float

    @property
    def works(self) -> bool:
        return self.erle_db >= GOOD_ERLE_DB or self.residual_dbfs <= QUIET_RESIDUAL_DBFS


def measure_cancellation(
    ref: npt.ArrayLike, mic: npt.ArrayLike, rate: int, make: Callable[[int], Any], passes: int = 8
) -> Cancellation | None:
    """Run a fresh canceller (``make(rate)``) over the recording ``passes`` times and measure, where
    the echo was loud (within 20 dB of its loudest 20 ms), the median of the passes after the
    first; None when nothing was loud. One replay alone is no measure: on the same recording a
    canceller removed 20 dB on one pass and 51 on the next."""
    block = rate // 50
    r = np.asarray(ref, dtype=np.int16)
    m = np.asarray(mic, dtype=np.int16)
    n = min(r.size, m.size) // block * block
    if n == 0:
        return None
    frames_in = m[:n].reshape(-1, block)
    power_in = np.mean(frames_in.astype(np.float64) ** 2, axis=1)
    loud = power_in >= power_in.max() / 100.0
    if not np.any(loud) or power_in.max() == 0.0:
        return None
    echo_db = rms_dbfs(frames_in[loud].ravel())
    canceller = make(rate)
    out = np.zeros(n, dtype=np.int16)
    left: list[float] = []
    for done in range(passes):
        for i in range(0, n, block):
            out[i : i + block] = canceller.process(m[i : i + block], r[i : i + block])
        if done or passes == 1:
            left.append(rms_dbfs(out.reshape(-1, block)[loud].ravel()))
    left_db = float(np.sort(left)[(len(left) - 1) // 2])
    return Cancellation(erle_db=echo_db - left_db, residual_dbfs=left_db)


def echo_advice(
    m: EchoMeasurement, *, aec: bool, configured: str = "auto", startup_underruns: int = 0,
    cancellation: Cancellation | None = None,
) -> Check:
    """The verdict and the ``--echo`` mode to use, from a measurement (``aec``: the canceller loads;
    ``cancellation``: what it did with the measured echo, when it was run)."""
    if not m.found or m.echo_db < FAINT_ECHO_DB:
        what = "no echo found" if not m.found else f"faint echo ({m.echo_db:.0f} dB at {m.delay_ms:.0f} ms)"
        return Check(ECHO, OK, f"{what}: the microphone does not hear the speaker; --echo off is enough (headphones)")
    figures = f"echo return loss {m.erl_db:.1f} dB at {m.delay_ms:.0f} ms"
    mode = "aec" if aec else "gate"
    if not ALIGNED_MIN_MS <= m.delay_ms <= ALIGNED_MAX_MS:
        side = "before" if m.delay_ms < 0 else "after"
        why = f" (the speaker's stream underran {startup_underruns} times as it started)" if startup_underruns else ""
        return Check(
            ECHO, WARN,
            f"{figures}: the echo comes {abs(m.delay_ms):.0f} ms {side} the app's copy of what the speaker "
            f"played{why}, too far apart for the echo handling to line them up",
            fix="run voicechat doctor again; if it stays, use headphones, or try the output device's own "
            "rate (see voicechat devices) with --sample-rate",
        )
    if configured == "off":
        return Check(
            ECHO, WARN, f"{figures}, but echo is set to off: the assistant will hear itself and stop",
            fix=f"use --echo {mode} (or auto), or wear headphones",
        )
    if cancellation is not None:
        removed = f"echo cancellation removes {cancellation.erle_db:.0f} dB (residual {cancellation.residual_dbfs:.0f} dBFS)"
        if cancellation.works:
            return Check(
                ECHO, OK, f"{figures}; {removed}: --echo aec (what --echo auto picks) lets you talk over the "
                "assistant at your normal voice",
            )
        return Check(
            ECHO, WARN, f"{figures}; {removed}: not enough for the assistant not to hear itself",
            fix="use headphones, or --echo half-duplex (interrupt with a key instead of your voice)",
        )
    if m.echo_db >= LOUD_ECHO_DB and not aec:
        return Check(
            ECHO, WARN, f"{figures}: the speaker is nearly as loud in the microphone as you are",
            fix="use headphones or turn the speaker down; otherwise --echo half-duplex",
        )
    return Check(ECHO, OK, f"{figures}: use --echo {mode} (what --echo auto picks)")

