"""Remote MCP servers: the service calls them for the model; the session shows it and asks the user.

voicechat runs nothing here. The service lists each declared server's tools (an
``mcp_list_tools`` item and its ``mcp_list_tools.*`` events), calls them (``mcp_call`` items with
arguments deltas and ``response.mcp_call.*`` events) and, for a server with
``require_approval = "always"``, first asks (an ``mcp_approval_request`` item). This part says
what arrives: the tool list as a notice (listing, then the count and names, or that it failed),
each call as a tool turn of the transcript (``docs.search({…}) -> output``, a failure with its
error as the result, as a function call's error is), and each approval request as an
``AskApproval`` effect, whose answer (`answer`) becomes an ``mcp_approval_response`` item and a
``response.create``, so the model goes on with the call or without it. An unanswered request of a
server session that is gone is forgotten: its answer would name nothing in the new one.
"""

from __future__ import annotations

import json
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

from voicechat import effects as fx
from voicechat.protocol import client as cmd
from voicechat.protocol import events as ev
from voicechat.session.entries import finish
from voicechat.session.transcript import Transcript

MAX_REMEMBERED = 256  # item ids kept for events that come late (approval requests asked, lists said)
NAMES_SHOWN = 5  # tool names listed in the notice, then "…"


@dataclass
class _List:
    """One server's tool list, from its item to the notice with its count."""

    label: str
    tools: tuple[str, ...] | None = None  # known once its item is done
    completed: bool = False
    said: bool = False


@dataclass
class _Call:
    """One MCP call shown in the transcript, until its result is known."""

    label: str
    name: str
    arguments: str = ""
    failed: bool = False  # its response.mcp_call.failed came (the item done says why)


