"""Choosing a device by name on real PortAudio devices (the headless PulseAudio's ALSA devices,
``pulse (ALSA)`` and ``default (ALSA)``), and being told which were opened (issue 14, item 7)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from voicechat.errors import ExitStatus

pytestmark = pytest.mark.device


def _voicechat(pulse: dict[str, str], tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in pulse.items() if not k.startswith("VOICECHAT_") and k != "OPENAI_API_KEY"}
    env["VOICECHAT_CONFIG_DIR"] = str(tmp_path / "config")
    return subprocess.run([sys.executable, "-m", "voicechat", *args], env=env, cwd=tmp_path, capture_output=True,
                          text=True, stdin=subprocess.DEVNULL, timeout=120)


def _listed(pulse: dict[str, str], tmp_path: Path) -> list[str]:
    run = _voicechat(pulse, tmp_path, "devices")
    assert run.returncode == 0, run.stderr
    return [line[6:].strip().split(",")[0] for line in run.stdout.splitlines()]  # "pulse (ALSA)"


def test_a_substring_two_devices_share_is_refused_naming_both(pulse: dict[str, str], tmp_path: Path) -> None:
    names = _listed(pulse, tmp_path)
    if not {"pulse (ALSA)", "default (ALSA)"} <= set(names):
        pytest.skip(f"expected the headless PulseAudio's ALSA devices, found {names}")
    run = _voicechat(pulse, tmp_path, "talk", "--backend", "local", "--input-device", "ul")  # pULse, defaULt
    assert run.returncode == ExitStatus.AUDIO, run.stderr
    error = run.stderr.strip().splitlines()[-2:]
    assert error[0].startswith("voicechat: error: ") and "input devices match 'ul'" in error[0], run.stderr
    assert "pulse (ALSA)" in error[0] and "default (ALSA)" in error[0], run.stderr
    assert error[1] == "  hint: give the index, or more of the name"
    assert "voicechat: server " not in run.stderr  # refused before connecting


def test_a_name_as_devices_shows_it_is_opened_and_said(pulse: dict[str, str], tmp_path: Path) -> None:
    """``--input-device "pulse (ALSA)"`` (the host API suffix included) opens that device, and the
    status log says which microphone and speaker were opened."""
    names = _listed(pulse, tmp_path)
    if "pulse (ALSA)" not in names:
        pytest.skip(f"expected the headless PulseAudio's ALSA devices, found {names}")
    run = _voicechat(pulse, tmp_path, "talk", "--backend", "local", "--echo", "off", "--input-device",
                     "pulse (ALSA)", "--max-minutes", "0.02")
    assert run.returncode == 0, run.stderr
    said = re.search(r"^voicechat: microphone (.+), speaker (.+), (\d+) Hz$", run.stderr, re.M)
    assert said is not None, run.stderr
    assert said.group(1) == "pulse (ALSA)"
    assert said.group(2) in names  # the default output, named as `voicechat devices` names it
