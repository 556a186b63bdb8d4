"""The playback ring (prebuffer, end mark, underrun, overflow, flush) and the playout tracker."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from voicechat.audio.playback import PlaybackBuffer
from voicechat.audio.playout import PlayoutTracker


def ramp_audio(n: int, start: int = 1) -> np.ndarray:
    """Distinct non-zero samples, so silence and ordering are unambiguous."""
    return (np.arange(start, start + n) % 30000 + 1).astype(np.int16)


def read(buf: PlaybackBuffer, n: int) -> tuple[np.ndarray, int]:
    out = np.full(n, 12345, np.int16)  # garbage the buffer must overwrite
    take = buf.read_into(out)
    return out, take


def assert_invariant(buf: PlaybackBuffer) -> None:
    assert buf.written_total == buf.consumed_total + buf.queued + buf.flushed_frames_total
    assert buf.write_position == buf.written_total - buf.flushed_frames_total
    assert 0 <= buf.queued <= buf.capacity


# ---- prebuffer, end mark, underrun ---------------------------------------------------------


def test_prebuffer_holds_playback_until_the_target_is_queued() -> None:
    buf = PlaybackBuffer(1000, prebuffer_frames=100, fade_frames=10)
    audio = ramp_audio(100)
    buf.write(audio[:60])
    out, take = read(buf, 32)
    assert take == 0
    assert not out.any()
    assert buf.consumed_total == 0
    assert buf.queued == 60
    assert not buf.playing
    assert buf.underruns == 0
    assert buf.underrun_frames == 0

    buf.write(audio[60:99])
    assert read(buf, 32)[1] == 0  # 99 < 100

    buf.write(audio[99:])
    out, take = read(buf, 32)
    assert take == 32
    np.testing.assert_array_equal(out, audio[:32])
    assert buf.playing
    assert buf.consumed_total == 32
    assert_invariant(buf)


def test_once_playing_it_keeps_playing_below_the_target() -> None:
    buf = PlaybackBuffer(1000, prebuffer_frames=64, fade_frames=10)
    audio = ramp_audio(96)
    buf.write(audio[:64])
    read(buf, 32)
    buf.write(audio[64:])  # 64 queued again
    out, take = read(buf, 48)  # below the target after this read, still plays
    assert take == 48
    np.testing.assert_array_equal(out, audio[32:80])
    out, take = read(buf, 16)
    assert take == 16
    np.testing.assert_array_equal(out, audio[80:96])
    assert buf.underruns == 0


def test_mark_end_releases_a_short_tail_and_drains_without_underrun() -> None:
    buf = PlaybackBuffer(1000, prebuffer_frames=100, fade_frames=10)
    audio = ramp_audio(30)
    buf.write(audio)
    assert read(buf, 32)[1] == 0
    buf.mark_end()
    out, take = read(buf, 32)
    assert take == 30
    np.testing.assert_array_equal(out[:30], audio)
    assert not out[30:].any()
    assert not buf.playing
    for _ in range(3):
        out, take = read(buf, 32)
        assert take == 0
        assert not out.any()
    assert buf.underruns == 0
    assert buf.underrun_frames == 0
    assert buf.consumed_total == 30
    assert_invariant(buf)


def test_mark_end_while_playing_drains_cleanly() -> None:
    buf = PlaybackBuffer(1000, prebuffer_frames=64, fade_frames=10)
    audio = ramp_audio(100)
    buf.write(audio)
    read(buf, 32)
    buf.mark_end()
    assert read(buf, 64)[1] == 64
    out, take = read(buf, 64)
    assert take == 4
    np.testing.assert_array_equal(out[:4], audio[96:])
    assert not out[4:].any()
    assert buf.underruns == 0
    assert buf.underrun_frames == 0


def test_mark_end_on_an_empty_playing_buffer_is_a_drain() -> None:
    buf = PlaybackBuffer(1000, prebuffer_frames=32, fade_frames=10)
    buf.write(ramp_audio(64))
    read(buf, 32)
    read(buf, 32)
    assert buf.playing  # exactly drained, no sign yet whether more is coming
    buf.mark_end()
    assert read(buf, 32)[1] == 0
    assert buf.underruns == 0
    assert buf.underrun_frames == 0


def test_a_write_after_the_mark_waits_for_the_target_again() -> None:
    buf = PlaybackBuffer(1000, prebuffer_frames=100, fade_frames=10)
    buf.write(ramp_audio(20))
    buf.mark_end()
    assert read(buf, 32)[1] == 20
    buf.write(ramp_audio(50, start=100))  # the next response starts: not released by the old mark
    out, take = read(buf, 32)
    assert take == 0
    assert not out.any()
    assert buf.underruns == 0


def test_audio_after_the_mark_is_not_released_with_the_tail() -> None:
    """At the mark the old item ends; the new one continues seamlessly only when prebuffered."""
    buf = PlaybackBuffer(1000, prebuffer_frames=40, fade_frames=10)
    first = ramp_audio(50)
    buf.write(first)
    read(buf, 32)
    buf.mark_end()  # 18 frames of the finished item remain
    second = ramp_audio(10, start=1000)
    buf.write(second)  # 10 < 40: not enough to continue into
    out, take = read(buf, 32)
    assert take == 18
    np.testing.assert_array_equal(out[:18], first[32:])
    assert not out[18:].any()
    assert buf.underruns == 0  # the end of a marked item is a drain
    assert read(buf, 32)[1] == 0  # the new item waits for its prebuffer

    third = ramp_audio(30, start=2000)
    buf.write(third)  # 40 queued: the target is met
    out, take = read(buf, 32)
    assert take == 32
    np.testing.assert_array_equal(out, np.concatenate([second, third[:22]]))


def test_prebuffered_audio_after_the_mark_continues_seamlessly() -> None:
    buf = PlaybackBuffer(1000, prebuffer_frames=40, fade_frames=10)
    first = ramp_audio(40)
    buf.write(first)
    read(buf, 32)
    buf.mark_end()
    second = ramp_audio(40, start=500)
    buf.write(second)
    out, take = read(buf, 32)
    assert take == 32
    np.testing.assert_array_equal(out, np.concatenate([first[32:], second[:24]]))
    assert buf.playing


def test_reaching_the_mark_exactly_at_a_block_end_rearms_the_prebuffer() -> None:
    buf = PlaybackBuffer(1000, prebuffer_frames=40, fade_frames=10)
    buf.write(ramp_audio(64))
    read(buf, 32)
    buf.mark_end()
    assert read(buf, 32)[1] == 32  # exactly up to the mark
    assert not buf.playing
    buf.write(ramp_audio(10, start=100))
    assert read(buf, 32)[1] == 0
    assert buf.underruns == 0


def test_underrun_counts_pads_and_rearms_the_prebuffer() -> None:
    buf = PlaybackBuffer(1000, prebuffer_frames=64, fade_frames=10)
    audio = ramp_audio(128)
    buf.write(audio[:64])
    assert read(buf, 32)[1] == 32
    out, take = read(buf, 64)  # runs dry mid-block while playing, no end mark
    assert take == 32
    np.testing.assert_array_equal(out[:32], audio[32:64])
    assert not out[32:].any()
    assert buf.underruns == 1
    assert buf.underrun_frames == 32
    assert not buf.playing

    buf.write(audio[64:74])  # below the target: the gap goes on
    out, take = read(buf, 32)
    assert take == 0
    assert not out.any()
    assert buf.underruns == 1
    assert buf.underrun_frames == 64

    buf.write(audio[74:128])  # 64 queued: resume
    out, take = read(buf, 32)
    assert take == 32
    np.testing.assert_array_equal(out, audio[64:96])
    assert buf.underruns == 1
    assert buf.underrun_frames == 64
    assert buf.consumed_total == 96
    assert_invariant(buf)


def speech_with_a_pause(loud: int = 40, quiet: int = 40) -> np.ndarray:
    # loud: the ramp from 1000 stays far above the pause level (-40 dBFS, 328)
    return np.concatenate([ramp_audio(loud, start=1000), np.zeros(quiet, np.int16), ramp_audio(loud, start=2000)])


def test_a_pause_is_lengthened_while_the_queue_is_short_of_the_cushion() -> None:
    buf = PlaybackBuffer(1000, prebuffer_frames=20, fade_frames=5, rate=1000)  # 5 frames back, 10 ahead
    buf.set_cushion(200)
    audio = speech_with_a_pause()
    buf.write(audio)  # 120 queued, below the cushion
    heard, added = [], 0
    for _ in range(30):
        out, take = read(buf, 10)
        if take == 0:
            assert not out.any() and buf.playing
            # only inside the pause: 5 silent frames played, 10 silent frames next
            assert 45 <= buf.consumed_total <= 70
            added += 10
        heard.append(out[:take])
    np.testing.assert_array_equal(np.concatenate(heard), audio[: buf.consumed_total])
    assert added == buf.stretched_frames > 0
    assert buf.underruns == 0 or buf.consumed_total == 120  # only the end of what came runs dry
    assert_invariant(buf)


def test_a_queue_at_the_cushion_plays_its_pauses_as_they_are() -> None:
    buf = PlaybackBuffer(1000, prebuffer_frames=20, fade_frames=5, rate=1000)
    buf.set_cushion(40)
    buf.write(speech_with_a_pause())  # through the pause (frames 40-79) at least 40 stay queued
    for _ in range(8):
        assert read(buf, 10)[1] == 10
    assert buf.stretched_frames == 0


def test_no_pause_is_lengthened_past_the_end_mark_or_while_paused() -> None:
    for stop in ("mark_end", "pause"):
        buf = PlaybackBuffer(1000, prebuffer_frames=20, fade_frames=0, rate=1000)
        buf.set_cushion(500)
        buf.write(speech_with_a_pause())
        read(buf, 40)
        getattr(buf, stop)()  # the reply is complete / a local barge-in holds it
        for _ in range(10):
            read(buf, 10)
        assert buf.stretched_frames == 0, stop


def test_a_replys_lead_in_silence_plays_as_it_came() -> None:
    """Only pauses after the reply's first sound are lengthened: first sound is never later."""
    buf = PlaybackBuffer(1000, prebuffer_frames=20, fade_frames=5, rate=1000)
    buf.set_cushion(500)
    buf.write(np.concatenate([np.zeros(60, np.int16), speech_with_a_pause()]))  # 60 frames of lead-in
    heard = [read(buf, 10)[1] for _ in range(6)]
    assert heard == [10] * 6 and buf.stretched_frames == 0  # the lead-in, at once
    for _ in range(12):
        read(buf, 10)
    assert buf.stretched_frames > 0  # the pause after the first words is lengthened
    buf.mark_end()  # the next reply starts with silence too
    buf.write(np.concatenate([np.zeros(60, np.int16), ramp_audio(40, start=1000)]))
    before = buf.stretched_frames
    while buf.consumed_total < 160 + 60:
        assert read(buf, 10)[1] > 0
    assert buf.stretched_frames == before


