"""SIGINT and SIGTERM at every phase of ``voicechat talk`` (a subprocess, stdout and stderr pipes).

Phases: while connecting (a server that accepts TCP and never answers the upgrade), before the
session is set up (a server that never sends ``session.created``), mid-conversation while the
assistant speaks, and during the shutdown that follows (a second signal while the socket is
still closing). Each ends with 130 (SIGINT) or 143 (SIGTERM) decided by the first signal, one
``voicechat: interrupted by …`` line, no traceback, the transcript written, and, where a
connection was open, the socket closed with 1000 as the server saw it. The terminal case (tmux) is in test_terminal.py.
"""

from __future__ import annotations

import asyncio
import json
import signal
import socket
import subprocess
import time
from pathlib import Path

import pytest

from tests.helpers.cli import NOISE, TIMEOUT, VOICECHAT, clean_env, question_wav, wait_closes
from tests.helpers.hostile import HostileServer, Peer
from voicechat.server import LocalServer, ScriptedBrain, ScriptedReply, ServerOptions

SIGNALS = [(signal.SIGINT, 130), (signal.SIGTERM, 143)]
IDS = ["SIGINT", "SIGTERM"]
HEARD = "please tell me a long story"
REPLY = "once upon a time there was a very long reply that kept on going and going"


