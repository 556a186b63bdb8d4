"""``voicechat doctor``: the pure measurements and verdicts, the report, and whole runs.

* Pure: the echo measurement on synthetic signals (known delay and gain, several paths, a
  fractional delay, noise, speech that is not the reference), the mic-level verdicts, the echo
  advice, the key line (never the key), the report's lines and exit status.
* Connect: against the in-process local server, and failures injected through the connector
  (DNS, 401, timeout), so nothing but loopback is ever contacted.
* Whole runs, as subprocesses: on the headless PulseAudio (device tier) in its default room
  (speaker and microphone apart: no echo) with speech played into the microphone, and in its
  echo room (the microphone is the speaker's sink monitor: a 0 dB echo path); and with the
  openai backend pointed at a closed loopback port.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests.helpers.devices import voiced
from voicechat import config, doctor
from voicechat.audio.aec import aec_available
from voicechat.audio.wav import write_wav
from voicechat.closes import status_error
from voicechat.doctor import (
    Check,
    EchoMeasurement,
    chirp,
    echo_advice,
    format_check,
    judge_levels,
    levels,
    measure_echo,
)
from voicechat.errors import ConnectError, DnsError, PortAudioMissing
from voicechat.urls import Endpoint

RATE = 48_000
FAKE_KEY = "sk-doctor-fake-key-0123456789abcdefWXYZ"


def _room(rate: int = RATE, seconds: float = 2.0, lead_s: float = 0.1) -> np.ndarray:
    """The reference as the doctor records it: silence, the chirp, silence."""
    ref = np.zeros(int(seconds * rate))
    start = int(lead_s * rate)
    c = chirp(rate).astype(np.float64)
    ref[start : start + c.size] = c
    return ref


def _delayed(x: np.ndarray, delay_ms: float, gain: float, rate: int = RATE) -> np.ndarray:
    """``gain * x`` delayed by ``delay_ms`` (fractional delays too), by a phase ramp."""
    freqs = np.fft.rfftfreq(x.size, 1 / rate)
    return np.fft.irfft(np.fft.rfft(x) * gain * np.exp(-2j * np.pi * freqs * delay_ms / 1000), x.size)


def _noise(n: int, dbfs: float, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal(n) * 32768 * 10 ** (dbfs / 20)


# ---- the echo measurement ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("rate", "delay_ms", "echo_db"),
    [(48_000, 45.0, 0.0), (48_000, 120.0, -26.0), (44_100, 250.0, -12.0), (24_000, 8.0, -38.0),
     (48_000, 33.3337, -20.0), (48_000, -20.0, -6.0)],
)
def test_measure_echo_finds_a_known_delay_and_gain(rate: int, delay_ms: float, echo_db: float) -> None:
    ref = _room(rate)
    mic = _delayed(ref, delay_ms, 10 ** (echo_db / 20), rate) + _noise(ref.size, -70.0)
    m = measure_echo(ref, mic, rate)
    assert m.found
    assert abs(m.delay_ms - delay_ms) <= 1000 / rate  # to the sample
    assert abs(m.echo_db - echo_db) < 0.5
    assert m.erl_db == -m.echo_db


def test_measure_echo_adds_up_several_paths() -> None:
    ref = _room()
    mic = _delayed(ref, 30.0, 0.3) + _delayed(ref, 40.0, 0.2) + _delayed(ref, 55.0, 0.1)
    m = measure_echo(ref, mic + _noise(ref.size, -70.0), RATE)
    assert m.found and abs(m.delay_ms - 30.0) < 0.1
    assert abs(m.echo_db - 10 * np.log10(0.3**2 + 0.2**2 + 0.1**2)) < 0.5


def test_measure_echo_finds_a_faint_echo_under_loud_speech() -> None:
    ref = _room()
    speech = voiced(2.0, seed=3, level=6000.0, rate=RATE).astype(np.float64)
    m = measure_echo(ref, speech + _delayed(ref, 60.0, 10 ** (-25 / 20)), RATE)
    assert m.found and abs(m.delay_ms - 60.0) < 0.1
    assert abs(m.echo_db + 25.0) < 1.5


@pytest.mark.parametrize("what", ["noise", "speech", "hum", "silence"])
def test_measure_echo_finds_nothing_that_is_not_the_reference(what: str) -> None:
    ref = _room()
    n = ref.size
    mic = {
        "noise": _noise(n, -50.0, seed=4),
        "speech": voiced(2.0, seed=5, rate=RATE).astype(np.float64)[:n],
        "hum": 3000 * np.sin(2 * np.pi * 200 * np.arange(n) / RATE) + _noise(n, -60.0),
        "silence": np.zeros(n),
    }[what]
    assert not measure_echo(ref, mic, RATE).found


def test_a_reference_far_off_its_echo_is_measured_once_isolated() -> None:
    """A reference 1.7 s late (seen after output underruns as the streams started): within the
    echo phase it holds the end of the tone played before the sweep and only the sweep's start."""
    rate = RATE
    at = lambda seconds: int(seconds * rate)  # noqa: E731
    # What the speaker played: the tone, 0.3 s of silence, the sweep (at 1.0 s).
    played = np.zeros(at(5.0))
    beep = doctor.tone(rate).astype(np.float64)
    sweep = chirp(rate).astype(np.float64)
    played[at(0.2) : at(0.2) + beep.size] = beep
    played[at(1.0) : at(1.0) + sweep.size] = sweep
    phase = slice(at(0.95), at(2.75))  # the echo phase: the sweep and the tail
    mic = 0.5 * played[phase] + _noise(at(1.8), -70.0)
    ref = np.concatenate([np.zeros(at(1.7)), played])[phase]  # what the app thinks played
    assert np.any(ref[: at(1.5)])  # the tone's end is in the reference
    plain = measure_echo(ref, mic, rate)
    assert abs(plain.delay_ms + 1700.0) > 100  # taken in by the tone
    isolated = doctor.isolate(ref, chirp(rate))
    assert not np.any(isolated[: at(1.7)]) and np.any(isolated)
    m = measure_echo(isolated, mic, rate)
    assert m.found and abs(m.delay_ms + 1700.0) < 0.1 and abs(m.echo_db + 6.02) < 1.5
    check = echo_advice(m, aec=True, startup_underruns=12)
    assert check.status == "warn" and "1700 ms before" in check.detail and "underran 12 times" in check.detail
    assert "headphones" in (check.fix or "")


