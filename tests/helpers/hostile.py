"""A loopback realtime "server" of our own that misbehaves on purpose.

`HostileServer` accepts WebSocket connections on 127.0.0.1 and hands each to a script (an
async function of a `Peer`). A script can do what no honest server does: never send
``session.created``, trickle a frame a byte at a time, send text frames that are not UTF-8,
numbers no field can hold, lone UTF-16 surrogates, nesting thousands deep, or drop the TCP
connection mid-reply. `canned_turn` plays one whole spoken turn and its reply (the frames an
honest server sends), as JSON texts a test may edit before they are sent.
"""

from __future__ import annotations

import asyncio
import base64
import json
import struct
from collections.abc import Awaitable, Callable
from typing import Any

from websockets.asyncio.server import ServerConnection, serve
from websockets.exceptions import ConnectionClosed

Script = Callable[["Peer"], Awaitable[None]]


def frame_bytes(payload: bytes, opcode: int = 0x1) -> bytes:
    """One unmasked, unfragmented WebSocket frame (what a server sends), as raw bytes."""
    n = len(payload)
    if n < 126:
        header = struct.pack("!BB", 0x80 | opcode, n)
    elif n < 1 << 16:
        header = struct.pack("!BBH", 0x80 | opcode, 126, n)
    else:
        header = struct.pack("!BBQ", 0x80 | opcode, 127, n)
    return header + payload


class Peer:
    """One accepted connection, as a script sees it."""

    def __init__(self, ws: ServerConnection, number: int, server: HostileServer) -> None:
        self.ws = ws
        self.number = number  # 1 for the first connection
        self.server = server

    async def send(self, frame: str | bytes | dict[str, Any], *, text: bool | None = None) -> None:
        """A frame: a dict as JSON, a str as it is, bytes as binary (``text=True``: bytes as a text
        frame, unchecked, so it may be invalid UTF-8)."""
        if isinstance(frame, dict):
            frame = json.dumps(frame)
        await self.ws.send(frame, text=text)

    async def recv(self) -> dict[str, Any]:
        event = json.loads(await self.ws.recv())
        self.server.received.append(event)
        return event

    async def until(self, etype: str) -> dict[str, Any]:
        while True:
            event = await self.recv()
            if event.get("type") == etype:
                return event

    async def drain(self) -> None:
        """Read (and drop) whatever the client sends until it goes away."""
        with _quietly():
            while True:
                await self.recv()

    async def handshake(self) -> None:
        """What an honest server does first: ``session.created``, then ``session.updated``."""
        await self.send(session_event("session.created"))
        update = await self.until("session.update")
        await self.send(session_event("session.updated", update.get("session")))

    async def trickle(self, payload: bytes, every_s: float) -> None:
        """Write one text frame a byte at a time, ``every_s`` apart, past websockets (which keeps
        answering pings meanwhile: only this frame is slow)."""
        for byte in frame_bytes(payload):
            self.ws.transport.write(bytes([byte]))
            await asyncio.sleep(every_s)

    def drop(self) -> None:
        """End the TCP connection at once, with no close frame."""
        self.ws.transport.abort()


class _quietly:
    def __enter__(self) -> None:
        return None

    def __exit__(self, kind: type[BaseException] | None, *rest: object) -> bool:
        return kind is not None and issubclass(kind, ConnectionClosed | OSError | TimeoutError)


class HostileServer:
    """``async with HostileServer(script) as srv``: ``srv.http_base_url`` for ``--base-url``.

    ``script`` gets every connection (``Peer.number`` tells them apart); the connection ends
    when it returns. ``received`` collects every event the client sent.
    """

    def __init__(self, script: Script) -> None:
        self.script = script
        self.connections = 0
        self.received: list[dict[str, Any]] = []
        self.closes: list[int | None] = []  # per ended connection: the client's close code (None: none)
        self.port = 0
        self._server: Any = None
        self._tasks: set[asyncio.Task[None]] = set()

    @property
    def http_base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    async def __aenter__(self) -> HostileServer:
        self._server = await serve(self._handle, "127.0.0.1", 0, max_size=None, compression=None)
        self.port = int(self._server.sockets[0].getsockname()[1])
        return self

    async def __aexit__(self, *exc: object) -> None:
        self._server.close()
        await self._server.wait_closed()

    async def _handle(self, ws: ServerConnection) -> None:
        self.connections += 1
        with _quietly():
            await self.script(Peer(ws, self.connections, self))
        with _quietly():
            await asyncio.wait_for(ws.wait_closed(), 5.0)
        rcvd = ws.protocol.close_rcvd
        self.closes.append(None if rcvd is None else rcvd.code)


def session_event(etype: str, session: dict[str, Any] | None = None) -> dict[str, Any]:
    body = {"type": "realtime", "object": "realtime.session", "id": "sess_hostile", "model": "gpt-realtime",
            "expires_at": 0, **(session or {})}
    return {"type": etype, "event_id": f"event_{etype}", "session": body}


