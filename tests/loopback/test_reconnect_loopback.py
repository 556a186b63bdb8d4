"""Reconnects, session recycling and --resume: the real client against the local server.

Faults come from the server's options (a dropped TCP connection, a close code after N audio
deltas, a short session lifetime, a handshake status) and from stopping the server outright.
Typed turns drive the conversation so every test knows exactly what was said; a long silent
microphone file keeps it open until the script quits.
"""

from __future__ import annotations

import asyncio
import dataclasses
import io
import json
import os
import subprocess
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from voicechat import keys
from voicechat.app import Output, Reliability, reliability_from_env, talk
from voicechat.app import assemble as app_module  # where talk looks up connect
from voicechat.audio.filedev import FileAudio
from voicechat.audio.wav import write_wav
from voicechat.backoff import Backoff
from voicechat.config import resolve
from voicechat.errors import (
    AuthError,
    ConfigError,
    ConnectError,
    ExitStatus,
    SessionError,
    VoicechatError,
)
from voicechat.server import LocalServer, ScriptedBrain, ServerOptions
from voicechat.server.brain import ScriptedReply
from voicechat.transcript import FileSink, StreamSink
from voicechat.ui.live import PlainStatus

RATE = 24_000
UNIT = float(os.environ.get("VOICECHAT_TEST_TIMEUNIT", "1"))
TIMEOUT = 40 * UNIT
QUICK = Reliability(backoff=Backoff(base=0.02, cap=0.1, tries=4))
LONG_REPLY = ("one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen "
              "sixteen seventeen eighteen nineteen twenty")


@dataclass
class Run:
    stdout: str
    stderr: str
    records: list[dict[str, Any]]
    error: VoicechatError | None
    srv: LocalServer

    @property
    def lines(self) -> list[str]:
        return [line for line in self.stdout.splitlines() if line]

    def sent(self, etype: str) -> list[dict[str, Any]]:
        """Client events the server received, of one type, in arrival order."""
        return [e for e in self.srv.received if e["type"] == etype]

    def control(self) -> list[dict[str, Any]]:
        return [e for e in self.srv.received if e["type"] != "input_audio_buffer.append"]


Script = Callable[[io.StringIO, io.StringIO, LocalServer], AsyncIterator[keys.Action]]