def test_a_word_is_never_cut_to_rebuild_the_cushion() -> None:
    buf = PlaybackBuffer(1000, prebuffer_frames=20, fade_frames=5, rate=1000)
    buf.set_cushion(500)
    buf.write(ramp_audio(300, start=1000))
    for _ in range(30):
        assert read(buf, 10)[1] == 10
    assert buf.stretched_frames == 0


def test_underrun_gap_ends_when_the_end_is_marked() -> None:
    buf = PlaybackBuffer(1000, prebuffer_frames=64, fade_frames=10)
    buf.write(ramp_audio(64))
    read(buf, 32)
    read(buf, 64)
    assert buf.underruns == 1
    gap = buf.underrun_frames
    buf.write(ramp_audio(5, start=900))
    buf.mark_end()  # the response is complete: play the rest, silence after is not a gap
    assert read(buf, 32)[1] == 5
    read(buf, 32)
    assert buf.underruns == 1
    assert buf.underrun_frames == gap


def test_marking_the_end_of_an_empty_gap_stops_counting_it() -> None:
    buf = PlaybackBuffer(1000, prebuffer_frames=64, fade_frames=10)
    buf.write(ramp_audio(64))
    read(buf, 64)
    read(buf, 32)  # dry while playing: one underrun, the gap starts
    assert buf.underruns == 1
    assert buf.underrun_frames == 32
    buf.mark_end()  # the response had no more audio: this silence is the normal end
    read(buf, 32)
    assert buf.underrun_frames == 32


