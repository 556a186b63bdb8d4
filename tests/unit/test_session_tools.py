"""Function calls in the session core: run on arguments.done, one reply after response.done
and every output, nothing asked for when the user interrupted the calling response."""

from __future__ import annotations

import json

from tests.helpers.session import ready_session
from voicechat import effects as fx
from voicechat.protocol import SessionConfig
from voicechat.protocol import events as ev
from voicechat.session import Activity, Session

CONFIG = SessionConfig(transcribe_model=None)


def ready() -> Session:
    return ready_session(CONFIG)


def types(effects: list) -> list[str]:
    return [e.event["type"] for e in effects if isinstance(e, fx.Send)]


def runs(effects: list) -> list[fx.RunTool]:
    return [e for e in effects if isinstance(e, fx.RunTool)]


def turns(effects: list) -> list[fx.Turn]:
    return [e.turn for e in effects if isinstance(e, fx.TurnFinished)]


def call_item(item_id: str, call_id: str, name: str, arguments: str = "", status: str = "in_progress") -> ev.Item:
    return ev.Item(item_id, "function_call", status=status, name=name, call_id=call_id, arguments=arguments)


def start(s: Session, rid: str, t: float = 1.0) -> list:
    return s.handle(ev.ResponseCreated("e", ev.Response(rid, "in_progress")), t)


def call(s: Session, rid: str, index: int, item_id: str, call_id: str, name: str, arguments: str,
         t: float = 1.0) -> list:
    """A call streamed the GA way: item added, arguments done, item done."""
    out = []
    added = call_item(item_id, call_id, name)
    out += s.handle(ev.OutputItemAdded("e", rid, index, added), t)
    out += s.handle(ev.ItemAdded("e", added, None), t)
    out += s.handle(ev.FunctionCallArgumentsDone("e", rid, item_id, index, call_id, name, arguments), t)
    done = call_item(item_id, call_id, name, arguments, "completed")
    out += s.handle(ev.OutputItemDone("e", rid, index, done), t)
    out += s.handle(ev.ItemDone("e", done, None), t)
    return out


def done(s: Session, rid: str, status: str = "completed", output: tuple[ev.Item, ...] = (), t: float = 2.0) -> list:
    return s.handle(ev.ResponseDone("e", ev.Response(rid, status, output=output)), t)


def test_one_call_runs_on_arguments_done_and_its_output_then_one_reply() -> None:
    s = ready()
    start(s, "r1")
    out = call(s, "r1", 0, "f1", "call_1", "get_current_time", '{"timezone": "UTC"}')
    (run,) = runs(out)
    assert (run.call_id, run.name, run.arguments, run.item_id, run.response_id) == (
        "call_1", "get_current_time", '{"timezone": "UTC"}', "f1", "r1")
    assert types(out) == []
    assert types(done(s, "r1")) == []  # the tool is still running: nothing to reply to yet
    assert s.busy and s.activity is Activity.THINKING
    out = s.tool_result("call_1", '{"datetime": "2025-01-01T12:00:00+00:00"}', 3.0)
    assert types(out) == ["conversation.item.create", "response.create"]
    item = next(e.event for e in out if isinstance(e, fx.Send))["item"]
    assert item == {"type": "function_call_output", "call_id": "call_1",
                    "output": '{"datetime": "2025-01-01T12:00:00+00:00"}'}
    (turn,) = turns(out)  # the call's turn is written with its result
    assert (turn.role, turn.kind, turn.text) == ("tool", "function_call", 'get_current_time({"timezone": "UTC"})')
    assert turn.result == '{"datetime": "2025-01-01T12:00:00+00:00"}'
    assert s.tool_result("call_1", "again", 3.1) == []  # one output per call


def test_two_calls_in_one_response_get_one_response_create_after_both_outputs() -> None:
    s = ready()
    start(s, "r1")
    out = call(s, "r1", 0, "f1", "call_1", "a", "{}") + call(s, "r1", 1, "f2", "call_2", "b", '{"x": 1}')
    assert [r.call_id for r in runs(out)] == ["call_1", "call_2"]
    out = s.tool_result("call_2", "two", 1.5)  # the second finishes first, before response.done
    assert types(out) == ["conversation.item.create"]
    assert types(done(s, "r1")) == []  # one output still missing
    out = s.tool_result("call_1", "one", 2.5)
    assert types(out) == ["conversation.item.create", "response.create"]
    assert [(t.text, t.result) for t in turns(out)] == [("a({})", "one"), ('b({"x": 1})', "two")]


def test_response_create_waits_for_response_done_when_outputs_come_first() -> None:
    s = ready()
    start(s, "r1")
    call(s, "r1", 0, "f1", "call_1", "a", "{}")
    assert types(s.tool_result("call_1", "ok", 1.2)) == ["conversation.item.create"]
    out = done(s, "r1")
    assert types(out) == ["response.create"]
    assert types(s.handle(ev.ResponseCreated("e", ev.Response("r2", "in_progress")), 2.1)) == []


