"""Headless audio: a WAV file as the microphone and a WAV file as the speaker.

It behaves like a duplex device running on a clock: every block it hands one block of the
input file (then silence, as a quiet microphone would) to the loop and reads one block out of
the playback ring, exactly as a PortAudio callback would. ``speed`` > 1 runs the clock faster
than real time (for tests); the audio timeline is the same, only compressed.

For echo tests, ``echo_gain`` leaks the played audio back into the microphone ``echo_delay_ms``
later, as laptop speakers do; the conversation's `EchoPath` then sees what a real one would.
Each block goes through the same microphone pipeline as a device's (``capture.py``), with the
block just played as its echo reference; the file is at the wire rate, so nothing is resampled.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable
from pathlib import Path

import numpy as np

from voicechat.audio.capture import Capture
from voicechat.audio.echo import EchoPath
from voicechat.audio.playback import PlaybackBuffer
from voicechat.audio.wav import WavWriter
from voicechat.protocol.constants import WIRE_RATE


class FileAudio:
    rate = WIRE_RATE

    def __init__(
        self,
        mic: np.ndarray,
        output: Path | None,
        *,
        speed: float = 1.0,
        block_ms: int = 20,
        echo_gain: float = 0.0,
        echo_delay_ms: int = 60,
    ) -> None:
        self.mic = mic
        self.output = output
        self.speed = speed
        self.block = WIRE_RATE * block_ms // 1000
        self.block_ms = block_ms
        self.position = 0
        self.tail_ms = 0  # quiet microphone audio sent after the file ended
        self.played_frames = 0
        self._writer: WavWriter | None = WavWriter(output, WIRE_RATE) if output else None
        self.echo: EchoPath | None = None  # set by the conversation before run()
        self.echo_gain = echo_gain
        self._echo_line: deque[np.ndarray] = deque(maxlen=max(1, echo_delay_ms // block_ms))
        self.capture: Capture | None = None  # the microphone pipeline of the current run()

    @property
    def input_done(self) -> bool:
        return self.position >= self.mic.size

    async def run(
        self,
        buffer: PlaybackBuffer,
        on_mic: Callable[[bytes], None],
        on_block: Callable[[], bool],
    ) -> None:
        """Tick until ``on_block`` returns False; each tick is one capture + one playback block."""
        loop = asyncio.get_running_loop()
        capture = self.capture = Capture(WIRE_RATE, on_mic, echo=self.echo, active=lambda: buffer.active)
        period = self.block_ms / 1000 / self.speed
        start = loop.time()
        out = np.zeros(self.block, dtype=np.int16)
        ticks = 0
        while True:
            ticks += 1
            delay = start + ticks * period - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            else:
                await asyncio.sleep(0)
            real = buffer.read_into(out)
            if real and self._writer is not None:
                self._writer.write(out[:real])
            self.played_frames += real
            mic = self._next_mic_block()
            if self.echo_gain:
                if len(self._echo_line) == self._echo_line.maxlen:
                    leak = self._echo_line[0][: mic.size] * self.echo_gain
                    mic = np.clip(mic + np.rint(leak), -32768, 32767).astype(np.int16)
                self._echo_line.append(out.astype(np.float32))
            capture.put(mic, out)
            capture.drain()
            if not on_block():
                return

    def _next_mic_block(self) -> np.ndarray:
        chunk = self.mic[self.position : self.position + self.block]
        self.position += self.block
        if chunk.size < self.block:
            if chunk.size == 0:
                self.tail_ms += self.block_ms
            chunk = np.concatenate([chunk, np.zeros(self.block - chunk.size, dtype=np.int16)])
        return chunk

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None