def test_an_empty_block_changes_nothing() -> None:
    buf = PlaybackBuffer(100, prebuffer_frames=0, fade_frames=0)
    buf.write(ramp_audio(10))
    assert buf.read_into(np.zeros(0, np.int16)) == 0
    assert buf.consumed_total == 0
    assert not buf.playing


def test_zero_prebuffer_starts_at_once() -> None:
    buf = PlaybackBuffer(100, prebuffer_frames=0, fade_frames=0)
    assert read(buf, 8)[1] == 0  # nothing queued: silence, not an underrun
    assert buf.underruns == 0
    buf.write(ramp_audio(8))
    assert read(buf, 8)[1] == 8


def test_set_prebuffer_is_clamped() -> None:
    buf = PlaybackBuffer(100, prebuffer_frames=500, fade_frames=0)
    assert buf.prebuffer == 100
    buf.set_prebuffer(-5)
    assert buf.prebuffer == 0
    buf.set_prebuffer(40)
    assert buf.prebuffer == 40
    buf.write(ramp_audio(39))
    assert read(buf, 8)[1] == 0
    buf.set_prebuffer(39)
    assert read(buf, 8)[1] == 8


# ---- flush (barge-in) ----------------------------------------------------------------------


def test_flush_during_playback_fades_out_within_fade_frames() -> None:
    buf = PlaybackBuffer(1000, prebuffer_frames=64, fade_frames=16)
    audio = np.full(200, 10000, np.int16)
    buf.write(audio)
    read(buf, 32)
    dropped = buf.flush()
    assert dropped == 200 - 32 - 16
    assert buf.queued == 16
    assert buf.flushed_frames_total == dropped
    out, take = read(buf, 32)
    assert take == 16
    expected = np.rint(10000 * np.arange(16, 0, -1) / 17)
    np.testing.assert_array_equal(out[:16], expected)
    assert np.all(np.diff(out[:16].astype(int)) < 0)  # strictly decaying
    assert out[0] < 10000
    assert not out[16:].any()
    assert buf.underruns == 0  # a flush's fade ending is not an underrun
    assert buf.queued == 0
    assert not buf.playing
    assert buf.consumed_total == 48
    assert_invariant(buf)

    buf.write(ramp_audio(40))  # the next response waits for the prebuffer again
    assert read(buf, 32)[1] == 0
    buf.write(ramp_audio(24))
    assert read(buf, 32)[1] == 32


