"""Device tier: the real PortAudio path through a headless PulseAudio (started here).

Speech goes in through the ``mic`` null sink (whose monitor is the default source) and the
assistant's audio is recorded from ``spk.monitor``. The client runs in a subprocess so that
PortAudio initialises after the sound server is up. Skipped, with the reason, where the Debian
packages are missing (``make test`` installs them when it runs as root).
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from tests.helpers.devices import ROOT, TIMEUNIT
from voicechat.audio.wav import read_wav

QUESTION = ROOT / "voicechat" / "data" / "question.wav"

pytestmark = pytest.mark.device


def test_devices_lists_pulse_with_rates_and_defaults(pulse: dict[str, str]) -> None:
    proc = subprocess.run([sys.executable, "-m", "voicechat", "devices"], env=pulse, capture_output=True,
                          text=True, timeout=30)
    assert proc.returncode == 0, proc.stderr
    assert "pulse" in proc.stdout and " Hz" in proc.stdout
    assert any(line.startswith("<>") or line.startswith("<") for line in proc.stdout.splitlines())


def test_bad_device_name_is_a_clear_error(pulse: dict[str, str]) -> None:
    proc = subprocess.run([sys.executable, "-m", "voicechat", "talk", "--backend", "local", "--input-device",
                           "no-such-mic"], env=pulse, capture_output=True, text=True, timeout=30,
                          stdin=subprocess.DEVNULL)
    assert proc.returncode == 4 and "no input device matches 'no-such-mic'" in proc.stderr


def test_spoken_conversation_through_real_devices(pulse: dict[str, str], tmp_path: Path) -> None:
    """Speak into the mic sink; the assistant's echo comes out of the speaker sink; SIGINT ends it."""
    recording = tmp_path / "speaker.wav"
    rec = subprocess.Popen(["parecord", "-d", "spk.monitor", "--file-format=wav", "--rate=24000", "--channels=1",
                            str(recording)], env=pulse)
    talk = subprocess.Popen(
        [sys.executable, "-m", "voicechat", "talk", "--backend", "local", "--silence-duration-ms", "400",
         "--transcript", str(tmp_path / "chat.txt")],
        env=pulse, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, stdin=subprocess.DEVNULL,
    )
    try:
        time.sleep(3.0 * TIMEUNIT)  # streams start ~1-2 s after opening on a null sink
        subprocess.run(["paplay", "-d", "mic", str(QUESTION)], env=pulse, check=True, timeout=30)
        deadline = time.monotonic() + 20 * TIMEUNIT
        while time.monotonic() < deadline:
            text = (tmp_path / "chat.txt").read_text() if (tmp_path / "chat.txt").exists() else ""
            if "assistant:" in text:
                break
            time.sleep(0.2)
        time.sleep(1.0)
    finally:
        talk.send_signal(signal.SIGINT)
        stdout, stderr = talk.communicate(timeout=30)
        rec.send_signal(signal.SIGINT)
        rec.wait(timeout=10)
    assert talk.returncode == 130, stderr
    assert "Traceback" not in stderr
    assert "you:" in stdout and "assistant:" in stdout, (stdout, stderr)
    samples, rate = read_wav(recording)
    assert rate == 24000
    level = np.abs(samples.astype(np.int32))
    # The echo brain played the spoken question back through the speaker.
    assert level.max() > 2000, "nothing audible reached the speaker sink"
    loud = np.flatnonzero(level > 1000)
    assert (loud[-1] - loud[0]) / rate > 1.0, "the reply should last about as long as the question"
