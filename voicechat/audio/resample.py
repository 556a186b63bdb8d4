"""Sample-rate conversion between the wire rate and device rates, with python-soxr.

This module owns resampling. `StreamResampler` converts a live int16 mono stream chunk by chunk
with one `soxr.ResampleStream`, so the filter state carries across chunk boundaries and the joined
output is what one-shot resampling of the whole signal gives (no clicks, no drift in length).
Resampling each chunk on its own with `soxr.resample` is never used on a stream: every chunk edge
gets a filter transient and a length rounding, which is audible. `resample_all` is for whole
files. Equal rates take a pass-through path that copies. Both paths resample in float32 and
round once to int16: soxr's own int16 output adds dither whose generator survives `clear()`, which
would make a reset stream differ from a fresh one; in float a chunked stream and `resample_all`
agree sample for sample."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import soxr

from voicechat.audio.format import float_to_pcm16, pcm16_to_float

_EMPTY = np.zeros(0, dtype=np.int16)
_EMPTY_FLOAT = np.zeros(0, dtype=np.float32)


def _check_rates(in_rate: int, out_rate: int) -> None:
    if in_rate <= 0 or out_rate <= 0:
        raise ValueError(f"sample rates must be positive, got {in_rate} -> {out_rate}")


def _as_mono_int16(x: npt.NDArray[np.int16]) -> npt.NDArray[np.int16]:
    arr = np.asarray(x)
    if arr.dtype != np.int16 or arr.ndim != 1:
        raise ValueError(f"expected 1-D int16 samples, got {arr.dtype} with shape {arr.shape}")
    return np.ascontiguousarray(arr)


class StreamResampler:
    """Streaming int16 mono resampler: `process` chunks, then `flush` once for the tail.

    After `flush` the stream has ended; call `reset` to start a new, unrelated stream (for
    example the next response's audio). The output of all `process` calls plus `flush` is the
    input resampled as one signal: about ``len(input) * out_rate / in_rate`` samples.
    """

    def __init__(self, in_rate: int, out_rate: int, quality: str = "HQ") -> None:
        _check_rates(in_rate, out_rate)
        self.in_rate = in_rate
        self.out_rate = out_rate
        self.quality = quality
        self._stream: soxr.ResampleStream | None = None
        if in_rate != out_rate:
            self._stream = soxr.ResampleStream(
                in_rate, out_rate, 1, dtype="float32", quality=quality
            )
        self._ended = False

    @property
    def passthrough(self) -> bool:
        """True when the rates are equal and chunks are only copied."""
        return self._stream is None

    def process(self, chunk: npt.NDArray[np.int16]) -> npt.NDArray[np.int16]:
        """Resample the next chunk; may return fewer (even zero) samples while the filter fills.

        Raises:
            ValueError: ``chunk`` is not 1-D int16.
            RuntimeError: the stream was flushed and not reset.
        """
        x = _as_mono_int16(chunk)
        if self._ended:
            raise RuntimeError("resampler was flushed; call reset() before reusing it")
        if self._stream is None:
            return x.copy()
        if x.size == 0:
            return _EMPTY.copy()
        return float_to_pcm16(self._stream.resample_chunk(pcm16_to_float(x)))

    def flush(self) -> npt.NDArray[np.int16]:
        """End the stream and return the tail still inside the filter (empty if already flushed)."""
        if self._ended:
            return _EMPTY.copy()
        self._ended = True
        if self._stream is None:
            return _EMPTY.copy()
        return float_to_pcm16(self._stream.resample_chunk(_EMPTY_FLOAT, last=True))

    def reset(self) -> None:
        """Forget all state so the next `process` starts a new stream."""
        if self._stream is not None:
            self._stream.clear()
        self._ended = False


def resample_all(
    x: npt.NDArray[np.int16], in_rate: int, out_rate: int, quality: str = "HQ"
) -> npt.NDArray[np.int16]:
    """Resample a whole int16 mono signal in one call (for files, not for streams).

    Raises:
        ValueError: ``x`` is not 1-D int16, or a rate is not positive.
    """
    _check_rates(in_rate, out_rate)
    samples = _as_mono_int16(x)
    if in_rate == out_rate or samples.size == 0:
        return samples.copy()
    return float_to_pcm16(
        soxr.resample(pcm16_to_float(samples), in_rate, out_rate, quality=quality)
    )
