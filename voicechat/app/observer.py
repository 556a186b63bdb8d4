"""A hook for watching a conversation from outside (the bench), instead of patching its internals.

An `Observer` passed to ``talk(..., observer=...)`` is told when the conversation starts (and
gets it, to read its public parts: the session, the player, the echo path), every server event
as it is received, every effect as it is carried out, each client event as it is queued (and
whether the outbox took it) and once the socket took it, and what a flush found played. Every
method is called on the event loop, must be quick, and must not change what it is shown. The
base class does nothing, so an observer overrides only what it needs.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from voicechat import effects as fx
from voicechat.protocol import codec
from voicechat.protocol import events as ev


class Observer:
    """Does nothing; override what you want to watch."""

    def started(self, conversation: Any) -> None:
        """The conversation is built (before any task runs)."""

    def received(self, event: ev.ServerEvent | codec.MalformedEvent) -> None:
        """A server event (or a frame that is none) as the conversation receives it."""

    def effect(self, effect: fx.Effect) -> None:
        """An effect of the session, just before it is carried out."""

    def queued(self, send: fx.Send, accepted: bool) -> None:
        """A client event put in the outbox (``accepted`` False: an append dropped for the backlog)."""

    def sent(self, send: fx.Send) -> None:
        """A client event the socket has taken (``Connection.send`` returned)."""

    def flushed(self, item_ids: tuple[str, ...], played: Mapping[str, int]) -> None:
        """A flush of the speaker, and the wire samples each item had played."""


QUIET = Observer()
"""The observer of a conversation nobody watches."""
