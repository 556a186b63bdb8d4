"""``--no-auto-response`` on a real terminal (tmux): the spoken turn waits, Enter on the empty
input line asks for the reply (issue 14, item 13: before, nothing could)."""

from __future__ import annotations

import json
import time
from pathlib import Path

from tests.device.test_terminal import Pane, Run, long_input, pane, panel_gone, pytestmark

__all__ = ["long_input", "pane", "pytestmark"]  # fixtures and the tmux skip, shared with test_terminal

WAIT_S = 60.0


def roles(chat: Path) -> list[str]:
    if not chat.exists():
        return []
    return [json.loads(line)["role"] for line in chat.read_text().splitlines() if line.strip()]


def wait_roles(chat: Path, want: list[str]) -> None:
    deadline = time.monotonic() + WAIT_S
    while roles(chat) != want:
        assert time.monotonic() < deadline, f"the transcript holds {roles(chat)}, not {want}"
        time.sleep(0.1)


def test_enter_on_the_empty_line_asks_for_the_reply(pane: Pane, tmp_path: Path, long_input: Path) -> None:
    chat = tmp_path / "chat.jsonl"
    run = Run(pane, tmp_path)
    run.start("--backend", "local", "--input-file", str(long_input), "--no-auto-response",
              "--transcript", str(chat))
    pane.wait_text(r"Enter: the reply", "the help line naming the key")
    wait_roles(chat, ["user"])  # the turn is committed and written; no reply of its own
    assert "assistant" not in roles(chat)
    pane.keys("Enter")
    wait_roles(chat, ["user", "assistant"])
    pane.type("/quit")
    pane.keys("Enter")
    screen = run.wait_done()
    assert run.status == 0, screen
    run.assert_terminal_restored()
    assert panel_gone(screen), screen
    assert "Traceback" not in screen, screen
