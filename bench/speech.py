"""Real speech for the echo measurements: espeak-ng voices, rates and levels, cached as WAV.

A synthetic "speech-like" stimulus hid the echo bug this project shipped once (a steady level
never has the hard onsets and the loud syllables of speech), so the echo tests and the echo
table use speech:

* `say`: one text in one espeak-ng voice, rate and pitch, at an active speech level, without
  espeak-ng's leading and trailing silence (~50 and ~315 ms).
* `reply`: an assistant's answer of at least ``seconds`` (12 s by default): sentences from a
  fixed pool of varied English, in a voice, rate and pitch chosen by the seed among `VOICES`
  (American, British, Received Pronunciation, Scottish; male and female variants), with
  pauses of 200-700 ms between sentences and hard onsets (every sentence starts on a plosive —
  "Take", "Keep", "Tickets", "Quick", "Two", "Put" — abruptly after its pause, and the reply
  itself starts on its first sample of speech).
* `utterance`: a user's short barge-in ("Wait, stop, I have a question."), 1.2-2 s, in a voice
  of `USER_VOICES`, none of which a reply uses.
* `onset_ms`: where speech starts (see there).

Deterministic per seed (espeak-ng is deterministic; everything else is seeded). Generated with
``espeak-ng --stdout``, resampled with soxr to ``rate``, and cached as 16-bit WAV under
``$VOICECHAT_SPEECH_CACHE`` (default ``~/.cache/voicechat/speech``), one file per call keyed by
every parameter. Without espeak-ng (the Debian package ``espeak-ng``) every generator raises
`SpeechUnavailable`, which tests turn into a skip.

Levels are *active speech levels* (`level_dbfs`): the RMS over the 10 ms frames that are not
silence, i.e. within 40 dB of the loudest frame, so pauses do not count (a simplified ITU-T
P.56). A level whose peaks would clip is refused with ValueError.
"""

from __future__ import annotations

import hashlib
import io
import os
import random
import shutil
import subprocess
import wave
from collections.abc import Callable
from pathlib import Path

import numpy as np
import soxr

RATE = 24_000
CACHE_VERSION = 2  # bump when what a key produces changes
# Reply voices: espeak-ng's English languages with its voice variants (``+f3``: a female
# variant, ``+m3``: another male one); all exist in espeak-ng 1.51 (``espeak-ng --voices=en``,
# ``--voices=variant``).
VOICES = ("en-us", "en-gb", "en-gb-x-rp", "en-us+f3", "en+m3", "en-gb-scotland+f2")
USER_VOICES = ("en-us+m2", "en-gb+f4", "en-029", "en-us+f2")
SILENCE_DB = 40.0  # frames this far below the loudest are silence
TRIM_DB = 50.0  # `say` trims samples this far below its peak off both ends

SENTENCES = (
    "Take the train if it rains; otherwise a bicycle gets you there faster.",
    "Keep in mind that the bridge closes at nine, so plan the trip back early.",
    "Tickets cost twelve pounds each, or thirty for a family of four.",
    "Packing light matters more than you think on a day like this.",
    "By the way, the museum is free on the first Sunday of every month.",
    "Check the forecast before you go: the wind picks up after lunch.",
    "Good coffee is easy to find near the station, and bakeries open at seven.",
    "Put the kettle on, cut the bread, and toast it until it turns golden.",
    "Two things decide the route: the weather, and how much time you have.",
    "Quick answer: yes, but bring a coat, because the evenings get cold.",
    "Trains leave every quarter of an hour, and the last one is at midnight.",
    "Don't forget your charger; the hostel only has a couple of sockets.",
)
UTTERANCES = (
    "Wait, stop, I have a question.",
    "Hold on, tell me about the bus.",
    "Sorry, what about Sunday?",
    "Stop, that's enough, thanks.",
    "Actually, can we go back?",
)


class SpeechUnavailable(RuntimeError):
    """espeak-ng is not installed (the Debian package espeak-ng) or cannot speak."""


def _cache_dir() -> Path:
    base = os.environ.get("VOICECHAT_SPEECH_CACHE") or Path.home() / ".cache" / "voicechat" / "speech"
    return Path(base)


