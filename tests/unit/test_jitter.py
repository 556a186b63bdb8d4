"""Adaptive prebuffer: the estimator's arithmetic and the Player following it under real arrivals."""

from __future__ import annotations

import random

import numpy as np
import pytest

from voicechat.audio.jitter import JitterEstimator
from voicechat.audio.playback import STRETCH_QUIET_DBFS
from voicechat.audio.player import CUSHION_MS, Player
from voicechat.server.stream import Pacing

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
    est = JitterEstimator(floor_ms=0, margin_ms=0, first_ms=0)
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
    """A server that streams ahead of playback: the first reply starts once the first-reply
    prior is queued (the second 100 ms delta, 5 ms later), and the target falls to the floor as
    soon as the audio has shown it comes faster than real time."""
    clock = FakeClock()
    player = Player(RATE, clock=clock)
    pcm = np.ones(2400, dtype=np.int16).tobytes()  # a 100 ms delta, as fast servers send
    out = np.zeros(480, dtype=np.int16)
    player.play("a", pcm)
    assert player.prebuffer_ms == 160  # the first reply: how the audio comes is not known yet
    assert player.buffer.read_into(out) == 0
    clock.now = 0.005
    player.play("a", pcm)
    assert player.buffer.read_into(out) == 480  # plays: 200 ms >= the 160 ms target
    clock.now = 0.010
    player.play("a", pcm)
    assert player.prebuffer_ms == 60  # 200 ms of audio in 10 ms: a fast server
    player.end()
    clock.now = 5.0
    player.play("b", pcm)
    assert player.prebuffer_ms == 60  # later replies: what the earlier ones needed


def test_first_replies_at_real_time_over_jitter_do_not_run_dry() -> None:
    """A server generating at real time behind σ = 30 ms of jitter: started on the 60 ms floor, a
    connection's first reply often runs dry in its first words; with the first-reply prior
    (160 ms until the audio is shown to come faster than real time) none of 40 did."""
    dry = {}
    for first_ms in (60.0, 160.0):
        dry[first_ms] = 0
        for seed in range(40):
            clock = FakeClock()
            player = Player(RATE, clock=clock)
            player.jitter = JitterEstimator(floor_ms=60, first_ms=first_ms)
            dry[first_ms] += simulate(player, clock, 1, 30, seed=1000 + seed) > 0
    assert dry[160.0] == 0, dry
    assert dry[60.0] >= 5, dry


# ---- the cushion: gaps taken in the speech's own pauses -------------------------------------

QUIET = round(32768 * 10 ** (STRETCH_QUIET_DBFS / 20))


def first_reply(player: Player, clock: FakeClock, audio: np.ndarray, seed: int, seconds: float = 6.0
                ) -> tuple[np.ndarray, list[int]]:
    """A connection's first reply, generated at real time in 20-240 ms pieces (the local server's
    pacing) and delivered through sigma 30 ms of jitter (order kept), played by a 20 ms device
    clock for ``seconds``. What the device was handed, and the play position of every block it
    got in place of audio while playing (a lengthened pause)."""
    rng = random.Random(seed)
    pieces, done, last = [], 0, 0.0
    while done < audio.size:
        size = min(audio.size - done, rng.randint(*Pacing().delta_ms) * RATE // 1000)
        last = max(last, (done + size) / RATE + max(0.0, rng.gauss(0.090, 0.030)))
        pieces.append((last, done, size))
        done += size
    block = np.zeros(RATE // 50, dtype=np.int16)
    played, stretched = [], []
    device_t = rng.uniform(0, 0.020)  # the device's phase against the first arrival
    end = pieces[0][0] + seconds
    while device_t < end:
        while pieces and pieces[0][0] <= device_t:
            clock.now, start, size = pieces.pop(0)
            player.play("item", audio[start : start + size].tobytes())
        before = player.buffer.stretched_frames
        take = player.buffer.read_into(block)
        if player.buffer.stretched_frames > before:
            assert take == 0 and not block.any()
            stretched.append(player.buffer.consumed_total)
        played.append(block[:take].copy())
        device_t += 0.020
    return np.concatenate(played), stretched


def test_first_replies_of_real_speech_run_dry_far_less_with_the_cushion() -> None:
    """espeak-ng speech in four voices at real time over sigma 30 ms, five first replies each:
    without the cushion they run dry mid-word 1-2 times a reply; with it most gaps go into the
    speech's pauses (what is left is where a voice runs its words together for a second)."""
    from bench.speech import reply

    dry = {None: 0, CUSHION_MS: 0}
    for seed in (1, 2, 3, 4):
        audio = reply(seed, seconds=8.0, rate=RATE)
        for cushion in dry:
            for k in range(5):
                clock = FakeClock()
                player = Player(RATE, clock=clock, cushion_ms=cushion)
                played, stretched = first_reply(player, clock, audio, seed=100 * seed + k)
                dry[cushion] += player.buffer.underruns
                # Nothing lost, repeated or reordered: the listener heard the reply's own samples.
                np.testing.assert_array_equal(played, audio[: played.size])
                # Each added block sits inside a pause: quiet 5 ms before it and 10 ms after.
                for at in stretched:
                    assert np.abs(audio[max(0, at - 120) : at + 240].astype(np.int32)).max() < QUIET
                if cushion is None:
                    assert not stretched
    assert dry[None] >= 20, dry
    assert dry[CUSHION_MS] * 2 <= dry[None], dry


def test_a_server_that_stops_sending_still_runs_dry_and_is_counted() -> None:
    """The pause is lengthened by at most STRETCH_MAX_MS; then the queue plays out and the
    underrun is counted as before (a stalled server is not hidden)."""
    clock = FakeClock()
    player = Player(RATE, clock=clock)
    speech = np.full(2400, 3000, dtype=np.int16)
    player.play("item", np.concatenate([speech, np.zeros(2400, np.int16), speech]).tobytes())  # 300 ms
    block = np.zeros(480, dtype=np.int16)
    added = 0
    for _ in range(60):  # 1.2 s of device time, nothing more arrives
        before = player.buffer.stretched_frames
        player.buffer.read_into(block)
        added += player.buffer.stretched_frames - before
    assert 0 < added <= RATE * 300 // 1000
    assert player.buffer.underruns == 1
    assert player.buffer.consumed_total == 7200
