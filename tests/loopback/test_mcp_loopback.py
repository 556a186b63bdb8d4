"""Remote MCP servers end to end: the real client (``talk``) against the local server on 127.0.0.1.

The config file declares the servers (a header only by reference to the environment); the
session.update carries them as GA mcp tools; the server lists their tools and, when a typed turn
names one, calls it (or asks first). The tests check the panel's notices, the transcript lines and
records, the approval typed on the keyboard (allowed, and declined when unanswered) and the
failure paths (a server that cannot be listed, a tool that fails)."""

from __future__ import annotations

import asyncio
import io
import json
import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from voicechat import keys
from voicechat.app import Output, talk
from voicechat.audio.filedev import FileAudio
from voicechat.audio.wav import write_wav
from voicechat.config import parse_config_file, resolve
from voicechat.server import LocalServer, ServerOptions
from voicechat.transcript import FileSink, StreamSink

RATE = 24_000
TIMEOUT = 30 * float(os.environ.get("VOICECHAT_TEST_TIMEUNIT", "1"))
TOKEN = "mcp-loopback-token-9c41d2e7b8a3"
SERVERS = """
[[mcp]]
label = "docs"
url = "https://mcp.example.com/mcp"
require_approval = "never"
headers = { Authorization = "env:DOCS_TOKEN" }

[[mcp]]
label = "ask"
url = "https://mcp.example.com/ask"
allowed_tools = ["search"]

[[mcp]]
label = "broken"
url = "https://fail.example/mcp"
"""


class Tap(list):  # type: ignore[type-arg]
    """The server's record of what it received and emitted, in one timeline."""

    def __init__(self, tag: str, timeline: list[tuple[str, dict[str, Any]]]) -> None:
        super().__init__()
        self.tag, self.timeline = tag, timeline

    def append(self, event: dict[str, Any]) -> None:
        self.timeline.append((self.tag, event))


async def lines_after(stderr: io.StringIO, needle: str, *lines: str) -> AsyncIterator[keys.Action]:
    """The first line typed at once; each later one once ``needle`` is on stderr (a question)."""
    for i, line in enumerate(lines):
        while i and needle not in stderr.getvalue():
            await asyncio.sleep(0.01)
        yield keys.Submit(line)


async def conversation(tmp_path: Path, *typed: str, answer_after: str = "", seconds: float = 4.0,
                       ) -> tuple[list[tuple[str, dict[str, Any]]], str, str, list[dict[str, Any]]]:
    """One ``talk`` with the three servers; returns the timeline, stdout, stderr and JSONL records."""
    cfg = parse_config_file(tmp_path / "config.toml", SERVERS)
    timeline: list[tuple[str, dict[str, Any]]] = []
    mic = np.zeros(int(seconds * RATE), np.int16)
    write_wav(tmp_path / "in.wav", mic, RATE)
    async with LocalServer(ServerOptions(speed=20.0, seed=5, recognizer="none"), host="127.0.0.1", port=0) as srv:
        srv.received, srv.emitted = Tap("client", timeline), Tap("server", timeline)
        flags = {"base_url": srv.http_base_url, "input_file": tmp_path / "in.wav", "transcribe": False,
                 "transcript": tmp_path / "chat.jsonl"}
        settings = resolve(flags=flags, environ={"OPENAI_API_KEY": "sk-test-loopback", "DOCS_TOKEN": f"Bearer {TOKEN}"},
                           config_file=cfg)
        stdout, stderr = io.StringIO(), io.StringIO()
        out = Output(sinks=[StreamSink(stdout), FileSink(settings.transcript)], status=stderr)
        actions = lines_after(stderr, answer_after, *typed)
        await asyncio.wait_for(talk(settings, out, audio=FileAudio(mic, None, speed=4.0), actions=actions), TIMEOUT)
    records = [json.loads(line) for line in (tmp_path / "chat.jsonl").read_text().splitlines()]
    return timeline, stdout.getvalue(), stderr.getvalue(), records


def sent(timeline: list[tuple[str, dict[str, Any]]], etype: str) -> list[dict[str, Any]]:
    return [e for who, e in timeline if who == "client" and e["type"] == etype]


def emitted(timeline: list[tuple[str, dict[str, Any]]], etype: str) -> list[dict[str, Any]]:
    return [e for who, e in timeline if who == "server" and e["type"] == etype]


