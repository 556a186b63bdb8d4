"""The microphone pipeline: blocks in at the device's rate, whole 40 ms wire appends out. Pure."""

from __future__ import annotations

import numpy as np

from voicechat.audio.capture import Capture
from voicechat.audio.echo import EchoPath
from voicechat.protocol.constants import APPEND_MS, WIRE_RATE

CHUNK_BYTES = WIRE_RATE * APPEND_MS // 1000 * 2


def blocks(rate: int, n: int, ms: int = 20) -> list[np.ndarray]:
    size = rate * ms // 1000
    return [np.full(size, i + 1, dtype=np.int16) for i in range(n)]


def test_wire_rate_blocks_are_cut_into_whole_appends_once() -> None:
    chunks: list[bytes] = []
    capture = Capture(WIRE_RATE, chunks.append)
    for block in blocks(WIRE_RATE, 5):
        capture.put(block)
        capture.drain()
    assert [len(c) for c in chunks] == [CHUNK_BYTES, CHUNK_BYTES]  # 100 ms: two appends, 20 ms held back
    capture.flush()
    assert len(chunks[-1]) == CHUNK_BYTES // 2  # the end of a turn hands on what was held back
    capture.drop()


def test_a_device_rate_is_resampled_to_the_wire_rate() -> None:
    chunks: list[bytes] = []
    capture = Capture(48_000, chunks.append)
    for block in blocks(48_000, 50):  # 1 s
        capture.put(block)
    capture.drain()
    assert chunks and all(len(c) == CHUNK_BYTES for c in chunks)
    assert abs(len(chunks) * APPEND_MS - 1000) <= APPEND_MS  # the resampler's delay holds back at most one


def test_the_queue_is_bounded_and_counts_what_it_dropped() -> None:
    chunks: list[bytes] = []
    capture = Capture(WIRE_RATE, chunks.append, backlog=4)
    for block in blocks(WIRE_RATE, 6):  # the loop never drained: the two oldest go
        capture.put(block)
    assert capture.overflows == 2
    capture.drain()
    samples = np.frombuffer(b"".join(chunks), dtype="<i2")
    assert samples[0] == 3  # the first block left is the third


def test_the_echo_path_sees_each_block_with_its_reference() -> None:
    seen: list[tuple[int, int]] = []

    class Spy(EchoPath):
        def process(self, mic, ref, active):  # type: ignore[no-untyped-def]
            seen.append((int(mic[0]), int(ref[0])))
            return mic

    taken: list[int] = []

    def reference(n: int) -> np.ndarray:
        taken.append(n)
        return np.full(n, 7, dtype=np.int16)

    capture = Capture(WIRE_RATE, lambda _pcm: None, echo=Spy("off", WIRE_RATE), reference=reference)
    capture.put(np.full(480, 1, dtype=np.int16), np.full(480, 9, dtype=np.int16))  # a file's own reference
    capture.put(np.full(480, 2, dtype=np.int16))  # a device's: read from the tap in step
    capture.drain()
    assert seen == [(1, 9), (2, 7)] and taken == [480]
