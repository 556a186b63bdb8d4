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

from voicechat.errors import AuthError
from voicechat.transport import Connection, Endpoint, realtime_url

if TYPE_CHECKING:
    from voicechat.config import Settings
    from voicechat.server import ServerOptions

CLOSE_TIMEOUT_S = 2.0


async def open_endpoint(
    settings: Settings, stack: contextlib.AsyncExitStack, *, options: ServerOptions | None = None
) -> Endpoint:
    """Where to connect: for ``--backend local`` an in-process server (with ``options``) that
    ``stack`` stops; else ``base_url`` with the API key (`AuthError` when there is none)."""
    if settings.backend == "local":
        from voicechat.server import LocalServer, ServerOptions

        server = await stack.enter_async_context(LocalServer(options or ServerOptions(), host="127.0.0.1", port=0))
        return Endpoint(realtime_url(server.http_base_url, settings.model), api_key="local")
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
