"""MCP servers in the session core (lists of events in, effects out): the tool list as notices with
the count, each call as a tool turn with its output or its error, approval requests asked once
and answered with an mcp_approval_response item and a response.create."""

from __future__ import annotations

import json

from tests.helpers.session import ready_session
from voicechat import effects as fx
from voicechat.protocol import SessionConfig
from voicechat.protocol import events as ev
from voicechat.session import Session

CONFIG = SessionConfig(transcribe_model=None)


def ready() -> Session:
    return ready_session(CONFIG)


def notices(effects: list) -> list[tuple[str, str]]:
    return [(e.level, e.message) for e in effects if isinstance(e, fx.Notice)]


def sends(effects: list) -> list[dict]:
    return [e.event for e in effects if isinstance(e, fx.Send)]


def turns(effects: list) -> list[fx.Turn]:
    return [e.turn for e in effects if isinstance(e, fx.TurnFinished)]


def listing(s: Session, tools: tuple[str, ...], status: str = "completed") -> list:
    """A server's tool list the GA way: item added, in progress, completed or failed, item done."""
    added = ev.Item("mcpl_1", "mcp_list_tools", server_label="docs")
    out = s.handle(ev.ItemAdded("e", added, None), 1.0)
    out += s.handle(ev.McpListTools("e", "mcpl_1", "in_progress"), 1.0)
    out += s.handle(ev.McpListTools("e", "mcpl_1", status), 1.1)
    out += s.handle(ev.ItemDone("e", ev.Item("mcpl_1", "mcp_list_tools", server_label="docs", tools=tools), None), 1.2)
    return out


def mcp_call(s: Session, rid: str, *, output: str | None = "3 pages", error: str | None = None, t: float = 2.0) -> list:
    """An MCP call streamed in response ``rid``: item added, arguments deltas, progress, item done."""
    item = ev.Item("mcp_1", "mcp_call", status="in_progress", server_label="docs", name="search", arguments="")
    out = s.handle(ev.ResponseCreated("e", ev.Response(rid, "in_progress")), t)
    out += s.handle(ev.OutputItemAdded("e", rid, 0, item), t)
    out += s.handle(ev.ItemAdded("e", item, None), t)
    for piece in ('{"q":', '"voices"}'):
        out += s.handle(ev.McpCallArgumentsDelta("e", rid, "mcp_1", 0, piece), t)
    out += s.handle(ev.McpCallArgumentsDone("e", rid, "mcp_1", 0, '{"q":"voices"}'), t)
    out += s.handle(ev.McpCall("e", "mcp_1", 0, "in_progress"), t)
    out += s.handle(ev.McpCall("e", "mcp_1", 0, "failed" if error else "completed"), t)
    finished = ev.Item("mcp_1", "mcp_call", status="completed", server_label="docs", name="search",
                       arguments='{"q":"voices"}', output=output, error=error)
    out += s.handle(ev.OutputItemDone("e", rid, 0, finished), t)
    out += s.handle(ev.ItemDone("e", finished, None), t)
    out += s.handle(ev.ResponseDone("e", ev.Response(rid, "completed", output=(finished,))), t + 0.5)
    return out


def test_the_tool_list_arriving_is_said_with_its_count() -> None:
    out = listing(ready(), ("search", "fetch"))
    assert notices(out) == [("info", "mcp docs: listing tools…"), ("info", "mcp docs: 2 tools (search, fetch)")]


def test_a_list_whose_item_comes_after_completed_is_said_once_with_the_count() -> None:
    s = ready()
    s.handle(ev.ItemAdded("e", ev.Item("mcpl_1", "mcp_list_tools", server_label="docs"), None), 1.0)
    assert notices(s.handle(ev.McpListTools("e", "mcpl_1", "completed"), 1.0)) == []
    done = ev.ItemDone("e", ev.Item("mcpl_1", "mcp_list_tools", server_label="docs", tools=("a",)), None)
    assert notices(s.handle(done, 1.1)) == [("info", "mcp docs: 1 tool (a)")]
    assert notices(s.handle(done, 1.2)) == []


