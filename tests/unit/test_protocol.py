"""Codec tests, and conformance of every client event voicechat builds against the official SDK."""

from __future__ import annotations

import base64
import json

import pytest
from pydantic import TypeAdapter

from voicechat.protocol import (
    MalformedEvent,
    SessionConfig,
    TurnDetection,
    client,
    decode_server,
    encode,
)
from voicechat.protocol import events as ev
from voicechat.protocol.codec import KNOWN_SERVER_TYPES

openai_rt = pytest.importorskip("openai.types.realtime")
CLIENT_EVENT = TypeAdapter(openai_rt.RealtimeClientEvent)
SERVER_EVENT = TypeAdapter(openai_rt.RealtimeServerEvent)

CONFIGS = [
    SessionConfig(),
    SessionConfig(instructions="Be brief.", voice="cedar", transcribe_model="gpt-4o-mini-transcribe", language="en"),
    SessionConfig(turn_detection=None, output_modalities=("text",), max_output_tokens=200, speed=1.2),
    SessionConfig(
        turn_detection=TurnDetection(type="semantic_vad", eagerness="high", interrupt_response=False),
        noise_reduction="far_field",
        voice="voice_1234",
    ),
    SessionConfig(  # every value the talk flags can produce at its edge
        max_output_tokens="inf", noise_reduction="near_field", speed=0.25, language="de",
        transcribe_model="gpt-4o-transcribe",
        turn_detection=TurnDetection(idle_timeout_ms=5000, create_response=False, interrupt_response=False),
    ),
    SessionConfig(
        turn_detection=TurnDetection(threshold=0.7, prefix_padding_ms=200, silence_duration_ms=800, idle_timeout_ms=6000),
        tools=({"type": "function", "name": "now", "description": "time", "parameters": {"type": "object"}},),
    ),
]

BUILT = [
    *(client.session_update(c, event_id="e1") for c in CONFIGS),
    client.input_audio_append(b"\x00\x01" * 480),
    client.input_audio_commit("e2"),
    client.input_audio_clear(),
    client.user_text("hello", previous_item_id="item_1"),
    client.user_image("data:image/png;base64,AAAA", text="what is this?"),
    client.assistant_text("hi there"),
    client.function_call_output("call_1", '{"ok": true}'),
    client.item_truncate("item_2", 1234),
    client.item_delete("item_3"),
    client.item_retrieve("item_4"),
    client.response_create(),
    client.response_create({"output_modalities": ["text"], "instructions": "short"}),
    client.response_cancel(),
    client.response_cancel("resp_1"),
]


@pytest.mark.parametrize("event", BUILT, ids=lambda e: e["type"])
def test_every_built_client_event_validates_against_the_sdk(event: dict) -> None:
    model = CLIENT_EVENT.validate_python(event)
    assert model.type == event["type"]
    # Round trip through JSON text as it goes on the wire.
    assert json.loads(encode(event)) == event


def test_session_update_carries_type_and_nested_audio() -> None:
    wire = client.session_update(CONFIGS[1])["session"]
    assert wire["type"] == "realtime"
    assert wire["audio"]["input"]["format"] == {"type": "audio/pcm", "rate": 24000}
    assert wire["audio"]["output"]["voice"] == "cedar"
    assert wire["audio"]["input"]["transcription"] == {"model": "gpt-4o-mini-transcribe", "language": "en"}
    assert "modalities" not in wire and "voice" not in wire  # no beta-shaped fields


def test_truncate_never_sends_negative_ms() -> None:
    assert client.item_truncate("i", -5)["audio_end_ms"] == 0


def test_unknown_event_is_explicit_not_an_exception() -> None:
    event = decode_server('{"type":"response.something_new","event_id":"event_1","x":1}')
    assert isinstance(event, ev.UnknownEvent)
    assert event.type == "response.something_new" and event.raw["x"] == 1