def test_flush_fades_what_is_there_when_less_than_fade_frames() -> None:
    buf = PlaybackBuffer(1000, prebuffer_frames=32, fade_frames=16)
    buf.write(np.full(37, -8000, np.int16))
    read(buf, 32)
    assert buf.flush() == 0
    out, take = read(buf, 32)
    assert take == 5
    np.testing.assert_array_equal(out[:5], np.rint(-8000 * np.arange(5, 0, -1) / 6))
    assert not out[5:].any()


def test_flush_fade_wraps_around_the_ring() -> None:
    buf = PlaybackBuffer(50, prebuffer_frames=10, fade_frames=20)
    buf.write(ramp_audio(40))
    read(buf, 40)  # read position now 40: a 20-frame fade wraps at 50
    buf.write(np.full(40, 3000, np.int16))
    read(buf, 2)
    assert buf.flush() == 18
    out, take = read(buf, 32)
    assert take == 20
    np.testing.assert_array_equal(out[:20], np.rint(3000 * np.arange(20, 0, -1) / 21))


def test_flush_when_not_playing_drops_everything() -> None:
    buf = PlaybackBuffer(1000, prebuffer_frames=100, fade_frames=16)
    buf.write(ramp_audio(60))
    read(buf, 32)  # still prebuffering: nothing is sounding
    assert buf.flush() == 60
    assert buf.queued == 0
    out, take = read(buf, 32)
    assert take == 0
    assert not out.any()
    assert buf.flush() == 0


def test_flush_after_an_underrun_drops_everything_and_ends_the_gap() -> None:
    buf = PlaybackBuffer(1000, prebuffer_frames=64, fade_frames=16)
    buf.write(ramp_audio(64))
    read(buf, 64)
    read(buf, 32)
    assert buf.underruns == 1
    gap = buf.underrun_frames
    buf.write(ramp_audio(10))
    assert buf.flush() == 10
    read(buf, 32)
    assert buf.underrun_frames == gap


def test_second_flush_during_the_fade_keeps_fading() -> None:
    buf = PlaybackBuffer(1000, prebuffer_frames=8, fade_frames=8)
    buf.write(np.full(100, 9000, np.int16))
    read(buf, 8)
    buf.flush()
    out1, _ = read(buf, 4)
    assert buf.flush() == 0  # only 4 faded frames remain; they are faded again
    out2, take = read(buf, 8)
    assert take == 4
    once = np.rint(9000 * np.arange(8, 0, -1) / 9)
    np.testing.assert_array_equal(out1, once[:4])
    np.testing.assert_array_equal(out2[:4], np.rint(once[4:] * np.arange(4, 0, -1) / 5))
    assert not out2[4:].any()


