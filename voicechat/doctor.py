"""``voicechat doctor``: is this machine ready to talk? One line per check, a fix for each problem.

The checks, in order: the PortAudio library loads; the input and output devices resolve and
open at the rate ``talk`` would use; the microphone's level over a couple of seconds (silent?
clipping?); a short tone on the speaker (does the stream play without underruns?); the echo
path (a chirp played on the speaker while the microphone records: how much of it comes back,
and how late); the API key (present, never printed); and a connect + ``session.update`` round
trip to the configured endpoint (for ``--backend local``, an in-process local server).

The measurements and verdicts are pure functions on numpy arrays (`levels`, `judge_levels`,
`measure_echo`, `echo_advice`, `check_key`), tested on synthetic signals. The device and network
steps go through the app's own code paths, so what the doctor sees is what ``talk`` will see:
`DeviceAudio` resolves and opens the devices and runs the capture/playback pair, and its echo
path hands over each microphone block with the reference block of the same stretch of time (the
alignment the echo handling works with); `transport.connect` opens the WebSocket and turns
failures into actionable messages.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from voicechat.audio.format import SILENCE_DBFS, rms_dbfs
from voicechat.audio.format import peak as peak_ratio
from voicechat.errors import AudioError, VoicechatError

if TYPE_CHECKING:
    from voicechat.audio.device import DeviceAudio
    from voicechat.config import Settings
    from voicechat.transport import Connection

OK, WARN, FAIL, SKIP = "ok", "warn", "fail", "skip"

# Check names, in the order they are printed.
PORTAUDIO, INPUT, OUTPUT, MIC, SPEAKER, ECHO, KEY, CONNECT = (
    "PortAudio", "input device", "output device", "mic level", "speaker", "echo", "API key", "connect",
)

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


@dataclass(frozen=True, slots=True)
class Check:
    """One result: a name, ``ok``/``warn``/``fail``/``skip``, what was found, and how to fix it."""

    name: str
    status: str
    detail: str
    fix: str | None = None


# ---- the report ---------------------------------------------------------------------------------


def format_check(check: Check) -> str:
    """``ok    speaker        played …`` and, for a warning or failure, an indented ``fix:`` line."""
    from voicechat.transcript import escape_control  # server text may be in a detail

    line = f"{check.status:<5} {check.name:<14} {escape_control(check.detail)}"
    if check.fix and check.status in (WARN, FAIL):
        line += f"\n{'':21}fix: {escape_control(check.fix)}"
    return line


def summary(checks: list[Check]) -> str:
    fails = sum(c.status == FAIL for c in checks)
    warns = sum(c.status == WARN for c in checks)

    def count(n: int, word: str) -> str:
        return f"{n} {word}{'' if n == 1 else 's'}"

    verdict = "ready to talk" if not fails else "fix the failures above before talking"
    return f"{count(fails, 'failure')}, {count(warns, 'warning')}: {verdict}"


def exit_status(checks: list[Check]) -> int:
    """0 when nothing failed (warnings allowed), else 1."""
    return 1 if any(c.status == FAIL for c in checks) else 0


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


def measure_echo(
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
    size = 1 << (r.size + m.size).bit_length()
    spec_r = np.fft.rfft(r, size)
    spec_m = np.fft.rfft(m, size)
    cross = spec_m * np.conj(spec_r)  # irfft: out[k] = sum(mic[n + k] * ref[n]), negative k wrapped
    freqs = np.fft.rfftfreq(size, 1 / rate)
    in_band = (freqs >= band[0]) & (freqs <= band[1])
    whitened = np.where(in_band, cross / np.maximum(np.abs(spec_m), 1e-9), 0.0)
    lo = -(r.size - 1) if min_delay_ms is None else max(-(r.size - 1), math.floor(min_delay_ms * rate / 1000))
    hi = m.size - 1 if max_delay_ms is None else min(m.size - 1, math.ceil(max_delay_ms * rate / 1000))
    lags = np.arange(lo, hi + 1)
    power = np.concatenate([[0.0], np.cumsum(r * r)])
    overlap = power[np.clip(m.size - lags, 0, r.size)] - power[np.clip(-lags, 0, r.size)]
    keep = overlap >= 0.5 * power[-1]
    if not np.any(keep):
        keep = overlap > 0
    lags, overlap = lags[keep], overlap[keep]
    w2 = np.fft.irfft(whitened, size)[lags % size] ** 2
    c2 = np.fft.irfft(cross, size)[lags % size] ** 2
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
    acf_energy = float(np.dot(acf, acf))
    window = float(np.sum(c2[inside])) - raw_noise * float(np.sum(overlap[inside]))
    energy = max(0.0, window) / acf_energy
    echo_db = max(SILENCE_DBFS, 10 * math.log10(energy)) if energy > 0 else SILENCE_DBFS
    return EchoMeasurement(snr_db >= DETECT_SNR_DB, delay_ms, echo_db, snr_db)


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
    and the level left over (dBFS), on the last of several replays (the first ones converge)."""

    erle_db: float
    residual_dbfs: float

    @property
    def works(self) -> bool:
        return self.erle_db >= GOOD_ERLE_DB or self.residual_dbfs <= QUIET_RESIDUAL_DBFS


