"""The WebSocket client: connecting, authentication, send and receive.

The one client-side module that imports websockets. It turns handshake and network failures
into ``voicechat.errors`` with a message a user can act on (what a status or close code means
is `voicechat.closes`), and frames into typed events via the codec. The API key only ever goes
into a request header, never into a log line.

Plain ``ws://`` carries the key unencrypted, so it is allowed only to loopback: the URL must
name a loopback host (`voicechat.urls`), and every address that name resolves to must be a
loopback address. The socket is then opened to one of those very
addresses (`resolve` is the resolver seam), so what was checked is what is connected to.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import ssl
from collections import deque
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import urlsplit

import websockets
from websockets.asyncio.client import ClientConnection
from websockets.asyncio.client import connect as ws_connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus, InvalidURI
from websockets.frames import Frame, Opcode

from voicechat import __version__
from voicechat.backoff import retryable_close
from voicechat.closes import closed_error_code, status_error
from voicechat.errors import (
    ConfigError,
    ConnectError,
    DnsError,
    RefusedError,
    SessionError,
    UsageError,
    VoicechatError,
)
from voicechat.eventlog import EventLog, redact_websockets_log
from voicechat.protocol import codec
from voicechat.protocol import events as ev
from voicechat.redact import KEY_HINT, has_userinfo, key_problem
from voicechat.urls import Endpoint, is_loopback, is_loopback_address, netloc

log = logging.getLogger(__name__)
redact_websockets_log("websockets.client")  # --debug logs the handshake headers: never the key

CLOSE_NORMAL = 1000


Address = tuple[int, int, int, Any]  # family, type, proto, sockaddr


async def resolve(host: str, port: int) -> list[Address]:
    """The resolver seam: ``getaddrinfo`` for a TCP connection to ``host``:``port``."""
    infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return [(family, kind, proto, sockaddr) for family, kind, proto, _, sockaddr in infos]


async def loopback_addresses(host: str, port: int) -> list[Address]:
    """Where plain ws:// to ``host`` may go: its addresses, when every one of them is loopback.

    Raises `UsageError` naming the first address that is not (a name such as ``localhost``
    that resolves elsewhere must not carry the key in plain text), and ``socket.gaierror``
    when the name does not resolve.
    """
    addresses = await resolve(host, port)
    for address in addresses:
        ip = str(address[3][0])
        if not is_loopback_address(ip):
            raise UsageError(
                f"refusing plain ws:// to {host}: it resolves to {ip}, which is not a loopback address, "
                "and the API key would travel unencrypted",
                hint="use https:// (wss://); plain ws:// is allowed only to loopback addresses",
            )
    if not addresses:
        raise socket.gaierror(socket.EAI_NONAME, "no address")
    return addresses


async def _open_socket(addresses: list[Address]) -> socket.socket:
    """A TCP socket connected to the first of ``addresses`` that accepts (the last error if none)."""
    loop = asyncio.get_running_loop()
    error: OSError = ConnectionRefusedError()
    for family, kind, proto, sockaddr in addresses:
        sock = socket.socket(family, kind, proto)
        sock.setblocking(False)
        try:
            await loop.sock_connect(sock, sockaddr)
        except OSError as exc:
            sock.close()
            error = exc
            continue
        except BaseException:
            sock.close()
            raise
        return sock
    raise error


class _ClientConnection(ClientConnection):
    """A client connection that knows which of its messages came as binary frames.

    Messages are received undecoded (``recv(decode=False)``) so that the codec decodes text
    frames itself: invalid UTF-8 in one is then a malformed frame like any other, where
    websockets would fail the whole connection (close 1007, then up to 10 s waiting for the
    close frame of a server that may never send one). Decoding no longer tells text from
    binary, so the opcode of each message's first frame is noted here, in arrival order.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.binary: deque[bool] = deque()  # one per message received and not yet read

    def process_event(self, event: Any) -> None:
        if isinstance(event, Frame) and event.opcode in (Opcode.TEXT, Opcode.BINARY):
            self.binary.append(event.opcode is Opcode.BINARY)
        super().process_event(event)

    async def message(self) -> tuple[bytes, bool]:
        """The next message, undecoded, and whether it came as a binary frame."""
        data = await self.recv(decode=False)
        return data, (self.binary.popleft() if self.binary else False)


