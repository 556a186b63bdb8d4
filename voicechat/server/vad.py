"""Frame-energy voice activity detection for the server's turn detection (pure numpy).

Audio is cut into 10 ms frames; a frame is *loud* when its RMS reaches the level that
``threshold`` maps to. The mapping is logarithmic: ``threshold`` 0..1 spans −60..−10 dBFS
of frame RMS (``level_dbfs = -60 + 50 * threshold``), so the default 0.5 needs −35 dBFS
(an int16 RMS of about 580): ordinary close-mic speech passes, room hiss does not, and a
higher threshold needs louder speech, as the real ``server_vad`` documents.

Speech starts after ``MIN_SPEECH_MS`` of consecutive loud frames (the onset is the first
of them) and stops once ``silence_duration_ms`` of consecutive quiet frames have passed
(the stop position is the end of that silence, as the real ``audio_end_ms`` is).

``semantic_vad`` is emulated with the same detector and an eagerness → silence mapping
(``SEMANTIC_SILENCE_MS``): it cannot judge whether an utterance sounds finished.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from voicechat.protocol.constants import WIRE_RATE

FRAME = WIRE_RATE // 100  # 10 ms
FRAME_MS = 10
MIN_SPEECH_MS = 40
SEMANTIC_SILENCE_MS = {"high": 300, "auto": 600, "medium": 600, "low": 1200}
SEMANTIC_PREFIX_MS = 300
SEMANTIC_THRESHOLD = 0.5


def threshold_rms(threshold: float) -> float:
    """Frame RMS (int16 units) that counts as speech for a 0..1 ``threshold``."""
    dbfs = -60.0 + 50.0 * min(max(threshold, 0.0), 1.0)
    return float(32768.0 * 10.0 ** (dbfs / 20.0))


@dataclass(frozen=True)
class VadParams:
    threshold: float = 0.5
    prefix_padding_ms: int = 300
    silence_duration_ms: int = 200

    @classmethod
    def from_turn_detection(cls, td: dict[str, Any]) -> VadParams:
        """Parameters for a validated ``turn_detection`` object (server or semantic)."""
        if td["type"] == "semantic_vad":
            silence = SEMANTIC_SILENCE_MS[td.get("eagerness") or "auto"]
            return cls(SEMANTIC_THRESHOLD, SEMANTIC_PREFIX_MS, silence)
        return cls(float(td["threshold"]), int(td["prefix_padding_ms"]), int(td["silence_duration_ms"]))


@dataclass(frozen=True)
class VadEvent:
    """``start``: speech onset sample; ``stop``: sample where the ending silence completed."""

    kind: Literal["start", "stop"]
    sample: int


class EnergyVad:
    """Streaming detector over the session's cumulative input timeline (in samples)."""

    def __init__(self, params: VadParams, position: int = 0) -> None:
        self.params = params
        self._level = threshold_rms(params.threshold)
        self.reset(position)

    def reset(self, position: int) -> None:
        """Forget all state, e.g. after ``input_audio_buffer.clear``; resume at ``position``."""
        self._pending = np.zeros(0, dtype=np.int16)
        self._pos = position  # timeline sample where ``_pending`` starts
        self._run_start = -1  # first sample of the current loud run (not in speech)
        self._run_frames = 0
        self._quiet_frames = 0
        self.in_speech = False

    def process(self, samples: np.ndarray) -> list[VadEvent]:
        """Feed int16 samples; return the start/stop transitions they complete."""
        data = np.concatenate([self._pending, samples]) if self._pending.size else samples
        n_frames = data.size // FRAME
        self._pending = data[n_frames * FRAME :].copy()
        if n_frames == 0:
            return []
        frames = data[: n_frames * FRAME].astype(np.float32).reshape(n_frames, FRAME)
        loud = np.sqrt(np.mean(frames * frames, axis=1)) >= self._level
        events: list[VadEvent] = []
        for i, is_loud in enumerate(loud):
            start = self._pos + i * FRAME
            event = self._step(bool(is_loud), start)
            if event is not None:
                events.append(event)
        self._pos += n_frames * FRAME
        return events

    def _step(self, loud: bool, frame_start: int) -> VadEvent | None:
        if not self.in_speech:
            if not loud:
                self._run_frames = 0
                return None
            if self._run_frames == 0:
                self._run_start = frame_start
            self._run_frames += 1
            if self._run_frames * FRAME_MS >= MIN_SPEECH_MS:
                self.in_speech = True
                self._quiet_frames = 0
                return VadEvent("start", self._run_start)
            return None
        if loud:
            self._quiet_frames = 0
            return None
        self._quiet_frames += 1
        if self._quiet_frames * FRAME_MS >= max(self.params.silence_duration_ms, FRAME_MS):
            self.in_speech = False
            self._run_frames = 0
            return VadEvent("stop", frame_start + FRAME)
        return None