def test_zero_fade_frames_cuts_immediately() -> None:
    buf = PlaybackBuffer(100, prebuffer_frames=8, fade_frames=0)
    buf.write(ramp_audio(50))
    read(buf, 8)
    assert buf.flush() == 42
    assert read(buf, 8)[1] == 0


# ---- overflow, wrap-around, validation, threads --------------------------------------------


def test_overflow_drops_the_newest_audio_and_counts_it() -> None:
    buf = PlaybackBuffer(100, prebuffer_frames=0, fade_frames=0)
    audio = ramp_audio(180)
    assert buf.write(audio[:80]) == 80
    assert buf.write(audio[80:130]) == 20
    assert buf.overflow_frames == 30
    assert buf.written_total == 100
    assert buf.write(audio[130:]) == 0
    assert buf.overflow_frames == 80
    out, take = read(buf, 128)
    assert take == 100
    np.testing.assert_array_equal(out[:100], audio[:100])
    assert buf.write(audio[:150]) == 100
    assert buf.overflow_frames == 130
    assert_invariant(buf)


def test_ring_wraps_without_reordering() -> None:
    buf = PlaybackBuffer(37, prebuffer_frames=0, fade_frames=0)
    audio = ramp_audio(1000)
    got: list[np.ndarray] = []
    pos = 0
    sizes = [(30, 17), (5, 1), (20, 36), (36, 37), (1, 13), (37, 5), (13, 29)]
    while pos < len(audio):
        for write_size, read_size in sizes:
            free = buf.capacity - buf.queued
            pos += buf.write(audio[pos : pos + min(write_size, free)])
            out, take = read(buf, read_size)
            got.append(out[:take])
    while buf.queued:
        out, take = read(buf, 10)
        got.append(out[:take])
    np.testing.assert_array_equal(np.concatenate(got), audio)
    assert buf.overflow_frames == 0
    assert buf.underruns > 0  # reads outpaced writes: the wrap was exercised in both states


def test_read_into_fills_a_strided_view() -> None:
    buf = PlaybackBuffer(100, prebuffer_frames=0, fade_frames=0)
    audio = ramp_audio(5)
    buf.write(audio)
    outdata = np.full((8, 2), 7, np.int16)  # what PortAudio hands a callback
    assert buf.read_into(outdata[:, 0]) == 5
    np.testing.assert_array_equal(outdata[:, 0], np.concatenate([audio, np.zeros(3, np.int16)]))
    assert (outdata[:, 1] == 7).all()


def test_write_rejects_other_dtypes_and_shapes() -> None:
    buf = PlaybackBuffer(100, prebuffer_frames=0, fade_frames=0)
    with pytest.raises(ValueError, match="int16"):
        buf.write(np.zeros(4, np.float32))
    with pytest.raises(ValueError, match="int16"):
        buf.write(np.zeros((4, 2), np.int16))
    assert buf.written_total == 0


def test_constructor_validation() -> None:
    with pytest.raises(ValueError):
        PlaybackBuffer(0, 0, 0)
    with pytest.raises(ValueError):
        PlaybackBuffer(10, 0, -1)


def test_concurrent_writer_and_reader_keep_every_sample_in_order() -> None:
    buf = PlaybackBuffer(512, prebuffer_frames=64, fade_frames=0)
    audio = ramp_audio(200_000)
    received: list[np.ndarray] = []
    done = threading.Event()

    def reader() -> None:
        out = np.zeros(97, np.int16)
        while not (done.is_set() and buf.queued == 0):
            take = buf.read_into(out)
            received.append(out[:take].copy())

    thread = threading.Thread(target=reader)
    thread.start()
    pos = 0
    while pos < len(audio):
        pos += buf.write(audio[pos : pos + 300])
    buf.mark_end()
    done.set()
    thread.join(timeout=30)
    assert not thread.is_alive()
    np.testing.assert_array_equal(np.concatenate(received), audio)
    assert buf.consumed_total == len(audio)


# ---- property: accounting and content under random operations ------------------------------


@dataclass
class Model:
    """What must come out: the accepted samples in order, faded where a flush kept them."""

    queue: list[tuple[float, int]] = field(default_factory=list)  # (expected value, tolerance)
    release_end: int = 0  # play position of the latest end mark or flush
    next_value: int = 1000  # written samples stay above the pause level
    cushion: int = 0


