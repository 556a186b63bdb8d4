"""Sample-format arithmetic for the wire format (PCM16 little-endian mono at 24 kHz).

This module owns the conversions every other audio module shares: PCM16 bytes or int16 arrays to
float32 in [-1, 1) and back (clipped and rounded), sample-count/millisecond conversions, level
measurement (RMS in dBFS, peak) and channel downmixing. It is pure numpy: no devices, no clock,
no I/O. Float full scale is 1.0 == 32768 int16 units, so int16 -> float -> int16 is exact.
"""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt

# Defined once, with the protocol's facts; named here too for the audio modules that import it.
from voicechat.protocol.constants import WIRE_RATE as WIRE_RATE

BYTES_PER_SAMPLE = 2
"""Bytes per mono PCM16 sample on the wire."""

SILENCE_DBFS = -120.0
"""What `rms_dbfs` reports for digital silence (or an empty block) instead of -inf."""

_FULL_SCALE = 32768.0
_INT16_MIN = -32768
_INT16_MAX = 32767


def pcm16_to_float(
    b: bytes | bytearray | memoryview | npt.NDArray[np.int16],
) -> npt.NDArray[np.float32]:
    """Convert PCM16 little-endian bytes (or an int16 array) to float32 in [-1, 1).

    Raises:
        ValueError: ``b`` is bytes of odd length, or an array that is not int16.
    """
    if isinstance(b, bytes | bytearray | memoryview):
        if len(b) % BYTES_PER_SAMPLE:
            raise ValueError(f"pcm16 data has odd length {len(b)}")
        samples = np.frombuffer(b, dtype="<i2")
    else:
        samples = np.asarray(b)
        if samples.dtype != np.int16:
            raise ValueError(f"expected int16 samples, got {samples.dtype}")
    return samples.astype(np.float32) / np.float32(_FULL_SCALE)


def float_to_pcm16(x: npt.ArrayLike) -> npt.NDArray[np.int16]:
    """Convert float samples (full scale 1.0) to int16: scaled, rounded, clipped; NaN becomes 0."""
    scaled = np.rint(np.nan_to_num(np.asarray(x, dtype=np.float32)) * np.float32(_FULL_SCALE))
    return np.clip(scaled, _INT16_MIN, _INT16_MAX).astype(np.int16)


def samples_to_ms(n: int, rate: int = WIRE_RATE) -> float:
    """Duration in milliseconds of ``n`` samples (frames) at ``rate`` Hz."""
    return n * 1000.0 / rate


def ms_to_samples(ms: float, rate: int = WIRE_RATE) -> int:
    """Number of samples (frames) in ``ms`` milliseconds at ``rate`` Hz, rounded to nearest."""
    return round(ms * rate / 1000.0)


def peak_of_dbfs(dbfs: float) -> int:
    """The int16 sample magnitude of a peak level of ``dbfs`` (for comparing samples against it)."""
    return round(_FULL_SCALE * 10 ** (dbfs / 20))


def _as_unit_float(x: npt.ArrayLike) -> npt.NDArray[np.float64]:
    """Samples as float64 with full scale 1.0 (int16 input is divided by 32768)."""
    arr = np.asarray(x)
    if arr.dtype == np.int16:
        return arr.astype(np.float64) / _FULL_SCALE
    return arr.astype(np.float64)


def rms_dbfs(x: npt.ArrayLike) -> float:
    """RMS level in dBFS (full-scale square wave = 0 dB, full-scale sine ~ -3 dB).

    Accepts int16 or float samples; never returns -inf: silence and empty input report
    `SILENCE_DBFS` (-120.0), and every result is at least that.
    """
    arr = np.asarray(x)
    if arr.size == 0:
        return SILENCE_DBFS
    values = arr.astype(np.float64, copy=False)
    mean_square = float(np.vdot(values, values)) / arr.size  # one pass, no squared copy
    if arr.dtype == np.int16:
        mean_square /= _FULL_SCALE * _FULL_SCALE
    if mean_square <= 0.0:
        return SILENCE_DBFS
    return max(10.0 * math.log10(mean_square), SILENCE_DBFS)


def peak(x: npt.ArrayLike) -> float:
    """Largest absolute sample as a fraction of full scale (int16 -32768 gives 1.0; empty gives 0.0)."""
    unit = _as_unit_float(x)
    if unit.size == 0:
        return 0.0
    return float(np.max(np.abs(unit)))


def to_mono(x: npt.NDArray[np.generic]) -> npt.NDArray[np.generic]:
    """Downmix shape ``(n,)`` or ``(n, channels)`` to ``(n,)`` by averaging channels.

    The dtype is kept: integer input is averaged in float64 and rounded back (no overflow).
    One-dimensional input is returned as is (not copied).

    Raises:
        ValueError: ``x`` has more than two dimensions or zero channels.
    """
    arr = np.asarray(x)
    if arr.ndim == 1:
        return arr
    if arr.ndim != 2 or arr.shape[1] == 0:
        raise ValueError(f"expected shape (n,) or (n, channels), got {arr.shape}")
    if arr.shape[1] == 1:
        return arr[:, 0].copy()
    mean = arr.mean(axis=1, dtype=np.float64)
    if np.issubdtype(arr.dtype, np.integer):
        info = np.iinfo(arr.dtype)
        return np.clip(np.rint(mean), info.min, info.max).astype(arr.dtype)
    return mean.astype(arr.dtype)
