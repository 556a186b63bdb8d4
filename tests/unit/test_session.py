"""The session core, driven with lists of typed events: effects out, no I/O, no clock."""

from __future__ import annotations

import pytest

from voicechat import effects as fx
from voicechat.errors import BetaShapeError, SessionError
from voicechat.protocol import SessionConfig, TurnDetection
from voicechat.protocol import events as ev
from voicechat.session import Activity, Session

A = ev.ContentPart("output_audio", transcript="")


def sends(effects: list) -> list[dict]:
    return [e.event for e in effects if isinstance(e, fx.Send)]


def types(effects: list) -> list[str]:
    return [e["type"] for e in sends(effects)]


def turns(effects: list) -> list[fx.Turn]:
    return [e.turn for e in effects if isinstance(e, fx.TurnFinished)]


def ready_session(config: SessionConfig | None = None) -> Session:
    s = Session(config or SessionConfig(transcribe_model="gpt-4o-mini-transcribe"))
    out = s.handle(ev.SessionCreated("e", {"id": "sess_1"}), 0.0)
    assert types(out) == ["session.update"]
    out = s.handle(ev.SessionUpdated("e", {"id": "sess_1"}), 0.1)
    assert any(isinstance(e, fx.Ready) for e in out) and s.ready
    return s


def user_audio_turn(s: Session, uid: str = "item_u1", prev: str | None = None, t: float = 1.0) -> list:
    out = []
    out += s.handle(ev.SpeechStarted("e", uid, 1000), t)
    out += s.handle(ev.SpeechStopped("e", uid, 2500), t + 1)
    out += s.handle(ev.BufferCommitted("e", uid, prev), t + 1)
    item = ev.Item(uid, "message", "user", "completed", (ev.ContentPart("input_audio"),))
    out += s.handle(ev.ItemAdded("e", item, prev), t + 1)
    out += s.handle(ev.ItemDone("e", item, prev), t + 1)
    return out


