"""Input transcription timing, session expiry, two items per response, idle timeout, formats, faults."""

from __future__ import annotations

import asyncio
import base64
import json
import random
import time
from typing import Any

import numpy as np
import pytest
from websockets.exceptions import ConnectionClosed

from tests.helpers.server import (
    FAST,
    TIMEOUT,
    RawClient,
    b64,
    client,
    pcm,
    server_and_client,
    silence,
    speech,
    types,
)
from voicechat.server import LocalServer, ScriptedBrain, ScriptedReply, ServerOptions
from voicechat.server.audioformat import _ulaw_encode
from voicechat.server.session import RealtimeSession

TRANSCRIBE = {"type": "session.update", "session": {"type": "realtime", "audio": {"input": {
    "transcription": {"model": "gpt-4o-mini-transcribe"}}}}}
TURN = np.concatenate([silence(200), speech(600), silence(300)])


def hello(_: bytes) -> str:
    return "hello world"


async def transcribed_turn(timing: str, **opts: Any) -> list[dict[str, Any]]:
    async with server_and_client(recognizer=hello, transcript_timing=timing, **opts) as (_, c):
        await c.send(TRANSCRIBE)
        await c.expect("session.updated")
        await c.append(TURN)
        events = await c.until("response.done")
        if "conversation.item.input_audio_transcription.completed" not in types(events):
            events += await c.until("conversation.item.input_audio_transcription.completed")
        return events


async def test_transcript_after_response_done() -> None:
    events = await transcribed_turn("after")
    names = types(events)
    assert names.index("conversation.item.input_audio_transcription.completed") > names.index("response.done")
    completed = events[names.index("conversation.item.input_audio_transcription.completed")]
    assert completed["transcript"] == "hello world" and completed["content_index"] == 0
    assert completed["item_id"] == events[0]["item_id"]
    assert completed["usage"]["type"] == "tokens" and completed["usage"]["input_tokens"] > 0
    deltas = [e["delta"] for e in events if e["type"] == "conversation.item.input_audio_transcription.delta"]
    assert "".join(deltas) == "hello world"
    transcript = "".join(e["delta"] for e in events if e["type"] == "response.output_audio_transcript.delta")
    assert transcript == "You said: hello world"


async def test_transcript_before_response_created() -> None:
    names = types(await transcribed_turn("before"))
    assert names.index("conversation.item.input_audio_transcription.completed") < names.index("response.created")


async def test_transcript_during_the_response() -> None:
    names = types(await transcribed_turn("during", speed=4.0))
    completed = names.index("conversation.item.input_audio_transcription.completed")
    assert names.index("response.created") < completed < names.index("response.done")


async def test_item_keeps_its_transcript() -> None:
    async with server_and_client(recognizer=hello, transcript_timing="before") as (_, c):
        await c.send(TRANSCRIBE)
        await c.expect("session.updated")
        await c.append(TURN)
        events = await c.until("response.done")
        await c.send({"type": "conversation.item.retrieve", "item_id": events[0]["item_id"]})
        item = (await c.expect("conversation.item.retrieved"))["item"]
        assert item["content"][0]["transcript"] == "hello world"


async def test_whisper_usage_is_by_duration_and_failures_are_reported() -> None:
    def broken(_: bytes) -> str:
        raise RuntimeError("no")

    async with server_and_client(recognizer=broken, transcript_timing="before") as (_, c):
        await c.send({"type": "session.update", "session": {"type": "realtime", "audio": {"input": {
            "transcription": {"model": "whisper-1"}}}}})
        await c.expect("session.updated")
        await c.append(TURN)
        events = await c.until("response.done")
    failed = next(e for e in events if e["type"] == "conversation.item.input_audio_transcription.failed")
    assert failed["error"]["code"] == "audio_unintelligible"
    transcript = "".join(e["delta"] for e in events if e["type"] == "response.output_audio_transcript.delta")
    assert transcript.startswith("(echo of ")


