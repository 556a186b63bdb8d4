"""``--no-auto-response``: a spoken turn is committed and waits; Enter on an empty line (``/reply``)
asks for its answer (issue 14, item 13)."""

from __future__ import annotations

import asyncio
import io
from collections.abc import AsyncIterator
from pathlib import Path

import numpy as np

from tests.helpers.server import speech_like
from voicechat import keys
from voicechat.app import Output, talk
from voicechat.audio.filedev import FileAudio
from voicechat.audio.wav import write_wav
from voicechat.config import resolve
from voicechat.server import LocalServer, ServerOptions
from voicechat.transcript import StreamSink

RATE = 24_000


def _types(srv: LocalServer) -> list[str]:
    return [e["type"] for e in srv.received]


async def _reply_after_commit(srv: LocalServer, seen: list[list[str]]) -> AsyncIterator[keys.Action]:
    """Enter on an empty line once the server has committed the spoken turn."""
    while not any(e["type"] == "input_audio_buffer.committed" for e in srv.emitted):
        await asyncio.sleep(0.01)
    seen.append(_types(srv))  # what the client had sent by then
    editor = keys.LineEditor(reply_on_enter=True)
    action = editor.feed(keys.Key("enter"))
    assert action is not None
    yield action


async def _talk(tmp_path: Path, srv: LocalServer, mic: np.ndarray,
                actions: AsyncIterator[keys.Action] | None) -> str:
    wav = tmp_path / "in.wav"
    write_wav(wav, mic, RATE)
    settings = resolve(flags={"base_url": srv.http_base_url, "input_file": wav,
                              "auto_response": False, "silence_duration_ms": 300},
                       environ={"OPENAI_API_KEY": "sk-test-loopback"})
    stdout = io.StringIO()
    await talk(settings, Output(sinks=[StreamSink(stdout)], status=io.StringIO()), audio=FileAudio(mic, None),
               actions=actions)
    return stdout.getvalue()


async def test_enter_on_an_empty_line_asks_for_the_reply(tmp_path: Path) -> None:
    mic = np.concatenate([np.zeros(RATE // 5, np.int16), speech_like(1.0), np.zeros(4 * RATE, np.int16)])
    seen: list[list[str]] = []
    async with LocalServer(ServerOptions(speed=8.0, seed=3, recognizer="none"), host="127.0.0.1", port=0) as srv:
        out = await _talk(tmp_path, srv, mic, _reply_after_commit(srv, seen))
        types = _types(srv)
    assert seen and "response.create" not in seen[0], seen  # committed, and nothing asked by itself
    assert types.count("response.create") == 1, types
    assert "assistant: " in out, out


def test_enter_on_an_empty_line_is_reply_only_when_asked_for() -> None:
    assert keys.LineEditor().feed(keys.Key("enter")) is None
    assert keys.LineEditor(reply_on_enter=True).feed(keys.Key("enter")) == keys.Command("reply")
    typed = keys.LineEditor(reply_on_enter=True)
    for ch in "/reply":
        typed.feed(keys.Key("char", ch))
    assert typed.feed(keys.Key("enter")) == keys.Command("reply")
