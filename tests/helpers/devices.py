"""Helpers for device-tier tests that measure audio timing through the headless PulseAudio.

* ``headless_pulse``: start ``scripts/headless-audio.sh`` in a private directory, yield the
  client environment, stop it afterwards (skips when the Debian packages are missing).
* ``wait_for``, ``sigint_and_collect``: polling with a bound, and Ctrl-C for a client.
* ``voiced``: speech-like test audio with no pauses and a unique correlation peak.
* Re-exported from ``bench.devices`` (the bench measures through the same devices):
  ``Recorder``, ``PlaybackRecorder``, ``sink_inputs_of``, ``ServerThread``, ``StampedLog``,
  ``Blob``, ``blobs``, ``locate``.
"""

from __future__ import annotations

import ctypes.util
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest

from bench.devices import (  # noqa: F401  (re-exported for the device tests)
    RATE,
    ROOT,
    SCRIPT,
    TIMEUNIT,
    Blob,
    PlaybackRecorder,
    Recorder,
    ServerThread,
    StampedLog,
    blobs,
    headless_pulse_env,
    locate,
    sink_inputs_of,
    stop_pulse,
)

PULSE_TOOLS = ("pulseaudio", "pactl", "paplay", "parecord")


def missing_audio_tools() -> str | None:
    """Why the device tier cannot run here, or None."""
    missing = [tool for tool in PULSE_TOOLS if shutil.which(tool) is None]
    if ctypes.util.find_library("portaudio") is None:
        missing.append("libportaudio2")
    return f"headless audio needs {' '.join(missing)} (make test installs them as root)" if missing else None


def headless_pulse(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """Generator body for a module fixture: a private headless PulseAudio and its client env."""
    reason = missing_audio_tools()
    if reason:
        pytest.skip(reason)
    env = headless_pulse_env(tmp_path_factory.mktemp("pulse"))
    try:
        yield env
    finally:
        stop_pulse(env)


def wait_for(condition: Any, timeout: float, what: str, interval: float = 0.02) -> Any:
    """Poll ``condition()`` until it returns something truthy; fail naming ``what``."""
    deadline = time.monotonic() + timeout * TIMEUNIT
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout * TIMEUNIT:.1f} s waiting for {what}")
        time.sleep(interval)


def sigint_and_collect(proc: subprocess.Popen[str]) -> tuple[int, str, str]:
    """SIGINT ``proc`` (as Ctrl-C would) and collect its exit status, stdout and stderr."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGINT)
    try:
        stdout, stderr = proc.communicate(timeout=30 * TIMEUNIT)
    except subprocess.TimeoutExpired:
        proc.kill()
        stdout, stderr = proc.communicate(timeout=10)
    return proc.returncode, stdout, stderr



# ---- test audio and analysis ------------------------------------------------------------------


def voiced(seconds: float, seed: int, level: float = 6000.0, rate: int = RATE) -> np.ndarray:
    """Speech-like int16 audio: harmonics on a wandering pitch, syllable-like loudness, breath.

    It never pauses (so where playback stopped is visible at any point) and neither pitch nor
    envelope repeats (so a cross-correlation has one clear peak). Far above the server VAD's
    default threshold (about -18 dBFS RMS against -35).
    """
    rng = np.random.default_rng(seed)
    n = int(seconds * rate)
    i = np.arange(n)
    f0 = np.interp(i, np.linspace(0, n, int(seconds * 6) + 2), rng.uniform(105, 195, int(seconds * 6) + 2))
    phase = 2 * np.pi * np.cumsum(f0) / rate
    voice = sum(np.sin(k * phase) / k for k in range(1, 7))
    envelope = np.interp(i, np.linspace(0, n, int(seconds * 9) + 2), rng.uniform(0.5, 1.0, int(seconds * 9) + 2))
    signal = voice * envelope + 0.12 * rng.standard_normal(n)
    ramp = min(n // 2, rate // 100)  # 10 ms fades: no click at either end
    signal[:ramp] *= np.linspace(0, 1, ramp)
    signal[n - ramp :] *= np.linspace(1, 0, ramp)
    return np.asarray(np.round(signal * level), dtype=np.int16)

