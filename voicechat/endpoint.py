"""Where ``talk`` and ``doctor`` connect, and how a connection is let go: shared by both.

``open_endpoint`` turns settings into a URL and credentials — for ``--backend local`` an
in-process server that the caller's exit stack stops — and refuses early, with a hint, when a
real server needs a key that is missing. ``close_quietly`` closes a connection with 1000 and
never raises or hangs (2 s at most): every exit path uses it, including the ones already
handling an error. Its own module so that neither command imports the other's.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from voicechat.errors import AuthError, NotFoundError
from voicechat.protocol.constants import RETIRED_MODELS
from voicechat.transport import Connection
from voicechat.urls import Endpoint, realtime_url

if TYPE_CHECKING:
    from voicechat.config import Settings
    from voicechat.server import ServerOptions

CLOSE_TIMEOUT_S = 2.0
NO_KEY = "local"
"""What stands in for a key to a loopback server that wants none (it never leaves the machine)."""


def needs_key(settings: Settings) -> bool:
    """Whether connecting needs an API key: not for the built-in server, nor for a plain
    ``http://``/``ws://`` base URL, which voicechat allows only to loopback."""
    if settings.backend == "local":
        return False
    return urlsplit(settings.base_url.strip()).scheme.lower() not in ("http", "ws")


async def open_endpoint(
    settings: Settings, stack: contextlib.AsyncExitStack, *, options: ServerOptions | None = None
) -> Endpoint:
    """Where to connect: for ``--backend local`` an in-process server (with ``options``) that
    ``stack`` stops; else ``base_url`` with the API key (`AuthError` when there is none)."""
    if settings.model in RETIRED_MODELS:
        successor = RETIRED_MODELS[settings.model]
        raise NotFoundError(f"the model {settings.model} was retired from the Realtime API; its successor is "
                            f"{successor}", hint=f"use --model {successor}")
    if settings.backend == "local":
        from voicechat.server import LocalServer, ServerOptions

        # The user's own conversation: the transcript of a turn comes during the reply, which
        # waits for it at most transcript_wait_ms (``serve`` varies the order to test clients,
        # and its "before" holds a reply for as long as recognition takes).
        options = options or ServerOptions(transcript_timing="during")
        server = await stack.enter_async_context(LocalServer(options, host="127.0.0.1", port=0))
        return Endpoint(realtime_url(server.http_base_url, settings.model), api_key=NO_KEY)
    if not settings.api_key and not needs_key(settings):
        # Plain ws:// goes only to loopback (checked again, address by address, when it connects):
        # a server of one's own, such as `voicechat serve`, which wants no key.
        url = realtime_url(settings.base_url, settings.model, azure=settings.azure)
        return Endpoint(url, api_key=NO_KEY, azure=settings.azure)
    if not settings.api_key:
        raise AuthError(
            f"no API key: set {'AZURE_OPENAI_API_KEY' if settings.azure else 'OPENAI_API_KEY'} in the environment or in .env",
            hint="or try the local echo server: voicechat talk --backend local",
        )
    url = realtime_url(settings.base_url, settings.model, azure=settings.azure)
    return Endpoint(url, api_key=settings.api_key, azure=settings.azure)


async def close_quietly(conn: Connection) -> None:
    """Close ``conn`` (1000), giving up after 2 s; never raises."""
    with contextlib.suppress(Exception):
        await asyncio.wait_for(conn.close(), timeout=CLOSE_TIMEOUT_S)