def test_measure_echo_needs_a_reference() -> None:
    with pytest.raises(ValueError):
        measure_echo(np.zeros(100), np.ones(100), RATE)


# ---- verdicts ------------------------------------------------------------------------------------


def test_echo_advice_recommends_a_mode() -> None:
    none = EchoMeasurement(False, 0.0, -70.0, 10.0)
    faint = EchoMeasurement(True, 30.0, -48.0, 40.0)
    laptop = EchoMeasurement(True, 30.0, -22.0, 60.0)
    loud = EchoMeasurement(True, 12.0, -1.0, 90.0)
    for m in (none, faint):
        check = echo_advice(m, aec=True)
        assert check.status == "ok" and "--echo off" in check.detail
    check = echo_advice(laptop, aec=True)
    assert check.status == "ok" and "--echo aec" in check.detail and "22.0 dB at 30 ms" in check.detail
    check = echo_advice(laptop, aec=False)
    assert check.status == "ok" and "--echo gate" in check.detail and "aec" not in check.detail
    # A loud echo: the canceller's measured work decides; without a canceller, headphones.
    works, weak = doctor.Cancellation(45.0, -75.0), doctor.Cancellation(12.0, -20.0)
    check = echo_advice(loud, aec=True, cancellation=works)
    assert check.status == "ok" and "removes 45 dB (residual -75 dBFS)" in check.detail and "normal voice" in check.detail
    check = echo_advice(loud, aec=True, cancellation=weak)
    assert check.status == "warn" and "removes 12 dB" in check.detail
    assert check.fix is not None and "headphones" in check.fix and "half-duplex" in check.fix
    check = echo_advice(loud, aec=False)
    assert check.status == "warn" and check.fix is not None and "headphones" in check.fix
    assert "half-duplex" in (check.fix or "")
    check = echo_advice(laptop, aec=False, configured="off")
    assert check.status == "warn" and "--echo gate" in (check.fix or "")
    assert echo_advice(none, aec=False, configured="off").status == "ok"


