"""Real speech for the echo measurements: espeak-ng voices, rates and levels, cached as WAV.

A synthetic "speech-like" stimulus hid the echo bug this project shipped once (a steady level
never has the hard onsets and the loud syllables of speech), so the echo tests and the echo
table use speech: `reply` (an assistant's answer, ≥ 10 s, sentences with pauses between them,
several voices) and `utterance` (a user's short barge-in). Deterministic per seed; generated
with ``espeak-ng --stdout`` and resampled with soxr; cached under ``$VOICECHAT_SPEECH_CACHE``
(default ``~/.cache/voicechat/speech``), keyed by every parameter.

Levels are *active speech levels*: the RMS over the 10 ms frames within 40 dB of the loudest,
so pauses do not count (`level_dbfs`).
"""

from __future__ import annotations

import hashlib
import io
import os
import random
import shutil
import subprocess
import wave
from pathlib import Path

import numpy as np
import soxr

RATE = 24_000
VOICES = ("en-us", "en-gb", "en-gb-x-rp", "en-us+f3", "en+m3", "en-gb-scotland+f2")
USER_VOICES = ("en-us+m2", "en-gb+f4", "en-029", "en-us+f2")

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
    """espeak-ng is not installed (the Debian package espeak-ng)."""


def _cache_dir() -> Path:
    base = os.environ.get("VOICECHAT_SPEECH_CACHE") or Path.home() / ".cache" / "voicechat" / "speech"
    return Path(base)


def _espeak(text: str, voice: str, wpm: int, pitch: int) -> tuple[np.ndarray, int]:
    exe = shutil.which("espeak-ng")
    if exe is None:
        raise SpeechUnavailable("espeak-ng is not installed (sudo apt-get install espeak-ng)")
    out = subprocess.run([exe, "-v", voice, "-s", str(wpm), "-p", str(pitch), "--stdout", text],
                         capture_output=True, timeout=60, check=True)
    data = out.stdout
    # espeak-ng's --stdout header carries no valid length: read the rate from it, the rest as PCM.
    with wave.open(io.BytesIO(data[:44] + b"\0" * 2)) as w:
        rate = w.getframerate()
    return np.frombuffer(data[44 : 44 + (len(data) - 44) // 2 * 2], dtype="<i2"), rate


def level_dbfs(x: np.ndarray, frame: int = RATE // 100) -> float:
    """Active speech level of int16 (or float, full scale 32768) audio: RMS over frames within
    40 dB of the loudest frame."""
    y = np.asarray(x, dtype=np.float64)
    n = y.size // frame
    if n == 0:
        return -120.0
    power = np.mean(y[: n * frame].reshape(n, frame) ** 2, axis=1)
    active = power[power >= power.max() * 1e-4]
    return 10 * float(np.log10(max(float(np.mean(active)), 1e-12) / 32768.0**2))


def onset_ms(x: np.ndarray, rate: int = RATE) -> float:
    """Where the first word starts, in ms: the first 10 ms frame within 20 dB of the active
    speech level (`level_dbfs`), i.e. the first sound a listener (or a VAD) takes for speech,
    not the breath or the soft lead-in before it."""
    frame = rate // 100
    y = np.asarray(x, dtype=np.float64)
    n = y.size // frame
    power = np.mean(y[: n * frame].reshape(n, frame) ** 2, axis=1)
    floor = 32768.0**2 * 10 ** ((level_dbfs(x, frame) - 20.0) / 10)
    return float(np.argmax(power >= floor)) * 10.0


def _at_level(x: np.ndarray, dbfs: float) -> np.ndarray:
    y = x.astype(np.float64) * 10 ** ((dbfs - level_dbfs(x)) / 20)
    if np.max(np.abs(y)) > 32767:
        raise ValueError(f"speech at {dbfs} dBFS would clip (peak {20 * np.log10(np.max(np.abs(y)) / 32768):.1f} dBFS)")
    return np.round(y).astype(np.int16)


def _cached(key: str, make: object) -> np.ndarray:
    path = _cache_dir() / (hashlib.sha256(key.encode()).hexdigest()[:24] + ".npy")
    if path.exists():
        return np.load(path)
    audio = make()  # type: ignore[operator]
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".{os.getpid()}.tmp.npy")
    np.save(tmp, audio)
    tmp.replace(path)
    return audio


def say(text: str, *, voice: str = "en-us", wpm: int = 170, pitch: int = 50, level_dbfs: float = -24.0,
        rate: int = RATE) -> np.ndarray:
    """``text`` spoken by espeak-ng, int16 mono at ``rate``, at an active level of ``level_dbfs``."""

    def make() -> np.ndarray:
        raw, raw_rate = _espeak(text, voice, wpm, pitch)
        y = soxr.resample(raw.astype(np.float32), raw_rate, rate) if raw_rate != rate else raw.astype(np.float32)
        return _at_level(np.asarray(y), level_dbfs)

    return _cached(f"say|{text}|{voice}|{wpm}|{pitch}|{level_dbfs}|{rate}", make)


def reply(seed: int, *, seconds: float = 12.0, level_dbfs: float = -24.0, rate: int = RATE) -> np.ndarray:
    """An assistant's reply of at least ``seconds``: sentences in one voice, 200-700 ms apart,
    some starting hard after silence (plosives, "Quick", "Two", "Put")."""

    def make() -> np.ndarray:
        rng = random.Random(seed)
        voice = VOICES[seed % len(VOICES)]
        wpm, pitch = rng.randint(150, 195), rng.randint(35, 65)
        parts: list[np.ndarray] = []
        total = 0
        order = list(SENTENCES)
        rng.shuffle(order)
        k = 0
        while total < seconds * rate:
            s = say(order[k % len(order)], voice=voice, wpm=wpm, pitch=pitch, level_dbfs=-30.0, rate=rate)
            gap = np.zeros(int(rng.uniform(0.2, 0.7) * rate), dtype=np.int16)
            parts += [s, gap]
            total += s.size + gap.size
            k += 1
        return _at_level(np.concatenate(parts[:-1]), level_dbfs)

    return _cached(f"reply|{seed}|{seconds}|{level_dbfs}|{rate}", make)


def utterance(seed: int, *, level_dbfs: float = -24.0, rate: int = RATE) -> np.ndarray:
    """A user's short barge-in (about 1-2 s) in a voice the replies do not use."""
    rng = random.Random(seed)
    return say(UTTERANCES[seed % len(UTTERANCES)], voice=USER_VOICES[seed % len(USER_VOICES)],
               wpm=rng.randint(160, 200), pitch=rng.randint(40, 70), level_dbfs=level_dbfs, rate=rate)