def test_a_call_after_a_spoken_preamble_keeps_conversation_order() -> None:
    s = ready()
    start(s, "r1")
    msg = ev.Item("a1", "message", "assistant", "in_progress")
    s.handle(ev.OutputItemAdded("e", "r1", 0, msg), 1)
    s.handle(ev.AudioTranscriptDelta("e", "r1", "a1", 0, 0, "Let me check."), 1)
    s.handle(ev.AudioDelta("e", "r1", "a1", 0, 0, b"\x00\x00" * 240), 1)
    call(s, "r1", 1, "f1", "call_1", "a", "{}")
    s.handle(ev.AudioDone("e", "r1", "a1", 0, 0), 1)
    out = done(s, "r1", output=(ev.Item("a1", "message", "assistant", "completed"),
                                call_item("f1", "call_1", "a", "{}", "completed")))
    out += s.playback_drained()
    assert [t.role for t in turns(out)] == ["assistant"]  # the call waits for its result
    out = s.tool_result("call_1", "ok", 3)
    assert [t.role for t in turns(out)] == ["tool"] and types(out)[-1] == "response.create"


def test_barge_in_while_the_tool_runs_still_sends_the_output_but_asks_no_reply() -> None:
    s = ready()
    start(s, "r1")
    (run,) = runs(call(s, "r1", 0, "f1", "call_1", "slow", "{}"))
    s.handle(ev.SpeechStarted("e", "u2", 5000), 1.5)  # the user talks over the calling response
    assert types(done(s, "r1", status="cancelled")) == []
    s.handle(ev.SpeechStopped("e", "u2", 6000), 2.5)
    assert s.busy  # the tool still runs
    out = s.tool_result(run.call_id, "late result", 3)
    assert types(out) == ["conversation.item.create"]  # answered, but no response.create
    assert not s.busy


def test_arguments_finished_after_the_user_interrupted_are_not_run() -> None:
    s = ready()
    start(s, "r1")
    added = call_item("f1", "call_1", "delete_files")
    s.handle(ev.OutputItemAdded("e", "r1", 0, added), 1)
    s.say("no wait, stop", 1.2)  # cancels r1 mid-arguments
    out = s.handle(ev.FunctionCallArgumentsDone("e", "r1", "f1", 0, "call_1", "delete_files", '{"pa'), 1.3)
    assert runs(out) == []
    sent = [e.event for e in out if isinstance(e, fx.Send)]
    assert sent[0]["item"]["call_id"] == "call_1" and "interrupted" in json.loads(sent[0]["item"]["output"])["error"]
    out = done(s, "r1", status="cancelled")
    assert types(out) == ["response.create"]  # only the reply to the typed turn
    (tool,) = [t for t in s.transcript() if t.role == "tool"]
    assert tool.result is not None and "interrupted" in tool.result


def test_speech_after_the_calling_response_finished_still_gets_the_follow_up() -> None:
    s = ready()
    start(s, "r1")
    (run,) = runs(call(s, "r1", 0, "f1", "call_1", "slow", "{}"))
    done(s, "r1")
    s.handle(ev.SpeechStarted("e", "u2", 5000), 2.5)  # a new turn while the tool runs
    start(s, "r2", 3.0)  # the server answers that turn
    out = s.tool_result(run.call_id, "result", 3.5)
    assert types(out) == ["conversation.item.create"]  # the reply to it waits for r2
    assert types(done(s, "r2", t=4.0)) == ["response.create"]


def test_interrupt_command_drops_the_follow_up_of_running_tools() -> None:
    s = ready()
    start(s, "r1")
    (run,) = runs(call(s, "r1", 0, "f1", "call_1", "slow", "{}"))
    done(s, "r1")
    s.interrupt(2.5)
    assert types(s.tool_result(run.call_id, "result", 3.0)) == ["conversation.item.create"]


def test_calls_only_in_response_done_are_run_too_and_duplicates_ignored() -> None:
    s = ready()
    start(s, "r1")
    out = done(s, "r1", output=(call_item("f1", "call_1", "a", '{"q": 2}', "completed"),))
    (run,) = runs(out)
    assert run.arguments == '{"q": 2}'
    again = s.handle(ev.FunctionCallArgumentsDone("e", "r1", "f1", 0, "call_1", "a", '{"q": 2}'), 2.1)
    assert runs(again) == []
    assert types(s.tool_result("call_1", "x", 3)) == ["conversation.item.create", "response.create"]


def test_close_writes_a_running_call_without_result() -> None:
    s = ready()
    start(s, "r1")
    call(s, "r1", 0, "f1", "call_1", "slow", "{}")
    (turn,) = turns(s.close(5.0))
    assert turn.role == "tool" and turn.result is None and turn.note and "ended" in turn.note
    assert s.tool_result("call_1", "too late", 6.0) == []