def measure_cancellation(
    ref: npt.ArrayLike, mic: npt.ArrayLike, rate: int, make: Callable[[int], Any], passes: int = 3
) -> Cancellation | None:
    """Run a fresh canceller (``make(rate)``) over the recording ``passes`` times and measure the
    last pass where the echo was loud (within 20 dB of its loudest 20 ms); None when nothing was."""
    block = rate // 50
    r = np.asarray(ref, dtype=np.int16)
    m = np.asarray(mic, dtype=np.int16)
    n = min(r.size, m.size) // block * block
    if n == 0:
        return None
    canceller = make(rate)
    out = np.zeros(n, dtype=np.int16)
    for _ in range(passes):
        for i in range(0, n, block):
            out[i : i + block] = canceller.process(m[i : i + block], r[i : i + block])
    frames_in = m[:n].astype(np.float64).reshape(-1, block)
    frames_out = out.astype(np.float64).reshape(-1, block)
    power_in = np.mean(frames_in**2, axis=1)
    loud = power_in >= power_in.max() / 100.0
    if not np.any(loud) or power_in.max() == 0.0:
        return None
    echo_db = rms_dbfs(m[:n].reshape(-1, block)[loud].ravel())
    left_db = rms_dbfs(np.round(frames_out[loud]).astype(np.int16).ravel())
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


# ---- API key --------------------------------------------------------------------------------------


def check_key(settings: Settings) -> Check:
    """Whether the key is there; never shows more of it than its last four characters."""
    if settings.backend == "local":
        return Check(KEY, OK, "not needed for --backend local")
    key = settings.api_key
    if not key:
        var = _key_var(settings)
        return Check(
            KEY, WARN, f"{var} is not set",
            fix=f"export {var}=… (or put it in .env), or try --backend local",
        )
    origin = settings.sources.get("api_key") or ""
    where = " in .env" if origin.startswith(".env") else " in the environment" if origin.startswith("environment") else ""
    tail = f" (ends …{key[-4:]})" if len(key) >= 20 else ""
    return Check(KEY, OK, f"set{where}{tail}")


def _key_var(settings: Settings) -> str:
    return "AZURE_OPENAI_API_KEY" if settings.azure else "OPENAI_API_KEY"


# ---- PortAudio and devices ------------------------------------------------------------------------


def check_portaudio() -> Check:
    from voicechat.audio.device import portaudio_version
    from voicechat.errors import PortAudioMissing

    try:
        version = portaudio_version()
    except PortAudioMissing as e:
        return Check(PORTAUDIO, FAIL, e.message, fix=e.hint)
    return Check(PORTAUDIO, OK, f"loaded ({version})")


