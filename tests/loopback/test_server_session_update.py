"""session.update validation (strict, atomic, full session.updated) and malformed client frames."""

from __future__ import annotations

from typing import Any

import pytest

from tests.helpers.server import server_and_client, types

BASE: dict[str, Any] = {"type": "realtime"}

CASES = [
    ({"instructions": "x"}, "missing_required_parameter", "session.type"),
    ({**BASE, "modalities": ["text"]}, "unknown_parameter", "session.modalities"),
    ({**BASE, "voice": "marin"}, "unknown_parameter", "session.voice"),
    ({**BASE, "temperature": 0.8}, "unknown_parameter", "session.temperature"),
    ({**BASE, "audio": {"input": {"format": {"type": "audio/pcm"}, "vad": {}}}}, "unknown_parameter",
     "session.audio.input.vad"),
    ({**BASE, "type": "transcription"}, "invalid_value", "session.type"),
    ({**BASE, "model": "gpt-realtime-mini"}, "invalid_value", "session.model"),
    ({**BASE, "output_modalities": ["audio", "text"]}, "invalid_value", "session.output_modalities"),
    ({**BASE, "output_modalities": ["video"]}, "invalid_value", "session.output_modalities[0]"),
    ({**BASE, "audio": {"output": {"voice": "robot"}}}, "invalid_value", "session.audio.output.voice"),
    ({**BASE, "audio": {"output": {"voice": {"id": "robot"}}}}, "invalid_value", "session.audio.output.voice.id"),
    ({**BASE, "audio": {"output": {"speed": 2.0}}}, "decimal_above_max_value", "session.audio.output.speed"),
    ({**BASE, "audio": {"output": {"speed": 0.1}}}, "decimal_below_min_value", "session.audio.output.speed"),
    ({**BASE, "audio": {"input": {"format": {"type": "audio/wav"}}}}, "invalid_value",
     "session.audio.input.format.type"),
    ({**BASE, "audio": {"input": {"format": {"type": "audio/pcm", "rate": 16000}}}}, "invalid_value",
     "session.audio.input.format.rate"),
    ({**BASE, "audio": {"input": {"turn_detection": {"type": "fancy_vad"}}}}, "invalid_value",
     "session.audio.input.turn_detection.type"),
    ({**BASE, "audio": {"input": {"turn_detection": {"silence_duration_ms": 300}}}}, "missing_required_parameter",
     "session.audio.input.turn_detection.type"),
    ({**BASE, "audio": {"input": {"turn_detection": {"type": "server_vad", "threshold": 1.5}}}},
     "decimal_above_max_value", "session.audio.input.turn_detection.threshold"),
    ({**BASE, "audio": {"input": {"turn_detection": {"type": "server_vad", "threshold": "high"}}}},
     "invalid_type", "session.audio.input.turn_detection.threshold"),
    ({**BASE, "audio": {"input": {"turn_detection": {"type": "server_vad", "idle_timeout_ms": 1000}}}},
     "integer_below_min_value", "session.audio.input.turn_detection.idle_timeout_ms"),
    ({**BASE, "audio": {"input": {"turn_detection": {"type": "server_vad", "idle_timeout_ms": 40000}}}},
     "integer_above_max_value", "session.audio.input.turn_detection.idle_timeout_ms"),
    ({**BASE, "audio": {"input": {"turn_detection": {"type": "semantic_vad", "eagerness": "eager"}}}},
     "invalid_value", "session.audio.input.turn_detection.eagerness"),
    ({**BASE, "audio": {"input": {"turn_detection": {"type": "semantic_vad", "threshold": 0.5}}}},
     "unknown_parameter", "session.audio.input.turn_detection.threshold"),
    ({**BASE, "audio": {"input": {"transcription": {"model": "whisper-2"}}}}, "invalid_value",
     "session.audio.input.transcription.model"),
    ({**BASE, "audio": {"input": {"noise_reduction": {"type": "studio"}}}}, "invalid_value",
     "session.audio.input.noise_reduction.type"),
    ({**BASE, "max_output_tokens": 0}, "integer_below_min_value", "session.max_output_tokens"),
    ({**BASE, "max_output_tokens": 40000}, "integer_above_max_value", "session.max_output_tokens"),
    ({**BASE, "max_output_tokens": "lots"}, "invalid_value", "session.max_output_tokens"),
    ({**BASE, "tools": [{"type": "function"}]}, "missing_required_parameter", "session.tools[0].name"),
    ({**BASE, "tool_choice": "sometimes"}, "invalid_value", "session.tool_choice"),
    ({**BASE, "instructions": 42}, "invalid_type", "session.instructions"),
    ({**BASE, "id": "sess_x"}, "unknown_parameter", "session.id"),
]


@pytest.mark.parametrize("session, code, param", CASES, ids=[c[2] + ":" + c[1] for c in CASES])
async def test_invalid_update_is_rejected_with_code_and_param(session: dict, code: str, param: str) -> None:
    async with server_and_client() as (_, c):
        await c.send_raw({"type": "session.update", "event_id": "evt_42", "session": session})
        error = await c.error()
        assert (error["code"], error["param"]) == (code, param), error
        assert error["type"] == "invalid_request_error" and error["event_id"] == "evt_42"
        await c.quiet()


