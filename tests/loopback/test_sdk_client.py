"""The official openai SDK's realtime client completes turns against the local server."""

from __future__ import annotations

import asyncio
import base64
from typing import Any

import numpy as np
import openai

from tests.helpers.server import FAST, TIMEOUT, speech
from voicechat.server import LocalServer, ServerOptions


async def events_until_done(conn: Any) -> list[Any]:
    events = []

    async def collect() -> None:
        async for event in conn:
            events.append(event)
            if event.type == "response.done":
                return

    await asyncio.wait_for(collect(), TIMEOUT)
    return events


async def test_sdk_text_and_audio_turns() -> None:
    async with LocalServer(ServerOptions(**FAST), host="127.0.0.1", port=0) as srv:
        sdk = openai.AsyncOpenAI(api_key="sk-test", base_url=srv.http_base_url)
        async with sdk.realtime.connect(model="gpt-realtime-2.1") as conn:
            await conn.session.update(session={
                "type": "realtime", "output_modalities": ["text"],
                "audio": {"input": {"turn_detection": None}}})
            await conn.conversation.item.create(item={
                "type": "message", "role": "user", "content": [{"type": "input_text", "text": "ping"}]})
            await conn.response.create()
            events = await events_until_done(conn)
            assert events[0].type == "session.created" and events[1].type == "session.updated"
            assert events[1].session.output_modalities == ["text"]
            text = "".join(e.delta for e in events if e.type == "response.output_text.delta")
            assert text == "You said: ping"
            assert events[-1].response.status == "completed"
            assert events[-1].response.output[0].content[0].text == text

            await conn.session.update(session={"type": "realtime", "output_modalities": ["audio"]})
            user = speech(600)
            for i in range(0, user.size, 960):
                chunk = np.asarray(user[i : i + 960], dtype="<i2").tobytes()
                await conn.input_audio_buffer.append(audio=base64.b64encode(chunk).decode())
            await conn.input_audio_buffer.commit()
            await conn.response.create()
            events = await events_until_done(conn)
        await sdk.close()
    kinds = [e.type for e in events]
    assert "input_audio_buffer.committed" in kinds and "response.output_audio.delta" in kinds
    audio = b"".join(base64.b64decode(e.delta) for e in events if e.type == "response.output_audio.delta")
    np.testing.assert_array_equal(np.frombuffer(audio, dtype="<i2"), user)
    transcript = next(e.transcript for e in events if e.type == "response.output_audio_transcript.done")
    assert transcript == "(echo of 0.6 s of your audio)"
    assert events[-1].response.usage.output_token_details.audio_tokens == 12
