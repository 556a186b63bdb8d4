"""`voicechat talk` in a tmux pane on real PortAudio devices (headless PulseAudio) (issue 14, item 1).

With the panel up, libasound wrote ``ALSA lib pcm.c:… underrun occurred`` straight to fd 2: the
screen shifted and copies of the panel's top were left in the scrollback. Here a spoken turn is
played into the ``mic`` sink, the client is stopped for 200 ms at a time while the reply plays
(each stop starves the speaker: an underrun), and after Ctrl-C the whole scrollback must hold no
raw ``ALSA lib`` line and no copy of the panel.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.device.test_terminal import DONE, Pane, Run, pytestmark
from tests.helpers.devices import ROOT, TIMEUNIT

__all__ = ["pytestmark"]  # the tmux skip, shared with test_terminal

QUESTION = ROOT / "voicechat" / "data" / "question.wav"


@pytest.fixture
def device_pane(pulse: dict[str, str]) -> Iterator[Pane]:
    env = {k: v for k, v in os.environ.items()
           if k not in ("TMUX", "TMUX_PANE", "NO_COLOR", "FORCE_COLOR", "COLUMNS", "LINES", "PROMPT_COMMAND")}
    pane = Pane({**env, **pulse})
    try:
        pane.start()
        yield pane
    finally:
        pane.kill()


@pytest.mark.device
def test_spoken_session_with_underruns_leaves_a_clean_scrollback(device_pane: Pane, tmp_path: Path,
                                                                 pulse: dict[str, str]) -> None:
    run = Run(device_pane, tmp_path)
    run.start("--backend", "local", "--silence-duration-ms", "400", "--echo", "off")
    device_pane.wait_text(r"╭─ voicechat · connected · ", "the panel, connected on real devices")
    time.sleep(2.0 * TIMEUNIT)  # streams start ~1-2 s after opening on a null sink
    subprocess.run(["paplay", "-d", "mic", str(QUESTION)], env=pulse, check=True, timeout=30)
    device_pane.wait_text(r"^│ assistant speaking", "the reply playing")
    pid = run.voicechat_pid()
    for _ in range(5):  # starve the speaker: the device under-runs while the client is stopped
        os.kill(pid, signal.SIGSTOP)
        time.sleep(0.2)
        os.kill(pid, signal.SIGCONT)
        time.sleep(0.3)
    screen = device_pane.wait_text(r"underruns [1-9]", "the device's underruns on the panel")
    device_pane.keys("C-c")
    run.wait_done()
    assert run.status == 130
    run.assert_terminal_restored()
    scrollback = device_pane.tmux("capture-pane", "-p", "-t", "vc", "-S", "-", "-E", "-")
    assert "ALSA lib" not in scrollback, scrollback
    assert "Traceback" not in scrollback, scrollback
    assert not re.search(r"╭─ voicechat|│ > |│ mic ", scrollback), f"panel lines left behind:\n{scrollback}"
    assert DONE in scrollback, screen
    # libasound did write its lines (the test is not vacuous): counted, said once by voicechat.
    assert re.search(r"^voicechat: the sound library wrote (a line|\d+ lines) of its own to stderr", scrollback,
                     re.M), scrollback


@pytest.mark.device
@pytest.mark.parametrize("quiet", [False, True], ids=["status-log", "quiet"])
def test_underruns_leave_no_raw_library_line_in_the_status_log(
    pulse: dict[str, str], tmp_path: Path, quiet: bool
) -> None:
    """stderr not a terminal (the plain status log), and ``--quiet``: no ``ALSA lib`` line either."""
    chat = tmp_path / "chat.txt"
    talk = subprocess.Popen(
        [sys.executable, "-m", "voicechat", "talk", "--backend", "local", "--silence-duration-ms", "400",
         "--echo", "off", "--transcript", str(chat), *(["--quiet"] if quiet else [])],
        env=pulse, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, stdin=subprocess.DEVNULL,
    )
    try:
        time.sleep(3.0 * TIMEUNIT)  # streams start ~1-2 s after opening on a null sink
        subprocess.run(["paplay", "-d", "mic", str(QUESTION)], env=pulse, check=True, timeout=30)
        deadline = time.monotonic() + 20 * TIMEUNIT
        while "assistant:" not in (chat.read_text() if chat.exists() else "") and time.monotonic() < deadline:
            time.sleep(0.1)
        for _ in range(5):  # starve the speaker while the reply plays
            talk.send_signal(signal.SIGSTOP)
            time.sleep(0.2)
            talk.send_signal(signal.SIGCONT)
            time.sleep(0.3)
    finally:
        talk.send_signal(signal.SIGINT)
        stdout, stderr = talk.communicate(timeout=30)
    assert talk.returncode == 130, stderr
    assert "assistant:" in stdout, (stdout, stderr)
    assert "ALSA lib" not in stderr and "Traceback" not in stderr, stderr
    assert "voicechat: interrupted by SIGINT" in stderr.splitlines(), stderr
    said = re.search(r"^voicechat: the sound library wrote", stderr, re.M)
    assert (said is None) if quiet else (said is not None), stderr
