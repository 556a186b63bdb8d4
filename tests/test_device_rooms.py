"""The echo rooms (`bench.rooms`) are what they claim, measured with a sweep through the devices.

Pure checks of the room impulse response and the relay's convolver, then each room on the
headless PulseAudio: the echo reaches the microphone at the intended level and delay, and the
laptop relay's delay does not drift.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from device_helpers import headless_pulse

from bench import rooms


def test_the_room_response_decays_with_the_intended_rt60() -> None:
    h = rooms.rir(24_000, rt60=0.3)
    assert abs(np.sum(h**2) - 1.0) < 1e-9  # unit energy: the relay's gain is the echo's level
    edc = np.cumsum((h**2)[::-1])[::-1]  # Schroeder's backward integration
    db = 10 * np.log10(edc / edc[0])
    t = np.arange(h.size) / 24_000
    fit = (db <= -5) & (db >= -25)  # T20, extrapolated to 60 dB
    slope = np.polyfit(t[fit], db[fit], 1)[0]
    assert 0.25 <= -60 / slope <= 0.35


def test_the_relay_convolves_blockwise_exactly_as_a_whole() -> None:
    h = rooms.rir(24_000, rt60=0.3)
    x = np.random.default_rng(2).standard_normal(24_000 // 100 * 120)
    conv = rooms.Convolver(h, 240)
    blockwise = np.concatenate([conv.process(b) for b in x.reshape(-1, 240)])
    assert np.allclose(blockwise, np.convolve(x, h)[: x.size], atol=1e-9)


def test_soft_clipping_is_transparent_when_quiet_and_bounded_when_loud() -> None:
    quiet = np.linspace(-0.05, 0.05, 101)
    assert np.allclose(rooms.soft_clip(quiet), quiet, atol=1e-3)
    assert np.max(np.abs(rooms.soft_clip(np.linspace(-3, 3, 101)))) <= 10 ** (-3 / 20)


@pytest.fixture(scope="module")
def pulse(tmp_path_factory: pytest.TempPathFactory) -> Any:
    yield from headless_pulse(tmp_path_factory)


@pytest.mark.device
@pytest.mark.parametrize("name", list(rooms.ROOMS))
def test_each_room_echoes_at_its_level_and_delay(pulse: dict[str, str], name: str) -> None:
    with rooms.room(name, pulse) as r:
        first = rooms.measure(r, pulse)
        second = rooms.measure(r, pulse)  # a few seconds later: the relay's delay has not crept
    print(f"{name}: {first}, then {second}")
    if name == "headset":
        assert not first.found and first.peak_dbfs < -60, first
        return
    assert first.found and second.found, (first, second)
    if name == "worst":
        assert abs(first.gain_db) < 1.5 and first.delay_ms < 25, first
    elif name == "laptop":
        assert abs(first.gain_db + 6.0) < 1.5 and 30 <= first.delay_ms <= 60, first
    else:  # loud-laptop: 0 dB into a speaker that clips (a sweep at -6 dBFS loses a little)
        assert -3.0 < first.gain_db < 0.5 and 30 <= first.delay_ms <= 60 and first.peak_dbfs < -2.9, first
    assert abs(second.delay_ms - first.delay_ms) < 5 and abs(second.gain_db - first.gain_db) < 0.5, (first, second)