def check_devices(settings: Settings) -> tuple[list[Check], DeviceAudio | None]:
    """One line per direction: which device, its default rate, and whether it opens at ``talk``'s rate.

    Returns the `DeviceAudio` ``talk`` would build when both directions open, else None.
    """
    from voicechat.audio.device import DeviceAudio, find_device, list_devices

    try:
        found = list_devices()
    except AudioError as e:
        return [Check(INPUT, FAIL, e.message, fix=e.hint), Check(OUTPUT, FAIL, e.message, fix=e.hint)], None
    checks: dict[str, Check] = {}
    described: dict[str, str] = {}
    for kind, name, spec in (("input", INPUT, settings.input_device), ("output", OUTPUT, settings.output_device)):
        flag = f"--{kind}-device"
        try:
            index = find_device(spec, kind)
        except AudioError as e:
            checks[kind] = Check(name, FAIL, f"{flag} {spec!r}: {e.message}", fix=e.hint)
            continue
        if index is None:
            info = next(
                (d for d in found if (d.default_input if kind == "input" else d.default_output)), None
            )
            if info is None or (info.inputs if kind == "input" else info.outputs) == 0:
                checks[kind] = Check(
                    name, FAIL, f"no default {kind} device",
                    fix=f"connect one, or pick one with {flag} (voicechat devices lists them)",
                )
                continue
            chosen = "default"
        else:
            info = next(d for d in found if d.index == index)
            chosen = f"{flag} {spec!r}"
        described[kind] = f"{chosen}: #{info.index} {info.name} ({info.hostapi}), default rate {info.default_rate} Hz"
    if checks:  # a direction did not resolve: report the other one without opening anything
        for kind, name in (("input", INPUT), ("output", OUTPUT)):
            if kind not in checks:
                checks[kind] = Check(name, OK, described[kind])
        return [checks["input"], checks["output"]], None
    try:
        audio = DeviceAudio(
            input_device=settings.input_device, output_device=settings.output_device, sample_rate=settings.sample_rate
        )
    except AudioError as e:
        return [Check(INPUT, FAIL, e.message, fix=e.hint), Check(OUTPUT, FAIL, e.message, fix=e.hint)], None
    result = []
    opened = True
    for kind, name in (("input", INPUT), ("output", OUTPUT)):
        try:
            audio.check_open(kind)
        except AudioError as e:
            result.append(Check(name, FAIL, f"{described[kind]}; {e.message}", fix=e.hint))
            opened = False
        else:
            result.append(Check(name, OK, f"{described[kind]}; opens at {audio.rate} Hz"))
    return result, audio if opened else None


# ---- the audible checks ----------------------------------------------------------------------------


@dataclass
class AudioRecording:
    """What one run of the devices gave: the level phase, the tone, and the echo phase."""

    rate: int
    level_mic: npt.NDArray[np.int16]
    tone_played: bool
    tone_underflows: int
    startup_underflows: int  # output underruns before the first phase (as the streams started)
    echo_ref: npt.NDArray[np.int16]
    echo_mic: npt.NDArray[np.int16]
    chirp_played: bool
    stalled_in: str | None = None  # the phase in which the devices stopped delivering audio


