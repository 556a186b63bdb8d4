"""The WebSocket layer: the only server module that imports websockets (and paces with asyncio).

``LocalServer`` accepts upgrades (decided by ``handshake.check``), runs one
``RealtimeSession`` per connection, feeds it frames, timer ticks and recognition results
(recognition runs in a worker thread), sends what it returns, and applies the delta faults
of ``ServerOptions``. ``run_server`` blocks for ``voicechat serve``.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import json
import logging
import random
import signal
import time
from collections import deque
from collections.abc import Callable, Sequence
from typing import Any

from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.datastructures import Headers
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response
from websockets.typing import Subprotocol

from voicechat.errors import UsageError
from voicechat.eventlog import redact_websockets_log
from voicechat.protocol.codec import encode
from voicechat.server import apierrors as E
from voicechat.server import handshake
from voicechat.server.brain import Brain, EchoBrain
from voicechat.server.options import Recognizer, ServerOptions
from voicechat.server.session import RealtimeSession
from voicechat.server.state import Output
from voicechat.server.transcribe import load_recognizer

log = logging.getLogger(__name__)
redact_websockets_log("websockets.server")  # `serve --debug` logs request headers: never a key

INBOX_SIZE = 64
MODEL_CLOSE_REASON = "invalid_request_error.model_not_found"


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class LocalServer:
    """``async with LocalServer(opts, host, port) as srv`` → a listening local realtime server."""

    def __init__(self, opts: ServerOptions | None = None, host: str = "127.0.0.1", port: int = 0) -> None:
        self.opts = opts or ServerOptions()
        if not self.opts.allow_remote and not _is_loopback(host):
            raise UsageError(f"refusing to listen on non-loopback host {host!r}",
                             hint="pass --allow-remote to expose the local server on the network")
        self.host = host
        self._requested_port = port
        self.port = 0
        self.received: deque[dict[str, Any]] = deque(maxlen=self.opts.record_limit)
        self.emitted: deque[dict[str, Any]] = deque(maxlen=self.opts.record_limit)
        # Per finished connection: the client's close frame (code, reason), or None when the
        # client went away without one (a dropped TCP connection, a killed process).
        self.closes: deque[tuple[int, str] | None] = deque(maxlen=self.opts.record_limit)
        self.connections = 0
        self.brain: Brain = self.opts.brain or EchoBrain()
        self.recognizer: Recognizer | None = None
        self._server: Server | None = None
        self._preload: asyncio.Task[None] | None = None
        self._seed_rng = random.Random(self.opts.seed)

    @property
    def http_base_url(self) -> str:
        return f"http://{self._netloc()}/v1"

    @property
    def ws_url(self) -> str:
        return f"ws://{self._netloc()}/v1/realtime"

    def _netloc(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"

    async def __aenter__(self) -> LocalServer:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def start(self) -> None:
        self.recognizer = load_recognizer(self.opts.recognizer)
        preload = getattr(self.recognizer, "preload", None)
        if preload is not None:
            self._preload = asyncio.create_task(asyncio.to_thread(preload))
        self._server = await serve(
            self._handle,
            self.host,
            self._requested_port,
            process_request=self._process_request,
            select_subprotocol=_select_subprotocol,
            max_size=None,
            compression=None,
            server_header="voicechat-local",
        )
        self.port = int(self._server.sockets[0].getsockname()[1])
        log.info("local realtime server listening on %s", self.ws_url)

    async def close(self) -> None:
        if self._preload is not None:
            await asyncio.gather(self._preload, return_exceptions=True)
            self._preload = None
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None

    async def serve_forever(self) -> None:
        assert self._server is not None
        await self._server.serve_forever()

    # ---- handshake --------------------------------------------------------------------

    def _process_request(self, connection: ServerConnection, request: Request) -> Response | None:
        headers = {k.lower(): v for k, v in request.headers.raw_items()}
        decision = handshake.check(request.path, headers, self.opts)
        if isinstance(decision, handshake.Reject):
            log.info("handshake refused %s: HTTP %d", request.path, decision.status)
            body = json.dumps(decision.body).encode()
            response = connection.respond(decision.status, "")
            response.headers = Headers([
                ("Content-Type", "application/json"),
                ("Content-Length", str(len(body))),
                ("Connection", "close"),
            ])
            response.body = body
            return response
        connection.voicechat_decision = decision  # type: ignore[attr-defined]
        return None

    async def _handle(self, ws: ServerConnection) -> None:
        self.connections += 1
        number = self.connections
        decision: handshake.Accept = ws.voicechat_decision  # type: ignore[attr-defined]
        if decision.beta or decision.bad_model:
            error = E.beta_disabled() if decision.beta else E.model_not_found(decision.model)
            event = {"type": "error", "event_id": f"event_{number:021d}", "error": error.body(None)}
            self.emitted.append(event)
            try:
                await ws.send(encode(event))
                await ws.close(4000 if decision.beta else 1008,
                               E.BETA_CLOSE_REASON if decision.beta else MODEL_CLOSE_REASON)
            except ConnectionClosed:
                pass
            return
        try:
            await _Connection(self, ws, number, decision.model).run()
        finally:
            rcvd = ws.protocol.close_rcvd
            self.closes.append(None if rcvd is None else (rcvd.code, rcvd.reason))


def _select_subprotocol(_conn: ServerConnection, offered: Sequence[Subprotocol]) -> Subprotocol | None:
    """Browsers authenticate with subprotocols and must get ``realtime`` back."""
    return Subprotocol("realtime") if "realtime" in offered else None


class _Connection:
    """One accepted WebSocket and its session."""

    def __init__(self, server: LocalServer, ws: ServerConnection, number: int, model: str) -> None:
        self.server = server
        self.ws = ws
        self.opts = server.opts
        self.faults = self.opts.faults_apply(number)
        self.deltas = 0
        self.injected = False
        self.closing = False
        self.loop = asyncio.get_running_loop()
        self.inbox: asyncio.Queue[tuple[str, Any]] = asyncio.Queue(maxsize=INBOX_SIZE)
        self.tasks: set[asyncio.Task[None]] = set()
        self.session = RealtimeSession(
            self.opts, model, now=self.loop.time(), wall_time=time.time(), brain=server.brain,
            recognizer_available=server.recognizer is not None,
            rng=random.Random(server._seed_rng.getrandbits(64)),
        )

    async def run(self) -> None:
        reader = asyncio.create_task(self._read())
        getter: asyncio.Task[tuple[str, Any]] | None = None
        try:
            if await self._flush(self.session.start(self.loop.time())):
                return
            if self.opts.inject_after is None:
                await self._inject()
            while True:
                deadline = self.session.next_deadline()
                timeout = None if deadline is None else max(0.0, deadline - self.loop.time())
                if getter is None:
                    getter = asyncio.create_task(self.inbox.get())
                done, _ = await asyncio.wait({getter}, timeout=timeout)
                now = self.loop.time()
                if not done:
                    out = self.session.tick(now)
                else:
                    kind, payload = getter.result()
                    getter = None
                    if kind == "closed":
                        return
                    if kind == "frame":
                        out = self.session.receive(payload, now)
                    else:
                        out = self.session.transcription_done(payload[0], payload[1], now)
                if await self._flush(out):
                    return
        except ConnectionClosed:
            return
        finally:
            for task in (reader, getter, *self.tasks):
                if task is not None:
                    task.cancel()

    async def _read(self) -> None:
        try:
            async for message in self.ws:
                if not self.closing:  # frames after our close frame are dropped, never queued
                    await self.inbox.put(("frame", message))
        except ConnectionClosed:
            pass
        finally:
            await self.inbox.put(("closed", None))

    async def _inject(self) -> None:
        self.injected = True
        for frame in self.opts.inject_frames:
            await self.ws.send(frame)

    async def _transcribe(self, item_id: str, pcm: bytes, recognize: Callable[[bytes], str]) -> None:
        try:
            text: str | None = await asyncio.to_thread(recognize, pcm)
        except Exception:
            log.warning("recogniser failed on %s", item_id, exc_info=True)
            text = None
        await self.inbox.put(("transcript", (item_id, text)))

    async def _flush(self, out: Output) -> bool:
        """Send ``out``; True when the connection is over (closed or faulted)."""
        if out.received is not None:
            self.server.received.append(out.received)
        recognize = self.server.recognizer
        for job in out.jobs:
            if recognize is not None:
                task = asyncio.create_task(self._transcribe(job.item_id, job.pcm, recognize))
                self.tasks.add(task)
                task.add_done_callback(self.tasks.discard)
        for event in out.events:
            await self.ws.send(encode(event))
            self.server.emitted.append(event)
            if not self.injected and event["type"] == self.opts.inject_after:
                await self._inject()
            if event["type"] == "response.output_audio.delta" and self.faults and await self._delta_fault():
                return True
        if out.close is not None:
            await self._close(*out.close)
            return True
        return False

    async def _close(self, code: int, reason: str) -> None:
        """Close, reading on meanwhile: a full inbox would stop the reads that carry the
        client's close frame back, and the handshake would hang until its timeout."""
        self.closing = True
        while not self.inbox.empty():
            self.inbox.get_nowait()
        await self.ws.close(code, reason)

    async def _delta_fault(self) -> bool:
        self.deltas += 1
        limit = self.opts.drop_after_deltas
        if self.opts.close_code_after_deltas is not None and self.deltas >= (limit or 1):
            code, reason = self.opts.close_code_after_deltas
            await self._close(code, reason)
            return True
        if limit is not None and self.deltas >= limit:
            self.ws.transport.abort()
            return True
        return False


def run_server(
    opts: ServerOptions | None = None,
    host: str = "127.0.0.1",
    port: int = 8765,
    ready: Callable[[LocalServer], None] | None = None,
) -> None:
    """Serve until Ctrl-C (which ends it quietly). ``ready`` is called once listening."""

    async def main() -> None:
        # The loop's own handler, not Python's default: it wakes the loop through its self-pipe
        # even when the kernel hands the signal to another thread (numpy's BLAS threads); with
        # the default one such a Ctrl-C was noticed only on the next timer, i.e. never.
        loop = asyncio.get_running_loop()
        stop = asyncio.Event()
        for signum in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
                loop.add_signal_handler(signum, stop.set)
        async with LocalServer(opts, host, port) as srv:
            if ready is not None:
                ready(srv)
            serving = asyncio.create_task(srv.serve_forever())
            stopping = asyncio.create_task(stop.wait())
            await asyncio.wait({serving, stopping}, return_when=asyncio.FIRST_COMPLETED)
            for task in (serving, stopping):
                task.cancel()
            await asyncio.gather(serving, stopping, return_exceptions=True)

    with contextlib.suppress(KeyboardInterrupt):  # one before the handlers are in place
        asyncio.run(main())
    log.info("local realtime server stopped")
