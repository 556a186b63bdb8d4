"""Format math: PCM16 <-> float, durations, levels and downmixing."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from voicechat.audio.format import (
    BYTES_PER_SAMPLE,
    WIRE_RATE,
    float_to_pcm16,
    ms_to_samples,
    pcm16_to_float,
    peak,
    rms_dbfs,
    samples_to_ms,
    to_mono,
)


def test_wire_constants() -> None:
    assert WIRE_RATE == 24000
    assert BYTES_PER_SAMPLE == 2


def test_pcm16_bytes_are_little_endian() -> None:
    data = b"\x00\x80" + b"\xff\x7f" + b"\x00\x00" + b"\x00\x40"
    x = pcm16_to_float(data)
    assert x.dtype == np.float32
    np.testing.assert_array_equal(x, [-1.0, 32767 / 32768, 0.0, 0.5])


def test_pcm16_to_float_accepts_int16_arrays_only() -> None:
    np.testing.assert_array_equal(pcm16_to_float(np.array([16384, -16384], np.int16)), [0.5, -0.5])
    with pytest.raises(ValueError, match="int16"):
        pcm16_to_float(np.array([1, 2], np.int32))


def test_pcm16_odd_byte_count_is_rejected() -> None:
    with pytest.raises(ValueError, match="odd length"):
        pcm16_to_float(b"\x00\x01\x02")


@given(hnp.arrays(np.int16, st.integers(0, 300)))
def test_int16_float_round_trip_is_exact(x: np.ndarray) -> None:
    from_bytes = float_to_pcm16(pcm16_to_float(x.astype("<i2").tobytes()))
    from_array = float_to_pcm16(pcm16_to_float(x))
    assert from_bytes.dtype == np.int16
    np.testing.assert_array_equal(from_bytes, x)
    np.testing.assert_array_equal(from_array, x)


def test_float_to_pcm16_rounds_and_clips() -> None:
    x = np.array([0.0, 1.0, -1.0, 2.0, -2.0, 0.4 / 32768, 0.6 / 32768, -0.6 / 32768])
    np.testing.assert_array_equal(float_to_pcm16(x), [0, 32767, -32768, 32767, -32768, 0, 1, -1])


def test_float_to_pcm16_maps_nan_to_silence_without_an_invalid_cast() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # numpy warns when NaN reaches the int cast
        out = float_to_pcm16(np.array([np.nan, 0.5], np.float32))
    np.testing.assert_array_equal(out, [0, 16384])


def test_durations() -> None:
    assert samples_to_ms(24000) == 1000.0
    assert samples_to_ms(480, 48000) == 10.0
    assert samples_to_ms(441, 44100) == pytest.approx(10.0)
    assert ms_to_samples(20) == 480
    assert ms_to_samples(10, 44100) == 441
    assert ms_to_samples(0.5, 24000) == 12
    assert isinstance(ms_to_samples(20.0), int)


@given(st.integers(0, 10_000_000), st.sampled_from([16000, 24000, 44100, 48000]))
def test_ms_samples_round_trip(n: int, rate: int) -> None:
    assert ms_to_samples(samples_to_ms(n, rate), rate) == n


def test_rms_dbfs_of_known_signals() -> None:
    t = np.arange(24000) / 24000
    sine = np.sin(2 * np.pi * 440 * t)
    assert rms_dbfs(sine) == pytest.approx(20 * math.log10(1 / math.sqrt(2)), abs=0.01)
    assert rms_dbfs(0.1 * sine) == pytest.approx(-3.0103 - 20, abs=0.01)
    square = np.full(100, 16384, np.int16)
    assert rms_dbfs(square) == pytest.approx(20 * math.log10(0.5), abs=1e-9)
    assert rms_dbfs(float_to_pcm16(0.5 * sine)) == pytest.approx(-3.0103 - 6.0206, abs=0.01)


def test_rms_dbfs_is_finite_for_silence_and_empty() -> None:
    assert rms_dbfs(np.zeros(480, np.int16)) == -120.0
    assert rms_dbfs(np.zeros(0, np.float32)) == -120.0
    assert rms_dbfs(np.full(10, 1e-12)) == -120.0
    assert rms_dbfs(np.array([1], np.int16)) > -120.0


def test_peak() -> None:
    assert peak(np.array([0, -32768, 100], np.int16)) == 1.0
    assert peak(np.array([0, 16384, -8192], np.int16)) == 0.5
    assert peak(np.array([0.25, -0.75], np.float32)) == 0.75
    assert peak(np.zeros(0, np.int16)) == 0.0


def test_to_mono_averages_channels_and_keeps_dtype() -> None:
    stereo = np.array([[100, 300], [-32768, -32768], [32767, 32766], [1, 2]], np.int16)
    mono = to_mono(stereo)
    assert mono.dtype == np.int16
    assert mono.shape == (4,)
    np.testing.assert_array_equal(mono, [200, -32768, 32766, 2])  # 32766.5 and 1.5 round to even

    floats = np.array([[0.5, -0.5, 1.0], [0.25, 0.25, 0.25]], np.float32)
    out = to_mono(floats)
    assert out.dtype == np.float32
    np.testing.assert_allclose(out, [1.0 / 3, 0.25])


def test_to_mono_passes_mono_through() -> None:
    x = np.arange(5, dtype=np.int16)
    assert to_mono(x) is x
    np.testing.assert_array_equal(to_mono(x.reshape(-1, 1)), x)
    assert to_mono(x.reshape(-1, 1)).shape == (5,)


def test_to_mono_rejects_bad_shapes() -> None:
    with pytest.raises(ValueError):
        to_mono(np.zeros((2, 2, 2)))
    with pytest.raises(ValueError):
        to_mono(np.zeros((3, 0)))
