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

    def reference(n: int, mark: int | None) -> np.ndarray:
        taken.append(n)
        return np.full(n, 7, dtype=np.int16)

    capture = Capture(WIRE_RATE, lambda _pcm: None, echo=Spy("off", WIRE_RATE), reference=reference)
    capture.put(np.full(480, 1, dtype=np.int16), np.full(480, 9, dtype=np.int16))  # a file's own reference
    capture.put(np.full(480, 2, dtype=np.int16))  # a device's: read from the tap in step
    capture.drain()
    assert seen == [(1, 9), (2, 7)] and taken == [480]


def test_a_quiet_room_is_sent_in_longer_pieces_and_a_voice_at_once() -> None:
    """After 2 s below the quiet level, the pieces grow to 200 ms (a fifth of the sends); the first
    loud block hands on everything held with it, and the pieces are short again until the room has
    been quiet for 2 s once more. The speaker playing changes nothing: the level judged is what
    goes out, after the echo path."""
    chunks: list[bytes] = []
    playing = [False]
    capture = Capture(WIRE_RATE, chunks.append, quiet_chunk_ms=200, active=lambda: playing[0])
    hiss = np.full(480, 50, dtype=np.int16)  # -56 dBFS: quiet
    for _ in range(100):  # 2 s
        capture.put(hiss)
        capture.drain()
    assert {len(c) for c in chunks} == {CHUNK_BYTES} and len(chunks) == 49  # 40 ms held from here
    del chunks[:]
    for _ in range(29):  # 0.58 s more of a quiet room: three pieces of 200 ms, 20 ms held
        capture.put(hiss)
        capture.drain()
    assert [len(c) for c in chunks] == [5 * CHUNK_BYTES] * 3
    del chunks[:]
    for _ in range(6):  # 140 ms held
        capture.put(hiss)
        capture.drain()
    assert chunks == []
    capture.put(np.full(480, 3000, dtype=np.int16))  # a voice: what was held goes with it, now
    capture.drain()
    assert [len(c) for c in chunks] == [4 * CHUNK_BYTES]  # 160 ms in one append
    del chunks[:]
    for _ in range(20):  # quiet again, but not yet for 2 s: short pieces
        capture.put(hiss)
        capture.drain()
    assert {len(c) for c in chunks} == {CHUNK_BYTES}
    for _ in range(100):  # quiet long enough, then the speaker plays: what goes out stays quiet
        capture.put(hiss)
        capture.drain()
    del chunks[:]
    playing[0] = True
    for _ in range(30):
        capture.put(hiss)
        capture.drain()
    assert [len(c) for c in chunks] == [5 * CHUNK_BYTES] * 3


def test_a_quiet_room_wakes_the_loop_once_a_piece() -> None:
    """From the audio thread: while the room is quiet the loop is woken once a piece's worth of
    blocks has come, and at once for a loud block."""

    class Loop:
        calls = 0

        def call_soon_threadsafe(self, fn: object) -> None:
            self.calls += 1

    loop = Loop()
    capture = Capture(WIRE_RATE, lambda _pcm: None, quiet_chunk_ms=200)
    capture.bind(loop)  # type: ignore[arg-type]
    hiss = np.full(480, 50, dtype=np.int16)
    for _ in range(100):  # not yet quiet for 2 s: a wake-up per block
        capture.put_threadsafe(hiss)
        capture.drain()
    assert loop.calls == 100
    loop.calls = 0
    for _ in range(40):  # quiet: one wake-up per ten blocks (200 ms)
        capture.put_threadsafe(hiss)
        if loop.calls and capture._draining:
            capture.drain()
    assert loop.calls == 4
    capture.put_threadsafe(np.full(480, 3000, dtype=np.int16))
    assert loop.calls == 5  # a loud block wakes it at once


def test_a_polled_capture_wakes_nobody_and_loses_nothing() -> None:
    """While the loop drains on its own tick (``polled``: the speaker plays), blocks put from the
    audio thread ask for no wake-up, loud or not; the tick's drain sends every one of them, and
    once unpolled the wake-ups come back."""

    class Loop:
        calls = 0

        def call_soon_threadsafe(self, fn: object) -> None:
            self.calls += 1

    loop = Loop()
    chunks: list[bytes] = []
    capture = Capture(WIRE_RATE, chunks.append, quiet_chunk_ms=200)
    capture.bind(loop)  # type: ignore[arg-type]
    capture.polled = True
    for k in range(10):
        capture.put_threadsafe(np.full(480, 3000 if k % 2 else 50, dtype=np.int16))
        if k % 3 == 2:
            capture.drain()  # the loop's tick, not in step with the blocks
    capture.drain()
    assert loop.calls == 0
    assert b"".join(chunks) == np.array([3000 if k % 2 else 50 for k in range(10)], dtype="<i2").repeat(480).tobytes()
    capture.polled = False
    capture.put_threadsafe(np.full(480, 50, dtype=np.int16))
    assert loop.calls == 1


def test_blocks_dropped_unread_take_their_reference_with_them() -> None:
    """A loop that fell a second behind loses the oldest microphone blocks; the speaker audio
    handed over the same time is skipped too, so every block left keeps its own reference (a
    reference read on in order would pair each later block with audio two blocks older)."""
    seen: list[tuple[int, int]] = []
    position = [0]

    class Spy(EchoPath):
        def process(self, mic, ref, active):  # type: ignore[no-untyped-def]
            seen.append((int(mic[0]), int(ref[0])))
            return mic

    def reference(n: int, mark: int | None) -> np.ndarray:
        out = np.arange(position[0], position[0] + n) // 480 + 1  # frame i of the speaker: block i // 480 + 1
        position[0] += n
        return out.astype(np.int16)

    capture = Capture(WIRE_RATE, lambda _pcm: None, echo=Spy("off", WIRE_RATE), reference=reference, backlog=4)
    for k in range(6):  # captured while the speaker played block k + 1; the loop never drained
        capture.put_threadsafe(np.full(480, k + 1, dtype=np.int16))
    capture.drain()
    assert capture.overflows == 2
    assert seen == [(3, 3), (4, 4), (5, 5), (6, 6)]