class _Script:
    """Drives one `DeviceAudio.run`: warm-up, microphone level, tone, gap, chirp, tail.

    The phases advance by microphone frames delivered (the audio clock), with wall-clock limits
    so a stalled device ends the run instead of hanging it.
    """

    def __init__(self, audio: DeviceAudio, buffer: Any, seconds: float, note: Callable[[str], None]) -> None:
        self.audio = audio
        self.buffer = buffer
        self.rate = audio.rate
        self.seconds = seconds
        self.note = note
        self.phase = "warmup"
        self.frames = 0  # microphone frames delivered in this phase
        self.level: list[npt.NDArray[np.int16]] = []
        self.ref: list[npt.NDArray[np.int16]] = []
        self.mic: list[npt.NDArray[np.int16]] = []
        self.tone_played = False
        self.chirp_played = False
        self.underflows_before = 0
        self.tone_underflows = 0
        self.startup_underflows = 0
        self.loop = asyncio.get_running_loop()
        self.phase_started = self.loop.time()
        self.stalled_in: str | None = None

    def on_blocks(self, mic: npt.NDArray[np.int16], ref: npt.NDArray[np.int16]) -> None:
        """The echo path's recorder hook: each microphone block with its reference (on the loop)."""
        self.frames += mic.shape[0]
        if self.phase == "level":
            self.level.append(mic.copy())
        elif self.phase in ("chirp", "tail"):
            self.mic.append(mic.copy())
            self.ref.append(ref.copy())

    def _enter(self, phase: str) -> None:
        self.phase = phase
        self.frames = 0
        self.phase_started = self.loop.time()

    def _elapsed(self) -> float:
        return self.loop.time() - self.phase_started

    def on_block(self) -> bool:
        """Called every device block; False ends the run."""
        rate = self.rate
        if self.phase == "warmup":
            if self.frames >= rate // 5:  # 0.2 s: past the streams' start-up
                self.note(f"measuring the microphone for {self.seconds:g} s: say something")
                self.startup_underflows = self.audio.underflows
                self._enter("level")
            elif self._elapsed() > 6.0:
                return self._stall()
        elif self.phase == "level":
            if self.frames >= int(self.seconds * rate):
                self.note("playing a tone, then a sweep (the echo check)")
                self.underflows_before = self.audio.underflows
                self.buffer.write(tone(rate))
                self.buffer.mark_end()
                self._enter("tone")
            elif self._elapsed() > self.seconds + 5.0:
                return self._stall()
        elif self.phase == "tone":
            if not self.buffer.active:
                self.tone_played = True
                self.tone_underflows = self.audio.underflows - self.underflows_before
                self._enter("gap")
            elif self._elapsed() > TONE_S + 3.0:
                return self._stall()
        elif self.phase == "gap":
            if self.frames >= rate * 3 // 10:
                self._enter("chirp")
                self.buffer.write(chirp(rate))
                self.buffer.mark_end()
            elif self._elapsed() > 3.0:
                return self._stall()
        elif self.phase == "chirp":
            if not self.buffer.active:
                self.chirp_played = True
                self._enter("tail")
            elif self._elapsed() > CHIRP_S + 3.0:
                return self._stall()
        elif self.phase == "tail":
            if self.frames >= int(rate * TAIL_MS / 1000):
                return False
            if self._elapsed() > TAIL_MS / 1000 + 3.0:
                return self._stall()
        return True

    def _stall(self) -> bool:
        self.stalled_in = self.phase
        return False


