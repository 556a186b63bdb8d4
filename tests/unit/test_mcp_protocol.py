"""MCP on the wire: every MCP server event and item the SDK's models accept parses into its typed
event, and the approval answer voicechat sends validates against the SDK's client-event model."""

from __future__ import annotations

import pytest
from pydantic import TypeAdapter

from voicechat.protocol import client, codec
from voicechat.protocol import events as ev

openai_rt = pytest.importorskip("openai.types.realtime")
CLIENT_EVENT = TypeAdapter(openai_rt.RealtimeClientEvent)
SERVER_EVENT = TypeAdapter(openai_rt.RealtimeServerEvent)

LIST_ITEM = {"id": "mcpl_1", "type": "mcp_list_tools", "server_label": "docs",
             "tools": [{"name": "search", "input_schema": {"type": "object"}, "description": "Search the docs."},
                       {"name": "fetch", "input_schema": {"type": "object"}}]}
CALL_ITEM = {"id": "mcp_1", "type": "mcp_call", "server_label": "docs", "name": "search",
             "arguments": '{"q":"voices"}', "output": "3 pages found", "approval_request_id": "mcpr_1"}
APPROVAL_ITEM = {"id": "mcpr_1", "type": "mcp_approval_request", "server_label": "docs", "name": "search",
                 "arguments": '{"q":"voices"}'}


def sdk_checked(event: dict) -> ev.ServerEvent:
    """``event`` validated by the SDK's server-event union, then parsed by voicechat."""
    model = SERVER_EVENT.validate_python(event)
    assert model.type == event["type"]
    return codec.parse_server(event)


@pytest.mark.parametrize("status", ["in_progress", "completed", "failed"])
def test_list_tools_progress(status: str) -> None:
    parsed = sdk_checked({"type": f"mcp_list_tools.{status}", "event_id": "e1", "item_id": "mcpl_1"})
    assert parsed == ev.McpListTools("e1", "mcpl_1", status)


@pytest.mark.parametrize("status", ["in_progress", "completed", "failed"])
def test_call_progress(status: str) -> None:
    parsed = sdk_checked({"type": f"response.mcp_call.{status}", "event_id": "e2", "item_id": "mcp_1",
                          "output_index": 1})
    assert parsed == ev.McpCall("e2", "mcp_1", 1, status)


def test_call_arguments_delta_and_done() -> None:
    delta = sdk_checked({"type": "response.mcp_call_arguments.delta", "event_id": "e3", "response_id": "resp_1",
                         "item_id": "mcp_1", "output_index": 0, "delta": '{"q":', "obfuscation": "ab"})
    assert delta == ev.McpCallArgumentsDelta("e3", "resp_1", "mcp_1", 0, '{"q":')
    done = sdk_checked({"type": "response.mcp_call_arguments.done", "event_id": "e4", "response_id": "resp_1",
                        "item_id": "mcp_1", "output_index": 0, "arguments": '{"q":"voices"}'})
    assert done == ev.McpCallArgumentsDone("e4", "resp_1", "mcp_1", 0, '{"q":"voices"}')


def test_items_keep_what_the_session_shows() -> None:
    listed = sdk_checked({"type": "conversation.item.done", "event_id": "e5", "previous_item_id": None,
                          "item": LIST_ITEM})
    assert isinstance(listed, ev.ItemDone)
    assert listed.item.type == "mcp_list_tools" and listed.item.server_label == "docs"
    assert listed.item.tools == ("search", "fetch")
    call = sdk_checked({"type": "response.output_item.done", "event_id": "e6", "response_id": "resp_1",
                        "output_index": 0, "item": CALL_ITEM})
    assert isinstance(call, ev.OutputItemDone)
    assert (call.item.name, call.item.arguments, call.item.output) == ("search", '{"q":"voices"}', "3 pages found")
    assert call.item.approval_request_id == "mcpr_1" and call.item.error is None
    asked = sdk_checked({"type": "conversation.item.added", "event_id": "e7", "previous_item_id": "x",
                         "item": APPROVAL_ITEM})
    assert asked.item.type == "mcp_approval_request" and asked.item.server_label == "docs"  # type: ignore[attr-defined]


@pytest.mark.parametrize(("error", "text"), [
    ({"type": "http_error", "code": 401, "message": "unauthorized"}, "HTTP 401: unauthorized"),
    ({"type": "protocol_error", "code": -32602, "message": "bad params"}, "MCP protocol error -32602: bad params"),
    ({"type": "tool_execution_error", "message": "the index is down"}, "the index is down"),
])
def test_a_failed_call_says_why_on_one_line(error: dict, text: str) -> None:
    item = {**CALL_ITEM, "output": None, "error": error}
    parsed = sdk_checked({"type": "conversation.item.done", "event_id": "e8", "previous_item_id": None, "item": item})
    assert parsed.item.error == text  # type: ignore[attr-defined]


@pytest.mark.parametrize("approve", [True, False])
def test_the_approval_answer_validates_as_a_client_event(approve: bool) -> None:
    event = client.mcp_approval_response("vc_mcp_1", "mcpr_1", approve, event_id="e9")
    model = CLIENT_EVENT.validate_python(event)
    assert model.item.type == "mcp_approval_response" and model.item.approve is approve
    assert model.item.approval_request_id == "mcpr_1"


def test_every_mcp_type_is_known() -> None:
    sdk_types = {"mcp_list_tools.in_progress", "mcp_list_tools.completed", "mcp_list_tools.failed",
                 "response.mcp_call_arguments.delta", "response.mcp_call_arguments.done",
                 "response.mcp_call.in_progress", "response.mcp_call.completed", "response.mcp_call.failed"}
    assert sdk_types <= codec.KNOWN_SERVER_TYPES


@pytest.mark.parametrize("etype", ["mcp_list_tools.completed", "response.mcp_call.failed"])
def test_a_missing_item_id_is_malformed_naming_the_type(etype: str) -> None:
    with pytest.raises(codec.MalformedEvent, match=etype):
        codec.parse_server({"type": etype, "event_id": "e"})