@pytest.mark.skipif(not aec_available(), reason="the canceller (livekit) does not load here")
def test_measure_cancellation_on_a_recorded_sweep() -> None:
    """The doctor replays the recorded sweep through a canceller: on a clean delayed echo it
    removes most of it; on a microphone that hears something else entirely, nothing."""
    from voicechat.audio.aec import EchoCanceller

    rate = 48000
    ref = np.concatenate([chirp(rate), np.zeros(rate // 2, dtype=np.int16)])
    echo = np.round(_delayed(ref.astype(np.float64), 40.0, 0.5, rate) + _noise(ref.size, -70.0)).astype(np.int16)
    c = doctor.measure_cancellation(ref, echo, rate, EchoCanceller)
    assert c is not None and c.works and c.erle_db >= 25.0, c
    other = np.round(_noise(ref.size, -20.0, seed=3)).astype(np.int16)  # not the reference at all
    c = doctor.measure_cancellation(ref, other, rate, EchoCanceller)
    assert c is not None and not c.works and c.erle_db < 10.0, c


def test_mic_levels_and_their_verdicts() -> None:
    t = np.arange(RATE) / RATE
    sine = np.round(0.1 * 32767 * np.sin(2 * np.pi * 440 * t)).astype(np.int16)  # -20 dBFS peak, -23 RMS
    lv = levels(sine, RATE)
    assert abs(lv.peak_db + 20.0) < 0.1 and abs(lv.rms_db + 23.0) < 0.1 and lv.clipped == 0
    assert lv.seconds == 1.0
    assert judge_levels(lv).status == "ok"

    silent = judge_levels(levels(np.zeros(RATE, dtype=np.int16), RATE))
    assert silent.status == "warn" and "digital silence" in silent.detail
    assert silent.fix is not None and "mute/volume" in silent.fix
    hiss = judge_levels(levels(np.round(_noise(RATE, -80.0)).astype(np.int16), RATE))
    assert hiss.status == "warn" and "almost silent" in hiss.detail
    clipped = np.clip(sine.astype(np.int32) * 20, -32768, 32767).astype(np.int16)
    check = judge_levels(levels(clipped, RATE))
    assert check.status == "warn" and "clipping" in check.detail and "down" in (check.fix or "")
    assert judge_levels(levels(np.zeros(0, dtype=np.int16), RATE)).status == "fail"


def _recording(**changes: Any) -> doctor.AudioRecording:
    rate = 24_000
    ref = np.concatenate([np.zeros(2400), chirp(rate), np.zeros(rate)]).astype(np.int16)
    mic = np.round(_delayed(ref.astype(np.float64), 40.0, 0.1, rate)).astype(np.int16)  # -20 dB at 40 ms
    fields: dict[str, Any] = dict(
        rate=rate, level_mic=doctor.tone(rate, seconds=2.0), tone_played=True, tone_underflows=0,
        startup_underflows=0, echo_ref=ref, echo_mic=mic, chirp_played=True,
    )
    fields.update(changes)
    return doctor.AudioRecording(**fields)


def test_judging_a_device_run() -> None:
    rec = _recording()
    assert doctor.judge_mic(rec, 2.0).status == "ok"
    assert doctor.judge_speaker(rec).status == "ok"
    echo = doctor.judge_echo(rec, aec=False, configured="auto")
    assert echo.status == "ok" and "echo return loss 20.0 dB at 40 ms" in echo.detail and "gate" in echo.detail
    assert doctor.judge_speaker(_recording(tone_underflows=3)).status == "warn"
    assert doctor.judge_speaker(_recording(tone_played=False, chirp_played=False)).status == "fail"
    assert doctor.judge_echo(_recording(echo_mic=np.zeros(100, dtype=np.int16)), aec=True, configured="auto").status == "warn"
    stalled = _recording(level_mic=np.zeros(12_000, dtype=np.int16), stalled_in="level", tone_played=False)
    mic = doctor.judge_mic(stalled, 2.0)
    assert mic.status == "fail" and "0.5 s of the 2 s" in mic.detail
    assert doctor.judge_speaker(stalled).status == "skip"
    assert doctor.judge_echo(stalled, aec=True, configured="auto").status == "skip"
    assert doctor.judge_echo(_recording(stalled_in="tail"), aec=True, configured="auto").status == "fail"


def test_a_microphone_that_stops_in_any_phase_ends_the_run() -> None:
    """Phases advance on microphone frames; a wall-clock limit in each ends a stalled run."""

    class Clock:
        now = 0.0

        def time(self) -> float:
            return self.now

    class Audio:
        rate, underflows = RATE, 0

    async def stalls_in(phase: str) -> str | None:
        script = doctor._Script(Audio(), None, 1.0, note=lambda message: None)  # type: ignore[arg-type]
        script.loop = Clock()  # type: ignore[assignment]
        script._enter(phase)
        for _ in range(1000):
            script.loop.now += 0.02  # type: ignore[attr-defined]
            if not script.on_block():
                break
        return script.stalled_in

    for phase in ("warmup", "level", "gap", "tail"):
        assert asyncio.run(stalls_in(phase)) == phase


def _settings(environ: dict[str, str] | None = None, **flags: Any) -> config.Settings:
    return config.resolve(flags=flags, environ=environ or {})


def test_key_line_never_shows_the_key() -> None:
    assert doctor.check_key(_settings(backend="local")).status == "ok"
    missing = doctor.check_key(_settings(backend="openai"))
    assert missing.status == "warn" and "export OPENAI_API_KEY=" in (missing.fix or "")
    present = doctor.check_key(_settings(backend="openai", environ={"OPENAI_API_KEY": FAKE_KEY}))
    assert present.status == "ok" and present.detail.endswith("(ends …WXYZ)")
    assert "in the environment" in present.detail
    assert FAKE_KEY not in format_check(present) and FAKE_KEY[:-4] not in format_check(present)
    short = doctor.check_key(_settings(backend="openai", environ={"OPENAI_API_KEY": "sk-short"}))
    assert short.detail == "set in the environment"


# ---- the report ----------------------------------------------------------------------------------


def test_report_lines_summary_and_exit_status() -> None:
    ok = Check("speaker", "ok", "played a tone", fix="never shown for ok")
    fail = Check("connect", "fail", "ws://127.0.0.1:9/v1/realtime: connection refused", fix="is the server running?")
    assert format_check(ok) == "ok    speaker        played a tone"
    assert format_check(fail).splitlines() == [
        "fail  connect        ws://127.0.0.1:9/v1/realtime: connection refused",
        "                     fix: is the server running?",
    ]
    # Server text cannot drive the terminal.
    assert "\x1b" not in format_check(Check("connect", "fail", "bad \x1b[2J news"))
    warn = Check("mic level", "warn", "silent", fix="unmute")
    assert doctor.summary([ok, warn]) == "0 failures, 1 warning: ready to talk"
    assert doctor.exit_status([ok, warn, Check("echo", "skip", "--no-audio")]) == 0
    assert doctor.summary([fail, warn, warn]).startswith("1 failure, 2 warnings: fix")
    assert doctor.exit_status([ok, fail]) == 1


def test_without_portaudio_the_device_checks_are_skipped(monkeypatch: pytest.MonkeyPatch) -> None:
    from voicechat.audio import device

    def missing() -> Any:
        raise PortAudioMissing("the PortAudio library is not installed (test)", hint=device.INSTALL_HINT)

    monkeypatch.setattr(device, "load_sounddevice", missing)
    lines: list[str] = []
    status = doctor.run(_settings(backend="local"), write=lines.append)
    text = "\n".join(lines)
    assert status == 1
    assert lines[0].startswith("fail  PortAudio")
    assert "apt-get install libportaudio2" in text and "brew install portaudio" in text
    for name in ("input device", "output device", "mic level", "speaker", "echo"):
        assert any(line.startswith(f"skip  {name}") for line in lines), name
    assert any(line.startswith("ok    connect") for line in lines)


# ---- connect -------------------------------------------------------------------------------------


def test_connect_round_trip_against_the_local_server() -> None:
    check = asyncio.run(doctor.check_connect(_settings(backend="local")))
    assert check.status == "ok", check
    assert re.search(r"ws://127\.0\.0\.1:\d+/v1/realtime .*session\.update round trip [\d.]+ ms", check.detail)


def _failing(error: Exception) -> Any:
    async def connector(endpoint: Endpoint, **kwargs: Any) -> Any:
        raise error

    return connector


@pytest.mark.parametrize(
    ("error", "words", "fix"),
    [
        (DnsError("cannot resolve host 'api.example.invalid' (Name or service not known)",
                  hint="check --base-url and your network/DNS"), "cannot resolve host", "network/DNS"),
        (status_error(401, Endpoint("wss://api.openai.com/v1/realtime?model=m", FAKE_KEY)), "HTTP 401",
         "OPENAI_API_KEY"),
        (status_error(404, Endpoint("wss://api.openai.com/v1/realtime?model=m", FAKE_KEY)), "HTTP 404",
         "--base-url and --model"),
        (ConnectError("timed out connecting to api.openai.com after 10 s"), "timed out", None),
    ],
)
def test_connect_failures_are_actionable(error: Exception, words: str, fix: str | None) -> None:
    settings = _settings(backend="openai", environ={"OPENAI_API_KEY": FAKE_KEY})
    check = asyncio.run(doctor.check_connect(settings, connector=_failing(error)))
    assert check.status == "fail" and words in check.detail
    assert check.detail.startswith("wss://api.openai.com/v1/realtime: ")
    if fix is not None:
        assert fix in (check.fix or "")
    assert FAKE_KEY not in format_check(check)


def test_connect_without_a_key_is_not_tried() -> None:
    def never(endpoint: Endpoint, **kwargs: Any) -> Any:
        raise AssertionError("must not connect without a key")

    check = asyncio.run(doctor.check_connect(_settings(backend="openai"), connector=never))
    assert check.status == "fail" and "no API key" in check.detail
    assert "export OPENAI_API_KEY=" in (check.fix or "")


def test_connect_reports_a_rejected_session_update() -> None:
    """A server that answers session.update with an error event: the fail line quotes it."""
    from voicechat.protocol import events as ev

    class Conn:
        async def events(self) -> Any:
            yield ev.SessionCreated(event_id="e1", session={})
            yield ev.ErrorEvent(event_id="e2", type="invalid_request_error", code="invalid_value",
                                message="Invalid value: 'nova'.", param="session.audio.output.voice")

        async def send(self, event: dict[str, Any]) -> None:
            assert event["type"] == "session.update"

        async def close(self) -> None:
            pass

    async def connector(endpoint: Endpoint, **kwargs: Any) -> Any:
        return Conn()

    settings = _settings(backend="openai", environ={"OPENAI_API_KEY": FAKE_KEY})
    check = asyncio.run(doctor.check_connect(settings, connector=connector))
    assert check.status == "fail"
    assert "rejected session.update: Invalid value: 'nova'. (session.audio.output.voice)" in check.detail


# ---- whole runs ----------------------------------------------------------------------------------


def _doctor(args: list[str], env: dict[str, str], cwd: Path, timeout: float = 90) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "voicechat", "doctor", *args], env=env, cwd=cwd, capture_output=True,
        text=True, timeout=timeout, stdin=subprocess.DEVNULL,
    )


def _line(out: str, name: str) -> str:
    found = [line for line in out.splitlines() if line[6:].startswith(name)]
    assert found, f"no {name!r} line in:\n{out}"
    return found[0]


def _clean_env(base: dict[str, str], tmp_path: Path) -> dict[str, str]:
    """No user config, no key, no backend from the caller's environment."""
    env = {k: v for k, v in base.items() if k not in ("OPENAI_API_KEY", "OPENAI_BASE_URL", "VOICECHAT_BACKEND",
                                                       "VOICECHAT_MODEL", "PULSE_SINK", "PULSE_SOURCE")}
    env["VOICECHAT_CONFIG_DIR"] = str(tmp_path / "config")
    return env


@pytest.mark.device
def test_doctor_local_on_headless_devices(pulse: dict[str, str], tmp_path: Path) -> None:
    """Speaker and microphone apart; speech plays into the microphone the whole time."""
    env = _clean_env(pulse, tmp_path)
    speech = tmp_path / "speech.wav"
    write_wav(speech, voiced(10.0, seed=11, level=3000.0), 24_000)  # -24 dBFS RMS
    player = subprocess.Popen(["paplay", "-d", "mic", str(speech)], env=env)
    try:
        proc = _doctor(["--backend", "local"], env, tmp_path)
    finally:
        player.terminate()
        player.wait(timeout=10)
    out = proc.stdout
    assert proc.returncode == 0, out + proc.stderr
    assert _line(out, "PortAudio").startswith("ok ")
    for name in ("input device", "output device"):
        line = _line(out, name)
        assert line.startswith("ok ") and re.search(r"opens at \d+ Hz", line), line
    mic = _line(out, "mic level")
    assert mic.startswith("ok "), out
    rms = float(re.search(r"RMS (-?[\d.]+) dBFS", mic).group(1))  # type: ignore[union-attr]
    assert -28.0 < rms < -20.0, mic
    speaker = _line(out, "speaker")
    assert speaker.startswith("ok ") and "no underruns" in speaker
    echo = _line(out, "echo")
    assert echo.startswith("ok ") and "no echo found" in echo and "--echo off" in echo, echo
    assert _line(out, "API key").startswith("ok ")
    connect = _line(out, "connect")
    assert connect.startswith("ok ") and "ws://127.0.0.1:" in connect and "session.update round trip" in connect
    assert out.splitlines()[-1] == "0 failures, 0 warnings: ready to talk"


@pytest.mark.device
def test_doctor_hears_the_echo_room(pulse: dict[str, str], tmp_path: Path) -> None:
    """The microphone is the speaker's own sink monitor: every sample played comes back at 0 dB,
    and the canceller, run over the recorded sweep, says how much of it it removes."""
    env = dict(_clean_env(pulse, tmp_path), PULSE_SINK="echo", PULSE_SOURCE="echo.monitor")
    proc = _doctor(["--backend", "local", "--seconds", "1"], env, tmp_path)
    out = proc.stdout
    assert proc.returncode == 0, out + proc.stderr  # warnings only
    assert _line(out, "mic level").startswith("warn ")  # nothing plays while the level is measured
    assert _line(out, "speaker").startswith("ok ")
    echo = _line(out, "echo")
    found = re.search(r"echo return loss (-?[\d.]+) dB at (-?\d+) ms", echo)
    cancelled = re.search(r"echo cancellation removes (\d+) dB \(residual (-\d+) dBFS\)", echo)
    assert echo.startswith("ok ") and found and cancelled, echo
    erl, delay = float(found.group(1)), int(found.group(2))
    erle, residual = int(cancelled.group(1)), int(cancelled.group(2))
    print(f"echo room: ERL {erl} dB, delay {delay} ms, ERLE {erle} dB, residual {residual} dBFS")
    assert abs(erl) < 1.0
    assert doctor.ALIGNED_MIN_MS <= delay <= doctor.ALIGNED_MAX_MS  # measured: 1-60 ms
    assert erle >= doctor.GOOD_ERLE_DB and "--echo aec" in echo  # measured: 56 dB, -65 dBFS
    assert _line(out, "connect").startswith("ok ")


SWEEP_AGAIN = """
import asyncio, dataclasses, json
import numpy as np
from voicechat import doctor
from voicechat.audio.device import DeviceAudio

async def main():
    audio = DeviceAudio(input_device=None, output_device=None, sample_rate=None)
    rec = await doctor.record(audio, 0.0, print, sweep_only=True)
    figures = lambda r: doctor.judge_echo(r, aec=True, configured="auto").detail
    # someone speaking through the middle of the sweep: 1 s of noise at -12 dBFS
    mic = rec.echo_mic.astype(float)
    mid, burst = mic.size // 2, rec.rate
    mic[mid - burst // 2 : mid + burst // 2] += np.random.default_rng(1).standard_normal(burst) * 8231.0
    mic = np.round(np.clip(mic, -32768, 32767)).astype(np.int16)
    spoiled = dataclasses.replace(rec, echo_mic=mic)
    kept = await doctor.sweep_again(audio, spoiled, True, print)
    print(json.dumps({"clean": figures(rec), "spoiled": figures(spoiled), "kept": figures(kept),
                      "replaced": kept.echo_mic is not spoiled.echo_mic}))

asyncio.run(main())
"""


@pytest.mark.device
@pytest.mark.skipif(not aec_available(), reason="the canceller (livekit) does not load here")
def test_a_spoiled_sweep_is_played_again(pulse: dict[str, str], tmp_path: Path) -> None:
    """A sweep spoiled by a sound in the room (or a glitch on a busy machine) leaves the canceller
    short of what it removes; the doctor plays the sweep again (up to twice: on a busy machine a
    second sweep can be spoiled too) and keeps the best."""
    env = dict(_clean_env(pulse, tmp_path), PULSE_SINK="echo", PULSE_SOURCE="echo.monitor")
    proc = subprocess.run([sys.executable, "-c", SWEEP_AGAIN], env=env, cwd=tmp_path, capture_output=True,
                          text=True, timeout=90, stdin=subprocess.DEVNULL)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    got = json.loads(proc.stdout.splitlines()[-1])
    assert "not enough" in got["spoiled"], got  # the spoiled sweep is judged short
    assert "playing it once more" in proc.stdout
    assert got["replaced"] and "not enough" not in got["kept"], got


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_doctor_openai_at_a_closed_port_fails_the_connect_line(tmp_path: Path) -> None:
    port = _closed_port()
    (tmp_path / "client.conf").write_text("autospawn = no\n")  # never start a sound server here
    env = dict(_clean_env(dict(os.environ), tmp_path), OPENAI_API_KEY=FAKE_KEY,
               PULSE_CLIENTCONFIG=str(tmp_path / "client.conf"))
    proc = _doctor(["--backend", "openai", "--base-url", f"http://127.0.0.1:{port}/v1", "--no-audio"], env, tmp_path)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 1, out
    connect = proc.stdout.splitlines()
    i = next(n for n, line in enumerate(connect) if line.startswith("fail  connect"))
    assert f"connection refused by 127.0.0.1:{port}" in connect[i]
    assert connect[i + 1].strip().startswith("fix: is the server running?")
    assert _line(proc.stdout, "API key") == "ok    API key        set in the environment (ends …WXYZ)"
    for name in ("mic level", "speaker", "echo"):
        assert _line(proc.stdout, name).startswith("skip "), name
    assert FAKE_KEY not in out
