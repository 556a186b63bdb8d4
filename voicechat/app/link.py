"""The connection's life: serve one at a time, replace a dropped one, move to a new session in time.

`Connections` carries the live WebSocket until it ends. A drop (or a close after an error event
that said a new connection may help) is replaced: the conversation is told (`on_lost`: silence
the lost reply, write out what was in flight), new connections are tried with backoff, and the
first one configured is handed over (`on_new`: the session re-seeds the earlier turns). Before
the server's time limit a new session is opened and configured beside the old one (`recycle`)
and taken over only at a quiet moment — the check and the switch happen with no await between
them — and the old socket is closed with 1000 in the background (`retire`). Every connection,
the first one too, must finish its handshake within ``setup_timeout_s``.
"""

from __future__ import annotations

import asyncio
import os
import random
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from voicechat.backoff import DEFAULT as DEFAULT_BACKOFF
from voicechat.backoff import Backoff, Uniform, retryable, retryable_error_event
from voicechat.endpoint import close_quietly
from voicechat.errors import ConfigError, ConnectError, SessionError, VoicechatError
from voicechat.protocol import codec
from voicechat.protocol import events as ev
from voicechat.session import EXPIRY_WARNING_S, RECYCLE_MARGIN_S, Phase
from voicechat.transport import Connection

SETUP_TIMEOUT_S = 15.0  # from the WebSocket's opening to session.updated, on every connection
RECYCLE_MARGIN_ENV = "VOICECHAT_RECYCLE_MARGIN_S"
"""A test knob (seconds): how close to the session limit the conversation moves to a new session."""

Events = AsyncIterator[ev.ServerEvent | codec.MalformedEvent]


@dataclass(frozen=True)
class Reliability:
    """How a conversation outlives its connections: reconnects and moving to a new session.

    ``backoff`` spaces and bounds the reconnect tries (``rng`` draws its jitter; ``None``: a
    fresh ``random.Random``). The server ends a session after 60 minutes: a warning is shown
    ``expiry_warning_s`` before, and once less than ``recycle_margin_s`` is left the
    conversation moves to a new session at the first quiet moment. ``setup_timeout_s`` bounds
    every connection's ``session.created`` + ``session.updated`` (the first one's too: a server
    that never sends them ends talk with a `ConnectError`); a new session that could not be
    opened ahead of the limit is tried again ``recycle_retry_s`` later.
    """

    backoff: Backoff = DEFAULT_BACKOFF
    rng: Uniform | None = None
    recycle_margin_s: float = RECYCLE_MARGIN_S
    expiry_warning_s: float = EXPIRY_WARNING_S
    setup_timeout_s: float = SETUP_TIMEOUT_S
    recycle_retry_s: float = 10.0


def reliability_from_env(environ: Mapping[str, str] = os.environ) -> Reliability:
    """`Reliability` defaults, with ``VOICECHAT_RECYCLE_MARGIN_S`` (a test knob) applied."""
    raw = environ.get(RECYCLE_MARGIN_ENV)
    if not raw:
        return Reliability()
    try:
        margin = float(raw)
    except ValueError:
        margin = -1.0
    if not margin >= 0:
        raise ConfigError(f"{RECYCLE_MARGIN_ENV} must be a number of seconds, not {raw!r}")
    return Reliability(recycle_margin_s=margin)


@dataclass(frozen=True)
class Link:
    """A configured connection: its socket, its event stream, and the ``session.updated`` it got."""

    conn: Connection
    events: Events
    session: dict[str, Any]


class SessionView(Protocol):
    """What the connection's life reads of the session core."""

    @property
    def phase(self) -> Phase: ...
    @property
    def idle(self) -> bool: ...
    @property
    def retry_hint(self) -> str | None: ...
    def update_event(self) -> dict[str, Any]: ...
    def recycle_later(self, not_before: float) -> None: ...


@dataclass(frozen=True)
class Wiring:
    """What the connection's life is handed by the conversation it serves."""

    session: SessionView
    receive: Callable[[Events], Awaitable[None]]  # carry one connection's events until they end
    send_next: Callable[[Connection], Awaitable[None]]  # send queued events until cancelled
    on_lost: Callable[[VoicechatError], None]  # the live connection is gone
    on_new: Callable[[Link], None]  # a new connection is live (its session.updated is in the link)
    notice: Callable[[str, str], None]
    clock: Callable[[], float]  # wall-clock seconds, as the session's time
    ready: asyncio.Event  # the first connection is configured
    finished: asyncio.Event  # the conversation is over


