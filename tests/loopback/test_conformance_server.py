"""Every event the local server emits validates against the official SDK's models, strictly.

Scenarios cover the §4.2 voice turn, text and function-call turns, cancel (client and
barge-in), truncate, item operations, transcription (completed and failed), errors and
the idle timeout. Each emitted event must parse as ``RealtimeServerEvent`` and carry no
field the SDK does not declare (besides the session's ``id``/``object``/``expires_at``);
every client event the scenarios send must parse as ``RealtimeClientEvent``.
"""

from __future__ import annotations

import json
import random
from typing import Any

import numpy as np

from tests.helpers.server import (
    CLIENT_EVENT,
    FAST,
    b64,
    client,
    manual_session,
    server_and_client,
    silence,
    speech,
    validate_client_event,
    validate_server_event,
)
from voicechat.server import FunctionCall, LocalServer, ScriptedBrain, ScriptedReply, ServerOptions
from voicechat.server.session import RealtimeSession

VOICE_TURN_TYPES = {
    "input_audio_buffer.speech_started", "input_audio_buffer.speech_stopped", "input_audio_buffer.committed",
    "conversation.item.added", "conversation.item.done", "response.created", "rate_limits.updated",
    "response.output_item.added", "response.content_part.added", "response.output_audio_transcript.delta",
    "response.output_audio.delta", "response.output_audio.done", "response.output_audio_transcript.done",
    "response.content_part.done", "response.output_item.done", "response.done",
}
OTHER_TYPES = {
    "session.created", "session.updated", "error", "input_audio_buffer.cleared", "input_audio_buffer.timeout_triggered",
    "conversation.item.truncated", "conversation.item.deleted", "conversation.item.retrieved",
    "conversation.item.input_audio_transcription.delta", "conversation.item.input_audio_transcription.completed",
    "conversation.item.input_audio_transcription.failed", "response.output_text.delta", "response.output_text.done",
    "response.function_call_arguments.delta", "response.function_call_arguments.done",
}
TURN = np.concatenate([silence(200), speech(600), silence(300)])
USER_TEXT = {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "hi"}]}


def recognise(pcm: bytes) -> str:
    if len(pcm) < 36000:  # under 0.75 s
        raise RuntimeError("too short to transcribe")
    return "hello there"


async def voice_scenarios(emitted: list[dict[str, Any]], received: list[dict[str, Any]]) -> None:
    brain = ScriptedBrain([
        ScriptedReply("a long spoken reply " * 5, audio_ms=6000),
        ScriptedReply("second reply", audio_ms=500),
        ScriptedReply("", function_calls=(FunctionCall("lookup", '{"q": 1}'),)),
        ScriptedReply("done"),
    ])
    opts = ServerOptions(**{**FAST, "speed": 6.0, "recognizer": recognise, "transcript_timing": "random"},
                         brain=brain)
    async with LocalServer(opts, host="127.0.0.1", port=0) as srv:
        async with client(srv) as c:
            await c.send({"type": "session.update", "event_id": "u1", "session": {
                "type": "realtime", "instructions": "Be brief.",
                "audio": {"input": {"transcription": {"model": "gpt-4o-transcribe", "language": "en"},
                                    "noise_reduction": {"type": "near_field"}},
                          "output": {"voice": "cedar", "format": {"type": "audio/pcm", "rate": 24000}}}}})
            await c.expect("session.updated")
            await c.append(TURN)
            await c.until("response.output_audio.delta")
            await c.append(np.concatenate([speech(300), silence(300)]))  # barge-in, then a short turn
            await c.until("response.done")  # the cancelled one
            events = await c.until("response.done")
            assistant = events[-1]["response"]["output"][0]["id"]
            await c.send({"type": "conversation.item.truncate", "event_id": "t1", "item_id": assistant,
                          "content_index": 0, "audio_end_ms": 100})
            await c.until("conversation.item.truncated")
            await c.send({"type": "conversation.item.retrieve", "item_id": assistant})
            await c.until("conversation.item.retrieved")
            await c.send({"type": "conversation.item.delete", "item_id": assistant})
            await c.until("conversation.item.deleted")
            await c.send({"type": "input_audio_buffer.clear"})
            await c.until("input_audio_buffer.cleared")
            await c.send(manual_session())
            await c.until("session.updated")
            await c.send({"type": "conversation.item.create", "previous_item_id": None, "item": USER_TEXT})
            await c.until("conversation.item.done")
            await c.send({"type": "response.create", "response": {"tool_choice": "auto", "tools": [
                {"type": "function", "name": "lookup", "description": "d", "parameters": {"type": "object"}}]}})
            events = await c.until("response.done")
            call = events[-1]["response"]["output"][0]
            await c.send({"type": "conversation.item.create", "item": {
                "type": "function_call_output", "call_id": call["call_id"], "output": "{}"}})
            await c.until("conversation.item.done")
            await c.send({"type": "response.create", "response": {"output_modalities": ["text"]}})
            await c.until("response.done")
            await c.send({"type": "input_audio_buffer.append", "audio": b64(speech(500))})
            await c.send({"type": "input_audio_buffer.commit"})
            await c.until("conversation.item.done")
            await c.send({"type": "response.create"})
            await c.send({"type": "response.create", "event_id": "dup"})
            await c.until("error")
            await c.send({"type": "response.cancel"})
            await c.until("response.done")
            await c.send({"type": "input_audio_buffer.commit"})
            await c.until("error")
            await c.send({"type": "response.cancel", "event_id": "late"})
            await c.until("error")
            for _ in range(5):  # late transcripts (timing "random") and the failed one
                try:
                    await c.recv(0.3)
                except TimeoutError:
                    break
        emitted += srv.emitted
        received += srv.received


