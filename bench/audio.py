"""Speech-like test audio (no espeak needed) and the conversation scripts the scenarios use.

Every script also says where its user turns start (mic sample indices at 24 kHz), so a run can
tell the user's own speech from anything else the server or the echo path reacted to.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from voicechat.audio.wav import load_wav_at, write_wav

RATE = 24000
QUESTION = Path(__file__).resolve().parents[1] / "voicechat" / "data" / "question.wav"


def speech_like(seconds: float, rate: int = RATE, f0: float = 140.0) -> np.ndarray:
    """Voiced, syllable-modulated harmonics: loud enough for any VAD (as tests/loopback/test_talk_loopback.py)."""
    t = np.arange(int(seconds * rate)) / rate
    voice = sum(np.sin(2 * np.pi * f0 * k * t) / k for k in range(1, 6))
    envelope = 0.55 + 0.45 * np.sin(2 * np.pi * 4.0 * t)
    return (voice * envelope * 5000).astype(np.int16)


def silence(seconds: float, rate: int = RATE) -> np.ndarray:
    return np.zeros(int(seconds * rate), dtype=np.int16)


def recorded_speech() -> np.ndarray:
    """``voicechat/data/question.wav`` at 24 kHz: 2.4 s of a real voice, one turn (pauses < 0.2 s).

    The local server's echo brain plays a turn back, so with this as the user the replies are
    real speech too, which an echo canceller handles as it would a real assistant. The
    synthetic `speech_like` voice is strictly periodic, which cancellers do not treat as speech.
    """
    return load_wav_at(QUESTION, RATE)


def barge_in_script(cycles: int) -> np.ndarray:
    """Turn 1, then ``cycles`` turns that each start 0.9 s after the previous turn ended.

    With a 400 ms end-of-turn silence the reply to each turn starts playing ~0.45 s after the
    turn ends, so every following turn talks over it: one barge-in per cycle.
    """
    return np.concatenate(_barge_in_parts(cycles))


def barge_in_onsets(cycles: int) -> list[int]:
    """The sample index (24 kHz) where each talk-over turn of `barge_in_script` starts speaking."""
    parts = _barge_in_parts(cycles)
    starts = np.cumsum([0] + [p.size for p in parts[:-1]])
    # parts: silence, turn 1, then (silence, talk-over turn) per cycle, then trailing silence
    return [int(starts[3 + 2 * k]) for k in range(cycles)]


def _barge_in_parts(cycles: int) -> list[np.ndarray]:
    parts = [silence(0.3), speech_like(1.5)]
    for k in range(cycles):
        parts += [silence(0.9), speech_like(1.0, f0=120.0 + 10 * (k % 5))]
    parts.append(silence(0.3))
    return parts


def turns_script(turns: int, speech_s: float = 3.0, gap_s: float = 4.2, recorded: bool = False) -> np.ndarray:
    """Polite turns: each reply (the echo, ~speech + 0.7 s) plays out in the gap before the next turn.

    ``recorded``: every turn is `recorded_speech` (``speech_s`` is then ignored)."""
    return np.concatenate(_turns_parts(turns, speech_s, gap_s, recorded))


def turns_onsets(turns: int, speech_s: float = 3.0, gap_s: float = 4.2, recorded: bool = False) -> list[int]:
    """The sample index where each turn of `turns_script` starts."""
    parts = _turns_parts(turns, speech_s, gap_s, recorded)
    starts = np.cumsum([0] + [p.size for p in parts[:-1]])
    return [int(starts[1 + 2 * k]) for k in range(turns)]


def _turns_parts(turns: int, speech_s: float, gap_s: float, recorded: bool) -> list[np.ndarray]:
    voice = recorded_speech() if recorded else None
    parts = [silence(0.3)]
    for k in range(turns):
        turn = voice if voice is not None else speech_like(speech_s, f0=120.0 + 10 * (k % 5))
        parts += [turn, silence(gap_s)]
    return parts


def write(path: Path, samples: np.ndarray) -> Path:
    write_wav(path, samples, RATE)
    return path
