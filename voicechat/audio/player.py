"""Loop-side playback: 24 kHz deltas in, resampled into the ring, per-item play accounting.

The event loop calls ``play`` for each assistant delta, ``end`` when a response's audio is
complete, and ``flush`` on barge-in (which answers how many wire samples of each item the
speaker was handed, fade included). The device side only ever calls ``buffer.read_into``.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import numpy as np

from voicechat.audio.jitter import JitterEstimator
from voicechat.audio.playback import PlaybackBuffer
from voicechat.audio.playout import PlayoutTracker
from voicechat.audio.resample import StreamResampler
from voicechat.protocol.constants import WIRE_RATE

CUSHION_MS = 200.0  # the least queue a playing response keeps, rebuilt in its pauses (adaptive only)


class Player:
    def __init__(
        self,
        device_rate: int,
        *,
        prebuffer_ms: float = 60.0,
        adaptive: bool = True,
        capacity_s: float = 120.0,
        fade_ms: float = 5.0,
        cushion_ms: float | None = CUSHION_MS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.device_rate = device_rate
        self.clock = clock
        # Pauses are lengthened while less than this (or the learned target) is queued; None: never.
        self._cushion_ms = cushion_ms if adaptive else None
        # The prebuffer starts at ``prebuffer_ms`` and, when adaptive, follows measured jitter.
        self.jitter = JitterEstimator(floor_ms=prebuffer_ms) if adaptive else None
        self.buffer = PlaybackBuffer(
            capacity_frames=int(capacity_s * device_rate),
            prebuffer_frames=int(prebuffer_ms * device_rate / 1000),
            fade_frames=int(fade_ms * device_rate / 1000),
            rate=device_rate,
        )
        self._set_cushion(0)
        self.tracker = PlayoutTracker(device_rate, WIRE_RATE)
        self._resampler = StreamResampler(WIRE_RATE, device_rate)
        self.ended = True
        self._last_item: str | None = None
        self._frames_total = 0  # device frames accepted, for wire-time accounting

    def play(self, item_id: str, pcm: bytes) -> None:
        wire = np.frombuffer(pcm, dtype="<i2").astype(np.int16, copy=False)
        if self.jitter is not None:
            self.jitter.on_delta(self.clock(), wire.shape[0])
            self._retarget()
        self._write(item_id, self._resampler.process(wire))
        self._last_item = item_id
        self.ended = False

    def _write(self, item_id: str, frames: np.ndarray) -> None:
        """Write device frames, crediting the item with the wire time they stand for.

        The resampler's output is time-aligned with its input but delayed by its filter, so
        the frames a delta produces are not that delta's samples: counting ``frames × 24000 /
        rate`` (with the remainder carried) keeps "played" from running ahead of the speaker.
        """
        start = self.buffer.write_position
        accepted = self.buffer.write(frames)
        before = self._frames_total * WIRE_RATE // self.device_rate
        self._frames_total += accepted
        wire = self._frames_total * WIRE_RATE // self.device_rate - before
        self.tracker.on_write(item_id, wire, start, accepted)

    def end(self) -> None:
        """The current response's audio is complete: play it out even below the prebuffer."""
        if not self._resampler.passthrough and self._last_item is not None:
            self._write(self._last_item, self._resampler.flush())  # the tail still in the filter
        self._resampler.reset()
        self.buffer.mark_end()
        self.ended = True
        if self.jitter is not None:
            self.jitter.end_response()

    def pause(self) -> None:
        """Silence now (short fade) but keep the queued audio: the barge-in is not confirmed yet."""
        self.buffer.pause()

    def resume(self) -> None:
        """A false alarm: play on from where the pause stopped."""
        self.buffer.resume()

    def flush(self, item_ids: tuple[str, ...]) -> dict[str, int]:
        """Silence now (short fade); return wire samples handed to the speaker per item."""
        self.buffer.flush()
        position = self.buffer.write_position  # the faded tail still plays, up to here
        self.tracker.on_flush(position)
        self._resampler.reset()
        self.ended = True
        if self.jitter is not None:
            self.jitter.end_response()
        return {
            item_id: self.tracker.played_wire_samples(item_id, position) for item_id in item_ids
        }

    def _retarget(self) -> None:
        assert self.jitter is not None
        frames = int(self.jitter.target_ms * self.device_rate / 1000)
        if frames != self.buffer.prebuffer:
            self.buffer.set_prebuffer(frames)
            self._set_cushion(frames)

    def _set_cushion(self, target_frames: int) -> None:
        if self._cushion_ms is not None:
            self.buffer.set_cushion(max(target_frames, int(self._cushion_ms * self.device_rate / 1000)))

    @property
    def prebuffer_ms(self) -> float:
        return self.buffer.prebuffer * 1000 / self.device_rate

    def played_wire_samples(self, item_id: str) -> int:
        return self.tracker.played_wire_samples(item_id, self.buffer.consumed_total)

    @property
    def drained(self) -> bool:
        """Everything queued has been handed to the device and no more is expected."""
        return self.ended and self.buffer.queued == 0