class Connection:
    """An open realtime WebSocket: send dict events, iterate typed events."""

    def __init__(self, ws: _ClientConnection, endpoint: Endpoint, log: EventLog | None = None) -> None:
        self._ws = ws
        self.endpoint = endpoint
        self.log = log  # --log-events
        self.closing = False
        self.closed = False  # the connection has ended (either side)
        self.close_code: int | None = None  # the server's close code; None: no close frame (1006)

    async def send(self, event: dict[str, Any]) -> None:
        if self.log is not None:
            self.log.sent(event)
        try:
            await self._ws.send(codec.encode(event))
        except ConnectionClosed as exc:
            # The same explanation the receiving side gives, whichever side notices first.
            if self._note_close(exc):
                raise SessionError("the server closed the connection") from None
            raise closed_error(exc) from None

    async def events(self) -> AsyncIterator[ev.ServerEvent | codec.MalformedEvent]:
        """Server events in order; malformed frames come through as values, not raised.

        Ends quietly on a normal close; raises a ``VoicechatError`` when the server closes
        abnormally (the reason tells the user what happened). Either way ``close_code`` then
        says how it ended, for the reconnect decision.
        """
        while True:
            try:
                data, binary = await self._ws.message()
            except ConnectionClosed as exc:
                normal = self._note_close(exc)
                rcvd = exc.rcvd
                if self.log is not None:
                    self.log.note("closed", code=rcvd.code if rcvd else None, reason=rcvd.reason if rcvd else None)
                if normal:
                    return
                raise closed_error(exc) from None
            try:
                obj = codec.decode_message(data, binary=binary)
            except codec.MalformedEvent as exc:
                if self.log is not None:
                    self.log.received(data if binary else data.decode("utf-8", "replace"), malformed=exc.message)
                yield exc
                continue
            if self.log is not None:
                self.log.received(obj)
            try:
                event = codec.parse_server(obj)
            except codec.MalformedEvent as exc:
                yield exc
                continue
            yield event

    async def close(self, code: int = CLOSE_NORMAL, reason: str = "") -> None:
        self.closing = True
        if self.log is not None:
            self.log.note("close", code=code, reason=reason)
        await self._ws.close(code, reason)

    def _note_close(self, exc: ConnectionClosed) -> bool:
        """Record how the connection ended; whether that was normal (our close, or the server's 1000)."""
        if not self.closed:
            self.closed = True
            self.close_code = exc.rcvd.code if exc.rcvd is not None else None
        return self.closing or (exc.rcvd is not None and exc.rcvd.code == CLOSE_NORMAL)

    @property
    def dropped(self) -> bool:
        """Whether the server's end of this connection deserves a reconnect (reference §6.3):
        no close frame, going away, internal error, restart or try-again-later; not a normal
        close, a policy refusal or the beta interface's 4000, which would happen again."""
        return self.closed and not self.closing and retryable_close(self.close_code)


def closed_error(exc: ConnectionClosed) -> ConnectError | SessionError:
    rcvd = exc.rcvd
    if rcvd is None:
        return ConnectError("the connection to the server dropped (no close frame)")
    return closed_error_code(rcvd.code, rcvd.reason)


async def connect(endpoint: Endpoint, *, open_timeout: float = 15.0, log: EventLog | None = None) -> Connection:
    """Open the WebSocket, translating every failure into an actionable error.

    ``log`` (``--log-events``) gets the attempt, its outcome and then every frame.
    """
    if log is None:
        return Connection(await _connect_ws(endpoint, open_timeout), endpoint)
    log.note("connect", url=endpoint.url)
    try:
        ws = await _connect_ws(endpoint, open_timeout)
    except VoicechatError as exc:
        log.note("failed", error=str(exc))
        raise
    log.note("open")
    return Connection(ws, endpoint, log)