async def test_no_transcription_events_unless_asked() -> None:
    async with server_and_client(recognizer=hello) as (_, c):
        await c.append(TURN)
        events = await c.until("response.done")
        await c.quiet()
    assert not [t for t in types(events) if "input_audio_transcription" in t]
    transcript = "".join(e["delta"] for e in events if e["type"] == "response.output_audio_transcript.delta")
    assert transcript == "You said: hello world"  # the echo brain still used the recogniser


async def test_session_expiry() -> None:
    async with server_and_client(session_seconds=0.3) as (_, c):
        created = c.seen[0]["session"]
        assert created["expires_at"] - time.time() < 5
        error = await c.error()
        assert error["code"] == "session_expired"
        assert error["message"] == "Your session hit the maximum duration of 60 minutes."
        with pytest.raises(ConnectionClosed):
            await c.recv()
        assert c.ws.close_code == 1001 and c.ws.close_reason == error["message"]


async def test_two_items_per_response() -> None:
    brain = ScriptedBrain([ScriptedReply("one two three four", audio_ms=1200)])
    async with server_and_client(brain=brain, items_per_response=2) as (_, c):
        await c.send({"type": "response.create"})
        events = await c.until("response.done")
    added = [e for e in events if e["type"] == "response.output_item.added"]
    assert [e["output_index"] for e in added] == [0, 1]
    first, second = (e["item"]["id"] for e in added)
    conv_added = [e for e in events if e["type"] == "conversation.item.added"]
    assert conv_added[1]["previous_item_id"] == first
    deltas = [e for e in events if e["type"] == "response.output_audio.delta"]
    owners = [e["item_id"] for e in deltas]
    assert owners == sorted(owners, key=[first, second].index)  # item 0's audio, then item 1's
    assert all(e["output_index"] == (0 if e["item_id"] == first else 1) for e in deltas)
    assert sum(pcm(e["delta"]).size for e in deltas) == 1200 * 24
    output = events[-1]["response"]["output"]
    assert [o["id"] for o in output] == [first, second]
    assert " ".join(o["content"][0]["transcript"] for o in output) == "one two three four"


def test_idle_timeout_fires_after_playback_plus_timeout() -> None:
    brain = ScriptedBrain([ScriptedReply("hi", audio_ms=1000)])
    s = RealtimeSession(ServerOptions(speed=4.0, recognizer="none"), "gpt-realtime", now=0.0, wall_time=1e9,
                        brain=brain, recognizer_available=False, rng=random.Random(1))
    s.start(0.0)
    update = {"type": "session.update", "session": {"type": "realtime", "audio": {"input": {
        "turn_detection": {"type": "server_vad", "idle_timeout_ms": 5000}}}}}
    assert types(s.receive(json.dumps(update), 0.0).events) == ["session.updated"]
    s.receive(json.dumps({"type": "response.create"}), 0.0)
    assert "response.done" in types(s.tick(0.3).events)  # 1 s of audio at 4x
    assert s.next_deadline() == pytest.approx(6.0)  # played until 1.0, + 5 s
    silent = {"type": "input_audio_buffer.append", "audio": ""}
    s.receive(json.dumps({**silent, "audio": b64(silence(8000))}), 3.0)
    assert s.tick(5.9).events == []
    events = s.tick(6.0).events
    assert types(events)[:4] == ["input_audio_buffer.timeout_triggered", "input_audio_buffer.committed",
                                 "conversation.item.added", "conversation.item.done"]
    assert (events[0]["audio_start_ms"], events[0]["audio_end_ms"]) == (3000, 8000)
    assert events[0]["item_id"] == events[1]["item_id"]
    assert "response.created" in types(events)


