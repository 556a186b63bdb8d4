"""The linear echo stage: it learns an echo path, keeps the user whole, and trusts itself only once converged."""

from __future__ import annotations

import numpy as np
import pytest

from voicechat.audio.format import rms_dbfs
from voicechat.audio.linear import LinearEcho, LinearStage

RATE = 16_000
BLOCK = RATE // 50


def _path(rng: np.random.Generator, delay_ms: float = 60.0, tail_ms: float = 120.0) -> np.ndarray:
    """A room-like impulse response: a delay, then an exponentially decaying random tail."""
    delay = int(RATE * delay_ms / 1000)
    n = int(RATE * tail_ms / 1000)
    tail = rng.standard_normal(n) * np.exp(-np.arange(n) / (n / 6))
    return np.concatenate([np.zeros(delay), 0.5 * tail / np.sqrt(np.sum(tail**2))])  # -6 dB


def _i16(x: np.ndarray) -> np.ndarray:
    return np.clip(np.round(x * 32768), -32768, 32767).astype(np.int16)


def _db(x: np.ndarray) -> float:
    return 10 * np.log10(np.mean(x.astype(np.float64) ** 2) + 1e-9)


def _run(f: LinearEcho, mic: np.ndarray, ref: np.ndarray, learn: bool = True) -> np.ndarray:
    out = []
    for a in range(0, mic.size - BLOCK + 1, BLOCK):
        out.append(f.process(mic[a : a + BLOCK], ref[a : a + BLOCK]))
        if learn:
            f.learn()
    return np.concatenate(out)


def test_it_learns_an_echo_path_and_keeps_the_user_whole() -> None:
    rng = np.random.default_rng(1)
    ref = rng.standard_normal(12 * RATE) * 0.1
    path = _path(rng)
    echo = np.convolve(ref, path)[: ref.size]
    f = LinearEcho(BLOCK, rate=RATE, taps_ms=200)
    out = _run(f, _i16(echo), _i16(ref))
    last = slice(-2 * RATE, None)
    assert _db(_i16(echo)[last]) - _db(out[last]) >= 30, "the echo is not cancelled"
    # The user joins; the filter is told not to learn: what comes out is the user.
    ref2 = rng.standard_normal(2 * RATE) * 0.1
    echo2 = np.convolve(np.concatenate([ref, ref2]), path)[ref.size : ref.size + ref2.size]
    user = rng.standard_normal(ref2.size) * 0.05
    out2 = _run(f, _i16(echo2 + user), _i16(ref2), learn=False)
    u = _i16(user)[: out2.size].astype(np.float64)
    corr = float(np.dot(out2, u) / np.sqrt(np.dot(out2.astype(np.float64), out2) * np.dot(u, u)))
    assert corr > 0.99, corr
    assert abs(_db(out2) - _db(u)) < 0.5