async def record(audio: DeviceAudio, seconds: float, note: Callable[[str], None]) -> AudioRecording:
    """Run the devices through the level, tone and chirp phases (``talk``'s own capture/playback)."""
    from voicechat.audio.echo import EchoPath
    from voicechat.audio.playback import PlaybackBuffer

    rate = audio.rate
    buffer = PlaybackBuffer(capacity_frames=rate * 10, prebuffer_frames=rate // 20, fade_frames=rate // 200)
    script = _Script(audio, buffer, seconds, note)
    echo = EchoPath("off", rate)
    echo.recorder = script.on_blocks
    audio.echo = echo
    await audio.run(buffer, lambda pcm: None, script.on_block)

    def joined(parts: list[npt.NDArray[np.int16]]) -> npt.NDArray[np.int16]:
        return np.concatenate(parts) if parts else np.zeros(0, dtype=np.int16)

    return AudioRecording(
        rate=rate,
        level_mic=joined(script.level),
        tone_played=script.tone_played,
        tone_underflows=script.tone_underflows,
        startup_underflows=script.startup_underflows,
        echo_ref=joined(script.ref),
        echo_mic=joined(script.mic),
        chirp_played=script.chirp_played,
        stalled_in=script.stalled_in,
    )


NO_MIC = "not run: the microphone delivered no audio"


def judge_mic(rec: AudioRecording, seconds: float) -> Check:
    if rec.stalled_in in ("warmup", "level"):
        got = rec.level_mic.size / rec.rate
        when = "no audio" if rec.stalled_in == "warmup" else f"{got:.1f} s of the {seconds:g} s asked for"
        return Check(
            MIC, FAIL, f"the input stream stalled: the microphone delivered {when}",
            fix="check the input device (voicechat devices; --input-device), or close other programs using it",
        )
    return judge_levels(levels(rec.level_mic, rec.rate))


def judge_speaker(rec: AudioRecording) -> Check:
    what = f"a {TONE_S:g} s {TONE_HZ:.0f} Hz tone at {rec.rate} Hz"
    if rec.stalled_in in ("warmup", "level"):
        return Check(SPEAKER, SKIP, NO_MIC)
    if not rec.tone_played:
        return Check(
            SPEAKER, FAIL, f"the output stream did not play {what}",
            fix="check the output device (voicechat devices; --output-device)",
        )
    if rec.tone_underflows:
        return Check(
            SPEAKER, WARN, f"played {what} with {rec.tone_underflows} underrun(s): gaps are audible",
            fix="close other programs using the device, or try --sample-rate 48000 or 44100",
        )
    start = f"; {rec.startup_underflows} as the stream started" if rec.startup_underflows else ""
    return Check(SPEAKER, OK, f"played {what}, no underruns while playing{start} (you should have heard a beep)")


def judge_echo(rec: AudioRecording, *, aec: bool, configured: str) -> Check:
    if rec.stalled_in in ("warmup", "level"):
        return Check(ECHO, SKIP, NO_MIC)
    if rec.stalled_in in ("gap", "tail"):
        return Check(ECHO, FAIL, "not measured: the microphone stopped delivering audio",
                     fix="check the input device (voicechat devices; --input-device)")
    if not rec.chirp_played or rec.echo_ref.size == 0 or not np.any(rec.echo_ref):
        return Check(ECHO, FAIL, "not measured: the speaker did not play the sweep")
    if not np.any(rec.echo_mic):
        return Check(
            ECHO, WARN, "not measured: the microphone is silent",
            fix="check the input device or its mute/volume, then run voicechat doctor again",
        )
    m = measure_echo(isolate(rec.echo_ref, chirp(rec.rate)), rec.echo_mic, rec.rate)
    cancellation = None
    if aec and m.found and m.echo_db >= FAINT_ECHO_DB:
        from voicechat.audio.aec import SUPPORTED_RATES, EchoCanceller

        if rec.rate in SUPPORTED_RATES:
            cancellation = measure_cancellation(rec.echo_ref, rec.echo_mic, rec.rate, EchoCanceller)
    return echo_advice(m, aec=aec, configured=configured, startup_underruns=rec.startup_underflows,
                       cancellation=cancellation)


# ---- connect + session.update -----------------------------------------------------------------------

Connector = Callable[..., Awaitable["Connection"]]


async def _next(events: AsyncIterator[Any], *wanted: type) -> Any:
    async for event in events:
        if isinstance(event, wanted):
            return event
    return None


async def check_connect(
    settings: Settings, *, connector: Connector | None = None, timeout: float = 10.0
) -> Check:
    """Open the WebSocket, wait for ``session.created``, send ``session.update``, wait for the answer."""
    from voicechat.app import close_quietly, open_endpoint
    from voicechat.protocol import client as cmd
    from voicechat.protocol import events as ev
    from voicechat.server import ServerOptions
    from voicechat.session import SESSION_UPDATE_ID
    from voicechat.transport import connect

    if settings.backend == "openai" and not settings.api_key:
        return Check(
            CONNECT, FAIL, "not tried: no API key",
            fix=f"export {_key_var(settings)}=… (or put it in .env), or try --backend local",
        )
    where = "the server"
    async with contextlib.AsyncExitStack() as stack:
        try:
            endpoint = await open_endpoint(settings, stack, options=ServerOptions(recognizer="none"))
            where = endpoint.url.split("?")[0]
            t0 = time.monotonic()
            conn = await (connector or connect)(endpoint, open_timeout=timeout)
            stack.push_async_callback(close_quietly, conn)
            t_open = time.monotonic()
            events = conn.events()
            created = await asyncio.wait_for(_next(events, ev.SessionCreated, ev.ErrorEvent), timeout)
            if created is None:
                return Check(CONNECT, FAIL, f"{where}: the server closed the connection before session.created")
            if isinstance(created, ev.ErrorEvent):
                return Check(CONNECT, FAIL, f"{where}: the server sent an error instead of session.created: "
                             f"{created.message}")
            t_created = time.monotonic()
            await conn.send(cmd.session_update(settings.session_config(), event_id=SESSION_UPDATE_ID))
            reply = await asyncio.wait_for(_next(events, ev.SessionUpdated, ev.ErrorEvent), timeout)
            t_updated = time.monotonic()
        except VoicechatError as e:
            return Check(CONNECT, FAIL, f"{where}: {e.message}", fix=e.hint)
        except TimeoutError:
            return Check(
                CONNECT, FAIL, f"{where}: no answer within {timeout:g} s after the WebSocket opened",
                fix="check --base-url: it should point at a realtime API",
            )
    if reply is None:
        return Check(CONNECT, FAIL, f"{where}: the server closed the connection after session.update")
    if isinstance(reply, ev.ErrorEvent):
        param = f" ({reply.param})" if reply.param else ""
        return Check(
            CONNECT, FAIL, f"{where}: the server rejected session.update: {reply.message}{param}",
            fix="check --model and the session settings (voice, vad, …)",
        )
    ms = lambda a, b: f"{(b - a) * 1000:.1f} ms"  # noqa: E731
    return Check(
        CONNECT, OK,
        f"{where} (model {settings.model}): WebSocket open in {ms(t0, t_open)}, session.created after "
        f"{ms(t_open, t_created)}, session.update round trip {ms(t_created, t_updated)}",
    )


# ---- all of it ------------------------------------------------------------------------------------


async def run_checks(
    settings: Settings,
    *,
    audio: bool = True,
    seconds: float = 2.0,
    emit: Callable[[Check], None] = lambda c: None,
    note: Callable[[str], None] = lambda m: None,
    connector: Connector | None = None,
) -> list[Check]:
    """Every check in order, each handed to ``emit`` as soon as it is known."""
    checks: list[Check] = []

    def add(*found: Check) -> None:
        for check in found:
            checks.append(check)
            emit(check)

    def skipped(why: str) -> None:
        add(Check(MIC, SKIP, why), Check(SPEAKER, SKIP, why), Check(ECHO, SKIP, why))

    add(check_portaudio())
    if checks[-1].status == FAIL:
        add(Check(INPUT, SKIP, "no PortAudio"), Check(OUTPUT, SKIP, "no PortAudio"))
        skipped("no PortAudio")
    else:
        device_checks, device = check_devices(settings)
        add(*device_checks)
        if not audio:
            skipped("--no-audio")
        elif device is None:
            skipped("the devices did not open")
        else:
            add(*await _audible(device, settings, seconds, note))
    add(check_key(settings))
    add(await check_connect(settings, connector=connector))
    return checks


async def _audible(device: DeviceAudio, settings: Settings, seconds: float, note: Callable[[str], None]) -> list[Check]:
    from voicechat.audio.aec import aec_available

    try:
        rec = await record(device, seconds, note)
    except AudioError as e:
        return [Check(name, FAIL, e.message, fix=e.hint) for name in (MIC, SPEAKER, ECHO)]
    return [
        judge_mic(rec, seconds),
        judge_speaker(rec),
        judge_echo(rec, aec=aec_available(), configured=settings.echo),
    ]


def run(
    settings: Settings,
    *,
    audio: bool = True,
    seconds: float = 2.0,
    write: Callable[[str], None],
    note: Callable[[str], None] = lambda m: None,
    connector: Connector | None = None,
) -> int:
    """Run the checks, writing each line as it is known and a summary; the exit status."""
    checks = asyncio.run(
        run_checks(
            settings, audio=audio, seconds=seconds, emit=lambda c: write(format_check(c)), note=note,
            connector=connector,
        )
    )
    write(summary(checks))
    return exit_status(checks)