@pytest.mark.parametrize(
    "frame, message",
    [
        ("not json", "not JSON"),
        ("[1,2]", "not a JSON object"),
        ('{"event_id":"x"}', "'type' field is missing"),
        (b"\x00\x01", "binary frame"),
        ('{"type":"response.output_audio.delta","response_id":"r","item_id":"i","delta":"***"}', "base64"),
        ('{"type":"response.output_audio.delta","response_id":"r","delta":"AAAA"}', "item_id"),
        ('{"type":"session.created"}', "session"),
    ],
)
def test_malformed_frames_raise_malformed_event(frame, message) -> None:
    with pytest.raises(MalformedEvent, match=message):
        decode_server(frame)


def test_both_content_spellings_are_accepted() -> None:
    for part_type in ("audio", "output_audio"):
        e = decode_server(json.dumps({
            "type": "conversation.item.done", "event_id": "e",
            "item": {"id": "i", "type": "message", "role": "assistant",
                     "content": [{"type": part_type, "transcript": "hi"}]},
        }))
        assert isinstance(e, ev.ItemDone)
        assert e.item.content[0].kind == "audio" and e.item.content[0].words == "hi"
    for part_type in ("text", "output_text"):
        e = decode_server(json.dumps({
            "type": "response.content_part.added", "event_id": "e", "response_id": "r", "item_id": "i",
            "output_index": 0, "content_index": 0, "part": {"type": part_type, "text": ""},
        }))
        assert e.part.kind == "text"


def test_audio_delta_is_decoded_to_pcm() -> None:
    pcm = bytes(range(256)) * 4
    e = decode_server(json.dumps({
        "type": "response.output_audio.delta", "event_id": "e", "response_id": "r", "item_id": "i",
        "output_index": 0, "content_index": 0, "delta": base64.b64encode(pcm).decode(),
    }))
    assert isinstance(e, ev.AudioDelta) and e.audio == pcm


def test_response_done_usage_and_status_details() -> None:
    e = decode_server(json.dumps({
        "type": "response.done", "event_id": "e",
        "response": {"id": "resp_1", "object": "realtime.response", "status": "cancelled",
                     "status_details": {"type": "cancelled", "reason": "turn_detected"},
                     "output": [{"id": "item_1", "type": "message", "role": "assistant", "status": "incomplete",
                                 "content": [{"type": "output_audio", "transcript": "Hel"}]}],
                     "usage": {"total_tokens": 253, "input_tokens": 132, "output_tokens": 121,
                               "input_token_details": {"text_tokens": 119, "audio_tokens": 13, "cached_tokens": 64,
                                                       "cached_tokens_details": {"text_tokens": 64}},
                               "output_token_details": {"text_tokens": 30, "audio_tokens": 91}}},
    }))
    assert isinstance(e, ev.ResponseDone)
    assert e.response.status == "cancelled" and e.response.reason == "turn_detected"
    u = e.response.usage
    assert (u.input_tokens, u.output_tokens, u.input_audio, u.input_cached, u.cached_text, u.output_audio) == (
        132, 121, 13, 64, 64, 91,
    )
    assert (u + u).total_tokens == 506


def test_codec_knows_every_ga_server_event_type_the_sdk_defines() -> None:
    import typing

    union = typing.get_args(openai_rt.RealtimeServerEvent)[0]
    sdk_types = {typing.get_args(m.model_fields["type"].annotation)[0] for m in typing.get_args(union)}
    webrtc_or_sip_only = {"output_audio_buffer.started", "output_audio_buffer.stopped",
                          "output_audio_buffer.cleared", "input_audio_buffer.dtmf_event_received"}
    mcp = {t for t in sdk_types if "mcp" in t}
    not_needed = {"conversation.created", "conversation.item.input_audio_transcription.segment"}
    missing = sdk_types - KNOWN_SERVER_TYPES - webrtc_or_sip_only - mcp - not_needed
    assert not missing, f"server events the codec does not type: {sorted(missing)}"