async def test_g711_ulaw_in_and_out() -> None:
    async with server_and_client() as (_, c):
        await c.send({"type": "session.update", "session": {"type": "realtime", "audio": {
            "input": {"format": {"type": "audio/pcmu"}}, "output": {"format": {"type": "audio/pcmu"}}}}})
        await c.expect("session.updated")
        narrow = np.asarray(TURN[::3])  # 8 kHz
        wire = _ulaw_encode(narrow)
        for i in range(0, len(wire), 320):
            await c.send({"type": "input_audio_buffer.append",
                          "audio": base64.b64encode(wire[i : i + 320]).decode()})
        events = await c.until("response.done")
    stopped = next(e for e in events if e["type"] == "input_audio_buffer.speech_stopped")
    started = next(e for e in events if e["type"] == "input_audio_buffer.speech_started")
    out_bytes = sum(len(base64.b64decode(e["delta"])) for e in events
                    if e["type"] == "response.output_audio.delta")
    assert abs(out_bytes - (stopped["audio_end_ms"] - started["audio_start_ms"]) * 8) <= 16


async def test_output_speed_shortens_the_reply() -> None:
    async with server_and_client() as (_, c):
        await c.send({"type": "session.update", "session": {"type": "realtime", "audio": {"output": {"speed": 1.5}}}})
        await c.expect("session.updated")
        await c.send({"type": "conversation.item.create", "item": {
            "type": "message", "role": "user", "content": [{"type": "input_audio", "audio": b64(speech(900))}]}})
        await c.until("conversation.item.done")
        await c.send({"type": "response.create"})
        events = await c.until("response.done")
    samples = sum(pcm(e["delta"]).size for e in events if e["type"] == "response.output_audio.delta")
    assert abs(samples - 900 * 24 / 1.5) <= 48


# ---- faults -----------------------------------------------------------------------------

LONG = {"brain": ScriptedBrain([ScriptedReply("long", audio_ms=3000)]), "delta_ms": (50, 50)}


async def deltas_until_closed(c: RawClient) -> int:
    count = 0
    with pytest.raises(ConnectionClosed):
        while True:
            if (await c.recv())["type"] == "response.output_audio.delta":
                count += 1
    return count


async def test_drop_after_deltas_aborts_without_close_frame() -> None:
    async with server_and_client(drop_after_deltas=3, **LONG) as (_, c):
        await c.send({"type": "response.create"})
        assert await deltas_until_closed(c) == 3
        assert c.ws.close_code == 1006


async def test_close_code_after_deltas() -> None:
    async with server_and_client(close_code_after_deltas=(1011, "injected"), drop_after_deltas=2, **LONG) as (_, c):
        await c.send({"type": "response.create"})
        assert await deltas_until_closed(c) == 2
        assert (c.ws.close_code, c.ws.close_reason) == (1011, "injected")


async def test_faults_only_on_chosen_connections() -> None:
    opts = ServerOptions(**{**FAST, **LONG}, drop_after_deltas=1, fault_connections=(2,))
    async with LocalServer(opts, host="127.0.0.1", port=0) as srv:
        async with client(srv) as c:
            await c.send({"type": "response.create"})
            await c.until("response.done")
        async with client(srv) as c:
            await c.send({"type": "response.create"})
            assert await deltas_until_closed(c) == 1


async def test_inject_frames_follow_session_created() -> None:
    frames = ("not json", b"\x00\x01", '{"type":"response.brand_new"}')
    async with server_and_client(inject_frames=frames) as (_, c):
        got = [await asyncio.wait_for(c.ws.recv(), TIMEOUT) for _ in frames]
        assert got == list(frames)
        await c.send({"type": "input_audio_buffer.clear"})
        await c.expect("input_audio_buffer.cleared")


async def test_delta_delay_slows_the_stream() -> None:
    brain = ScriptedBrain([ScriptedReply("short", audio_ms=1000)])
    async with server_and_client(delta_delay_ms=30, brain=brain, delta_ms=(50, 50)) as (_, c):
        start = time.monotonic()
        await c.send({"type": "response.create"})
        events = await c.until("response.done")
    n = types(events).count("response.output_audio.delta")
    assert n == 20 and time.monotonic() - start >= n * 0.030