class Mcp:
    """Tool lists, calls and approval requests of the session's MCP servers."""

    def __init__(self, next_id: Callable[[], str], transcript: Transcript,
                 request_response: Callable[[], list[fx.Effect]], closed: Callable[[], bool]) -> None:
        self._next_id = next_id
        self._transcript = transcript
        self._request_response = request_response
        self._closed = closed
        self._lists: dict[str, _List] = {}
        self._calls: dict[str, _Call] = {}
        self._waiting: dict[str, ev.Item] = {}  # approval requests asked and not answered yet
        self._seen: deque[str] = deque(maxlen=MAX_REMEMBERED)  # approval requests already asked
        self._answered: deque[str] = deque(maxlen=MAX_REMEMBERED)  # calls whose result is written
        self._answers = 0

    def reset(self) -> None:
        """A new server session: its lists, calls and questions are not the old one's."""
        self._lists.clear()
        self._calls.clear()
        self._waiting.clear()

    @property
    def pending(self) -> bool:
        """An approval request waits for the user's answer."""
        return bool(self._waiting)

    # ---- items ------------------------------------------------------------------------------

    def item(self, item: ev.Item, response_id: str | None, now: float, *, done: bool) -> list[fx.Effect]:
        """An MCP item added or done (in the conversation or as a response's output)."""
        if item.type == "mcp_list_tools":
            return self._list_item(item, done)
        if item.type == "mcp_call":
            self._call_item(item, response_id, now, done=done)
        elif item.type == "mcp_approval_request":
            return self._approval_request(item)
        return []

    def _list_item(self, item: ev.Item, done: bool) -> list[fx.Effect]:
        listing = self._lists.setdefault(item.id, _List(item.server_label or "mcp"))
        if done:
            listing.tools = item.tools
        return self._say_list(listing)

    def _call_item(self, item: ev.Item, response_id: str | None, now: float, *, done: bool) -> None:
        call = self._calls.get(item.id)
        if call is None:
            if item.id in self._answered or (response_id is None and not done):
                return  # its result is in (a late item done), or shown once a response owns it
            call = self._calls[item.id] = _Call(item.server_label or "mcp", item.name or "tool")
            self._show(item.id, call, response_id, now)
        if item.arguments:
            self._set_arguments(item.id, item.arguments, now)
        if done and (item.output is not None or item.error is not None or call.failed):
            self._answer(item.id, item.output, item.error or ("the MCP call failed" if call.failed else None), now)

    def _approval_request(self, item: ev.Item) -> list[fx.Effect]:
        if item.id in self._seen or self._closed() or not item.name:
            return []
        self._seen.append(item.id)
        self._waiting[item.id] = item
        return [fx.AskApproval(item.id, item.server_label or "mcp", item.name, item.arguments or "")]

    # ---- events -----------------------------------------------------------------------------

    def list_tools(self, e: ev.McpListTools) -> list[fx.Effect]:
        """``mcp_list_tools.in_progress`` / ``.completed`` / ``.failed``."""
        listing = self._lists.setdefault(e.item_id, _List("mcp"))
        if e.status == "in_progress":
            return [fx.Notice("info", f"mcp {listing.label}: listing tools…")]
        if e.status == "failed":
            listing.said = True
            return [fx.Notice("error", f"mcp {listing.label}: could not list the tools; the model cannot use "
                                       "this server")]
        listing.completed = True
        return self._say_list(listing)

    def _say_list(self, listing: _List) -> list[fx.Effect]:
        if listing.said or not listing.completed or listing.tools is None:
            return []
        listing.said = True
        names = ", ".join(listing.tools[:NAMES_SHOWN]) + (", …" if len(listing.tools) > NAMES_SHOWN else "")
        count = f"{len(listing.tools)} tool{'' if len(listing.tools) == 1 else 's'}"
        return [fx.Notice("info", f"mcp {listing.label}: {count}" + (f" ({names})" if names else ""))]

    def arguments(self, e: ev.McpCallArgumentsDelta | ev.McpCallArgumentsDone, now: float) -> list[fx.Effect]:
        call = self._calls.get(e.item_id)
        if call is None:
            return []
        text = call.arguments + e.delta if isinstance(e, ev.McpCallArgumentsDelta) else e.arguments
        self._set_arguments(e.item_id, text, now)
        return []

    def call_failed(self, e: ev.McpCall, now: float) -> list[fx.Effect]:
        """``response.mcp_call.failed``: the item done that follows says why (if it does not, this does)."""
        call = self._calls.get(e.item_id)
        if e.status == "failed" and call is not None:
            call.failed = True
        return []

    def response_done(self, r: ev.Response, now: float) -> list[fx.Effect]:
        """A response is done: every MCP call of it has its result now, or never will."""
        out: list[fx.Effect] = []
        for item in r.output:
            if item.type == "mcp_call" and item.id in self._calls:
                self._answer(item.id, item.output, item.error or ("no result" if item.output is None else None), now)
            elif item.type == "mcp_approval_request":
                out += self._approval_request(item)  # a server that announced it only here
        return out

    # ---- the user's answer ------------------------------------------------------------------

    def answer(self, request_id: str, approve: bool) -> list[fx.Effect]:
        """The user allowed or declined an approval request: tell the server, and let the model go on."""
        if self._waiting.pop(request_id, None) is None or self._closed():
            return []  # asked in a server session that is gone, or answered already
        self._answers += 1
        reply = cmd.mcp_approval_response(f"vc_mcpr_{self._answers}", request_id, approve,
                                          reason=None if approve else "the user declined", event_id=self._next_id())
        return [fx.Send(reply), *self._request_response()]

    # ---- the transcript ---------------------------------------------------------------------

    def _show(self, item_id: str, call: _Call, response_id: str | None, now: float) -> None:
        shown = ev.Item(item_id, "function_call", name=call.name)
        tool_call = fx.ToolCall(f"{call.label}.{call.name}", call.arguments, server=call.label)
        if response_id is not None:
            self._transcript.show_call(shown, response_id, tool_call, now)
            return
        entry = self._transcript.entry_for(shown, None, now)
        if entry is not None:
            entry.call, entry.text = tool_call, tool_call.text

    def _set_arguments(self, item_id: str, arguments: str, now: float) -> None:
        call = self._calls[item_id]
        call.arguments = arguments
        entry = self._transcript.get(item_id)
        if entry is not None and entry.result is None:
            entry.call = fx.ToolCall(f"{call.label}.{call.name}", arguments, server=call.label)
            entry.text = entry.call.text

    def _answer(self, item_id: str, output: str | None, error: str | None, now: float) -> None:
        if self._calls.pop(item_id, None) is None:
            return
        self._answered.append(item_id)
        entry = self._transcript.get(item_id)
        if entry is None or entry.final:
            return
        if error is not None:
            entry.result = json.dumps({"error": error}, ensure_ascii=False)  # as a function call's error
        else:
            entry.result = output or ""
        finish(entry, now, note="failed" if error is not None else None)
