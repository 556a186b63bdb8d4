"""The one microphone pipeline: reference → echo → resample → chunk, behind a bounded queue.

Both audio adapters (PortAudio devices in ``device.py``, WAV files in ``filedev.py``) hand their
raw microphone blocks to a `Capture` and nothing else: what the speaker was handed over the same
time (the echo *reference*) goes with each block into the conversation's ``EchoPath``; what it
lets through is resampled from the device's rate to the 24 kHz wire rate with one streaming
resampler; and the wire audio is cut, here and only here, into pieces of ``APPEND_MS`` — one
``input_audio_buffer.append`` each — for ``on_chunk``.

Between the audio thread and the loop the blocks wait in a bounded queue. A PortAudio callback
only copies its block into it (`put_threadsafe`) and, when no drain is pending, asks the loop
for one (in a quiet room only once a quiet piece's worth has come, or for a loud block); the
loop drains every waiting block in order (`drain`). While the speaker plays, the device loop
ticks anyway (every second block); it says so (`polled`) and drains on its own tick: the
callback then wakes nobody, which saves the loop a wake-up per block. Overflow policy: when the loop
falls ``backlog`` blocks behind (a stall), the oldest block is dropped — stale audio is worth
less than the newest — and ``overflows`` counts it. A file adapter runs on the loop already: it
puts its block with the reference it played and drains at once.

A quiet room is sent in longer pieces (``quiet_chunk_ms``, the device adapter's choice): once
what goes out has stayed below ``QUIET_PEAK_DBFS`` for ``QUIET_AFTER_MS``, the pieces grow to
``quiet_chunk_ms`` — a fifth of the sends, and of the wake-ups they cost — and the first block
above it hands on everything held at once, so the server hears a turn start (or a barge-in) no
later than before. The wait outlasts any server VAD's silence duration, so the end of a turn is
never held back either. What counts is the echo path's output: while the speaker plays, its echo
is taken out before the level is judged, so a reply heard in a quiet room is sent in long pieces
too.

What is held back (less than one append) belongs to the turn being spoken: `flush` hands it on
(the push-to-talk key ends a turn), `drop` forgets it (the connection it was meant for is gone).
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable

import numpy as np
import numpy.typing as npt

from voicechat.audio.echo import EchoPath
from voicechat.audio.format import peak_of_dbfs
from voicechat.audio.resample import StreamResampler
from voicechat.protocol.constants import APPEND_MS, WIRE_RATE

CAPTURE_BACKLOG = 50  # device blocks (1 s of 20 ms blocks) waiting for the loop before the oldest goes
QUIET_PEAK_DBFS = -45.0  # a block whose loudest sample stays below this is quiet
QUIET_AFTER_MS = 2000  # what goes out quiet this long before the pieces grow
QUIET_CHUNK_MS = 200  # the pieces of a quiet room, for adapters that want them (devices)
QUIET_PEAK = peak_of_dbfs(QUIET_PEAK_DBFS)

Block = npt.NDArray[np.int16]
Reference = Callable[[int, "int | None"], Block]  # the next n frames the speaker was handed (a RefTap's take)


class Capture:
    """Microphone blocks at ``rate`` in; wire chunks of ``APPEND_MS`` out, through ``echo``."""

    def __init__(
        self,
        rate: int,
        on_chunk: Callable[[bytes], None],
        *,
        echo: EchoPath | None = None,
        active: Callable[[], bool] = lambda: False,
        reference: Reference | None = None,
        mark: Callable[[], int] | None = None,
        chunk_ms: int = APPEND_MS,
        quiet_chunk_ms: int | None = None,
        backlog: int = CAPTURE_BACKLOG,
    ) -> None:
        self.rate = rate
        self.echo = echo
        self._on_chunk = on_chunk
        self._active = active  # assistant audio is queued or playing (the echo path's hint)
        self._reference = reference
        self._mark = mark  # read in the audio callback with each block: where the speaker was then
        self._to_wire = StreamResampler(rate, WIRE_RATE)
        self._chunk = WIRE_RATE * chunk_ms // 1000
        self._quiet_chunk = WIRE_RATE * (quiet_chunk_ms or chunk_ms) // 1000
        self._quiet_after = WIRE_RATE * QUIET_AFTER_MS // 1000
        self._quiet_for = 0  # wire samples since what goes out was last loud
        self._quiet_blocks = 1  # device blocks to a quiet piece (known once a block has come)
        self._pending: Block = np.zeros(0, dtype=np.int16)
        self._queue: deque[tuple[Block, Block | None, int | None]] = deque(maxlen=backlog)
        self._draining = False
        self._loop: asyncio.AbstractEventLoop | None = None
        self.polled = False  # the loop drains on a tick of its own: blocks put wake nobody
        self.overflows = 0  # blocks dropped because the loop fell behind
        # Frames of those blocks (written by whichever thread drops, read on the loop) and how
        # many of them the reference has skipped: it skips as many, to stay paired with the mic.
        self._dropped = 0
        self._skipped = 0

    # ---- in: raw blocks --------------------------------------------------------------------

    def bind(self, loop: asyncio.AbstractEventLoop) -> None:
        """The loop that drains blocks put from another thread."""
        self._loop = loop

    def put_threadsafe(self, block: Block) -> None:
        """From the audio thread: queue a copy of ``block`` and wake the loop (never blocks)."""
        if len(self._queue) == self._queue.maxlen:
            self.overflows += 1  # the deque drops the oldest block as this one goes in
            self._dropped += block.shape[0]  # a device's blocks are all one size
        self._queue.append((block, None, self._mark() if self._mark is not None else None))
        if self._draining or self.polled or self._loop is None:
            return
        # quiet: wake the loop once a piece's worth has come, or at once for a loud block
        if self._quiet_for < self._quiet_after or len(self._queue) >= self._quiet_blocks or (
            block.size and int(np.abs(block).max()) >= QUIET_PEAK
        ):
            self._draining = True
            self._loop.call_soon_threadsafe(self.drain)

    def put(self, block: Block, reference: Block | None = None) -> None:
        """On the loop: queue ``block`` with the ``reference`` played over the same time."""
        if len(self._queue) == self._queue.maxlen:
            self.overflows += 1
            self._dropped += block.shape[0]  # a device's blocks are all one size
        self._queue.append((block, reference, None))

    def drain(self) -> None:
        """On the loop: every waiting block through the echo path in order, then all of them
        through the resampler at once (one call per drain, not per block: a quiet room drains
        ten blocks at a time) and out in pieces."""
        self._draining = False  # first: a block put from now on asks for a drain of its own
        if not self._queue:
            return
        blocks = []
        while self._queue:
            block, reference, mark = self._queue.popleft()
            blocks.append(self._echo(block, reference, mark))
        self._send(self._to_wire.process(np.concatenate(blocks) if len(blocks) > 1 else blocks[0]))

    def _echo(self, block: Block, reference: Block | None, mark: int | None = None) -> Block:
        """One block through the echo path (with the speaker audio of its time); what goes out."""
        if reference is None and self._reference is not None:
            if self._dropped != self._skipped:  # microphone blocks dropped unread: so is their speaker audio
                lost = self._dropped - self._skipped
                self._skipped += lost
                self._reference(lost, None)
            reference = self._reference(block.shape[0], mark)  # read in step with the mic, echo or not
        self._quiet_blocks = max(1, self._quiet_chunk * self.rate // WIRE_RATE // max(1, block.shape[0]))
        if self.echo is not None:
            ref = reference if reference is not None else np.zeros_like(block)
            block = self.echo.process(block, ref, self._active())
        if block.size and int(np.abs(block).max()) >= QUIET_PEAK:
            self._quiet_for = 0
        else:
            self._quiet_for += block.shape[0] * WIRE_RATE // self.rate
        return block

    def _send(self, wire: Block) -> None:
        """Wire audio out in pieces of a chunk (of a quiet chunk in a quiet room); the rest waits."""
        pending = np.concatenate([self._pending, wire]) if self._pending.size else wire
        quiet = self._quiet_for >= self._quiet_after
        if quiet and pending.size < self._quiet_chunk:
            self._pending = pending
            return
        n = pending.size // self._chunk * self._chunk
        if quiet or (self._quiet_chunk > self._chunk and pending.size > 2 * self._chunk):  # quiet: one piece
            self._on_chunk(pending[:n].astype("<i2", copy=False).tobytes())
        else:
            for start in range(0, n, self._chunk):
                self._on_chunk(pending[start : start + self._chunk].astype("<i2", copy=False).tobytes())
        self._pending = pending[n:]

    # ---- the piece held back ----------------------------------------------------------------

    def flush(self) -> None:
        """Hand on what is held back (less than one chunk): the turn ends here."""
        self.drain()
        if self._pending.size:
            pcm, self._pending = self._pending, np.zeros(0, dtype=np.int16)
            self._on_chunk(pcm.astype("<i2", copy=False).tobytes())

    def drop(self) -> None:
        """Forget what is held back: it was meant for a connection that is gone."""
        self._pending = np.zeros(0, dtype=np.int16)