def idle_timeout_events() -> list[dict[str, Any]]:
    s = RealtimeSession(ServerOptions(recognizer="none"), "gpt-realtime", now=0.0, wall_time=1e9,
                        brain=ScriptedBrain([ScriptedReply("hi", audio_ms=200)]), recognizer_available=False,
                        rng=random.Random(3))
    events = s.start(0.0).events
    update = {"type": "session.update", "session": {"type": "realtime", "audio": {"input": {
        "turn_detection": {"type": "server_vad", "idle_timeout_ms": 5000}}}}}
    events += s.receive(json.dumps(update), 0.0).events
    events += s.receive(json.dumps({"type": "response.create"}), 0.0).events
    events += s.tick(1.0).events
    events += s.tick(10.0).events
    events += s.tick(20.0).events
    return events


async def test_every_emitted_event_matches_the_sdk() -> None:
    emitted: list[dict[str, Any]] = []
    received: list[dict[str, Any]] = []
    await voice_scenarios(emitted, received)
    emitted += idle_timeout_events()
    seen: set[str] = set()
    for event in emitted:
        validate_server_event(event)
        assert event["event_id"].startswith("event_") and len(event["event_id"]) == 6 + 21
        seen.add(event["type"])
    missing = (VOICE_TURN_TYPES | OTHER_TYPES) - seen
    assert not missing, f"scenarios did not produce: {sorted(missing)}"
    for event in received:
        CLIENT_EVENT.validate_python(event)
        validate_client_event(event)
    assert {e["type"] for e in received} >= {
        "session.update", "input_audio_buffer.append", "input_audio_buffer.commit", "input_audio_buffer.clear",
        "conversation.item.create", "conversation.item.truncate", "conversation.item.retrieve",
        "conversation.item.delete", "response.create", "response.cancel"}
    codes = {e["error"]["code"] for e in emitted if e["type"] == "error"}
    assert codes >= {"conversation_already_has_active_response", "input_audio_buffer_commit_empty",
                     "response_cancel_not_active"}
    cancelled = [e["response"]["status_details"]["reason"] for e in emitted
                 if e["type"] == "response.done" and e["response"]["status"] == "cancelled"]
    assert set(cancelled) == {"turn_detected", "client_cancelled"}


async def test_default_brain_tool_calls_match_the_sdk_and_the_ga_order() -> None:
    """The echo brain calls the tools a typed turn names: two calls in one response, each in the
    GA §4.6 order; both outputs, then one ``response.create``, get one answer using both."""
    tools = [
        {"type": "function", "name": "get_current_time", "description": "now",
         "parameters": {"type": "object", "properties": {"timezone": {"type": "string"}}}},
        {"type": "function", "name": "echo_tool", "description": "echo",
         "parameters": {"type": "object", "properties": {"text": {"type": "string"}}, "required": ["text"]}},
    ]
    async with server_and_client() as (srv, c):
        await c.send(manual_session(tools=tools, output_modalities=["text"]))
        await c.until("session.updated")
        await c.send({"type": "conversation.item.create", "item": {
            "type": "message", "role": "user", "content": [{"type": "input_text", "text": "what time is it? echo_tool: hi"}]}})
        await c.until("conversation.item.done")
        await c.send({"type": "response.create"})
        events = await c.until("response.done")
        calls = events[-1]["response"]["output"]
        assert [(i["type"], i["name"], json.loads(i["arguments"])) for i in calls] == [
            ("function_call", "get_current_time", {}), ("function_call", "echo_tool", {"text": "hi"})]
        for k, item in enumerate(calls):
            mine = [e["type"] for e in events if e.get("output_index") == k or e.get("item", {}).get("id") == item["id"]
                    or e.get("item_id") == item["id"]]
            mine = [t for i, t in enumerate(mine) if t != "response.function_call_arguments.delta" or
                    mine[i - 1] != "response.function_call_arguments.delta"]
            assert mine == ["response.output_item.added", "conversation.item.added",
                            "response.function_call_arguments.delta", "response.function_call_arguments.done",
                            "response.output_item.done", "conversation.item.done"], mine
        for item, output in zip(calls, ('{"datetime": "now"}', "hi"), strict=True):
            await c.send({"type": "conversation.item.create", "item": {
                "type": "function_call_output", "call_id": item["call_id"], "output": output}})
            await c.until("conversation.item.done")
        await c.send({"type": "response.create"})
        events = await c.until("response.done")
        text = events[-1]["response"]["output"][0]["content"][0]["text"]
        assert text == 'The tools returned: {"datetime": "now"}; hi'
    for event in srv.emitted:
        validate_server_event(event)
    for event in srv.received:
        CLIENT_EVENT.validate_python(event)