def test_a_failed_list_is_an_error_notice() -> None:
    out = listing(ready(), (), status="failed")
    assert notices(out)[-1][0] == "error" and "mcp docs: could not list the tools" in notices(out)[-1][1]


def test_a_call_is_a_tool_turn_with_its_output_and_no_client_event() -> None:
    s = ready()
    out = mcp_call(s, "r1")
    (turn,) = turns(out)
    assert (turn.role, turn.kind, turn.text, turn.result) == ("tool", "function_call", 'docs.search({"q":"voices"})',
                                                              "3 pages")
    assert turn.call == fx.ToolCall("docs.search", '{"q":"voices"}', server="docs") and turn.note is None
    assert sends(out) == []  # the service ran it: nothing to send, no follow-up to ask for
    assert not s.busy


def test_a_failed_call_has_its_error_as_the_result_and_is_noted_failed() -> None:
    (turn,) = turns(mcp_call(ready(), "r1", output=None, error="HTTP 401: unauthorized"))
    assert json.loads(turn.result or "") == {"error": "HTTP 401: unauthorized"}
    assert turn.note == "failed"


def test_a_call_is_shown_while_its_arguments_arrive() -> None:
    s = ready()
    item = ev.Item("mcp_1", "mcp_call", status="in_progress", server_label="docs", name="search", arguments="")
    s.handle(ev.ResponseCreated("e", ev.Response("r1", "in_progress")), 1.0)
    s.handle(ev.OutputItemAdded("e", "r1", 0, item), 1.0)
    s.handle(ev.McpCallArgumentsDelta("e", "r1", "mcp_1", 0, '{"q":'), 1.0)
    (live,) = s.transcript()
    assert live.text == 'docs.search({"q":)' and live.result is None


def test_an_approval_request_is_asked_once_and_answered_with_an_item_and_a_response() -> None:
    s = ready()
    request = ev.Item("mcpr_1", "mcp_approval_request", server_label="docs", name="search", arguments='{"q":"x"}')
    s.handle(ev.ResponseCreated("e", ev.Response("r1", "in_progress")), 1.0)
    out = s.handle(ev.OutputItemAdded("e", "r1", 0, request), 1.0)
    assert [e for e in out if isinstance(e, fx.AskApproval)] == [fx.AskApproval("mcpr_1", "docs", "search", '{"q":"x"}')]
    again = s.handle(ev.ItemDone("e", request, None), 1.0)
    again += s.handle(ev.ResponseDone("e", ev.Response("r1", "completed", output=(request,))), 1.1)
    assert not [e for e in again if isinstance(e, fx.AskApproval)]
    assert s.busy  # waiting for the user: no recycle now
    answer = sends(s.mcp_approval("mcpr_1", True, 5.0))
    assert [e["type"] for e in answer] == ["conversation.item.create", "response.create"]
    assert answer[0]["item"] == {"type": "mcp_approval_response", "id": "vc_mcpr_1", "approval_request_id": "mcpr_1",
                                 "approve": True}
    assert s.mcp_approval("mcpr_1", True, 5.1) == []  # one answer per request
    assert not s.busy or s.active_response is None


def test_a_declined_request_says_so_and_the_model_goes_on() -> None:
    s = ready()
    request = ev.Item("mcpr_2", "mcp_approval_request", server_label="docs", name="search", arguments="{}")
    s.handle(ev.ItemDone("e", request, None), 1.0)
    answer = sends(s.mcp_approval("mcpr_2", False, 2.0))
    assert answer[0]["item"]["approve"] is False and answer[0]["item"]["reason"] == "the user declined"
    assert answer[1]["type"] == "response.create"


def test_an_answer_after_the_connection_was_lost_is_not_sent() -> None:
    s = ready()
    s.handle(ev.ItemDone("e", ev.Item("mcpr_3", "mcp_approval_request", server_label="d", name="t", arguments="{}"),
                         None), 1.0)
    s.suspend(2.0)
    assert s.mcp_approval("mcpr_3", True, 3.0) == []


