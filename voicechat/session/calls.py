"""Function calls: each one run once and answered once, then one follow-up reply per response.

A response may make several calls. Each is run (``RunTool``) when its arguments are done, and
its output sent when the tool returns; once the response itself is done and every call of it is
answered, one ``response.create`` asks the model to go on — unless the user interrupted that
response (or ``/interrupt`` said not to go on). A call whose arguments arrived after the user
talked over its response may be cut short, so it is answered at once with a "not run" output
instead of being run: every call in the conversation gets an answer. Where a call shows in the
transcript is the transcript's business; this part is handed the two callables it needs.

A server cannot make voicechat run tools without end: at most `MAX_CALLS_PER_RESPONSE` calls of
one response are run (the rest are answered at once, "not run", said once per response), and at
most `MAX_FOLLOW_UPS` follow-ups in a row are asked for without the user saying something in
between; then the results are sent and the model is not asked to go on (said once).
"""

from __future__ import annotations

import json
from collections import deque
from collections.abc import Callable, Container
from dataclasses import dataclass, field

from voicechat import effects as fx
from voicechat.protocol import client as cmd
from voicechat.protocol import events as ev

MAX_REMEMBERED = 256  # answered call ids kept for late events
MAX_CALLS_PER_RESPONSE = 32  # calls of one response that are run; models make a handful
MAX_FOLLOW_UPS = 10  # automatic follow-ups in a row, with no user turn between them
NOT_RUN = json.dumps({"error": "not run: the user interrupted the call"})
TOO_MANY = json.dumps({"error": f"not run: more than {MAX_CALLS_PER_RESPONSE} function calls in one response"})


@dataclass
class _Call:
    """One function call the model made, from its arguments until its output is sent."""

    call_id: str
    response_id: str
    item_id: str


@dataclass
class _CallGroup:
    """The calls of one response: one ``response.create`` once it is done and all have outputs."""

    calls: list[str] = field(default_factory=list)
    run: int = 0  # how many of them were run (the rest: answered "not run", too many)
    done: bool = False  # its response.done has arrived
    follow_up: bool = True  # ask the model to go on with the results (not after an interruption)


class Calls:
    """Calls waiting for their output, grouped by the response that made them."""

    def __init__(
        self,
        next_id: Callable[[], str],
        show: Callable[[ev.Item, str, fx.ToolCall, float], None],
        answered: Callable[[str, str, float], None],
        request_response: Callable[[], list[fx.Effect]],
        ready: Callable[[], bool],
        closed: Callable[[], bool],
    ) -> None:
        self._next_id = next_id
        self._ready = ready  # a follow-up is asked for only on a configured connection
        self._closed = closed  # after the conversation ends, no call is run or answered
        self._show = show  # place the call's item in the transcript (item, response id, call, now)
        self._answered = answered  # its output is known (item id, output, now)
        self._request_response = request_response
        self._calls: dict[str, _Call] = {}  # function calls whose output is not sent yet
        self._groups: dict[str, _CallGroup] = {}  # by response id, until its follow-up
        self._finished: deque[str] = deque(maxlen=MAX_REMEMBERED)
        self._follow_ups = 0  # asked for in a row since the user last said something

    def user_turn(self) -> None:
        """The user said or typed something: the model may go on with tools again."""
        self._follow_ups = 0

    def reset(self) -> None:
        """A new server session: the old one's calls can no longer be answered."""
        self._calls.clear()
        self._groups.clear()

    @property
    def running(self) -> bool:
        """Some call has no output yet."""
        return bool(self._calls)

    @property
    def pending(self) -> bool:
        """Some response's calls still wait for their follow-up."""
        return bool(self._groups)

    def knows(self, call_id: str) -> bool:
        return call_id in self._calls

    def new(self, e: ev.FunctionCallArgumentsDone | ev.Item, response_id: str, complete: bool,
            now: float) -> list[fx.Effect]:
        """A call the model finished writing: run it, or answer at once when it was cut off."""
        call_id = e.call_id or ""
        item_id = e.item_id if isinstance(e, ev.FunctionCallArgumentsDone) else e.id
        call = fx.ToolCall(e.name or "", e.arguments or "")
        if call_id in self._calls or call_id in self._finished or self._closed():
            return []
        self._calls[call_id] = _Call(call_id, response_id, item_id)
        group = self._groups.setdefault(response_id, _CallGroup())
        group.calls.append(call_id)
        item = ev.Item(item_id, "function_call", name=call.name, call_id=call_id, arguments=call.arguments)
        self._show(item, response_id, call, now)
        if not complete:
            return self.deliver(call_id, NOT_RUN, now)
        if group.run >= MAX_CALLS_PER_RESPONSE:
            out: list[fx.Effect] = []
            if len(group.calls) == MAX_CALLS_PER_RESPONSE + 1:
                out.append(fx.Notice("warning", f"the model made more than {MAX_CALLS_PER_RESPONSE} function calls "
                                                "in one response; the rest are not run"))
            return out + self.deliver(call_id, TOO_MANY, now)
        group.run += 1
        return [fx.RunTool(call_id, call.name, call.arguments, item_id, response_id)]

    def deliver(self, call_id: str, output: str, now: float) -> list[fx.Effect]:
        """Send a call's output; then the follow-up reply, if its response is all answered."""
        call = self._calls.pop(call_id)
        self._finished.append(call_id)
        self._answered(call.item_id, output, now)
        out: list[fx.Effect] = [fx.Send(cmd.function_call_output(call_id, output, event_id=self._next_id()))]
        return out + self._follow_up(call.response_id)

    def response_done(self, r: ev.Response, interrupted: Container[str], now: float) -> list[fx.Effect]:
        """The response that made calls is done: the reply to their outputs may now be asked for."""
        out: list[fx.Effect] = []
        cut_off = r.id in interrupted or r.status in ("cancelled", "failed")
        for item in r.output:  # calls a server announced only here
            if item.type == "function_call" and item.call_id:
                complete = item.status == "completed" and not cut_off
                out += self.new(item, r.id, complete, now)
        group = self._groups.get(r.id)
        if group is None:
            return out
        group.done = True
        group.follow_up = group.follow_up and not cut_off
        return out + self._follow_up(r.id)

    def stop_follow_ups(self) -> None:
        """The user asked the assistant to stop: do not go on about the calls in flight."""
        for group in self._groups.values():
            group.follow_up = False

    def _follow_up(self, response_id: str) -> list[fx.Effect]:
        group = self._groups.get(response_id)
        if group is None or not group.done or any(c in self._calls for c in group.calls):
            return []
        del self._groups[response_id]
        if not (group.follow_up and self._ready()):
            return []
        self._follow_ups += 1
        if self._follow_ups > MAX_FOLLOW_UPS:
            if self._follow_ups == MAX_FOLLOW_UPS + 1:
                return [fx.Notice("warning", f"the model called tools {MAX_FOLLOW_UPS} times in a row without you "
                                             "saying anything; it is not asked to go on (say something to go on)")]
            return []
        return self._request_response()
