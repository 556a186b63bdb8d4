"""Manual turns, responses, cancel, and conversation item operations (create/truncate/delete/retrieve)."""

from __future__ import annotations

import base64
from typing import Any

import numpy as np

from tests.helpers.server import b64, manual_session, pcm, server_and_client, speech, types
from voicechat.server import FunctionCall, ScriptedBrain, ScriptedReply

USER_TEXT = {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "hello there"}]}


async def manual(c: Any, **session: Any) -> None:
    await c.send(manual_session(**session))
    await c.expect("session.updated")


async def test_commit_needs_100_ms() -> None:
    async with server_and_client() as (_, c):
        await manual(c)
        await c.send({"type": "input_audio_buffer.commit", "event_id": "c1"})
        error = await c.error()
        assert error["code"] == "input_audio_buffer_commit_empty" and error["event_id"] == "c1"
        assert error["message"] == ("Error committing input audio buffer: buffer too small. Expected at least "
                                    "100ms of audio, but buffer only has 0.00ms of audio.")
        await c.append(speech(40))
        await c.send({"type": "input_audio_buffer.commit"})
        assert "only has 40.00ms" in (await c.error())["message"]
        await c.append(speech(60))  # 100 ms in total since the last commit
        await c.send({"type": "input_audio_buffer.commit"})
        events = await c.until("conversation.item.done")
        assert types(events) == ["input_audio_buffer.committed", "conversation.item.added", "conversation.item.done"]
        await c.quiet()  # no automatic response without VAD


async def test_commit_then_response_create_echoes_the_buffer() -> None:
    user = speech(700)
    async with server_and_client() as (_, c):
        await manual(c)
        await c.append(user)
        await c.send({"type": "input_audio_buffer.commit"})
        committed = (await c.until("conversation.item.done"))[0]
        await c.send({"type": "response.create"})
        events = await c.until("response.done")
    assert events[0]["type"] == "response.created"
    assert events[0]["response"]["status"] == "in_progress" and events[0]["response"]["output"] == []
    added = next(e for e in events if e["type"] == "conversation.item.added")
    assert added["previous_item_id"] == committed["item_id"]
    audio = np.concatenate([pcm(e["delta"]) for e in events if e["type"] == "response.output_audio.delta"])
    np.testing.assert_array_equal(audio, user)


async def test_one_active_response_at_a_time() -> None:
    brain = ScriptedBrain([ScriptedReply("slow reply", audio_ms=3000)])
    async with server_and_client(speed=4.0, brain=brain) as (_, c):
        await c.send({"type": "response.create"})
        created = await c.expect("response.created")
        await c.send({"type": "response.create", "event_id": "second"})
        events = await c.until("error")
        error = events[-1]["error"]
        rid = created["response"]["id"]
        assert error["code"] == "conversation_already_has_active_response" and error["event_id"] == "second"
        assert error["message"] == (f"Conversation already has an active response in progress: {rid}. "
                                    "Wait until the response is finished before creating a new one.")
        await c.send({"type": "response.cancel"})
        rest = await c.until("response.done")
        assert "response.created" not in types(events + rest)[1:]


async def test_cancel_and_cancel_not_active() -> None:
    brain = ScriptedBrain([ScriptedReply("a long reply to cancel", audio_ms=4000)])
    async with server_and_client(speed=4.0, brain=brain) as (_, c):
        await c.send({"type": "response.cancel", "event_id": "early"})
        error = await c.error()
        assert error["code"] == "response_cancel_not_active" and error["event_id"] == "early"
        assert error["message"] == "Cancellation failed: no active response found"
        await c.send({"type": "response.create"})
        await c.until("response.output_audio.delta")
        await c.send({"type": "response.cancel", "response_id": "resp_not_this_one"})
        assert (await c.until("error"))[-1]["error"]["code"] == "response_cancel_not_active"
        await c.send({"type": "response.cancel"})
        events = await c.until("response.done")
        names = [t for t in types(events) if not t.endswith(".delta")]
        assert names == ["response.output_audio.done", "response.output_audio_transcript.done",
                         "response.content_part.done", "response.output_item.done", "conversation.item.done",
                         "response.done"]
        done = events[-1]["response"]
        assert done["status"] == "cancelled"
        assert done["status_details"] == {"type": "cancelled", "reason": "client_cancelled"}
        assert done["output"][0]["status"] == "incomplete"
        await c.send({"type": "response.cancel"})
        assert (await c.error())["code"] == "response_cancel_not_active"


