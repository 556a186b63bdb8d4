"""Function tools end to end: the real client runs a tool the local server's brain calls."""

from __future__ import annotations

import asyncio
import io
import json
import os
import re
import sys
from collections import deque
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import numpy as np

from tests.helpers.server import speech_like
from voicechat import keys
from voicechat.app import Output, talk
from voicechat.audio.filedev import FileAudio
from voicechat.audio.wav import write_wav
from voicechat.config import parse_config_file, resolve
from voicechat.server import LocalServer, ScriptedBrain, ServerOptions
from voicechat.transcript import FileSink, StreamSink

RATE = 24_000
TIMEOUT = 30 * float(os.environ.get("VOICECHAT_TEST_TIMEUNIT", "1"))
ECHO_TOOL = """
[[tools]]
name = "echo_tool"
description = "Reverses the text."
parameters = {{ type = "object", properties = {{ text = {{ type = "string" }} }}, required = ["text"] }}
command = [{python}, "-c", "import json, sys; a = json.load(sys.stdin); print('reversed:', a['text'][::-1])"]
timeout = 20
confirm = {confirm}
"""


class Tap(deque):
    """A server record that also appends to one shared timeline (client and server events in order)."""

    def __init__(self, tag: str, timeline: list[tuple[str, dict[str, Any]]]) -> None:
        super().__init__()
        self.tag, self.timeline = tag, timeline

    def append(self, event: dict[str, Any]) -> None:
        self.timeline.append((self.tag, event))
        super().append(event)


def silence(seconds: float) -> np.ndarray:
    return np.zeros(int(seconds * RATE), np.int16)


async def typed(*lines: str, before: Callable[[int], Any] | None = None) -> AsyncIterator[keys.Action]:
    """Typed lines (Enter after each); ``before(i)`` is awaited before line ``i`` when given."""
    for i, line in enumerate(lines):
        if before is not None:
            await before(i)
        yield keys.Submit(line)


async def conversation(tmp_path: Path, config: str, actions: Any = None, *, audio: np.ndarray | None = None,
                       brain: Any = None, script: Callable[..., AsyncIterator[keys.Action]] | None = None,
                       ) -> tuple[list[tuple[str, dict]], str, str, list[dict]]:
    """One ``talk`` against a local server; returns the timeline, stdout, stderr and JSONL records."""
    mic = audio if audio is not None else silence(4.0)
    wav = tmp_path / "in.wav"
    write_wav(wav, mic, RATE)
    cfg = parse_config_file(tmp_path / "config.toml", config)
    timeline: list[tuple[str, dict[str, Any]]] = []
    opts = ServerOptions(speed=20.0, seed=5, recognizer="none", brain=brain)
    async with LocalServer(opts, host="127.0.0.1", port=0) as srv:
        srv.received, srv.emitted = Tap("client", timeline), Tap("server", timeline)
        flags = {"base_url": srv.http_base_url, "input_file": wav, "silence_duration_ms": 300, "transcribe": False,
                 "transcript": tmp_path / "chat.jsonl"}
        settings = resolve(flags=flags,
                           environ={"OPENAI_API_KEY": "sk-test-loopback"}, config_file=cfg)
        stdout, stderr = io.StringIO(), io.StringIO()
        if script is not None:
            actions = script(stderr)
        out = Output(sinks=[StreamSink(stdout), FileSink(settings.transcript)], status=stderr)
        await asyncio.wait_for(talk(settings, out, audio=FileAudio(mic, None, speed=4.0), actions=actions), TIMEOUT)
    records = [json.loads(line) for line in (tmp_path / "chat.jsonl").read_text().splitlines()]
    return timeline, stdout.getvalue(), stderr.getvalue(), records


def index(timeline: list[tuple[str, dict]], tag: str, etype: str, start: int = 0, **match: Any) -> int:
    for i in range(start, len(timeline)):
        who, event = timeline[i]
        if who == tag and event["type"] == etype and all(event.get(k) == v for k, v in match.items()):
            return i
    raise AssertionError(f"no {tag} {etype} {match} after {start}")


def outputs(timeline: list[tuple[str, dict]]) -> list[dict]:
    return [e["item"] for who, e in timeline if who == "client" and e["type"] == "conversation.item.create"
            and e["item"]["type"] == "function_call_output"]


async def test_a_user_defined_tool_round_trips_through_the_local_server(tmp_path: Path) -> None:
    config = ECHO_TOOL.format(python=json.dumps(sys.executable), confirm="false")
    timeline, out, _, records = await conversation(tmp_path, config, typed("please call echo_tool: hello loopback"))
    # The session declared the tool (and the built-in) to the server.
    update = next(e for who, e in timeline if who == "client" and e["type"] == "session.update")
    assert [t["name"] for t in update["session"]["tools"]] == ["get_current_time", "echo_tool"]
    # The brain called it with schema-shaped arguments; the command's stdout went back as the output.
    args_done = index(timeline, "server", "response.function_call_arguments.done", name="echo_tool")
    call = timeline[args_done][1]
    assert json.loads(call["arguments"]) == {"text": "hello loopback"}
    (output,) = outputs(timeline)
    assert output == {"type": "function_call_output", "call_id": call["call_id"], "output": "reversed: kcabpool olleh"}
    # One response.create for the follow-up, sent after that response's response.done and the output.
    first_done = index(timeline, "server", "response.done", start=args_done)
    sent_output = index(timeline, "client", "conversation.item.create", start=args_done)
    creates = [i for i, (who, e) in enumerate(timeline) if who == "client" and e["type"] == "response.create"]
    follow_ups = [i for i in creates if i > args_done]
    assert len(follow_ups) == 1 and follow_ups[0] > max(first_done, sent_output)
    assert not [e for who, e in timeline if who == "server" and e["type"] == "error"]
    # The transcript shows the call with its result, then the answer that uses it.
    lines = [line for line in out.splitlines() if line]
    assert lines == [
        "you: please call echo_tool: hello loopback",
        'tool: echo_tool({"text": "hello loopback"}) -> reversed: kcabpool olleh',
        "assistant: The tool returned: reversed: kcabpool olleh",
    ], out
    tool = next(r for r in records if r["role"] == "tool")
    assert tool["kind"] == "function_call" and tool["result"] == "reversed: kcabpool olleh"


