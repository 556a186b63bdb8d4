"""The echo rooms (`bench.rooms`) and their speech (`bench.speech`) are what they claim.

Pure checks first: the room impulse response (RT60 by Schroeder's backward integration, unit
energy), the relay's convolver (blockwise = whole), the soft clip, `bench.rooms.analyse` on a
room built offline, and the espeak-ng stimuli (level, length, pauses, onsets, determinism;
skipped without espeak-ng). Then each room on the headless PulseAudio, measured with a sweep
through the devices: the echo reaches the microphone at the intended level and delay, the laptop
relay's delay does not move over ~10 s, a stalled relay loses echo but not its delay, and the
sound server survives rooms coming and going (no client memory passed between clients).
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest

from bench import rooms, speech

RATE = 24_000

# ---- the room's sound ---------------------------------------------------------------------------


def test_the_room_response_has_unit_energy_and_decays_with_an_rt60_of_0_3_s() -> None:
    h = rooms.rir(RATE, rt60=0.3)
    assert abs(np.sum(h**2) - 1.0) < 1e-9  # unit energy: the relay's gain is the echo's level
    assert np.array_equal(h, rooms.rir(RATE, rt60=0.3))  # deterministic
    assert int(np.argmax(np.abs(h))) == 0  # the direct path first and loudest
    tail_rms = np.sqrt(np.mean(h[int(0.004 * RATE) : int(0.010 * RATE)] ** 2))
    for ms in (2.5, 5.1):  # early reflections (-24 and -20 dB re the direct path) over the tail
        assert abs(h[int(ms * RATE / 1000)]) > 2 * tail_rms
    edc = np.cumsum((h**2)[::-1])[::-1]  # Schroeder's backward integration
    db = 10 * np.log10(edc / edc[0])
    t = np.arange(h.size) / RATE
    fit = (db <= -5) & (db >= -25)  # T20, extrapolated to 60 dB
    rt60 = -60 / np.polyfit(t[fit], db[fit], 1)[0]
    assert 0.25 <= rt60 <= 0.35
    assert abs(rooms.schroeder_rt60(h, RATE) - rt60) < 1e-9


def test_a_gain_on_the_room_response_is_the_echos_overall_level() -> None:
    x = np.random.default_rng(3).standard_normal(RATE * 10)
    for gain_db in (-6.0, 0.0):
        y = np.convolve(x, rooms.rir(RATE, 0.3))[: x.size] * 10 ** (gain_db / 20)
        assert abs(10 * np.log10(np.sum(y**2) / np.sum(x**2)) - gain_db) < 0.3


@pytest.mark.parametrize("h", [rooms.rir(RATE, rt60=0.3), np.ones(1)], ids=["room", "none"])
def test_the_relay_convolves_blockwise_exactly_as_a_whole(h: np.ndarray) -> None:
    x = np.random.default_rng(2).standard_normal(rooms.RELAY_BLOCK * 120)
    conv = rooms.Convolver(h, rooms.RELAY_BLOCK)
    blockwise = np.concatenate([conv.process(b) for b in x.reshape(-1, rooms.RELAY_BLOCK)])
    assert np.allclose(blockwise, np.convolve(x, h)[: x.size], atol=1e-9)


def test_soft_clipping_is_transparent_when_quiet_and_bounded_when_loud() -> None:
    quiet = np.linspace(-0.05, 0.05, 101)
    assert np.allclose(rooms.soft_clip(quiet), quiet, atol=1e-3)
    assert np.max(np.abs(rooms.soft_clip(np.linspace(-3, 3, 101)))) <= 10 ** (-3 / 20)


def _offline_room(gain_db: float, delay_ms: float, clip: bool) -> tuple[np.ndarray, np.ndarray]:
    quiet = np.zeros(RATE // 4)
    spk = np.concatenate([quiet, rooms.sweep(RATE).astype(np.float64), quiet, quiet])
    echo = np.convolve(spk / 32768, rooms.rir(RATE, 0.3))[: spk.size] * 10 ** (gain_db / 20)
    if clip:
        echo = rooms.soft_clip(echo)
    lag = round(delay_ms * RATE / 1000)
    return spk, np.round(np.concatenate([np.zeros(lag), echo])[: spk.size] * 32768)


def test_the_analysis_recovers_a_room_built_offline() -> None:
    m = rooms.analyse(*_offline_room(-6.0, 40.0, clip=False), RATE)
    assert m.found and abs(m.gain_db + 6) < 0.1 and abs(m.delay_ms - 40) < 0.05, m
    assert 0.25 <= m.rt60_s <= 0.35 and m.distortion_db < -50, m
    gain, delay, rt60 = m  # measure's three figures unpack
    assert (gain, delay, rt60) == (m.gain_db, m.delay_ms, m.rt60_s)
    loud = rooms.analyse(*_offline_room(0.0, 40.0, clip=True), RATE)
    assert loud.found and -2.5 < loud.gain_db < 0.5 and loud.distortion_db > -35, loud
    spk, _ = _offline_room(0.0, 40.0, clip=False)
    none = rooms.analyse(spk, np.zeros_like(spk), RATE)
    assert not none.found and none.gain_db == -120.0, none


# ---- the speech ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def espeak() -> None:
    try:
        speech.say("Test.")
    except speech.SpeechUnavailable as e:
        pytest.skip(str(e))


def _zero_runs_s(x: np.ndarray, at_least_s: float) -> list[tuple[int, float]]:
    """(start, length in s) of the runs of digital silence at least ``at_least_s`` long."""
    z = np.concatenate([[0], (x == 0).astype(np.int8), [0]])
    d = np.diff(z)
    starts, ends = np.nonzero(d == 1)[0], np.nonzero(d == -1)[0]
    return [(int(a), (b - a) / RATE) for a, b in zip(starts, ends, strict=True) if (b - a) / RATE >= at_least_s]


@pytest.mark.usefixtures("espeak")
def test_said_speech_has_the_requested_active_level_and_refuses_to_clip() -> None:
    for level in (-30.0, -24.0, -20.0):
        x = speech.say("Put the kettle on, and toast the bread.", voice="en-gb", level_dbfs=level)
        assert x.dtype == np.int16
        assert abs(speech.level_dbfs(x) - level) <= 0.5
        assert np.max(np.abs(x.astype(np.int32))) < 32767
        assert x[0] != 0 or speech.onset_ms(x) <= 20  # espeak-ng's leading silence is gone
    with pytest.raises(ValueError, match="clip"):
        speech.say("Put the kettle on, and toast the bread.", level_dbfs=-3.0)


@pytest.mark.usefixtures("espeak")
def test_replies_are_long_speech_with_pauses_and_hard_onsets_in_several_voices() -> None:
    voices = set()
    for seed in range(6):
        x = speech.reply(seed, seconds=10.0)
        voices.add(speech.VOICES[seed % len(speech.VOICES)])
        assert x.size >= 10 * RATE
        assert abs(speech.level_dbfs(x) - (-24.0)) <= 0.5
        gaps = _zero_runs_s(x, 0.2)  # between sentences: 200-700 ms of silence
        assert len(gaps) >= 2 and all(g <= 0.72 for _, g in gaps), (seed, gaps)
        assert speech.onset_ms(x) <= 10  # the reply starts on speech
        for start, g in gaps:  # each sentence starts abruptly after its pause
            assert speech.onset_ms(x[start + round(g * RATE) :]) <= 20, (seed, start)
    assert len(voices) == 6 and not set(speech.VOICES) & set(speech.USER_VOICES)


@pytest.mark.usefixtures("espeak")
def test_utterances_are_short_barge_ins_at_their_level() -> None:
    for seed in range(10):
        x = speech.utterance(seed)
        assert 1.2 <= x.size / RATE <= 2.0, (seed, x.size / RATE)
        assert abs(speech.level_dbfs(x) - (-24.0)) <= 0.5
    assert not np.array_equal(speech.utterance(0), speech.utterance(1))
    assert abs(speech.level_dbfs(speech.utterance(2, level_dbfs=-30.0)) + 30.0) <= 0.5


@pytest.mark.usefixtures("espeak")
def test_the_onset_is_where_speech_starts_not_a_click_before_it() -> None:
    x = speech.say("Take the train.", level_dbfs=-24.0)
    first = speech.onset_ms(x)
    assert 0 <= first <= 20
    quiet = np.zeros(RATE // 2, dtype=np.int16)  # 500 ms
    assert abs(speech.onset_ms(np.concatenate([quiet, x])) - (500 + first)) <= 1.0
    click = quiet.copy()
    click[RATE // 10] = 30000  # a lone click 400 ms before the speech
    assert abs(speech.onset_ms(np.concatenate([click, x])) - (500 + first)) <= 1.0
    with pytest.raises(ValueError):
        speech.onset_ms(quiet)


@pytest.mark.usefixtures("espeak")
def test_speech_is_deterministic_and_cached_as_wav_keyed_by_every_parameter(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("VOICECHAT_SPEECH_CACHE", str(tmp_path / "a"))
    a = speech.reply(7, seconds=10.0)
    assert np.array_equal(a, speech.reply(7, seconds=10.0))  # from the cache
    monkeypatch.setenv("VOICECHAT_SPEECH_CACHE", str(tmp_path / "b"))
    assert np.array_equal(a, speech.reply(7, seconds=10.0))  # made again, the same
    files = list((tmp_path / "b").iterdir())
    assert files and all(f.suffix == ".wav" for f in files)
    n = len(files)
    speech.say("Two things decide the route.", wpm=170)
    speech.say("Two things decide the route.", wpm=180)
    speech.say("Two things decide the route.", wpm=180, rate=16_000)
    assert len(list((tmp_path / "b").iterdir())) == n + 3


def test_without_espeak_ng_speech_is_unavailable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VOICECHAT_SPEECH_CACHE", str(tmp_path))
    monkeypatch.setattr(shutil, "which", lambda _name: None)
    with pytest.raises(speech.SpeechUnavailable, match="espeak-ng"):
        speech.say("Is anybody there?")


# ---- the rooms through the devices --------------------------------------------------------------


def _check(name: str, m: rooms.Measured) -> None:
    if name == "worst":  # the speaker is the microphone
        assert m.found and abs(m.gain_db) <= 1.5 and -1 <= m.delay_ms < 25 and m.rt60_s < 0.05, m
    elif name == "laptop":
        assert m.found and abs(m.gain_db + 6) <= 1.5 and 30 <= m.delay_ms <= 60, m
        assert 0.25 <= m.rt60_s <= 0.35 and m.distortion_db < -40, m
    elif name == "loud-laptop":  # 0 dB into a speaker that clips softly at -3 dBFS
        assert m.found and -2.5 <= m.gain_db <= 0.5 and 30 <= m.delay_ms <= 60, m
        assert 0.25 <= m.rt60_s <= 0.35, m
        assert m.distortion_db > -35 and m.peak_dbfs <= -2.9, m  # the clipping is there
    else:  # headset: nothing comes back
        assert not m.found and m.gain_db < -60 and m.peak_dbfs < -60, m


@pytest.mark.device
@pytest.mark.parametrize("name", list(rooms.ROOMS))
def test_each_room_echoes_at_its_level_and_delay(pulse: dict[str, str], name: str) -> None:
    with rooms.room(name, pulse) as r:
        t0 = time.monotonic()
        first = rooms.measure(r, pulse)
        print(f"\n{name}: {first}")
        _check(name, first)
        if r.relay is None:
            return
        time.sleep(max(0.0, 10.0 - (time.monotonic() - t0)))  # ~10 s later, the relay has not crept
        second = rooms.measure(r, pulse)
        print(f"{name}, {time.monotonic() - t0:.1f} s later: {second}")
        _check(name, second)
        assert abs(second.delay_ms - first.delay_ms) < 0.5 and abs(second.gain_db - first.gain_db) < 0.2, (first, second)
        assert any("calibration" in e for e in r.relay.events), r.relay.events


@pytest.mark.device
def test_the_sound_server_survives_a_room_without_sharing_client_memory(pulse: dict[str, str]) -> None:
    """A block a client wrote, passed on to another client in shared memory, makes PulseAudio 16 log
    "non-registered memfd ID" and can make it abort once the writer leaves; one such abort failed
    every device test after it. The headless daemon carries audio over its socket instead."""
    for _ in range(2):
        with rooms.room("laptop", pulse) as r:
            rooms.measure(r, pulse)
    log = Path(pulse["VOICECHAT_PULSE_DIR"], "pulseaudio.log").read_text(errors="replace").splitlines()
    assert not [line for line in log if "memfd" in line or "Assertion" in line], log
    assert subprocess.run(["pactl", "info"], env=pulse, capture_output=True, timeout=30).returncode == 0


@pytest.mark.device
def test_a_stalled_relay_loses_echo_but_not_its_delay_and_says_so(pulse: dict[str, str]) -> None:
    with rooms.room("laptop", pulse) as r:
        assert r.relay is not None
        before = rooms.measure(r, pulse)
        os.kill(r.relay.pid, signal.SIGSTOP)  # a relay starved of CPU for 300 ms
        try:
            time.sleep(0.3)
        finally:
            os.kill(r.relay.pid, signal.SIGCONT)
        time.sleep(0.5)
        after = rooms.measure(r, pulse)
        time.sleep(0.2)
        events = list(r.relay.events)
    print(f"\nbefore: {before}\nafter:  {after}\nrelay: {events}")
    assert abs(after.delay_ms - before.delay_ms) < 0.5, (before, after)
    assert abs(after.gain_db - before.gain_db) < 0.2, (before, after)
    assert any("fell behind" in e for e in events), events
