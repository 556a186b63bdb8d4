"""The doctor's network probe and key check: is there a key, and does the endpoint answer?

:func:`check_connect` opens the WebSocket the way ``talk`` does (``transport.connect``, which
turns failures into actionable messages; for ``--backend local`` an in-process local server),
waits for ``session.created``, sends the ``session.update`` talk would send and times the round
trip. :func:`check_key` says whether a key is there without ever showing more of it than its
last four characters. The connector is an argument, so tests script the failures.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import TYPE_CHECKING, Any

from voicechat.doctor.report import CONNECT, FAIL, KEY, OK, WARN, Check
from voicechat.errors import VoicechatError

if TYPE_CHECKING:
    from voicechat.config import Settings
    from voicechat.transport import Connection

# ---- API key --------------------------------------------------------------------------------------


def check_key(settings: Settings) -> Check:
    """Whether the key is there; never shows more of it than its last four characters."""
    from voicechat.endpoint import needs_key

    if settings.backend == "local":
        return Check(KEY, OK, "not needed for --backend local")
    key = settings.api_key
    if not key and not needs_key(settings):
        return Check(KEY, OK, "not needed for a plain http:// server on loopback")
    if not key:
        var = _key_var(settings)
        return Check(
            KEY, WARN, f"{var} is not set",
            fix=f"export {var}=… (or put it in .env), or try --backend local",
        )
    origin = settings.sources.get("api_key") or ""
    where = " in .env" if origin.startswith(".env") else " in the environment" if origin.startswith("environment") else ""
    tail = f" (ends …{key[-4:]})" if len(key) >= 20 else ""
    return Check(KEY, OK, f"set{where}{tail}")


def _key_var(settings: Settings) -> str:
    return "AZURE_OPENAI_API_KEY" if settings.azure else "OPENAI_API_KEY"


# ---- connect + session.update -----------------------------------------------------------------------

Connector = Callable[..., Awaitable["Connection"]]


async def _next(events: AsyncIterator[Any], *wanted: type) -> Any:
    async for event in events:
        if isinstance(event, wanted):
            return event
    return None


async def check_connect(
    settings: Settings, *, connector: Connector | None = None, timeout: float = 10.0
) -> Check:
    """Open the WebSocket, wait for ``session.created``, send ``session.update``, wait for the answer."""
    from voicechat.endpoint import close_quietly, needs_key, open_endpoint
    from voicechat.protocol import client as cmd
    from voicechat.protocol import events as ev
    from voicechat.server import ServerOptions
    from voicechat.session import SESSION_UPDATE_ID
    from voicechat.transport import connect

    if needs_key(settings) and not settings.api_key:
        return Check(
            CONNECT, FAIL, "not tried: no API key",
            fix=f"export {_key_var(settings)}=… (or put it in .env), or try --backend local",
        )
    where = "the server"
    async with contextlib.AsyncExitStack() as stack:
        try:
            endpoint = await open_endpoint(settings, stack, options=ServerOptions(recognizer="none"))
            where = endpoint.url.split("?")[0]
            t0 = time.monotonic()
            conn = await (connector or connect)(endpoint, open_timeout=timeout)
            stack.push_async_callback(close_quietly, conn)
            t_open = time.monotonic()
            events = conn.events()
            created = await asyncio.wait_for(_next(events, ev.SessionCreated, ev.ErrorEvent), timeout)
            if created is None:
                return Check(CONNECT, FAIL, f"{where}: the server closed the connection before session.created")
            if isinstance(created, ev.ErrorEvent):
                return Check(CONNECT, FAIL, f"{where}: the server sent an error instead of session.created: "
                             f"{created.message}")
            t_created = time.monotonic()
            await conn.send(cmd.session_update(settings.session_config(), event_id=SESSION_UPDATE_ID))
            reply = await asyncio.wait_for(_next(events, ev.SessionUpdated, ev.ErrorEvent), timeout)
            t_updated = time.monotonic()
        except VoicechatError as e:
            return Check(CONNECT, FAIL, f"{where}: {e.message}", fix=e.hint)
        except TimeoutError:
            return Check(
                CONNECT, FAIL, f"{where}: no answer within {timeout:g} s after the WebSocket opened",
                fix="check --base-url: it should point at a realtime API",
            )
    return _judge_update(settings, where, reply, (t0, t_open, t_created, t_updated))


def _judge_update(settings: Settings, where: str, reply: Any, times: tuple[float, float, float, float]) -> Check:
    """The connect check from the answer to ``session.update`` and the four moments timed."""
    from voicechat.protocol import events as ev

    if reply is None:
        return Check(CONNECT, FAIL, f"{where}: the server closed the connection after session.update")
    if isinstance(reply, ev.ErrorEvent):
        param = f" ({reply.param})" if reply.param else ""
        return Check(
            CONNECT, FAIL, f"{where}: the server rejected session.update: {reply.message}{param}",
            fix="check --model and the session settings (voice, vad, …)",
        )
    t0, t_open, t_created, t_updated = times
    ms = lambda a, b: f"{(b - a) * 1000:.1f} ms"  # noqa: E731
    return Check(
        CONNECT, OK,
        f"{where} (model {settings.model}): WebSocket open in {ms(t0, t_open)}, session.created after "
        f"{ms(t_open, t_created)}, session.update round trip {ms(t_created, t_updated)}",
    )
