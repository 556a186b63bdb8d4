"""Speech-like test audio (no espeak needed) and the conversation scripts the scenarios use."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from voicechat.audio.wav import write_wav

RATE = 24000


def speech_like(seconds: float, rate: int = RATE, f0: float = 140.0) -> np.ndarray:
    """Voiced, syllable-modulated harmonics: loud enough for any VAD (as tests/test_talk_loopback.py)."""
    t = np.arange(int(seconds * rate)) / rate
    voice = sum(np.sin(2 * np.pi * f0 * k * t) / k for k in range(1, 6))
    envelope = 0.55 + 0.45 * np.sin(2 * np.pi * 4.0 * t)
    return (voice * envelope * 5000).astype(np.int16)


def silence(seconds: float, rate: int = RATE) -> np.ndarray:
    return np.zeros(int(seconds * rate), dtype=np.int16)


def barge_in_script(cycles: int) -> np.ndarray:
    """Turn 1, then ``cycles`` turns that each start 0.9 s after the previous turn ended.

    With a 400 ms end-of-turn silence the reply to each turn starts playing ~0.45 s after the
    turn ends, so every following turn talks over it: one barge-in per cycle.
    """
    parts = [silence(0.3), speech_like(1.5)]
    for k in range(cycles):
        parts += [silence(0.9), speech_like(1.0, f0=120.0 + 10 * (k % 5))]
    parts.append(silence(0.3))
    return np.concatenate(parts)


def turns_script(turns: int, speech_s: float = 3.0, gap_s: float = 4.2) -> np.ndarray:
    """Polite turns: each reply (the echo, ~speech + 0.7 s) plays out in the gap before the next turn."""
    parts = [silence(0.3)]
    for k in range(turns):
        parts += [speech_like(speech_s, f0=120.0 + 10 * (k % 5)), silence(gap_s)]
    return np.concatenate(parts)


def write(path: Path, samples: np.ndarray) -> Path:
    write_wav(path, samples, RATE)
    return path
