"""`voicechat talk` on a real terminal: a tmux pane, driven by keys and read back from the screen.

Each test starts a private tmux server (its own socket) with a plain bash in a fixed-size pane
and runs voicechat there through a small wrapper script that saves ``stty -g`` before and after
and the exit status, so a test can tell that the terminal came back exactly as it was. The
microphone is a WAV file long enough (a minute) that the conversation stays open while keys
are typed; the keyboard reads the pane's tty as it would a real one. The screen is read with
``capture-pane`` (``-e`` to keep the escape sequences, for the colour checks).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest

from tests.helpers.devices import ServerThread
from tests.helpers.server import speech_like
from voicechat.audio.wav import write_wav
from voicechat.server import ScriptedBrain, ServerOptions

pytestmark = pytest.mark.skipif(shutil.which("tmux") is None, reason="needs tmux (Debian package tmux)")

WIDTH, HEIGHT = 100, 32
RATE = 24_000
WAIT = 30.0  # seconds for anything to show up; generous, the test machine is small and shared
DONE = "VOICECHAT-DONE"  # the wrapper prints this once voicechat has exited
PROMPT = "vc$ "
MODEL = "gpt-realtime-2.1-mini"  # a model with a known price, so the stats line shows a cost
# Colour in an SGR sequence: 30-37/40-47 (and the bright 90-97/100-107), or 38;/48; (256/RGB).
# 39 and 49 (default colours) are not colour; tmux's capture-pane -e emits them anyway.
COLOUR_PARAMS = {*range(30, 38), *range(40, 48), *range(90, 98), *range(100, 108), 38, 48}
SGR = re.compile(r"\x1b\[([0-9;:]*)m")
# Unset for voicechat in the pane, so the caller's settings cannot change what it does.
CLEARED_ENV = ("NO_COLOR", "FORCE_COLOR", "COLUMNS", "LINES", "OPENAI_API_KEY", "OPENAI_BASE_URL",
               "VOICECHAT_MODEL", "VOICECHAT_VOICE", "VOICECHAT_BACKEND")


def colour_codes(screen: str) -> list[str]:
    """The SGR sequences in ``screen`` that set a colour."""
    found = []
    for match in SGR.finditer(screen):
        params = [p for p in re.split("[;:]", match.group(1)) if p]
        if any(int(p) in COLOUR_PARAMS for p in params):
            found.append(match.group(0))
    return found


def silence(seconds: float) -> np.ndarray:
    return np.zeros(int(seconds * RATE), dtype=np.int16)


class Pane:
    """One tmux server on a private socket, with one session running an interactive bash."""

    def __init__(self, env: dict[str, str]) -> None:
        self.socket = f"voicechat-test-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        self.env = env
        self.socket_path: Path | None = None

    def tmux(self, *args: str) -> str:
        proc = subprocess.run(["tmux", "-L", self.socket, "-f", "/dev/null", *args], env=self.env,
                              capture_output=True, text=True, timeout=20, stdin=subprocess.DEVNULL)
        assert proc.returncode == 0, f"tmux {' '.join(args)}: {proc.stderr}"
        return proc.stdout

    def start(self) -> None:
        self.tmux("new-session", "-d", "-s", "vc", "-x", str(WIDTH), "-y", str(HEIGHT),
                  f"env PS1={shlex.quote(PROMPT)} bash --norc --noprofile --noediting -i")
        self.socket_path = Path(self.tmux("display-message", "-p", "#{socket_path}").strip())
        self.wait_for(lambda s: s.rstrip().endswith(PROMPT.rstrip()), "the shell prompt")

    def kill(self) -> None:
        subprocess.run(["tmux", "-L", self.socket, "kill-server"], env=self.env, capture_output=True,
                       timeout=20, stdin=subprocess.DEVNULL)
        if self.socket_path is not None:  # kill-server leaves the socket file behind
            self.socket_path.unlink(missing_ok=True)

    def type(self, text: str) -> None:
        self.tmux("send-keys", "-t", "vc", "-l", text)

    def keys(self, *names: str) -> None:
        self.tmux("send-keys", "-t", "vc", *names)

    def run(self, command: str) -> None:
        self.type(command)
        self.keys("Enter")

    def paste(self, text: str) -> None:
        """Paste like a terminal does: wrapped in bracketed-paste markers if the app asked."""
        self.tmux("set-buffer", "-b", "vctest", text)
        self.tmux("paste-buffer", "-p", "-d", "-b", "vctest", "-t", "vc")

    def screen(self, *, escapes: bool = False) -> str:
        return self.tmux("capture-pane", "-p", "-t", "vc", *(["-e"] if escapes else []))

    def flag(self, name: str) -> str:
        return self.tmux("display-message", "-p", "-t", "vc", f"#{{{name}}}").strip()

    def wait_for(self, ok: Callable[[str], object], what: str, timeout: float = WAIT) -> str:
        """Poll the screen until ``ok(screen)``; the screen then, or a failure showing it."""
        deadline = time.monotonic() + timeout
        while True:
            screen = self.screen()
            if ok(screen):
                return screen
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}; the screen:\n{screen}")
            time.sleep(0.1)

    def wait_text(self, pattern: str, what: str | None = None, timeout: float = WAIT) -> str:
        """Wait for a regular expression (multiline) to match the screen."""
        regex = re.compile(pattern, re.MULTILINE)
        return self.wait_for(regex.search, what or repr(pattern), timeout)


@pytest.fixture
def pane(tmp_path: Path) -> Iterator[Pane]:
    env = {k: v for k, v in os.environ.items()
           if k not in ("TMUX", "TMUX_PANE", "NO_COLOR", "FORCE_COLOR", "COLUMNS", "LINES", "PROMPT_COMMAND")}
    p = Pane(env)
    try:
        p.start()
        yield p
    finally:
        p.kill()


@pytest.fixture
def long_input(tmp_path: Path) -> Path:
    """A microphone that says one thing early, then stays quiet for a minute."""
    path = tmp_path / "mic.wav"
    write_wav(path, np.concatenate([silence(1.0), speech_like(1.5), silence(60.0)]), RATE)
    return path


@pytest.fixture
def quiet_input(tmp_path: Path) -> Path:
    """A microphone that is silent for a minute: only typed turns happen."""
    path = tmp_path / "quiet.wav"
    write_wav(path, silence(60.0), RATE)
    return path


class Run:
    """voicechat in the pane through a wrapper that records the terminal state and exit status."""

    def __init__(self, pane: Pane, tmp_path: Path) -> None:
        self.pane = pane
        self.dir = tmp_path

    def start(self, *args: str, env: dict[str, str] | None = None, stdout: Path | None = None,
              read_after: bool = False, pipe: str | None = None) -> None:
        config_dir = self.dir / "config"  # empty: no config file is read
        config_dir.mkdir(exist_ok=True)
        assignments = {"VOICECHAT_CONFIG_DIR": str(config_dir), **(env or {})}
        command = [
            "env", *(f"-u{name}" for name in CLEARED_ENV),
            *(f"{k}={v}" for k, v in assignments.items()),
            sys.executable, "-m", "voicechat", "talk", *args,
        ]
        redirect = f" > {shlex.quote(str(stdout))}" if stdout is not None else ""
        if pipe is not None:  # stdout into another command (`| tee chat.txt`) on the same terminal
            redirect += f" | {pipe}"
        lines = [
            "#!/bin/bash",
            "trap : INT",  # the wrapper outlives a Ctrl-C that voicechat handles
            f"cd {shlex.quote(str(self.dir))}",
            "echo $$ > wrapper.pid",  # to find voicechat, its child, for a signal
            "stty -g > stty.before",
            shlex.join(command) + redirect,
            "echo ${PIPESTATUS[0]} > status",  # voicechat's, also at the head of a pipe
            "stty -g > stty.after",
            f"echo {DONE}",
        ]
        if read_after:  # a line typed or pasted after voicechat ended, as the shell would get it
            lines.append("IFS= read -r line; printf '%s' \"$line\" > after.txt")
        script = self.dir / "run.sh"
        script.write_text("\n".join(lines) + "\n")
        self.pane.run(f"bash {shlex.quote(str(script))}")

    def wait_done(self) -> str:
        return self.pane.wait_text(f"^{DONE}$", "voicechat to exit")

    @property
    def status(self) -> int:
        return int((self.dir / "status").read_text())

    def voicechat_pid(self) -> int:
        """The process id of the running voicechat: the wrapper's child (``env`` exec's python)."""
        wrapper = int((self.dir / "wrapper.pid").read_text())
        for stat in Path("/proc").glob("[0-9]*/stat"):
            with contextlib.suppress(OSError):
                fields = stat.read_text().rsplit(")", 1)[1].split()
                if int(fields[1]) == wrapper:  # the field after the state is the parent's pid
                    return int(stat.parent.name)
        raise AssertionError("voicechat is not running under the wrapper")

    def assert_terminal_restored(self) -> None:
        before = (self.dir / "stty.before").read_text()
        after = (self.dir / "stty.after").read_text()
        assert before == after, f"tty settings changed:\nbefore {before}after  {after}"
        assert self.pane.flag("cursor_flag") == "1", "the cursor is still hidden"
        assert self.pane.flag("alternate_on") == "0"


def panel_gone(screen: str) -> bool:
    return "╭─ voicechat" not in screen and "│ > " not in screen


# ---- the live panel ------------------------------------------------------------------------


def test_panel_shows_a_conversation_and_quit_restores_the_terminal(
    pane: Pane, tmp_path: Path, long_input: Path
) -> None:
    run = Run(pane, tmp_path)
    run.start("--backend", "local", "--input-file", str(long_input), "--model", MODEL, "--voice", "cedar",
              "--vad", "server", "--transcript", "chat.jsonl", read_after=True)

    # The frame: the connection and time left in the title, the session's settings under it.
    screen = pane.wait_text(r"╭─ voicechat · connected · (\d+ min|\d+:\d\d) left ─", "the panel, connected")
    assert re.search(rf"^│ {re.escape(MODEL)} · voice cedar · server VAD · echo off +│$", screen, re.M), screen
    assert pane.flag("cursor_flag") == "0", "the panel should hide the cursor while it is up"

    # The spoken turn: the panel shows the user speaking with a live mic level, then the echo.
    seen: set[str] = set()

    def voice_turn_done(s: str) -> bool:
        if re.search(r"^│ user speaking +you ● +assistant ○", s, re.M):
            seen.add("user speaking")
        if re.search(r"^│ mic █+░* +-?\d+\.\d dBFS", s, re.M):
            seen.add("mic level")
        return bool(re.search(r"^assistant: \S", s, re.M) and re.search(r"^│ listening +you ○ +assistant ○", s, re.M))

    screen = pane.wait_for(voice_turn_done, "the spoken turn and its reply")
    assert seen == {"user speaking", "mic level"}, (seen, screen)
    assert re.search(r"^you: \S", screen, re.M), screen  # finished turns are above the panel, not in it
    assert re.search(r"^│ latency \d+ ms · underruns \d+ · tokens [1-9][\d,]* in / [1-9][\d,]* out · \$\d+\.\d{4}",
                     screen, re.M), screen
    assert re.search(r"^│ mic [█░]{24} +(—|-∞|-?\d+\.\d) dBFS", screen, re.M), screen
    assert re.search(r"^│ out [█░]{24} +(—|-∞|-?\d+\.\d) dBFS", screen, re.M), screen
    assert "│ type + Enter: message · /help · ctrl-c: quit" in screen
    assert colour_codes(pane.screen(escapes=True)), "expected colours without NO_COLOR"

    # A paste arrives as one piece (bracketed paste is on): its newline does not send it.
    pane.paste("pasted one\npasted two")
    pane.wait_text(r"^│ > pasted one pasted two▌", "the pasted text in the input line")
    pane.keys("C-u")
    pane.wait_text(r"^│ > ▌ +│$", "the input line cleared by Ctrl-U")

    # A typed line shows in the input line, and only there, until Enter sends it.
    said = "what a [bold]lovely[/bold] test"  # markup-like text must come out literally
    pane.type(said)
    screen = pane.wait_text(rf"^│ > {re.escape(said)}▌", "the typed line in the input line")
    assert f"you       {said}" not in screen

    pane.keys("Enter")
    speaking: set[str] = set()

    def reply_done(s: str) -> bool:
        if re.search(r"^│ assistant speaking +you ○ +assistant ●", s, re.M):
            speaking.add("assistant speaking")
        if re.search(r"^│ out █+░* +-?\d+\.\d dBFS", s, re.M):
            speaking.add("out level")
        return (f"\nassistant: You said: {said}" in s
                and bool(re.search(r"^│ listening +you ○ +assistant ○", s, re.M)))

    screen = pane.wait_for(reply_done, "the reply to the typed turn")
    assert speaking == {"assistant speaking", "out level"}, (speaking, screen)
    assert f"│ you       {said}" not in screen and f"│ assistant You said: {said}" not in screen, screen
    assert re.search(r"^│ > ▌ +│$", screen, re.M), "the input line is empty after Enter"
    # The transcript lines are printed on the terminal above the panel, as turns finish.
    above = screen.split("╭─ voicechat")[0]
    assert f"you: {said}\n" in above and f"assistant: You said: {said}" in above, screen

    # /quit: typed in the input line, then the conversation ends and the terminal is as it was.
    pane.type("/quit")
    pane.wait_text(r"^│ > /quit▌", "/quit in the input line")
    pane.keys("Enter")
    screen = run.wait_done()
    assert run.status == 0, screen
    run.assert_terminal_restored()
    assert panel_gone(screen), screen
    assert "Traceback" not in screen and "voicechat: error" not in screen, screen
    # What was said stays on the terminal (stdout), and in the transcript file.
    lines = screen.splitlines()
    assert f"you: {said}" in lines and f"assistant: You said: {said}" in lines, screen
    records = [json.loads(line) for line in (tmp_path / "chat.jsonl").read_text().splitlines()]
    assert [r["role"] for r in records] == ["user", "assistant"] * 2
    assert records[2]["text"] == said and records[2]["kind"] == "text"

    # Bracketed paste was switched off: a paste now reaches the program without markers.
    pane.paste("after the panel")
    pane.keys("Enter")
    pane.wait_text(rf"^{re.escape(PROMPT.rstrip())}", "the shell prompt", timeout=WAIT)
    # (the redirection creates the file before printf writes to it: wait for its one write)
    pane.wait_for(lambda _: (tmp_path / "after.txt").exists() and (tmp_path / "after.txt").stat().st_size > 0,
                  "the wrapper to read a line")
    assert (tmp_path / "after.txt").read_text() == "after the panel"


def ask_typed(pane: Pane, tmp_path: Path, quiet_input: Path, said: str) -> Run:
    """``--backend local`` with a silent microphone and ``chat.jsonl``: ``said`` is typed, and the
    run is handed back while the assistant speaks its reply."""
    run = Run(pane, tmp_path)
    run.start("--backend", "local", "--input-file", str(quiet_input), "--transcript", "chat.jsonl")
    pane.wait_text(r"^│ listening +you ○ +assistant ○", "the panel, listening")
    pane.type(said)
    pane.keys("Enter")
    pane.wait_text(r"^│ assistant speaking +you ○ +assistant ●", "the assistant speaking")
    return run


def test_ctrl_c_quits_with_status_130_and_keeps_the_transcript(
    pane: Pane, tmp_path: Path, quiet_input: Path
) -> None:
    said = "one two three four five six seven eight"
    run = ask_typed(pane, tmp_path, quiet_input, said)
    # Ctrl-C while the reply is still being spoken, with a line half typed.
    pane.type("never sent")
    pane.wait_text(r"^│ > never sent▌", "the half-typed line")
    pane.keys("C-c")

    screen = run.wait_done()
    assert run.status == 130, screen
    run.assert_terminal_restored()
    assert panel_gone(screen), screen
    assert "Traceback" not in screen, screen
    assert "never sent" not in screen, "typed text leaked to the shell"
    lines = screen.splitlines()
    assert f"you: {said}" in lines, screen
    # The reply was cut by the quit: only what was heard is kept (how much depends on how soon
    # the key landed after playback began), marked interrupted.
    assert any(line.startswith("assistant: ") and line.endswith(("[interrupted]", "[interrupted before any words]")) for line in lines), screen
    records = [json.loads(line) for line in (tmp_path / "chat.jsonl").read_text().splitlines()]
    assert [r["role"] for r in records] == ["user", "assistant"]
    assert records[0]["text"] == said and records[1]["interrupted"]
    assert f"You said: {said}".startswith(records[1]["text"])
    assert records[1]["text"] != f"You said: {said}"  # never the whole reply
    assert records[1]["end"] > records[1]["start"]


def test_sigterm_mid_reply_restores_the_terminal_and_keeps_the_transcript(
    pane: Pane, tmp_path: Path, quiet_input: Path
) -> None:
    """``kill PID`` (SIGTERM) while the panel is up and the assistant speaks: status 143."""
    said = "one two three four five six seven eight nine ten"
    run = ask_typed(pane, tmp_path, quiet_input, said)
    os.kill(run.voicechat_pid(), signal.SIGTERM)

    screen = run.wait_done()
    assert run.status == 143, screen
    run.assert_terminal_restored()
    assert panel_gone(screen), screen
    assert "Traceback" not in screen, screen
    lines = screen.splitlines()
    assert "voicechat: interrupted by SIGTERM" in lines, screen
    assert f"you: {said}" in lines, screen
    records = [json.loads(line) for line in (tmp_path / "chat.jsonl").read_text().splitlines()]
    assert [r["role"] for r in records] == ["user", "assistant"] and records[1]["interrupted"], records


def test_stdout_to_a_file_gets_plain_lines_while_the_panel_draws(
    pane: Pane, tmp_path: Path, quiet_input: Path
) -> None:
    """``voicechat talk > chat.txt`` on a terminal: the panel on stderr, the transcript in the file."""
    out = tmp_path / "chat.txt"
    run = Run(pane, tmp_path)
    run.start("--backend", "local", "--input-file", str(quiet_input), stdout=out)
    pane.wait_text(r"^│ listening +you ○ +assistant ○", "the panel, listening")

    said = "into the file please"
    pane.type(said)
    pane.keys("Enter")
    screen = pane.wait_text(rf"^assistant: You said: {re.escape(said)}", "the reply above the panel")
    # Each line is in the file as soon as its turn is done, while the conversation goes on.
    expected = f"you: {said}\nassistant: You said: {said}\n"
    pane.wait_for(lambda _: out.read_text() == expected, "both lines in the file")
    assert "╭─ voicechat" in pane.screen(), "the conversation should still be going"
    # The terminal shows the conversation too, above the panel, once (the file is not the screen).
    assert screen.count(f"you: {said}") == 1, screen

    pane.run("/quit")
    screen = run.wait_done()
    assert run.status == 0, screen
    run.assert_terminal_restored()
    assert panel_gone(screen), screen
    assert out.read_text() == expected  # plain: no escape sequences, nothing else


# ---- hostile server text, without colour -------------------------------------------------

HOSTILE = "evil \x1b[31mred\x1b[0m title\x1b]0;pwned\x07 wipe\x1b[2J bell\x07 c1\x9b31m end"


def test_no_color_and_server_control_characters_on_the_panel(
    pane: Pane, tmp_path: Path, quiet_input: Path
) -> None:
    """NO_COLOR=1: no colour codes anywhere on the screen, even with colour codes in the reply."""
    options = ServerOptions(brain=ScriptedBrain([HOSTILE]), recognizer="none", speed=20.0, seed=5)
    with ServerThread(options) as st:
        run = Run(pane, tmp_path)
        title = pane.flag("pane_title")
        run.start("--base-url", st.server.http_base_url, "--input-file", str(quiet_input),
                  env={"NO_COLOR": "1", "OPENAI_API_KEY": "sk-loopback"})
        pane.wait_text(r"^│ listening +you ○ +assistant ○", "the panel, listening")
        pane.run("tell me something nasty")
        screen = pane.wait_text(r"^assistant: evil ", "the reply above the panel")
        screen = pane.wait_text(r"^│ listening +you ○ +assistant ○", "the reply to end")

        # The controls are shown as text, in the finished line above the panel (once).
        for shown in (r"\x1b[31mred\x1b[0m", r"title\x1b]0;pwned\x07", r"wipe\x1b[2J", r"c1\x9b31m"):
            assert screen.count(shown) == 1, (shown, screen)
        assert pane.flag("pane_title") == title, "the server's text changed the terminal title"
        with_escapes = pane.screen(escapes=True)
        assert SGR.search(with_escapes), "capture-pane -e should show the panel's bold and dim"
        assert colour_codes(with_escapes) == [], with_escapes

        pane.run("/quit")
        screen = run.wait_done()
    assert run.status == 0, screen
    run.assert_terminal_restored()
    assert panel_gone(screen), screen
    assert any(line.startswith(r"assistant: evil \x1b[31mred") for line in screen.splitlines()), screen
    assert colour_codes(pane.screen(escapes=True)) == []