async def spoken_reply(c: Any) -> tuple[str, str]:
    """A typed user turn and its spoken reply: (user item id, assistant item id)."""
    await c.send({"type": "conversation.item.create", "item": USER_TEXT})
    user = (await c.until("conversation.item.done"))[-1]["item"]["id"]
    await c.send({"type": "response.create"})
    events = await c.until("response.done")
    return user, events[-1]["response"]["output"][0]["id"]


async def test_truncate_validations_and_success() -> None:
    brain = ScriptedBrain([ScriptedReply("one second of speech", audio_ms=1000)])
    async with server_and_client(brain=brain) as (_, c):
        user_id, assistant = await spoken_reply(c)
        await c.send({"type": "conversation.item.retrieve", "item_id": assistant})
        item = (await c.expect("conversation.item.retrieved"))["item"]
        assert item["content"][0]["transcript"] == "one second of speech"
        await c.send({"type": "conversation.item.truncate", "item_id": "item_nope", "content_index": 0,
                      "audio_end_ms": 10})
        assert (await c.error())["param"] == "item_id"
        await c.send({"type": "conversation.item.truncate", "item_id": user_id, "content_index": 0,
                      "audio_end_ms": 10})
        error = await c.error()
        assert error["code"] == "unsupported_content_type"
        assert error["message"] == "Only model output audio messages can be truncated"
        await c.send({"type": "conversation.item.truncate", "item_id": assistant, "content_index": 0,
                      "audio_end_ms": 1500})
        error = await c.error()
        assert error["code"] == "invalid_value"
        assert error["message"] == "Audio content of 1000ms is already shorter than 1500ms"
        await c.send({"type": "conversation.item.truncate", "item_id": assistant, "content_index": 0,
                      "audio_end_ms": 400})
        truncated = await c.expect("conversation.item.truncated")
        assert truncated["item_id"] == assistant and truncated["audio_end_ms"] == 400
        await c.send({"type": "conversation.item.retrieve", "item_id": assistant})
        item = (await c.expect("conversation.item.retrieved"))["item"]
        assert len(base64.b64decode(item["content"][0]["audio"])) == 400 * 48
        assert item["content"][0]["transcript"] == ""


async def test_item_create_rules() -> None:
    async with server_and_client() as (_, c):
        await c.send({"type": "conversation.item.create", "item": USER_TEXT})
        first = await c.expect("conversation.item.added")
        assert first["previous_item_id"] is None and first["item"]["content"] == USER_TEXT["content"]
        await c.expect("conversation.item.done")
        await c.send({"type": "conversation.item.create", "item": {**USER_TEXT, "id": "mine"},
                      "previous_item_id": "root"})
        added = await c.expect("conversation.item.added")
        assert added["item"]["id"] == "mine" and added["previous_item_id"] is None
        await c.expect("conversation.item.done")
        await c.send({"type": "conversation.item.create", "item": {**USER_TEXT, "id": "x" * 33}})
        error = await c.error()
        assert error["code"] == "string_above_max_length" and error["param"] == "item.id"
        await c.send({"type": "conversation.item.create", "item": USER_TEXT, "previous_item_id": "item_missing"})
        assert (await c.error())["param"] == "previous_item_id"
        await c.send({"type": "conversation.item.create", "item": {
            "type": "message", "role": "assistant", "content": [{"type": "output_audio", "transcript": "x"}]}})
        assert (await c.error())["param"] == "item.content[0].type"
        await c.send({"type": "conversation.item.create", "item": {
            "type": "function_call_output", "call_id": "call_unknown", "output": "{}"}})
        assert (await c.error())["param"] == "item.call_id"
        await c.send({"type": "conversation.item.create", "item": {
            "type": "message", "role": "system", "content": [{"type": "input_text", "text": "be nice"}]}})
        assert (await c.until("conversation.item.done"))[0]["previous_item_id"] == first["item"]["id"]


