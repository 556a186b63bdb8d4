"""Pure parts of the local server: the dependency rule, stream planning, limits, audio formats."""

from __future__ import annotations

import ast
import random
from pathlib import Path

import numpy as np
import pytest

from tests.helpers.server import b64, server_and_client, speech, types
from voicechat.server import ScriptedBrain, ScriptedReply
from voicechat.server.audioformat import G711_RATE, decode_whole, encode_output
from voicechat.server.items import Conversation, Item
from voicechat.server.stream import Pacing, PlannedOutput, ResponseStream, StreamContext

SERVER = Path(__file__).resolve().parents[2] / "voicechat" / "server"
IO_MODULES = {"ws.py"}


def imported(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module.split(".")[0])
    return names


@pytest.mark.parametrize("path", sorted(SERVER.glob("*.py")), ids=lambda p: p.name)
def test_only_the_websocket_layer_does_io(path: Path) -> None:
    if path.name in IO_MODULES or path.name == "__init__.py":
        return
    assert not imported(path) & {"websockets", "asyncio", "socket", "time"}, path.name


def plan(text: str, audio_ms: int, speed: float, seed: int = 1) -> ResponseStream:
    item = Item("item_a", "message", role="assistant")
    audio = np.zeros(audio_ms * 24, dtype="<i2").tobytes()
    ctx = StreamContext(response={"id": "resp_x", "object": "realtime.response"}, add_item=lambda _: None,
                        usage=lambda t, a: {"output_tokens": t + a}, encode_audio=lambda b: str(len(b)))
    return ResponseStream(ctx, [PlannedOutput("message", item, text=text, audio=audio)], 10.0,
                          Pacing(speed, (20, 240)), random.Random(seed))


def test_stream_releases_audio_on_the_generation_clock() -> None:
    stream = plan("one two three", 2000, speed=4.0)
    assert stream.end_time() == pytest.approx(10.5)
    first = stream.due(10.0)
    assert types(first)[:3] == ["response.output_item.added", "conversation.item.added", "response.content_part.added"]
    sizes = []
    now = 10.0
    while not stream.done:
        now = stream.next_due() or now
        for event in stream.due(now):
            if event["type"] == "response.output_audio.delta":
                sizes.append(int(event["delta"]) // 48)
    assert sum(sizes) == 2000 and all(20 <= s <= 240 for s in sizes[:-1]) and len(set(sizes)) > 1


def test_stream_cancel_reports_what_was_sent() -> None:
    stream = plan("one two three four", 2000, speed=1.0)
    stream.due(10.5)
    events = stream.cancel("client_cancelled")
    done = events[-1]["response"]
    assert done["status"] == "cancelled" and done["output"][0]["status"] == "incomplete"
    sent = stream.outputs[0].sent_audio / 24
    assert 0 < sent <= 500
    assert done["usage"]["output_tokens"] == int(np.ceil(sent / 50)) + int(np.ceil(len(stream.outputs[0].sent_text) / 4))


def test_conversation_bounds_its_audio() -> None:
    conv = Conversation()
    for i in range(4):
        conv.insert(Item(f"item_{i}", "message", role="user", content=[{"type": "input_audio"}],
                         audio={0: bytearray(1000)}))
    conv.bound_audio(limit_bytes=2500)
    assert [len(i.audio[0]) for i in conv.items()] == [0, 0, 1000, 1000]
    assert conv.items()[0].audio_ms() == pytest.approx(1000 / 48)


@pytest.mark.parametrize("kind", ["audio/pcmu", "audio/pcma"])
def test_g711_round_trip(kind: str) -> None:
    tone = (np.sin(2 * np.pi * 300 * np.arange(24000) / 24000) * 12000).astype(np.int16)
    wire = encode_output({"type": kind}, tone)
    assert len(wire) == G711_RATE  # one byte per sample at 8 kHz
    back = decode_whole({"type": kind}, wire)
    assert abs(back.size - tone.size) <= 3
    n = min(back.size, tone.size)
    assert np.corrcoef(back[100 : n - 100], tone[100 : n - 100])[0, 1] > 0.99


async def test_max_output_tokens_makes_the_response_incomplete() -> None:
    brain = ScriptedBrain([ScriptedReply("a reply that is far too long for the limit", audio_ms=4000)])
    async with server_and_client(brain=brain) as (_, c):
        await c.send({"type": "response.create", "response": {"max_output_tokens": 20}})
        events = await c.until("response.done")
    done = events[-1]["response"]
    assert done["status"] == "incomplete"
    assert done["status_details"] == {"type": "incomplete", "reason": "max_output_tokens"}
    assert done["output"][0]["status"] == "incomplete"
    assert done["usage"]["output_tokens"] <= 21


async def test_bad_base64_append_is_an_error() -> None:
    async with server_and_client() as (_, c):
        await c.send({"type": "input_audio_buffer.append", "event_id": "a1", "audio": "not base64!"})
        error = await c.error()
        assert error["param"] == "audio" and error["event_id"] == "a1"
        await c.send({"type": "input_audio_buffer.append", "audio": b64(np.zeros(1200, np.int16))})
        await c.quiet()


async def test_image_items_are_accepted_and_counted() -> None:
    image = "data:image/png;base64,iVBORw0KGgo="
    async with server_and_client() as (_, c):
        await c.send({"type": "conversation.item.create", "item": {"type": "message", "role": "user", "content": [
            {"type": "input_image", "image_url": image}, {"type": "input_text", "text": "what is this"}]}})
        added = await c.expect("conversation.item.added")
        assert added["item"]["content"][0] == {"type": "input_image", "image_url": image, "detail": "auto"}
        await c.expect("conversation.item.done")
        await c.send({"type": "response.create", "response": {"output_modalities": ["text"]}})
        events = await c.until("response.done")
    assert events[-1]["response"]["usage"]["input_token_details"]["image_tokens"] == 85


async def test_pocketsphinx_transcribes_when_installed() -> None:
    pytest.importorskip("pocketsphinx")
    async with server_and_client(recognizer="auto", transcript_timing="before") as (_, c):
        await c.send({"type": "session.update", "session": {"type": "realtime", "audio": {"input": {
            "transcription": {"model": "whisper-1"}}}}})
        await c.expect("session.updated")
        await c.append(np.concatenate([np.zeros(4800, np.int16), speech(800), np.zeros(9600, np.int16)]))
        events = await c.until("response.done", timeout=30)
    completed = next(e for e in events if e["type"] == "conversation.item.input_audio_transcription.completed")
    assert isinstance(completed["transcript"], str) and completed["usage"]["type"] == "duration"
