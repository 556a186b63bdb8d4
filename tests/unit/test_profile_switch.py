"""/profile NAME mid-conversation, in the session core: one session.update when the settings can
change in place; a new voice after the assistant has spoken moves to a new server session."""

from __future__ import annotations

import pytest
from pydantic import TypeAdapter

from tests.unit.test_session import assistant_reply, ready_session, user_audio_turn
from voicechat import effects as fx
from voicechat.protocol import SessionConfig, TurnDetection

openai_rt = pytest.importorskip("openai.types.realtime")
CLIENT_EVENT = TypeAdapter(openai_rt.RealtimeClientEvent)


def sent(effects: list) -> list[dict]:
    return [e.event for e in effects if isinstance(e, fx.Send)]


def test_new_instructions_and_turn_detection_are_one_session_update() -> None:
    s = ready_session(SessionConfig(transcribe_model=None))
    new = SessionConfig(instructions="Talk like a pirate.", voice="cedar", transcribe_model=None,
                        turn_detection=TurnDetection(type="semantic_vad", eagerness="low"),
                        tools=({"type": "function", "name": "now", "description": "t", "parameters": {"type": "object"}},))
    out = s.reconfigure(new, 2.0)
    updates = sent(out)
    assert len(updates) == 1 and updates[0]["type"] == "session.update"
    session = updates[0]["session"]
    assert session["instructions"] == "Talk like a pirate." and session["audio"]["output"]["voice"] == "cedar"
    assert session["audio"]["input"]["turn_detection"]["type"] == "semantic_vad"
    assert session["tools"][0]["name"] == "now"
    CLIENT_EVENT.validate_python(updates[0])
    assert s.config.instructions == "Talk like a pirate."
    assert s.update_event()["session"]["instructions"] == "Talk like a pirate."  # a reconnect keeps it
    assert updates[0]["event_id"] != s.update_event()["event_id"]  # the handshake's id stays its own


def test_a_new_voice_after_the_assistant_spoke_recycles_at_the_next_quiet_moment() -> None:
    s = ready_session(SessionConfig(transcribe_model=None))
    user_audio_turn(s)
    assistant_reply(s, "r1", "a1", "hello there", 2400)
    out = s.reconfigure(SessionConfig(transcribe_model=None, voice="ash", instructions="x"), 5.0)
    assert not sent(out)
    assert any(isinstance(e, fx.Notice) and "new server session" in e.message for e in out)
    assert s.update_event()["session"]["audio"]["output"]["voice"] == "ash"  # what the new session gets
    recycles = [e for e in s.tick(6.0) if isinstance(e, fx.Recycle)]
    assert len(recycles) == 1  # long before the session's time limit
    assert not [e for e in s.tick(7.0) if isinstance(e, fx.Recycle)]  # asked once


def test_the_same_voice_after_the_assistant_spoke_changes_in_place() -> None:
    s = ready_session(SessionConfig(transcribe_model=None))
    assistant_reply(s, "r1", "a1", "hello", 2400)
    out = s.reconfigure(SessionConfig(transcribe_model=None, instructions="Be brief."), 5.0)
    assert [u["type"] for u in sent(out)] == ["session.update"]
    assert not [e for e in s.tick(6.0) if isinstance(e, fx.Recycle)]


def test_the_wire_audio_format_is_kept() -> None:
    s = ready_session(SessionConfig(transcribe_model=None, audio_format="pcmu"))
    update = sent(s.reconfigure(SessionConfig(transcribe_model=None, audio_format="pcm"), 1.0))[0]
    assert update["session"]["audio"]["input"]["format"] == {"type": "audio/pcmu"}
