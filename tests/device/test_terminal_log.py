"""The conversation as a log above the live panel, on real PortAudio devices in tmux.

Issue 14 items 2-3: each finished turn is printed once above the panel, its label in its role's
colour and its words uncoloured, and the scrollback after exit holds the conversation exactly
once and in order. Issue 15: an idle panel writes (nearly) nothing to the terminal; the bytes
are counted from the pane's output (``pipe-pane``), not timed.
"""

from __future__ import annotations

import re
import time
from pathlib import Path

import pytest

from tests.device.test_terminal import SGR, Pane, Run, colour_codes, panel_gone, pytestmark
from tests.device.test_terminal_devices import device_pane

__all__ = ["device_pane", "pytestmark"]  # the fixture and the tmux skip, shared

IDLE_S = 4.0  # how long the quiet panel is watched
IDLE_BYTES = 64  # what it may write in that time (was a full redraw, ~2.5 KB, every second)
QUESTIONS = ("first question here", "and a second one")


def scrollback(pane: Pane) -> str:
    """The pane's whole history and screen, with escape sequences."""
    return pane.tmux("capture-pane", "-p", "-e", "-J", "-S", "-", "-E", "-", "-t", "vc")


def ask(pane: Pane, said: str) -> None:
    pane.type(said)
    pane.keys("Enter")
    pane.wait_text(rf"^assistant: You said: {re.escape(said)}", "the reply, above the panel")
    pane.wait_text(r"^│ listening +you ○ +assistant ○", "the reply to end")


def idle_bytes(pane: Pane, tmp_path: Path) -> int:
    """What the pane's program writes while nothing happens, over IDLE_S."""
    sink = tmp_path / "idle.out"
    pane.tmux("pipe-pane", "-o", "-t", "vc", f"cat > {sink}")
    time.sleep(IDLE_S)  # a window to count bytes in; nothing is asserted about time
    pane.tmux("pipe-pane", "-t", "vc")  # stops the pipe
    pane.wait_for(lambda _: sink.exists(), "the pipe's file")
    return sink.stat().st_size


@pytest.mark.device
def test_turns_are_logged_once_in_colour_and_an_idle_panel_is_silent(device_pane: Pane, tmp_path: Path) -> None:
    run = Run(device_pane, tmp_path)
    run.start("--backend", "local", "--echo", "off")
    device_pane.wait_text(r"^│ listening +you ○ +assistant ○", "the panel, listening on real devices")
    for said in QUESTIONS:
        ask(device_pane, said)

    screen = device_pane.screen()
    panel = screen[screen.index("╭─ voicechat"):]
    assert f"You said: {QUESTIONS[-1]}" not in panel, "a finished turn is shown above the panel only"
    # Passing notices (the server and model said at connect) leave the panel once stale: one redraw.
    device_pane.wait_for(lambda s: "│ voicechat " not in s, "the passing notices to go")
    written = idle_bytes(device_pane, tmp_path)
    assert written <= IDLE_BYTES, f"the idle panel wrote {written} bytes in {IDLE_S:g} s"

    device_pane.type("/quit")
    device_pane.keys("Enter")
    assert panel_gone(run.wait_done())
    assert run.status == 0
    history = scrollback(device_pane)
    plain_lines = [SGR.sub("", line) for line in history.splitlines()]
    turns = [line for line in plain_lines if line.startswith(("you: ", "assistant: "))]
    expected = [line for said in QUESTIONS for line in (f"you: {said}", f"assistant: You said: {said}")]
    assert turns == expected, history
    assert panel_gone("\n".join(plain_lines)), history

    # The label in its role's colour (cyan, magenta), the words after it in none.
    for line in history.splitlines():
        plain = SGR.sub("", line)
        if not plain.startswith(("you: ", "assistant: ")):
            continue
        label, _, words = line.partition(": ")
        colour = "36" if plain.startswith("you") else "35"
        assert any(re.search(rf"(^|[;\[]){colour}[;m]", code) for code in colour_codes(label)), repr(line)
        assert colour_codes(words) == [], repr(line)


@pytest.mark.device
def test_piped_through_tee_the_conversation_stays_on_the_screen(device_pane: Pane, tmp_path: Path) -> None:
    """``voicechat talk | tee chat.txt``: tee writes its lines to the terminal the panel would
    draw on. The panel's redraws erased them and were broken by them (copies of its top lines
    left between the turns). With stdout a pipe, status lines stand in for the panel, and the
    questions are typed as lines the terminal echoes."""
    run = Run(device_pane, tmp_path)
    run.start("--backend", "local", "--echo", "off", pipe="tee chat.txt")
    device_pane.wait_text(r"^voicechat: stdout is a pipe: status lines instead of the live panel", "the mode, said")
    device_pane.wait_text(r"^voicechat: connected", "connected on real devices")
    for said in QUESTIONS:
        device_pane.type(said)
        device_pane.keys("Enter")
        device_pane.wait_text(rf"^assistant: You said: {re.escape(said)}$", "the reply, through tee")
    device_pane.type("/quit")
    device_pane.keys("Enter")
    assert panel_gone(run.wait_done())
    assert run.status == 0
    expected = [line for said in QUESTIONS for line in (f"you: {said}", f"assistant: You said: {said}")]
    assert (tmp_path / "chat.txt").read_text().splitlines() == expected, "the pipe got the plain lines"
    plain_lines = [SGR.sub("", line).rstrip() for line in scrollback(device_pane).splitlines()]
    turns = [line for line in plain_lines if line.startswith(("you: ", "assistant: "))]
    assert turns == expected, "\n".join(plain_lines)
    assert panel_gone("\n".join(plain_lines)) and "╭─" not in "\n".join(plain_lines)