async def _open(endpoint: Endpoint, open_timeout: float) -> _ClientConnection:
    host = endpoint.host
    problem = key_problem(endpoint.api_key)
    if problem:  # it would go into a header as it is (and into the error about that header)
        raise ConfigError(f"the API key {problem}", hint=KEY_HINT)
    if has_userinfo(endpoint.url):
        raise UsageError("the endpoint URL must not hold a user name or password (user:password@host)")
    sock: socket.socket | None = None
    try:
        options: dict[str, Any] = {"proxy": None if is_loopback(host) else True}
        if urlsplit(endpoint.url).scheme.lower() == "ws":
            sock = await _loopback_socket(endpoint, open_timeout)
            options = {"sock": sock}  # to the address checked: no proxy, no redirect elsewhere
        ws = await ws_connect(
            endpoint.url,
            additional_headers=endpoint.headers(),
            user_agent_header=f"voicechat/{__version__} websockets/{websockets.__version__}",
            max_size=None,  # server events can be several MB (item retrieval with audio)
            compression=None,
            open_timeout=open_timeout,
            create_connection=_ClientConnection,
            **options,
        )
        assert isinstance(ws, _ClientConnection)
        return ws
    except BaseException:
        if sock is not None:
            sock.close()
        raise


async def _loopback_socket(endpoint: Endpoint, open_timeout: float) -> socket.socket:
    """For plain ws://: a socket connected to an address of the host, all of them loopback."""
    host = endpoint.host
    if not is_loopback(host):
        raise UsageError(f"refusing plain ws:// to {host}: the API key would travel unencrypted",
                         hint="use https:// (wss://); plain ws:// is allowed only for loopback hosts")
    try:
        port = urlsplit(endpoint.url).port or 80
    except ValueError:
        raise UsageError(f"invalid endpoint URL: bad port in {netloc(endpoint.url)}") from None
    async with asyncio.timeout(open_timeout):
        return await _open_socket(await loopback_addresses(host, port))


async def _connect_ws(endpoint: Endpoint, open_timeout: float) -> _ClientConnection:
    """`_open`, with every failure turned into an actionable `VoicechatError`."""
    host = endpoint.host
    try:
        return await _open(endpoint, open_timeout)
    except InvalidStatus as exc:
        raise status_error(exc.response.status_code, endpoint) from None
    except socket.gaierror as exc:
        raise DnsError(
            f"cannot resolve host {host!r} ({exc.strerror or exc})",
            hint="check --base-url and your network/DNS",
        ) from None
    except ConnectionRefusedError:
        raise RefusedError(
            f"connection refused by {netloc(endpoint.url)}",
            hint="is the server running? for the local server: voicechat serve",
        ) from None
    except ssl.SSLCertVerificationError as exc:
        raise ConnectError(f"TLS certificate of {host} could not be verified: {exc.verify_message}") from None
    except TimeoutError:
        raise ConnectError(f"timed out connecting to {netloc(endpoint.url)} after {open_timeout:.0f} s") from None
    except InvalidURI as exc:
        raise UsageError(f"invalid endpoint URL: {exc}") from None
    except InvalidHandshake as exc:
        raise ConnectError(f"the WebSocket handshake with {host} failed: {exc}") from None
    except OSError as exc:
        raise _os_error(exc, endpoint) from None


def _os_error(exc: OSError, endpoint: Endpoint) -> ConnectError:
    """A socket error as one line that always has a reason: a reset during the TLS handshake has
    no text at all (a plain server answering wss://, the usual mistake with `voicechat serve`)."""
    why = exc.strerror or str(exc)
    hint = None
    if urlsplit(endpoint.url).scheme == "wss" and (not why or isinstance(exc, ssl.SSLError)):
        reason = getattr(exc, "reason", None) if isinstance(exc, ssl.SSLError) else None
        why = f"the TLS handshake failed ({reason or why})" if why else \
            "the server closed the connection during the TLS handshake"
        hint = ("a plain server (such as voicechat serve) takes http://, not https:// or wss://"
                if is_loopback(endpoint.host) else "is it a TLS (https) server? check --base-url")
    elif not why:
        why = "the server closed the connection" if isinstance(exc, ConnectionError) else type(exc).__name__
    return ConnectError(f"cannot connect to {netloc(endpoint.url)}: {why}", hint=hint)
