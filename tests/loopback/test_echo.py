"""Echo handling and local onset: the pure pieces, the paused speaker, and the real client in an echoing room."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests.helpers.server import speech_like
from voicechat import effects as fx
from voicechat.app import Output, talk
from voicechat.audio.aec import EchoCanceller, aec_available
from voicechat.audio.echo import EchoPath, threshold_db
from voicechat.audio.filedev import FileAudio
from voicechat.audio.format import rms_dbfs
from voicechat.audio.playback import PlaybackBuffer
from voicechat.audio.reftap import STARVED_LIMIT, RefTap
from voicechat.audio.wav import write_wav
from voicechat.config import resolve
from voicechat.protocol import events as ev
from voicechat.protocol.session_config import SessionConfig, TurnDetection
from voicechat.server import LocalServer, ServerOptions
from voicechat.session import LOCAL_ONSET_WAIT_S, Session
from voicechat.transcript import StreamSink

RATE = 24_000
BLOCK = 480  # 20 ms


def blocks(x: np.ndarray) -> list[np.ndarray]:
    return [x[i : i + BLOCK] for i in range(0, x.size - BLOCK + 1, BLOCK)]


# ---- levels and the reference tap ---------------------------------------------------------------


def test_level_db() -> None:
    assert rms_dbfs(np.zeros(480, dtype=np.int16)) == -120.0
    full = np.full(480, 32767, dtype=np.int16)
    assert rms_dbfs(full) == pytest.approx(0.0, abs=0.01)
    assert rms_dbfs((full // 10).astype(np.int16)) == pytest.approx(-20.0, abs=0.05)
    assert threshold_db(0.5) == -35.0


def test_ref_tap_starts_at_the_newest_audio_then_reads_in_order() -> None:
    tap = RefTap(1000, slack_blocks=0)
    assert tap.take(100).tolist() == [0] * 100  # the speaker has not started
    tap.write(np.arange(1, 301, dtype=np.int16))
    # The first real read starts at the newest block, so the reference leads its echo.
    assert tap.take(100).tolist() == list(range(201, 301))
    tap.write(np.arange(301, 401, dtype=np.int16))
    got = tap.take(200)  # only 100 more were written: the audio in order, then zeros for the rest
    assert got[:100].tolist() == list(range(301, 401)) and got[100:].tolist() == [0] * 100
    assert tap.take(50).tolist() == [0] * 50
    tap.write(np.arange(401, 701, dtype=np.int16))  # the writer catches up: nothing slid
    assert tap.take(100).tolist() == list(range(551, 651))
    assert tap.holes == 2 and tap.resyncs == 0


def test_ref_tap_skips_audio_it_was_too_slow_to_read() -> None:
    tap = RefTap(1000)
    for i in range(5):
        tap.write(np.full(400, i + 1, dtype=np.int16))  # 2000 frames into a 1000-frame ring
    got = tap.take(100)
    assert got.min() >= 3  # the oldest, overwritten audio is skipped, never returned garbled


def test_ref_tap_a_late_output_callback_never_slides_the_pairing() -> None:
    """The reader moves on with the microphone. When the output callback runs late (a busy
    machine), the block it had not written yet gets zeros and the next blocks their own audio:
    the pairing of microphone and reference holds. Waiting for the writer instead slid the
    reference a block later against the echo for good, and in a room whose echo comes soon
    after the speaker's writes, two slides left the echo ahead of its reference: the canceller
    lost it for the rest of the call."""
    tap = RefTap(10_000, max_lag_frames=300)  # one block of slack by default
    tap.write(np.arange(1, 201, dtype=np.int16))
    got = [tap.take(100) for _ in range(3)]  # three capture blocks; the output callback is late
    tap.write(np.arange(201, 501, dtype=np.int16))  # its late blocks arrive together
    got += [tap.take(100), tap.take(100)]
    assert [g.tolist() for g in got[:2]] == [list(range(1, 101)), list(range(101, 201))]
    assert not got[2].any()  # not yet written when it was read: its reference is lost, once
    assert [g.tolist() for g in got[3:]] == [list(range(301, 401)), list(range(401, 501))]
    assert tap.resyncs == 0 and tap.breaks == 0


def test_ref_tap_follows_the_speakers_underruns_and_drops_by_its_dac_times() -> None:
    """The output callback's DAC time says when its block will play. Steady, each block plays
    right after the one before. After an underrun it plays later by the gap: the speaker played
    silence there, and the reference gets as much silence at that frame, so the blocks after it
    keep their pairing with the echo. After a recovery that dropped audio it plays earlier: the
    reference skips as much. (Measured on the devices here: a stall of 120 ms in the output
    callback moved the speaker 41.3 ms later, and its DAC times jumped by 41.3 ms.)"""
    rate = 1000  # frames per second: a block of 100 frames lasts 0.1 s
    tap = RefTap(10_000, max_lag_frames=1000, slack_blocks=0, rate=rate)
    dac = {k: 1.0 + 0.1 * k for k in range(3)} | {k: 1.05 + 0.1 * k for k in (3, 4)} | {5: 1.52, 6: 1.62}
    got = []
    for k in range(7):
        tap.write(np.arange(100 * k + 1, 100 * k + 101, dtype=np.int16), dac[k], underflow=k in (3, 5))
        got.append(tap.take(100, tap.written).tolist())
    assert got[:3] == [list(range(100 * k + 1, 100 * k + 101)) for k in range(3)]
    assert got[3] == [0] * 50 + list(range(301, 351))  # the 50 ms the speaker ran dry
    assert got[4] == list(range(351, 451))
    assert got[5] == list(range(451, 501)) + list(range(531, 581))  # the 30 ms it dropped
    assert got[6] == list(range(581, 681))
    assert tap.breaks == 2 and tap.resyncs == 0

    # A step without an underrun is the estimate wandering (2-5 ms on a busy machine, the echo
    # where it was), and without DAC times (a file device) there is nothing to follow.
    for underflow, times in ((False, dac), (True, {k: 0.0 for k in dac})):
        blind = RefTap(10_000, max_lag_frames=1000, slack_blocks=0, rate=rate)
        for k in range(7):
            blind.write(np.arange(100 * k + 1, 100 * k + 101, dtype=np.int16), times[k], underflow)
            assert blind.take(100, blind.written).tolist() == list(range(100 * k + 1, 100 * k + 101))
        assert blind.breaks == 0


def test_ref_tap_reanchors_when_the_speaker_stops_reaching_it() -> None:
    """A speaker whose writes stop reaching the reader (its clock slower than the microphone's,
    or its stream stalled) for `STARVED_LIMIT` reads in a row: the reader starts again behind
    the newest audio, as at the start."""
    tap = RefTap(100_000, max_lag_frames=300, slack_blocks=0)
    tap.write(np.arange(1, 101, dtype=np.int16))
    assert tap.take(100).tolist() == list(range(1, 101))
    for _ in range(STARVED_LIMIT):
        assert not tap.take(100).any()
    tap.write(np.arange(101, 301, dtype=np.int16))
    assert tap.take(100, tap.written).tolist() == list(range(201, 301))
    assert tap.resyncs == 1


def test_ref_tap_catches_up_when_the_reader_falls_behind_but_not_for_callback_jitter() -> None:
    tap = RefTap(10_000, max_lag_frames=300, slack_blocks=0)
    tap.write(np.arange(1, 101, dtype=np.int16))
    assert tap.take(100).tolist() == list(range(1, 101))
    # Callback jitter: two output blocks land before the next capture block; read in order.
    tap.write(np.arange(101, 301, dtype=np.int16))
    assert tap.take(100).tolist() == list(range(101, 201))
    assert tap.resyncs == 0
    # The capture stream stalls for 5 blocks while the speaker keeps going: the reference
    # would lag the echo by 500 frames from then on. It jumps to the newest block instead.
    tap.write(np.arange(301, 801, dtype=np.int16))
    assert tap.take(100).tolist() == list(range(701, 801))
    assert tap.resyncs == 1
    tap.write(np.arange(801, 901, dtype=np.int16))
    assert tap.take(100).tolist() == list(range(801, 901))  # and reads in order again


def test_ref_tap_does_not_jump_for_a_loop_that_drains_the_microphone_late() -> None:
    """Each microphone block is marked with where the speaker was when it was captured. A loop
    that drains five blocks at once, late (a busy machine), reads the reference in order against
    those marks: the pairing of microphone and reference is what it was when they were captured."""
    tap = RefTap(10_000, max_lag_frames=300, slack_blocks=0)
    tap.write(np.arange(1, 101, dtype=np.int16))
    marks = [tap.written]
    assert tap.take(100, marks[0]).tolist() == list(range(1, 101))
    for k in range(5):  # five capture blocks, each beside one output block; the loop is busy
        tap.write(np.arange(101 + 100 * k, 201 + 100 * k, dtype=np.int16))
        marks.append(tap.written)
    for k, mark in enumerate(marks[1:]):
        assert tap.take(100, mark).tolist() == list(range(101 + 100 * k, 201 + 100 * k))
    assert tap.resyncs == 0
    # Unmarked (judged against now), the first late read would have jumped past 400 frames.
    late = RefTap(10_000, max_lag_frames=300, slack_blocks=0)
    late.write(np.arange(1, 101, dtype=np.int16))
    late.take(100)
    late.write(np.arange(101, 601, dtype=np.int16))
    assert late.take(100).tolist() == list(range(501, 601)) and late.resyncs == 1


# ---- the gate ---------------------------------------------------------------------------------


def run_path(path: EchoPath, mic: np.ndarray, ref: np.ndarray, active: bool = True) -> np.ndarray:
    return np.concatenate([path.process(m, r, active) for m, r in zip(blocks(mic), blocks(ref), strict=True)])


def echo_of(ref: np.ndarray, gain: float, delay_blocks: int = 3) -> np.ndarray:
    delayed = np.concatenate([np.zeros(delay_blocks * BLOCK), ref[: ref.size - delay_blocks * BLOCK]])
    return np.rint(delayed * gain).astype(np.int16)


def test_gate_keeps_the_assistants_own_voice_out() -> None:
    onsets: list[int] = []
    path = EchoPath("gate", RATE, on_onset=lambda: onsets.append(1))
    ref = speech_like(3.0)
    out = run_path(path, echo_of(ref, gain=1.0), ref)
    assert rms_dbfs(out) < -100  # nothing of the echo reaches the server
    assert not onsets


def test_gate_lets_a_louder_barge_in_through_and_fires_one_onset() -> None:
    onsets: list[int] = []
    path = EchoPath("gate", RATE, on_onset=lambda: onsets.append(1))
    ref = speech_like(4.0)
    mic = echo_of(ref, gain=0.5).astype(np.int32)
    user = speech_like(1.0, amplitude=12000, f0=210, seed=1)
    start = 2 * RATE
    mic[start : start + user.size] += user
    out = run_path(path, np.clip(mic, -32768, 32767).astype(np.int16), ref)
    before, during = out[RATE : start], out[start + BLOCK * 3 : start + user.size]
    assert rms_dbfs(before) < -100
    assert rms_dbfs(during) > rms_dbfs(user) - 3  # the user's words pass at (nearly) full level
    assert len(onsets) == 1


def test_gate_learns_a_quiet_echo_path() -> None:
    path = EchoPath("gate", RATE)
    ref = speech_like(5.0)
    run_path(path, echo_of(ref, gain=0.05), ref)  # -26 dB echo path
    assert path.erl_db < -12  # learned well below the conservative 0 dB start


def test_gate_is_open_while_the_speaker_is_silent() -> None:
    path = EchoPath("gate", RATE)
    mic = speech_like(1.0)
    out = run_path(path, mic, np.zeros_like(mic), active=False)
    assert np.array_equal(out, mic)


def test_half_duplex_mutes_while_the_assistant_is_audible_and_for_a_tail() -> None:
    path = EchoPath("half-duplex", RATE, tail_ms=200)
    mic = speech_like(1.0)
    assert rms_dbfs(run_path(path, mic, mic, active=True)) < -100
    after = [path.process(b, np.zeros(BLOCK, dtype=np.int16), False) for b in blocks(speech_like(0.6))]
    muted = [rms_dbfs(b) < -100 for b in after]
    assert muted[:10] == [True] * 10 and not any(muted[12:])  # 200 ms tail, then open


def test_off_passes_everything_and_detects_onset_by_level() -> None:
    onsets: list[int] = []
    path = EchoPath("off", RATE, onset_db=-35, on_onset=lambda: onsets.append(1))
    quiet = (speech_like(0.5) // 100).astype(np.int16)  # about -45 dBFS: below the onset level
    assert np.array_equal(run_path(path, quiet, quiet), quiet) and not onsets
    loud = speech_like(0.5)
    assert np.array_equal(run_path(path, loud, np.zeros_like(loud)), loud)
    assert len(onsets) == 1


needs_aec = pytest.mark.skipif(not aec_available(), reason="the aec extra is not installed (pip install 'voicechat[aec]')")


@needs_aec
def test_aec_never_swallows_a_barge_in_on_headphones() -> None:
    # No echo path at all: the canceller alone suppresses the near end while the speaker plays.
    onsets: list[int] = []
    path = EchoPath("aec", RATE, canceller=EchoCanceller(RATE), on_onset=lambda: onsets.append(1))
    ref = speech_like(4.0)
    rng = np.random.default_rng(0)
    mic = rng.normal(0, 10, ref.size)
    user = speech_like(1.0, f0=210, seed=1)
    mic[2 * RATE : 3 * RATE] += user
    out = run_path(path, np.clip(mic, -32768, 32767).astype(np.int16), ref)
    assert rms_dbfs(out[2 * RATE + 2400 : 3 * RATE]) > rms_dbfs(user) - 3
    assert len(onsets) == 1


@needs_aec
def test_aec_removes_a_full_level_echo_and_lets_a_louder_barge_in_through() -> None:
    onsets: list[int] = []
    path = EchoPath("aec", RATE, canceller=EchoCanceller(RATE), on_onset=lambda: onsets.append(1))
    ref = speech_like(5.0)
    mic = echo_of(ref, gain=0.5).astype(np.int32)
    user = speech_like(1.0, amplitude=8000, f0=210, seed=1)
    mic[3 * RATE : 4 * RATE] += user
    out = run_path(path, np.clip(mic, -32768, 32767).astype(np.int16), ref)
    assert rms_dbfs(out[RATE : 3 * RATE]) < rms_dbfs(ref) - 25  # the echo is gone
    assert rms_dbfs(out[3 * RATE + 2400 : 4 * RATE]) > rms_dbfs(user) - 10  # the user is not
    assert len(onsets) == 1


class _Counting:
    """A canceller that records what it was given and returns the microphone unchanged."""

    def __init__(self) -> None:
        self.calls: list[tuple[np.ndarray, np.ndarray]] = []

    def process(self, mic: np.ndarray, ref: np.ndarray) -> np.ndarray:
        self.calls.append((mic.copy(), ref.copy()))
        return mic.copy()


def test_aec_rests_the_canceller_while_nothing_plays_and_wakes_it_on_the_room_before_a_reply() -> None:
    canceller = _Counting()
    path = EchoPath("aec", RATE, canceller=canceller, rest_ms=100, warm_ms=60, tail_ms=40)
    rng = np.random.default_rng(4)
    room = [np.rint(rng.normal(0, 30, BLOCK)).astype(np.int16) for _ in range(20)]
    silence = np.zeros(BLOCK, dtype=np.int16)
    path.process(room[0], silence, False)
    assert canceller.calls == []  # nothing has played yet: it rests from the start
    reply = speech_like(0.02)
    mic = np.rint(reply * 0.3).astype(np.int16)
    path.process(mic, reply, True)
    assert len(canceller.calls) == 2  # woken by the first reply: the room's block, then the reply's
    canceller.calls.clear()
    outs = [path.process(m, silence, False) for m in room]
    # Resting from the sixth silent block on (the first 100 ms go through it): nothing more is
    # given to it, and the microphone is sent as it is.
    assert len(canceller.calls) == 5
    for m, out in zip(room[5:], outs[5:], strict=True):
        assert np.array_equal(out, m)
    # The next reply starts: first the room's last 60 ms (3 blocks) with a silent reference,
    # then the block itself with its reference.
    path.process(mic, reply, True)
    woken = canceller.calls[5:]
    assert len(woken) == 4
    for (m, r), want in zip(woken[:3], room[-3:], strict=True):
        assert np.array_equal(m, want) and not r.any()
    assert np.array_equal(woken[3][0], mic) and np.array_equal(woken[3][1], reply)
    path.process(mic, reply, True)
    assert len(canceller.calls) == 10  # while it plays, one call per block


def test_aec_mode_needs_a_canceller_and_modes_are_checked() -> None:
    with pytest.raises(ValueError):
        EchoPath("aec", RATE)
    with pytest.raises(ValueError):
        EchoPath("loud", RATE)


# ---- the paused speaker -----------------------------------------------------------------------


def test_pause_fades_holds_and_resume_plays_on_without_underruns() -> None:
    buf = PlaybackBuffer(capacity_frames=48000, prebuffer_frames=0, fade_frames=120)
    buf.write(np.full(9600, 10000, dtype=np.int16))
    out = np.zeros(480, dtype=np.int16)
    buf.read_into(out)
    buf.pause()
    assert buf.read_into(out) == 120 and out[0] < 10000 and out[119] < 200 and not out[120:].any()
    assert buf.read_into(out) == 0 and buf.underruns == 0
    held = buf.consumed_total
    buf.resume()
    assert buf.read_into(out) == 480 and out[0] < 200 and out[200] == 10000  # faded back in
    assert buf.consumed_total == held + 480 and buf.underruns == 0


def test_flush_while_paused_drops_the_held_audio_at_the_pause_point() -> None:
    buf = PlaybackBuffer(capacity_frames=48000, prebuffer_frames=0, fade_frames=120)
    buf.write(np.full(9600, 10000, dtype=np.int16))
    out = np.zeros(480, dtype=np.int16)
    buf.read_into(out)
    buf.pause()
    buf.read_into(out)
    buf.flush()
    assert buf.write_position == 600 and buf.queued == 0 and not buf.paused
    buf.write(np.full(480, 5, dtype=np.int16))  # the next reply plays normally
    assert buf.read_into(out) == 480


# ---- the session's side ------------------------------------------------------------------------


def ready_session(interrupt: bool = True) -> Session:
    s = Session(SessionConfig(turn_detection=TurnDetection(interrupt_response=interrupt)))
    s.handle(ev.SessionCreated("e", {}), 0.0)
    s.handle(ev.SessionUpdated("e", {}), 0.0)
    assert s.ready
    return s


def speaking(s: Session) -> None:
    s.handle(ev.ResponseCreated("e", ev.Response("r1", "in_progress")), 0.0)
    item = ev.Item("i1", "message", "assistant", "in_progress")
    s.handle(ev.OutputItemAdded("e", "r1", 0, item), 0.0)
    s.handle(ev.AudioDelta("e", "r1", "i1", 0, 0, b"\x01\x00" * 2400), 0.0)
    assert s.audible_items == ("i1",)


def test_local_onset_pauses_then_the_servers_vad_flushes() -> None:
    s = ready_session()
    assert s.local_onset(0.0) == []  # nothing audible: nothing to pause
    speaking(s)
    assert s.local_onset(1.0) == [fx.Pause("local onset")]
    assert s.local_onset(1.1) == []  # once
    effects = s.handle(ev.SpeechStarted("e", "u2", 900), 1.3)
    assert any(isinstance(e, fx.Flush) for e in effects) and not s.paused
    assert not any(isinstance(e, fx.Resume) for e in s.tick(5.0))  # the flush ended the pause


def test_an_unconfirmed_onset_resumes_the_reply() -> None:
    s = ready_session()
    speaking(s)
    s.local_onset(1.0)
    assert not any(isinstance(e, fx.Resume) for e in s.tick(1.0 + LOCAL_ONSET_WAIT_S - 0.1))
    assert any(isinstance(e, fx.Resume) for e in s.tick(1.0 + LOCAL_ONSET_WAIT_S))
    assert s.false_onsets == 1 and not s.paused


def test_no_local_pause_when_the_server_would_not_interrupt() -> None:
    s = ready_session(interrupt=False)
    speaking(s)
    assert s.local_onset(1.0) == []


# ---- the real client in an echoing room (loopback) -----------------------------------------------


class CuedRoom(FileAudio):
    """A room whose microphone file waits at ``cue`` (samples) until ``after`` samples of the reply
    have played: a user who talks over the reply a set time into it, however late it came."""

    def __init__(self, audio: np.ndarray, *, cue: int, after: int, **kw: Any) -> None:
        super().__init__(audio, None, **kw)
        self.cue, self.after = cue, after

    def _next_mic_block(self) -> np.ndarray:
        if self.position >= self.cue and self.played_frames < self.after:
            return np.zeros(self.block, np.int16)  # still waiting, quiet
        return super()._next_mic_block()


async def converse_in_room(tmp_path: Path, audio: np.ndarray, echo: str, speed: float = 1.0,
                           cue: tuple[int, int] | None = None) -> tuple[LocalServer, str]:
    wav = tmp_path / "in.wav"
    write_wav(wav, audio, RATE)
    async with LocalServer(ServerOptions(speed=8.0, seed=3), host="127.0.0.1", port=0) as srv:
        settings = resolve(
            flags={"base_url": srv.http_base_url, "input_file": wav, "echo": echo, "silence_duration_ms": 400},
            environ={"OPENAI_API_KEY": "sk-test-loopback"},
        )
        # The speaker leaks into the microphone at full level 60 ms later (a laptop at high volume).
        leak = dict(echo_gain=1.0, echo_delay_ms=60, speed=speed)
        room = FileAudio(audio, None, **leak) if cue is None else CuedRoom(audio, cue=cue[0], after=cue[1], **leak)
        stdout = io.StringIO()
        await talk(settings, Output(sinks=[StreamSink(stdout)], status=io.StringIO()), audio=room)
    return srv, stdout.getvalue()


def speech_starts(srv: LocalServer) -> int:
    return sum(e["type"] == "input_audio_buffer.speech_started" for e in srv.emitted)


async def test_without_echo_handling_the_assistant_interrupts_itself(tmp_path: Path) -> None:
    audio = np.concatenate([np.zeros(RATE // 5, np.int16), speech_like(2.0), np.zeros(RATE * 3, np.int16)])
    # It talks to itself until the conversation gives up (60 s of audio): run that clock at 10x.
    srv, _ = await converse_in_room(tmp_path, audio, "off", speed=10.0)
    assert speech_starts(srv) >= 2  # the user's turn, then its own echoed reply
    assert any(e["type"] == "conversation.item.truncate" for e in srv.received)


# Only the gate here: this room's user talks from the reply's first block, before a canceller
# could converge, and whether aec then lets a +9.5 dB barge-in through depends on how the file
# clock and the canceller's first frames line up. aec is tested where it is meant to work, on
# real speech: tests/unit/test_echo_speech.py (offline rooms) and tests/device/test_device_echo.py (devices).
@pytest.mark.parametrize("mode", ["gate"])
async def test_echo_handling_stops_self_interruption_but_not_a_real_barge_in(tmp_path: Path, mode: str) -> None:
    # Turn 1; its reply (the echo brain plays turn 1 back) leaks into the mic at full level;
    # 0.9 s into the reply (counted in played audio, so a slow reply on a busy machine does not
    # move the barge-in before it) the user talks over it, louder than the echo.
    z = lambda s: np.zeros(int(s * RATE), np.int16)  # noqa: E731
    quiet_run = np.concatenate([z(0.2), speech_like(2.0), z(3.0)])
    srv, out = await converse_in_room(tmp_path, quiet_run, mode)
    assert speech_starts(srv) == 1, out
    assert not any(e["type"] == "conversation.item.truncate" for e in srv.received)

    barge = np.concatenate([z(0.2), speech_like(2.0), z(0.2), speech_like(1.0, amplitude=15000, f0=210, seed=1), z(3.0)])
    srv, out = await converse_in_room(tmp_path, barge, mode, cue=(int(2.4 * RATE), int(0.9 * RATE)))
    truncates = [e for e in srv.received if e["type"] == "conversation.item.truncate"]
    assert len(truncates) == 1, out
    assert "[interrupted" in out  # "[interrupted]", or "[interrupted before any words]"
