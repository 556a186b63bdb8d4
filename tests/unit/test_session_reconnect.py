"""The session core across connections: suspend, re-seed, resume, session lifetime. Pure."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest

from tests.unit.test_session import (
    assistant_reply,
    ready_session,
    sends,
    turns,
    types,
    user_audio_turn,
)
from voicechat import effects as fx
from voicechat.errors import UsageError
from voicechat.protocol import SessionConfig
from voicechat.protocol import events as ev
from voicechat.session import SEED_PREFIX, Activity, Phase, Session, seed_item
from voicechat.transcript import FileSink, jsonl_record, read_jsonl

NOW = 1_700_000_000.0  # wall-clock seconds, like expires_at


def text_turn(s: Session, uid: str, text: str, t: float) -> list:
    item = ev.Item(uid, "message", "user", "completed", (ev.ContentPart("input_text", text=text),))
    return s.handle(ev.ItemAdded("e", item, None), t) + s.handle(ev.ItemDone("e", item, None), t)


def seeded(effects: list) -> list[tuple[str, str]]:
    return [(e["item"]["role"], e["item"]["content"][0]["text"]) for e in sends(effects)
            if e["type"] == "conversation.item.create"]


# ---- a dropped connection ------------------------------------------------------------------


def test_suspend_writes_the_cut_reply_with_what_was_heard_and_stops_the_microphone() -> None:
    s = ready_session()
    out = text_turn(s, "item_u1", "tell me a story", 1.0)
    out += assistant_reply(s, "resp_1", "item_a1", "Once upon a time there was", 24_000, done=False)
    assert [t.role for t in turns(out)] == ["user"]
    out = s.suspend(2.0, {"item_a1": 12_000})  # half of the audio reached the speaker
    (cut,) = turns(out)
    assert cut.role == "assistant" and cut.interrupted
    assert cut.text and "Once upon a time there was".startswith(cut.text) and cut.text != "Once upon a time there was"
    assert s.phase is Phase.CONNECTING and not s.ready and s.activity is Activity.IDLE
    assert s.active_response is None and s.audible_items == () and not s.busy
    assert s.mic_audio(b"\x01\x00" * 480, 2.1) == []  # nothing is sent while disconnected
    assert s.say("hello?", 2.1) == []


def test_suspend_notes_a_call_whose_result_cannot_be_delivered() -> None:
    s = ready_session()
    s.handle(ev.ResponseCreated("e", ev.Response("resp_1", "in_progress")), 1)
    out = s.handle(ev.FunctionCallArgumentsDone("e", "resp_1", "item_f1", 0, "call_1", "get_current_time", "{}"), 1)
    assert any(isinstance(e, fx.RunTool) for e in out)
    (call,) = turns(s.suspend(2.0))
    assert call.kind == "function_call" and call.result is None and "connection was lost" in (call.note or "")
    assert s.tool_result("call_1", '{"ok": true}', 3.0) == []  # too late: that session is gone


def test_reconnected_reseeds_every_written_turn_in_order_then_is_ready() -> None:
    s = ready_session()
    out = user_audio_turn(s)
    out += s.handle(ev.InputTranscriptCompleted("e", "item_u1", 0, "What time is it?"), 2)
    out += assistant_reply(s, "resp_1", "item_a1", "It is noon.", 4800)
    out += text_turn(s, "item_u2", "and the date?", 4.0)
    out += assistant_reply(s, "resp_2", "item_a2", "The first of May, a Friday.", 24_000, done=False)
    s.suspend(5.0, {"item_a2": 8_000})
    out = s.reconnected({"id": "sess_2", "expires_at": NOW + 3600}, 6.0)
    assert isinstance(out[-1], fx.Ready) and s.ready and s.connections == 2
    creates = sends(out)
    assert [c["type"] for c in creates] == ["conversation.item.create"] * 4
    assert seeded(out)[:3] == [("user", "What time is it?"), ("assistant", "It is noon."), ("user", "and the date?")]
    role, heard = seeded(out)[3]
    assert role == "assistant" and heard and "The first of May, a Friday.".startswith(heard)
    assert creates[3]["item"]["content"][0]["type"] == "output_text"
    ids = [c["item"]["id"] for c in creates]
    assert ids == [f"{SEED_PREFIX}2_{n}" for n in range(4)]
    assert [c["previous_item_id"] for c in creates] == ["root", *ids[:3]]
    assert all(len(i) <= 32 for i in ids)
    # The server echoes the seeded items: they are not shown (or written) a second time.
    echo = ev.Item(ids[0], "message", "user", "completed", (ev.ContentPart("input_text", text="What time is it?"),))
    assert turns(s.handle(ev.ItemAdded("e", echo, "root"), 7) + s.handle(ev.ItemDone("e", echo, "root"), 7)) == []
    assert len(s.transcript()) == 4
    # And the conversation goes on: the microphone is sent again, new turns follow the old.
    assert types(s.mic_audio(b"\x01\x00" * 960, 7)) == ["input_audio_buffer.append"]  # 40 ms
    got = turns(text_turn(s, "item_u3", "thanks", 8))
    assert [t.text for t in got] == ["thanks"] and s.written == 5


def test_turns_without_words_are_not_reseeded_and_tool_calls_become_notes() -> None:
    assert seed_item(fx.Turn("user", "", "i", 0, 0, kind="audio", note="no transcript")) is None
    assert seed_item(fx.Turn("assistant", "", "i", 0, 0, interrupted=True)) is None
    note = seed_item(fx.Turn("tool", 'get_current_time({})', "i", 0, 0, kind="function_call",
                             result='{"time": "12:00"}'))
    assert note is not None and note["role"] == "system"
    assert note["content"] == [{"type": "input_text", "text": 'Earlier in this conversation the tool call '
                                'get_current_time({}) returned: {"time": "12:00"}'}]
    unfinished = seed_item(fx.Turn("tool", "slow({})", "i", 0, 0, kind="function_call", note="no result: x"))
    assert unfinished is not None and "did not complete (no result: x)" in unfinished["content"][0]["text"]


def test_a_session_expired_error_asks_for_a_new_connection_instead_of_ending() -> None:
    s = ready_session()
    out = s.handle(ev.ErrorEvent("e", "invalid_request_error", "session_expired",
                                 "Your session hit the maximum duration of 60 minutes."), 1)
    assert [type(e) for e in out] == [fx.Reconnect] and s.retry_hint
    assert not any(isinstance(e, fx.Fatal) for e in out)


def test_a_server_error_is_shown_and_marks_the_connection_worth_replacing() -> None:
    s = ready_session()
    out = s.handle(ev.ErrorEvent("e", "server_error", None, "The server had an error."), 1)
    assert [e.level for e in out if isinstance(e, fx.Notice)] == ["error"] and s.retry_hint
    s.suspend(2.0)
    assert s.retry_hint is None  # it belonged to the old connection


# ---- session lifetime ----------------------------------------------------------------------


def live(expires_at: float, **limits: float) -> Session:
    s = Session(SessionConfig())
    for name, value in limits.items():
        setattr(s, name, value)
    s.handle(ev.SessionCreated("e", {"expires_at": expires_at}), NOW)
    s.handle(ev.SessionUpdated("e", {"expires_at": expires_at}), NOW)
    return s


def test_time_left_warns_once_at_five_minutes() -> None:
    s = live(NOW + 3600)
    assert s.seconds_left(NOW) == 3600
    assert s.tick(NOW + 3000) == []
    out = s.tick(NOW + 3300.4)
    (notice,) = [e for e in out if isinstance(e, fx.Notice)]
    assert notice.level == "warning" and "5:00" in notice.message
    assert [e for e in s.tick(NOW + 3310) if isinstance(e, fx.Notice)] == []


def test_recycle_is_asked_once_below_the_margin_and_only_when_idle() -> None:
    s = live(NOW + 3600, expiry_warning_s=0.0)
    assert not [e for e in s.tick(NOW + 3400) if isinstance(e, fx.Recycle)]
    text_turn(s, "item_u1", "hi", NOW + 3481)
    s.handle(ev.ResponseCreated("e", ev.Response("resp_1", "in_progress")), NOW + 3481)
    assert not s.idle
    assert not [e for e in s.tick(NOW + 3482) if isinstance(e, fx.Recycle)]  # a reply is on its way
    s.handle(ev.ResponseDone("e", ev.Response("resp_1", "completed")), NOW + 3483)
    assert s.idle
    (recycle,) = [e for e in s.tick(NOW + 3484) if isinstance(e, fx.Recycle)]
    assert recycle.seconds_left == pytest.approx(116)
    assert not [e for e in s.tick(NOW + 3485) if isinstance(e, fx.Recycle)]  # asked already
    s.recycle_later(NOW + 3495)  # it could not be done: ask again, but not before then
    assert not [e for e in s.tick(NOW + 3490) if isinstance(e, fx.Recycle)]
    assert [e for e in s.tick(NOW + 3496) if isinstance(e, fx.Recycle)]


def test_a_recycle_keeps_the_conversation_and_takes_the_new_sessions_limit() -> None:
    s = live(NOW + 3600)
    text_turn(s, "item_u1", "my name is Ada", NOW + 10)
    out = s.reconnected({"expires_at": NOW + 7200}, NOW + 3500)
    assert seeded(out) == [("user", "my name is Ada")] and s.seconds_left(NOW + 3600) == 3600
    assert isinstance(out[-1], fx.Ready)


def test_no_lifetime_effects_without_an_expiry() -> None:
    s = ready_session()
    assert s.seconds_left(NOW) is None and s.tick(NOW) == []


# ---- --resume --------------------------------------------------------------------------------


def saved_turns() -> list[fx.Turn]:
    return [
        fx.Turn("user", "my name is Ada", "item_1", 10.0, 11.0, kind="audio", audio_ms=1200),
        fx.Turn("assistant", "Hello Ada, nice", "item_2", 11.0, 12.5, interrupted=True, kind="audio",
                audio_ms=900, usage=ev.Usage(input_tokens=5, output_tokens=7, total_tokens=12)),
        fx.Turn("tool", 'get_current_time({})', "item_3", 13.0, 13.1, kind="function_call", result='{"t": 1}'),
    ]


def test_restored_turns_are_shown_as_written_and_seeded_at_the_first_connection() -> None:
    s = Session(SessionConfig())
    s.restore(saved_turns())
    assert s.written == 3 and s.transcript() == saved_turns()
    assert s.handle(ev.SessionCreated("e", {}), 0) and not s.ready
    out = s.handle(ev.SessionUpdated("e", {}), 1)
    assert seeded(out) == [("user", "my name is Ada"), ("assistant", "Hello Ada, nice"),
                           ("system", 'Earlier in this conversation the tool call get_current_time({}) returned: '
                                      '{"t": 1}')]
    assert isinstance(out[-1], fx.Ready) and not turns(out)
    # A new server item that happens to reuse a saved id is a new turn, not the old one.
    got = turns(text_turn(s, "item_1", "hi again", 2))
    assert [t.text for t in got] == ["hi again"] and s.written == 4


def test_jsonl_transcripts_read_back_as_the_turns_written(tmp_path: Path) -> None:
    path = tmp_path / "chat.jsonl"
    sink = FileSink(path)
    for turn in saved_turns():
        sink.write(turn)
    sink.close()
    path.write_text(path.read_text() + "\n")  # a blank line is fine
    assert read_jsonl(path) == saved_turns()


@pytest.mark.parametrize("line, why", [
    ("not json", "not a transcript record"),
    ("[1, 2]", "expected a JSON object"),
    ('{"role": "robot", "text": "x"}', "'role' must be one of user, assistant, tool"),
    ('{"role": "user"}', "missing 'text'"),
    ('{"role": "user", "text": 3}', "'text' must be a string"),
    ('{"role": "user", "text": "x", "start": "noon"}', "'start' must be a number"),
    ('{"role": "user", "text": "x", "interrupted": 1}', "'interrupted' must be true or false"),
    ('{"role": "user", "text": "x", "kind": "video"}', "'kind' must be one of"),
    ('{"role": "user", "text": "x", "usage": {"input_tokens": "many"}}', "'input_tokens' must be an integer"),
])
def test_a_malformed_jsonl_line_is_named(tmp_path: Path, line: str, why: str) -> None:
    path = tmp_path / "chat.jsonl"
    good = json.dumps(jsonl_record(saved_turns()[0]))
    path.write_text(f"{good}\n{line}\n")
    with pytest.raises(UsageError) as caught:
        read_jsonl(path)
    assert f"{path}, line 2: " in caught.value.message and why in caught.value.message
    assert "--transcript FILE.jsonl" in (caught.value.hint or "")


def test_a_missing_resume_file_is_a_usage_error(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="no such file"):
        read_jsonl(tmp_path / "nope.jsonl")


def test_a_session_that_starts_inside_the_margin_is_not_recycled() -> None:
    # A skewed clock (or very short sessions): a new session would look no better, so none is
    # asked for; the server's expiry is then handled as a drop.
    s = live(NOW + 60, expiry_warning_s=0.0)
    assert not [e for e in s.tick(NOW + 1) if isinstance(e, fx.Recycle)]
    out = s.reconnected({"expires_at": NOW + 3700}, NOW + 100)
    assert isinstance(out[-1], fx.Ready)
    assert [e for e in s.tick(NOW + 3600) if isinstance(e, fx.Recycle)]


def test_a_partly_filled_append_is_dropped_with_the_connection() -> None:
    s = ready_session()
    block = b"\x01\x00" * 480  # 20 ms: half an append
    assert s.mic_audio(block, 1.0) == []  # waiting for the second half
    s.suspend(1.1)
    s.reconnected({}, 2.0)
    assert s.mic_audio(b"\x02\x00" * 480, 2.1) == []
    (append,) = sends(s.mic_audio(b"\x03\x00" * 480, 2.2))
    audio = base64.b64decode(append["audio"])
    assert audio == b"\x02\x00" * 480 + b"\x03\x00" * 480  # nothing captured before the drop
