"""Remote MCP servers, emulated: the service's side of ``type: "mcp"`` tools, with scripted servers.

The real service, given an MCP tool in ``session.update``, connects to the server, lists its
tools and calls them for the model. The local server contacts nothing: every server offers
the scripted tools of :data:`TOOLS` (``search``, ``fetch``, and ``fail``, which always fails),
narrowed by ``allowed_tools``; a server whose host starts with ``fail`` cannot be reached, so
listing its tools fails. What goes on the wire is the service's (GA) sequence:

* after ``session.updated``, for each server not listed yet: an ``mcp_list_tools`` item
  (``conversation.item.added``), ``mcp_list_tools.in_progress``, then ``.completed`` (the
  item done with its tools) or ``.failed``;
* when the user's words name a listed tool (``docs.search voices``, ``docs search voices``), the
  response is an ``mcp_call`` item (arguments deltas, ``response.mcp_call.in_progress``, then
  ``.completed`` with its output or ``.failed`` with its error) and a spoken message saying
  what it returned; with ``require_approval`` ``"always"`` (the default) the response is an
  ``mcp_approval_request`` item only, and the call (or, declined, a message saying so) comes in
  the response the client asks for after its ``mcp_approval_response`` item.

Not emulated: real MCP traffic and its errors (HTTP status, protocol errors), ``authorization``
tokens, tool filters given as objects, ``tool_choice`` naming an MCP tool, and listing again
after a server's settings change.
"""

from __future__ import annotations

import json
import re
from typing import Any
from urllib.parse import urlsplit

from voicechat.server.brain import Reply, Turn, example_arguments
from voicechat.server.items import Item
from voicechat.server.state import SessionBase
from voicechat.server.stream import PlannedOutput

TOOLS: dict[str, dict[str, Any]] = {
    "search": {"description": "Search the server's documents.",
               "input_schema": {"type": "object", "properties": {"query": {"type": "string"}}, "required": ["query"]}},
    "fetch": {"description": "Fetch one document by its URL.",
              "input_schema": {"type": "object", "properties": {"url": {"type": "string"}}, "required": ["url"]}},
    "fail": {"description": "Always fails (for tests).", "input_schema": {"type": "object", "properties": {}}},
}


def listed_tools(server: dict[str, Any]) -> list[dict[str, Any]] | None:
    """The tools a server offers (its ``allowed_tools`` only), or None when it cannot be reached."""
    host = urlsplit(str(server.get("server_url") or "")).hostname or ""
    if host.startswith("fail"):
        return None
    allowed = server.get("allowed_tools")
    names = [n for n in TOOLS if not isinstance(allowed, list) or n in allowed]
    return [{"name": n, **TOOLS[n]} for n in names]


def call_result(name: str, arguments: str) -> tuple[str | None, dict[str, Any] | None]:
    """(output, error) of a scripted tool called with ``arguments``."""
    try:
        args = json.loads(arguments or "{}")
    except json.JSONDecodeError:
        args = {}
    if name == "search":
        query = str(args.get("query", ""))
        return f"3 results for {query!r}: {query} overview, {query} guide, {query} FAQ", None
    if name == "fetch":
        return f"The page at {args.get('url', '')} says hello.", None
    return None, {"type": "tool_execution_error", "message": f"the {name} tool failed on purpose"}


def needs_approval(server: dict[str, Any], name: str) -> bool:
    """``require_approval``: "always" (the default), "never", or a filter (only "never" tools pass)."""
    rule = server.get("require_approval", "always")
    if rule == "never":
        return False
    if isinstance(rule, dict):
        never = rule.get("never") or {}
        return name not in (never.get("tool_names") or [])
    return True