class Connections:
    """The live connection, a standby session, and the old ones still closing."""

    def __init__(self, conn: Connection, wiring: Wiring, *, reliability: Reliability,
                 connector: Callable[[], Awaitable[Connection]] | None) -> None:
        self.conn = conn
        self.events: Events = conn.events()
        self._w = wiring
        self.reliability = reliability
        self.connector = connector  # opens a new connection (None: no reconnects)
        self._expired: str | None = None  # the server ended the session (fx.Reconnect)
        self._expired_event = asyncio.Event()
        self._recycling: asyncio.Task[None] | None = None
        self._standby: Link | None = None  # a configured new session, waiting for a quiet moment
        self._standby_ready = asyncio.Event()
        self._retiring: set[asyncio.Task[None]] = set()  # old connections being closed

    # ---- asked by the conversation ------------------------------------------------------------

    def expire(self, reason: str) -> None:
        """The server ended this session (an error event): go on in a new connection."""
        self._expired = reason
        self._expired_event.set()

    def recycle(self) -> None:
        """The session ends soon and nothing is going on: open a new one beside it."""
        if self.connector is not None and self._recycling is None and self._standby is None:
            self._recycling = asyncio.create_task(self._recycle(), name="recycle")

    async def run(self) -> VoicechatError | None:
        """Serve one connection at a time until the conversation ends (None) or cannot go on (why)."""
        while True:
            ended = await self._serve()
            if self._w.finished.is_set():
                return None
            if ended is None:
                continue  # moved to a new session: serve it
            if not self._worth_reconnecting():
                return ended
            self._lost(ended)
            try:
                link = await self._reconnect(ended)
            except VoicechatError as exc:
                return exc
            self._use(link)
            self._w.notice("info", "reconnected; the conversation goes on")

    async def close(self) -> None:
        """Close the live connection (1000), any standby and the ones still closing."""
        recycling = self._recycling
        self._drop_standby()
        if recycling is not None:
            await asyncio.gather(recycling, return_exceptions=True)  # it closes its half-open connection
        await close_quietly(self.conn)
        await asyncio.gather(*self._retiring, return_exceptions=True)

    # ---- one connection -----------------------------------------------------------------------

    async def _serve(self) -> VoicechatError | None:
        """Carry ``self.conn`` until it ends (returns why) or the conversation does (None).

        A standby session (`_recycle`) is taken over here, and only while the session is idle
        (this check and the switch happen with no await in between); returns None then too.
        """
        tasks = {
            "receive": asyncio.create_task(self._w.receive(self.events), name="receive"),
            "send": asyncio.create_task(self._w.send_next(self.conn), name="send"),
            "finished": asyncio.create_task(self._w.finished.wait(), name="finished"),
            "expired": asyncio.create_task(self._expired_event.wait(), name="expired"),
            "standby": asyncio.create_task(self._standby_ready.wait(), name="standby"),
        }
        if not self._w.ready.is_set():  # the first connection (new ones are set up in _open)
            tasks["setup"] = asyncio.create_task(self._first_setup(), name="setup")
        try:
            while True:
                done, _ = await asyncio.wait(tasks.values(), return_when=asyncio.FIRST_COMPLETED)
                ended, why = self._ended(tasks, done)
                if ended:
                    return why
        finally:
            for task in tasks.values():
                task.cancel()
            await asyncio.gather(*tasks.values(), return_exceptions=True)

    def _ended(self, tasks: dict[str, asyncio.Task[Any]], done: set[asyncio.Task[Any]]
               ) -> tuple[bool, VoicechatError | None]:
        """Whether serving is over now (and why); a finished helper task is replaced or dropped."""
        if tasks["finished"] in done:
            return True, None
        for name in ("receive", "send"):
            if tasks[name] in done:
                error = tasks[name].exception()
                if error is None:  # the server closed the connection normally
                    return True, SessionError("the server closed the connection")
                if not isinstance(error, VoicechatError):
                    raise error
                return True, error
        setup = tasks.get("setup")
        if setup is not None and setup in done:
            del tasks["setup"]
            error = setup.exception()
            if error is not None:
                assert isinstance(error, VoicechatError)
                return True, error
        if tasks["expired"] in done:
            self._expired_event.clear()
            return True, SessionError(self._expired or "the server ended the session")
        if tasks["standby"] in done:
            self._standby_ready.clear()
            if self._take_standby():
                return True, None
            tasks["standby"] = asyncio.create_task(self._standby_ready.wait(), name="standby")
        return False, None

    async def _first_setup(self) -> None:
        """The first connection's ``session.created`` and ``session.updated`` arrive within
        ``setup_timeout_s``, as a new connection's must (`_open`); else a `ConnectError`."""
        timeout = self.reliability.setup_timeout_s
        try:
            await asyncio.wait_for(self._w.ready.wait(), timeout)
        except TimeoutError:
            missing = "session.created" if self._w.session.phase is Phase.CONNECTING else "session.updated"
            raise ConnectError(
                f"the server accepted the connection but did not set up the session within {timeout:g} s "
                f"(no {missing})",
                hint="check --base-url: is it a realtime server?",
            ) from None

    # ---- a lost connection ------------------------------------------------------------------

    def _worth_reconnecting(self) -> bool:
        """A drop (no close frame, 1001, 1011, …), or any close after an error event that said a
        new connection may help (``server_error``, ``session_expired``); not a normal close."""
        if self.connector is None:
            return False
        return self._w.session.retry_hint is not None or self.conn.dropped

    def _lost(self, why: VoicechatError) -> None:
        self._w.on_lost(why)
        self._drop_standby()
        self.retire(self.conn)

    async def _reconnect(self, why: VoicechatError) -> Link:
        """Open a new connection, with backoff between tries; raise when none can be had."""
        policy = self.reliability.backoff
        rng = self.reliability.rng or random.Random()
        started = time.monotonic()
        last: VoicechatError = why
        tries = 0
        for delay in policy.delays(rng):
            await asyncio.sleep(delay)
            tries += 1
            try:
                return await self._open()
            except VoicechatError as exc:
                if not retryable(exc):
                    raise
                last = exc
                self._w.notice("info", f"reconnect try {tries} of {policy.tries} failed: {exc.message}")
        seconds = time.monotonic() - started
        kind = type(last) if isinstance(last, ConnectError) else ConnectError
        raise kind(f"lost the connection and could not reconnect ({tries} tries in {seconds:.0f} s): {last.message}",
                   hint=last.hint)

    async def _open(self) -> Link:
        """A new connection, configured: ``session.created``, our ``session.update``, ``session.updated``."""
        assert self.connector is not None
        conn = await self.connector()
        events = conn.events()
        try:
            server_session = await asyncio.wait_for(self._configure(conn, events), self.reliability.setup_timeout_s)
        except TimeoutError:
            await close_quietly(conn)
            raise ConnectError(f"the new session was not ready within {self.reliability.setup_timeout_s:.0f} s") \
                from None
        except BaseException:
            await close_quietly(conn)
            raise
        return Link(conn, events, server_session)

    async def _configure(self, conn: Connection, events: Events) -> dict[str, Any]:
        try:
            async for event in events:
                if isinstance(event, ev.SessionCreated):
                    await conn.send(self._w.session.update_event())
                elif isinstance(event, ev.SessionUpdated):
                    return event.session
                elif isinstance(event, ev.ErrorEvent):
                    if retryable_error_event(event.type, event.code):
                        raise ConnectError(f"the new session failed: {event.message}")
                    raise SessionError(f"the server rejected the session settings: {event.message}")
        except (ConnectError, SessionError) as exc:
            if conn.dropped and not isinstance(exc, ConnectError):
                raise ConnectError(exc.message) from None  # e.g. 1001 while setting up: try again
            raise
        raise ConnectError("the server closed the new connection before it was set up")

    def _use(self, link: Link) -> None:
        """Make ``link`` the live connection and tell the conversation (which re-seeds the turns)."""
        self.conn, self.events = link.conn, link.events
        self._expired = None  # an expiry reported by the old session is over with it
        self._expired_event.clear()
        self._w.on_new(link)

    # ---- a new session ahead of the time limit ------------------------------------------------

    async def _recycle(self) -> None:
        """Open and configure a new session beside the live one; `_serve` takes it over."""
        try:
            link = await self._open()
        except VoicechatError as exc:
            self._w.notice("warning", f"could not open a new session ahead of the time limit: {exc.message}")
            self._w.session.recycle_later(self._w.clock() + self.reliability.recycle_retry_s)
            return
        finally:
            self._recycling = None
        self._standby = link
        self._standby_ready.set()

    def _take_standby(self) -> bool:
        """Switch to the standby session if nothing is going on; else keep the old one for now."""
        link, self._standby = self._standby, None
        if link is None:
            return False
        if not self._w.session.idle:
            self.retire(link.conn)  # its seeded turns would be stale by the next quiet moment
            self._w.session.recycle_later(self._w.clock())
            return False
        old = self.conn
        self._use(link)
        self.retire(old)  # closed with 1000 once the new session is live
        self._w.notice("info", "moved the conversation to a new server session before the time limit")
        return True

    def _drop_standby(self) -> None:
        if self._recycling is not None:
            self._recycling.cancel()
            self._recycling = None
        if self._standby is not None:
            self.retire(self._standby.conn)
            self._standby = None
        self._standby_ready.clear()

    def retire(self, conn: Connection) -> None:
        """Close ``conn`` with 1000 in the background."""
        task = asyncio.create_task(close_quietly(conn), name="close old connection")
        self._retiring.add(task)
        task.add_done_callback(self._retiring.discard)