def _espeak(text: str, voice: str, wpm: int, pitch: int) -> tuple[np.ndarray, int]:
    exe = shutil.which("espeak-ng")
    if exe is None:
        raise SpeechUnavailable("espeak-ng is not installed (sudo apt-get install espeak-ng)")
    try:
        out = subprocess.run([exe, "-v", voice, "-s", str(wpm), "-p", str(pitch), "--stdout", text],
                             capture_output=True, timeout=60, check=True)
    except (subprocess.CalledProcessError, subprocess.TimeoutExpired) as e:
        raise SpeechUnavailable(f"espeak-ng -v {voice} failed: {getattr(e, 'stderr', b'') or e}") from e
    data = out.stdout
    if len(data) <= 44:
        raise SpeechUnavailable(f"espeak-ng -v {voice} produced no audio")
    # espeak-ng's --stdout header carries no valid length: read the rate from it, the rest as PCM.
    with wave.open(io.BytesIO(data[:44] + b"\0" * 2)) as w:
        rate = w.getframerate()
    return np.frombuffer(data[44 : 44 + (len(data) - 44) // 2 * 2], dtype="<i2"), rate


def _frame_power(x: np.ndarray, frame: int) -> np.ndarray:
    y = np.asarray(x, dtype=np.float64)
    n = y.size // frame
    return np.mean(y[: n * frame].reshape(n, frame) ** 2, axis=1)


def level_dbfs(x: np.ndarray, frame: int = RATE // 100) -> float:
    """Active speech level of int16 (or float, full scale 32768) audio, in dBFS: the RMS over
    the ``frame``-long frames within `SILENCE_DB` of the loudest frame."""
    power = _frame_power(x, frame)
    if power.size == 0 or power.max() <= 0:
        return -120.0
    active = power[power >= power.max() * 10 ** (-SILENCE_DB / 10)]
    return 10 * float(np.log10(float(np.mean(active)) / 32768.0**2))


def onset_ms(x: np.ndarray, rate: int = RATE) -> float:
    """Where speech starts in ``x``, in ms from its first sample, to 1 ms.

    The first point (on a 1 ms grid) from which the energy of each of the next four 5 ms windows
    is within 20 dB of the active speech level (`level_dbfs`): the first sound a listener (or a
    VAD) takes for speech, not a breath or a soft lead-in before it, nor a lone click. A sudden
    onset at sample ``n`` is reported at ``n`` (to 1 ms). Raises ValueError for audio with no
    speech in it.
    """
    y = np.asarray(x, dtype=np.float64)
    short, sustain = max(1, rate // 200), max(1, rate // 50)
    if y.size < sustain:
        raise ValueError("too short to hold speech")
    floor = 32768.0**2 * 10 ** ((level_dbfs(y, rate // 100) - 20.0) / 10)
    # Silence before the first sample, so that speech from sample 0 on has its onset at 0.
    c = np.concatenate([np.zeros(short + 1), np.cumsum(y * y)])
    starts = np.arange(0, c.size - sustain, max(1, rate // 1000))
    loud = np.ones(starts.size, dtype=bool)
    for k in range(0, sustain - short + 1, short):  # every 5 ms of the next 20 ms is loud
        loud &= (c[starts + k + short] - c[starts + k]) / short >= floor
    if not np.any(loud):
        raise ValueError("no speech found")
    return float(starts[int(np.argmax(loud))]) * 1000 / rate


def _at_level(x: np.ndarray, dbfs: float) -> np.ndarray:
    y = x.astype(np.float64) * 10 ** ((dbfs - level_dbfs(x)) / 20)
    peak = float(np.max(np.abs(y)))
    if peak > 32767:
        raise ValueError(f"speech at an active level of {dbfs} dBFS would clip (its peak would be "
                         f"{20 * np.log10(peak / 32768):+.1f} dBFS)")
    return np.round(y).astype(np.int16)


def _trim(x: np.ndarray, rate: int) -> np.ndarray:
    """``x`` without what lies more than `TRIM_DB` below its peak at either end (a 2 ms fade
    out where it is cut; no fade in: the onset stays as hard as espeak-ng made it)."""
    a = np.abs(x.astype(np.float64))
    loud = np.nonzero(a >= a.max() * 10 ** (-TRIM_DB / 20))[0]
    y = x[loud[0] : loud[-1] + 1].astype(np.float64)
    fade = min(y.size, rate // 500)
    y[y.size - fade :] *= np.linspace(1.0, 0.0, fade)
    return y


def _cached(key: str, rate: int, make: Callable[[], np.ndarray]) -> np.ndarray:
    path = _cache_dir() / (hashlib.sha256(f"v{CACHE_VERSION}|{key}".encode()).hexdigest()[:24] + ".wav")
    if path.exists():
        try:
            with wave.open(str(path)) as w:
                if w.getframerate() == rate and w.getnchannels() == 1 and w.getsampwidth() == 2:
                    return np.frombuffer(w.readframes(w.getnframes()), dtype="<i2").copy()
        except (OSError, EOFError, wave.Error):
            pass  # a broken entry: make it again
    audio = make()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".{os.getpid()}.tmp")
    with wave.open(str(tmp), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(audio.astype("<i2").tobytes())
    tmp.replace(path)
    return audio


def say(text: str, *, voice: str = "en-us", wpm: int = 170, pitch: int = 50, level_dbfs: float = -24.0,
        rate: int = RATE) -> np.ndarray:
    """``text`` spoken by espeak-ng (``voice``, ``wpm`` words a minute, ``pitch`` 0-99), int16
    mono at ``rate``, trimmed of silence at both ends, at an active speech level of
    ``level_dbfs`` (ValueError if its peaks would clip there)."""

    def make() -> np.ndarray:
        raw, raw_rate = _espeak(text, voice, wpm, pitch)
        y = raw.astype(np.float64)
        if raw_rate != rate:
            y = np.asarray(soxr.resample(y, raw_rate, rate, quality="VHQ"))
        return _at_level(_trim(y, rate), level_dbfs)

    return _cached(f"say|{text}|{voice}|{wpm}|{pitch}|{level_dbfs}|{rate}", rate, make)


def reply(seed: int, *, seconds: float = 12.0, level_dbfs: float = -24.0, rate: int = RATE) -> np.ndarray:
    """An assistant's reply of at least ``seconds``: sentences of `SENTENCES` in a seeded order,
    in one voice of `VOICES` (by seed) at a seeded rate (150-195 wpm) and pitch (35-65), with
    200-700 ms of silence between sentences, at an active level of ``level_dbfs``."""

    def make() -> np.ndarray:
        rng = random.Random(seed)
        voice = VOICES[seed % len(VOICES)]
        wpm, pitch = rng.randint(150, 195), rng.randint(35, 65)
        order = list(SENTENCES)
        rng.shuffle(order)
        parts: list[np.ndarray] = []
        total, k = 0, 0
        while True:
            s = say(order[k % len(order)], voice=voice, wpm=wpm, pitch=pitch, level_dbfs=-30.0, rate=rate)
            parts.append(s)
            total += s.size
            k += 1
            if total >= seconds * rate:
                break
            gap = np.zeros(int(rng.uniform(0.2, 0.7) * rate), dtype=np.int16)
            parts.append(gap)
            total += gap.size
        return _at_level(np.concatenate(parts), level_dbfs)

    return _cached(f"reply|{seed}|{seconds}|{level_dbfs}|{rate}", rate, make)


def utterance(seed: int, *, seconds: tuple[float, float] = (1.2, 2.0), level_dbfs: float = -24.0,
              rate: int = RATE) -> np.ndarray:
    """A user's short barge-in: one of `UTTERANCES` (by seed) in a voice of `USER_VOICES` (by
    seed; no reply uses them) at a seeded pitch, spoken at a rate that makes it last between
    ``seconds[0]`` and ``seconds[1]`` (from a seeded 160-200 wpm, faster or slower as needed)."""
    lo, hi = seconds
    if not 0 < lo < hi:
        raise ValueError(f"seconds must be a range (low, high), not {seconds}")
    rng = random.Random(seed)
    text, voice = UTTERANCES[seed % len(UTTERANCES)], USER_VOICES[seed % len(USER_VOICES)]
    wpm, pitch = rng.randint(160, 200), rng.randint(40, 70)
    for _ in range(6):
        x = say(text, voice=voice, wpm=wpm, pitch=pitch, level_dbfs=level_dbfs, rate=rate)
        length = x.size / rate
        if lo <= length <= hi:
            return x
        wpm = int(np.clip(round(wpm * length / ((lo + hi) / 2)), 80, 450))  # espeak-ng's range
    raise ValueError(f"utterance {seed} ({text!r}, {voice}) does not fit {lo}-{hi} s ({length:.2f} s at {wpm} wpm)")