operations = st.lists(
    st.one_of(
        st.tuples(st.just("write"), st.integers(0, 260)),
        st.tuples(st.just("pause_in_speech"), st.integers(15, 120)),
        st.tuples(st.just("read"), st.integers(0, 90)),
        st.tuples(st.just("cushion"), st.integers(-10, 260)),
        st.tuples(st.just("read"), st.integers(1, 20)),  # small reads: positions inside a pause
        st.tuples(st.just("flush"), st.just(0)),
        st.tuples(st.just("mark_end"), st.just(0)),
        st.tuples(st.just("prebuffer"), st.integers(-10, 260)),
    ),
    max_size=60,
)


@settings(max_examples=400, deadline=None)
@given(
    capacity=st.integers(1, 200),
    prebuffer=st.integers(0, 220),
    fade=st.integers(0, 40),
    ops=operations,
)
def test_random_operations_keep_accounting_and_content(
    capacity: int, prebuffer: int, fade: int, ops: list[tuple[str, int]]
) -> None:
    buf = PlaybackBuffer(capacity, prebuffer, fade, rate=1000)  # pauses judged over 5 + 10 frames
    model = Model()
    for op, arg in ops:
        before = snapshot(buf)
        if op == "write":
            do_write(buf, model, arg)
        elif op == "pause_in_speech":
            do_write(buf, model, arg, quiet=True)
        elif op == "cushion":
            buf.set_cushion(arg)
            model.cushion = max(0, min(arg, capacity))
        elif op == "read":
            do_read(buf, model, arg, before)
        elif op == "flush":
            do_flush(buf, model, before)
        elif op == "mark_end":
            buf.mark_end()
            model.release_end = buf.write_position
        else:
            buf.set_prebuffer(arg)
            assert buf.prebuffer == max(0, min(arg, capacity))
        assert_invariant(buf)
        assert buf.queued == len(model.queue)
        assert buf.consumed_total >= before.consumed
        assert buf.underrun_frames >= before.underrun_frames
        assert buf.underruns >= before.underruns


@dataclass(frozen=True)
class Snapshot:
    consumed: int
    queued: int
    playing: bool
    underruns: int
    underrun_frames: int
    prebuffer: int
    stretched: int


def snapshot(buf: PlaybackBuffer) -> Snapshot:
    return Snapshot(
        buf.consumed_total,
        buf.queued,
        buf.playing,
        buf.underruns,
        buf.underrun_frames,
        buf.prebuffer,
        buf.stretched_frames,
    )


def do_write(buf: PlaybackBuffer, model: Model, n: int, quiet: bool = False) -> None:
    samples = np.zeros(n, np.int16) if quiet else ramp_audio(n, start=model.next_value)
    model.next_value += 0 if quiet else n
    free = buf.capacity - buf.queued
    overflow = buf.overflow_frames
    accepted = buf.write(samples)
    assert accepted == min(n, free)
    assert buf.overflow_frames - overflow == n - accepted
    model.queue.extend((float(v), 0) for v in samples[:accepted])


def do_read(buf: PlaybackBuffer, model: Model, n: int, before: Snapshot) -> None:
    out, take = read(buf, n)
    assert 0 <= take <= min(n, before.queued)
    assert buf.consumed_total - before.consumed == take
    assert not out[take:].any()
    expected = model.queue[:take]
    del model.queue[:take]
    for got, (value, tolerance) in zip(out[:take].tolist(), expected, strict=True):
        assert abs(got - value) <= tolerance
    check_read_policy(buf, model, n, take, before)


def check_read_policy(
    buf: PlaybackBuffer, model: Model, n: int, take: int, before: Snapshot
) -> None:
    if buf.stretched_frames > before.stretched:
        # A lengthened pause: while playing short of the cushion, past any end mark, and only
        # where what was just played and what comes next are silent.
        assert take == 0 and buf.stretched_frames - before.stretched == n
        assert before.playing and buf.playing and before.queued < model.cushion
        assert before.consumed >= model.release_end
        assert buf.underruns == before.underruns and buf.underrun_frames == before.underrun_frames
        assert before.queued >= 10 and all(value == 0 for value, _ in model.queue[:10])
        return
    released = model.release_end - before.consumed
    if released > 0:  # audio before an end mark always plays
        assert take >= min(n, released)
    elif before.queued >= max(before.prebuffer, 1) or before.playing:
        assert take == min(n, before.queued)  # target met, or already playing: no holding back
    else:
        assert take == 0  # prebuffering
    new_underruns = buf.underruns - before.underruns
    assert new_underruns in (0, 1)
    if new_underruns:
        assert take < n
        assert buf.consumed_total > model.release_end  # never while draining a marked tail
    dry_while_playing = before.playing and take < n and buf.consumed_total > model.release_end
    if dry_while_playing:
        assert new_underruns == 1
    gap = buf.underrun_frames - before.underrun_frames
    assert gap == 0 or gap == n - take
    if take == n:
        assert gap == 0