def test_it_predicts_nothing_it_has_not_learned() -> None:
    rng = np.random.default_rng(2)
    ref = _i16(rng.standard_normal(RATE) * 0.1)
    mic = _i16(rng.standard_normal(RATE) * 0.1)
    f = LinearEcho(BLOCK, rate=RATE)
    assert np.array_equal(_run(f, mic, ref, learn=False), mic[: (RATE // BLOCK) * BLOCK])


def test_blocks_of_another_length_are_refused() -> None:
    f = LinearEcho(BLOCK, rate=RATE)
    with pytest.raises(ValueError, match="samples"):
        f.process(np.zeros(BLOCK + 1, np.int16), np.zeros(BLOCK + 1, np.int16))


class _PlainFilter:
    """The same filter written out the plain way: every sum taken afresh, nothing in place."""

    def __init__(self, block: int, partitions: int, delta: float, mu: float = 1.0) -> None:
        self.n, self.p, self.delta, self.mu = block, partitions, delta, mu
        self.x = np.zeros(2 * block)
        self.spectra = [np.zeros(block + 1, complex) for _ in range(partitions)]  # newest first
        self.weights = np.zeros((partitions, block + 1), complex)
        self.k = 0
        self.residual = np.zeros(block)

    def process(self, mic: np.ndarray, ref: np.ndarray) -> np.ndarray:
        self.k += 1
        self.x = np.concatenate([self.x[self.n :], ref / 32768.0])
        self.spectra = [np.fft.rfft(self.x), *self.spectra[:-1]]
        echo = np.fft.irfft(sum(w * s for w, s in zip(self.weights, self.spectra, strict=True)), 2 * self.n)[self.n :]
        self.residual = mic / 32768.0 - echo
        return np.clip(np.round(self.residual * 32768.0), -32768, 32767).astype(np.int16)

    def learn(self) -> None:
        error = np.fft.rfft(np.concatenate([np.zeros(self.n), self.residual]))
        power = sum(np.abs(s) ** 2 for s in self.spectra)
        self.weights = self.weights + np.conj(np.array(self.spectra)) * (self.mu * error / (power + self.delta))
        j = self.k % self.p
        w = np.fft.irfft(self.weights[j], 2 * self.n)
        w[self.n :] = 0.0
        self.weights[j] = np.fft.rfft(w)


@pytest.mark.parametrize("rate", [16_000, 44_100, 48_000])
def test_the_filter_is_the_plain_algorithm(rate: int) -> None:
    """The running sums and in-place steps that make it cheap change none of its output: block by
    block it equals the plain algorithm, over many windows of partitions, learning or not."""
    block = rate // 50
    rng = np.random.default_rng(rate)
    fast = LinearEcho(block, rate=rate)
    plain = _PlainFilter(block, fast.partitions, fast._delta)
    ref = _i16(rng.standard_normal(block * 40 * fast.partitions) * 0.1)
    mic = _i16(np.convolve(ref / 32768.0, _path(rng))[: ref.size] + rng.standard_normal(ref.size) * 0.001)
    out = []
    for k in range(0, ref.size, block):
        got, want = fast.process(mic[k : k + block], ref[k : k + block]), plain.process(mic[k : k + block], ref[k : k + block])
        assert np.abs(got.astype(int) - want).max() <= 1, k // block
        out.append(got)
        if k // block % 5 != 2:  # a block the user spoke in: not learned from
            fast.learn()
            plain.learn()
    np.testing.assert_allclose(fast._weights, plain.weights, rtol=0, atol=1e-9 * np.abs(plain.weights).max())
    last = slice(-10 * block, None)
    assert _db(mic[last]) - _db(np.concatenate(out)[last]) > 20, "it never learned the path"


def _stage_run(echo_of: object, seconds: float = 8.0) -> tuple[list[bool], list[bool]]:
    """A stage fed echo only: (answered, loud) per block."""
    rng = np.random.default_rng(3)
    ref = rng.standard_normal(int(seconds * RATE)) * 0.1
    mic = echo_of(ref)  # type: ignore[operator]
    stage = LinearStage(RATE, margin_db=10.0, floor_db=-40.0, converge_blocks=50)
    answered, loud = [], []
    r16, m16 = _i16(ref), _i16(mic)
    for a in range(0, ref.size - BLOCK + 1, BLOCK):
        residual, is_loud = stage.judge(m16[a : a + BLOCK], r16[a : a + BLOCK], -20.0, True, False)
        answered.append(residual is not None)
        loud.append(is_loud)
    return answered, loud


def test_the_stage_answers_once_converged_and_hears_no_user_in_echo() -> None:
    path = _path(np.random.default_rng(4))
    answered, loud = _stage_run(lambda ref: np.convolve(ref, path)[: ref.size])
    assert not any(answered[:49]), "answered before its lessons"
    assert all(answered[-100:]), "never trusted itself on a linear path"
    assert not any(loud), "took echo for the user"


def test_the_stage_never_trusts_itself_where_the_speaker_distorts() -> None:
    path = _path(np.random.default_rng(5))
    answered, loud = _stage_run(lambda ref: np.convolve(np.clip(ref * 6, -0.3, 0.3), path)[: ref.size])
    assert not any(answered) and not any(loud)


def _moved(path: np.ndarray, samples: int) -> np.ndarray:
    """``path`` with its echo ``samples`` later (earlier if negative)."""
    return np.concatenate([np.zeros(samples), path]) if samples >= 0 else path[-samples:]


@pytest.mark.parametrize("move_ms", [-7.5, -2.0, 3.0, 12.0])
def test_an_echo_path_that_moves_is_found_and_followed_at_once(move_ms: float) -> None:
    """The echo comes ``move_ms`` later from one block on (a device's latency changed): the
    filter's prediction, slid by the move, fits the microphone again, and the filter takes it
    without relearning."""
    rng = np.random.default_rng(6)
    path = _path(rng)
    ref = rng.standard_normal(10 * RATE) * 0.1
    shift = round(move_ms * RATE / 1000)
    before = np.convolve(ref, path)[: ref.size]
    after = np.convolve(ref, _moved(path, shift))[: ref.size]
    f = LinearEcho(BLOCK, rate=RATE, taps_ms=200)
    at = 8 * RATE
    _run(f, _i16(before[:at]), _i16(ref[:at]))
    lost = rms_dbfs(f.process(_i16(after[at : at + BLOCK]), _i16(ref[at : at + BLOCK])))
    lag, fit, unmoved = f.misalignment(RATE * 15 // 1000)
    assert abs(lag - shift) <= 1 and fit > 0.9 > unmoved, (lag, shift, fit, unmoved)
    assert f.try_shift(lag) <= lost - 20, "the slid prediction does not fit"
    f.shift()
    out = _run(f, _i16(after[at + BLOCK :]), _i16(ref[at + BLOCK :]), learn=False)
    assert _db(_i16(after[at + BLOCK :])) - _db(out) >= 25, f"not followed ({lost:.1f} dBFS left when it moved)"


def test_a_user_over_the_echo_is_not_taken_for_a_move() -> None:
    """The user talks over an unmoved echo: no slide of the prediction explains them."""
    rng = np.random.default_rng(7)
    path = _path(rng)
    ref = rng.standard_normal(10 * RATE) * 0.1
    echo = np.convolve(ref, path)[: ref.size]
    f = LinearEcho(BLOCK, rate=RATE, taps_ms=200)
    at = 8 * RATE
    _run(f, _i16(echo[:at]), _i16(ref[:at]))
    user = rng.standard_normal(2 * RATE) * 0.05  # at the echo's own level
    for a in range(at, at + 10 * BLOCK, BLOCK):
        level = rms_dbfs(f.process(_i16(echo[a : a + BLOCK] + user[a - at : a - at + BLOCK]), _i16(ref[a : a + BLOCK])))
        lag, _, _ = f.misalignment(RATE * 15 // 1000)
        assert f.try_shift(lag) > level - 3, "a slide explained the user away"