class McpMixin(SessionBase):
    """The MCP part of a ``RealtimeSession``: listing after ``session.update``, calls in responses."""

    def list_mcp_tools(self) -> None:
        """List the tools of every MCP server the session declares and has not listed yet."""
        for server in self.config.get("tools", []):
            label = server.get("server_label")
            if server.get("type") != "mcp" or label in self.mcp_listed or label is None:
                continue
            item = Item(self.ids.make("mcpl"), "mcp_list_tools", fields={"server_label": label, "tools": []})
            previous = self.conversation.insert(item)
            self.emit({"type": "conversation.item.added", "previous_item_id": previous, "item": item.wire()})
            self.emit({"type": "mcp_list_tools.in_progress", "item_id": item.id})
            tools = listed_tools(server)
            if tools is None:
                self.emit({"type": "mcp_list_tools.failed", "item_id": item.id})
                continue
            self.mcp_listed[label] = [t["name"] for t in tools]
            item.fields["tools"] = tools
            self.emit({"type": "mcp_list_tools.completed", "item_id": item.id})
            self.emit({"type": "conversation.item.done", "previous_item_id": previous, "item": item.wire()})

    def plan_mcp(self, turn: Turn, modality: str) -> list[PlannedOutput] | None:
        """This response's outputs when it is about an MCP tool (None: the brain answers)."""
        if not self.mcp_listed:
            return None
        answered = self._approval_answered()
        if answered is not None:
            request, approve = answered
            if not approve:
                name = f"{request.fields['server_label']}.{request.name}"
                return self._plan_outputs(Reply(f"All right, I did not call {name}."), modality)
            return self._call(request.fields["server_label"], request.name or "", request.arguments or "{}",
                              modality, request.id)
        said = turn.text or turn.transcript
        mention = self._mentioned(said) if said and turn.function_output is None else None
        if mention is None:
            return None
        server, name, rest = mention
        arguments = json.dumps(example_arguments(TOOLS[name]["input_schema"], rest))
        if needs_approval(server, name):
            item = Item(self.ids.make("mcpr"), "mcp_approval_request", name=name, arguments=arguments,
                        fields={"server_label": server["server_label"]})
            return [PlannedOutput("mcp_approval_request", item)]
        return self._call(server["server_label"], name, arguments, modality, None)

    def _call(self, label: str, name: str, arguments: str, modality: str, approval: str | None) -> list[PlannedOutput]:
        output, error = call_result(name, arguments)
        fields: dict[str, Any] = {"server_label": label}
        if approval is not None:
            fields["approval_request_id"] = approval
        item = Item(self.ids.make("mcp"), "mcp_call", name=name, arguments="", fields=fields)
        call = PlannedOutput("mcp_call", item, arguments=arguments,
                             mcp_result={"output": output} if error is None else {"error": error})
        said = f"The {label}.{name} tool returned: {output}" if error is None else \
            f"The {label}.{name} tool failed: {error['message']}"
        return [call, *self._plan_outputs(Reply(said), modality)]

    def _approval_answered(self) -> tuple[Item, bool] | None:
        """The approval request the newest item answers, and the answer (once per answer)."""
        items = self.conversation.items()
        newest = items[-1] if items else None
        if newest is None or newest.type != "mcp_approval_response" or newest.id in self.mcp_answered:
            return None
        self.mcp_answered.add(newest.id)
        request = self.conversation.get(str(newest.fields.get("approval_request_id")))
        return (request, bool(newest.fields.get("approve"))) if request is not None else None

    def _mentioned(self, said: str) -> tuple[dict[str, Any], str, str] | None:
        """The server, tool and the rest of the words of the first listed tool ``said`` names."""
        for server in self.config.get("tools", []):
            label = server.get("server_label")
            for name in self.mcp_listed.get(label, []) if server.get("type") == "mcp" else []:
                found = re.search(rf"\b{re.escape(label)}[.\s]+{re.escape(name)}\b[\s:,]*(.*)", said, re.I)
                if found:
                    return server, name, found.group(1).strip()
        return None

    def _plan_outputs(self, reply: Reply, modality: str) -> list[PlannedOutput]:
        raise NotImplementedError  # ResponsesMixin's, ahead of this one in RealtimeSession