class Talk:
    """A running ``voicechat talk`` whose stderr is read line by line."""

    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self.proc = proc
        self.err: list[str] = []

    @classmethod
    async def start(cls, tmp_path: Path, *args: str) -> Talk:
        env = clean_env(tmp_path, OPENAI_API_KEY="sk-signals")
        proc = await asyncio.create_subprocess_exec(
            *VOICECHAT, "talk", *args, cwd=tmp_path, env=env, stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        return cls(proc)

    async def wait_line(self, prefix: str, timeout: float = TIMEOUT) -> None:
        """Read stderr until a line starting with ``prefix``."""
        assert self.proc.stderr is not None
        async with asyncio.timeout(timeout):
            while True:
                raw = await self.proc.stderr.readline()
                if not raw:
                    raise AssertionError(f"stderr ended before {prefix!r}: {self.err}")
                line = raw.decode().rstrip("\n")
                self.err.append(line)
                if line.startswith(prefix):
                    return

    def kill(self, signum: int) -> None:
        self.proc.send_signal(signum)

    async def finish(self) -> tuple[int, str, str]:
        try:
            out, rest = await asyncio.wait_for(self.proc.communicate(), TIMEOUT)
        finally:
            if self.proc.returncode is None:
                self.proc.kill()
                await self.proc.wait()
        assert self.proc.returncode is not None
        stderr = "\n".join(self.err) + ("\n" if self.err else "") + rest.decode()
        return self.proc.returncode, out.decode(), stderr


def assert_interrupted(status: int, stderr: str, signum: int, expected: int) -> None:
    assert status == expected, (status, stderr)
    for word in NOISE:
        assert word not in stderr, stderr
    name = signal.Signals(signum).name
    assert stderr.rstrip().splitlines()[-1] == f"voicechat: interrupted by {name}", stderr


def long_reply_server(**extra) -> LocalServer:
    brain = ScriptedBrain([ScriptedReply(REPLY, audio_ms=8000)])
    return LocalServer(ServerOptions(brain=brain, recognizer=lambda pcm: HEARD, transcript_timing="before",
                                     speed=4.0, seed=21, **extra))


def mic(tmp_path: Path) -> Path:
    """A question, then a long quiet: the conversation stays open while the reply plays."""
    return question_wav(tmp_path, seconds=1.0, tail_s=30, name="mic.wav")


async def talk_until_speaking(srv: LocalServer, tmp_path: Path, chat: Path) -> Talk:
    """``voicechat talk`` against ``srv``, returned once the assistant is speaking."""
    talk = await Talk.start(tmp_path, "--base-url", srv.http_base_url, "--input-file", str(mic(tmp_path)),
                            "--silence-duration-ms", "300", "--transcript", str(chat))
    await talk.wait_line("voicechat: assistant speaking")
    return talk


def records(path: Path) -> list[dict]:
    text = path.read_text(encoding="utf-8")
    assert text.endswith("\n") or not text, "the last record is cut short"
    return [json.loads(line) for line in text.splitlines()]


# ---- before the session is set up ----------------------------------------------------------------


@pytest.mark.parametrize("signum, expected", SIGNALS, ids=IDS)
async def test_before_the_session_is_set_up(tmp_path: Path, signum: int, expected: int) -> None:
    """Stopped while the first session is being set up: a server that takes the connection and
    never sends ``session.created``. (Reading the settings can no longer block: a FIFO as the
    instructions file, which this test used to wait on, is refused; see test_files.py.)"""

    async def silent(peer: Peer) -> None:
        await peer.drain()

    async with HostileServer(silent) as srv:
        talk = await Talk.start(tmp_path, "--base-url", srv.http_base_url, "--input-file", str(mic(tmp_path)),
                                "--transcript", str(tmp_path / "chat.jsonl"))
        await talk.wait_line("voicechat: server ")
        await asyncio.sleep(0.2)  # connected, or about to be: either way, not set up
        talk.kill(signum)
        status, out, err = await talk.finish()
    assert_interrupted(status, err, signum, expected)
    assert out == "" and (tmp_path / "chat.jsonl").read_text() == ""
    assert "did not set up the session" not in err


# ---- connecting ------------------------------------------------------------------------------------


@pytest.mark.parametrize("signum, expected", SIGNALS, ids=IDS)
async def test_while_connecting(tmp_path: Path, signum: int, expected: int) -> None:
    """A server that takes the TCP connection and never answers the WebSocket upgrade."""
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(4)  # never accepted: the kernel completes the TCP handshake, nobody answers
        port = silent.getsockname()[1]
        started = time.monotonic()
        talk = await Talk.start(tmp_path, "--base-url", f"http://127.0.0.1:{port}/v1", "--input-file",
                                str(mic(tmp_path)), "--transcript", str(tmp_path / "chat.jsonl"))
        await talk.wait_line("voicechat: server ws://127.0.0.1")
        await asyncio.sleep(0.3)
        talk.kill(signum)
        status, out, err = await talk.finish()
    assert_interrupted(status, err, signum, expected)
    assert time.monotonic() - started < 10, "it did not wait for the 15 s connect timeout"
    assert out == "" and records(tmp_path / "chat.jsonl") == []


# ---- mid-conversation, while the assistant speaks -------------------------------------------------


@pytest.mark.parametrize("signum, expected", SIGNALS, ids=IDS)
async def test_while_the_assistant_speaks(tmp_path: Path, signum: int, expected: int) -> None:
    chat = tmp_path / "chat.jsonl"
    async with long_reply_server() as srv:
        talk = await talk_until_speaking(srv, tmp_path, chat)
        await asyncio.sleep(0.5)
        stopped = time.monotonic()
        talk.kill(signum)
        status, out, err = await talk.finish()
        shutdown = time.monotonic() - stopped
        closes = await wait_closes(srv)
    assert_interrupted(status, err, signum, expected)
    assert closes == [(1000, "")], "the socket was closed with 1000"
    assert shutdown < 1.5, f"shutting down took {shutdown:.1f} s"
    said = records(chat)
    assert [r["role"] for r in said] == ["user", "assistant"], said
    assert said[0]["text"] == HEARD
    assert said[1]["interrupted"] and REPLY.startswith(said[1]["text"]) and said[1]["text"] != REPLY, said
    lines = out.splitlines()
    assert lines[0] == f"you: {HEARD}" and lines[1].startswith("assistant: ") and lines[1].endswith(("[interrupted]", "[interrupted before any words]"))


async def test_local_backend_sigterm_mid_reply(tmp_path: Path) -> None:
    """The same with the built-in server (`--backend local`): it stops with the client."""
    chat = tmp_path / "chat.jsonl"
    question = Path(__file__).resolve().parents[2] / "voicechat" / "data" / "question.wav"
    talk = await Talk.start(tmp_path, "--backend", "local", "--input-file", str(question), "--transcript", str(chat))
    await talk.wait_line("voicechat: assistant speaking")
    talk.kill(signal.SIGTERM)
    status, out, err = await talk.finish()
    assert_interrupted(status, err, signal.SIGTERM, 143)
    said = records(chat)
    assert [r["role"] for r in said] == ["user", "assistant"] and said[1]["interrupted"], said
    assert out.splitlines()[0].startswith("you: ")


# ---- during the shutdown ------------------------------------------------------------------------


@pytest.mark.parametrize("first, second, expected", [(signal.SIGINT, signal.SIGTERM, 130),
                                                     (signal.SIGTERM, signal.SIGINT, 143)], ids=IDS)
async def test_a_second_signal_during_shutdown(tmp_path: Path, first: int, second: int, expected: int) -> None:
    """The first signal starts the shutdown; the server then holds back its close reply (this
    process's event loop, which runs it, is blocked), so the second arrives while voicechat is
    still waiting for it. The second only cuts that wait short: the first decides the status,
    the transcript is already written and the server got the 1000."""
    chat = tmp_path / "chat.jsonl"
    async with long_reply_server() as srv:
        talk = await talk_until_speaking(srv, tmp_path, chat)
        await asyncio.sleep(0.3)
        # Blocking on purpose: the server (in this loop) cannot answer the close meanwhile.
        talk.kill(first)
        time.sleep(0.8)
        talk.kill(second)
        time.sleep(0.2)
        status, _out, err = await talk.finish()
        closes = await wait_closes(srv)
    assert_interrupted(status, err, first, expected)
    assert err.count("voicechat: interrupted by") == 1, err
    assert closes == [(1000, "")]
    said = records(chat)
    assert [r["role"] for r in said] == ["user", "assistant"] and said[1]["interrupted"], said



# ---- the guard's decisions, phase by phase -------------------------------------------------------


class FakeTask:
    def __init__(self) -> None:
        self.cancels = 0

    def cancel(self) -> None:
        self.cancels += 1


class FakeConversation:
    def __init__(self) -> None:
        self.failed: list[BaseException] = []

    def fail(self, error: BaseException) -> None:
        self.failed.append(error)


def interrupt(signum: int):  # type: ignore[no-untyped-def]
    from voicechat.errors import ExitStatus, Interrupted

    status = ExitStatus.SIGINT if signum == signal.SIGINT else ExitStatus.SIGTERM
    return Interrupted(f"interrupted by {signal.Signals(signum).name}", status=status)


def test_guard_before_during_and_after_the_conversation() -> None:
    from voicechat.app import _SignalGuard

    # Before: cancel at once.
    task = FakeTask()
    guard = _SignalGuard(task)  # type: ignore[arg-type]
    guard(interrupt(signal.SIGTERM))
    assert task.cancels == 1 and guard.error is not None and guard.error.status == 143

    # During: the conversation ends itself; the task is left alone; the first signal wins.
    task, conversation = FakeTask(), FakeConversation()
    guard = _SignalGuard(task)  # type: ignore[arg-type]
    guard.conversation = conversation  # type: ignore[assignment]
    guard(interrupt(signal.SIGINT))
    guard(interrupt(signal.SIGTERM))
    assert task.cancels == 0 and len(conversation.failed) == 2
    assert guard.error is not None and guard.error.status == 130

    # After (shutting down): the first signal is only noted, a second one cuts the shutdown short.
    task = FakeTask()
    guard = _SignalGuard(task)  # type: ignore[arg-type]
    guard.ended = True
    guard(interrupt(signal.SIGTERM))
    assert task.cancels == 0 and guard.error is not None and guard.error.status == 143
    guard(interrupt(signal.SIGINT))
    assert task.cancels == 1 and guard.error.status == 143
