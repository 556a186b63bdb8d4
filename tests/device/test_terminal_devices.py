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
