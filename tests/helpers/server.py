"""Helpers for the local-server tests: a raw WebSocket test client, speech-like audio, SDK checks.

Every event a ``RawClient`` receives is validated against the official SDK's
``RealtimeServerEvent`` union, and every event it sends (unless ``send_raw``) against
``RealtimeClientEvent``; the validated types are collected for the conformance test.
Timeouts scale with ``VOICECHAT_TEST_TIMEUNIT`` (a multiplier, default 1).
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import numpy as np
import openai.types.realtime as rt
import pydantic
from websockets.asyncio.client import ClientConnection, connect

from voicechat.server import LocalServer, ServerOptions

MS = 0.001 * float(os.environ.get("VOICECHAT_TEST_TIMEUNIT", "1"))
TIMEOUT = 5000 * MS
RATE = 24_000
MODEL = "gpt-realtime-2.1"
FAST = {"speed": 200.0, "seed": 7, "recognizer": "none"}

SERVER_EVENT = pydantic.TypeAdapter(rt.RealtimeServerEvent)
CLIENT_EVENT = pydantic.TypeAdapter(rt.RealtimeClientEvent)
VALIDATED_SERVER_TYPES: set[str] = set()
VALIDATED_CLIENT_TYPES: set[str] = set()

# Fields the SDK's session model does not declare but the real service sends.
SESSION_EXTRAS = {"id", "object", "expires_at"}


def no_unknown_fields(model: Any, path: str = "") -> list[str]:
    """Paths of fields the SDK model does not declare (the models allow extras silently)."""
    found: list[str] = []
    if isinstance(model, pydantic.BaseModel):
        extras = set(model.model_extra or {})
        if type(model).__name__ == "RealtimeSessionCreateRequest":
            extras -= SESSION_EXTRAS
        found += [f"{path}.{name}" for name in sorted(extras)]
        for name in type(model).model_fields:
            found += no_unknown_fields(getattr(model, name), f"{path}.{name}")
    elif isinstance(model, list):
        for i, value in enumerate(model):
            found += no_unknown_fields(value, f"{path}[{i}]")
    return found


def validate_server_event(event: dict[str, Any]) -> None:
    model = SERVER_EVENT.validate_python(event)
    unknown = no_unknown_fields(model, event["type"])
    assert not unknown, f"fields unknown to the SDK: {unknown}"
    VALIDATED_SERVER_TYPES.add(event["type"])


def validate_client_event(event: dict[str, Any]) -> None:
    CLIENT_EVENT.validate_python(event)
    VALIDATED_CLIENT_TYPES.add(event["type"])


# ---- audio ------------------------------------------------------------------------------


def voiced(frames: int, f0: float = 140.0, level: float = 5000.0, phase: float = 0.0, rate: int = RATE) -> np.ndarray:
    """Voiced, syllable-modulated harmonics: speech-like for an energy VAD, no espeak needed."""
    t = np.arange(frames) / rate
    voice = sum(np.sin(2 * np.pi * f0 * k * t + phase) / k for k in range(1, 6))
    envelope = 0.55 + 0.45 * np.sin(2 * np.pi * 4.0 * t)
    return np.clip(voice * envelope * level, -32768, 32767).astype(np.int16)


def speech(ms: int, f0: float = 140.0, level: float = 5000.0) -> np.ndarray:
    return voiced(int(RATE * ms / 1000), f0, level)


def speech_like(seconds: float, amplitude: float = 5000.0, f0: float = 140.0, seed: int = 0,
                rate: int = RATE) -> np.ndarray:
    """``seconds`` of `voiced` audio; ``seed`` shifts the phase (a different-sounding voice)."""
    return voiced(int(seconds * rate), f0, amplitude, seed, rate)


def silence(ms: int) -> np.ndarray:
    return np.zeros(int(RATE * ms / 1000), dtype=np.int16)


def b64(samples: np.ndarray) -> str:
    return base64.b64encode(np.asarray(samples, dtype="<i2").tobytes()).decode()


def pcm(delta_b64: str) -> np.ndarray:
    return np.frombuffer(base64.b64decode(delta_b64), dtype="<i2")


def manual_session(**session: Any) -> dict[str, Any]:
    """A ``session.update`` that turns server VAD off (push-to-talk)."""
    body: dict[str, Any] = {"type": "realtime", "audio": {"input": {"turn_detection": None}}}
    body.update(session)
    return {"type": "session.update", "session": body}


# ---- client -----------------------------------------------------------------------------


class RawClient:
    """A bare WebSocket client speaking JSON events, with validation on both directions."""

    def __init__(self, ws: ClientConnection) -> None:
        self.ws = ws
        self.seen: list[dict[str, Any]] = []

    async def send(self, event: dict[str, Any]) -> None:
        validate_client_event(event)
        await self.ws.send(json.dumps(event))

    async def send_raw(self, frame: str | bytes | dict[str, Any]) -> None:
        await self.ws.send(json.dumps(frame) if isinstance(frame, dict) else frame)

    async def append(self, samples: np.ndarray, chunk_ms: int = 40) -> None:
        step = RATE * chunk_ms // 1000
        for i in range(0, samples.size, step):
            await self.send({"type": "input_audio_buffer.append", "audio": b64(samples[i : i + step])})

    async def recv(self, timeout: float = TIMEOUT) -> dict[str, Any]:
        event = json.loads(await asyncio.wait_for(self.ws.recv(), timeout))
        validate_server_event(event)
        self.seen.append(event)
        return event

    async def until(self, etype: str, timeout: float = TIMEOUT) -> list[dict[str, Any]]:
        """Events up to and including the first of type ``etype``."""
        events = []
        while True:
            event = await self.recv(timeout)
            events.append(event)
            if event["type"] == etype:
                return events

    async def expect(self, etype: str, timeout: float = TIMEOUT) -> dict[str, Any]:
        event = await self.recv(timeout)
        assert event["type"] == etype, event
        return event

    async def error(self, timeout: float = TIMEOUT) -> dict[str, Any]:
        """The next event, which must be an error; returns its ``error`` object."""
        return (await self.expect("error", timeout))["error"]

    async def quiet(self, wait: float = 100 * MS) -> None:
        """Assert nothing arrives for ``wait`` seconds."""
        try:
            event = await asyncio.wait_for(self.ws.recv(), wait)
        except TimeoutError:
            return
        raise AssertionError(f"unexpected event {json.loads(event)['type']}")


def headers(key: str | None = "sk-test", **extra: str) -> dict[str, str]:
    result = {"Authorization": f"Bearer {key}"} if key else {}
    result.update(extra)
    return result


@asynccontextmanager
async def client(
    srv: LocalServer, model: str = MODEL, *, created: bool = True, **hdrs: str
) -> AsyncIterator[RawClient]:
    """Connect; by default consume and check ``session.created``."""
    async with connect(f"{srv.ws_url}?model={model}", additional_headers=headers(**hdrs) if hdrs else headers(),
                       max_size=None, compression=None, open_timeout=TIMEOUT) as ws:
        c = RawClient(ws)
        if created:
            await c.expect("session.created")
        yield c


@asynccontextmanager
async def server_and_client(**opts: Any) -> AsyncIterator[tuple[LocalServer, RawClient]]:
    merged = {**FAST, **opts}
    async with LocalServer(ServerOptions(**merged), host="127.0.0.1", port=0) as srv, client(srv) as c:
        yield srv, c


def types(events: list[dict[str, Any]]) -> list[str]:
    return [e["type"] for e in events]
