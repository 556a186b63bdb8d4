"""--audio-format pcmu|pcma: the real client against the real local server over loopback.

The server speaks G.711 itself; these runs check that the client sends G.711 appends, plays the
replies at 24 kHz with exactly three samples for each byte the server sent, cuts a reply at what
was heard in the 8 kHz clock, and that every event either side sent validates against the
official SDK's models."""

from __future__ import annotations

import base64
import io
from pathlib import Path

import numpy as np
import pytest

from tests.helpers.server import speech_like, validate_client_event, validate_server_event
from voicechat.app import Output, talk
from voicechat.audio.wav import read_wav, write_wav
from voicechat.config import resolve
from voicechat.server import LocalServer, ServerOptions
from voicechat.transcript import StreamSink


def silence(seconds: float) -> np.ndarray:
    return np.zeros(int(seconds * 24000), dtype=np.int16)


async def converse(tmp_path: Path, audio: np.ndarray, opts: ServerOptions, **flags: object) -> tuple[LocalServer, str]:
    wav = tmp_path / "in.wav"
    write_wav(wav, audio, 24000)
    async with LocalServer(opts, host="127.0.0.1", port=0) as srv:
        settings = resolve(flags={"input_file": wav, "output_file": tmp_path / "out.wav", "fast": True,
                                  "silence_duration_ms": 400, "base_url": srv.http_base_url, **flags},
                           environ={"OPENAI_API_KEY": "sk-test-g711"})
        stdout = io.StringIO()
        await talk(settings, Output(sinks=[StreamSink(stdout)], status=io.StringIO()))
    return srv, stdout.getvalue()


def delta_bytes(srv: LocalServer) -> dict[str, int]:
    found: dict[str, int] = {}
    for e in srv.emitted:
        if e["type"] == "response.output_audio.delta":
            found[e["item_id"]] = found.get(e["item_id"], 0) + len(base64.b64decode(e["delta"]))
    return found


@pytest.mark.parametrize("fmt", ["pcmu", "pcma"])
async def test_a_voice_turn_in_g711(tmp_path: Path, fmt: str) -> None:
    audio = np.concatenate([silence(0.3), speech_like(1.5), silence(0.3)])
    srv, out = await converse(tmp_path, audio, ServerOptions(speed=8.0, seed=1, recognizer="none"),
                              audio_format=fmt)
    assert [line.split(":")[0] for line in out.splitlines() if line] == ["you", "assistant"], out
    updated = next(e for e in srv.emitted if e["type"] == "session.updated")["session"]["audio"]
    assert updated["input"]["format"]["type"] == updated["output"]["format"]["type"] == f"audio/{fmt}"
    appends = [e for e in srv.received if e["type"] == "input_audio_buffer.append"]
    sizes = {len(base64.b64decode(e["audio"])) for e in appends}
    assert sizes <= {8 * 40, 8 * 200}, sizes  # 40 ms pieces (200 ms in a quiet room), 8 bytes a millisecond
    # The reply: three 24 kHz samples for each G.711 byte the server sent, and loud enough.
    reply, rate = read_wav(tmp_path / "out.wav")
    assert rate == 24000 and reply.size == 3 * sum(delta_bytes(srv).values())
    assert np.abs(reply.astype(np.int32)).max() > 1000
    for event in srv.emitted:
        validate_server_event(event)
    for event in srv.received:
        validate_client_event(event)


async def test_barge_in_cuts_at_what_was_heard_in_the_8_khz_clock(tmp_path: Path) -> None:
    audio = np.concatenate([silence(0.2), speech_like(2.0), silence(0.9), speech_like(1.0), silence(0.2)])
    srv, _out = await converse(tmp_path, audio, ServerOptions(speed=8.0, seed=2, recognizer="none"),
                              audio_format="pcmu", fast=False)
    truncates = [e for e in srv.received if e["type"] == "conversation.item.truncate"]
    assert len(truncates) == 1
    per_item = delta_bytes(srv)
    assert truncates[0]["item_id"] in per_item and len(per_item) == 2
    reply2 = 3 * next(n for item, n in per_item.items() if item != truncates[0]["item_id"])
    heard_ms = (read_wav(tmp_path / "out.wav")[0].size - reply2) / 24  # = heard G.711 bytes / 8
    assert 0 < truncates[0]["audio_end_ms"] < 2000
    assert abs(heard_ms - truncates[0]["audio_end_ms"]) <= 20  # one device block
    truncated = [e for e in srv.emitted if e["type"] == "conversation.item.truncated"]
    assert truncated and truncated[0]["audio_end_ms"] == truncates[0]["audio_end_ms"]
    for event in srv.emitted:
        validate_server_event(event)
