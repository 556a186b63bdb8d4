"""The session's wire audio when it is not PCM16 at 24 kHz: G.711 μ-law or A-law at 8 kHz.

Everything inside voicechat (capture, playback, the session's clocks, files) stays PCM16 at
24 kHz; :class:`WireAudio` converts at the edge. Going out, 24 kHz is low-passed and kept every
third sample, then companded to one byte a sample. Coming in, each byte is expanded and
interpolated to exactly three 24 kHz samples, so a reply's played sample count divided by 24
is its position in milliseconds in the server's 8 kHz clock as well (each millisecond is 8
bytes on the wire): truncation stays exact. The filters keep their history between calls, so
audio cut into appends or deltas is converted as one signal.

Core: numpy only, no I/O.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

G711_RATE = 8000
RATIO = 3  # 24 kHz / 8 kHz
FORMATS = ("pcm", "pcmu", "pcma")
"""``--audio-format`` values: PCM16 24 kHz, G.711 μ-law 8 kHz, G.711 A-law 8 kHz."""

_TAPS_PER_PHASE = 8  # interpolator taps per output phase: 24 taps, 0.5 ms of delay at 8 kHz


def _lowpass(taps: int, cutoff_hz: float, rate: int) -> npt.NDArray[np.float64]:
    """A windowed-sinc low-pass of unit DC gain."""
    n = np.arange(taps) - (taps - 1) / 2
    h = np.sinc(2 * cutoff_hz / rate * n) * np.blackman(taps)
    return h / h.sum()


_UP = _lowpass(RATIO * _TAPS_PER_PHASE, 3800, G711_RATE * RATIO) * RATIO
_UP_PHASES = [_UP[p::RATIO] for p in range(RATIO)]
_DOWN = _lowpass(31, 3600, G711_RATE * RATIO)


# ---- companding (ITU-T G.711) -------------------------------------------------------------

def _ulaw_table() -> npt.NDArray[np.int16]:
    code = ~np.arange(256, dtype=np.int32) & 0xFF
    exponent, mantissa = (code >> 4) & 7, code & 0x0F
    value = (((mantissa << 3) + 0x84) << exponent) - 0x84
    return np.where(code & 0x80, -value, value).astype(np.int16)


def _alaw_table() -> npt.NDArray[np.int16]:
    code = np.arange(256, dtype=np.int32) ^ 0x55
    exponent, mantissa = (code >> 4) & 7, code & 0x0F
    value = np.where(exponent == 0, (mantissa << 4) + 8, ((mantissa << 4) + 0x108) << np.maximum(exponent - 1, 0))
    return np.where(code & 0x80, value, -value).astype(np.int16)


_EXPAND = {"pcmu": _ulaw_table(), "pcma": _alaw_table()}


def _segment(magnitude: npt.NDArray[np.int32], first: int) -> npt.NDArray[np.int32]:
    """The G.711 segment (0–7) of each magnitude, segment 1 starting at ``first``."""
    return np.clip(np.floor(np.log2(np.maximum(magnitude, 1) / first)).astype(np.int32) + 1, 0, 7)


def compress(fmt: str, samples: npt.NDArray[np.int16]) -> bytes:
    """int16 samples → one G.711 byte each."""
    x = samples.astype(np.int32)
    if fmt == "pcmu":
        magnitude = np.minimum(np.abs(x), 32635) + 0x84
        exponent = _segment(magnitude, 0x100)
        mantissa = (magnitude >> (exponent + 3)) & 0x0F
        code = np.where(x < 0, 0x80, 0) | (exponent << 4) | mantissa
        return (~code & 0xFF).astype(np.uint8).tobytes()
    magnitude = np.minimum(np.abs(x), 32767)
    exponent = _segment(magnitude, 0x100)
    mantissa = np.where(exponent == 0, magnitude >> 4, magnitude >> (exponent + 3)) & 0x0F
    code = np.where(x >= 0, 0x80, 0) | (exponent << 4) | mantissa
    return ((code ^ 0x55) & 0xFF).astype(np.uint8).tobytes()


def expand(fmt: str, data: bytes) -> npt.NDArray[np.int16]:
    """G.711 bytes → int16 samples at 8 kHz."""
    return _EXPAND[fmt][np.frombuffer(data, dtype=np.uint8)]


def _clip16(x: npt.NDArray[np.float64]) -> npt.NDArray[np.int16]:
    return np.clip(np.rint(x), -32768, 32767).astype(np.int16)


class WireAudio:
    """Converts the session's audio between voicechat's PCM16 24 kHz and the wire format."""

    def __init__(self, fmt: str = "pcm") -> None:
        if fmt not in FORMATS:
            raise ValueError(f"unknown audio format {fmt!r}")
        self.fmt = fmt
        self._out_history = np.zeros(len(_DOWN) - 1)
        self._out_phase = 0  # input samples to skip before the next one kept
        self._in_history = np.zeros(_TAPS_PER_PHASE - 1)

    @property
    def passthrough(self) -> bool:
        return self.fmt == "pcm"

    def outgoing(self, pcm: bytes) -> bytes:
        """Microphone PCM16 24 kHz → wire bytes (about a sixth as many for G.711)."""
        if self.passthrough:
            return pcm
        x = np.frombuffer(pcm[: len(pcm) - len(pcm) % 2], dtype="<i2").astype(np.float64)
        if x.size == 0:
            return b""
        buffered = np.concatenate([self._out_history, x])
        self._out_history = buffered[-(len(_DOWN) - 1):]
        filtered = np.convolve(buffered, _DOWN, mode="valid")  # one value per sample of x
        kept = filtered[self._out_phase::RATIO]
        self._out_phase = (self._out_phase - x.size) % RATIO
        return compress(self.fmt, _clip16(kept))

    def incoming(self, data: bytes) -> bytes:
        """Wire bytes of a reply → PCM16 24 kHz (exactly three samples a G.711 byte)."""
        if self.passthrough:
            return data
        x = expand(self.fmt, data).astype(np.float64)
        if x.size == 0:
            return b""
        buffered = np.concatenate([self._in_history, x])
        self._in_history = buffered[-(_TAPS_PER_PHASE - 1):]
        out = np.empty(x.size * RATIO)
        for phase, taps in enumerate(_UP_PHASES):
            out[phase::RATIO] = np.convolve(buffered, taps, mode="valid")
        return _clip16(out).astype("<i2").tobytes()

    def new_reply(self) -> None:
        """Start the next reply's audio without the last one's tail in the interpolator."""
        self._in_history[:] = 0
