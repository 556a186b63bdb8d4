"""The live panel is published on the audio's ticks: one wake-up of the loop serves both."""

from __future__ import annotations

import io
import re
from pathlib import Path

import pytest

from tests.loopback.test_hostile import RenderingFront
from tests.loopback.test_talk_loopback import QUESTION
from voicechat.app import Output, panel, talk
from voicechat.config import resolve
from voicechat.server import LocalServer, ServerOptions
from voicechat.transcript import StreamSink


async def test_the_panel_follows_the_conversation_from_the_audio_ticks(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """With the panel's own task looking in only once an hour after the first tick, the panel
    still shows the question's transcript and the reply: the audio's ticks published them."""
    monkeypatch.setattr(panel, "PANEL_WATCH_S", 3600.0)
    stdout = io.StringIO()
    front = RenderingFront()
    async with LocalServer(ServerOptions(speed=8.0, seed=1), host="127.0.0.1", port=0) as srv:
        settings = resolve(flags={"base_url": srv.http_base_url, "input_file": QUESTION, "fast": True},
                           environ={"OPENAI_API_KEY": "sk-test-loopback"})
        await talk(settings, Output(sinks=[StreamSink(stdout)], status=io.StringIO(), front=front))
    said = dict(line.split(": ", 1) for line in stdout.getvalue().splitlines())
    assert set(said) == {"you", "assistant"}, stdout.getvalue()
    shown = re.sub(r"\x1b\[[0-9;]*m", "", front.console.file.getvalue())
    assert front.drawn > 2
    assert said["assistant"][:30] in " ".join(shown.split()), shown[-3000:]