async def converse(tmp_path: Path, opts: ServerOptions, script: Script, *, reliability: Reliability = QUICK,
                   flags: dict[str, Any] | None = None, during: Callable[[LocalServer], Awaitable[None]] | None = None,
                   status_lines: bool = False) -> Run:
    """One ``talk`` with typed turns from ``script`` against a local server with ``opts``."""
    mic = np.zeros(RATE * 120, np.int16)  # silence; the script ends the conversation
    wav = tmp_path / "in.wav"
    write_wav(wav, mic[: RATE // 10], RATE)
    transcript = tmp_path / "chat.jsonl"
    stdout, stderr = io.StringIO(), io.StringIO()
    error = None
    async with LocalServer(opts, host="127.0.0.1", port=0) as srv:
        settings = resolve(
            flags={"base_url": srv.http_base_url, "input_file": wav, "transcribe": False, "transcript": transcript,
                   "silence_duration_ms": 300, **(flags or {})},
            environ={"OPENAI_API_KEY": "sk-test-loopback"},
        )
        out = Output(sinks=[StreamSink(stdout), FileSink(settings.transcript)], status=stderr,
                     front=PlainStatus(stderr) if status_lines else None)
        side = asyncio.create_task(during(srv)) if during is not None else None
        try:
            await asyncio.wait_for(talk(settings, out, audio=FileAudio(mic, None, speed=4.0),
                                        actions=script(stdout, stderr, srv), reliability=reliability), TIMEOUT)
        except VoicechatError as exc:
            error = exc
        finally:
            if side is not None:
                side.cancel()
                await asyncio.gather(side, return_exceptions=True)
    records = [json.loads(line) for line in transcript.read_text().splitlines()] if transcript.exists() else []
    return Run(stdout.getvalue(), stderr.getvalue(), records, error, srv)


async def until(condition: Callable[[], bool], what: str, limit: float = 20.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + limit * UNIT
    while not condition():
        if loop.time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.01)


def replies(stdout: io.StringIO) -> int:
    return sum(1 for line in stdout.getvalue().splitlines() if line.startswith("assistant:"))


def talk_then_quit(*turns: str, after_first: Callable[[io.StringIO, io.StringIO, LocalServer], bool] | None = None,
                   ) -> Script:
    """Type each turn once the previous reply is written (and, before the second, ``after_first``
    holds); quit once the last reply is written."""

    async def script(stdout: io.StringIO, stderr: io.StringIO, srv: LocalServer) -> AsyncIterator[keys.Action]:
        earlier = replies(stdout)  # resumed turns are shown first
        for i, text in enumerate(turns):
            if i == 1 and after_first is not None:
                await until(lambda: after_first(stdout, stderr, srv), "the condition before the second turn")
            yield keys.Submit(text)
            await until(lambda n=earlier + i + 1: replies(stdout) >= n, f"reply {i + 1}")
        yield keys.Quit()

    return script


def reconnected(stdout: io.StringIO, stderr: io.StringIO, srv: LocalServer) -> bool:
    return "reconnected" in stderr.getvalue()


def fault_opts(**faults: Any) -> ServerOptions:
    brain = ScriptedBrain([ScriptedReply(LONG_REPLY, audio_ms=4000), ScriptedReply("Second answer.", audio_ms=600)])
    return ServerOptions(speed=3.0, seed=11, recognizer="none", delta_ms=(100, 100), brain=brain,
                         fault_connections=(1,), **faults)


def seeds(run: Run) -> list[dict[str, Any]]:
    return [e for e in run.sent("conversation.item.create") if e["item"].get("id", "").startswith("vc_seed_")]


def item_text(event: dict[str, Any]) -> str:
    return event["item"]["content"][0]["text"]


# ---- drops ---------------------------------------------------------------------------------


async def test_a_drop_mid_reply_reconnects_reseeds_what_was_heard_and_goes_on(tmp_path: Path) -> None:
    run = await converse(tmp_path, fault_opts(drop_after_deltas=12),
                         talk_then_quit("hello there", "and now?", after_first=reconnected))
    assert run.error is None, run.stderr
    assert run.srv.connections == 2
    assert "reconnecting" in run.stderr and "reconnected" in run.stderr
    # The transcript: every turn, the cut reply marked interrupted with only what was heard.
    assert run.lines[0] == "you: hello there"
    assert run.lines[1].startswith("assistant: one two") and run.lines[1].endswith(" [interrupted]")
    assert run.lines[2:] == ["you: and now?", "assistant: Second answer."], run.stdout
    heard = run.records[1]["text"]
    assert [r["role"] for r in run.records] == ["user", "assistant", "user", "assistant"]
    assert run.records[1]["interrupted"] and not run.records[3]["interrupted"]
    assert heard and LONG_REPLY.startswith(heard) and len(heard) < len(LONG_REPLY)
    # The second connection: session.update, then the earlier turns in order, then the new turn.
    control = run.control()
    second = [i for i, e in enumerate(control) if e["type"] == "session.update"][1]
    after = control[second + 1:]
    assert [e["type"] for e in after[:3]] == ["conversation.item.create"] * 3
    user, assistant, new = after[:3]
    assert user["item"]["role"] == "user" and item_text(user) == "hello there"
    assert user["previous_item_id"] == "root"
    assert assistant["item"]["role"] == "assistant" and assistant["item"]["content"][0]["type"] == "output_text"
    assert item_text(assistant) == heard and assistant["previous_item_id"] == user["item"]["id"]
    assert item_text(new) == "and now?" and not new["item"].get("id", "").startswith("vc_seed_")
    # The session.update of the new connection is the same configuration.
    updates = run.sent("session.update")
    assert updates[0]["session"] == updates[1]["session"]
    # The server took the seeded items; nothing the client sent was refused.
    assert not [e for e in run.srv.emitted if e["type"] == "error"], [e for e in run.srv.emitted if e["type"] == "error"]
    added = [e["item"]["id"] for e in run.srv.emitted if e["type"] == "conversation.item.added"]
    assert user["item"]["id"] in added and assistant["item"]["id"] in added


async def test_no_stale_microphone_audio_is_sent_after_a_reconnect(tmp_path: Path) -> None:
    run = await converse(tmp_path, fault_opts(drop_after_deltas=6),
                         talk_then_quit("hello there", "and now?", after_first=reconnected))
    assert run.error is None, run.stderr
    received = list(run.srv.received)
    second = [i for i, e in enumerate(received) if e["type"] == "session.update"][1]
    # On the new connection the microphone starts only after the configuration and the seeds.
    first_append = next(i for i in range(second, len(received))
                        if received[i]["type"] == "input_audio_buffer.append")
    seeded = [i for i in range(second, len(received)) if received[i].get("item", {}).get("id", "").startswith("vc_seed_")]
    assert seeded and max(seeded) < first_append


async def test_close_1011_reconnects_and_the_status_shows_it(tmp_path: Path) -> None:
    steady = Reliability(backoff=Backoff(base=0.3, cap=0.3, tries=2, jitter="decorrelated"))  # 0.3 s per try
    run = await converse(tmp_path, fault_opts(drop_after_deltas=3, close_code_after_deltas=(1011, "internal error")),
                         talk_then_quit("hello there", "and now?", after_first=reconnected), reliability=steady,
                         status_lines=True)
    assert run.error is None, run.stderr
    assert run.srv.connections == 2 and "1011" in run.stderr
    states = [line for line in run.stderr.splitlines() if line in (
        "voicechat: connecting", "voicechat: connected", "voicechat: reconnecting", "voicechat: closed")]
    assert states == ["voicechat: connecting", "voicechat: connected", "voicechat: reconnecting",
                      "voicechat: connected", "voicechat: closed"], run.stderr
    assert run.lines[-2:] == ["you: and now?", "assistant: Second answer."]
    assert [item_text(e) for e in seeds(run)][:1] == ["hello there"]


async def test_a_normal_close_by_the_server_ends_the_conversation_without_reconnecting(tmp_path: Path) -> None:
    run = await converse(tmp_path, fault_opts(drop_after_deltas=3, close_code_after_deltas=(1000, "bye")),
                         talk_then_quit("hello there", "and now?"))
    assert isinstance(run.error, SessionError) and "closed the connection" in run.error.message
    assert run.srv.connections == 1 and "reconnecting" not in run.stderr
    # Still, the transcript holds everything: the reply that was cut is written as interrupted.
    assert [r["role"] for r in run.records] == ["user", "assistant"] and run.records[1]["interrupted"]


async def test_a_server_error_followed_by_a_close_reconnects(tmp_path: Path) -> None:
    error = json.dumps({"type": "error", "event_id": "event_x", "error": {
        "type": "server_error", "code": None, "message": "The server had an error.", "param": None, "event_id": None}})
    opts = dataclasses.replace(fault_opts(drop_after_deltas=3, close_code_after_deltas=(1000, "")),
                               inject_frames=(error,))

    async def only_the_first_connection_errs(srv: LocalServer) -> None:
        await until(lambda: srv.connections >= 1, "the first connection")
        srv.opts = dataclasses.replace(srv.opts, inject_frames=())

    run = await converse(tmp_path, opts, talk_then_quit("hello there", "and now?", after_first=reconnected),
                         during=only_the_first_connection_errs)
    assert run.error is None, run.stderr
    assert run.srv.connections == 2 and "server error" in run.stderr
    assert run.lines[-1] == "assistant: Second answer."


async def test_a_401_on_reconnect_is_not_retried(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    tries = 0
    real_connect = app_module.connect

    async def counting_connect(*args: Any, **kwargs: Any) -> Any:
        nonlocal tries
        tries += 1
        return await real_connect(*args, **kwargs)

    monkeypatch.setattr(app_module, "connect", counting_connect)

    async def refuse_keys_after_the_first_connection(srv: LocalServer) -> None:
        await until(lambda: srv.connections >= 1, "the first connection")
        srv.opts = dataclasses.replace(srv.opts, handshake_status=401)

    started = asyncio.get_running_loop().time()
    run = await converse(tmp_path, fault_opts(drop_after_deltas=6), talk_then_quit("hello there", "and now?"),
                         reliability=Reliability(backoff=Backoff(base=0.05, cap=0.2, tries=6)),
                         during=refuse_keys_after_the_first_connection)
    assert isinstance(run.error, AuthError) and "HTTP 401" in run.error.message
    assert run.error.status == ExitStatus.AUTH
    assert tries == 2  # the first connection and one reconnect: a rejected key is not tried again
    assert asyncio.get_running_loop().time() - started < 10 * UNIT
    assert [r["role"] for r in run.records] == ["user", "assistant"] and run.records[1]["interrupted"]


async def test_when_every_try_fails_the_error_is_clear_and_the_transcript_complete(tmp_path: Path) -> None:
    async def stop_the_server_mid_reply(srv: LocalServer) -> None:
        await until(lambda: any(e["type"] == "response.output_audio.delta" for e in srv.emitted), "a reply")
        await asyncio.sleep(0.2)
        await srv.close()  # closes its connections (1001 going away) and refuses new ones

    opts = dataclasses.replace(fault_opts(), fault_connections=())
    started = asyncio.get_running_loop().time()
    run = await converse(tmp_path, opts, talk_then_quit("hello there", "and now?"),
                         reliability=Reliability(backoff=Backoff(base=0.05, cap=0.2, tries=3)),
                         during=stop_the_server_mid_reply)
    elapsed = asyncio.get_running_loop().time() - started
    assert isinstance(run.error, ConnectError), run.error
    assert "could not reconnect (3 tries" in run.error.message and "refused" in run.error.message
    assert run.error.status in (ExitStatus.CONNECT, ExitStatus.REFUSED)
    assert elapsed < 15 * UNIT
    assert run.stderr.count("reconnect try") == 3
    assert [r["role"] for r in run.records] == ["user", "assistant"]
    assert run.records[1]["interrupted"] and LONG_REPLY.startswith(run.records[1]["text"])


# ---- session lifetime ----------------------------------------------------------------------


def lifetime_opts(seconds: float) -> ServerOptions:
    brain = ScriptedBrain([ScriptedReply(f"Answer {n}.", audio_ms=300) for n in range(1, 6)])
    return ServerOptions(speed=4.0, seed=12, recognizer="none", brain=brain, session_seconds=seconds)


async def test_the_session_is_recycled_between_turns_before_its_limit(tmp_path: Path) -> None:
    loop = asyncio.get_running_loop()
    started = loop.time()

    def moved(stderr: io.StringIO) -> int:
        return stderr.getvalue().count("moved the conversation to a new server session")

    async def script(stdout: io.StringIO, stderr: io.StringIO, srv: LocalServer) -> AsyncIterator[keys.Action]:
        yield keys.Submit("my name is Ada")
        await until(lambda: replies(stdout) >= 1, "reply 1")
        await until(lambda: moved(stderr) >= 1, "the first new session")
        yield keys.Submit("what is my name?")
        await until(lambda: replies(stdout) >= 2, "reply 2")
        # On past the first session's 5 s, in whichever session is live by then.
        await until(lambda: loop.time() - started > 5.5 and moved(stderr) >= 2, "the first session's limit")
        yield keys.Submit("and again?")
        await until(lambda: replies(stdout) >= 3, "reply 3")
        yield keys.Quit()

    # 5 s sessions, moved on when under 3.5 s are left (at the first quiet moment).
    run = await converse(tmp_path, lifetime_opts(5.0), script,
                         reliability=Reliability(recycle_margin_s=3.5, expiry_warning_s=0.0))
    assert run.error is None, run.stderr
    assert run.lines == ["you: my name is Ada", "assistant: Answer 1.", "you: what is my name?",
                         "assistant: Answer 2.", "you: and again?", "assistant: Answer 3."], run.stdout
    assert run.srv.connections >= 3 and "reconnecting" not in run.stderr
    assert all(not r["interrupted"] for r in run.records)
    # No session reached its limit: each old one was closed (1000) once the new one was live.
    assert not [e for e in run.srv.emitted if e["type"] == "error"]
    # The session of the last turn had been given the whole conversation before it.
    control = run.control()
    last_turn = next(i for i, e in enumerate(control) if e["type"] == "conversation.item.create"
                     and e["item"].get("role") == "user" and item_text(e) == "and again?")
    batch = [e for e in control[:last_turn] if e["type"] == "conversation.item.create"
             and e["item"].get("id", "").startswith("vc_seed_")]
    newest = batch[-1]["item"]["id"].rsplit("_", 1)[0]
    assert [item_text(e) for e in batch if e["item"]["id"].startswith(newest + "_")] == [
        "my name is Ada", "Answer 1.", "what is my name?", "Answer 2."]


async def test_the_time_left_warning_is_shown_once_per_session(tmp_path: Path) -> None:
    async def script(stdout: io.StringIO, stderr: io.StringIO, srv: LocalServer) -> AsyncIterator[keys.Action]:
        yield keys.Submit("hello")
        await until(lambda: replies(stdout) >= 1, "the reply")
        await until(lambda: "ends this session" in stderr.getvalue(), "the warning")
        await asyncio.sleep(0.3)
        yield keys.Quit()

    started = asyncio.get_running_loop().time()
    run = await converse(tmp_path, lifetime_opts(6.0), script,
                         reliability=Reliability(recycle_margin_s=0.0, expiry_warning_s=3.0))
    assert run.error is None, run.stderr
    warnings = [line for line in run.stderr.splitlines() if "ends this session" in line]
    assert len(warnings) == 1 and "in 0:0" in warnings[0], run.stderr
    assert asyncio.get_running_loop().time() - started >= 1.5  # not at once: at 3 s left of 5-6 s


async def test_a_session_that_expires_mid_reply_is_a_drop(tmp_path: Path) -> None:
    brain = ScriptedBrain([ScriptedReply(LONG_REPLY, audio_ms=8000), ScriptedReply("Second answer.", audio_ms=400)])
    opts = ServerOptions(speed=1.0, seed=13, recognizer="none", brain=brain, session_seconds=2.5)

    async def script(stdout: io.StringIO, stderr: io.StringIO, srv: LocalServer) -> AsyncIterator[keys.Action]:
        yield keys.Submit("tell me a long story")
        await until(lambda: "reconnected" in stderr.getvalue(), "the reconnect")
        yield keys.Submit("and now?")
        await until(lambda: "assistant: Second answer." in stdout.getvalue(), "the second reply")
        yield keys.Quit()

    run = await converse(tmp_path, opts, script, reliability=Reliability(
        backoff=Backoff(base=0.02, cap=0.1, tries=3), recycle_margin_s=0.0, expiry_warning_s=0.0))
    assert run.error is None, run.stderr
    assert "session" in run.stderr and "reconnecting" in run.stderr
    assert any(e["type"] == "error" and e["error"]["code"] == "session_expired" for e in run.srv.emitted)
    assert run.records[1]["role"] == "assistant" and run.records[1]["interrupted"]
    assert next(item_text(e) for e in seeds(run)) == "tell me a long story"


# ---- --resume ------------------------------------------------------------------------------


async def test_resume_continues_a_saved_conversation(tmp_path: Path) -> None:
    first = await converse(tmp_path, lifetime_opts(3600), talk_then_quit("my name is Ada", "remember it"))
    assert first.error is None and len(first.records) == 4
    saved = tmp_path / "chat.jsonl"
    before = saved.read_text()

    run = await converse(tmp_path, lifetime_opts(3600), talk_then_quit("what is my name?"),
                         flags={"resume": saved})
    assert run.error is None, run.stderr
    # The new session got the saved turns first, in order, as text.
    seeded = seeds(run)
    assert [(e["item"]["role"], item_text(e)) for e in seeded] == [
        ("user", "my name is Ada"), ("assistant", "Answer 1."), ("user", "remember it"), ("assistant", "Answer 2.")]
    control = run.control()
    assert control[0]["type"] == "session.update" and control[1:5] == seeded
    assert item_text(control[5]) == "what is my name?"
    # They are shown as the conversation's start; the file gets only the new turns appended.
    assert run.lines == ["you: my name is Ada", "assistant: Answer 1.", "you: remember it", "assistant: Answer 2.",
                         "you: what is my name?", "assistant: Answer 1."], run.stdout
    after = saved.read_text()
    assert after.startswith(before) and len(after.splitlines()) == 6
    assert "continuing the conversation" in run.stderr


def test_a_malformed_resume_file_is_refused_before_connecting(tmp_path: Path) -> None:
    saved = tmp_path / "chat.jsonl"
    saved.write_text('{"role": "user", "text": "hi", "item_id": "a", "start": 1, "end": 2, "interrupted": false, '
                     '"kind": "text"}\n{"role": "robot", "text": "beep"}\n')
    env = {k: v for k, v in os.environ.items() if k not in ("OPENAI_API_KEY", "OPENAI_BASE_URL")}
    env["OPENAI_API_KEY"] = "sk-x"
    # Port 9 on loopback: nothing listens, so connecting would fail differently (refused, 7).
    proc = subprocess.run([sys.executable, "-m", "voicechat", "talk", "--base-url", "http://127.0.0.1:9/v1",
                           "--input-file", str(Path(__file__).resolve().parents[2] / "voicechat" / "data" /
                                               "question.wav"), "--resume", str(saved)],
                          capture_output=True, text=True, timeout=60, env=env, stdin=subprocess.DEVNULL)
    assert proc.returncode == 2, proc.stderr
    assert "line 2" in proc.stderr and "role" in proc.stderr and "Traceback" not in proc.stderr


def test_the_recycle_margin_test_knob() -> None:
    assert reliability_from_env({}) == Reliability()
    assert reliability_from_env({"VOICECHAT_RECYCLE_MARGIN_S": "2.5"}).recycle_margin_s == 2.5
    with pytest.raises(ConfigError, match="VOICECHAT_RECYCLE_MARGIN_S"):
        reliability_from_env({"VOICECHAT_RECYCLE_MARGIN_S": "soon"})
