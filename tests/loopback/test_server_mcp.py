"""The local server's MCP emulation, over a raw WebSocket client: every event it emits validates
strictly against the SDK's server-event models (``RawClient.recv``) and every event sent against
the client-event models; listing (completed, failed, allowed_tools), calls with arguments deltas
(output and failure), approvals (allowed and declined) and a bad approval answer."""

from __future__ import annotations

import json
from typing import Any

from tests.helpers.server import RawClient, manual_session, server_and_client

DOCS = {"type": "mcp", "server_label": "docs", "server_url": "https://mcp.example.com/mcp", "require_approval": "never",
        "headers": {"Authorization": "Bearer server-side-only-token"}}
ASK = {"type": "mcp", "server_label": "ask", "server_url": "https://mcp.example.com/mcp", "allowed_tools": ["search"]}
BROKEN = {"type": "mcp", "server_label": "broken", "server_url": "https://fail.example/mcp"}


def types(events: list[dict[str, Any]]) -> list[str]:
    return [e["type"] for e in events]


async def configure(c: RawClient, *tools: dict[str, Any]) -> list[dict[str, Any]]:
    """session.update with the servers; the events up to the last server's listing."""
    await c.send(manual_session(tools=list(tools), output_modalities=["text"]))
    events = await c.until("session.updated")
    for _ in tools:
        events += await c.until("mcp_list_tools.in_progress")
        nxt = await c.recv()
        events.append(nxt)
        if nxt["type"] == "mcp_list_tools.completed":
            events.append(await c.recv())
    return events


async def ask(c: RawClient, text: str) -> list[dict[str, Any]]:
    await c.send({"type": "conversation.item.create",
                  "item": {"type": "message", "role": "user", "content": [{"type": "input_text", "text": text}]}})
    await c.until("conversation.item.done")
    await c.send({"type": "response.create"})
    return await c.until("response.done")


async def test_listing_completes_with_the_tools_or_fails() -> None:
    async with server_and_client() as (_, c):
        events = await configure(c, DOCS, ASK, BROKEN)
    listing = [e for e in events if e["type"] != "session.updated"]
    assert types(listing) == ["conversation.item.added", "mcp_list_tools.in_progress", "mcp_list_tools.completed",
                              "conversation.item.done"] * 2 + [
        "conversation.item.added", "mcp_list_tools.in_progress", "mcp_list_tools.failed"]
    done = [e["item"] for e in listing if e["type"] == "conversation.item.done"]
    assert [(i["server_label"], [t["name"] for t in i["tools"]]) for i in done] == [
        ("docs", ["search", "fetch", "fail"]), ("ask", ["search"])]
    assert listing[0]["item"]["tools"] == []  # added empty, done with the list


async def test_a_server_is_listed_once_per_session() -> None:
    async with server_and_client() as (_, c):
        await configure(c, DOCS)
        await c.send(manual_session(tools=[DOCS], output_modalities=["text"]))
        await c.until("session.updated")
        await c.quiet()


async def test_a_call_without_approval_streams_its_arguments_then_the_answer() -> None:
    async with server_and_client() as (_, c):
        await configure(c, DOCS)
        events = await ask(c, "please docs.search realtime voices")
    mine = [e["type"] for e in events if e.get("output_index") == 0 or e.get("item_id", "").startswith("mcp_")
            or e.get("item", {}).get("type") == "mcp_call"]
    squashed = [t for i, t in enumerate(mine) if t != "response.mcp_call_arguments.delta"
                or mine[i - 1] != "response.mcp_call_arguments.delta"]
    assert squashed == ["response.output_item.added", "conversation.item.added", "response.mcp_call_arguments.delta",
                        "response.mcp_call.in_progress", "response.mcp_call_arguments.done",
                        "response.mcp_call.completed", "response.output_item.done", "conversation.item.done"]
    call, answer = events[-1]["response"]["output"]
    assert call["type"] == "mcp_call" and call["server_label"] == "docs" and call["name"] == "search"
    assert json.loads(call["arguments"]) == {"query": "realtime voices"}
    assert call["output"].startswith("3 results for 'realtime voices'")
    assert answer["content"][0]["text"].startswith("The docs.search tool returned: 3 results")


async def test_a_failing_tool_fails_with_its_error() -> None:
    async with server_and_client() as (_, c):
        await configure(c, DOCS)
        events = await ask(c, "docs fail")
    assert "response.mcp_call.failed" in types(events)
    call = events[-1]["response"]["output"][0]
    assert call["error"] == {"type": "tool_execution_error", "message": "the fail tool failed on purpose"}
    assert "output" not in call


async def test_approval_asked_then_allowed_runs_the_call_in_the_next_response() -> None:
    async with server_and_client() as (_, c):
        await configure(c, ASK)
        events = await ask(c, "ask.search weather")
        (request,) = events[-1]["response"]["output"]
        assert request["type"] == "mcp_approval_request" and request["name"] == "search"
        assert "response.mcp_call.in_progress" not in types(events)
        await c.send({"type": "conversation.item.create", "item": {
            "type": "mcp_approval_response", "id": "vc_mcpr_1", "approval_request_id": request["id"], "approve": True}})
        added = await c.until("conversation.item.done")
        assert added[-1]["item"] == {"id": "vc_mcpr_1", "type": "mcp_approval_response",
                                     "approval_request_id": request["id"], "approve": True}
        await c.send({"type": "response.create"})
        events = await c.until("response.done")
    call, answer = events[-1]["response"]["output"]
    assert call["type"] == "mcp_call" and call["approval_request_id"] == request["id"]
    assert json.loads(call["arguments"]) == {"query": "weather"}
    assert answer["content"][0]["text"].startswith("The ask.search tool returned")


async def test_approval_declined_is_answered_without_a_call() -> None:
    async with server_and_client() as (_, c):
        await configure(c, ASK)
        events = await ask(c, "ask search weather")
        (request,) = events[-1]["response"]["output"]
        await c.send({"type": "conversation.item.create", "item": {
            "type": "mcp_approval_response", "id": "vc_mcpr_2", "approval_request_id": request["id"], "approve": False,
            "reason": "the user declined"}})
        await c.until("conversation.item.done")
        await c.send({"type": "response.create"})
        events = await c.until("response.done")
    (answer,) = events[-1]["response"]["output"]
    assert answer["content"][0]["text"] == "All right, I did not call ask.search."


async def test_an_answer_to_no_request_is_an_error() -> None:
    async with server_and_client() as (_, c):
        await configure(c, ASK)
        await c.send({"type": "conversation.item.create", "item": {
            "type": "mcp_approval_response", "id": "vc_mcpr_3", "approval_request_id": "mcpr_nope", "approve": True}})
        error = await c.error()
    assert error["param"] == "item.approval_request_id"
