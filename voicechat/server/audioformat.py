"""Session audio formats ↔ the server's internal PCM16 24 kHz (G.711 μ-law/A-law in numpy).

Internally every sample is int16 at 24 kHz. ``InputDecoder`` turns appended wire bytes into
internal samples (streaming resampler for the 8 kHz G.711 formats); ``encode_output``
turns a whole reply into wire bytes in one go (replies are known up front).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import soxr  # type: ignore[import-untyped]

from voicechat.protocol.constants import WIRE_RATE

G711_RATE = 8000


def _ulaw_decode(data: bytes) -> np.ndarray:
    u = ~np.frombuffer(data, dtype=np.uint8)
    sign = u & 0x80
    exponent = (u >> 4) & 0x07
    mantissa = u & 0x0F
    magnitude = ((mantissa.astype(np.int32) << 3) + 0x84) << exponent
    sample = magnitude - 0x84
    return np.where(sign != 0, -sample, sample).astype(np.int16)


def _ulaw_encode(samples: np.ndarray) -> bytes:
    x = samples.astype(np.int32)
    sign = np.where(x < 0, 0x80, 0)
    mag = np.minimum(np.abs(x), 32635) + 0x84
    exponent = np.floor(np.log2(mag)).astype(np.int32) - 7
    exponent = np.clip(exponent, 0, 7)
    mantissa = (mag >> (exponent + 3)) & 0x0F
    return (~(sign | (exponent << 4) | mantissa) & 0xFF).astype(np.uint8).tobytes()


def _alaw_decode(data: bytes) -> np.ndarray:
    a = np.frombuffer(data, dtype=np.uint8) ^ 0x55
    sign = a & 0x80
    exponent = (a >> 4) & 0x07
    mantissa = (a & 0x0F).astype(np.int32)
    magnitude = np.where(
        exponent == 0, (mantissa << 4) + 8, ((mantissa << 4) + 0x108) << np.maximum(exponent - 1, 0)
    )
    return np.where(sign != 0, magnitude, -magnitude).astype(np.int16)


def _alaw_encode(samples: np.ndarray) -> bytes:
    x = samples.astype(np.int32)
    sign = np.where(x >= 0, 0x80, 0)
    mag = np.minimum(np.abs(x), 32767)
    exponent = np.clip(np.floor(np.log2(np.maximum(mag, 1))).astype(np.int32) - 7, 0, 7)
    mantissa = np.where(exponent == 0, mag >> 4, mag >> (exponent + 3)) & 0x0F
    return ((sign | (exponent << 4) | mantissa) ^ 0x55).astype(np.uint8).tobytes()


def decode_block(fmt: dict[str, Any], data: bytes) -> np.ndarray:
    """Wire bytes (any format) → int16 samples at the format's own rate."""
    if fmt["type"] == "audio/pcmu":
        return _ulaw_decode(data)
    if fmt["type"] == "audio/pcma":
        return _alaw_decode(data)
    usable = len(data) - len(data) % 2
    return np.frombuffer(data[:usable], dtype="<i2").astype(np.int16)


def decode_whole(fmt: dict[str, Any], data: bytes) -> np.ndarray:
    """A complete clip (e.g. an ``input_audio`` item) → int16 24 kHz."""
    samples = decode_block(fmt, data)
    if fmt["type"] == "audio/pcm" or samples.size == 0:
        return samples
    return np.asarray(soxr.resample(samples, G711_RATE, WIRE_RATE), dtype=np.int16)


def encode_output(fmt: dict[str, Any], samples: np.ndarray) -> bytes:
    """int16 24 kHz → wire bytes of the session's output format."""
    if fmt["type"] == "audio/pcm":
        return np.asarray(samples, dtype="<i2").tobytes()
    low = np.asarray(soxr.resample(samples, WIRE_RATE, G711_RATE), dtype=np.int16) if samples.size else samples
    return _ulaw_encode(low) if fmt["type"] == "audio/pcmu" else _alaw_encode(low)


class InputDecoder:
    """Streaming wire → int16 24 kHz for ``input_audio_buffer.append`` (format may change)."""

    def __init__(self) -> None:
        self._fmt_type = ""
        self._stream: soxr.ResampleStream | None = None
        self._odd = b""

    def decode(self, fmt: dict[str, Any], data: bytes) -> np.ndarray:
        if fmt["type"] != self._fmt_type:
            self._fmt_type = fmt["type"]
            self._odd = b""
            self._stream = None if fmt["type"] == "audio/pcm" else soxr.ResampleStream(G711_RATE, WIRE_RATE, 1, dtype="int16")
        if self._stream is None:
            data = self._odd + data
            self._odd = data[len(data) - len(data) % 2 :]
            return decode_block(fmt, data)
        low = decode_block(fmt, data)
        return np.asarray(self._stream.resample_chunk(low), dtype=np.int16)
