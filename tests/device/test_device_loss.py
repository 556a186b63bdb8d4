"""Real PortAudio on a machine with no audio devices at all (no sound server, no sound card):
``voicechat talk`` ends in one line naming the problem, a hint, and the audio status (4) — not
``internal error: PortAudioError: Error querying device -1`` (issue 12)."""

from __future__ import annotations

import ctypes.util
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers.cli import NOISE, clean_env, run_voicechat
from voicechat.errors import ExitStatus


def no_devices_env(tmp_path: Path) -> dict[str, str]:
    """PortAudio's ALSA host API pointed at a sound server that is not there."""
    return clean_env(tmp_path, OPENAI_API_KEY="sk-no-devices", PULSE_SERVER=f"unix:{tmp_path}/no-such-server",
                     PULSE_RUNTIME_PATH=str(tmp_path / "no-pulse"))


def device_count(env: dict[str, str]) -> int:
    probe = "import sounddevice as sd; print(len(sd.query_devices()))"
    done = subprocess.run([sys.executable, "-c", probe], env=env, capture_output=True, text=True, timeout=60)
    return int(done.stdout.strip() or "-1")


async def test_talk_with_no_audio_device_at_all_is_one_line_with_a_hint(tmp_path: Path) -> None:
    if ctypes.util.find_library("portaudio") is None:
        pytest.skip("needs libportaudio2")
    env = no_devices_env(tmp_path)
    if device_count(env) != 0:
        pytest.skip("this machine has audio devices without a sound server (a sound card)")
    run = await run_voicechat(tmp_path, "talk", "--base-url", "http://127.0.0.1:9/v1", env=env)
    assert run.status == ExitStatus.AUDIO, run.stderr
    for word in NOISE:
        assert word not in run.stderr, run.stderr
    lines = run.stderr.rstrip().splitlines()
    assert lines[-2] == "voicechat: error: no output audio device found", run.stderr
    assert lines[-1].startswith("  hint: ") and "--input-file" in lines[-1] and "pactl info" in lines[-1]
    assert "connecting" not in run.stderr, "the devices are checked before connecting"


async def test_devices_with_no_audio_device_at_all_says_so(tmp_path: Path) -> None:
    """``voicechat devices`` on such a machine: one line with the hint and status 4, not an empty
    list and status 0 (issue 14)."""
    if ctypes.util.find_library("portaudio") is None:
        pytest.skip("needs libportaudio2")
    env = no_devices_env(tmp_path)
    if device_count(env) != 0:
        pytest.skip("this machine has audio devices without a sound server (a sound card)")
    run = await run_voicechat(tmp_path, "devices", env=env)
    assert run.status == ExitStatus.AUDIO, run.stderr
    assert run.stdout == ""
    lines = run.stderr.rstrip().splitlines()
    assert lines[0] == "voicechat: error: no audio devices found", run.stderr
    assert lines[1].startswith("  hint: ") and "pactl info" in lines[1] and len(lines) == 2, run.stderr