def do_flush(buf: PlaybackBuffer, model: Model, before: Snapshot) -> None:
    dropped = buf.flush()
    keep = min(buf.fade_frames, before.queued) if before.playing else 0
    assert dropped == before.queued - keep
    assert buf.queued == keep
    kept = model.queue[:keep]
    model.queue[:] = [
        (float(np.rint(value * (keep - i) / (keep + 1))), tolerance + 1)
        for i, (value, tolerance) in enumerate(kept)
    ]
    model.release_end = buf.write_position
    assert buf.write_position == buf.consumed_total + keep


# ---- PlayoutTracker -----------------------------------------------------------------------


def test_tracker_one_to_one() -> None:
    tracker = PlayoutTracker(device_rate=24000)
    for i in range(3):
        tracker.on_write("a", 480, i * 480, 480)
    tracker.on_write("b", 480, 1440, 480)
    assert tracker.received_wire_samples("a") == 1440
    assert tracker.played_wire_samples("a", 0) == 0
    assert tracker.played_wire_samples("a", 100) == 100
    assert tracker.played_wire_samples("a", 1000) == 1000
    assert tracker.played_wire_samples("a", 1439) == 1439
    assert tracker.played_wire_samples("a", 5000) == 1440
    assert not tracker.fully_played("a", 1439)
    assert tracker.fully_played("a", 1440)
    assert tracker.played_wire_samples("b", 1440) == 0
    assert tracker.played_wire_samples("b", 1500) == 60
    assert tracker.played_ms("b", 1500) == 2  # 60 samples = 2.5 ms, rounded down


def test_tracker_24k_to_48k() -> None:
    tracker = PlayoutTracker(device_rate=48000)
    tracker.on_write("a", 480, 0, 960)
    tracker.on_write("a", 240, 960, 480)
    assert tracker.played_wire_samples("a", 1) == 0  # half a wire sample is not a sample
    assert tracker.played_wire_samples("a", 2) == 1
    assert tracker.played_wire_samples("a", 961) == 480
    assert tracker.played_wire_samples("a", 1000) == 500
    assert tracker.played_wire_samples("a", 1440) == 720
    assert tracker.played_ms("a", 1440) == 30
    assert tracker.fully_played("a", 1440)


def test_tracker_24k_to_44k1_uneven_pieces() -> None:
    tracker = PlayoutTracker(device_rate=44100)
    tracker.on_write("a", 480, 0, 880)  # a streaming resampler's pieces are uneven
    tracker.on_write("a", 480, 880, 884)
    tracker.on_write("a", 0, 1764, 2)  # the resampler's flushed tail
    assert tracker.played_wire_samples("a", 440) == 240
    assert tracker.played_wire_samples("a", 880 + 442) == 480 + 240
    assert tracker.played_wire_samples("a", 880 + 883) == 480 + 479
    assert tracker.played_wire_samples("a", 1764) == 960
    assert not tracker.fully_played("a", 1764)
    assert tracker.fully_played("a", 1766)


def test_tracker_piece_without_frames_counts_once_passed() -> None:
    tracker = PlayoutTracker(device_rate=48000)
    tracker.on_write("a", 100, 0, 0)  # swallowed by the resampler's filter for now
    tracker.on_write("a", 100, 0, 400)
    assert tracker.played_wire_samples("a", 0) == 0
    assert tracker.played_wire_samples("a", 4) == 101
    assert tracker.played_wire_samples("a", 400) == 200


