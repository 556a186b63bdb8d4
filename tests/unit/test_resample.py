"""Streaming resampling joins chunks without clicks; per-chunk resampling does not."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pytest
import soxr

from voicechat.audio.resample import StreamResampler, resample_all

AMPLITUDE = 10000


def sine(rate: int, seconds: float = 1.0, freq: float = 1000.0) -> np.ndarray:
    t = np.arange(round(rate * seconds)) / rate
    return np.rint(AMPLITUDE * np.sin(2 * np.pi * freq * t)).astype(np.int16)


def random_chunks(x: np.ndarray, seed: int, largest: int = 2000) -> Iterator[np.ndarray]:
    rng = np.random.default_rng(seed)
    i = 0
    while i < len(x):
        n = int(rng.integers(1, largest + 1))
        yield x[i : i + n]
        i += n


def stream(x: np.ndarray, in_rate: int, out_rate: int, seed: int) -> np.ndarray:
    rs = StreamResampler(in_rate, out_rate)
    parts = [rs.process(chunk) for chunk in random_chunks(x, seed)]
    parts.append(rs.flush())
    return np.concatenate(parts)


def best_lag(a: np.ndarray, b: np.ndarray, span: int = 64) -> int:
    """The shift of ``a`` against ``b`` (within +-span) with the smallest mean squared difference."""
    n = min(len(a), len(b)) - 2 * span
    errors = {
        lag: float(
            np.mean((a[span + lag : span + lag + n].astype(float) - b[span : span + n]) ** 2)
        )
        for lag in range(-span, span + 1)
    }
    return min(errors, key=errors.__getitem__)


def max_step(x: np.ndarray, trim: int = 100) -> int:
    """Largest sample-to-sample jump, away from the signal's own start and end."""
    return int(np.abs(np.diff(x[trim:-trim].astype(np.int64))).max())


def clean_step(rate: int, freq: float = 1000.0) -> float:
    return 2 * AMPLITUDE * np.sin(np.pi * freq / rate)


def sine_and_noise(rate: int, seconds: float = 1.0) -> np.ndarray:
    """A 1 kHz sine plus noise: not periodic, so the alignment of two versions is unambiguous."""
    noise = np.random.default_rng(42).standard_normal(round(rate * seconds)) * 2000
    return np.clip(sine(rate, seconds).astype(float) + noise, -32768, 32767).astype(np.int16)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_chunked_stream_matches_one_shot(seed: int) -> None:
    x = sine_and_noise(48000)
    streamed = stream(x, 48000, 24000, seed)
    assert streamed.dtype == np.int16
    assert abs(len(streamed) - len(x) // 2) <= 3

    whole = soxr.resample(x, 48000, 24000)  # soxr's own int16 one-shot (dithered)
    assert best_lag(streamed, whole) == 0  # the stream compensates its filter delay itself
    n = min(len(streamed), len(whole))
    diff = streamed[:n].astype(np.int64) - whole[:n]
    assert np.abs(diff).max() <= 2
    assert np.sqrt(np.mean(diff.astype(float) ** 2)) < 1.0

    ours = resample_all(x, 48000, 24000)  # the same float pipeline in one call
    assert len(ours) == len(streamed)
    assert np.abs(ours.astype(np.int64) - streamed).max() <= 1


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_chunked_stream_is_click_free_where_per_chunk_resampling_clicks(seed: int) -> None:
    x = sine(48000)
    limit = 1.05 * clean_step(24000) + 4

    streamed = stream(x, 48000, 24000, seed)
    assert max_step(streamed) <= limit

    per_chunk = np.concatenate([soxr.resample(c, 48000, 24000) for c in random_chunks(x, seed)])
    assert max_step(per_chunk) > 1.2 * clean_step(24000)
    whole = soxr.resample(x, 48000, 24000)
    n = min(len(per_chunk), len(whole))
    assert np.abs(per_chunk[:n].astype(np.int64) - whole[:n]).max() > 1000


@pytest.mark.parametrize(("in_rate", "out_rate"), [(24000, 48000), (24000, 44100), (44100, 24000)])
def test_stream_matches_one_shot_at_device_rates(in_rate: int, out_rate: int) -> None:
    x = sine(in_rate, seconds=0.5, freq=440.0)
    streamed = stream(x, in_rate, out_rate, seed=7)
    whole = soxr.resample(x, in_rate, out_rate)
    expected_len = len(x) * out_rate / in_rate
    assert abs(len(streamed) - expected_len) <= 3
    n = min(len(streamed), len(whole))
    assert np.abs(streamed[:n].astype(np.int64) - whole[:n]).max() <= 2
    assert max_step(streamed) <= 1.05 * clean_step(out_rate, 440.0) + 4


def test_equal_rates_pass_through_as_copies() -> None:
    rs = StreamResampler(24000, 24000)
    assert rs.passthrough
    x = np.arange(100, dtype=np.int16)
    y = rs.process(x)
    np.testing.assert_array_equal(y, x)
    y[0] = 999
    assert x[0] == 0
    assert rs.flush().size == 0
    assert not StreamResampler(24000, 48000).passthrough


def test_filter_fill_may_return_nothing_and_empty_chunks_are_fine() -> None:
    rs = StreamResampler(48000, 24000)
    assert rs.process(np.zeros(0, np.int16)).size == 0
    total = sum(len(rs.process(np.ones(10, np.int16))) for _ in range(100))
    total += len(rs.flush())
    assert abs(total - 500) <= 2


def test_flush_ends_the_stream_until_reset() -> None:
    x = sine(48000, seconds=0.1)
    y = sine(48000, seconds=0.1, freq=300.0)
    rs = StreamResampler(48000, 24000)
    rs.process(x)
    rs.flush()
    assert rs.flush().size == 0
    with pytest.raises(RuntimeError, match="reset"):
        rs.process(x)
    rs.reset()
    after_reset = np.concatenate([rs.process(y), rs.flush()])
    fresh = StreamResampler(48000, 24000)
    np.testing.assert_array_equal(after_reset, np.concatenate([fresh.process(y), fresh.flush()]))


def test_process_rejects_non_int16_or_non_mono() -> None:
    rs = StreamResampler(48000, 24000)
    with pytest.raises(ValueError, match="int16"):
        rs.process(np.zeros(10, np.float32))
    with pytest.raises(ValueError, match="int16"):
        rs.process(np.zeros((10, 2), np.int16))


def test_non_contiguous_chunks_are_accepted() -> None:
    x = sine(48000, seconds=0.1)
    strided = np.repeat(x, 2)[::2]
    assert not strided.flags.c_contiguous
    a = StreamResampler(48000, 24000)
    b = StreamResampler(48000, 24000)
    np.testing.assert_array_equal(
        np.concatenate([a.process(strided), a.flush()]), np.concatenate([b.process(x), b.flush()])
    )


def test_invalid_rates() -> None:
    with pytest.raises(ValueError):
        StreamResampler(0, 24000)
    with pytest.raises(ValueError):
        resample_all(np.zeros(4, np.int16), 24000, -1)


def test_resample_all() -> None:
    x = sine(44100, seconds=0.25)
    y = resample_all(x, 44100, 24000)
    assert y.dtype == np.int16
    assert len(y) == round(len(x) * 24000 / 44100)
    assert np.abs(y.astype(np.int64) - soxr.resample(x, 44100, 24000)).max() <= 2
    same = resample_all(x, 24000, 24000)
    np.testing.assert_array_equal(same, x)
    assert same is not x
    assert resample_all(np.zeros(0, np.int16), 48000, 24000).size == 0