def assistant_reply(s: Session, rid: str, aid: str, text: str, samples: int, t: float = 3.0, done: bool = True,
                    played: bool = True) -> list:
    out = []
    out += s.handle(ev.ResponseCreated("e", ev.Response(rid, "in_progress")), t)
    item = ev.Item(aid, "message", "assistant", "in_progress")
    out += s.handle(ev.OutputItemAdded("e", rid, 0, item), t)
    out += s.handle(ev.ItemAdded("e", item, None), t)
    half = text[: len(text) // 2], text[len(text) // 2 :]
    out += s.handle(ev.AudioTranscriptDelta("e", rid, aid, 0, 0, half[0]), t)
    out += s.handle(ev.AudioDelta("e", rid, aid, 0, 0, b"\x01\x00" * (samples // 2)), t)
    out += s.handle(ev.AudioTranscriptDelta("e", rid, aid, 0, 0, half[1]), t)
    out += s.handle(ev.AudioDelta("e", rid, aid, 0, 0, b"\x01\x00" * (samples - samples // 2)), t)
    if done:
        out += finish_reply(s, rid, aid, text, t + 0.5, played=played)
    return out


def finish_reply(s: Session, rid: str, aid: str, text: str, t: float, status: str = "completed",
                 played: bool = True) -> list:
    """The reply's last events; with ``played``, the speaker then plays it out."""
    out = []
    out += s.handle(ev.AudioDone("e", rid, aid, 0, 0), t)
    out += s.handle(ev.AudioTranscriptDone("e", rid, aid, 0, 0, text), t)
    done_item = ev.Item(aid, "message", "assistant", "completed" if status == "completed" else "incomplete",
                        (ev.ContentPart("output_audio", transcript=text),))
    out += s.handle(ev.OutputItemDone("e", rid, 0, done_item), t)
    out += s.handle(ev.ItemDone("e", done_item, None), t)
    usage = ev.Usage(input_tokens=10, output_tokens=20, total_tokens=30)
    out += s.handle(ev.ResponseDone("e", ev.Response(rid, status, output=(done_item,), usage=usage)), t)
    if played:
        out += s.playback_drained()
    return out


def test_handshake_sends_session_update_with_an_event_id_and_waits_for_updated() -> None:
    s = Session(SessionConfig())
    out = s.handle(ev.SessionCreated("e", {}), 0)
    update = sends(out)[0]
    assert update["session"]["type"] == "realtime" and update["event_id"]
    assert not s.ready
    assert s.mic_audio(b"\x00\x00" * 480, 0) == []  # nothing is sent before the settings took


def test_rejected_session_update_is_fatal_and_says_why() -> None:
    s = Session(SessionConfig())
    s.handle(ev.SessionCreated("e", {}), 0)
    out = s.handle(ev.ErrorEvent("e", "invalid_request_error", "unknown_parameter",
                                 "Unknown parameter: 'session.foo'.", "session.foo", "vc_session_update"), 0)
    fatal = [e for e in out if isinstance(e, fx.Fatal)]
    assert fatal and isinstance(fatal[0].error, SessionError)
    assert "session.foo" in str(fatal[0].error)


def test_beta_shape_error_is_fatal() -> None:
    s = ready_session()
    out = s.handle(ev.ErrorEvent("e", "invalid_request_error", "beta_api_shape_disabled", "no beta"), 1)
    assert isinstance(next(e for e in out if isinstance(e, fx.Fatal)).error, BetaShapeError)


def test_voice_turn_plays_audio_and_writes_user_then_assistant() -> None:
    s = ready_session()
    out = user_audio_turn(s)
    assert turns(out) == []  # waiting for the user transcript
    out = assistant_reply(s, "resp_1", "item_a1", "Hello there.", 4800)
    plays = [e for e in out if isinstance(e, fx.Play)]
    assert sum(len(p.pcm) for p in plays) == 4800 * 2 and all(p.item_id == "item_a1" for p in plays)
    assert any(isinstance(e, fx.AudioEnd) for e in out)
    assert turns(out) == []  # the reply waits behind the user's turn
    out = s.handle(ev.InputTranscriptCompleted("e", "item_u1", 0, " What time is it? "), 5)
    got = turns(out)
    assert [(t.role, t.text) for t in got] == [("user", "What time is it?"), ("assistant", "Hello there.")]
    assert got[1].usage.total_tokens == 30 and s.usage.total_tokens == 30
    assert got[0].audio_ms == 1500


def test_user_transcript_arriving_before_its_item_still_orders_correctly() -> None:
    s = ready_session()
    out = s.handle(ev.InputTranscriptCompleted("e", "item_u1", 0, "hi"), 1)
    out += user_audio_turn(s)
    out += assistant_reply(s, "resp_1", "item_a1", "Hello.", 480)
    assert [(t.role, t.text) for t in turns(out)] == [("user", "hi"), ("assistant", "Hello.")]


def test_missing_transcript_gives_up_after_the_wait() -> None:
    s = ready_session()
    s.transcript_wait_s = 2.0
    user_audio_turn(s, t=1.0)
    assistant_reply(s, "resp_1", "item_a1", "Hi.", 480)
    assert turns(s.tick(2.5)) == []
    got = turns(s.tick(4.1))
    assert [t.role for t in got] == ["user", "assistant"] and got[0].note == "no transcript"


def test_without_transcription_user_turn_is_final_at_item_done() -> None:
    s = ready_session(SessionConfig(transcribe_model=None))
    out = user_audio_turn(s)
    assert [t.role for t in turns(out)] == ["user"]


def test_several_assistant_items_in_one_response_keep_their_order() -> None:
    s = ready_session(SessionConfig())
    out = s.handle(ev.ResponseCreated("e", ev.Response("r1", "in_progress")), 1)
    for idx, aid in enumerate(("a1", "a2")):
        item = ev.Item(aid, "message", "assistant", "in_progress")
        out += s.handle(ev.OutputItemAdded("e", "r1", idx, item), 1)
        out += s.handle(ev.AudioTranscriptDelta("e", "r1", aid, idx, 0, f"part {idx}"), 1)
        out += s.handle(ev.AudioDelta("e", "r1", aid, idx, 0, b"\x00\x00" * 100), 1)
    done = tuple(ev.Item(a, "message", "assistant", "completed", (ev.ContentPart("audio", transcript=f"part {i}"),))
                 for i, a in enumerate(("a1", "a2")))
    out += s.handle(ev.ResponseDone("e", ev.Response("r1", "completed", output=done)), 2)
    assert s.audible_items == ("a1", "a2")
    assert turns(out) == []  # written once heard (a barge-in could still cut them)
    assert [t.text for t in turns(s.playback_drained())] == ["part 0", "part 1"]


def test_barge_in_on_speech_flushes_truncates_at_played_and_does_not_cancel() -> None:
    s = ready_session(SessionConfig(transcribe_model=None))
    user_audio_turn(s)
    assistant_reply(s, "resp_1", "item_a1", "one two three four", 24000, done=False)
    out = s.handle(ev.SpeechStarted("e", "item_u2", 9000), 4)
    flush = [e for e in out if isinstance(e, fx.Flush)]
    assert flush and flush[0].item_ids == ("item_a1",)
    assert "response.cancel" not in types(out)  # the server cancels by itself (interrupt_response)
    out = s.playback_flushed({"item_a1": 12000}, 4)
    truncate = sends(out)[0]
    assert truncate == {"type": "conversation.item.truncate", "event_id": truncate["event_id"],
                        "item_id": "item_a1", "content_index": 0, "audio_end_ms": 500}
    # Late deltas of the interrupted response are dropped.
    late = s.handle(ev.AudioDelta("e", "resp_1", "item_a1", 0, 0, b"\x00\x00" * 10), 4.1)
    assert not [e for e in late if isinstance(e, fx.Play)]
    out = finish_reply(s, "resp_1", "item_a1", "one two three four", 4.2, status="cancelled")
    assistant = next(t for t in turns(out) if t.role == "assistant")
    assert assistant.interrupted and assistant.text == "one two"  # only what was heard


def test_truncate_is_clamped_to_received_and_skipped_when_fully_played() -> None:
    s = ready_session(SessionConfig(transcribe_model=None))
    assistant_reply(s, "r1", "a1", "done reply", 2400, played=False)
    out = s.handle(ev.SpeechStarted("e", "u2", 0), 5)
    assert [e for e in out if isinstance(e, fx.Flush)]
    assert sends(s.playback_flushed({"a1": 2400}, 5)) == []  # fully heard: nothing to cut
    s2 = ready_session(SessionConfig(transcribe_model=None))
    assistant_reply(s2, "r1", "a1", "reply", 2400, played=False)
    s2.handle(ev.SpeechStarted("e", "u2", 0), 5)
    t = sends(s2.playback_flushed({"a1": 999_999}, 5))
    assert t == []  # clamped to received, and received was complete


def test_playback_outliving_the_response_is_still_truncated() -> None:
    s = ready_session(SessionConfig(transcribe_model=None))
    assistant_reply(s, "r1", "a1", "long reply here", 48000)  # response.done already came
    s.handle(ev.SpeechStarted("e", "u2", 0), 5)
    out = s.playback_flushed({"a1": 24000}, 5)
    assert sends(out)[0]["audio_end_ms"] == 1000


def test_no_interrupt_setting_keeps_playing_on_speech() -> None:
    s = ready_session(SessionConfig(turn_detection=TurnDetection(interrupt_response=False)))
    assistant_reply(s, "r1", "a1", "hello", 4800, done=False)
    out = s.handle(ev.SpeechStarted("e", "u2", 0), 5)
    assert not [e for e in out if isinstance(e, fx.Flush)] and types(out) == []


def test_typed_text_interrupts_with_cancel_then_queues_the_reply() -> None:
    s = ready_session(SessionConfig(transcribe_model=None))
    assistant_reply(s, "r1", "a1", "hello there", 4800, done=False)
    out = s.say("stop, tell me something else", 5)
    assert types(out) == ["response.cancel", "conversation.item.create"]
    assert [e for e in out if isinstance(e, fx.Flush)]
    out += s.playback_flushed({"a1": 2400}, 5)
    assert "conversation.item.truncate" in types(out)
    # response.create waits for the cancelled response to finish.
    assert "response.create" not in types(out)
    out = finish_reply(s, "r1", "a1", "hello there", 5.1, status="cancelled")
    assert types(out) == ["response.create"]


def test_one_active_response_and_benign_race_retries_after_done() -> None:
    s = ready_session(SessionConfig(turn_detection=None, transcribe_model=None))
    s.mic_audio(b"\x00\x00" * 2400, 1)  # 100 ms
    out = s.commit(1)
    assert types(out) == ["input_audio_buffer.commit", "response.create"]
    create_id = sends(out)[1]["event_id"]
    s.handle(ev.ResponseCreated("e", ev.Response("r0", "in_progress")), 1.1)  # someone else's
    out = s.handle(ev.ErrorEvent("e", "invalid_request_error", "conversation_already_has_active_response",
                                 "Conversation already has an active response", None, create_id), 1.2)
    assert not [e for e in out if isinstance(e, fx.Notice) and e.level != "debug"]
    out = s.handle(ev.ResponseDone("e", ev.Response("r0", "completed")), 2)
    assert types(out) == ["response.create"]


def test_manual_commit_respects_the_100_ms_rule() -> None:
    s = ready_session(SessionConfig(turn_detection=None))
    s.mic_audio(b"\x00\x00" * 1200, 1)  # 50 ms
    out = s.commit(1)
    assert types(out) == [] and any(isinstance(e, fx.Notice) and "100 ms" in e.message for e in out)


def test_activity_follows_the_conversation() -> None:
    s = ready_session(SessionConfig(transcribe_model=None))
    assert s.activity is Activity.LISTENING
    s.handle(ev.SpeechStarted("e", "u1", 0), 1)
    assert s.activity is Activity.USER_SPEAKING
    s.handle(ev.SpeechStopped("e", "u1", 900), 2)
    s.handle(ev.BufferCommitted("e", "u1", None), 2)
    assert s.activity is Activity.COMMITTED
    s.handle(ev.ResponseCreated("e", ev.Response("r1", "in_progress")), 2)
    assert s.activity is Activity.THINKING
    s.handle(ev.AudioDelta("e", "r1", "a1", 0, 0, b"\x00\x00"), 2)
    assert s.activity is Activity.ASSISTANT_SPEAKING
    s.handle(ev.ResponseDone("e", ev.Response("r1", "completed")), 3)
    s.playback_drained()
    assert s.activity is Activity.LISTENING and not s.busy


def test_close_writes_out_unfinished_turns() -> None:
    s = ready_session()
    user_audio_turn(s)
    assistant_reply(s, "r1", "a1", "partial", 480, done=False)
    got = turns(s.close())
    assert [t.role for t in got] == ["user", "assistant"] and got[1].interrupted


@pytest.mark.parametrize("code", ["response_cancel_not_active", "conversation_already_has_active_response"])
def test_benign_errors_are_debug_only(code: str) -> None:
    s = ready_session()
    out = s.handle(ev.ErrorEvent("e", "invalid_request_error", code, "race"), 1)
    assert all(e.level == "debug" for e in out if isinstance(e, fx.Notice))


def test_other_errors_are_shown() -> None:
    s = ready_session()
    out = s.handle(ev.ErrorEvent("e", "server_error", None, "The server had an error"), 1)
    assert [e.level for e in out if isinstance(e, fx.Notice)] == ["error"]


def test_tool_call_result_then_reply_after_response_done() -> None:
    s = ready_session(SessionConfig(transcribe_model=None))
    s.handle(ev.ResponseCreated("e", ev.Response("r1", "in_progress")), 1)
    out = s.handle(ev.FunctionCallArgumentsDone("e", "r1", "f1", 0, "call_1", "now", "{}"), 1)
    call = next(e for e in out if isinstance(e, fx.RunTool))
    out = s.tool_result(call.call_id, '{"time": "noon"}', 1)
    assert types(out) == ["conversation.item.create"]
    out = s.handle(ev.ResponseDone("e", ev.Response("r1", "completed")), 2)
    assert types(out) == ["response.create"]


def test_quitting_mid_reply_keeps_only_what_was_heard() -> None:
    s = ready_session(SessionConfig(transcribe_model=None))
    assistant_reply(s, "r1", "a1", "one two three four", 24000, played=False)  # complete, unplayed
    out = s.close(9.0, {"a1": 12000})  # half of it reached the speaker
    (turn,) = turns(out)
    assert turn.interrupted and turn.text == "one two" and turn.ended_at == 9.0
    s2 = ready_session(SessionConfig(transcribe_model=None))
    assistant_reply(s2, "r1", "a1", "one two", 2400, played=False)
    (turn,) = turns(s2.close(9.0, {"a1": 2400}))  # heard to the end: not cut
    assert not turn.interrupted and turn.text == "one two"


def test_a_refused_response_create_does_not_block_later_replies() -> None:
    # No VAD: each typed turn asks for a reply itself. The server refuses the first create
    # (say, a rate limit); the error is shown, and the next turn can still ask for a reply.
    s = ready_session(SessionConfig(turn_detection=None))
    first = sends(s.say("hello", 1.0))
    create = next(e for e in first if e["type"] == "response.create")
    out = s.handle(ev.ErrorEvent("e", "invalid_request_error", "rate_limit_exceeded", "slow down",
                                 client_event_id=create["event_id"]), 1.1)
    assert any(isinstance(e, fx.Notice) and e.level == "error" and "slow down" in e.message for e in out)
    assert "response.create" in types(s.say("hello again", 2.0))


def test_an_unrelated_error_keeps_the_pending_create() -> None:
    s = ready_session(SessionConfig(turn_detection=None))
    s.say("hello", 1.0)
    s.handle(ev.ErrorEvent("e", "invalid_request_error", "invalid_value", "bad", client_event_id="vc_other"), 1.1)
    assert "response.create" not in types(s.say("hello again", 2.0))  # one create in flight at a time