def test_a_call_the_response_ends_without_a_result_is_written_noted() -> None:
    s = ready()
    item = ev.Item("mcp_1", "mcp_call", status="in_progress", server_label="docs", name="search", arguments="{}")
    s.handle(ev.ResponseCreated("e", ev.Response("r1", "in_progress")), 1.0)
    s.handle(ev.OutputItemAdded("e", "r1", 0, item), 1.0)
    out = s.handle(ev.ResponseDone("e", ev.Response("r1", "cancelled", output=(item,))), 2.0)
    (turn,) = turns(out)
    assert json.loads(turn.result or "") == {"error": "no result"} and turn.note == "failed"


# ---- how a call is written and drawn ------------------------------------------------------


def test_the_lines_say_mcp_and_a_failure_is_in_the_error_style() -> None:
    from voicechat.transcript import jsonl_record, line_role, plain_line, turn_from_record
    from voicechat.ui.render import log_line

    (ok,) = turns(mcp_call(ready(), "r1"))
    assert plain_line(ok) == 'mcp: docs.search({"q":"voices"}) -> 3 pages'
    assert line_role(ok) == "mcp"
    (failed,) = turns(mcp_call(ready(), "r1", output=None, error="HTTP 401: unauthorized"))
    assert plain_line(failed) == 'mcp: docs.search({"q":"voices"}) -> {"error": "HTTP 401: unauthorized"}'
    styled = log_line(plain_line(failed), line_role(failed))
    assert styled.plain == plain_line(failed) and {str(span.style) for span in styled.spans} == {"bold red", "red"}
    record = jsonl_record(failed)
    assert record["role"] == "tool" and record["kind"] == "function_call" and record["mcp_server"] == "docs"
    back = turn_from_record(record)
    assert back.tool_call == fx.ToolCall("docs.search", '{"q":"voices"}', server="docs")
    assert plain_line(back) == plain_line(failed)


def test_the_panel_labels_a_live_call_mcp() -> None:
    from voicechat.ui.render import _turn_body
    from voicechat.ui.snapshot import TurnView

    s = ready()
    item = ev.Item("mcp_1", "mcp_call", status="in_progress", server_label="docs", name="search", arguments="")
    s.handle(ev.ResponseCreated("e", ev.Response("r1", "in_progress")), 1.0)
    s.handle(ev.OutputItemAdded("e", "r1", 0, item), 1.0)
    view = TurnView.from_turn(s.transcript()[0], final=False)
    assert view.role == "mcp" and view.tool_name == "docs.search"
    assert _turn_body(view, max_chars=200).plain == "docs.search() …"


def test_a_late_item_done_keeps_the_arguments_of_a_call_waiting_behind_a_user_turn() -> None:
    """The call is answered by its output item; the conversation's item done that follows (while
    the user's spoken turn ahead of it still waits for its transcript) must not reset it."""
    s = Session(SessionConfig(transcribe_model="whisper-1"))
    s.handle(ev.SessionCreated("e", {"id": "sess_1"}), 0.0)
    s.handle(ev.SessionUpdated("e", {"id": "sess_1"}), 0.1)
    user = ev.Item("u1", "message", role="user", content=(ev.ContentPart("input_audio"),))
    s.handle(ev.ItemAdded("e", user, None), 0.5)
    s.handle(ev.ItemDone("e", user, None), 0.6)
    out = mcp_call(s, "r1")
    assert not turns(out)  # held behind the user's turn
    out = s.handle(ev.InputTranscriptCompleted("e", "u1", 0, "docs search voices"), 3.0)
    user_turn, call_turn = turns(out)
    assert user_turn.text == "docs search voices"
    assert call_turn.text == 'docs.search({"q":"voices"})' and call_turn.result == "3 pages"


def test_a_secret_in_a_calls_arguments_is_elided_from_its_line() -> None:
    from voicechat import redact
    from voicechat.transcript import plain_line, scrubbed

    secret = "call-arguments-secret-3f9a1c"
    redact.remember(secret)
    turn = fx.Turn("tool", f'docs.search({{"q": "{secret}"}})', "mcp_1", 0.0, 1.0, kind="function_call",
                   result="ok", call=fx.ToolCall("docs.search", f'{{"q": "{secret}"}}', server="docs"))
    assert secret not in plain_line(scrubbed(turn)) and redact.ELIDED in plain_line(scrubbed(turn))
