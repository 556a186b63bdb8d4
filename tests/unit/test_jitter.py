"""Adaptive prebuffer: the estimator's arithmetic and the Player following it under real arrivals."""

from __future__ import annotations

import random

import numpy as np
import pytest

from voicechat.audio.jitter import JitterEstimator
from voicechat.audio.player import Player

RATE = 24_000
DELTA = 480  # 20 ms of wire audio


def feed(est: JitterEstimator, arrivals: list[float], samples: int = DELTA) -> None:
    for t in arrivals:
        est.on_delta(t, samples)


def test_faster_than_real_time_keeps_the_floor() -> None:
    est = JitterEstimator(floor_ms=60)
    feed(est, [i * 0.005 for i in range(50)])  # 20 ms of audio every 5 ms
    est.end_response()
    assert est.target_ms == 60


def test_real_time_with_one_late_delta_learns_its_lateness() -> None:
    est = JitterEstimator(floor_ms=60, margin_ms=20)
    arrivals = [i * 0.020 for i in range(50)]
    arrivals[30] += 0.150  # 150 ms late, the rest on time
    feed(est, arrivals)
    assert est.target_ms == pytest.approx(170, abs=0.5)  # learned mid-response already
    est.end_response()
    assert est.target_ms == pytest.approx(170, abs=0.5)


def test_cushion_is_relative_to_the_earliest_arrival_not_the_first() -> None:
    # Five 20 ms deltas arrive at once (lateness falls to -80 ms), the sixth arrives on the
    # audio's own clock (lateness 0): playback started by the early ones needs 80 ms of cushion.
    est = JitterEstimator(floor_ms=0, margin_ms=0)
    feed(est, [0.0, 0.0, 0.0, 0.0, 0.0, 0.100])
    assert est.target_ms == pytest.approx(80, abs=0.5)


def test_target_is_clamped_to_the_ceiling() -> None:
    est = JitterEstimator(floor_ms=60, ceiling_ms=300)
    feed(est, [0.0, 2.0])
    assert est.target_ms == 300


def test_old_responses_age_out() -> None:
    est = JitterEstimator(floor_ms=60, margin_ms=20, history=3)
    feed(est, [0.0, 0.020 + 0.200])
    est.end_response()
    assert est.target_ms == pytest.approx(220, abs=0.5)
    for r in range(3):
        feed(est, [10.0 + r + i * 0.005 for i in range(10)])
        est.end_response()
    assert est.target_ms == 60


def test_rejects_an_inverted_range() -> None:
    with pytest.raises(ValueError):
        JitterEstimator(floor_ms=100, ceiling_ms=50)


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def simulate(player: Player, clock: FakeClock, replies: int, sigma_ms: float, seed: int) -> int:
    """Real-time generation with delayed arrivals, played by a 20 ms device clock; underruns."""
    rng = random.Random(seed)
    block = np.zeros(player.device_rate // 50, dtype=np.int16)
    pcm = (np.ones(DELTA, dtype=np.int16) * 1000).tobytes()
    t = 0.0
    for _ in range(replies):
        # One 3 s reply: deltas generated every 20 ms, each delivered after 3σ ± σ (order kept).
        last = t
        arrivals = []
        for i in range(150):
            last = max(last, t + i * 0.020 + max(0.0, rng.gauss(3 * sigma_ms, sigma_ms) / 1000))
            arrivals.append(last)
        pending = list(arrivals)
        device_t = t
        end = arrivals[-1] + 1.0
        ended = False
        while device_t < end:
            while pending and pending[0] <= device_t:
                clock.now = pending.pop(0)
                player.play("item", pcm)
            if not pending and not ended:
                player.end()
                ended = True
            player.buffer.read_into(block)
            device_t += 0.020
        t = end + 0.5
    return player.buffer.underruns


@pytest.mark.parametrize("sigma_ms", [10, 30, 60])
def test_adaptive_prebuffer_stops_underruns_that_a_fixed_one_keeps(sigma_ms: float) -> None:
    fixed = simulate(Player(RATE, adaptive=False), FakeClock(), 6, sigma_ms, seed=sigma_ms)
    clock = FakeClock()
    adaptive_player = Player(RATE, clock=clock)
    adaptive = simulate(adaptive_player, clock, 6, sigma_ms, seed=sigma_ms)
    if sigma_ms >= 30:
        assert fixed > 5  # the fixed 60 ms prebuffer runs dry over and over
    # The adaptive one may run dry while it learns in the first reply, then never again.
    assert adaptive <= 2
    assert adaptive <= fixed
    if sigma_ms >= 30:
        assert adaptive_player.prebuffer_ms > 60


def test_player_without_jitter_keeps_its_floor_and_first_audio_is_quick() -> None:
    clock = FakeClock()
    player = Player(RATE, clock=clock)
    pcm = np.ones(2400, dtype=np.int16).tobytes()  # a 100 ms delta, as fast servers send
    player.play("a", pcm)
    assert player.prebuffer_ms == 60
    out = np.zeros(480, dtype=np.int16)
    assert player.buffer.read_into(out) == 480  # plays at once: 100 ms >= the 60 ms target
