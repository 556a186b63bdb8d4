"""A loopback TCP proxy that delays the server's WebSocket frames: arrival jitter on demand.

Client → server bytes pass straight through. Server → client: the HTTP upgrade response passes
through, then every WebSocket frame (server frames are unmasked; the client asks for no
compression) is released at ``max(previous release, arrival + d)`` with
``d = max(0, N(mu, sigma))`` — independent Gaussian delay per frame, order kept, as TCP would.
``mu`` defaults to ``3 sigma`` so the clip at zero rarely bites; the constant part only shifts
the whole stream. With ``sigma = 0`` every frame is held exactly ``mu`` (a distant server). Optionally, at the Nth audio delta of the Kth response, the whole
downstream stalls for ``stall_ms`` (everything due in that window waits for its end).
"""

from __future__ import annotations

import asyncio
import contextlib
import random
from typing import Any


class JitterProxy:
    def __init__(
        self,
        upstream_port: int,
        *,
        sigma_ms: float = 0.0,
        mu_ms: float | None = None,
        seed: int = 0,
        stall_ms: float = 0.0,
        stall_at: tuple[int, int] = (2, 5),
    ) -> None:
        self.upstream_port = upstream_port
        self.sigma = sigma_ms / 1000
        self.mu = (3 * sigma_ms if mu_ms is None else mu_ms) / 1000
        self.rng = random.Random(seed)
        self.stall = stall_ms / 1000
        self.stall_at = stall_at  # (response number, audio delta number within it), 1-based
        self.port = 0
        self.stats: dict[str, Any] = {"frames": 0, "audio_deltas": 0, "stalls": 0, "max_hold_ms": 0.0}
        self._server: asyncio.Server | None = None
        self._stall_until = 0.0

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.port = int(self._server.sockets[0].getsockname()[1])

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), 2.0)
            self._server = None

    async def _handle(self, creader: asyncio.StreamReader, cwriter: asyncio.StreamWriter) -> None:
        ureader, uwriter = await asyncio.open_connection("127.0.0.1", self.upstream_port)
        tasks = [asyncio.create_task(self._up(creader, uwriter)), asyncio.create_task(self._down(ureader, cwriter))]
        try:
            await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            for w in (cwriter, uwriter):
                with contextlib.suppress(Exception):
                    w.close()

    @staticmethod
    async def _up(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()

    async def _down(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        loop = asyncio.get_running_loop()
        writer.write(await reader.readuntil(b"\r\n\r\n"))
        queue: asyncio.Queue[tuple[float, float, bytes] | None] = asyncio.Queue()
        releaser = asyncio.create_task(self._release(queue, writer))
        last = 0.0
        responses = deltas = 0
        try:
            while True:
                try:
                    frame, payload_head = await _read_frame(reader)
                except asyncio.IncompleteReadError as exc:
                    if exc.partial:
                        queue.put_nowait((last, loop.time(), exc.partial))
                    break
                now = loop.time()
                self.stats["frames"] += 1
                if b'"response.created"' in payload_head:
                    responses += 1
                    deltas = 0
                elif b'"response.output_audio.delta"' in payload_head:
                    deltas += 1
                    self.stats["audio_deltas"] += 1
                    if self.stall and (responses, deltas) == self.stall_at:
                        self._stall_until = now + self.stall
                        self.stats["stalls"] += 1
                d = max(0.0, self.rng.gauss(self.mu, self.sigma)) if self.sigma else self.mu
                last = max(last, now + d)
                queue.put_nowait((last, now, frame))
            queue.put_nowait(None)
            await releaser
        finally:
            releaser.cancel()

    async def _release(self, queue: asyncio.Queue[tuple[float, float, bytes] | None], writer: asyncio.StreamWriter) -> None:
        loop = asyncio.get_running_loop()
        while (entry := await queue.get()) is not None:
            due, arrived, frame = entry
            wait = max(due, self._stall_until if arrived < self._stall_until else 0.0) - loop.time()
            if wait > 0:
                await asyncio.sleep(wait)
            self.stats["max_hold_ms"] = max(self.stats["max_hold_ms"], (loop.time() - arrived) * 1000)
            writer.write(frame)
            await writer.drain()


async def _read_frame(reader: asyncio.StreamReader) -> tuple[bytes, bytes]:
    """One raw WebSocket frame and the first bytes of its payload."""
    head = await reader.readexactly(2)
    length = head[1] & 0x7F
    ext = b""
    if length == 126:
        ext = await reader.readexactly(2)
        length = int.from_bytes(ext, "big")
    elif length == 127:
        ext = await reader.readexactly(8)
        length = int.from_bytes(ext, "big")
    mask = await reader.readexactly(4) if head[1] & 0x80 else b""
    payload = await reader.readexactly(length)
    return head + ext + mask + payload, payload[:80]