# ---- a canned turn ----------------------------------------------------------------------------

PCM = base64.b64encode(b"\x10\x00" * 2400).decode()  # 0.1 s of quiet audio per delta


def canned_turn(user: str = "hello there", reply: tuple[str, ...] = ("hi ", "back"), *, deltas: int = 5,
                raw: dict[str, str] | None = None, done: bool = True, said: str | None = None,
                text_first: bool = False) -> list[str]:
    """The frames of one spoken turn and a spoken reply, as JSON texts.

    ``user`` is the transcript of what was said; ``reply`` the reply's transcript deltas (the
    done events carry them joined, or ``said``). ``raw`` replaces placeholders with raw JSON text after
    encoding: a value ``"@NAME@"`` anywhere becomes ``raw["NAME"]`` verbatim (a number token
    such as ``1e999``, or a string with ``\\ud83d`` escapes). ``done=False`` stops after the
    deltas (a drop comes next).
    """
    said = "".join(reply) if said is None else said
    user_item = {"id": "item_u1", "object": "realtime.item", "type": "message", "role": "user",
                 "status": "completed", "content": [{"type": "input_audio", "transcript": None}]}
    reply_item = {"id": "item_a1", "object": "realtime.item", "type": "message", "role": "assistant",
                  "status": "in_progress", "content": []}
    part = {"response_id": "resp_1", "item_id": "item_a1", "output_index": 0, "content_index": 0}
    events: list[dict[str, Any]] = [
        {"type": "input_audio_buffer.speech_started", "item_id": "item_u1", "audio_start_ms": 100},
        {"type": "input_audio_buffer.speech_stopped", "item_id": "item_u1", "audio_end_ms": 1300},
        {"type": "input_audio_buffer.committed", "item_id": "item_u1", "previous_item_id": None},
        {"type": "conversation.item.added", "item": user_item, "previous_item_id": None},
        {"type": "conversation.item.done", "item": user_item, "previous_item_id": None},
        {"type": "conversation.item.input_audio_transcription.completed", "item_id": "item_u1",
         "content_index": 0, "transcript": user},
        {"type": "response.created", "response": {"id": "resp_1", "object": "realtime.response",
                                                  "status": "in_progress", "output": []}},
        {"type": "response.output_item.added", "response_id": "resp_1", "output_index": 0, "item": reply_item},
        {"type": "response.content_part.added", **part, "part": {"type": "audio", "transcript": ""}},
    ]
    audio = [{"type": "response.output_audio.delta", **part, "delta": PCM} for _ in range(deltas)]
    text = [{"type": "response.output_audio_transcript.delta", **part, "delta": d} for d in reply]
    if text_first:  # the transcript ahead of its audio: heard as soon as any audio is
        events += text + audio
    else:
        for n in range(max(deltas, len(reply))):
            events += audio[n : n + 1] + text[n : n + 1]
    if done:
        finished = {**reply_item, "status": "completed", "content": [{"type": "output_audio", "transcript": said}]}
        events += [
            {"type": "response.output_audio.done", **part},
            {"type": "response.output_audio_transcript.done", **part, "transcript": said},
            {"type": "response.content_part.done", **part, "part": {"type": "audio", "transcript": said}},
            {"type": "response.output_item.done", "response_id": "resp_1", "output_index": 0, "item": finished},
            {"type": "response.done", "response": {
                "id": "resp_1", "object": "realtime.response", "status": "completed", "output": [finished],
                "usage": {"total_tokens": 30, "input_tokens": 10, "output_tokens": 20}}},
        ]
    texts = []
    for n, event in enumerate(events):
        text = json.dumps({"event_id": f"event_{n}", **event})
        for name, token in (raw or {}).items():
            text = text.replace(json.dumps(f"@{name}@"), token)
        texts.append(text)
    return texts


def turn_script(frames: list[str | bytes], *, then: str = "serve", drop_after_s: float = 0.0,
                later: list[str] | None = None) -> Script:
    """An honest handshake, then ``frames`` once the client sends its first audio; ``then`` is
    ``"serve"`` (read on until the client goes) or ``"drop"`` (end the TCP connection,
    ``drop_after_s`` later). Every connection gets ``frames``, except that after a drop the
    new ones get ``later`` (default: nothing but the handshake)."""

    async def script(peer: Peer) -> None:
        await peer.handshake()
        await peer.until("input_audio_buffer.append")
        for frame in frames if peer.number == 1 or then != "drop" else (later or []):
            if isinstance(frame, bytes):
                await peer.send(frame, text=True)  # a text frame, bytes unchecked
            else:
                await peer.send(frame)
        if then == "drop" and peer.number == 1:
            await asyncio.sleep(drop_after_s)
            peer.drop()
            return
        await peer.drain()

    return script