async def test_delete_and_retrieve_user_audio() -> None:
    user = speech(300)
    async with server_and_client() as (_, c):
        await c.send({"type": "conversation.item.create", "item": {
            "type": "message", "role": "user", "content": [{"type": "input_audio", "audio": b64(user)}]}})
        added = await c.expect("conversation.item.added")
        assert "audio" not in added["item"]["content"][0]
        item_id = added["item"]["id"]
        await c.expect("conversation.item.done")
        await c.send({"type": "conversation.item.retrieve", "item_id": item_id})
        retrieved = (await c.expect("conversation.item.retrieved"))["item"]
        np.testing.assert_array_equal(pcm(retrieved["content"][0]["audio"]), user)
        await c.send({"type": "conversation.item.delete", "item_id": item_id})
        assert (await c.expect("conversation.item.deleted"))["item_id"] == item_id
        await c.send({"type": "conversation.item.delete", "item_id": item_id})
        assert (await c.error())["code"] == "item_not_found"


async def test_text_turn_in_text_modality() -> None:
    async with server_and_client() as (_, c):
        await c.send({"type": "session.update", "session": {"type": "realtime", "output_modalities": ["text"]}})
        await c.expect("session.updated")
        await c.send({"type": "conversation.item.create", "item": USER_TEXT})
        await c.until("conversation.item.done")
        await c.send({"type": "response.create"})
        events = await c.until("response.done")
    names = [t for t in types(events) if t != "response.output_text.delta"]
    assert names == ["response.created", "rate_limits.updated", "response.output_item.added",
                     "conversation.item.added", "response.content_part.added", "response.output_text.done",
                     "response.content_part.done", "response.output_item.done", "conversation.item.done",
                     "response.done"]
    part = next(e for e in events if e["type"] == "response.content_part.added")["part"]
    assert part == {"type": "text", "text": ""}
    text = "".join(e["delta"] for e in events if e["type"] == "response.output_text.delta")
    assert text == "You said: hello there"
    assert events[-1]["response"]["output"][0]["content"] == [{"type": "output_text", "text": text}]
    assert events[-1]["response"]["usage"]["output_token_details"]["audio_tokens"] == 0


async def test_response_params_override_and_validation() -> None:
    async with server_and_client() as (_, c):
        await c.send({"type": "conversation.item.create", "item": USER_TEXT})
        await c.until("conversation.item.done")
        await c.send({"type": "response.create", "response": {"conversation": "none"}})
        assert (await c.error())["param"] == "response.conversation"
        await c.send_raw({"type": "response.create", "response": {"modalities": ["text"]}})
        assert (await c.error())["code"] == "unknown_parameter"
        await c.send({"type": "response.create", "response": {
            "output_modalities": ["text"], "instructions": "Answer in French.", "metadata": {"turn": "1"}}})
        events = await c.until("response.done")
        assert "response.output_text.delta" in types(events)
        assert events[-1]["response"]["metadata"] == {"turn": "1"}
        assert events[-1]["response"]["output_modalities"] == ["text"]


async def test_function_call_round_trip() -> None:
    call = FunctionCall("get_weather", '{"city": "Paris"}')
    brain = ScriptedBrain([ScriptedReply("", function_calls=(call,)), ScriptedReply("It is sunny.", audio_ms=300)])
    async with server_and_client(brain=brain) as (_, c):
        await c.send({"type": "conversation.item.create", "item": USER_TEXT})
        await c.until("conversation.item.done")
        await c.send({"type": "response.create"})
        events = await c.until("response.done")
        assert [t for t in types(events) if t != "response.function_call_arguments.delta"] == [
            "response.created", "rate_limits.updated", "response.output_item.added", "conversation.item.added",
            "response.function_call_arguments.done", "response.output_item.done", "conversation.item.done",
            "response.done"]
        done_args = next(e for e in events if e["type"] == "response.function_call_arguments.done")
        assert done_args["name"] == "get_weather" and done_args["arguments"] == call.arguments
        deltas = "".join(e["delta"] for e in events if e["type"] == "response.function_call_arguments.delta")
        assert deltas == call.arguments
        call_id = done_args["call_id"]
        assert call_id.startswith("call_") and len(call_id) == 5 + 16
        await c.send({"type": "conversation.item.create", "item": {
            "type": "function_call_output", "call_id": call_id, "output": '{"sky": "clear"}'}})
        await c.until("conversation.item.done")
        await c.send({"type": "response.create"})
        events = await c.until("response.done")
        assert events[-1]["response"]["output"][0]["content"][0]["transcript"] == "It is sunny."
