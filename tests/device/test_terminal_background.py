"""`voicechat talk` started outside its terminal's foreground process group (issue 14, item 0).

``voicechat talk &`` in an interactive shell, or ``timeout N voicechat talk`` (timeout puts its
child in a process group of its own), leaves voicechat in the background of the terminal: a
read of the tty or a change of its mode would stop it with SIGTTIN/SIGTTOU (and ``timeout``
continues a stopped child at once, a busy loop). It used to stay at ``connecting`` that way.
Here it runs in a tmux pane's interactive bash against the local backend; the tests check it
connects, stays cheap, leaves the tty alone, takes the keyboard after ``fg`` and ends cleanly.
"""

from __future__ import annotations

import contextlib
import os
import re
import shlex
import signal
import sys
import time
from pathlib import Path

from tests.device.test_terminal import (
    CLEARED_ENV,
    PROMPT,
    Pane,
    pane,
    panel_gone,
    pytestmark,
    quiet_input,
)

__all__ = ["pane", "pytestmark", "quiet_input"]  # fixtures and the tmux skip, shared with test_terminal

CPU_WINDOW_S = 3.0
# A connected, idle talk uses a few per cent of a core; the bug spent half of one or more. A
# busy machine can only lower what the process gets, so the bound cannot fail from load.
MAX_CPU_SHARE = 0.3


def talk_command(tmp_path: Path, quiet: Path, prefix: str = "") -> str:
    config_dir = tmp_path / "config"
    config_dir.mkdir(exist_ok=True)
    command = ["env", *(f"-u{name}" for name in CLEARED_ENV), f"VOICECHAT_CONFIG_DIR={config_dir}",
               sys.executable, "-m", "voicechat", "talk", "--backend", "local", "--input-file", str(quiet),
               "--transcript", str(tmp_path / "chat.jsonl")]
    return prefix + shlex.join(command)


def stat_fields(pid: int) -> list[str]:
    """``/proc/PID/stat`` from the state on (index 0 is the state, 2 the process group, 5 tpgid)."""
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()


def talk_pid(tmp_path: Path) -> int:
    """The python running voicechat for this test (found by its transcript path)."""
    mark = str(tmp_path / "chat.jsonl").encode()
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        with contextlib.suppress(OSError):
            argv = cmdline.read_bytes().split(b"\0")
            if argv and Path(os.fsdecode(argv[0])).name.startswith("python") and mark in argv:
                return int(cmdline.parent.name)
    raise AssertionError("voicechat is not running")


def cpu_share(pid: int, seconds: float) -> float:
    """The share of one core the process used over ``seconds`` of wall time."""
    tick = os.sysconf("SC_CLK_TCK")

    def cpu() -> float:
        fields = stat_fields(pid)
        return (int(fields[11]) + int(fields[12])) / tick  # utime + stime

    start_cpu, start = cpu(), time.monotonic()
    time.sleep(seconds)
    return (cpu() - start_cpu) / (time.monotonic() - start)


def written(path: Path) -> bool:
    """The shell's ``stty -g > path`` has finished: the redirection creates the file empty before
    stty writes its line, so existing is not enough (a read in between saw '')."""
    with contextlib.suppress(OSError):
        return path.read_text().endswith("\n")
    return False


def assert_backgrounded_and_cheap(pid: int) -> None:
    fields = stat_fields(pid)
    assert fields[0] != "T", "voicechat was stopped (SIGTTIN/SIGTTOU): it touched the tty from the background"
    assert fields[2] != fields[5], "voicechat should not be in the terminal's foreground process group"
    share = cpu_share(pid, CPU_WINDOW_S)
    assert share < MAX_CPU_SHARE, f"voicechat used {share:.0%} of a core in the background"
    assert stat_fields(pid)[0] != "T"


def test_talk_in_the_background_connects_and_takes_the_keyboard_after_fg(
    pane: Pane, tmp_path: Path, quiet_input: Path
) -> None:
    pane.run(f"cd {shlex.quote(str(tmp_path))}; stty -g > stty.before")
    pane.run(talk_command(tmp_path, quiet_input) + " &")
    screen = pane.wait_text(r"╭─ voicechat · connected · ", "the panel, connected from the background")
    assert "fg to type here" in screen, screen
    pid = talk_pid(tmp_path)
    assert_backgrounded_and_cheap(pid)
    # The tty was left as the shell keeps it (echo and line editing on).
    pane.run("stty -g > stty.background")
    pane.wait_for(lambda _: written(tmp_path / "stty.background"), "stty in the shell")

    # fg: the keyboard is taken now, and a typed line is a turn.
    pane.run('fg; echo "VC-STATUS $?"; stty -g > stty.after')
    pane.wait_text(r"^│ type \+ Enter: message", "the keyboard taken after fg")
    pane.type("hello from the front")
    pane.keys("Enter")
    pane.wait_text(r"^assistant: You said: hello from the front", "the reply to the typed turn")
    pane.type("/quit")
    pane.keys("Enter")
    screen = pane.wait_text(r"^VC-STATUS \d+$", "voicechat to exit")
    lines = screen.splitlines()
    assert "VC-STATUS 0" in lines and "Traceback" not in screen, screen
    assert "you: hello from the front" in lines, screen
    # (The shell's job line and prompt, printed while the panel was up, may have pushed copies of
    # its first frame up; what voicechat leaves after the conversation is its lines alone.)
    assert panel_gone("\n".join(lines[lines.index("you: hello from the front"):])), screen
    pane.wait_for(lambda _: written(tmp_path / "stty.after"), "stty after voicechat")
    before = (tmp_path / "stty.before").read_text()
    assert (tmp_path / "stty.background").read_text() == before
    assert (tmp_path / "stty.after").read_text() == before


def test_talk_under_timeout_connects_stays_idle_and_ends_on_sigint(
    pane: Pane, tmp_path: Path, quiet_input: Path
) -> None:
    """``timeout`` without ``--foreground`` in a script: voicechat is never in front; SIGINT ends it (130)."""
    pane.run(f"cd {shlex.quote(str(tmp_path))}; stty -g > stty.before")
    # From a shell without job control (a script; the exit keeps bash from exec-ing timeout in the
    # job's own group): timeout's own process group is not in front.
    script = talk_command(tmp_path, quiet_input, prefix="timeout 300 ")
    pane.run(f"bash -c {shlex.quote(script + '; exit $?')}" + '; echo "VC-STATUS $?"; stty -g > stty.after')
    pane.wait_text(r"╭─ voicechat · connected · ", "the panel, connected under timeout")
    pid = talk_pid(tmp_path)
    assert_backgrounded_and_cheap(pid)

    os.kill(pid, signal.SIGINT)
    screen = pane.wait_text(r"^VC-STATUS \d+$", "voicechat to exit")
    assert "VC-STATUS 130" in screen.splitlines(), screen
    assert panel_gone(screen) and "Traceback" not in screen, screen
    pane.wait_text(rf"^{re.escape(PROMPT.rstrip())}$", "the shell prompt")
    pane.wait_for(lambda _: written(tmp_path / "stty.after"), "stty after voicechat")
    assert (tmp_path / "stty.after").read_text() == (tmp_path / "stty.before").read_text()