def test_tracker_flush_mid_item_with_the_real_buffer() -> None:
    device_rate = 48000
    buf = PlaybackBuffer(48000, prebuffer_frames=480, fade_frames=96)
    tracker = PlayoutTracker(device_rate)

    def deliver(item_id: str, wire: int) -> None:
        start = buf.write_position
        accepted = buf.write(ramp_audio(wire * 2))  # stand-in for 24k -> 48k resampling
        tracker.on_write(item_id, wire, start, accepted)

    for _ in range(4):
        deliver("a", 480)  # 3840 frames queued
    block = np.zeros(480, np.int16)
    for _ in range(3):
        buf.read_into(block)
    assert tracker.played_wire_samples("a", buf.consumed_total) == 720

    buf.flush()  # barge-in: 96 faded frames remain
    tracker.on_flush(buf.write_position)
    assert buf.write_position == 1440 + 96
    deliver("a", 480)  # a late delta of the interrupted item (should be dropped, but is not)
    deliver("b", 480)
    for _ in range(10):
        buf.read_into(block)
        played = tracker.played_wire_samples("a", buf.consumed_total)
        assert played <= (1440 + 96) // 2 + 480  # at most the fade plus the late delta
        assert played <= tracker.received_wire_samples("a")
    assert tracker.received_wire_samples("a") == 2400
    assert not tracker.fully_played("a", buf.consumed_total)

    fresh = PlayoutTracker(device_rate)
    fresh.on_write("x", 1920, 0, 3840)
    fresh.on_flush(1000)
    for consumed in (0, 999, 1000, 1001, 5000):
        assert fresh.played_wire_samples("x", consumed) == min(consumed, 1000) // 2
    assert not fresh.fully_played("x", 5000)


def test_tracker_flush_discards_pieces_at_or_after_the_position() -> None:
    tracker = PlayoutTracker(device_rate=24000)
    tracker.on_write("a", 480, 0, 480)
    tracker.on_write("b", 480, 480, 480)  # queued behind a, never started
    tracker.on_flush(480)
    tracker.on_write("c", 480, 480, 480)  # reuses b's positions
    assert tracker.played_wire_samples("a", 960) == 480
    assert tracker.fully_played("a", 960)  # a ended before the flush point: untouched
    assert tracker.played_wire_samples("b", 960) == 0
    assert tracker.received_wire_samples("b") == 480
    assert not tracker.fully_played("b", 960)
    assert tracker.played_wire_samples("c", 960) == 480


def test_tracker_memory_is_bounded() -> None:
    tracker = PlayoutTracker(device_rate=24000, max_items=3)
    for i in range(5):
        tracker.on_write(f"item{i}", 10, i * 10, 10)
    assert len(tracker) == 3
    assert "item0" not in tracker
    assert "item1" not in tracker
    assert tracker.received_wire_samples("item0") == 0
    assert tracker.played_wire_samples("item0", 10_000) == 0
    assert not tracker.fully_played("item0", 10_000)
    assert tracker.played_wire_samples("item4", 10_000) == 10
    tracker.on_write("item2", 10, 50, 10)  # more of a known item evicts nothing
    assert len(tracker) == 3
    tracker.forget("item3")
    tracker.forget("never-seen")
    assert "item3" not in tracker
    assert len(tracker) == 2
    assert PlayoutTracker(24000).max_items == 64


def test_tracker_validation() -> None:
    with pytest.raises(ValueError):
        PlayoutTracker(0)
    with pytest.raises(ValueError):
        PlayoutTracker(24000, max_items=0)
    with pytest.raises(ValueError):
        PlayoutTracker(24000).on_write("a", -1, 0, 0)


@settings(max_examples=200, deadline=None)
@given(
    pieces=st.lists(st.tuples(st.integers(0, 600), st.integers(0, 1200)), min_size=1, max_size=12),
    flush_at=st.one_of(st.none(), st.integers(0, 8000)),
    probes=st.lists(st.integers(0, 16000), min_size=1, max_size=20),
)
def test_tracker_played_is_monotonic_and_bounded(
    pieces: list[tuple[int, int]], flush_at: int | None, probes: list[int]
) -> None:
    tracker = PlayoutTracker(device_rate=48000)
    position = 0
    for wire, frames in pieces:
        tracker.on_write("a", wire, position, frames)
        position += frames
    received = sum(wire for wire, _ in pieces)
    if flush_at is not None:
        tracker.on_flush(flush_at)
        at_flush = tracker.played_wire_samples("a", flush_at)
    previous = 0
    for consumed in sorted(probes):
        played = tracker.played_wire_samples("a", consumed)
        assert 0 <= played <= received
        assert played >= previous
        previous = played
        if flush_at is not None and consumed >= flush_at:
            assert played == at_flush  # nothing after the flush point ever plays
    if flush_at is None or flush_at > position:  # (wire-only pieces at a flush point are lost)
        assert tracker.played_wire_samples("a", position + 1) == received
        assert tracker.fully_played("a", position)
    elif flush_at < position:  # frames past the flush point never play
        assert not tracker.fully_played("a", 10**9)
