"""Echo handling on real speech in simulated rooms, offline and deterministic.

The same `EchoPath` and canceller `voicechat talk` runs, fed block by block with what a room
would put in the microphone: espeak-ng replies (``bench.speech``) through an echo path (gain,
delay, a reverberant tail, a small speaker's clipping), the reference leading the echo by 50 ms
as `RefTap` makes it. The rooms' response and clipping are `bench.rooms`'s, as on the devices. Its output goes through the local server's VAD, as on the wire. One
canceller lives through a whole conversation of replies, as in a call.

* silent: three replies heard out: no ``speech_started`` and no local onset; the same when the
  echo path moves between replies (a device's latency changing by -10 to +20 ms) or in the
  middle of one, and when the canceller lets a burst of echo through mid-reply;
* barge-in: the user talks over replies 2-9 at the echo's own level (0 dB speech to echo): each
  heard within a second, the local onset fires within 300 ms, and the user's opening reaches
  the output: at most ``ONSET_LOST_MS`` lost (a median);
* headset (no echo): a barge-in over the very first reply is heard too: a canceller that has
  found no echo path must not swallow the user.

The device tier (tests/device/test_device_echo.py) runs the same through real PortAudio streams.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pytest
import soxr

from voicechat.audio.aec import EchoCanceller, aec_available
from voicechat.audio.echo import EchoPath, threshold_db
from voicechat.server.vad import EnergyVad, VadParams

speech = pytest.importorskip("bench.speech")
from bench import rooms  # noqa: E402
from bench.echo_rooms import onset_lost_ms  # noqa: E402

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not aec_available(), reason="the canceller (livekit) does not load here"),
]

DEV = 48_000  # the device rate the echo path runs at
WIRE = 24_000
BLOCK = DEV // 50
REPLY_DBFS = -20.0
LEAD_MS = 50  # the reference leads the echo by this (device latency the RefTap keeps)
GAP_S = 1.5
# The target. Measured here (medians of 8): worst 0 ms, laptop 0 ms, loud-laptop 45 ms;
# the linear stage (voicechat.audio.linear) carries the word's first rise. Where the speaker
# clips it never converges and the canceller's own output is sent, which lacks the first
# 0-190 ms of some words: loud-laptop's median sits just under the target.
ONSET_LOST_MS = 50.0


@dataclass(frozen=True)
class Room:
    gain_db: float
    delay_ms: float
    reverb: bool = False
    clip: bool = False
    echo: bool = True


ROOMS = {
    "worst": Room(0.0, 0.0),
    "laptop": Room(-6.0, 40.0, reverb=True),
    "loud-laptop": Room(0.0, 40.0, reverb=True, clip=True),
    "headset": Room(0.0, 0.0, echo=False),
}


def _at(x: np.ndarray, dbfs: float) -> np.ndarray:
    """``x`` (int16) as float full scale 1.0, scaled to an active-speech level of ``dbfs``."""
    return x.astype(np.float64) / 32768.0 * 10 ** ((dbfs - speech.level_dbfs(x)) / 20)


def _up(x: np.ndarray) -> np.ndarray:
    return soxr.resample(x, WIRE, DEV)


LEAK_MS = 200.0
LEAK_GAIN_DB = -3.0


class Leaky:
    """The canceller, except that over some blocks it passes the microphone on ``LEAK_GAIN_DB``
    down: WebRTC's canceller does this now and then mid-reply long after it has converged
    (recorded on the devices: its output rose from -90 to -30 dBFS under -26 dBFS of echo for
    160 ms, 160 ms into a conversation's second reply)."""

    def __init__(self, inner: EchoCanceller, blocks: range) -> None:
        self.inner = inner
        self.blocks = blocks
        self.n = 0

    def process(self, mic: np.ndarray, ref: np.ndarray) -> np.ndarray:
        clean = self.inner.process(mic, ref)
        leaking = self.n in self.blocks
        self.n += 1
        return (mic * 10 ** (LEAK_GAIN_DB / 20)).astype(np.int16) if leaking else clean


@dataclass
class Run:
    starts: list[float]  # server VAD speech_started, seconds on the input timeline
    onsets: list[float]  # local onsets, seconds
    users: list[float]  # the user's speech onsets at the microphone, seconds
    out: np.ndarray  # what would be sent, at the wire rate


def converse(room: Room, barge_in: dict[int, float], replies_n: int = 3,
             shift: tuple[int, float] | tuple[int, float, float] | None = None,
             rest_ms: float | None = None, leak: tuple[int, float] | None = None) -> Run:
    """``replies_n`` replies; ``barge_in`` maps a reply (0-based) to how far into it the user
    talks over it, at 0 dB speech to echo; ``shift``: (reply, ms) from the gap before that
    reply on, the echo arrives that much later (a device's latency moved), or (reply, ms,
    seconds into it) from there on, mid-reply; ``rest_ms``: the
    canceller rests after that much silence (default: the path's own, longer than the gaps);
    ``leak``: (reply, seconds into it) where the canceller lets `LEAK_MS` of echo through."""
    replies = [_up(_at(speech.reply(40 + k, seconds=10.0), REPLY_DBFS)) for k in range(replies_n)]
    spk_parts, active = [np.zeros(DEV)], []
    t = DEV
    for r in replies:
        active.append((t, t + r.size))
        spk_parts += [r, np.zeros(int(GAP_S * DEV))]
        t += r.size + int(GAP_S * DEV)
    spk = np.concatenate(spk_parts)
    echo = spk * 10 ** (room.gain_db / 20)
    if room.reverb:
        echo = np.convolve(echo, rooms.rir(DEV, 0.3))[: spk.size]
    if room.clip:
        echo = rooms.soft_clip(echo)
    lag = int(DEV * (room.delay_ms + LEAD_MS) / 1000)
    mic = np.concatenate([np.zeros(lag), echo])[: spk.size] if room.echo else np.zeros(spk.size)
    if shift is not None and room.echo:
        k, ms = shift[:2]
        at = active[k][0] + (int(shift[2] * DEV) if len(shift) == 3 else -int(GAP_S * DEV / 2))
        mic[at:] = np.concatenate([np.zeros(lag + int(DEV * ms / 1000)), echo])[at : spk.size]
    users = []
    for k, offset in barge_in.items():
        user = speech.utterance(60 + k)
        u = _up(_at(user, REPLY_DBFS + room.gain_db))
        at = active[k][0] + int(offset * DEV)
        mic[at : at + u.size] += u[: mic.size - at]
        users.append((at + speech.onset_ms(user, WIRE) * DEV / 1000) / DEV)
    mic += np.random.default_rng(0).standard_normal(mic.size) * 10 ** (-70 / 20)
    m16 = np.clip(np.round(mic * 32768), -32768, 32767).astype(np.int16)
    s16 = np.clip(np.round(spk * 32768), -32768, 32767).astype(np.int16)

    onsets: list[float] = []
    block_no = 0
    canceller = EchoCanceller(DEV)
    if leak is not None:
        k, offset = leak
        start = active[k][0] + int(offset * DEV)
        canceller = Leaky(canceller, range(start // BLOCK, (start + int(LEAK_MS * DEV / 1000)) // BLOCK))
    path = EchoPath("aec", DEV, onset_db=threshold_db(0.5), canceller=canceller,
                    on_onset=lambda: onsets.append(block_no * BLOCK / DEV),
                    **({} if rest_ms is None else {"rest_ms": rest_ms}))
    vad = EnergyVad(VadParams(0.5, 300, 400))
    to_wire = soxr.ResampleStream(DEV, WIRE, 1, dtype="int16")
    starts, out = [], []
    for block_no in range(spk.size // BLOCK):
        a = block_no * BLOCK
        playing = any(s <= a < e for s, e in active)
        wire = to_wire.resample_chunk(path.process(m16[a : a + BLOCK], s16[a : a + BLOCK], playing))
        out.append(wire)
        starts += [ev.sample / WIRE for ev in vad.process(wire) if ev.kind == "start"]
    return Run(starts, onsets, users, np.concatenate(out))


@pytest.mark.parametrize("name", list(ROOMS))
def test_a_silent_user_never_interrupts_the_assistant(name: str) -> None:
    run = converse(ROOMS[name], {})
    assert run.starts == [] and run.onsets == [], (name, run.starts, run.onsets)


@pytest.mark.parametrize("name", ["worst", "laptop", "loud-laptop"])
@pytest.mark.parametrize("shift_ms", [-10.0, 5.0, 20.0])
def test_a_silent_user_never_interrupts_when_the_echo_path_moves(name: str, shift_ms: float) -> None:
    """The echo arrives ``shift_ms`` later from the third reply on: the canceller leaks while it
    follows, and the linear stage, converged on the old path, leaves its prediction in what it
    sends. Neither may pass for the user. (A move before the linear stage has converged goes
    unseen: with the echo 10 ms earlier from the second reply on, the canceller's leak still
    interrupts once in every room; later moves, or later echo, are held.)"""
    run = converse(ROOMS[name], {}, replies_n=4, shift=(2, shift_ms))
    assert run.starts == [] and run.onsets == [], (name, shift_ms, run.starts, run.onsets)


# Moves of the echo path mid-reply, either way, 1.5-10 ms, 0.4-3 s into the second reply. Before
# the linear stage followed moves, -10 ms at 3 s interrupted in every room and -5 ms at 1 s in
# two of three: the stage took its own stale prediction for the user.
MID_REPLY_MOVES = [(-5.0, 1.0), (-10.0, 3.0), (-1.5, 0.4), (4.0, 2.2)]


@pytest.mark.parametrize("name", ["worst", "laptop", "loud-laptop"])
@pytest.mark.parametrize(("shift_ms", "into_s"), MID_REPLY_MOVES)
def test_a_silent_user_never_interrupts_when_the_echo_path_moves_mid_reply(
    name: str, shift_ms: float, into_s: float
) -> None:
    """The echo arrives ``shift_ms`` later from ``into_s`` into the second reply on, as when a
    sound server's buffer ran dry unseen by PortAudio: the linear filter finds where its
    prediction went and follows it in the block it moved, and the canceller's leaks while it
    re-converges are judged as before convergence."""
    run = converse(ROOMS[name], {}, replies_n=2, shift=(1, shift_ms, into_s))
    assert run.starts == [] and run.onsets == [], (name, shift_ms, into_s, run.starts, run.onsets)


@pytest.mark.parametrize("name", ["worst", "laptop", "loud-laptop"])
@pytest.mark.parametrize("into_s", [0.3, 2.0])
def test_echo_the_canceller_lets_through_mid_reply_is_not_the_user(name: str, into_s: float) -> None:
    """The canceller passes 200 ms of the echo nearly whole, ``into_s`` into the second reply:
    the linear stage's residual stays well under it (the user would be in both), so it is not
    taken for the user. (Judged on the canceller's output alone, both interrupt in every room.)"""
    run = converse(ROOMS[name], {}, leak=(1, into_s))
    assert run.starts == [] and run.onsets == [], (name, into_s, run.starts, run.onsets)


@pytest.mark.parametrize("name", ["worst", "laptop", "loud-laptop"])
def test_a_canceller_rested_in_every_pause_still_holds_the_echo_and_hears_the_user(name: str) -> None:
    """The canceller rests 500 ms into each 1.5 s pause between replies (as it does in a real
    pause after `EchoPath`'s default 2 s) and wakes at the next reply: no reply's opening passes
    for the user, and barge-ins over replies 2 and 3 are heard within a second."""
    quiet = converse(ROOMS[name], {}, replies_n=4, rest_ms=500.0)
    assert quiet.starts == [] and quiet.onsets == [], (name, quiet.starts, quiet.onsets)
    run = converse(ROOMS[name], {1: 2.2, 2: 3.6}, replies_n=3, rest_ms=500.0)
    heard = [any(u - 0.05 <= t <= u + 1.0 for t in run.starts) for u in run.users]
    assert all(heard), f"{name}: barge-ins not heard: {heard} (users {run.users}, starts {run.starts})"
    strays = [t for t in run.starts if not any(u - 0.05 <= t <= u + 3.0 for u in run.users)]
    assert strays == [], f"{name}: speech_started with the user silent: {strays}"


BARGES = {k: 1.5 + (0.7 * k) % 3.5 for k in range(1, 9)}  # replies 2-9, 1.5-5 s into each


@pytest.mark.parametrize("name", ["worst", "laptop", "loud-laptop"])
def test_barge_ins_at_the_echo_level_are_heard_once_the_canceller_has_converged(name: str) -> None:
    """Eight barge-ins at 0 dB speech to echo: every one reaches the server's VAD within a
    second and the speaker stops within 300 ms (the local onset); the user's opening reaches the
    output (measured local onsets: 25-93 ms after the user's onset in worst and laptop, 25-193 ms
    in loud-laptop)."""
    run = converse(ROOMS[name], BARGES, replies_n=9)
    heard = [any(u - 0.05 <= t <= u + 1.0 for t in run.starts) for u in run.users]
    stopped = [any(u <= t <= u + 0.3 for t in run.onsets) for u in run.users]
    assert all(heard), f"{name}: barge-ins not heard: {heard} (users {run.users}, starts {run.starts})"
    assert all(stopped), f"{name}: local onsets within 300 ms: {stopped}"
    lost = []
    for k, onset in zip(BARGES, run.users, strict=True):
        user = speech.utterance(60 + k)
        cut = run.out[: int((onset + 3.0) * WIRE)]
        lost.append(onset_lost_ms(cut, user, int(speech.onset_ms(user, WIRE) * WIRE / 1000)))
    assert all(x is not None for x in lost), lost
    assert float(np.median([x for x in lost if x is not None])) <= ONSET_LOST_MS, lost
    strays = [t for t in run.starts if not any(u - 0.05 <= t <= u + 3.0 for u in run.users)]
    assert strays == [], f"{name}: speech_started with the user silent: {strays}"


def test_on_a_headset_a_barge_in_over_the_first_reply_is_heard() -> None:
    run = converse(ROOMS["headset"], {0: 1.0})
    (onset,) = run.users
    assert [t for t in run.starts if onset - 0.05 <= t <= onset + 0.5], (onset, run.starts)