async def test_the_builtin_clock_tool_answers_what_time_it_is(tmp_path: Path) -> None:
    timeline, out, _, _ = await conversation(tmp_path, "", typed("what time is it?"))
    (output,) = outputs(timeline)
    got = json.loads(output["output"])
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d[+-]\d\d:\d\d", got["datetime"]), got
    assert set(got) == {"datetime", "timezone", "weekday", "utc_offset"}
    assert any(line.startswith("tool: get_current_time({}) -> {\"datetime\"") for line in out.splitlines()), out
    assert out.splitlines()[-1].startswith('assistant: The tool returned: {"datetime": "'), out


async def test_a_confirm_tool_runs_after_a_typed_yes(tmp_path: Path) -> None:
    config = ECHO_TOOL.format(python=json.dumps(sys.executable), confirm="true")

    def script(stderr: io.StringIO) -> AsyncIterator[keys.Action]:
        async def before(i: int) -> None:
            while i == 1 and "Run tool echo_tool" not in stderr.getvalue():
                await asyncio.sleep(0.01)

        return typed("echo_tool: abc", "y", before=before)

    timeline, _, err, _ = await conversation(tmp_path, config, script=script)
    assert 'Run tool echo_tool with {"text": "abc"}? [y/N]' in err
    (output,) = outputs(timeline)
    assert output["output"] == "reversed: cba"
    user_items = [e for who, e in timeline if who == "client" and e["type"] == "conversation.item.create"
                  and e["item"]["type"] == "message"]
    assert len(user_items) == 1  # the "y" answered the question; it was not sent as a message


async def test_a_confirm_tool_is_declined_without_a_keyboard(tmp_path: Path) -> None:
    config = ECHO_TOOL.format(python=json.dumps(sys.executable), confirm="true")
    brain = ScriptedBrain([{"function_calls": [{"name": "echo_tool", "arguments": '{"text": "x"}'}]}, "All right."])
    mic = np.concatenate([silence(0.3), speech_like(1.0), silence(3.0)])
    timeline, out, err, _ = await conversation(tmp_path, config, None, audio=mic, brain=brain)
    (output,) = outputs(timeline)
    assert "did not approve" in json.loads(output["output"])["error"]
    assert "needs a yes from the keyboard" in err and "declined" in err
    assert out.splitlines()[-1] == "assistant: All right."  # the model is told, and goes on


async def test_quitting_while_a_tool_runs_stops_its_command(tmp_path: Path) -> None:
    pid_file = tmp_path / "pid"
    code = f"import os, time; open({str(pid_file)!r}, 'w').write(str(os.getpid())); time.sleep(60)"
    config = f'[[tools]]\nname = "slow"\ncommand = [{json.dumps(sys.executable)}, "-c", {json.dumps(code)}]\ntimeout = 120\n'

    def script(stderr: io.StringIO) -> AsyncIterator[keys.Action]:
        async def actions() -> AsyncIterator[keys.Action]:
            yield keys.Submit("run slow please")
            while not pid_file.exists() or not pid_file.read_text():
                await asyncio.sleep(0.01)
            yield keys.Quit()

        return actions()

    loop = asyncio.get_running_loop()
    started = loop.time()
    _, _, _, records = await conversation(tmp_path, config, script=script)
    assert loop.time() - started < 20
    try:
        os.kill(int(pid_file.read_text()), 0)
        alive = True
    except ProcessLookupError:
        alive = False
    assert not alive
    tool = next(r for r in records if r["role"] == "tool")
    assert "result" not in tool and "ended" in tool["note"]


async def test_quitting_while_a_tool_runs_stops_its_background_grandchild_too(tmp_path: Path) -> None:
    pid_file = tmp_path / "pid"
    # sh starts a grandchild in the tool's process group, then waits for it.
    script_text = f"sleep 60 & echo $! > {pid_file}; wait"
    config = f'[[tools]]\nname = "slow"\ncommand = ["sh", "-c", {json.dumps(script_text)}]\ntimeout = 120\n'

    def script(stderr: io.StringIO) -> AsyncIterator[keys.Action]:
        async def actions() -> AsyncIterator[keys.Action]:
            yield keys.Submit("run slow please")
            while not pid_file.exists() or not pid_file.read_text().strip():
                await asyncio.sleep(0.01)
            yield keys.Quit()

        return actions()

    await conversation(tmp_path, config, script=script)
    grandchild = int(pid_file.read_text())
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 5.0  # SIGKILL is not instant; a zombie awaiting its reaper is dead
    while running(grandchild):
        assert loop.time() < deadline, "the tool's grandchild outlived the conversation"
        await asyncio.sleep(0.02)


def running(pid: int) -> bool:
    """Whether ``pid`` runs (a zombie waiting for its new parent to reap it does not)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0] != "Z"
    except FileNotFoundError:
        return False
