"""Responses: exactly one active at a time, and at most one ``response.create`` in flight.

A reply asked for while another response is active (or while our create is unanswered) is
remembered (``want``) and asked for when that one is done. A create the server refuses is
forgotten, so the next turn is free to ask again instead of waiting forever. The usage every
``response.done`` reports is summed here, once, for the whole conversation: the panel, ``/cost``
and the spending limits all read this sum.
"""

from __future__ import annotations

from collections.abc import Callable

from voicechat import effects as fx
from voicechat.protocol import client as cmd
from voicechat.protocol import events as ev


class Responses:
    """The active response, a pending or wanted ``response.create``, and the usage so far."""

    def __init__(self, next_id: Callable[[], str]) -> None:
        self._next_id = next_id
        self.active: str | None = None
        self.create_pending = False
        self.create_event_id: str | None = None
        self.want = False
        self.usage = ev.Usage()  # of the whole conversation: outlives connections

    def reset(self) -> None:
        """A new server session: nothing is active, pending or wanted in it."""
        self.active = None
        self.create_pending = False
        self.create_event_id = None
        self.want = False

    @property
    def in_flight(self) -> bool:
        """A response is active, asked for, or wanted."""
        return self.active is not None or self.create_pending or self.want

    def request(self) -> list[fx.Effect]:
        """Ask for a reply now, or as soon as the active response is done."""
        if self.active or self.create_pending:
            self.want = True
            return []
        return self._create()

    def _create(self) -> list[fx.Effect]:
        self.want = False
        self.create_pending = True
        self.create_event_id = self._next_id()
        return [fx.Send(cmd.response_create(event_id=self.create_event_id))]

    def created(self, response_id: str) -> None:
        self.active = response_id
        self.create_pending = False

    def done(self, r: ev.Response) -> list[fx.Effect]:
        """``response.done``: count its usage; if it was the active one, end its audio and ask
        for the reply that was waiting, if any."""
        if r.usage is not None:
            self.usage = self.usage + r.usage
        out: list[fx.Effect] = []
        if r.status == "failed":
            out.append(fx.Notice("error", f"the response failed: {r.error_message or 'no reason given'}"))
        if self.active in (r.id, None):
            self.active = None
            out.append(fx.AudioEnd(r.id))
            if self.want and not self.create_pending:  # one create in flight at a time
                out.extend(self._create())
        return out

    def busy_elsewhere(self, event_id: str | None) -> None:
        """``conversation_already_has_active_response``: if it was our create, ask again later.

        An error naming none of our events while none is pending is not about us.
        """
        if self.create_pending or (event_id or "").startswith("vc_"):
            self.create_pending = False
            self.want = True

    def refused(self, event_id: str | None) -> None:
        """An error naming our pending create: no response is coming for it."""
        if self.create_pending and event_id and event_id == self.create_event_id:
            self.create_pending = False
            self.want = False