async def test_servers_are_declared_listed_and_a_call_is_shown_like_a_function_call(tmp_path: Path) -> None:
    timeline, out, err, records = await conversation(tmp_path, "docs.search realtime voices")
    (update, *_) = sent(timeline, "session.update")
    mcp = [t for t in update["session"]["tools"] if t["type"] == "mcp"]
    assert [(t["server_label"], t.get("require_approval")) for t in mcp] == [
        ("docs", "never"), ("ask", "always"), ("broken", "always")]
    assert mcp[0]["headers"] == {"Authorization": f"Bearer {TOKEN}"}  # on the wire only
    assert "mcp docs: listing tools…" in err and "mcp docs: 3 tools (search, fetch, fail)" in err
    assert "mcp ask: 1 tool (search)" in err
    assert "error: mcp broken: could not list the tools" in err
    lines = [line for line in out.splitlines() if line]
    assert lines[:2] == ["you: docs.search realtime voices",
                         'mcp: docs.search({"query": "realtime voices"}) -> 3 results for \'realtime voices\': '
                         "realtime voices overview, realtime voices guide, realtime voices FAQ"]
    assert lines[2].startswith("assistant: The docs.search tool returned: 3 results")
    call = next(r for r in records if r.get("mcp_server"))
    assert (call["role"], call["kind"], call["mcp_server"]) == ("tool", "function_call", "docs")
    assert call["result"].startswith("3 results")
    assert not sent(timeline, "response.create")[1:]  # the service ran it: no follow-up asked for
    assert not emitted(timeline, "error")
    assert TOKEN not in out + err + json.dumps(records)


async def test_a_failing_tool_is_written_with_its_error(tmp_path: Path) -> None:
    _, out, _, records = await conversation(tmp_path, "docs fail")
    assert 'mcp: docs.fail({}) -> {"error": "the fail tool failed on purpose"}' in out
    call = next(r for r in records if r.get("mcp_server"))
    assert call["note"] == "failed"


async def test_an_approval_typed_yes_runs_the_call(tmp_path: Path) -> None:
    timeline, out, err, _ = await conversation(tmp_path, "ask.search weather", "y", answer_after="Allow ask.search")
    assert 'Allow ask.search {"query": "weather"}? [y/N]' in err and "mcp ask.search allowed" in err
    (answer,) = [e["item"] for e in sent(timeline, "conversation.item.create")
                 if e["item"]["type"] == "mcp_approval_response"]
    request = emitted(timeline, "response.output_item.done")[0]["item"]
    assert answer["approval_request_id"] == request["id"] and answer["approve"] is True
    assert 'mcp: ask.search({"query": "weather"}) -> 3 results for \'weather\'' in out
    assert out.splitlines()[-1].startswith("assistant: The ask.search tool returned")
    typed = [e for e in sent(timeline, "conversation.item.create") if e["item"]["type"] == "message"]
    assert len(typed) == 1  # the "y" answered the question; it was not sent as a message


async def test_an_unanswered_approval_is_declined(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from voicechat.app import keyboard

    monkeypatch.setattr(keyboard, "CONFIRM_WAIT_S", 0.3)  # the question times out unanswered
    timeline, out, err, _ = await conversation(tmp_path, "ask search weather")
    assert "mcp ask.search declined" in err
    (answer,) = [e["item"] for e in sent(timeline, "conversation.item.create")
                 if e["item"]["type"] == "mcp_approval_response"]
    assert answer["approve"] is False
    assert not emitted(timeline, "response.mcp_call.in_progress")
    assert out.splitlines()[-1] == "assistant: All right, I did not call ask.search."


async def test_without_a_keyboard_an_approval_is_declined_at_once() -> None:
    from voicechat import effects as fx
    from voicechat.app.keyboard import Keyboard, KeyboardWiring
    from voicechat.pricing import Spend
    from voicechat.protocol import events as ev
    from voicechat.session import Session
    from voicechat.ui.view import View

    settings = resolve(flags={}, environ={})
    session = Session(settings.session_config())
    session.handle(ev.SessionCreated("e", {"id": "s"}), 0.0)
    session.handle(ev.SessionUpdated("e", {"id": "s"}), 0.0)
    (ask,) = [e for e in session.handle(ev.ItemDone("e", ev.Item(
        "mcpr_1", "mcp_approval_request", server_label="docs", name="search", arguments='{"q": "x"}'), None), 1.0)
        if isinstance(e, fx.AskApproval)]
    dispatched: list[fx.Effect] = []
    stderr = io.StringIO()
    wiring = KeyboardWiring(session, Output(status=stderr), View(settings, "off"), dispatched.extend, lambda: 2.0,
                            lambda: None, lambda: None, lambda: Spend.of(settings.model, session.usage), settings.model)
    await asyncio.wait_for(Keyboard(wiring, has_keys=False).approve(ask), TIMEOUT)
    assert "mcp docs.search needs a yes from the keyboard, and there is none: declined" in stderr.getvalue()
    items = [e.event["item"] for e in dispatched if isinstance(e, fx.Send) and "item" in e.event]
    assert items == [{"type": "mcp_approval_response", "id": "vc_mcpr_1", "approval_request_id": "mcpr_1",
                      "approve": False, "reason": "the user declined"}]