async def test_messages_copy_the_real_service() -> None:
    async with server_and_client() as (_, c):
        await c.send_raw({"type": "session.update", "session": {"modalities": ["text"]}})
        assert (await c.error())["message"] == "Unknown parameter: 'session.modalities'."
        await c.send_raw({"type": "session.update", "session": {"instructions": "x"}})
        assert (await c.error())["message"] == "Missing required parameter: 'session.type'."
        await c.send_raw({"type": "session.update", "session": {"type": "realtime", "audio": {"output": {"voice": "x"}}}})
        assert (await c.error())["message"].startswith("Invalid value: 'x'. Supported values are: 'alloy'")


async def test_a_rejected_update_changes_nothing() -> None:
    async with server_and_client() as (_, c):
        created = c.seen[0]["session"]
        await c.send_raw({"type": "session.update", "session": {
            "type": "realtime", "instructions": "Be brief.", "audio": {"output": {"voice": "robot"}}}})
        await c.error()
        await c.send({"type": "session.update", "session": {"type": "realtime"}})
        updated = (await c.expect("session.updated"))["session"]
        assert updated == created


async def test_updated_carries_the_full_effective_config() -> None:
    async with server_and_client() as (_, c):
        created = c.seen[0]["session"]
        assert created["object"] == "realtime.session" and created["id"].startswith("sess_")
        await c.send({"type": "session.update", "session": {
            "type": "realtime", "instructions": "Be brief.",
            "audio": {"output": {"voice": "cedar"},
                      "input": {"turn_detection": {"type": "server_vad", "silence_duration_ms": 500},
                                "transcription": {"model": "gpt-4o-mini-transcribe"}}}}})
        session = (await c.expect("session.updated"))["session"]
        assert session["instructions"] == "Be brief."
        assert session["audio"]["output"] == {**created["audio"]["output"], "voice": "cedar"}
        td = session["audio"]["input"]["turn_detection"]
        assert td == {**created["audio"]["input"]["turn_detection"], "silence_duration_ms": 500}
        assert session["audio"]["input"]["transcription"]["model"] == "gpt-4o-mini-transcribe"
        assert session["audio"]["input"]["format"] == {"type": "audio/pcm", "rate": 24000}
        assert set(session) == set(created)
        # Switching VAD type starts from that type's defaults.
        await c.send({"type": "session.update", "session": {
            "type": "realtime", "audio": {"input": {"turn_detection": {"type": "semantic_vad"}}}}})
        td = (await c.expect("session.updated"))["session"]["audio"]["input"]["turn_detection"]
        assert td == {"type": "semantic_vad", "eagerness": "auto", "create_response": True, "interrupt_response": True}


async def test_voice_is_locked_once_assistant_audio_exists() -> None:
    async with server_and_client() as (_, c):
        await c.send({"type": "session.update", "session": {"type": "realtime", "audio": {"output": {"voice": "ash"}}}})
        await c.expect("session.updated")
        await c.send({"type": "conversation.item.create", "item": {
            "type": "message", "role": "user", "content": [{"type": "input_text", "text": "hi"}]}})
        await c.send({"type": "response.create"})
        await c.until("response.done")
        await c.send({"type": "session.update", "event_id": "v1",
                      "session": {"type": "realtime", "audio": {"output": {"voice": "cedar"}}}})
        error = await c.error()
        assert error["code"] == "cannot_update_voice" and error["event_id"] == "v1"
        # Re-sending the same voice (clients resend their whole config) is fine.
        await c.send({"type": "session.update", "session": {"type": "realtime", "audio": {"output": {"voice": "ash"}}}})
        await c.expect("session.updated")


FRAMES = [
    ("not json", "invalid_json", None),
    ('{"event_id": "e1"}', "invalid_event", None),
    ("[1, 2]", "invalid_event", None),
    ('{"type": 7}', "invalid_type", "type"),
    ('{"type": "response.brand_new"}', "invalid_value", "type"),
    ('{"type": "response.cancel", "reason": "x"}', "unknown_parameter", "reason"),
    (b"\x00\x01binary", "invalid_event", None),
]


@pytest.mark.parametrize("frame, code, param", FRAMES)
async def test_bad_frames_get_an_error_and_the_session_stays_open(frame: str | bytes, code: str, param: str | None) -> None:
    async with server_and_client() as (_, c):
        await c.send_raw(frame)
        error = await c.error()
        assert (error["code"], error["param"]) == (code, param), error
        await c.send({"type": "input_audio_buffer.clear"})
        assert types(await c.until("input_audio_buffer.cleared")) == ["input_audio_buffer.cleared"]


async def test_unknown_type_lists_supported_values() -> None:
    async with server_and_client() as (_, c):
        await c.send_raw({"type": "session.close", "event_id": "x9"})
        error = await c.error()
        assert error["message"].startswith("Invalid value: 'session.close'. Supported values are: 'session.update'")
        assert error["event_id"] == "x9"
