"""What the listener actually heard of each assistant item, from the playback ring's positions.

Pure loop-side bookkeeping (no lock, no clock): `PlayoutTracker` maps the play positions of
`voicechat.audio.playback.PlaybackBuffer` (see its module for what a position is) back to wire
samples of each item, so a truncate can say how much of an item was really played.
"""

from __future__ import annotations

from collections import OrderedDict

from voicechat.audio.format import WIRE_RATE

_DEAD = -1  # `valid` of a tracker piece whose frames were all discarded by a flush


class PlayoutTracker:
    """Maps play positions of a `PlaybackBuffer` back to wire samples of each assistant item.

    Usage (all on the event loop): before writing an item's resampled delta, note
    ``start = buffer.write_position``; write it; then call ``on_write(item_id, len(wire_delta),
    start, accepted)`` with the frames the buffer accepted. After ``buffer.flush()`` call
    ``on_flush(buffer.write_position)``. Query with ``buffer.consumed_total``.

    Each recorded piece converts linearly: ``h`` of its ``f`` device frames heard means
    ``floor(w * h / f)`` of its ``w`` wire samples heard, so a partial piece never over-reports.
    A piece with wire samples but no device frames (a resampler still filling its filter) counts
    as heard once the device has passed its position. If overflow cut a write short, pass the
    wire samples the accepted frames stand for (the rest never reaches the speaker).

    Memory is bounded: only the ``max_items`` most recently started items are remembered
    (default 64); older ones are forgotten (reported as unknown: 0 received, 0 played, not fully
    played). `forget` drops an item early.
    """

    def __init__(self, device_rate: int, wire_rate: int = WIRE_RATE, max_items: int = 64) -> None:
        if device_rate <= 0 or wire_rate <= 0:
            raise ValueError(f"rates must be positive, got {device_rate} and {wire_rate}")
        if max_items <= 0:
            raise ValueError(f"max_items must be positive, got {max_items}")
        self.device_rate = device_rate
        self.wire_rate = wire_rate
        self.max_items = max_items
        self._items: OrderedDict[str, _Item] = OrderedDict()

    def on_write(
        self, item_id: str, wire_samples: int, device_start: int, device_frames: int
    ) -> None:
        """Record ``wire_samples`` of ``item_id`` written as ``device_frames`` frames at ``device_start``."""
        if wire_samples < 0 or device_frames < 0 or device_start < 0:
            raise ValueError("wire_samples, device_start and device_frames must not be negative")
        item = self._items.get(item_id)
        if item is None:
            item = self._items[item_id] = _Item()
            while len(self._items) > self.max_items:
                self._items.popitem(last=False)
        item.received += wire_samples
        if wire_samples or device_frames:
            item.pieces.append([device_start, device_frames, device_frames, wire_samples])

    def on_flush(self, flush_position: int) -> None:
        """Frames at play positions ``>= flush_position`` were discarded and will never play.

        ``flush_position`` is ``buffer.write_position`` right after ``buffer.flush()``: the end
        of the faded tail, i.e. ``consumed_total`` plus the faded frames at the time of the flush.
        The faded frames still count as played once the device consumes them.
        """
        for item in self._items.values():
            for piece in item.pieces:
                start, _frames, valid, _wire = piece
                if valid < 0:
                    continue
                if start >= flush_position:
                    piece[2] = _DEAD
                elif start + valid > flush_position:
                    piece[2] = flush_position - start
                else:
                    continue
                item.truncated = True

    def played_wire_samples(self, item_id: str, consumed_total: int) -> int:
        """Wire samples of ``item_id`` handed to the device, in ``[0, received]``."""
        item = self._items.get(item_id)
        if item is None:
            return 0
        total = 0
        for start, frames, valid, wire in item.pieces:
            if valid < 0 or consumed_total <= start:
                continue
            heard = min(consumed_total - start, valid)
            total += wire if heard >= frames else wire * heard // frames
        return min(total, item.received)

    def played_ms(self, item_id: str, consumed_total: int) -> int:
        """`played_wire_samples` in whole milliseconds at the wire rate (rounded down)."""
        return self.played_wire_samples(item_id, consumed_total) * 1000 // self.wire_rate

    def received_wire_samples(self, item_id: str) -> int:
        """Wire samples of ``item_id`` recorded by `on_write` (0 for an unknown item)."""
        item = self._items.get(item_id)
        return 0 if item is None else item.received

    def fully_played(self, item_id: str, consumed_total: int) -> bool:
        """True when every recorded frame of the item was handed to the device.

        False for an unknown item and for an item a flush cut short.
        """
        item = self._items.get(item_id)
        if item is None or item.truncated:
            return False
        return all(consumed_total >= start + frames for start, frames, _valid, _wire in item.pieces)

    def forget(self, item_id: str) -> None:
        """Drop what is known about ``item_id`` (no error if unknown)."""
        self._items.pop(item_id, None)

    def __contains__(self, item_id: object) -> bool:
        return item_id in self._items

    def __len__(self) -> int:
        return len(self._items)


class _Item:
    """One assistant item's pieces: ``[device_start, device_frames, valid_frames, wire_samples]``."""

    __slots__ = ("pieces", "received", "truncated")

    def __init__(self) -> None:
        self.pieces: list[list[int]] = []
        self.received = 0
        self.truncated = False
