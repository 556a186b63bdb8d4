"""The floor row of the device bench: the least a Realtime voice client can do.

Moves audio and nothing else: an input and an output PortAudio stream at the device rate in fixed blocks,
soxr between the device rate and 24 kHz both ways, base64 JSON appends up, deltas down into a
queue the callback drains (played samples and underruns counted there), the queue dropped on
``speech_started``. No UI, no echo processing, no transcript.

    python -m bench.floor --url ws://127.0.0.1:PORT/v1 --sample-rate 48000
    python -m bench.floor --streams-only --sample-rate 48000

``--streams-only`` opens the same two streams with callbacks that do nothing (the output hands
the device silence) and no connection: what the audio path alone costs at these blocks, which
no client that keeps both streams running can go below. With ``--input-only``, the microphone's
stream alone: what a client that lets its speaker sleep in silence still pays while it listens.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import json
import threading
from collections import deque
from collections.abc import Callable, Iterator

import numpy as np
import sounddevice as sd
import soxr
import websockets

WIRE = 24_000


@contextlib.contextmanager
def streams(rate: int, block_ms: int, capture: Callable[..., None], play: Callable[..., None] | None) -> Iterator[None]:
    """An input and an output stream, as voicechat opens them (a duplex stream on ALSA's pulse
    plugin spins), running while the block lasts; no output stream if ``play`` is None."""
    block = rate * block_ms // 1000
    with contextlib.ExitStack() as stack:
        stack.enter_context(sd.InputStream(samplerate=rate, blocksize=block, channels=1, dtype="float32",
                                           callback=capture))
        if play is not None:
            stack.enter_context(sd.OutputStream(samplerate=rate, blocksize=block, channels=1, dtype="float32",
                                                callback=play))
        yield


async def run(url: str, rate: int, block_ms: int) -> None:
    loop = asyncio.get_running_loop()
    captured: asyncio.Queue[np.ndarray] = asyncio.Queue()
    pending: deque[np.ndarray] = deque()
    lock = threading.Lock()
    counts = {"played": 0, "underruns": 0, "replying": False}
    to_device = soxr.ResampleStream(WIRE, rate, 1, dtype="float32")
    to_wire = soxr.ResampleStream(rate, WIRE, 1, dtype="float32")

    def capture(indata, _frames, _time, _status) -> None:  # type: ignore[no-untyped-def]
        loop.call_soon_threadsafe(captured.put_nowait, indata[:, 0].copy())

    def play(outdata, frames, _time, _status) -> None:  # type: ignore[no-untyped-def]
        filled = 0
        with lock:
            while filled < frames and pending:
                head = pending[0]
                take = min(frames - filled, head.size)
                outdata[filled : filled + take, 0] = head[:take]
                pending[0] = head[take:]
                if not pending[0].size:
                    pending.popleft()
                filled += take
            if filled < frames and counts["replying"] and filled:
                counts["underruns"] += 1
        outdata[filled:] = 0
        counts["played"] += filled

    ws_url = url.replace("http://", "ws://").rstrip("/") + "/realtime?model=gpt-realtime"
    async with websockets.connect(ws_url, additional_headers={"Authorization": "Bearer sk-local"},
                                  max_size=None) as ws:
        await ws.send(json.dumps({"type": "session.update", "session": {"type": "realtime"}}))

        async def send() -> None:
            while True:
                block = to_wire.resample_chunk(await captured.get())
                pcm = (np.clip(block, -1, 1) * 32767).astype("<i2").tobytes()
                await ws.send(json.dumps({"type": "input_audio_buffer.append",
                                          "audio": base64.b64encode(pcm).decode()}))

        with streams(rate, block_ms, capture, play):
            sender = asyncio.create_task(send())
            async for message in ws:
                event = json.loads(message)
                kind = event.get("type")
                if kind == "response.output_audio.delta":
                    x = np.frombuffer(base64.b64decode(event["delta"]), "<i2").astype(np.float32) / 32768
                    with lock:
                        pending.append(to_device.resample_chunk(x))
                        counts["replying"] = True
                elif kind in ("response.done", "input_audio_buffer.speech_started"):
                    with lock:
                        counts["replying"] = False
                        if kind != "response.done":
                            pending.clear()
            sender.cancel()


def streams_only(rate: int, block_ms: int, output: bool = True) -> None:
    """The two streams (the input alone unless ``output``), as `run` opens them, with empty
    callbacks until interrupted."""

    def capture(_indata, _frames, _time, _status) -> None:  # type: ignore[no-untyped-def]
        pass

    def play(outdata, _frames, _time, _status) -> None:  # type: ignore[no-untyped-def]
        outdata.fill(0)

    with streams(rate, block_ms, capture, play if output else None):
        threading.Event().wait()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--url")
    ap.add_argument("--streams-only", action="store_true", help="the two streams with empty callbacks, no client")
    ap.add_argument("--input-only", action="store_true", help="with --streams-only: the microphone's stream alone")
    ap.add_argument("--sample-rate", type=int, default=48_000)
    ap.add_argument("--block-ms", type=int, default=20, choices=(10, 20))
    a = ap.parse_args()
    if not a.streams_only and not a.url:
        ap.error("--url is required (or --streams-only)")
    with contextlib.suppress(KeyboardInterrupt):
        if a.streams_only:
            streams_only(a.sample_rate, a.block_ms, output=not a.input_only)
        else:
            asyncio.run(run(a.url, a.sample_rate, a.block_ms))


if __name__ == "__main__":
    main()
